/*  gw_api_nodes — POST /api/nodes/:id/drain and /undrain (docs/api.md,
    Nodes). The node id is checked as the registry checks it (1–63
    characters of A–Z a–z 0–9 . _ : -); a token the auth answer did not call
    admin gets 403 without asking anyone; an admin token's request goes to
    the registry with the token itself, and the registry decides (live, not
    revoked, admin in Postgres: the gateway's key alone may not drain). The
    registry's answer becomes the HTTP answer. Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gw_api_nodes.h"
#include "gateway/gateway_internal.h"

#include "common/log.h"

#include <string.h>

/* The registry's admin_rep as HTTP: 200 with the node's state; its refusals
   with their reason (403, 404; any other 4xx is 409); 503/504 as made. */
static void s_on_reply(void *owner, const gw_admin_reply_t *reply)
{
    gw_req_t *req = owner;
    req->admin_id = 0;
    const char *why = reply->error ? reply->error : "the registry refused";
    if (reply->status == 200) {
        json_t *body = json_pack("{s:s, s:s, s:s?, s:I}", "id", req->params[0], "action",
                                 req->route->handler == gw_h_node_undrain ? "undrain" : "drain",
                                 "state", reply->state, "ring_epoch", (json_int_t)reply->epoch);
        gw_req_respond_value(req, 200, body);
    } else if (reply->status == 404) {
        gw_req_fail(req, 404, "not_found", "no node %s in the registry", req->params[0]);
    } else if (reply->status == 403) {
        gw_req_fail(req, 403, "forbidden", "%s", why);
    } else if (reply->status == 503 || reply->status == 504) {
        gw_error_t err;
        gw_error_set(&err, reply->status, reply->status == 503 ? "unavailable" : "timeout", NULL,
                     "%s", why);
        err.retry_after = reply->status == 503 ? 1 : 0;
        gw_req_respond_error(req, &err);
    } else if (reply->status >= 400 && reply->status < 500) {
        gw_req_fail(req, 409, "conflict", "%s", why);
    } else {
        LOG_W("the registry answered status=%d to an admin request", reply->status);
        gw_req_fail(req, 502, "bad_gateway", "the registry gave an invalid answer");
    }
}

static void s_admin(gw_req_t *req, const char *action)
{
    const char *id = req->params[0];
    if (!proto_node_id_valid(id)) {
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "id",
                     "a node id is 1 to %d characters of A-Z a-z 0-9 . _ : -", PROTO_NODE_ID_MAX);
        gw_req_respond_error(req, &err);
        return;
    }
    if (!req->admin) {
        gw_req_fail(req, 403, "forbidden",
                    "only an admin token may %s a node (bickyctl token create --admin)", action);
        return;
    }
    size_t len = 0;
    const char *token = gw_auth_token(req, &len);
    char copy[GW_TOKEN_MAX + 1];
    if (!token || len > GW_TOKEN_MAX) {
        gw_req_fail(req, 403, "forbidden", "only an admin token may %s a node", action);
        return;
    }
    memcpy(copy, token, len);
    copy[len] = 0;
    req->admin_id =
        gw_registry_admin(req->srv->registry, action, id, copy, req->deadline_ms, s_on_reply, req);
    if (!req->admin_id) {
        gw_error_t err;
        gw_error_set(&err, 503, "unavailable", NULL, "%s",
                     "the registry cannot take the request now; retry");
        err.retry_after = 1;
        gw_req_respond_error(req, &err);
    }
}

void gw_h_node_drain(gw_req_t *req)
{
    s_admin(req, "drain");
}

void gw_h_node_undrain(gw_req_t *req)
{
    s_admin(req, "undrain");
}
