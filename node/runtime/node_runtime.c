/*  node_runtime — the life of an actor: activation (the conversation row is
    loaded asynchronously while requests wait in the mailbox), the mailbox
    pump (one write set in flight per actor, so sequence numbers are assigned
    in order and a failed write is rolled back without gaps), idempotency
    lookups, commit outcomes and passivation (ring changes: node_handoff.c).
    An actor with database work in flight is "pinned": it is never freed
    until that work calls back. Loop thread only. */
#define LOG_MODULE "node_runtime"
#include "node/runtime/node_runtime.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_MAX 65536 /* actors passivated per sweep */

/* Argument of an actor's database callbacks. */
typedef struct {
    node_t *node;        /* borrowed */
    node_actor_t *actor; /* pinned while the batch runs */
    bool found;          /* idempotency row seen */
    int status;          /* stored idempotent status */
    char *hash;          /* stored request hash (owned) */
    char *response;      /* stored response (owned) */
} s_ctx_t;

static void s_load(node_t *node, node_actor_t *actor);

static bool s_pinned(const node_actor_t *actor)
{
    return actor->state == NODE_ACTOR_LOADING ||
           (actor->flags & (NODE_AF_COMMITTING | NODE_AF_IDEM));
}

static void s_release(node_t *node, node_actor_t *actor)
{
    node->engine->release(node, actor);
    node_fence_release(node, actor); /* single activation: the claim goes (node_fence.c) */
    node_actors_remove(node->actors, actor);
}

void node_actor_drop(node_t *node, node_actor_t *actor, const char *why)
{
    for (node_req_t *r; (r = node_mbox_pop(actor));) {
        node_reply_busy(node, &r, why);
    }
    node->engine->release(node, actor);
    if (s_pinned(actor)) {
        actor->flags |= NODE_AF_DOOMED;
        return;
    }
    s_release(node, actor);
}

void node_actor_reload(node_t *node, node_actor_t *actor)
{
    node->engine->release(node, actor);
    actor->flags &= (uint8_t)~NODE_AF_RELOAD;
    s_load(node, actor);
}

static s_ctx_t *s_ctx_new(node_t *node, node_actor_t *actor)
{
    s_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx) {
        ctx->node = node;
        ctx->actor = actor;
    }
    return ctx;
}

static void s_ctx_free(s_ctx_t *ctx)
{
    free(ctx->hash);
    free(ctx->response);
    free(ctx);
}

/* ---- activation -------------------------------------------------------------------------- */

static void s_on_load_row(void *arg, db_status_t status, const db_result_t *res)
{
    node_t *node = ((s_ctx_t *)arg)->node;
    node_actor_t *a = ((s_ctx_t *)arg)->actor;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    int st = node_status_parse(db_result_value(res, 0, NODE_LOAD_STATUS));
    int busy = node_on_busy_parse(db_result_value(res, 0, NODE_LOAD_ON_BUSY));
    a->status = (uint8_t)(st < 0 ? NODE_ST_IDLE : st);
    a->on_busy = (uint8_t)(busy < 0 ? NODE_BUSY_ENQUEUE : busy);
    a->last_msg_seq =
        (uint64_t)node_parse_ll(db_result_value(res, 0, NODE_LOAD_MSG_SEQ), 0, 0, INT64_MAX);
    a->last_evt_seq =
        (uint64_t)node_parse_ll(db_result_value(res, 0, NODE_LOAD_EVT_SEQ), 0, 0, INT64_MAX);
    a->echo_delay_ms =
        (int32_t)node_parse_ll(db_result_value(res, 0, NODE_LOAD_ECHO_DELAY), -1, 0, 60000);
    a->echo_fail_every =
        (int32_t)node_parse_ll(db_result_value(res, 0, NODE_LOAD_ECHO_FAIL), -1, 0, 1000000);
    node->engine->strategy_known(node, a, db_result_value(res, 0, NODE_LOAD_STRATEGY));
    const char *observed = db_result_value(res, 0, NODE_LOAD_OBSERVED);
    if (observed && observed[0] == 't') {
        a->flags |= NODE_AF_OBSERVED;
    }
    a->state = NODE_ACTOR_READY;
}

