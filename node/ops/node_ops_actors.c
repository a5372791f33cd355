/*  node_ops_actors — actor.list, actor.attach, actor.detach: the actors of a
    conversation (issue 15). Every conversation has its responder (its strategy);
    observers are rows of actor_attachments, written by the conversation's actor
    in the same commit as their actor.attached / actor.detached event, so they
    are ordered with its other writes and reloaded wherever it is activated next.
    Each op reads the conversation's row and its attachments first, with the
    actor pinned (nothing else writes the conversation meanwhile), then answers
    or writes. Loop thread only. */
#define LOG_MODULE "node_actors"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

#define Q_ACT_READ   "node_act_read"
#define Q_ACT_INSERT "node_act_insert"
#define Q_ACT_DELETE "node_act_delete"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 conv $2 team: the responder's strategy and the observers (JSON array, oldest
       first; NULL when none). */
    {Q_ACT_READ, 2,
     "SELECT c.strategy, (SELECT json_agg(json_build_object('name', a.name, 'kind', "
     "'observer', 'strategy', a.strategy, 'trigger', a.trigger, 'config', a.config, "
     "'created_at', " NODE_TS(
         "a.created_at") ") ORDER BY a.created_at, a.name) FROM "
                         "actor_attachments a WHERE a.conversation_id = c.id AND a.team_id = "
                         "c.team_id)::text "
                         "FROM conversations c WHERE c.id = $1::uuid AND c.team_id = $2::uuid"},
    /* $1 conv $2 team $3 name $4 strategy $5 trigger $6 config $7 time. */
    {Q_ACT_INSERT, 7,
     "INSERT INTO actor_attachments (conversation_id, team_id, name, strategy, trigger, "
     "config, created_at) VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::jsonb, "
     "$6::jsonb, $7::timestamptz)"},
    /* $1 conv $2 team $3 name. */
    {Q_ACT_DELETE, 3,
     "DELETE FROM actor_attachments WHERE conversation_id = $1::uuid AND team_id = $2::uuid "
     "AND name = $3::text"},
};

int node_ops_actors_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}

bool node_actor_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > NODE_OBSERVER_NAME_MAX || name[0] < 'a' || name[0] > 'z' ||
        strcmp(name, "responder") == 0) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- the read ---------------------------------------------------------------------------- */

typedef void(s_then_fn)(node_t *node, node_actor_t *a, node_req_t **req_p, json_t *actors);

typedef struct {
    node_t *node;        /* borrowed */
    node_actor_t *actor; /* pinned (NODE_AF_IDEM) while the read runs */
    node_req_t *req;     /* the op */
    s_then_fn *then;     /* what the op does with the actors */
    json_t *actors;      /* [responder, observers…] once read */
    bool found;          /* the conversation is the team's */
    bool failed;         /* the read failed */
} s_act_t;

static void s_on_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_act_t *r = arg;
    if (status != DB_OK) {
        r->failed = true;
        return;
    }
    if (db_result_rows(res) < 1) {
        return;
    }
    r->found = true;
    const char *strategy = db_result_value(res, 0, 0), *agg = db_result_value(res, 0, 1);
    json_t *observers = agg ? json_loads(agg, 0, NULL) : json_array();
    r->actors = json_pack("[{s:s, s:s, s:s?}]", "name", "responder", "kind", "responder",
                          "strategy", strategy);
    if (!r->actors || !json_is_array(observers) || json_array_extend(r->actors, observers) < 0) {
        r->failed = true;
    }
    json_decref(observers);
}

static void s_on_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    (void)error;
    (void)sqlstate;
    s_act_t *r = arg;
    node_t *node = r->node;
    node_actor_t *a = r->actor;
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    if (status != DB_OK || r->failed) {
        node_reply_busy(node, &r->req, "database unavailable");
    } else if (!r->found) {
        node_reply_error(node, &r->req, 404, "not_found", "conversation not found");
    } else if (node->stopping || (a->flags & NODE_AF_DOOMED)) {
        node_reply_busy(node, &r->req, "conversation moved");
    } else {
        r->then(node, a, &r->req, r->actors);
    }
    node_req_destroy(&r->req);
    json_decref(r->actors);
    free(r);
    node_actor_pump(node, a);
}

