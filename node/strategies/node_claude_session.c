/*  node_claude_session — the claude-code strategy's files and session: the
    CLI's directories (its cwd and a HOME of its own under
    <work dir>/claude/<conversation>), made on the pool before a run; the
    session's files exported after a completed turn and kept in
    claude_sessions (at most 8 MiB), imported back on a node that lacks
    them before --resume; checkpoints of a running turn (the same export
    after each completed step, at most one a second, stored with the
    turn's user message in turn_message_id); and the turn end's statements
    (the session id in conversations.metadata.claude_code, the transcript).
    Loop thread, except s_work (a pool worker). */
#define LOG_MODULE "node_claude"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_BUNDLE_MAX  (8u * 1024 * 1024) /* session bytes kept in Postgres */
#define S_CKPT_MIN_MS 1000               /* at least this long between a turn's checkpoints */
#define Q_CC_GET      "node_cc_get"
#define Q_CC_PUT      "node_cc_put"
#define Q_CC_META     "node_cc_meta"

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef struct {
    node_run_t *run; /* referenced */
    char root[PATH_MAX], home[PATH_MAX];
    char session[72]; /* session id */
    bool make_root;   /* create root */
    bool exporting;   /* export (else prepare / import) */
    bool checkpoint;  /* the export is a checkpoint of the running turn */
    char *data;       /* bundle to import / exported */
    size_t len;       /* its size */
    bool missing;     /* prepare: the transcript is not on this node */
    char err[256];    /* failure, "" on success */
} s_job_t;

/* ---- jobs on the pool --------------------------------------------------------------------- */

static int s_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            int rc = mkdir(path, 0700);
            *p = '/';
            if (rc < 0 && errno != EEXIST) {
                return -1;
            }
        }
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static void s_work(void *arg)
{
    s_job_t *j = arg;
    char path[PATH_MAX];
    if (j->exporting) {
        if (agent_claude_session_export(j->home, j->root, j->session, S_BUNDLE_MAX, &j->data,
                                        &j->len, j->err, sizeof j->err) < 0 &&
            !j->err[0]) {
            snprintf(j->err, sizeof j->err, "export failed");
        }
        return;
    }
    if ((j->make_root && s_mkdirs(j->root) < 0) || s_mkdirs(j->home) < 0) {
        snprintf(j->err, sizeof j->err, "cannot create the CLI's directories");
        return;
    }
    if (j->data) {
        agent_claude_session_import(j->home, j->root, j->session, j->data, j->len, j->err,
                                    sizeof j->err);
    } else if (j->session[0]) {
        j->missing =
            agent_claude_session_path(j->home, j->root, j->session, path, sizeof path) < 0 ||
            access(path, R_OK) != 0;
    }
}

static void s_job_free(s_job_t *j)
{
    free(j->data);
    free(j);
}

static void s_import_read(node_run_t *run);

/* A checkpoint's export is done: its bundle is owed to Postgres (node_claude_pending_write),
   unless the CLI ended meanwhile (the turn's end stores the final one). */
static void s_checkpoint_done(node_run_t *run, s_job_t *j)
{
    node_cc_t *cc = run->cc;
    if (j->err[0] || !cc->proc || run->phase != NODE_RUN_CLAUDE) {
        if (j->err[0]) {
            LOG_W("claude checkpoint not saved session=%s error=\"%s\"", j->session, j->err);
        }
        cc->ckpt_busy = false;
        return;
    }
    free(cc->ckpt);
    cc->ckpt = j->data;
    cc->ckpt_len = j->len;
    j->data = NULL;
    node_run_pump(run);
}

static void s_done(void *arg, bool cancelled)
{
    s_job_t *j = arg;
    node_run_t *run = j->run;
    if (run->actor && run->cc && !cancelled) {
        node_cc_t *cc = run->cc;
        if (j->checkpoint) {
            s_checkpoint_done(run, j);
        } else if (j->exporting) {
            if (j->err[0]) {
                LOG_W("claude session not saved session=%s error=\"%s\"", j->session, j->err);
            } else {
                cc->bundle = j->data;
                cc->bundle_len = j->len;
                j->data = NULL;
            }
            run->phase = NODE_RUN_ENDING;
            run->actor->turns->end_ready = NODE_END_COMPLETED;
            node_run_pump(run);
        } else if (j->err[0]) {
            node_run_fail(run, j->err);
        } else if (j->missing || (cc->reimport && !j->data)) {
            cc->reimport = false;
            s_import_read(run);
        } else {
            node_claude_start(run);
        }
    }
    node_run_unref(run);
    s_job_free(j);
}

