/*  node_ops_read — the plain reads (one non-transactional db batch each):
    auth, status, conv.get, conv.list (keyset on (created_at, id), newest
    first), msg.list (oldest first, after_seq) and events.list (one
    conversation or the whole team, oldest first, after an event id). Rows
    arrive as plain columns (NODE_*_COLS), are rendered to API.md JSON here
    (node_render.c) and concatenated into {"data": [...], "next_cursor": ...}.
    Every query is scoped by team_id. Loop thread only. */
#define LOG_MODULE "node_ops_read"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef enum { READ_ONE, READ_LIST_CONV, READ_LIST_NUM, READ_AUTH, READ_STATUS } s_shape_t;

typedef void(s_render_fn)(node_buf_t *b, const db_result_t *res, int row, int col);

/* One read in flight. */
typedef struct {
    node_t *node;        /* borrowed */
    node_req_t *req;     /* answered when the batch completes */
    s_shape_t shape;     /* how rows become the reply */
    s_render_fn *render; /* row → JSON (NULL: column 0 is JSON text already) */
    int cursor_col;      /* READ_LIST_NUM: the column that is the next cursor */
    bool check_conv;     /* the first statement checks the conversation exists */
    bool conv_found;     /* it does */
    long long limit;     /* page size */
    node_buf_t body;     /* reply body being built */
    int count;           /* rows in body */
    bool more;           /* rows beyond the page (or the size cap) exist */
    bool bad_row;        /* a row could not be rendered (unparsable timestamp) */
    char *cursor;        /* next_cursor text before encoding (owned), NULL none */
    const char *what;    /* READ_ONE: what a 404 names (NULL: the conversation) */
    long long worktrees; /* READ_STATUS: the team's active worktrees */
} s_read_t;

static void s_read_free(s_read_t *r)
{
    node_buf_free(&r->body);
    free(r->cursor);
    node_req_destroy(&r->req);
    free(r);
}

static void s_on_exists(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    r->conv_found = status == DB_OK && db_result_rows(res) > 0;
}

static void s_render_row(s_read_t *r, const db_result_t *res, int i)
{
    if (r->render) {
        r->render(&r->body, res, i, 0);
    } else {
        /* JSON text built by Postgres (status: json_object_agg's "{ "k" : n }"). */
        node_buf_json(&r->body, db_result_value(res, i, 0));
    }
}

/* The next_cursor text of row i: "created_at|id" (conversations) or a number. */
static void s_set_cursor(s_read_t *r, const db_result_t *res, int i)
{
    free(r->cursor);
    r->cursor = NULL;
    if (r->shape == READ_LIST_NUM) {
        const char *c = db_result_value(res, i, r->cursor_col);
        r->cursor = c ? strdup(c) : NULL;
        r->body.oom |= c && !r->cursor;
        return;
    }
    char ts[40];
    const char *id = db_result_value(res, i, 0);
    if (!id || node_ts_cursor(db_result_value(res, i, NODE_CONV_COL_CREATED_AT), ts) < 0) {
        r->bad_row = true;
        return;
    }
    size_t n = strlen(ts) + strlen(id) + 2;
    r->cursor = malloc(n);
    if (!r->cursor) {
        r->body.oom = true;
        return;
    }
    snprintf(r->cursor, n, "%s|%s", ts, id);
}

/* Rows: plain columns rendered by r->render (or col 0 = JSON text: status). */
static void s_on_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    if (status != DB_OK) {
        return;
    }
    int rows = db_result_rows(res);
    if (rows > 0 && (r->shape == READ_ONE || r->shape == READ_STATUS)) {
        s_render_row(r, res, 0);
        r->count++;
        return;
    }
    int i = 0;
    for (; i < rows; i++) {
        if (i >= r->limit || r->body.len > NODE_MAX_REPLY) {
            r->more = true;
            break;
        }
        node_buf_str(&r->body, r->count ? "," : "");
        s_render_row(r, res, i);
        r->count++;
    }
    if (r->more) {
        s_set_cursor(r, res, i - 1); /* the last row of the page */
    }
}