/* Reads the actors of a's conversation, then calls then (with the actor pinned no
   more). Takes req. */
static void s_read(node_t *node, node_actor_t *a, node_req_t *req, s_then_fn *then)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "conversation not found");
        return;
    }
    s_uuid_t conv, team;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {conv, team};
    s_act_t *r = calloc(1, sizeof *r);
    db_batch_t *b = r && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, Q_ACT_READ, NULL, 2, params, s_on_row, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    r->node = node;
    r->actor = a;
    r->req = req;
    r->then = then;
    a->flags |= NODE_AF_IDEM;
    db_batch_submit(&b, s_on_read, r);
}

/* The observer named name in actors, or NULL. */
static const json_t *s_find(const json_t *actors, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(actors, i, v)
    {
        if (i > 0 && strcmp(json_string_value(json_object_get(v, "name")), name) == 0) {
            return v;
        }
    }
    return NULL;
}

/* ---- actor.list -------------------------------------------------------------------------- */

static void s_list(node_t *node, node_actor_t *a, node_req_t **req_p, json_t *actors)
{
    (void)a;
    json_t *body = json_pack("{s:O, s:n}", "data", actors, "next_cursor");
    char *text = body ? node_json_text(body) : NULL;
    if (text) {
        node_reply(node, req_p, 200, text, 0);
    } else {
        node_reply_busy(node, req_p, "out of memory");
    }
    free(text);
    json_decref(body);
}

void node_op_actor_list(node_t *node, node_actor_t *a, node_req_t *req)
{
    s_read(node, a, req, s_list);
}

/* ---- actor.attach ------------------------------------------------------------------------ */

/* Writes the attachment row and actor.attached (action {"actor": obs}); answered 201
   with the event. Takes *req_p. */
static void s_attach_write(node_t *node, node_actor_t *a, node_req_t **req_p, json_t *obs)
{
    json_t *action = json_pack("{s:O}", "actor", obs);
    char *text = action ? node_json_text(action) : NULL;
    char *trigger = node_json_text(json_object_get(obs, "trigger"));
    char *config = node_json_text(json_object_get(obs, "config"));
    node_ws_t *ws = text && trigger && config ? node_ws_new(a, *req_p) : NULL;
    if (ws) {
        *req_p = NULL;
        s_uuid_t conv, team;
        util_uuid_format(a->conv_id, conv);
        util_uuid_format(a->team_id, team);
        const char *p[] = {conv,
                           team,
                           json_string_value(json_object_get(obs, "name")),
                           json_string_value(json_object_get(obs, "strategy")),
                           trigger,
                           config,
                           node_ws_ts(ws)};
        node_ws_add(ws, Q_ACT_INSERT, NODE_SK_PLAIN, 7, p);
        a->flags |= NODE_AF_OBSERVED; /* should the write fail: only a read in vain */
        char src[96];
        node_user_source(a, src);
        ws->msg_stmt = node_ws_event(ws, "actor.attached", src, text, NULL, false);
        ws->oom = ws->oom || ws->msg_stmt < 0;
        node_ws_touch(ws, -1);
        ws->reply_kind = NODE_REPLY_EVENT;
        ws->reply_status = 201;
        node_ws_finish(node, &ws);
    } else {
        node_reply_busy(node, req_p, "out of memory");
    }
    free(text);
    free(trigger);
    free(config);
    json_decref(action);
}

