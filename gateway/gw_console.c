/*  gw_console — serves the embedded web console (gateway/gw_console.h):
    GET/HEAD / is index.html, /console/<name> any other embedded file. Every
    answer carries a Content-Security-Policy that allows only this origin
    (no inline script or style, no other host to connect to), nosniff, no
    referrer and no framing. Loop thread only. */
#include "gateway/gw_console.h"
#include "gateway/gateway_internal.h"

#include <string.h>

/* Scripts, styles, images and connections (fetch, the SSE streams) only
   from the gateway itself; nothing inline, no plugins, no framing. */
#define S_CSP                                                                                      \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

const gw_console_file_t *gw_console_find(const char *name)
{
    for (size_t i = 0; name && i < gw_console_files_count; i++) {
        if (strcmp(gw_console_files[i].name, name) == 0) {
            return &gw_console_files[i];
        }
    }
    return NULL;
}

/* True when an If-None-Match list names etag (or is "*"). */
static bool s_not_modified(const char *inm, const char *etag)
{
    if (!inm) {
        return false;
    }
    if (strcmp(inm, "*") == 0) {
        return true;
    }
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        bool start = p == inm || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/';
        bool end = p[n] == 0 || p[n] == ',' || p[n] == ' ';
        if (start && end) {
            return true;
        }
    }
    return false;
}

static void s_headers(struct MHD_Response *resp, const gw_console_file_t *f)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f->etag);
    /* Always revalidated: a new gateway build serves new files at once. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy", S_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
}

void gw_h_console(gw_req_t *req)
{
    const char *name = strcmp(req->route->pattern, "/") == 0 ? "index.html" : req->params[0];
    const gw_console_file_t *f = gw_console_find(name);
    if (!f) {
        gw_req_fail(req, 404, "not_found", "no console file %s", req->path);
        return;
    }
    struct MHD_Response *resp;
    unsigned status = 200;
    if (s_not_modified(gw_req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), f->etag)) {
        status = 304;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(f->size, (void *)f->data, MHD_RESPMEM_PERSISTENT);
        if (resp) {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
        }
    }
    if (resp) {
        s_headers(resp, f);
    }
    gw_req_respond(req, status, resp);
}
