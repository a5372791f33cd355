/*  fuzz_gw_request — a request head as a client sends it: the head peeker
    (gw_head_scan, on the whole input and on a prefix, as bytes arrive), then
    for a head it passes, the route table (gw_route_match on the method and
    path of the request line, as gw_http.c calls it with what libmicrohttpd
    hands over), the Content-Length check and the query values the API
    handlers parse (limit, cursor, after, UUIDs). */
#include "gateway/gateway_internal.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A NUL-terminated copy of [p, p + n), or NULL when it holds a NUL (libmicrohttpd
   never hands such a string to a handler). */
static char *s_cstr(const char *p, size_t n)
{
    if (memchr(p, 0, n)) {
        return NULL;
    }
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static void s_route(const char *method, const char *path)
{
    char params[GW_PARAMS_MAX][GW_PARAM_LEN];
    char allow[64]; /* the size of gw_req_t.allow */
    int status = 0;
    const gw_route_t *r = gw_route_match(method, path, params, allow, sizeof allow, &status);
    if (r) {
        size_t n = 0;
        const gw_route_t *all = gw_routes(&n);
        FUZZ_CHECK(gw_route_index(r) < n && &all[gw_route_index(r)] == r);
        for (size_t i = 0; i < GW_PARAMS_MAX; i++) {
            FUZZ_CHECK(strnlen(params[i], GW_PARAM_LEN) < GW_PARAM_LEN);
        }
    } else {
        FUZZ_CHECK(status == 404 || status == 405);
        FUZZ_CHECK(strlen(allow) < sizeof allow);
    }
}

/* Each '&'-separated query value goes through the parser its name selects. */
static void s_query(const char *query)
{
    char *copy = strdup(query);
    char *save = NULL;
    for (char *arg = strtok_r(copy, "&", &save); arg; arg = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(arg, '=');
        const char *value = eq ? eq + 1 : "";
        gw_error_t err;
        long limit;
        long long n;
        uint8_t id[16];
        if (strncmp(arg, "limit=", 6) == 0) {
            gw_parse_limit(value, &limit, &err);
        } else if (strncmp(arg, "cursor=", 7) == 0) {
            gw_parse_cursor(value, &err);
        } else if (strncmp(arg, "after=", 6) == 0) {
            gw_parse_int(value, 0, INT64_MAX, &n);
        } else {
            gw_parse_uuid(value, "id", id, &err);
        }
    }
    free(copy);
}

/* The request line "METHOD TARGET VERSION" of a head gw_head_scan passed. */
static void s_request_line(const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    if (!sp) {
        return;
    }
    const char *target = sp + 1;
    const char *sp2 = memchr(target, ' ', len - (size_t)(target - line));
    size_t tlen = (size_t)((sp2 ? sp2 : line + len) - target);
    char *m = s_cstr(line, (size_t)(sp - line));
    char *t = s_cstr(target, tlen);
    if (m && t) {
        char method[16]; /* gw_req_t.method: longer methods are cut */
        snprintf(method, sizeof method, "%s", m);
        char *q = strchr(t, '?');
        if (q) {
            *q++ = 0;
            s_query(q);
        }
        s_route(method, t);
    }
    free(m);
    free(t);
}

/* Header lines: Content-Length goes through the check gw_http.c makes. */
static void s_headers(const char *p, const char *end)
{
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *le = lf ? lf : end;
        if ((size_t)(le - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            char *v = s_cstr(p + 15, (size_t)(le - p - 15));
            long long n;
            if (v) {
                gw_parse_int(v + strspn(v, " \t"), 0, INT64_MAX, &n);
            }
            free(v);
        }
        p = lf ? lf + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    gw_head_scan(buf, size / 2); /* the first read of a head */
    gw_head_verdict_t v = gw_head_scan(buf, size);
    if (v != GW_HEAD_OK) {
        return 0;
    }
    size_t skip = 0;
    while (skip < size && (buf[skip] == '\r' || buf[skip] == '\n')) {
        skip++;
    }
    const char *line = buf + skip;
    const char *lf = memchr(line, '\n', size - skip);
    FUZZ_CHECK(lf); /* GW_HEAD_OK means the request line is complete */
    size_t len = (size_t)(lf - line);
    s_request_line(line, len > 0 && line[len - 1] == '\r' ? len - 1 : len);
    s_headers(lf + 1, buf + size);
    return 0;
}
