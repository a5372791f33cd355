/*  node_perm_recover — a turn left waiting for a permission survives its
    node. When an actor is (re)activated with status waiting_for_permission
    and no turn in memory, it reads the turn back (its last assistant
    message and that message's tool calls, their results and requests, the
    history, the user messages queued behind it) while pinned, so that a
    decision waiting in its mailbox is applied to the rebuilt turn. Pending
    requests wait again (their expiry included); a call that was allowed but
    has no stored result was interrupted: its result says so (it is not run
    again). The same read serves a claude-code turn that was running when its
    node was lost (node_recover.c hands it over): it is resumed from the
    transcript checkpointed in that turn (node_claude_resume.c), else it
    fails node_lost. Also the sweep that activates conversations whose
    requests expired while no node had them. Loop thread only. */
#define LOG_MODULE "node_perm"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* The turn a claude-code transcript was checkpointed in. $1 conv $2 team. */
static const char s_checkpoint_sql[] =
    "SELECT turn_message_id FROM claude_sessions WHERE conversation_id = $1::uuid AND team_id "
    "= $2::uuid";

typedef struct {
    node_run_t *run;     /* referenced */
    node_actor_t *actor; /* pinned (NODE_AF_IDEM) while the read runs */
    bool ctx_found;      /* the conversation row was read */
    char *strategy;      /* its strategy */
    char *wt_path;       /* its live worktree, NULL none */
    char *session;       /* claude-code: metadata.claude_code.session_id */
    char *asst_id;       /* the last assistant message */
    char *asst_content;  /* its text */
    json_t *asst_meta;   /* its metadata */
    json_t *perms;       /* [{id, status, tool_use_id, expires_ms}] */
    json_t *rows;        /* history rows */
    json_t *queued;      /* [{id, content}] user messages waiting */
    bool lost;           /* a claude-code turn that was running when its node was lost */
    char *checkpoint;    /* lost: the turn whose transcript is in claude_sessions, or NULL */
} s_rec_t;

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_on_ctx(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        r->ctx_found = true;
        r->strategy = s_dup(db_result_value(res, 0, 0));
        r->wt_path = s_dup(db_result_value(res, 0, 1));
        r->session = s_dup(db_result_value(res, 0, 3));
    }
}

static void s_on_msg(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        r->asst_id = s_dup(db_result_value(res, 0, 0));
        r->asst_content = s_dup(db_result_value(res, 0, 1));
        const char *meta = db_result_value(res, 0, 2);
        r->asst_meta = meta ? json_loads(meta, 0, NULL) : NULL;
    }
}

static void s_on_perms(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    r->perms = json_array();
    for (int i = 0; status == DB_OK && i < db_result_rows(res); i++) {
        const char *exp = db_result_value(res, i, 3);
        const char *args = db_result_value(res, i, 5);
        json_array_append_new(r->perms, json_pack("{s:s?, s:s?, s:s?, s:I, s:s?, s:o?}", "id",
                                                  db_result_value(res, i, 0), "status",
                                                  db_result_value(res, i, 1), "tool_use_id",
                                                  db_result_value(res, i, 2), "expires_ms",
                                                  (json_int_t)(exp ? atoll(exp) : 0), "tool_name",
                                                  db_result_value(res, i, 4), "arguments",
                                                  args ? json_loads(args, 0, NULL) : NULL));
    }
}

static void s_on_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    const char *text = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    r->rows = text ? json_loads(text, 0, NULL) : NULL;
}

static void s_on_queued(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    r->queued = json_array();
    for (int i = 0; status == DB_OK && i < db_result_rows(res); i++) {
        json_array_append_new(r->queued, json_pack("{s:s?, s:s?}", "id", db_result_value(res, i, 0),
                                                   "content", db_result_value(res, i, 1)));
    }
}

static void s_on_checkpoint(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        r->checkpoint = s_dup(db_result_value(res, 0, 0));
    }
}

/* ---- rebuilding the turn ----------------------------------------------------------------- */