static void s_on_status(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    s_on_rows(arg, status, res);
    if (status == DB_OK && db_result_rows(res) > 0) {
        r->worktrees = node_parse_ll(db_result_value(res, 0, 1), 0, 0, 1000000000000LL);
    }
}

static void s_on_auth(void *arg, db_status_t status, const db_result_t *res)
{
    s_read_t *r = arg;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    const char *lim = db_result_value(res, 0, 2);
    const char *admin = db_result_value(res, 0, 3);
    json_t *j = json_pack("{s:s, s:s, s:o, s:b}", "team_id", db_result_value(res, 0, 0), "team",
                          db_result_value(res, 0, 1) ? db_result_value(res, 0, 1) : "", "limits",
                          lim ? json_loads(lim, 0, NULL) : json_object(), "admin",
                          admin && !strcmp(admin, "t"));
    char *text = j ? node_json_text(j) : NULL;
    if (text) {
        node_buf_str(&r->body, text);
        r->count = 1;
    }
    free(text);
    json_decref(j);
}

static void s_reply_list(s_read_t *r)
{
    node_reply_list(r->node, &r->req, &r->body, r->more ? r->cursor : NULL);
}

static void s_reply_status(s_read_t *r)
{
    /* The team's usage of its limits: actors and turns on this node, worktrees. */
    char head[64], usage[160];
    snprintf(head, sizeof head,
             "{\"actors\":%zu,\"team_usage\":{\"node\":", node_actors_count(r->node->actors));
    snprintf(usage, sizeof usage,
             ",\"actors\":%u,\"turns\":%u,\"worktrees\":%lld},\"conversations_by_status\":",
             node_actors_team_actors(r->node->actors, r->req->team_id),
             node_actors_team_turns(r->node->actors, r->req->team_id), r->worktrees);
    node_buf_t out;
    node_buf_init(&out);
    node_buf_str(&out, head);
    node_buf_json_str(&out, r->node->cfg->id);
    node_buf_str(&out, usage);
    node_buf_str(&out, r->body.data ? r->body.data : "{}");
    node_buf_str(&out, "}");
    node_reply(r->node, &r->req, out.oom ? 503 : 200, out.oom ? "{}" : out.data, 0);
    node_buf_free(&out);
}

static void s_on_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_read_t *r = arg;
    if (status != DB_OK) {
        LOG_I("read failed op=%s status=%d error=\"%s\"", r->req->op->spec->name, (int)status,
              error ? error : "");
        node_reply_busy(r->node, &r->req, "database unavailable");
    } else if (r->body.oom) {
        node_reply_busy(r->node, &r->req, "out of memory");
    } else if (r->bad_row) {
        LOG_W("read failed op=%s error=\"unparsable created_at (DateStyle not ISO?)\"",
              r->req->op->spec->name);
        node_reply_busy(r->node, &r->req, "database unavailable");
    } else if (r->check_conv && !r->conv_found) {
        node_reply_error(r->node, &r->req, 404, "not_found", "conversation not found");
    } else if (r->shape == READ_AUTH && !r->count) {
        node_reply_error(r->node, &r->req, 401, "unauthorized", "invalid or revoked token");
    } else if (r->shape == READ_ONE && !r->count) {
        node_reply_error(r->node, &r->req, 404, "not_found",
                         r->what ? r->what : "conversation not found");
    } else if (r->shape == READ_ONE || r->shape == READ_AUTH) {
        node_reply(r->node, &r->req, 200, r->body.data, 0);
    } else if (r->shape == READ_STATUS) {
        s_reply_status(r);
    } else {
        s_reply_list(r);
    }
    s_read_free(r);
}

/* ---- running a read ---------------------------------------------------------------------- */

