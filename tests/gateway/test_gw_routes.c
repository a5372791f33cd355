/*  test_gw_routes — the static route table and path matching (gw_routes):
    parameters, trailing slash, 404 versus 405 with Allow, HEAD as GET. */
#include "gateway/gateway_internal.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(gw_routes, .timeout = 10);

static const gw_route_t *s_match(const char *method,
                                 const char *path,
                                 int *status,
                                 char *allow,
                                 char params[GW_PARAMS_MAX][GW_PARAM_LEN])
{
    *status = 0;
    return gw_route_match(method, path, params, allow, 64, status);
}

Test(gw_routes, matches_static_and_param_routes)
{
    struct {
        const char *method, *path, *pattern, *param;
    } ok[] = {
        {"GET", "/health", "/health", ""},
        {"HEAD", "/health", "/health", ""},
        {"GET", "/ready", "/ready", ""},
        {"GET", "/metrics", "/metrics", ""},
        {"GET", "/", "/", ""},
        {"HEAD", "/", "/", ""},
        {"GET", "/console/app.js", "/console/:file", "app.js"},
        {"GET", "/api/status", "/api/status", ""},
        {"POST", "/api/conversations", "/api/conversations", ""},
        {"GET", "/api/conversations/", "/api/conversations", ""},
        {"GET", "/api/conversations/abc", "/api/conversations/:id", "abc"},
        {"PATCH", "/api/conversations/abc", "/api/conversations/:id", "abc"},
        {"DELETE", "/api/conversations/abc/", "/api/conversations/:id", "abc"},
        {"GET", "/api/conversations/x1/messages", "/api/conversations/:id/messages", "x1"},
        {"POST", "/api/conversations/x1/messages", "/api/conversations/:id/messages", "x1"},
        {"POST", "/api/conversations/x1/cancel", "/api/conversations/:id/cancel", "x1"},
        {"GET", "/api/conversations/x1/events", "/api/conversations/:id/events", "x1"},
        {"POST", "/api/message", "/api/message", ""},
        {"GET", "/api/stream", "/api/stream", ""},
        {"GET", "/api/events", "/api/events", ""},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int status;
        char allow[64];
        char params[GW_PARAMS_MAX][GW_PARAM_LEN] = {{0}};
        const gw_route_t *r = s_match(ok[i].method, ok[i].path, &status, allow, params);
        cr_assert_not_null(r, "%s %s", ok[i].method, ok[i].path);
        cr_expect_str_eq(r->pattern, ok[i].pattern);
        cr_expect_str_eq(params[0], ok[i].param, "%s", ok[i].path);
        cr_expect_not_null(r->handler);
        cr_expect_eq(strncmp(ok[i].path, "/api/", 5) == 0, (r->flags & GW_ROUTE_AUTH) != 0,
                     "every /api/ route needs auth: %s", ok[i].path);
    }
}

Test(gw_routes, unknown_paths_are_404)
{
    const char *paths[] = {"//",
                           "/api",
                           "/console",
                           "/console/",
                           "/console/../gateway",
                           "/console/a/b",
                           "/api/conversations/a/b",
                           "/api/conversations//messages",
                           "/api/conversations/a/messages/b",
                           "/healthz",
                           "/health/x",
                           "//health",
                           "/api/conversation"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        int status;
        char allow[64];
        char params[GW_PARAMS_MAX][GW_PARAM_LEN];
        cr_expect_null(s_match("GET", paths[i], &status, allow, params), "%s", paths[i]);
        cr_expect_eq(status, 404, "%s", paths[i]);
    }
}

Test(gw_routes, wrong_method_is_405_with_allow)
{
    int status;
    char allow[64];
    char params[GW_PARAMS_MAX][GW_PARAM_LEN];
    cr_assert_null(s_match("PUT", "/api/conversations/abc", &status, allow, params));
    cr_assert_eq(status, 405);
    cr_assert_str_eq(allow, "GET, PATCH, DELETE");
    cr_assert_null(s_match("DELETE", "/api/message", &status, allow, params));
    cr_assert_eq(status, 405);
    cr_assert_str_eq(allow, "POST");
    cr_assert_null(s_match("POST", "/metrics", &status, allow, params));
    cr_assert_str_eq(allow, "GET");
}

Test(gw_routes, long_parameter_is_refused)
{
    char path[512] = "/api/conversations/";
    memset(path + strlen(path), 'a', 300);
    int status;
    char allow[64];
    char params[GW_PARAMS_MAX][GW_PARAM_LEN];
    cr_assert_null(s_match("GET", path, &status, allow, params));
    cr_assert_eq(status, 404);
}

Test(gw_routes, table_and_index)
{
    size_t n;
    const gw_route_t *routes = gw_routes(&n);
    cr_assert_gt(n, 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(gw_route_index(&routes[i]), i);
    }
    cr_assert_eq(gw_route_index(NULL), n);
}