static void s_on_loaded(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_ctx_t *ctx = arg;
    node_t *node = ctx->node;
    node_actor_t *a = ctx->actor;
    s_ctx_free(ctx);
    if (node_fence_loaded(node, a, status, sqlstate)) {
        return; /* not claimed: waiting for the previous owner, or moved (node_fence.c) */
    }
    if (status != DB_OK) {
        a->state = NODE_ACTOR_ABSENT;
        LOG_I("activation failed status=%d error=\"%s\"", (int)status, error ? error : "");
        node_actor_drop(node, a, "database unavailable");
        return;
    }
    if (a->state == NODE_ACTOR_LOADING) {
        a->state = NODE_ACTOR_ABSENT;
    } else if (node->engine->recover_needed(a) && !node->stopping && !(a->flags & NODE_AF_DOOMED)) {
        node->engine->recover_start(node, a);
        return;
    }
    node_actor_pump(node, a);
}

static void s_load(node_t *node, node_actor_t *actor)
{
    actor->state = NODE_ACTOR_LOADING;
    actor->last_msg_seq = actor->last_evt_seq = 0;
    actor->status = NODE_ST_IDLE;
    actor->on_busy = NODE_BUSY_ENQUEUE;
    actor->echo_delay_ms = actor->echo_fail_every = -1;
    actor->flags &= (uint8_t) ~(NODE_AF_WHOLE | NODE_AF_OBSERVED);
    actor->turn_count = 0;
    char conv[UTIL_UUID_STR_LEN + 1], team[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(actor->conv_id, conv);
    util_uuid_format(actor->team_id, team);
    const char *params[] = {conv, team};
    s_ctx_t *ctx = s_ctx_new(node, actor);
    db_batch_t *b = ctx && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_CONV_LOAD, NULL, 2, params, s_on_load_row, ctx) < 0) {
        db_batch_destroy(&b);
        free(ctx);
        actor->state = NODE_ACTOR_ABSENT;
        node_actor_drop(node, actor, "cannot load the conversation");
        return;
    }
    node_fence_claim(node, &b, actor, s_on_loaded, ctx); /* loaded after its claim */
}

/* A create whose id the gateway has just drawn at random ("fresh"): no row can exist, so
   the actor starts absent without the claim and the load. Were the id taken after all,
   the conversation's insert (unique) and its claim in the same commit fail the write:
   nothing is overwritten. */
static bool s_fresh_create(const node_req_t *req)
{
    const proto_op_t *op = req->op->spec;
    return json_is_true(json_object_get(req->args, "fresh")) &&
           (op == &proto_ops[PROTO_OP_CONV_CREATE] ||
            (op == &proto_ops[PROTO_OP_MSG_POST] &&
             json_is_object(json_object_get(req->args, "create"))));
}

void node_actor_deliver(node_t *node, node_req_t *req)
{
    node_actor_t *a = node_actors_find(node->actors, req->conv_id);
    int64_t now = util_mono_ms();
    if (!a) {
        if (node_actors_count(node->actors) >= (size_t)node->cfg->max_actors) {
            node_reply_busy(node, &req, "too many active conversations");
            return;
        }
        /* The team's own bound (issue 12): its other conversations stay served. */
        uint32_t team_actors = node_actors_team_actors(node->actors, req->team_id);
        if (team_actors >= req->lim_actors) {
            char why[160];
            snprintf(why, sizeof why,
                     "this team has %u active conversations on this node (its limit); idle ones "
                     "are passivated after --actor-idle-s",
                     team_actors);
            node_reply_error(node, &req, 429, "rate_limited", why);
            return;
        }
        a = node_actors_add(node->actors, req->conv_id, req->team_id, now);
        if (!a || node_mbox_push(a, req, (size_t)node->cfg->mailbox_max) < 0) {
            node_reply_busy(node, &req, "out of memory");
            if (a) {
                node_actors_remove(node->actors, a);
            }
            return;
        }
        if (s_fresh_create(req)) {
            a->state = NODE_ACTOR_ABSENT;
            a->echo_delay_ms = a->echo_fail_every = -1;
            node_actor_pump(node, a);
            return;
        }
        s_load(node, a);
        return;
    }
    /* The request passed the ring check: the conversation is ours again. */
    a->flags &= (uint8_t)~NODE_AF_DOOMED;
    node_actors_touch(node->actors, a, now);
    if (node_mbox_push(a, req, (size_t)node->cfg->mailbox_max) < 0) {
        node_reply_busy(node, &req, "mailbox full");
        return;
    }
    node_actor_pump(node, a);
}

