/*  gw_api_perm — permission requests and rules. Lists, gets and rules are
    team-wide ops (any node). A decision (approve/deny) must reach the
    conversation's owner, and the request id alone does not name the
    conversation: the gateway first asks any node for the request (perm.get,
    which answers 404 for an unknown id or another team's), then sends
    perm.decide to the ring owner of the request's conversation. Bodies and
    query arguments are checked against the op table (gw_api_body,
    gw_api_query). Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

/* ---- permissions ------------------------------------------------------------------------ */

void gw_h_perm_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_PERM_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_PERM_LIST, args, NULL);
}

void gw_h_perm_get(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_id_arg(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_PERM_GET, args, NULL);
}

/* perm.decide's args: the path id and the route's decision, then the body checked
   with them against perm.decide's row (remember and updated_input only with approve,
   reason only with deny); NULL after a 400. */
static json_t *s_decision(gw_req_t *req, bool approve)
{
    json_t *preset = json_pack("{s:s}", "decision", approve ? "approve" : "deny");
    if (!preset || gw_api_id_arg(req, preset) < 0) {
        json_decref(preset);
        return NULL;
    }
    return gw_api_body(req, PROTO_OP_PERM_DECIDE, preset);
}

/* perm.get answered: route the decision to the owner of the request's conversation. */
static void s_route(gw_req_t *req, const gw_reply_t *reply, bool approve)
{
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    const char *conv = json_string_value(json_object_get(body, "conversation_id"));
    if (reply->status != 200) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    } else if (!conv || util_uuid_parse(conv, req->conv_id) < 0) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected request");
    } else {
        json_t *args = s_decision(req, approve);
        if (args) {
            gw_req_call(req, PROTO_OP_PERM_DECIDE, args, NULL);
        }
    }
    json_decref(body);
}

static void s_route_approve(void *owner, const gw_reply_t *reply)
{
    s_route(owner, reply, true);
}

static void s_route_deny(void *owner, const gw_reply_t *reply)
{
    s_route(owner, reply, false);
}

static void s_decide(gw_req_t *req, bool approve)
{
    json_t *args = s_decision(req, approve);
    if (!args) {
        return;
    }
    json_t *get = json_pack("{s:O}", "id", json_object_get(args, "id"));
    json_decref(args);
    gw_req_call(req, PROTO_OP_PERM_GET, get, approve ? s_route_approve : s_route_deny);
}

void gw_h_perm_approve(gw_req_t *req)
{
    s_decide(req, true);
}

void gw_h_perm_deny(gw_req_t *req)
{
    s_decide(req, false);
}

/* ---- rules -------------------------------------------------------------------------------- */

void gw_h_rule_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_RULE_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_RULE_LIST, args, NULL);
}

void gw_h_rule_create(gw_req_t *req)
{
    json_t *args = gw_api_body(req, PROTO_OP_RULE_CREATE, NULL);
    if (args) {
        gw_req_call(req, PROTO_OP_RULE_CREATE, args, NULL);
    }
}

void gw_h_rule_delete(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_id_arg(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_RULE_DELETE, args, NULL);
}
