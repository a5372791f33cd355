/*  gw_api_wt — /api/worktrees: git worktrees of the nodes' repository. Every
    op is team-wide (any live node, round robin); the nodes serialise git
    work on the repository among themselves (a Postgres advisory lock, see
    docs/worktrees.md), so the gateway only validates and forwards. Branch
    names are checked by the node (git check-ref-format rules; 400 and
    nothing created). Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <string.h>

void gw_h_wt_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_WT_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_WT_LIST, args, NULL);
}

void gw_h_wt_create(gw_req_t *req)
{
    json_t *args = gw_api_body(req, PROTO_OP_WT_CREATE, NULL);
    if (args) {
        gw_req_call(req, PROTO_OP_WT_CREATE, args, NULL);
    }
}

void gw_h_wt_get(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_id_arg(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_WT_GET, args, NULL);
}

void gw_h_wt_delete(gw_req_t *req)
{
    json_t *args = json_object();
    const char *force = gw_req_query(req, "force");
    if (gw_api_id_arg(req, args) < 0) {
        json_decref(args);
        return;
    }
    if (force && strcmp(force, "true") != 0 && strcmp(force, "false") != 0) {
        gw_req_fail(req, 400, "invalid_field", "force must be true or false");
        json_decref(args);
        return;
    }
    json_object_set_new(args, "force", json_boolean(force && strcmp(force, "true") == 0));
    gw_req_call(req, PROTO_OP_WT_DELETE, args, NULL);
}