/* The stored result row of tool call id in the turn of user message uid, or NULL. */
static const json_t *s_result_row(const json_t *rows, const char *id, const char *uid)
{
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        const json_t *meta = json_object_get(row, "metadata");
        const char *tid = json_string_value(json_object_get(meta, "tool_call_id"));
        const char *u = json_string_value(json_object_get(meta, "user_message_id"));
        if (tid && u && strcmp(tid, id) == 0 && strcmp(u, uid) == 0) {
            return row;
        }
    }
    return NULL;
}

static const json_t *s_perm_of(const json_t *perms, const char *tool_use_id)
{
    size_t i;
    const json_t *p;
    json_array_foreach(perms, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "tool_use_id"));
        if (t && strcmp(t, tool_use_id) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Restores one call from its result row or its request. */
static void s_restore_call(node_run_t *run, node_call_t *c, const s_rec_t *r, const char *uid)
{
    const json_t *row = s_result_row(r->rows, c->id, uid);
    const json_t *perm = s_perm_of(r->perms, c->id);
    if (row) {
        c->state = NODE_CALL_DONE;
        node_tools_set_result(
            c, json_string_value(json_object_get(row, "content")),
            json_is_true(json_object_get(json_object_get(row, "metadata"), "is_error")));
        return;
    }
    const char *st = json_string_value(json_object_get(perm, "status"));
    const char *pid = json_string_value(json_object_get(perm, "id"));
    if (st && pid && strcmp(st, "pending") == 0 && util_uuid_parse(pid, c->perm_id) == 0) {
        c->state = NODE_CALL_PENDING;
        c->has_perm = true;
        c->expires_ms = (int64_t)json_integer_value(json_object_get(perm, "expires_ms"));
        return;
    }
    c->state = NODE_CALL_FINISHED;
    c->ran = true;
    node_tools_set_result(c,
                          "Error: the tool call was interrupted by a node restart and was "
                          "not completed",
                          true);
}

/* Rebuilds the calls of the last model call from its metadata. -1 when there are none. */
static int s_restore_calls(node_run_t *run, const s_rec_t *r, const char *uid)
{
    const json_t *calls = json_object_get(r->asst_meta, "tool_calls");
    size_t n = json_array_size(calls);
    run->calls = n ? calloc(n, sizeof *run->calls) : NULL;
    if (!run->calls) {
        return -1;
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        node_call_t *c = &run->calls[run->ncalls];
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(tc, "name"));
        const json_t *args = json_object_get(tc, "arguments");
        if (!id || !name) {
            continue;
        }
        c->id = strdup(id);
        c->name = strdup(name);
        c->args = json_is_object(args) ? json_deep_copy(args) : json_object();
        run->ncalls++;
        s_restore_call(run, c, r, uid);
    }
    return run->ncalls ? 0 : -1;
}

/* The history before the interrupted model call, then that call's assistant entry. */
static void s_restore_history(node_run_t *run, const s_rec_t *r, const char *uid)
{
    bool has = false;
    run->history = node_llm_history(r->rows, uid, r->asst_id, &has);
    if (!has) {
        json_array_append_new(run->history, json_pack("{s:s, s:s}", "role", "user", "content",
                                                      "(an earlier message)"));
    }
    json_t *calls = json_array();
    for (size_t i = 0; i < run->ncalls; i++) {
        json_array_append_new(calls,
                              json_pack("{s:s, s:s, s:O}", "id", run->calls[i].id, "name",
                                        run->calls[i].name, "arguments", run->calls[i].args));
    }
    json_array_append_new(run->history,
                          json_pack("{s:s, s:s, s:o}", "role", "assistant", "content",
                                    r->asst_content ? r->asst_content : "", "tool_calls", calls));
    size_t i;
    const json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        const char *u =
            json_string_value(json_object_get(json_object_get(row, "metadata"), "user_message_id"));
        const char *role = json_string_value(json_object_get(row, "role"));
        run->model_calls += u && role && strcmp(u, uid) == 0 && strcmp(role, "assistant") == 0;
    }
}

