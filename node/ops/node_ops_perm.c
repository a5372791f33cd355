/*  node_ops_perm — the permission API on the node. Team-wide (any node):
    perm.list, perm.get (also the gateway's first hop of a decision: the
    request id alone does not name the conversation, perm.get does),
    rule.list (rule.create and rule.delete are in node_ops_rules.c) and
    strategies. Bound to the conversation (its owner's actor): perm.decide,
    which reads the request while the actor is pinned and then answers 404,
    repeats an identical decision's first answer, refuses another one (409),
    or stores the decision (node_perm.c). Every statement is scoped by
    team_id. Loop thread only. */
#define LOG_MODULE "node_ops_perm"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

#define TS_CURSOR(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

#define Q_RULE_LIST "node_rule_list"

/* ---- a one-statement read ---------------------------------------------------------------- */

typedef struct {
    node_t *node;     /* borrowed */
    node_req_t *req;  /* answered at the end */
    bool list;        /* rows are a page */
    long long limit;  /* page size */
    node_buf_t body;  /* JSON rows, comma-separated */
    int count;        /* rows kept */
    bool more;        /* rows beyond the page */
    char *cursor;     /* last row's cursor material */
    long affected;    /* rows changed (deletes) */
    int ok_status;    /* status when a row came back (or one was changed) */
    const char *what; /* "permission request", "rule", … for 404 */
} s_read_t;

static void s_on_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    if (status != DB_OK) {
        return;
    }
    r->affected = db_result_affected(res);
    for (int i = 0; i < db_result_rows(res); i++) {
        const char *json = db_result_value(res, i, 0);
        if (r->list && (i >= r->limit || r->body.len > NODE_MAX_REPLY)) {
            r->more = true;
            return;
        }
        node_buf_str(&r->body, r->count ? "," : "");
        node_buf_json(&r->body, json); /* built by Postgres: compacted */
        r->count++;
        if (r->list) {
            free(r->cursor);
            const char *c = db_result_value(res, i, 1);
            r->cursor = c ? strdup(c) : NULL;
        }
    }
}

static void s_reply(s_read_t *r)
{
    if (!r->list) {
        if (r->count || (r->ok_status == 204 && r->affected > 0)) {
            node_reply(r->node, &r->req, r->ok_status, r->ok_status == 204 ? "" : r->body.data, 0);
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "%s not found", r->what);
            node_reply_error(r->node, &r->req, 404, "not_found", msg);
        }
        return;
    }
    node_reply_list(r->node, &r->req, &r->body, r->more ? r->cursor : NULL);
}

static void s_on_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_read_t *r = arg;
    if (status != DB_OK) {
        LOG_I("op failed op=%s error=\"%s\"", r->req->op->spec->name, error ? error : "");
        node_reply_busy(r->node, &r->req, "database unavailable");
    } else if (r->body.oom) {
        node_reply_busy(r->node, &r->req, "out of memory");
    } else {
        s_reply(r);
    }
    node_buf_free(&r->body);
    free(r->cursor);
    node_req_destroy(&r->req);
    free(r);
}

/* Runs stmt and answers with its rows (list) or its first row / affected count. */
static void s_run(node_t *node,
                  node_req_t *req,
                  s_read_t proto,
                  const char *stmt,
                  int n,
                  const char *const *params)
{
    s_read_t *r = calloc(1, sizeof *r);
    db_batch_t *b = r && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, stmt, NULL, n, params, s_on_rows, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    *r = proto;
    r->node = node;
    r->req = req;
    node_buf_init(&r->body);
    db_batch_submit(&b, s_on_done, r);
}

/* A checked UUID argument into out (text); 0 absent or null, 1 present. */
static int s_uuid_arg(const json_t *args, const char *key, s_uuid_t out)
{
    const char *s = node_args_str(args, key);
    uint8_t raw[16];
    if (!s || util_uuid_parse(s, raw) < 0) {
        return 0;
    }
    util_uuid_format(raw, out);
    return 1;
}

