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

static const gw_field_t s_create_fields[] = {
    {"branch", GW_F_STR, 200, NULL},
    {"base", GW_F_STR, 256, NULL},
    {NULL, GW_F_STR, 0, NULL},
};

/* args["id"] from the :id path parameter; -1 after a 400. */
static int s_id(gw_req_t *req, json_t *args)
{
    gw_error_t err;
    uint8_t raw[16];
    char id[UTIL_UUID_STR_LEN + 1];
    if (gw_parse_uuid(req->params[0], "id", raw, &err) < 0) {
        gw_req_respond_error(req, &err);
        return -1;
    }
    util_uuid_format(raw, id);
    json_object_set_new(args, "id", json_string(id));
    return 0;
}

void gw_h_wt_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_page_args(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "wt.list", false, args, NULL);
}

void gw_h_wt_create(gw_req_t *req)
{
    json_t *args = gw_api_fields(req, s_create_fields);
    if (!args) {
        return;
    }
    if (!json_object_get(args, "branch")) {
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "branch", "branch is required");
        gw_req_respond_error(req, &err);
        json_decref(args);
        return;
    }
    gw_req_call(req, "wt.create", false, args, NULL);
}

void gw_h_wt_get(gw_req_t *req)
{
    json_t *args = json_object();
    if (s_id(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "wt.get", false, args, NULL);
}

void gw_h_wt_delete(gw_req_t *req)
{
    json_t *args = json_object();
    const char *force = gw_req_query(req, "force");
    if (s_id(req, args) < 0) {
        json_decref(args);
        return;
    }
    if (force && strcmp(force, "true") != 0 && strcmp(force, "false") != 0) {
        gw_req_fail(req, 400, "invalid_field", "force must be true or false");
        json_decref(args);
        return;
    }
    json_object_set_new(args, "force", json_boolean(force && strcmp(force, "true") == 0));
    gw_req_call(req, "wt.delete", false, args, NULL);
}