static s_read_t *s_read_new(node_t *node, node_req_t *req, s_shape_t shape)
{
    s_read_t *r = calloc(1, sizeof *r);
    if (!r) {
        node_reply_busy(node, &req, "out of memory");
        return NULL;
    }
    r->node = node;
    r->req = req;
    r->shape = shape;
    node_buf_init(&r->body);
    return r;
}

/* Sends the read: an optional existence check, then stmt with params. */
static void
s_submit(s_read_t *r, const char *stmt, int n, const char *const *params, db_stmt_fn *cb)
{
    node_t *node = r->node;
    db_batch_t *b = node->closing ? NULL : db_batch_new(node->db, false);
    bool ok = b != NULL;
    if (ok && r->check_conv) {
        s_uuid_t conv, team;
        util_uuid_format(r->req->conv_id, conv);
        util_uuid_format(r->req->team_id, team);
        const char *p[] = {conv, team};
        ok = db_batch_add(b, NODE_Q_CONV_EXISTS, NULL, 2, p, s_on_exists, r) == 0;
    }
    if (!ok || db_batch_add(b, stmt, NULL, n, params, cb, r) < 0) {
        db_batch_destroy(&b);
        node_reply_busy(node, &r->req, "database unavailable");
        s_read_free(r);
        return;
    }
    db_batch_submit(&b, s_on_done, r);
}