void node_actor_warm(node_t *node, const uint8_t team[16], const uint8_t conv[16], uint32_t max)
{
    if (node->stopping || node->closing || node_actors_find(node->actors, conv) ||
        node_actors_count(node->actors) >= (size_t)node->cfg->max_actors ||
        node_actors_team_actors(node->actors, team) >= max) {
        return;
    }
    node_actor_t *a = node_actors_add(node->actors, conv, team, util_mono_ms());
    if (a) {
        s_load(node, a);
    }
}

/* ---- idempotency ------------------------------------------------------------------------- */

static void s_on_idem_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_ctx_t *ctx = arg;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    const char *hash = db_result_value(res, 0, NODE_IDEM_HASH);
    const char *resp = db_result_value(res, 0, NODE_IDEM_RESPONSE);
    ctx->found = true;
    ctx->status = (int)node_parse_ll(db_result_value(res, 0, NODE_IDEM_STATUS), 200, 100, 599);
    ctx->hash = strdup(hash ? hash : "");
    ctx->response = strdup(resp ? resp : "");
}

static void s_on_idem(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_ctx_t *ctx = arg;
    node_t *node = ctx->node;
    node_actor_t *a = ctx->actor;
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    node_req_t *req = node_mbox_peek(a);
    const char *hash = NULL;
    if (!req || !req->idem_pending) {
        /* The request looked up was answered meanwhile (drop, hand-off): whatever is at
           the head now is another request, which gets its own lookup. */
    } else if (status != DB_OK) {
        req = node_mbox_pop(a);
        node_reply_busy(node, &req, "database unavailable");
    } else if (!ctx->found || !ctx->hash || !ctx->response) {
        req->idem_checked = true;
        req->idem_pending = false;
    } else if (node_arg_str(req->args, "request_hash", 1, 128, &hash) == 1 &&
               strcmp(hash, ctx->hash) == 0) {
        req = node_mbox_pop(a);
        /* The stored text is Postgres' JSON: compacted, as the first answer was. */
        node_reply_pg(node, &req, ctx->status, ctx->response);
    } else {
        req = node_mbox_pop(a);
        node_reply_error(node, &req, 409, "conflict",
                         "Idempotency-Key was already used with a different request");
    }
    s_ctx_free(ctx);
    node_actor_pump(node, a);
}

/* Starts the lookup of the head request's key; answers it when the key is malformed. */
static void s_idem_lookup(node_t *node, node_actor_t *a, node_req_t *req)
{
    const char *key = NULL, *hash = NULL;
    if (node_arg_str(req->args, "idempotency_key", 1, 255, &key) != 1) {
        req = node_mbox_pop(a);
        node_reply_field(node, &req, "idempotency_key");
        return;
    }
    if (node_arg_str(req->args, "request_hash", 1, 128, &hash) != 1) {
        req = node_mbox_pop(a);
        node_reply_field(node, &req, "request_hash");
        return;
    }
    char team[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(a->team_id, team);
    const char *params[] = {team, key};
    s_ctx_t *ctx = s_ctx_new(node, a);
    db_batch_t *b = ctx && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_IDEM_GET, NULL, 2, params, s_on_idem_row, ctx) < 0) {
        db_batch_destroy(&b);
        free(ctx);
        req = node_mbox_pop(a);
        node_reply_busy(node, &req, "cannot check the idempotency key");
        return;
    }
    a->flags |= NODE_AF_IDEM;
    req->idem_pending = true;
    db_batch_submit(&b, s_on_idem, ctx);
}

/* ---- the pump ---------------------------------------------------------------------------- */

