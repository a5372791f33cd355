/*  node_ops_wt — /api/worktrees on the node: team-wide ops any node answers.
    Records live in the worktrees table (ids stable across restarts; a
    removal sets removed_at); git work goes through agent_worktree on the
    agent pool. Creates and removals go through node_wt_queue.c (one at a
    time per repository in the whole cluster). List and get read the rows,
    then look at the directories on the pool (a vanished one is
    "inactive"). Loop thread, except s_status_work (a pool worker). */
#define LOG_MODULE "node_ops_wt"
#include "common/log.h"
#include "common/util.h"
#include "node/agent/agent_worktree.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* ---- ops ---------------------------------------------------------------------------------- */

static bool s_have_repo(node_t *node, node_req_t **req_p)
{
    if (!node->agents || !node->agents->repo[0]) {
        node_reply_busy(node, req_p, "no repository is configured on this node (--repo)");
        return false;
    }
    return true;
}

void node_op_wt_create(node_t *node, node_req_t *req)
{
    /* Dispatch checked the shape against wt.create's row (in characters); git's own
       rules, and its refs' limits in bytes, are checked here. */
    const char *branch = node_args_str(req->args, "branch");
    const char *base = node_args_str(req->args, "base");
    char why[128];
    if (strlen(branch) > AGENT_BRANCH_MAX) {
        node_reply_invalid(node, &req, "branch", "branch is longer than %d bytes",
                           AGENT_BRANCH_MAX);
        return;
    }
    if (!agent_branch_valid(branch, why, sizeof why)) {
        node_reply_invalid(node, &req, "branch", "%s (git check-ref-format --branch rules)", why);
        return;
    }
    if (base && strlen(base) > AGENT_WT_REF_MAX) {
        node_reply_invalid(node, &req, "base", "base is longer than %d bytes", AGENT_WT_REF_MAX);
        return;
    }
    if (!s_have_repo(node, &req)) {
        return;
    }
    node_wt_op_t *op = node_wt_op_create(branch, base);
    if (!op) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    node_wt_enqueue(node, req, op);
}

/* ---- reads: rows, then the directories on the pool ---------------------------------------- */

typedef struct {
    node_t *node;        /* borrowed */
    node_req_t *req;     /* answered at the end */
    bool one;            /* get (else list) */
    bool for_delete;     /* the row of a removal: queue it when found */
    bool force;          /* removal with force */
    long long limit;     /* page size */
    json_t *rows;        /* the rows (Worktree objects without status) */
    char *cursor;        /* cursor material of the last row kept */
    bool more;           /* rows beyond the page */
    char repo[PATH_MAX]; /* repository (copy for the worker) */
} s_read_t;

static void s_read_free(s_read_t *r)
{
    node_req_destroy(&r->req);
    json_decref(r->rows);
    free(r->cursor);
    free(r);
}

/* Worker: status (and head, when git knows it) of every row. */
static void s_status_work(void *arg)
{
    s_read_t *r = arg;
    size_t i;
    json_t *w;
    json_array_foreach(r->rows, i, w)
    {
        const char *path = json_string_value(json_object_get(w, "path"));
        bool active = path && r->repo[0] && agent_worktree_active(path);
        char head[AGENT_WT_OID_HEXLEN + 1] = "", branch[AGENT_BRANCH_MAX + 1] = "";
        if (active && agent_worktree_head(path, head, branch, sizeof branch) == 0) {
            json_object_set_new(w, "head", json_string(head));
        }
        json_object_set_new(w, "status", json_string(active ? "active" : "inactive"));
    }
}

static void s_status_done(void *arg, bool cancelled)
{
    s_read_t *r = arg;
    if (cancelled) {
        node_reply_busy(r->node, &r->req, "node is stopping");
    } else if (r->one) {
        char *text = node_json_text(json_array_get(r->rows, 0));
        node_reply(r->node, &r->req, text ? 200 : 503, text ? text : "{}", 0);
        free(text);
    } else {
        char *cursor = r->more && r->cursor ? node_cursor_encode(r->cursor) : NULL;
        json_t *out = json_pack("{s:O, s:s?}", "data", r->rows, "next_cursor", cursor);
        char *text = out ? node_json_text(out) : NULL;
        node_reply(r->node, &r->req, text ? 200 : 503, text ? text : "{}", 0);
        free(text);
        free(cursor);
        json_decref(out);
    }
    s_read_free(r);
}

static void s_on_wt_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    r->rows = json_array();
    for (int i = 0; status == DB_OK && i < db_result_rows(res); i++) {
        if (i >= r->limit) {
            r->more = true;
            break;
        }
        const char *text = db_result_value(res, i, 0), *c = db_result_value(res, i, 1);
        json_array_append_new(r->rows, text ? json_loads(text, 0, NULL) : json_null());
        free(r->cursor);
        r->cursor = c ? strdup(c) : NULL;
    }
}

static void s_queue_delete(node_t *node, s_read_t *r)
{
    char *row = node_json_text(json_array_get(r->rows, 0));
    const char *id = json_string_value(json_object_get(json_array_get(r->rows, 0), "id"));
    node_wt_op_t *op = row && id ? node_wt_op_delete(id, r->force, row) : NULL;
    node_req_t *req = r->req;
    r->req = NULL;
    free(row);
    if (!op) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    node_wt_enqueue(node, req, op);
}

