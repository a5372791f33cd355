/*  gw_routes — the static route table {method, pattern, handler}, path
    matching, and the process routes (/health, /ready, /metrics). Matching is
    pure; handlers run on the loop thread. */
#include "gateway/gateway_internal.h"
#include "gateway/gw_api_actors.h"
#include "gateway/gw_api_nodes.h"
#include "gateway/gw_console.h"
#include "gateway/gw_legacy.h"

#include <stdio.h>
#include <string.h>

#define A GW_ROUTE_AUTH
#define B GW_ROUTE_BODY
#define L GW_ROUTE_LEGACY

static const gw_route_t s_routes[] = {
    {"GET", "/health", gw_h_health, 0},
    {"GET", "/ready", gw_h_ready, 0},
    {"GET", "/metrics", gw_h_metrics, 0},
    /* The web console (gw_console.c): static files, no token (the page asks for one). */
    {"GET", "/", gw_h_console, 0},
    {"GET", "/console/:file", gw_h_console, 0},
    {"GET", "/api/status", gw_h_status, A},
    /* Admin tokens only (gw_api_nodes.c; the registry checks the token). */
    {"POST", "/api/nodes/:id/drain", gw_h_node_drain, A},
    {"POST", "/api/nodes/:id/undrain", gw_h_node_undrain, A},
    {"POST", "/api/conversations", gw_h_conv_create, A | B},
    {"GET", "/api/conversations", gw_h_conv_list, A},
    {"GET", "/api/conversations/:id", gw_h_conv_get, A},
    {"PATCH", "/api/conversations/:id", gw_h_conv_patch, A | B},
    {"DELETE", "/api/conversations/:id", gw_h_conv_delete, A},
    {"GET", "/api/conversations/:id/messages", gw_h_msg_list, A},
    {"POST", "/api/conversations/:id/messages", gw_h_msg_post, A | B},
    {"POST", "/api/conversations/:id/cancel", gw_h_conv_cancel, A | B},
    {"GET", "/api/conversations/:id/events", gw_h_conv_events, A},
    {"GET", "/api/conversations/:id/actors", gw_h_actor_list, A},
    {"POST", "/api/conversations/:id/actors", gw_h_actor_attach, A | B},
    {"DELETE", "/api/conversations/:id/actors/:name", gw_h_actor_detach, A},
    {"POST", "/api/message", gw_h_message, A | B},
    {"GET", "/api/stream", gw_h_stream, A},
    {"GET", "/api/events", gw_h_team_events, A},
    {"POST", "/api/events/:id/revert", gw_h_event_revert, A | B},
    {"GET", "/api/permissions", gw_h_perm_list, A},
    {"GET", "/api/permissions/:id", gw_h_perm_get, A},
    {"POST", "/api/permissions/:id/approve", gw_h_perm_approve, A | B},
    {"POST", "/api/permissions/:id/deny", gw_h_perm_deny, A | B},
    {"GET", "/api/permission-rules", gw_h_rule_list, A},
    {"POST", "/api/permission-rules", gw_h_rule_create, A | B},
    {"DELETE", "/api/permission-rules/:id", gw_h_rule_delete, A},
    {"GET", "/api/worktrees", gw_h_wt_list, A},
    {"POST", "/api/worktrees", gw_h_wt_create, A | B},
    {"GET", "/api/worktrees/:id", gw_h_wt_get, A},
    {"DELETE", "/api/worktrees/:id", gw_h_wt_delete, A},
    {"GET", "/api/strategies", gw_h_strategies, A},
    {"GET", "/socket/websocket", gw_h_socket, A | GW_ROUTE_QUERY_TOKEN},
    /* The TypeScript server's routes, for old clients (gw_legacy.c). */
    {"GET", "/status", gw_h_legacy_status, A | L},
    {"POST", "/message", gw_h_legacy_message, A | B | L},
    {"GET", "/interactions", gw_h_legacy_list, A | L},
    {"GET", "/interactions/:id", gw_h_legacy_get, A | L},
    {"POST", "/interactions/:id/permission/response", gw_h_legacy_perm_response, A | B | L},
    {"GET", "/permissions/:id/status", gw_h_legacy_perm_status, A | L},
    {"POST", "/permissions/:id/approve", gw_h_legacy_perm_approve, A | L},
    {"POST", "/permissions/:id/deny", gw_h_legacy_perm_deny, A | L},
    {"GET", "/worktrees", gw_h_legacy_wt_list, A | L},
    {"POST", "/worktrees", gw_h_legacy_wt_create, A | B | L},
    {"GET", "/stream", gw_h_legacy_stream, A | L},
};

