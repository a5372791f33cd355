/*  node_dispatch — API requests from gateways: the node's handlers of the shared
    op table, envelope checks, the ownership test (PROTO_MOVED with our epoch when
    the ring gives the conversation to another node) and the args check against
    the op's row (node_args.c).
    Loop thread only. */
#define LOG_MODULE "node_dispatch"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdlib.h>
#include <string.h>

/* The node's handler of every op of the shared table (proto/proto_ops.c), by op id: the
   name, scope, team and idempotency come from the table, only where and how the op runs
   is the node's. tests/node/test_node_args.c checks every op has one. */
#define OP(id, kind, read, run) [id] = {&proto_ops[id], kind, read, run}

static const node_op_t s_ops[PROTO_OP_COUNT] = {
    OP(PROTO_OP_AUTH, NODE_OP_TEAM, node_op_auth, NULL),
    OP(PROTO_OP_STATUS, NODE_OP_TEAM, node_op_status, NULL),
    OP(PROTO_OP_CONV_LIST, NODE_OP_TEAM, node_op_conv_list, NULL),
    /* With a conv_id it is conversation-bound (PROTO_SCOPE_CONV_OPT, see s_bound). */
    OP(PROTO_OP_EVENTS_LIST, NODE_OP_TEAM, node_op_events_list, NULL),
    OP(PROTO_OP_CONV_GET, NODE_OP_READ, node_op_conv_get, NULL),
    OP(PROTO_OP_MSG_LIST, NODE_OP_READ, node_op_msg_list, NULL),
    OP(PROTO_OP_CONV_CREATE, NODE_OP_ACTOR, NULL, node_op_conv_create),
    OP(PROTO_OP_CONV_PATCH, NODE_OP_ACTOR, NULL, node_op_conv_patch),
    OP(PROTO_OP_CONV_DELETE, NODE_OP_ACTOR, NULL, node_op_conv_delete),
    OP(PROTO_OP_CONV_CANCEL, NODE_OP_ACTOR, NULL, node_op_conv_cancel),
    OP(PROTO_OP_MSG_POST, NODE_OP_ACTOR, NULL, node_op_msg_post),
    /* Permissions, rules, worktrees, strategies (node_ops_perm.c, node_ops_wt.c). */
    OP(PROTO_OP_PERM_LIST, NODE_OP_TEAM, node_op_perm_list, NULL),
    OP(PROTO_OP_PERM_GET, NODE_OP_TEAM, node_op_perm_get, NULL),
    OP(PROTO_OP_PERM_DECIDE, NODE_OP_ACTOR, NULL, node_op_perm_decide),
    OP(PROTO_OP_RULE_LIST, NODE_OP_TEAM, node_op_rule_list, NULL),
    OP(PROTO_OP_RULE_CREATE, NODE_OP_TEAM, node_op_rule_create, NULL),
    OP(PROTO_OP_RULE_DELETE, NODE_OP_TEAM, node_op_rule_delete, NULL),
    OP(PROTO_OP_WT_LIST, NODE_OP_TEAM, node_op_wt_list, NULL),
    OP(PROTO_OP_WT_GET, NODE_OP_TEAM, node_op_wt_get, NULL),
    OP(PROTO_OP_WT_CREATE, NODE_OP_TEAM, node_op_wt_create, NULL),
    OP(PROTO_OP_WT_DELETE, NODE_OP_TEAM, node_op_wt_delete, NULL),
    OP(PROTO_OP_STRATEGIES, NODE_OP_TEAM, node_op_strategies, NULL),
    /* From bicky-mcp-permission (no team): the running claude-code turn on this node. */
    OP(PROTO_OP_PERMISSION_ASK, NODE_OP_TEAM, node_op_perm_ask, NULL),
    OP(PROTO_OP_EVENT_GET, NODE_OP_TEAM, node_op_event_get, NULL),
    OP(PROTO_OP_EVENT_REVERT, NODE_OP_ACTOR, NULL, node_op_event_revert),
    OP(PROTO_OP_EVENT_REVERT_TEAM, NODE_OP_TEAM, node_op_event_revert_team, NULL),
    /* Actors of a conversation (node_ops_actors.c). */
    OP(PROTO_OP_ACTOR_LIST, NODE_OP_ACTOR, NULL, node_op_actor_list),
    OP(PROTO_OP_ACTOR_ATTACH, NODE_OP_ACTOR, NULL, node_op_actor_attach),
    OP(PROTO_OP_ACTOR_DETACH, NODE_OP_ACTOR, NULL, node_op_actor_detach),
};