/* Submits a job for run to the pool. -1 when it is full (j is still the caller's). */
static int s_pool_submit(node_run_t *run, s_job_t *j)
{
    node_cc_t *cc = run->cc;
    j->run = run;
    snprintf(j->root, sizeof j->root, "%s", run->root ? run->root : "");
    snprintf(j->home, sizeof j->home, "%s", cc->home);
    snprintf(j->session, sizeof j->session, "%s", cc->session);
    j->make_root = run->root_make;
    if (agent_pool_submit(run->agents->pool, s_work, s_done, j) < 0) {
        return -1;
    }
    node_run_ref(run);
    return 0;
}

/* Submits a job for run; fails the turn when the pool is full. */
static void s_submit(node_run_t *run, s_job_t *j)
{
    if (s_pool_submit(run, j) < 0) {
        s_job_free(j);
        node_run_fail(run, "the node's worker pool is busy");
    }
}

/* ---- the session's files from Postgres ----------------------------------------------------- */

typedef struct {
    node_run_t *run; /* referenced */
    char *data;      /* the bundle */
    size_t len;      /* its size */
} s_get_t;

static int s_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void s_on_bundle(void *arg, db_status_t status, const db_result_t *res)
{
    s_get_t *g = arg;
    const char *hex = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    size_t n = hex ? strlen(hex) : 0;
    if (n < 2 || hex[0] != '\\' || hex[1] != 'x' || (n % 2) || !(g->data = malloc(n / 2))) {
        return;
    }
    for (size_t i = 2; i + 1 < n; i += 2) {
        int hi = s_hex(hex[i]), lo = s_hex(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            free(g->data);
            g->data = NULL;
            return;
        }
        g->data[g->len++] = (char)(hi * 16 + lo);
    }
}

static void s_on_got(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_get_t *g = arg;
    node_run_t *run = g->run;
    if (run->actor && run->cc) {
        if (g->data) {
            s_job_t *j = calloc(1, sizeof *j);
            if (j) {
                j->data = g->data;
                j->len = g->len;
                g->data = NULL;
                s_submit(run, j);
            } else {
                node_run_fail(run, "out of memory");
            }
        } else {
            /* Nothing to resume from here: a new session. */
            LOG_N("claude session not found, starting a new one session=%s", run->cc->session);
            run->cc->resume = false;
            run->cc->session[0] = '\0';
            node_claude_session_lost(run);
            node_claude_start(run);
        }
    }
    free(g->data);
    free(g);
    node_run_unref(run);
}

static void s_import_read(node_run_t *run)
{
    node_t *node = node_run_node(run);
    s_uuid_t conv, team;
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    const char *params[] = {conv, team, run->cc->session};
    s_get_t *g = calloc(1, sizeof *g);
    db_batch_t *b = g && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, Q_CC_GET, NULL, 3, params, s_on_bundle, g) < 0) {
        db_batch_destroy(&b);
        free(g);
        node_run_fail(run, "cannot read the claude session");
        return;
    }
    g->run = run;
    node_run_ref(run);
    db_batch_submit(&b, s_on_got, g);
}

int node_claude_setup(node_run_t *run, const char *wt_path, const char *session)
{
    node_cc_t *cc = calloc(1, sizeof *cc);
    s_uuid_t conv;
    util_uuid_format(run->actor->conv_id, conv);
    run->cc = cc;
    run->phase = NODE_RUN_CLAUDE;
    if (!cc || !(cc->names = json_object()) || node_llm_set_root(run, wt_path) < 0 ||
        !run->agents->claude) {
        node_run_fail(run, !cc ? "out of memory" : "claude-code is unavailable");
        return -1;
    }
    snprintf(cc->home, sizeof cc->home, "%.*s/claude/%s", PATH_MAX - 48, run->agents->work_dir,
             conv);
    if (session && agent_claude_session_id_valid(session)) {
        snprintf(cc->session, sizeof cc->session, "%s", session);
        cc->resume = true;
    }
    return 0;
}

void node_claude_prepare(node_run_t *run)
{
    s_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        node_run_fail(run, "out of memory");
        return;
    }
    s_submit(run, j);
}

void node_claude_begin(node_run_t *run,
                       const char *content,
                       const char *wt_path,
                       const char *session)
{
    if (!run->content && !(run->content = strdup(content))) {
        node_run_fail(run, "out of memory");
        return;
    }
    if (node_claude_setup(run, wt_path, session) == 0) {
        node_claude_prepare(run);
    }
}

void node_claude_add_session(node_ws_t *ws, const node_run_t *run)
{
    s_uuid_t conv, team;
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    const char *params[] = {conv, team, run->cc->session};
    node_ws_add(ws, Q_CC_META, NODE_SK_PLAIN, 3, params);
}