/* Handles the head request: refuses, looks up its key, or runs its op. */
static void s_take(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (node->stopping || (a->flags & NODE_AF_DOOMED)) {
        req = node_mbox_pop(a);
        node_reply_busy(node, &req, node->stopping ? "node is stopping" : "conversation moved");
        return;
    }
    if (memcmp(req->team_id, a->team_id, 16) != 0) {
        if (a->state == NODE_ACTOR_ABSENT) {
            /* Not found for the previous team: look again for this one. */
            memcpy(a->team_id, req->team_id, 16);
            s_load(node, a);
            return;
        }
        req = node_mbox_pop(a);
        node_reply_error(node, &req, 404, "not_found", "conversation not found");
        return;
    }
    if (req->op->spec->write && !req->idem_checked &&
        json_object_get(req->args, "idempotency_key")) {
        s_idem_lookup(node, a, req);
        return;
    }
    req = node_mbox_pop(a);
    req->op->run(node, a, req);
}

void node_actor_pump(node_t *node, node_actor_t *a)
{
    while (!s_pinned(a)) {
        if (a->flags & NODE_AF_RELOAD) {
            node_actor_reload(node, a);
            return;
        }
        if (a->state == NODE_ACTOR_READY && node->engine->pending_write(node, a)) {
            return;
        }
        node_req_t *req = node_mbox_peek(a);
        if (!req) {
            break;
        }
        s_take(node, a, req);
    }
    bool unwanted = a->state == NODE_ACTOR_ABSENT || (a->flags & NODE_AF_DOOMED);
    if (unwanted && node_actor_quiescent(a)) {
        s_release(node, a);
    }
}

/* ---- commit outcomes --------------------------------------------------------------------- */

/* The answer of a committed write set, compact: the stored idempotent response and the
   conversation of the touch are Postgres' JSON, compacted (node_buf_json). */
static void s_reply_ok(node_t *node, node_ws_t *ws)
{
    if (!ws->req) {
        return;
    }
    const char *pg = ws->idem_stmt >= 0 ? node_ws_value(ws, ws->idem_stmt, 0) : NULL;
    const char *body = NULL;
    node_buf_t b;
    node_buf_init(&b);
    if (!pg && ws->reply_kind == NODE_REPLY_CONV) {
        pg = node_ws_value(ws, ws->touch_stmt, NODE_TOUCH_CONV_JSON);
    }
    if (pg) {
        node_buf_json(&b, pg);
        body = b.oom ? NULL : b.data;
    } else if (ws->reply_kind == NODE_REPLY_MSG) {
        const char *name = node_ws_name(ws, ws->msg_stmt);
        node_buf_str(&b, "{\"message\":");
        if (name && strcmp(name, NODE_Q_MSG_INSERT) == 0) {
            node_ws_render_msg(ws, ws->msg_stmt, NULL, &b); /* the row it inserted */
        } else {
            node_buf_json(&b, node_ws_value(ws, ws->msg_stmt, 0));
        }
        if (json_object_get(ws->req->args, "create")) {
            node_buf_str(&b, ws->plan.created ? ",\"created\":true" : ",\"created\":false");
        }
        node_buf_str(&b, "}");
        body = b.oom ? NULL : b.data;
    } else if (ws->reply_kind == NODE_REPLY_EVENT) {
        body = node_ws_render_event(ws, ws->msg_stmt, &b);
    } else if (ws->reply_kind != NODE_REPLY_CONV) {
        body = ws->reply_status == 204 ? "" : "{}";
    }
    if (!body) {
        node_reply_busy(node, &ws->req, "out of memory");
    } else {
        node_reply(node, &ws->req, ws->reply_status, body, 0);
    }
    node_buf_free(&b);
}

static void s_commit_ok(node_t *node, node_actor_t *a, node_ws_t *ws)
{
    node_ws_publish(node, ws);
    int t = ws->touch_stmt;
    int st = node_status_parse(node_ws_value(ws, t, NODE_TOUCH_STATUS));
    int busy = node_on_busy_parse(node_ws_value(ws, t, NODE_TOUCH_ON_BUSY));
    a->status = (uint8_t)(st < 0 ? a->status : st);
    a->on_busy = (uint8_t)(busy < 0 ? a->on_busy : busy);
    a->echo_delay_ms =
        (int32_t)node_parse_ll(node_ws_value(ws, t, NODE_TOUCH_ECHO_DELAY), -1, 0, 60000);
    a->echo_fail_every =
        (int32_t)node_parse_ll(node_ws_value(ws, t, NODE_TOUCH_ECHO_FAIL), -1, 0, 1000000);
    node->engine->strategy_known(node, a, node_ws_value(ws, t, NODE_TOUCH_STRATEGY));
    a->state = NODE_ACTOR_READY;
    node->engine->apply(node, a, &ws->plan);
    s_reply_ok(node, ws);
}