/* Paging arguments: limit and the (created_at, id) cursor. 0, or -1 after a 400. */
static int s_page(node_t *node, node_req_t **req_p, long long *limit, char ts[40], char id[37])
{
    const char *cursor = node_args_str((*req_p)->args, "cursor");
    node_arg_limit((*req_p)->args, limit);
    if (cursor && node_cursor_decode_conv(cursor, ts, id) < 0) {
        node_reply_bad_cursor(node, req_p);
        return -1;
    }
    return 0;
}

/* ---- permissions ------------------------------------------------------------------------- */

void node_op_perm_list(node_t *node, node_req_t *req)
{
    const char *status = node_args_str(req->args, "status");
    s_uuid_t conv, team;
    char ts[40] = "", id[37] = "", lim[24];
    long long limit = 0;
    int has_conv = s_uuid_arg(req->args, "conversation_id", conv);
    if (s_page(node, &req, &limit, ts, id) < 0) {
        return;
    }
    util_uuid_format(req->team_id, team);
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *params[] = {
        team, status, has_conv ? conv : NULL, ts[0] ? ts : NULL, id[0] ? id : NULL, lim};
    s_read_t proto = {.list = true, .limit = limit, .what = "permission request"};
    s_run(node, req, proto, NODE_Q_PERM_LIST, 6, params);
}

void node_op_perm_get(node_t *node, node_req_t *req)
{
    s_uuid_t id, team;
    s_uuid_arg(req->args, "id", id);
    util_uuid_format(req->team_id, team);
    const char *params[] = {id, team};
    s_read_t proto = {.ok_status = 200, .what = "permission request"};
    s_run(node, req, proto, NODE_Q_PERM_GET, 2, params);
}

/* ---- perm.decide ------------------------------------------------------------------------- */

typedef struct {
    node_t *node;        /* borrowed */
    node_actor_t *actor; /* pinned (NODE_AF_IDEM) while the read runs */
    node_req_t *req;     /* the decision */
    bool found;          /* the request exists for this team and conversation */
    char *json;          /* its JSON */
    char *status;        /* its status */
    char *reason;        /* its reason */
    char *updated;       /* its updated_input (JSON text) */
    char *tool;          /* its tool name */
} s_dec_t;

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_on_dec_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_dec_t *d = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        d->found = true;
        d->json = s_dup(db_result_value(res, 0, 0));
        d->status = s_dup(db_result_value(res, 0, 1));
        d->reason = s_dup(db_result_value(res, 0, 2));
        d->updated = s_dup(db_result_value(res, 0, 3));
        d->tool = s_dup(db_result_value(res, 0, 4));
    }
}

/* The decision asked for (arguments checked against perm.decide's row in dispatch). */
static void s_decision(const json_t *args, node_decision_t *out)
{
    memset(out, 0, sizeof *out);
    util_uuid_parse(node_args_str(args, "id"), out->perm_id);
    out->approve = strcmp(node_args_str(args, "decision"), "approve") == 0;
    out->remember = node_args_str(args, "remember");
    out->reason = node_args_str(args, "reason");
    node_arg_object(args, "updated_input", &out->updated_input);
}

/* True when the stored decision is the one asked for again. */
static bool s_identical(const s_dec_t *d, const node_decision_t *want)
{
    if (want->approve) {
        if (strcmp(d->status, "approved") != 0) {
            return false;
        }
        json_t *stored = d->updated ? json_loads(d->updated, 0, NULL) : NULL;
        bool same = (!stored && !want->updated_input) ||
                    (stored && want->updated_input && json_equal(stored, want->updated_input));
        json_decref(stored);
        return same;
    }
    const char *reason = want->reason ? want->reason : "denied by the user";
    return strcmp(d->status, "denied") == 0 && d->reason && strcmp(d->reason, reason) == 0;
}

static void s_dec_free(s_dec_t *d)
{
    free(d->json);
    free(d->status);
    free(d->reason);
    free(d->updated);
    free(d->tool);
    free(d);
}

