/*  gw_api_actors — GET/POST /api/conversations/:id/actors and DELETE
    /api/conversations/:id/actors/:name (docs/api.md, Actors). The body is
    checked against actor.attach's row of the op table as the node checks it,
    and the strategy against the team's allow-list; the node adds the name's
    characters, the strategy it runs, the limit and duplicates. Loop thread
    only. */
#define LOG_MODULE "gw_api"
#include "gateway/gw_api_actors.h"
#include "gateway/gateway_internal.h"
#include "gateway/gw_limits.h"

void gw_h_actor_list(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    gw_req_call(req, PROTO_OP_ACTOR_LIST, json_object(), NULL);
}

void gw_h_actor_attach(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, PROTO_OP_ACTOR_ATTACH, NULL);
    if (!args) {
        return;
    }
    if (gw_limits_strategy(req, args, false) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_ACTOR_ATTACH, args, NULL);
}

void gw_h_actor_detach(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = json_pack("{s:s}", "name", req->params[1]);
    if (!args) { /* not UTF-8 */
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "name", "name must be an observer's name");
        gw_req_respond_error(req, &err);
        return;
    }
    gw_req_call(req, PROTO_OP_ACTOR_DETACH, args, NULL);
}