static void s_attach(node_t *node, node_actor_t *a, node_req_t **req_p, json_t *actors)
{
    const json_t *args = (*req_p)->args;
    const char *name = node_args_str(args, "name");
    if (a->status == NODE_ST_ARCHIVED) {
        node_reply_error(node, req_p, 409, "conflict", "conversation is archived");
        return;
    }
    if (s_find(actors, name)) {
        node_reply_error(node, req_p, 409, "conflict", "an actor of that name is attached");
        return;
    }
    if (json_array_size(actors) > NODE_OBSERVERS_MAX) {
        char why[96];
        snprintf(why, sizeof why, "a conversation has at most %d observers", NODE_OBSERVERS_MAX);
        node_reply_error(node, req_p, 409, "too_many_actors", why);
        return;
    }
    const json_t *config = json_object_get(args, "config");
    json_t *obs =
        json_pack("{s:s, s:s, s:O, s:O, s:o}", "name", name, "kind", "observer", "strategy",
                  json_object_get(args, "strategy"), "trigger", json_object_get(args, "trigger"),
                  "config", config ? json_incref((json_t *)config) : json_object());
    if (!obs) {
        node_reply_busy(node, req_p, "out of memory");
        return;
    }
    s_attach_write(node, a, req_p, obs);
    json_decref(obs);
}

void node_op_actor_attach(node_t *node, node_actor_t *a, node_req_t *req)
{
    const json_t *args = req->args;
    const char *types = node_args_str(json_object_get(args, "trigger"), "types");
    if (!node_actor_name_ok(node_args_str(args, "name"))) {
        node_reply_invalid(node, &req, "name",
                           "name must be 1-%d of a-z, 0-9, '_', '-', starting with a letter, "
                           "and not responder",
                           NODE_OBSERVER_NAME_MAX);
    } else if (!node_strategy_lookup(node_args_str(args, "strategy"))) {
        node_reply_bad_strategy(node, &req);
    } else if (node_strategy_lookup(node_args_str(args, "strategy"))->kind ==
               CFG_STRATEGY_CLAUDE_CODE) {
        node_reply_invalid(node, &req, "strategy",
                           "an observer's strategy must be of kind echo, openai or anthropic");
    } else if (types && !node_event_types_ok(types)) {
        node_reply_invalid(node, &req, "types",
                           "types must be a comma list of event type names (letters, digits, "
                           "'.', '_', '-'; 1-64 each)");
    } else {
        s_read(node, a, req, s_attach);
    }
}

/* ---- actor.detach ------------------------------------------------------------------------ */

static void s_detach(node_t *node, node_actor_t *a, node_req_t **req_p, json_t *actors)
{
    const char *name = node_args_str((*req_p)->args, "name");
    const json_t *obs = s_find(actors, name);
    if (strcmp(name, "responder") == 0) {
        node_reply_error(node, req_p, 409, "conflict",
                         "the responder is the conversation's strategy (PATCH it instead)");
        return;
    }
    if (!obs) {
        node_reply_error(node, req_p, 404, "not_found", "no observer of that name is attached");
        return;
    }
    json_t *action = json_pack("{s:O}", "actor", obs);
    char *text = action ? node_json_text(action) : NULL;
    node_ws_t *ws = text ? node_ws_new(a, *req_p) : NULL;
    if (ws) {
        *req_p = NULL;
        s_uuid_t conv, team;
        util_uuid_format(a->conv_id, conv);
        util_uuid_format(a->team_id, team);
        const char *p[] = {conv, team, name};
        node_ws_add(ws, Q_ACT_DELETE, NODE_SK_PLAIN, 3, p);
        if (json_array_size(actors) <= 2) { /* the responder and this one */
            a->flags &= (uint8_t)~NODE_AF_OBSERVED;
        }
        char src[96];
        node_user_source(a, src);
        ws->oom = ws->oom || node_ws_event(ws, "actor.detached", src, text, NULL, false) < 0;
        node_ws_touch(ws, -1);
        ws->reply_kind = NODE_REPLY_EMPTY;
        ws->reply_status = 204;
        node_ws_finish(node, &ws);
    } else {
        node_reply_busy(node, req_p, "out of memory");
    }
    free(text);
    json_decref(action);
}

void node_op_actor_detach(node_t *node, node_actor_t *a, node_req_t *req)
{
    s_read(node, a, req, s_detach);
}