/* Rolls the actor back and answers; returns false when the actor is gone. */
static bool s_commit_failed(node_t *node, node_actor_t *a, node_ws_t *ws, node_ws_outcome_t o)
{
    a->last_msg_seq = ws->saved_msg_seq;
    a->last_evt_seq = ws->saved_evt_seq;
    a->state = ws->saved_state;
    switch (o) {
        case NODE_WS_STALE:
            LOG_N("stale actor: another node wrote this conversation; dropping it");
            node_reply_busy(node, &ws->req, "conversation moved");
            node_actor_drop(node, a, "conversation moved");
            return false;
        case NODE_WS_CONN:
            /* The outcome is unknown (COMMIT may have happened): reload before going on. */
            a->flags |= NODE_AF_RELOAD;
            node_reply_busy(node, &ws->req, "database unavailable");
            break;
        case NODE_WS_IDEM:
            node_reply_error(node, &ws->req, 409, "conflict",
                             "a request with this Idempotency-Key is in progress");
            break;
        case NODE_WS_EXISTS:
            a->flags |= NODE_AF_RELOAD; /* the row is there: learn whose it is */
            if (ws->req && ws->req->op->spec == &proto_ops[PROTO_OP_MSG_POST]) {
                /* msg.post with "create" names its id: taken by another team (this
                   team's row would have loaded). No existence leak: 404. */
                node_reply_error(node, &ws->req, 404, "not_found", "conversation not found");
                break;
            }
            node_reply_error(node, &ws->req, 409, "conflict", "conversation already exists");
            break;
        case NODE_WS_FIELD:
            node_reply_field(node, &ws->req, ws->field ? ws->field : "value");
            break;
        default:
            LOG_E("write failed op=%s", ws->req ? ws->req->op->spec->name : "turn");
            node_reply_busy(node, &ws->req, "write failed");
            break;
    }
    if (!ws->req && o != NODE_WS_OK) {
        /* An internal write (turn end/start) was lost: the turn state is unknown. */
        a->flags |= NODE_AF_RELOAD;
    }
    return true;
}

void node_actor_committed(node_t *node, node_ws_t *ws, node_ws_outcome_t outcome)
{
    node_actor_t *a = ws->actor;
    a->flags &= (uint8_t)~NODE_AF_COMMITTING;
    bool alive = true;
    if (outcome == NODE_WS_OK) {
        s_commit_ok(node, a, ws);
    } else {
        alive = s_commit_failed(node, a, ws, outcome);
    }
    node_ws_destroy(&ws);
    if (!alive) {
        return;
    }
    if (node->closing) {
        node_actor_drop(node, a, "node is stopping");
        return;
    }
    node_actors_touch(node->actors, a, util_mono_ms());
    node_actor_pump(node, a);
}

/* ---- passivation (ring changes: node_handoff.c) ------------------------------------------ */

void node_actors_sweep(node_t *node)
{
    int64_t now = util_mono_ms();
    int64_t idle_ms = node->cfg->actor_idle_s * 1000;
    size_t passivated = 0;
    for (int k = 0; k < SWEEP_MAX; k++) {
        node_actor_t *a = node_actors_oldest(node->actors);
        if (!a || now - a->last_used_ms < idle_ms) {
            break;
        }
        if (node_actor_quiescent(a)) {
            s_release(node, a);
            passivated++;
        } else {
            node_actors_touch(node->actors, a, now);
        }
    }
    if (passivated) {
        LOG_I("passivated actors=%zu resident=%zu", passivated, node_actors_count(node->actors));
    }
}

const node_actor_life_t node_runtime_actors = {
    .drop = node_actor_drop,
    .reload = node_actor_reload,
};
