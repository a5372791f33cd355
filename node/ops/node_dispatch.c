/*  node_dispatch — API requests from gateways: the static op table, envelope
    and argument checks, and the ownership test (PROTO_MOVED with our epoch when
    the ring gives the conversation to another node).
    Loop thread only. */
#define LOG_MODULE "node_dispatch"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "node/ops/node_ops.h"

#include <stdlib.h>
#include <string.h>

#define OP_TEAM(n, fn)                                                                             \
    {                                                                                              \
        n, NODE_OP_TEAM, true, false, fn, NULL                                                     \
    }
#define OP_READ(n, fn)                                                                             \
    {                                                                                              \
        n, NODE_OP_READ, true, false, fn, NULL                                                     \
    }
#define OP_ACTOR(n, fn)                                                                            \
    {                                                                                              \
        n, NODE_OP_ACTOR, true, true, NULL, fn                                                     \
    }

static const node_op_t s_ops[] = {
    {"auth", NODE_OP_TEAM, false, false, node_op_auth, NULL},
    OP_TEAM("status", node_op_status),
    OP_TEAM("conv.list", node_op_conv_list),
    /* With a conv_id it is conversation-bound (see s_bound). */
    OP_TEAM("events.list", node_op_events_list),
    OP_READ("conv.get", node_op_conv_get),
    OP_READ("msg.list", node_op_msg_list),
    OP_ACTOR("conv.create", node_op_conv_create),
    OP_ACTOR("conv.patch", node_op_conv_patch),
    OP_ACTOR("conv.delete", node_op_conv_delete),
    OP_ACTOR("conv.cancel", node_op_conv_cancel),
    OP_ACTOR("msg.post", node_op_msg_post),
    /* Permissions, rules, worktrees, strategies (node_ops_perm.c, node_ops_wt.c). */
    OP_TEAM("perm.list", node_op_perm_list),
    OP_TEAM("perm.get", node_op_perm_get),
    {"perm.decide", NODE_OP_ACTOR, true, false, NULL, node_op_perm_decide},
    OP_TEAM("rule.list", node_op_rule_list),
    OP_TEAM("rule.create", node_op_rule_create),
    OP_TEAM("rule.delete", node_op_rule_delete),
    OP_TEAM("wt.list", node_op_wt_list),
    OP_TEAM("wt.get", node_op_wt_get),
    OP_TEAM("wt.create", node_op_wt_create),
    OP_TEAM("wt.delete", node_op_wt_delete),
    OP_TEAM("strategies", node_op_strategies),
    /* From bicky-mcp-permission (no team): the running claude-code turn on this node. */
    {"permission.ask", NODE_OP_TEAM, false, false, node_op_perm_ask, NULL},
};

const node_op_t *node_op_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_ops / sizeof s_ops[0]; i++) {
        if (strcmp(s_ops[i].name, name) == 0) {
            return &s_ops[i];
        }
    }
    return NULL;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static bool s_bound(const node_op_t *op, const proto_msg_t *msg)
{
    return op->kind != NODE_OP_TEAM || (strcmp(op->name, "events.list") == 0 && msg->has_conv);
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
    return req;
}

/* Parses the JSON args (absent body = {}). 0, or -1 after a 400 reply. */
static int s_parse_args(node_t *node, node_req_t **req_p, const char *body)
{
    json_error_t err;
    json_t *args = body && *body ? json_loads(body, JSON_REJECT_DUPLICATES, &err) : json_object();
    if (!args || !json_is_object(args)) {
        char text[200];
        snprintf(text, sizeof text, "invalid JSON args at line %d: %s", args ? 1 : err.line,
                 args ? "not an object" : err.text);
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
        node_reply_error(node, req_p, 400, "invalid_field", "unknown op");
        return -1;
    }
    if (req->op->needs_team && (!req->has_team || util_uuid_is_nil(req->team_id))) {
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

void node_dispatch(node_t *node, zframe_t **identity_p, proto_msg_t *msg)
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
    req->op = node_op_find(msg->op);
    LOG_D("request req=%llu op=%s", (unsigned long long)req->req_id, msg->op);
    if (s_admit(node, &req, msg) < 0 || s_parse_args(node, &req, msg->body) < 0) {
        return;
    }
    if (req->op->kind == NODE_OP_ACTOR) {
        node_actor_deliver(node, req);
    } else {
        req->op->read(node, req);
    }
}
