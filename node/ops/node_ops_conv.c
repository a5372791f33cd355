/*  node_ops_conv — conversation writes, run inside the conversation's actor:
    conv.create, conv.patch (metadata merged with ||; a patch that changes nothing
    writes nothing), conv.delete (archive)
    and conv.cancel. Dispatch checked the args against the op table (the node
    never trusts a peer); here only what the table cannot say: a configured
    strategy, and the worktree's owner (in the write's transaction). Loop
    thread only. */
#define LOG_MODULE "node_ops_conv"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* worktree_id of checked args: absent (0), null (0, *null_p) or a UUID (1). */
static int s_worktree(const json_t *obj, s_uuid_t out, bool *null_p)
{
    const json_t *v = json_object_get(obj, "worktree_id");
    uint8_t raw[16];
    if (null_p) {
        *null_p = v && json_is_null(v);
    }
    if (!json_is_string(v) || util_uuid_parse(json_string_value(v), raw) < 0) {
        return 0;
    }
    util_uuid_format(raw, out);
    return 1;
}

/* What the op table cannot check (dispatch checked the rest against conv.create's
   row, or msg.post's "create"): the strategy must be one this node runs. NULL or
   the bad field. */
const char *node_conv_check_create(const json_t *obj)
{
    const char *strategy = node_args_str(obj, "strategy");
    return strategy && !node_strategy_lookup(strategy) ? "strategy" : NULL;
}

/* Adds the worktree ownership check (fails the write set when not the team's). */
static void s_add_wt_check(node_ws_t *ws, const char *wt)
{
    s_uuid_t team;
    util_uuid_format(ws->actor->team_id, team);
    const char *params[] = {wt, team};
    node_ws_add(ws, NODE_Q_WT_CHECK, NODE_SK_WORKTREE, 2, params);
}

int node_conv_add_create(node_t *node, node_ws_t *ws, const json_t *obj)
{
    node_actor_t *a = ws->actor;
    const char *source = node_args_str(obj, "source"), *type = node_args_str(obj, "type");
    const char *title = node_args_str(obj, "title"), *on_busy = node_args_str(obj, "on_busy");
    const char *strategy = node_args_str(obj, "strategy");
    const json_t *meta = json_object_get(obj, "metadata");
    s_uuid_t conv, team, wt;
    if (!strategy) {
        strategy = node_strategy_default_name();
    }
    bool has_wt = s_worktree(obj, wt, NULL) == 1;
    /* The first message of the new conversation may be written with its whole turn
       (node_turns.h whole_turn) unless its metadata sets echo options, which the actor
       learns at commit. */
    node_turn_strategy_known(node, a, meta && json_object_get(meta, "echo") ? NULL : strategy);
    char *meta_text = meta ? node_json_text(meta) : NULL;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    if (has_wt) {
        s_add_wt_check(ws, wt);
    }
    const char *params[] = {
        conv,    team,      source,        type, title, strategy, has_wt ? wt : NULL,
        on_busy, meta_text, node_ws_ts(ws)};
    node_ws_add(ws, NODE_Q_CONV_INSERT, NODE_SK_CONV, 10, params);
    char src[96];
    node_user_source(a, src);
    node_ws_event(ws, "conversation.created", src, NULL, NULL, true);
    if (meta && !meta_text) {
        ws->oom = true;
    }
    free(meta_text);
    ws->plan.created = true;
    return ws->oom ? -1 : 0;
}

void node_op_conv_create(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state == NODE_ACTOR_READY) {
        node_reply_error(node, &req, 409, "conflict", "conversation already exists");
        return;
    }
    if (node_conv_check_create(req->args)) {
        node_reply_bad_strategy(node, &req);
        return;
    }
    node_ws_t *ws = node_ws_new(a, req);
    if (!ws) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    node_conv_add_create(node, ws, req->args);
    node_ws_touch(ws, -1);
    ws->reply_kind = NODE_REPLY_CONV;
    ws->reply_status = 201;
    node_ws_finish(node, &ws);
}

/* The validated patch as JSON (what conversation.updated records): its changes, and the
   values they replace (previous; what event.revert restores). */
static char *s_changes(const json_t *args, json_t *previous)
{
    static const char *keys[] = {"title", "metadata", "strategy", "worktree_id", "on_busy"};
    json_t *changes = json_object();
    for (size_t i = 0; changes && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(args, keys[i]);
        if (v) {
            json_object_set(changes, keys[i], v);
        }
    }
    json_t *action =
        changes ? json_pack("{s:o, s:O}", "changes", changes, "previous", previous) : NULL;
    char *text = action ? node_json_text(action) : NULL;
    json_decref(action);
    return text;
}