/* Queues the user messages waiting behind the turn. */
static void s_enqueue(node_actor_t *a, const json_t *queued)
{
    size_t i;
    const json_t *q;
    json_array_foreach(queued, i, q)
    {
        uint8_t id[16];
        const char *qid = json_string_value(json_object_get(q, "id"));
        const char *content = json_string_value(json_object_get(q, "content"));
        if (qid && content && util_uuid_parse(qid, id) == 0) {
            node_turn_enqueue(a, id, content);
        }
    }
}

/* A claude-code turn: its pending requests wait again; the CLI died with the node and
   the session is resumed once they are decided (node_claude_resume.c). */
static const char *s_restore_claude(node_run_t *run, const s_rec_t *r)
{
    node_turns_t *t = run->actor->turns;
    const char *uid = json_string_value(json_object_get(r->asst_meta, "user_message_id"));
    if (!r->asst_id || !uid || util_uuid_parse(uid, t->user_id) < 0 ||
        util_uuid_parse(r->asst_id, t->asst_id) < 0) {
        run->lost = r->lost;
        return "the claude-code run was lost with its node";
    }
    const char *task = NULL;
    size_t i;
    const json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        task =
            id && strcmp(id, uid) == 0 ? json_string_value(json_object_get(row, "content")) : task;
    }
    if (r->lost) {
        /* Resumed from the transcript checkpointed during this very turn; with none (the
           node was lost before the turn's first step was stored), it fails as any turn
           lost with its node. */
        if (!r->checkpoint || strcmp(r->checkpoint, uid) != 0) {
            run->lost = true;
            return "the node running this turn was lost";
        }
        return node_claude_resume_lost(run, r->wt_path, r->session, task);
    }
    const char *why = node_claude_restore(run, r->perms, r->wt_path, r->session, task);
    if (!why) {
        s_enqueue(run->actor, r->queued);
    }
    return why;
}

/* Restores the turn; returns NULL or why it cannot be. */
static const char *s_restore(node_run_t *run, node_t *node, const s_rec_t *r)
{
    node_actor_t *a = run->actor;
    node_turns_t *t = a->turns;
    const cfg_strategy_t *s = r->strategy ? node_strategy_lookup(r->strategy) : NULL;
    const char *uid = json_string_value(json_object_get(r->asst_meta, "user_message_id"));
    if (!r->ctx_found || !json_is_array(r->rows) || !r->perms || !r->queued) {
        run->lost = r->lost;
        return "the turn's state cannot be read";
    }
    if (s) {
        run->strategy = s;
        snprintf(run->strategy_name, sizeof run->strategy_name, "%s", s->name);
    }
    if (r->lost) {
        /* The user messages posted behind the lost turn run after it, whatever becomes
           of it (as node_recover.c does for any lost turn). */
        s_enqueue(a, r->queued);
        run->lost = !s || s->kind != CFG_STRATEGY_CLAUDE_CODE;
    }
    if (s && s->kind == CFG_STRATEGY_CLAUDE_CODE) {
        return s_restore_claude(run, r);
    }
    if (!s || (s->kind != CFG_STRATEGY_OPENAI && s->kind != CFG_STRATEGY_ANTHROPIC)) {
        return "the conversation's strategy cannot resume this turn";
    }
    if (!r->asst_id || !uid || util_uuid_parse(uid, t->user_id) < 0 ||
        util_uuid_parse(r->asst_id, t->asst_id) < 0) {
        return "no interrupted model call was found";
    }
    free(t->reply);
    t->reply = strdup(r->asst_content ? r->asst_content : "");
    t->pos = t->reply ? strlen(t->reply) : 0;
    if (s_restore_calls(run, r, uid) < 0 || node_llm_set_root(run, r->wt_path) < 0) {
        return "the interrupted model call has no tool calls";
    }
    s_restore_history(run, r, uid);
    s_enqueue(a, r->queued);
    run->phase = NODE_RUN_TOOLS;
    LOG_N("turn resumed after reactivation strategy=%s calls=%zu waiting=%d", s->name, run->ncalls,
          node_run_status(run) == NODE_ST_WAITING);
    return NULL;
}

static void s_rec_free(s_rec_t *r)
{
    free(r->strategy);
    free(r->wt_path);
    free(r->session);
    free(r->asst_id);
    free(r->asst_content);
    json_decref(r->asst_meta);
    json_decref(r->perms);
    json_decref(r->rows);
    json_decref(r->queued);
    free(r->checkpoint);
    free(r);
}