void node_claude_export(node_run_t *run)
{
    s_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        node_run_fail(run, "out of memory");
        return;
    }
    j->exporting = true;
    s_submit(run, j);
}

static void
s_add_bundle(node_ws_t *ws, const node_run_t *run, const char *data, size_t len, const char *turn);

/* ---- checkpoints of a running turn ------------------------------------------------------- */

void node_claude_step(node_run_t *run)
{
    if (run->cc && run->cc->session[0]) {
        run->cc->ckpt_dirty = true;
        node_claude_tick(run, util_mono_ms());
    }
}

void node_claude_tick(node_run_t *run, int64_t now_ms)
{
    node_cc_t *cc = run->cc;
    /* One checkpoint at a time, and not more often than S_CKPT_MIN_MS: a chatty turn
       costs at most one bundle write per second, whatever its number of steps. */
    if (!cc || !cc->ckpt_dirty || cc->ckpt_busy || !cc->proc || run->phase != NODE_RUN_CLAUDE ||
        !cc->session[0] || (cc->ckpt_at_ms && now_ms - cc->ckpt_at_ms < S_CKPT_MIN_MS)) {
        return;
    }
    s_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        return; /* tried again at the next tick */
    }
    j->exporting = j->checkpoint = true;
    if (s_pool_submit(run, j) < 0) {
        s_job_free(j);
        return;
    }
    cc->ckpt_dirty = false;
    cc->ckpt_busy = true;
    cc->ckpt_at_ms = now_ms;
}

bool node_claude_add_checkpoint(node_ws_t *ws, node_run_t *run)
{
    node_cc_t *cc = run->cc;
    if (!cc || !cc->ckpt) {
        return false;
    }
    s_uuid_t uid;
    util_uuid_format(run->actor->turns->user_id, uid);
    s_add_bundle(ws, run, cc->ckpt, cc->ckpt_len, uid);
    free(cc->ckpt);
    cc->ckpt = NULL;
    cc->ckpt_sent = true;
    return true;
}

/* Adds the store of a session bundle: at a turn's end (turn NULL), or a checkpoint of
   the running turn of user message turn. On OOM the session stays on this node only. */
static void
s_add_bundle(node_ws_t *ws, const node_run_t *run, const char *data, size_t len, const char *turn)
{
    s_uuid_t conv, team;
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    char *hex = malloc(2 * len + 3);
    if (!hex) {
        return;
    }
    hex[0] = '\\';
    hex[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        snprintf(hex + 2 + 2 * i, 3, "%02x", (unsigned char)data[i]);
    }
    const char *params[] = {conv, team, run->cc->session, hex, turn};
    node_ws_add(ws, Q_CC_PUT, NODE_SK_PLAIN, 5, params);
    free(hex);
}

int node_claude_add_end(node_ws_t *ws, node_run_t *run, node_end_t how)
{
    node_cc_t *cc = run->cc;
    if (!cc) {
        return 0;
    }
    agent_claude_cancel(&cc->proc);
    s_uuid_t conv, team;
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    if (cc->session[0] && how == NODE_END_COMPLETED) {
        const char *params[] = {conv, team, cc->session};
        node_ws_add(ws, Q_CC_META, NODE_SK_PLAIN, 3, params);
    }
    if (cc->bundle && how == NODE_END_COMPLETED) {
        s_add_bundle(ws, run, cc->bundle, cc->bundle_len, NULL);
    }
    return ws->oom ? -1 : 0;
}

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    {Q_CC_GET, 3,
     "SELECT bundle FROM claude_sessions WHERE conversation_id = $1::uuid AND team_id = $2::uuid "
     "AND session_id = $3::text"},
    /* $5: the running turn's user message (a checkpoint), NULL at a turn's end. */
    {Q_CC_PUT, 5,
     "INSERT INTO claude_sessions (conversation_id, team_id, session_id, bundle, "
     "turn_message_id) VALUES ($1::uuid, $2::uuid, $3::text, $4::bytea, $5::uuid) ON CONFLICT "
     "(conversation_id) DO UPDATE SET session_id = EXCLUDED.session_id, bundle = "
     "EXCLUDED.bundle, turn_message_id = EXCLUDED.turn_message_id, updated_at = now()"},
    {Q_CC_META, 3,
     "UPDATE conversations SET metadata = metadata || jsonb_build_object('claude_code', "
     "coalesce(metadata->'claude_code', '{}'::jsonb) || jsonb_build_object('session_id', "
     "$3::text)) WHERE id = $1::uuid AND team_id = $2::uuid"},
};

int node_claude_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}