void node_op_auth(node_t *node, node_req_t *req)
{
    /* Dispatch checked the length (auth's row); the hash is lowercase hex or no token's. */
    const char *hash = node_args_str(req->args, "token_sha256");
    bool hex = hash != NULL;
    for (int i = 0; hex && i < 64; i++) {
        hex = (hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f');
    }
    if (!hex) {
        node_reply_error(node, &req, 401, "unauthorized", "invalid or revoked token");
        return;
    }
    s_read_t *r = s_read_new(node, req, READ_AUTH);
    if (r) {
        const char *params[] = {hash};
        s_submit(r, NODE_Q_AUTH, 1, params, s_on_auth);
    }
}

void node_op_status(node_t *node, node_req_t *req)
{
    s_read_t *r = s_read_new(node, req, READ_STATUS);
    if (r) {
        s_uuid_t team;
        util_uuid_format(req->team_id, team);
        const char *params[] = {team};
        s_submit(r, NODE_Q_STATUS, 1, params, s_on_status);
    }
}

void node_op_conv_get(node_t *node, node_req_t *req)
{
    node_actor_warm(node, req->team_id, req->conv_id, req->lim_actors);
    s_read_t *r = s_read_new(node, req, READ_ONE);
    if (r) {
        r->render = node_render_conv_row;
        s_uuid_t conv, team;
        util_uuid_format(req->conv_id, conv);
        util_uuid_format(req->team_id, team);
        const char *params[] = {conv, team};
        s_submit(r, NODE_Q_CONV_GET, 2, params, s_on_rows);
    }
}

void node_op_event_get(node_t *node, node_req_t *req)
{
    s_read_t *r = s_read_new(node, req, READ_ONE);
    if (r) {
        r->render = node_render_evt_row;
        r->what = "event not found";
        char ev[24];
        s_uuid_t team;
        snprintf(ev, sizeof ev, "%lld",
                 (long long)json_integer_value(json_object_get(req->args, "id")));
        util_uuid_format(req->team_id, team);
        const char *params[] = {ev, team};
        s_submit(r, NODE_Q_EVT_GET, 2, params, s_on_rows);
    }
}

void node_op_conv_list(node_t *node, node_req_t *req)
{
    /* Filters and limit were checked against conv.list's row; the cursor must decode. */
    const char *f[3] = {node_args_str(req->args, "source"), node_args_str(req->args, "type"),
                        node_args_str(req->args, "status")};
    const char *cursor = node_args_str(req->args, "cursor");
    char ts[40] = "", id[37] = "";
    long long limit = 0;
    node_arg_limit(req->args, &limit);
    if (cursor && node_cursor_decode_conv(cursor, ts, id) < 0) {
        node_reply_bad_cursor(node, &req);
        return;
    }
    s_read_t *r = s_read_new(node, req, READ_LIST_CONV);
    if (!r) {
        return;
    }
    r->limit = limit;
    r->render = node_render_conv_row;
    s_uuid_t team;
    char lim[24];
    util_uuid_format(req->team_id, team);
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    if (id[0]) {
        const char *params[] = {team, ts, id, f[0], f[1], f[2], lim};
        s_submit(r, NODE_Q_CONV_LIST_AFTER, 7, params, s_on_rows);
    } else {
        const char *params[] = {team, f[0], f[1], f[2], lim};
        s_submit(r, NODE_Q_CONV_LIST, 5, params, s_on_rows);
    }
}

/* "after" (or after_seq) as a number, or the cursor; -1 when the cursor does not decode
   (the number was checked against the op's row). */
static int s_after(const json_t *args, const char *key, long long *after)
{
    const char *cursor = node_args_str(args, "cursor");
    *after = 0;
    node_arg_int(args, key, 0, INT64_MAX, after);
    return cursor && node_cursor_decode_num(cursor, after) < 0 ? -1 : 0;
}

/* msg.list and events.list share this: stmt(conv?, team, after, limit+1). */
static void
s_list_num(node_t *node, node_req_t *req, const char *key, const char *stmt, bool by_conv)
{
    bool msgs = strcmp(stmt, NODE_Q_MSG_LIST) == 0;
    long long after = 0, limit = 0;
    if (s_after(req->args, key, &after) < 0) {
        node_reply_bad_cursor(node, &req);
        return;
    }
    node_arg_limit(req->args, &limit);
    s_read_t *r = s_read_new(node, req, READ_LIST_NUM);
    if (!r) {
        return;
    }
    r->limit = limit;
    r->check_conv = by_conv;
    r->render = msgs ? node_render_msg_row : node_render_evt_row;
    r->cursor_col = msgs ? NODE_MSG_COL_SEQ : NODE_EVT_COL_ID;
    if (by_conv) {
        node_actor_warm(node, req->team_id, req->conv_id, req->lim_actors);
    }
    s_uuid_t conv, team;
    char a[24], lim[24];
    util_uuid_format(req->conv_id, conv);
    util_uuid_format(req->team_id, team);
    snprintf(a, sizeof a, "%lld", after);
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *types = msgs ? NULL : node_args_str(req->args, "types");
    const char *with_conv[] = {conv, team, a, lim, types};
    const char *team_only[] = {team, a, lim, types};
    s_submit(r, stmt, (by_conv ? 4 : 3) + (msgs ? 0 : 1), by_conv ? with_conv : team_only,
             s_on_rows);
}

bool node_event_types_ok(const char *types)
{
    size_t len = 0;
    for (const char *p = types;; p++) {
        if (*p == ',' || *p == '\0') {
            if (len == 0 || len > 64) {
                return false;
            }
            if (*p == '\0') {
                return true;
            }
            len = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-') {
            len++;
        } else {
            return false;
        }
    }
}

void node_op_msg_list(node_t *node, node_req_t *req)
{
    s_list_num(node, req, "after_seq", NODE_Q_MSG_LIST, true);
}

void node_op_events_list(node_t *node, node_req_t *req)
{
    const char *types = node_args_str(req->args, "types");
    if (types && !node_event_types_ok(types)) {
        node_reply_error_field(node, &req, "types",
                               "types must be a comma-separated list of event types");
        return;
    }
    if (req->has_conv) {
        s_list_num(node, req, "after", NODE_Q_EVT_LIST, true);
    } else {
        s_list_num(node, req, "after", NODE_Q_EVT_TEAM, false);
    }
}