static void s_on_wt_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_read_t *r = arg;
    node_t *node = r->node;
    if (status != DB_OK || !r->rows) {
        node_reply_busy(node, &r->req, "database unavailable");
    } else if (r->one && json_array_size(r->rows) == 0) {
        node_reply_error(node, &r->req, 404, "not_found", "worktree not found");
    } else if (r->for_delete) {
        if (!node->closing && s_have_repo(node, &r->req)) {
            s_queue_delete(node, r);
        }
    } else if (node->closing || !node->agents ||
               agent_pool_submit(node->agents->pool, s_status_work, s_status_done, r) < 0) {
        node_reply_busy(node, &r->req, "the node's worker pool is busy");
    } else {
        return; /* r belongs to the pool job now */
    }
    s_read_free(r);
}

static void s_read(node_t *node,
                   node_req_t *req,
                   s_read_t *proto,
                   const char *stmt,
                   int n,
                   const char *const *params)
{
    s_read_t *r = calloc(1, sizeof *r);
    db_batch_t *b = r && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, stmt, NULL, n, params, s_on_wt_rows, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    *r = *proto;
    r->node = node;
    r->req = req;
    snprintf(r->repo, sizeof r->repo, "%s", node->agents ? node->agents->repo : "");
    db_batch_submit(&b, s_on_wt_read, r);
}

/* The checked "id" argument (wt.get's and wt.delete's rows require it) into out. */
static void s_id_arg(const json_t *args, s_uuid_t out)
{
    uint8_t raw[16];
    util_uuid_parse(node_args_str(args, "id"), raw);
    util_uuid_format(raw, out);
}

void node_op_wt_list(node_t *node, node_req_t *req)
{
    long long limit = 0;
    const char *cursor = node_args_str(req->args, "cursor");
    char ts[40] = "", id[37] = "", lim[24];
    node_arg_limit(req->args, &limit);
    if (cursor && node_cursor_decode_conv(cursor, ts, id) < 0) {
        node_reply_bad_cursor(node, &req);
        return;
    }
    s_uuid_t team;
    util_uuid_format(req->team_id, team);
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *params[] = {team, ts[0] ? ts : NULL, id[0] ? id : NULL, lim};
    s_read_t proto = {.limit = limit};
    s_read(node, req, &proto, NODE_Q_WT_LIST, 4, params);
}

void node_op_wt_get(node_t *node, node_req_t *req)
{
    s_uuid_t id, team;
    s_id_arg(req->args, id);
    util_uuid_format(req->team_id, team);
    const char *params[] = {id, team};
    s_read_t proto = {.one = true, .limit = 1};
    s_read(node, req, &proto, NODE_Q_WT_ROW, 2, params);
}

void node_op_wt_delete(node_t *node, node_req_t *req)
{
    s_uuid_t id, team;
    const json_t *force = json_object_get(req->args, "force");
    s_id_arg(req->args, id);
    util_uuid_format(req->team_id, team);
    const char *params[] = {id, team};
    s_read_t proto = {.one = true, .limit = 1, .for_delete = true, .force = json_is_true(force)};
    s_read(node, req, &proto, NODE_Q_WT_ROW, 2, params);
}

/* ---- statements ---------------------------------------------------------------------------- */

/* A row stored without base_ref was created from HEAD (the base was omitted). */
#define WT_JSON(w)                                                                                 \
    "json_build_object('id', " w ".id, 'branch', " w ".branch, 'path', " w                         \
    ".path, 'base_ref', coalesce(" w ".base_ref, 'HEAD'), 'head', " w                              \
    ".head, 'created_at', " NODE_TS(w ".created_at") ")"
#define TS_CURSOR(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 id $2 team $3 branch $4 path $5 base $6 head */
    {NODE_Q_WT_INSERT, 6,
     "INSERT INTO worktrees (id, team_id, branch, path, base_ref, head) VALUES ($1::uuid, "
     "$2::uuid, $3::text, $4::text, $5::text, $6::text) RETURNING " NODE_TS("created_at")},
    {NODE_Q_WT_REMOVE, 2,
     "UPDATE worktrees SET removed_at = now() WHERE id = $1::uuid AND team_id = $2::uuid AND "
     "removed_at IS NULL"},
    {NODE_Q_WT_ROW, 2,
     "SELECT " WT_JSON("w") "::text, NULL FROM worktrees w WHERE w.id = $1::uuid AND w.team_id = "
                            "$2::uuid AND w.removed_at IS NULL"},
    /* $1 team $2 cursor ts $3 cursor id $4 limit */
    {NODE_Q_WT_LIST, 4,
     "SELECT " WT_JSON("w") "::text, " TS_CURSOR(
         "w.created_at") " || '|' || w.id FROM worktrees w WHERE w.team_id = $1::uuid AND "
                         "w.removed_at IS NULL AND ($2::timestamptz IS NULL OR (w.created_at, "
                         "w.id) < ($2::timestamptz, $3::uuid)) ORDER BY w.created_at DESC, w.id "
                         "DESC LIMIT $4::int"},
    /* A team event (no conversation, no seq). $1 team $2 type $3 source $4 action */
    {NODE_Q_WT_EVT, 4,
     "INSERT INTO events AS e (team_id, conversation_id, seq, type, source, action) VALUES "
     "($1::uuid, NULL, NULL, $2::text, $3::jsonb, $4::jsonb) RETURNING e.id, " NODE_EVT_JSON(
         "e") "::text"},
    {NODE_Q_WT_LOCK, 1, "SELECT pg_try_advisory_lock($1::bigint)"},
    {NODE_Q_WT_UNLOCK, 1, "SELECT pg_advisory_unlock($1::bigint)"},
    /* A team's active worktrees, read under the repository lock (its limit, issue 12). */
    {NODE_Q_WT_COUNT, 1,
     "SELECT count(*) FROM worktrees WHERE team_id = $1::uuid AND removed_at IS NULL"},
};

int node_wt_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}