const node_op_t *node_op_find(const char *name)
{
    const proto_op_t *spec = proto_op_find(name);
    return spec ? &s_ops[spec - proto_ops] : NULL;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static bool s_bound(const node_op_t *op, const proto_msg_t *msg)
{
    return op->spec->scope == PROTO_SCOPE_CONV ||
           (op->spec->scope == PROTO_SCOPE_CONV_OPT && msg->has_conv);
}

static node_req_t *s_req_new(zframe_t **identity_p, const proto_msg_t *msg)
{
    node_req_t *req = calloc(1, sizeof *req);
    if (!req) {
        return NULL;
    }
    req->identity = *identity_p;
    *identity_p = NULL;
    req->req_id = msg->req_id;
    req->has_team = msg->has_team;
    req->has_conv = msg->has_conv;
    memcpy(req->team_id, msg->team_id, 16);
    memcpy(req->conv_id, msg->conv_id, 16);
    req->idem_checked = false;
    /* The gateway sends the team's limits it has from the auth answer (0: not sent). */
    req->lim_turns = msg->team_turns ? (uint32_t)msg->team_turns : LIMITS_TURNS_DEF;
    req->lim_actors = msg->team_actors ? (uint32_t)msg->team_actors : LIMITS_ACTORS_DEF;
    req->lim_worktrees = msg->team_worktrees ? (uint32_t)msg->team_worktrees : LIMITS_WORKTREES_DEF;
    return req;
}

/* Parses the JSON args (absent body = {}). 0, or -1 after a 400 reply. */
static int s_parse_args(node_t *node, node_req_t **req_p, const char *body)
{
    json_error_t err;
    json_t *args = body && *body ? json_loads(body, JSON_REJECT_DUPLICATES, &err) : json_object();
    if (!args || !json_is_object(args)) {
        char text[256];
        bool utf8 = !args && json_error_code(&err) == json_error_invalid_utf8;
        snprintf(text, sizeof text, "invalid JSON args at line %d: %s%s", args ? 1 : err.line,
                 utf8 ? "not valid UTF-8, " : "", args ? "not an object" : err.text);
        json_decref(args);
        node_reply_error(node, req_p, 400, "invalid_json", text);
        return -1;
    }
    (*req_p)->args = args;
    return 0;
}

/* Envelope checks and ownership; 0 when the request may run here. */
static int s_admit(node_t *node, node_req_t **req_p, const proto_msg_t *msg)
{
    node_req_t *req = *req_p;
    if (node->stopping) {
        node_reply_busy(node, req_p, "node is stopping");
        return -1;
    }
    if (!req->op) {
        node_reply_invalid(node, req_p, "op", "unknown op '%s'", msg->op ? msg->op : "");
        return -1;
    }
    if (req->op->spec->team && (!req->has_team || util_uuid_is_nil(req->team_id))) {
        node_reply_field(node, req_p, "team_id");
        return -1;
    }
    if (!s_bound(req->op, msg)) {
        return 0;
    }
    if (!req->has_conv || util_uuid_is_nil(req->conv_id)) {
        node_reply_field(node, req_p, "conversation_id");
        return -1;
    }
    node_reg_epoch_hint(node, msg->ring_epoch);
    node_owner_t owner = node_ring_owner(node, req->conv_id);
    if (owner == NODE_OWNER_OTHER) {
        node_reply_moved(node, req_p);
        return -1;
    }
    if (owner == NODE_OWNER_NONE) {
        node_reply_busy(node, req_p, "no ring yet");
        return -1;
    }
    return 0;
}

/* This node's own permission servers send permission.ask on the local socket (no
   key: it is an ipc file only this node's user can open), which takes nothing else.
   With CURVE, gateways' keys send API ops on the main ROUTER. NULL when allowed. */
static const char *
s_forbidden(const node_t *node, const zsock_t *sock, const proto_msg_t *msg, const keys_peer_t *who)
{
    bool ask = msg->op && !strcmp(msg->op, "permission.ask");
    if (sock == node->local) {
        return ask ? NULL : "the local socket takes permission.ask only";
    }
    if (!node->cfg->keys) {
        return NULL;
    }
    if (ask) {
        return "permission.ask comes from this node's permission server only";
    }
    return who->role == KEYS_ROLE_GATEWAY ? NULL : "API ops need a gateway key";
}

void node_dispatch(
    node_t *node, zsock_t *sock, zframe_t **identity_p, proto_msg_t *msg, const keys_peer_t *who)
{
    if (msg->type != PROTO_API_REQ) {
        LOG_W("unexpected message on api socket type=%s", proto_type_name(msg->type));
        return;
    }
    node->requests++;
    node_req_t *req = s_req_new(identity_p, msg);
    if (!req) {
        LOG_E("out of memory req=%llu", (unsigned long long)msg->req_id);
        return;
    }
    req->sock = sock;
    const char *why = s_forbidden(node, sock, msg, who);
    if (why) {
        LOG_W("refused op=%s from role=%s name=%s key=%s: %s req=%llu", msg->op ? msg->op : "",
              keys_role_name(who->role), who->name, who->key, why, (unsigned long long)msg->req_id);
        node_reply_error(node, &req, 403, "forbidden", why);
        return;
    }
    req->op = node_op_find(msg->op);
    LOG_D("request req=%llu op=%s", (unsigned long long)req->req_id, msg->op);
    if (s_admit(node, &req, msg) < 0 || s_parse_args(node, &req, msg->body) < 0 ||
        node_args_check(node, &req) < 0) {
        return;
    }
    if (req->op->kind == NODE_OP_ACTOR) {
        node_actor_deliver(node, req);
    } else {
        req->op->read(node, req);
    }
}