#undef A
#undef B
#undef L

#define S_NROUTES (sizeof s_routes / sizeof s_routes[0])

const gw_route_t *gw_routes(size_t *count)
{
    *count = S_NROUTES;
    return s_routes;
}

size_t gw_route_index(const gw_route_t *route)
{
    if (!route || route < s_routes || route >= s_routes + S_NROUTES) {
        return S_NROUTES;
    }
    return (size_t)(route - s_routes);
}

/* Matches path against pattern segment by segment; ":x" captures one
   non-empty segment. Returns true and fills params on a match. */
static bool
s_match_path(const char *pattern, const char *path, char params[GW_PARAMS_MAX][GW_PARAM_LEN])
{
    size_t np = 0;
    const char *p = pattern, *u = path;
    if (strcmp(pattern, "/") == 0) {
        return strcmp(path, "/") == 0; /* the root has no segment to compare */
    }
    while (*p && *u) {
        if (*p != '/' || *u != '/') {
            return false;
        }
        p++, u++;
        size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");
        if (ulen == 0) {
            return false;
        }
        if (*p == ':') {
            if (np >= GW_PARAMS_MAX || ulen >= GW_PARAM_LEN) {
                return false;
            }
            memcpy(params[np], u, ulen);
            params[np++][ulen] = 0;
        } else if (plen != ulen || strncmp(p, u, plen) != 0) {
            return false;
        }
        p += plen, u += ulen;
    }
    /* One trailing slash on the request path is tolerated. */
    return !*p && (!*u || (u[0] == '/' && !u[1]));
}

static void s_allow_add(char *allow, size_t allow_len, const char *method)
{
    if (strstr(allow, method)) {
        return;
    }
    size_t n = strlen(allow);
    snprintf(allow + n, allow_len - n, "%s%s", n ? ", " : "", method);
}

const gw_route_t *gw_route_match(const char *method,
                                 const char *path,
                                 char params[GW_PARAMS_MAX][GW_PARAM_LEN],
                                 char *allow,
                                 size_t allow_len,
                                 int *status)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    bool path_found = false;
    if (allow_len) {
        allow[0] = 0;
    }
    char scratch[GW_PARAMS_MAX][GW_PARAM_LEN];
    for (size_t i = 0; i < S_NROUTES; i++) {
        memset(scratch, 0, sizeof scratch);
        if (!s_match_path(s_routes[i].pattern, path, scratch)) {
            continue;
        }
        if (strcmp(s_routes[i].method, m) == 0) {
            memcpy(params, scratch, sizeof scratch);
            return &s_routes[i];
        }
        path_found = true;
        if (allow_len) {
            s_allow_add(allow, allow_len, s_routes[i].method);
        }
    }
    *status = path_found ? 405 : 404;
    return NULL;
}

/* ---- process routes ----------------------------------------------------- */

void gw_h_health(gw_req_t *req)
{
    /* One response built at start and queued for every request: no JSON,
       no allocation per request (issue 6, P8). */
    gw_req_respond_shared(req, 200, req->srv->health);
}

void gw_h_ready(gw_req_t *req)
{
    gw_upstream_t *up = req->srv->upstream;
    if (req->srv->draining) {
        gw_req_fail(req, 503, "unavailable", "the gateway is shutting down");
        return;
    }
    if (gw_upstream_live(up) == 0) {
        gw_req_fail(req, 503, "unavailable", "no ring with a live node is known yet");
        return;
    }
    json_t *body = json_pack("{s:s, s:I, s:I}", "status", "ready", "ring_epoch",
                             (json_int_t)gw_upstream_epoch(up), "live_nodes",
                             (json_int_t)gw_upstream_live(up));
    gw_req_respond_value(req, 200, body);
}

void gw_h_metrics(gw_req_t *req)
{
    char *text = gw_metrics_render(req->srv->metrics, req->srv);
    if (!text) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    gw_req_respond(req, 200, resp);
}