static void s_on_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_rec_t *r = arg;
    node_run_t *run = r->run;
    node_actor_t *a = r->actor;
    node_t *node = node_run_node(run);
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    bool alive = run->actor != NULL;
    if (alive && status != DB_OK) {
        /* Nothing was lost: forget the actor; the next request reads it again. */
        s_rec_free(r);
        node_run_unref(run);
        node_actor_drop(node, a, "database unavailable");
        return;
    }
    const char *why = alive ? s_restore(run, node, r) : NULL;
    s_rec_free(r);
    node_run_unref(run);
    if (why) {
        node_run_fail(run, why);
    } else if (alive) {
        node_tools_all_done(run);
    }
    node_actor_pump(node, a);
}

void node_perm_recover(node_t *node, node_actor_t *a, bool lost)
{
    node_turns_t *t = node_turns_get(a);
    node_run_t *run = t ? node_run_new(node, a, NULL) : NULL;
    s_rec_t *r = run ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        LOG_E("out of memory: cannot resume a turn");
        if (run) {
            node_run_fail(run, "out of memory");
        }
        return;
    }
    run->phase = NODE_RUN_RECOVERING;
    s_uuid_t conv, team;
    char rows[16], bytes[24], queued[16];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    snprintf(rows, sizeof rows, "%d", NODE_HISTORY_ROWS);
    snprintf(bytes, sizeof bytes, "%d", NODE_HISTORY_BYTES);
    snprintf(queued, sizeof queued, "%ld", node->cfg->mailbox_max);
    const char *p2[] = {conv, team};
    const char *ph[] = {conv, team, rows, bytes};
    const char *pq[] = {conv, team, queued};
    db_batch_t *b = !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_TURN_CTX, NULL, 2, p2, s_on_ctx, r) < 0 ||
        db_batch_add(b, NODE_Q_RECOVER_MSG, NULL, 2, p2, s_on_msg, r) < 0 ||
        db_batch_add(b, NODE_Q_PERM_TURN, NULL, 2, p2, s_on_perms, r) < 0 ||
        db_batch_add(b, NODE_Q_HISTORY, NULL, 4, ph, s_on_rows, r) < 0 ||
        db_batch_add(b, NODE_Q_PENDING_MSG, NULL, 3, pq, s_on_queued, r) < 0 ||
        (lost && db_batch_add(b, NULL, s_checkpoint_sql, 2, p2, s_on_checkpoint, r) < 0)) {
        db_batch_destroy(&b);
        free(r);
        node_run_fail(run, "cannot read the turn to resume it");
        return;
    }
    r->run = run;
    r->actor = a;
    r->lost = lost;
    node_run_ref(run);
    /* Pinned: requests (a decision among them) wait until the turn is rebuilt. */
    a->flags |= NODE_AF_IDEM;
    db_batch_submit(&b, s_on_done, r);
}

/* ---- the expiry sweep -------------------------------------------------------------------- */

static void s_on_sweep_rows(void *arg, db_status_t status, const db_result_t *res)
{
    node_t *node = arg;
    for (int i = 0; status == DB_OK && i < db_result_rows(res); i++) {
        uint8_t conv[16], team[16];
        if (util_uuid_parse(db_result_value(res, i, 0), conv) == 0 &&
            util_uuid_parse(db_result_value(res, i, 1), team) == 0 &&
            node_ring_owner(node, conv) == NODE_OWNER_SELF) {
            node_actor_warm(node, team, conv, UINT32_MAX);
        }
    }
}

void node_perm_sweep(node_agents_t *agents)
{
    node_t *node = agents->node;
    if (node->closing || node->stopping || !db_conn_ready(node->db)) {
        return;
    }
    db_batch_t *b = db_batch_new(node->db, false);
    if (!b || db_batch_add(b, NODE_Q_PERM_SWEEP, NULL, 0, NULL, s_on_sweep_rows, node) < 0) {
        db_batch_destroy(&b);
        return;
    }
    db_batch_submit(&b, NULL, NULL);
}