static void s_on_dec(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_dec_t *d = arg;
    node_t *node = d->node;
    node_actor_t *a = d->actor;
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    node_decision_t want;
    s_decision(d->req->args, &want);
    want.tool_name = d->tool;
    if (status != DB_OK) {
        node_reply_busy(node, &d->req, "database unavailable");
    } else if (!d->found || !d->json || !d->status) {
        node_reply_error(node, &d->req, 404, "not_found", "permission request not found");
    } else if (strcmp(d->status, "pending") != 0) {
        if (s_identical(d, &want)) {
            node_reply_pg(node, &d->req, 200, d->json);
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "permission request already decided (%s)", d->status);
            node_reply_error(node, &d->req, 409, "conflict", msg);
        }
    } else if (node->stopping || (a->flags & NODE_AF_DOOMED)) {
        node_reply_busy(node, &d->req, "conversation moved");
    } else {
        node_req_t *req = d->req;
        d->req = NULL;
        node_perm_decide_write(node, a, req, &want);
    }
    s_dec_free(d);
    node_actor_pump(node, a);
}

void node_op_perm_decide(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "permission request not found");
        return;
    }
    s_uuid_t conv, team, id;
    s_uuid_arg(req->args, "id", id);
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {id, team, conv};
    s_dec_t *d = calloc(1, sizeof *d);
    db_batch_t *b = d && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_PERM_ROW, NULL, 3, params, s_on_dec_row, d) < 0) {
        db_batch_destroy(&b);
        free(d);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    d->node = node;
    d->actor = a;
    d->req = req;
    /* Pinned: decisions of this conversation are taken one at a time, in order. */
    a->flags |= NODE_AF_IDEM;
    db_batch_submit(&b, s_on_dec, d);
}

/* ---- rules ------------------------------------------------------------------------------- */

void node_op_rule_list(node_t *node, node_req_t *req)
{
    s_uuid_t conv, team;
    char ts[40] = "", id[37] = "", lim[24];
    long long limit = 0;
    int has_conv = s_uuid_arg(req->args, "conversation_id", conv);
    if (s_page(node, &req, &limit, ts, id) < 0) {
        return;
    }
    util_uuid_format(req->team_id, team);
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *params[] = {team, has_conv ? conv : NULL, ts[0] ? ts : NULL, id[0] ? id : NULL,
                            lim};
    s_read_t proto = {.list = true, .limit = limit, .what = "rule"};
    s_run(node, req, proto, Q_RULE_LIST, 5, params);
}

/* ---- strategies -------------------------------------------------------------------------- */

void node_op_strategies(node_t *node, node_req_t *req)
{
    const cfg_file_t *cfg = node->agents ? node->agents->cfg : NULL;
    json_t *data = json_array();
    for (size_t i = 0; i < cfg_file_count(cfg); i++) {
        const cfg_strategy_t *s = cfg_file_at(cfg, i);
        json_array_append_new(data, json_pack("{s:s, s:s, s:s?, s:b}", "name", s->name, "kind",
                                              cfg_strategy_kind_name(s->kind), "model", s->model,
                                              "default", s == cfg_file_default_strategy(cfg)));
    }
    json_t *out = json_pack("{s:o, s:n}", "data", data, "next_cursor");
    char *text = out ? node_json_text(out) : NULL;
    json_decref(out);
    if (!text) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    node_reply(node, &req, 200, text, 0);
    free(text);
}

/* ---- statements -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 team $2 conv $3 cursor ts $4 cursor id $5 limit */
    {Q_RULE_LIST, 5,
     "SELECT " NODE_RULE_JSON("r") "::text, " TS_CURSOR(
         "r.created_at") " || '|' || r.id FROM permission_rules r WHERE r.team_id = $1::uuid AND "
                         "($2::uuid IS NULL OR r.conversation_id = $2::uuid) AND ($3::timestamptz "
                         "IS NULL OR (r.created_at, r.id) < ($3::timestamptz, $4::uuid)) ORDER BY "
                         "r.created_at DESC, r.id DESC LIMIT $5::int"},
};

int node_ops_perm_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}