static void s_add_patch(node_ws_t *ws, const json_t *args)
{
    const char *title = node_args_str(args, "title"), *strategy = node_args_str(args, "strategy");
    const char *on_busy = node_args_str(args, "on_busy");
    const json_t *meta = json_object_get(args, "metadata");
    bool wt_null = false;
    s_uuid_t conv, team, wt;
    bool has_wt = s_worktree(args, wt, &wt_null) == 1;
    char *meta_text = meta ? node_json_text(meta) : NULL;
    util_uuid_format(ws->actor->conv_id, conv);
    util_uuid_format(ws->actor->team_id, team);
    if (has_wt) {
        s_add_wt_check(ws, wt);
    }
    const char *params[] = {conv,
                            team,
                            json_object_get(args, "title") ? "true" : "false",
                            title,
                            meta_text,
                            strategy,
                            has_wt || wt_null ? "true" : "false",
                            has_wt ? wt : NULL,
                            on_busy};
    node_ws_add(ws, NODE_Q_CONV_PATCH, NODE_SK_PLAIN, 9, params);
    if (meta && !meta_text) {
        ws->oom = true;
    }
    free(meta_text);
}

/* Writes the patch: the update, conversation.updated with the validated fields, the
   touch; answered with the conversation on commit. Takes req. */
static void s_patch_write(node_t *node, node_actor_t *a, node_req_t *req, json_t *previous)
{
    char *changes = s_changes(req->args, previous);
    node_ws_t *ws = changes ? node_ws_new(a, req) : NULL;
    if (!ws) {
        free(changes);
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    char src[96];
    node_user_source(a, src);
    s_add_patch(ws, req->args);
    node_ws_event_rev(ws, "conversation.updated", src, changes);
    free(changes);
    node_ws_touch(ws, -1);
    ws->reply_kind = NODE_REPLY_CONV;
    ws->reply_status = 200;
    node_ws_finish(node, &ws);
}

/* A patch waiting for the row it is compared with. */
typedef struct {
    node_t *node;        /* borrowed */
    node_actor_t *actor; /* pinned (NODE_AF_IDEM) while the read runs */
    node_req_t *req;     /* the patch */
    node_buf_t row;      /* the conversation's JSON as stored */
    json_t *previous;    /* the stored values the patch replaces */
    bool found;          /* the row was read */
    bool same;           /* every given field already has the given value */
} s_patch_t;

/* True when key is absent from args, or gives the stored value (NULL: SQL NULL). null
   for strategy / on_busy means "unchanged" (the update coalesces). */
static bool s_same_str(const json_t *args, const char *key, const char *stored, bool nullable)
{
    const json_t *v = json_object_get(args, key);
    if (!v || (json_is_null(v) && !nullable)) {
        return true;
    }
    if (json_is_null(v)) {
        return !stored;
    }
    return stored && strcmp(json_string_value(v), stored) == 0;
}

/* True when every key of the metadata patch already has that value (|| merges keys). */
static bool s_same_meta(const json_t *args, const char *stored_text)
{
    const json_t *patch = NULL;
    if (node_arg_object(args, "metadata", &patch) != 1) {
        return true;
    }
    json_t *stored = stored_text ? json_loads(stored_text, 0, NULL) : NULL;
    bool same = true;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        same = same && json_equal(v, json_object_get(stored, key));
    }
    json_decref(stored);
    return same;
}

/* The stored values of the fields args changes (metadata: the patched keys that exist);
   null for SQL NULL. Columns as in s_on_patch_row. */
static json_t *s_previous(const json_t *args, const db_result_t *res)
{
    static const struct {
        const char *key;
        int col;
        bool null_unchanged; /* a null in the patch leaves the field as it is */
    } fields[] = {{"title", 3, false},
                  {"strategy", 4, true},
                  {"worktree_id", 5, false},
                  {"on_busy", 7, true}};
    json_t *prev = json_object();
    for (size_t i = 0; prev && i < sizeof fields / sizeof fields[0]; i++) {
        const json_t *v = json_object_get(args, fields[i].key);
        if (v && !(json_is_null(v) && fields[i].null_unchanged)) {
            const char *stored = db_result_value(res, 0, fields[i].col);
            json_object_set_new(prev, fields[i].key, stored ? json_string(stored) : json_null());
        }
    }
    const json_t *patch = json_object_get(args, "metadata");
    if (prev && json_is_object(patch)) {
        const char *text = db_result_value(res, 0, 8);
        json_t *stored = text ? json_loads(text, 0, NULL) : NULL;
        json_t *old = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)patch, k, v)
        {
            json_t *was = json_object_get(stored, k);
            if (was && old) {
                json_object_set(old, k, was);
            }
        }
        json_object_set_new(prev, "metadata", old ? old : json_object());
        json_decref(stored);
    }
    return prev;
}

static void s_on_patch_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_patch_t *p = arg;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    const json_t *args = p->req->args;
    bool wt_null = false;
    s_uuid_t wt;
    int has_wt = s_worktree(args, wt, &wt_null);
    /* Columns: NODE_CONV_COLS (title 3, strategy 4, worktree_id 5, on_busy 7, metadata 8). */
    const char *stored_wt = db_result_value(res, 0, 5);
    p->found = true;
    p->same = s_same_str(args, "title", db_result_value(res, 0, 3), true) &&
              s_same_str(args, "strategy", db_result_value(res, 0, 4), false) &&
              s_same_str(args, "on_busy", db_result_value(res, 0, 7), false) &&
              s_same_meta(args, db_result_value(res, 0, 8)) &&
              (has_wt == 1 ? stored_wt && strcmp(stored_wt, wt) == 0 : !wt_null || !stored_wt);
    node_render_conv_row(&p->row, res, 0, 0);
    p->previous = s_previous(args, res);
}

static void s_on_patch_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_patch_t *p = arg;
    node_t *node = p->node;
    node_actor_t *a = p->actor;
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    if (status != DB_OK || p->row.oom || (p->found && !p->previous)) {
        node_reply_busy(node, &p->req, "database unavailable");
    } else if (!p->found) {
        node_reply_error(node, &p->req, 404, "not_found", "conversation not found");
    } else if (p->same) {
        /* Nothing to change: no write, no event, updated_at kept. */
        node_reply(node, &p->req, 200, p->row.data, 0);
    } else if (node->stopping || (a->flags & NODE_AF_DOOMED)) {
        node_reply_busy(node, &p->req, "conversation moved");
    } else {
        s_patch_write(node, a, p->req, p->previous);
        p->req = NULL;
    }
    json_decref(p->previous);
    node_buf_free(&p->row);
    node_req_destroy(&p->req);
    free(p);
    node_actor_pump(node, a);
}

void node_op_conv_patch(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "conversation not found");
        return;
    }
    if (node_conv_check_create(req->args)) {
        node_reply_bad_strategy(node, &req);
        return;
    }
    /* The row is read first, with the actor pinned (no other write of the conversation
       meanwhile): a patch that changes nothing (`{}`, or the stored values) is answered
       with the conversation as it is, and writes nothing. */
    s_uuid_t conv, team;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {conv, team};
    s_patch_t *p = calloc(1, sizeof *p);
    db_batch_t *b = p && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_CONV_GET, NULL, 2, params, s_on_patch_row, p) < 0) {
        db_batch_destroy(&b);
        free(p);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    p->node = node;
    p->actor = a;
    p->req = req;
    node_buf_init(&p->row);
    a->flags |= NODE_AF_IDEM;
    db_batch_submit(&b, s_on_patch_read, p);
}

void node_op_conv_delete(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "conversation not found");
        return;
    }
    if (a->status == NODE_ST_ARCHIVED) {
        node_reply(node, &req, 204, "", 0);
        return;
    }
    node_ws_t *ws = node_ws_new(a, req);
    if (!ws) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    if (node_turn_running(a)) {
        node_turn_add_end(node, ws, NODE_END_CANCELLED);
    }
    s_uuid_t conv, team;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {conv, team};
    node_ws_add(ws, NODE_Q_MSG_CANCEL, NODE_SK_PLAIN, 2, params);
    char src[96];
    node_user_source(a, src);
    node_ws_event_rev(ws, "conversation.archived", src, NULL);
    ws->plan.clear_queue = true;
    node_ws_touch(ws, NODE_ST_ARCHIVED);
    ws->reply_kind = NODE_REPLY_EMPTY;
    ws->reply_status = 204;
    node_ws_finish(node, &ws);
}

void node_op_conv_cancel(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "conversation not found");
        return;
    }
    if (!node_turn_running(a)) {
        node_reply_error(node, &req, 409, "conflict", "no turn is running");
        return;
    }
    node_ws_t *ws = node_ws_new(a, req);
    if (!ws) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    node_turn_add_end(node, ws, NODE_END_CANCELLED);
    node_turn_plan_next(node, ws, false);
    node_ws_touch(ws, node_turn_status_after(a, &ws->plan));
    ws->reply_kind = NODE_REPLY_EMPTY;
    ws->reply_status = 202;
    node_ws_finish(node, &ws);
}
