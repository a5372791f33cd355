/*  gw_http — the MHD access handler and the request context: the two-call
    pattern, bounded body reading, dispatch through the route table and auth,
    suspend while a node works and resume when its reply has been turned into
    a response, and the response helpers every handler uses. Loop thread only
    (MHD runs in external-epoll mode inside the gateway's zloop). */
#define LOG_MODULE "gw_http"
#include "gateway/gateway_internal.h"
#include "gateway/gw_api_nodes.h"
#include "gateway/gw_legacy.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A chunked body past --max-body is read and dropped up to this much more
   (to answer 413), then the connection is closed. */
#define S_DISCARD_MAX (16u * 1024 * 1024)
/* The request head's limits (gateway_internal.h). gw_accept has judged the
   head of a connection's first request before libmicrohttpd read it; a
   later request on a kept-alive connection is only seen here, once
   libmicrohttpd has parsed it into its pool (a head it cannot hold gets its
   own HTML 431/414, see docs/api.md). Percent-escapes count decoded here. */
#define S_MAX_TARGET GW_HEAD_MAX_TARGET
#define S_MAX_HEAD   GW_HEAD_MAX

/* Adds one header line ("name: value\r\n") or query argument ("name=value&")
   to the byte count in cls. */
static enum MHD_Result
s_count_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    size_t *bytes = cls;
    *bytes += strlen(key) + (value ? strlen(value) : 0) + (kind == MHD_HEADER_KIND ? 4 : 2);
    return MHD_YES;
}

/* 414 when the request target is over S_MAX_TARGET, 431 when the whole head
   is over S_MAX_HEAD, else 0. */
static int
s_head_status(struct MHD_Connection *conn, const char *url, const char *method, const char *version)
{
    size_t target = strlen(url ? url : "/"), headers = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, s_count_bytes, &target);
    if (target > S_MAX_TARGET) {
        return 414;
    }
    MHD_get_connection_values(conn, MHD_HEADER_KIND, s_count_bytes, &headers);
    size_t line = strlen(method) + target + strlen(version ? version : "") + 4;
    return line + headers + 2 > S_MAX_HEAD ? 431 : 0;
}

static gw_req_t *
s_req_new(gw_server_t *srv, struct MHD_Connection *conn, const char *url, const char *method)
{
    gw_req_t *req = calloc(1, sizeof *req);
    if (!req) {
        return NULL;
    }
    req->srv = srv;
    req->conn = conn;
    req->started_us = util_mono_us();
    snprintf(req->method, sizeof req->method, "%s", method);
    req->path = strdup(url ? url : "/");
    if (!req->path) {
        free(req);
        return NULL;
    }
    req->route = gw_route_match(req->method, req->path, req->params, req->allow, sizeof req->allow,
                                &req->miss_status);
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long declared;
    if (cl && gw_parse_int(cl, 0, INT64_MAX, &declared) == 0 && declared > srv->cfg->max_body) {
        req->too_large = true;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    gw_iptab_key(ci ? ci->client_addr : NULL, req->ip);
    req->recv_deadline_ms = util_mono_ms() + srv->cfg->request_deadline_ms;
    req->handle = zlistx_add_end(srv->reqs, req);
    return req;
}

static void s_req_free(gw_req_t *req)
{
    gw_upstream_cancel(req->srv->upstream, req->call_id);
    gw_registry_cancel(req->srv->registry, req->admin_id);
    gw_sse_destroy(&req->sse);
    gw_poll_destroy(&req->poll);
    json_decref(req->legacy);
    if (req->response && !req->response_shared) {
        MHD_destroy_response(req->response);
    }
    if (req->handle) {
        zlistx_delete(req->srv->reqs, req->handle);
    }
    free(req->path);
    free(req->body);
    free(req);
}

static void s_body_append(gw_req_t *req, const char *data, size_t len)
{
    size_t max = (size_t)req->srv->cfg->max_body;
    if (req->too_large || req->body_len + len > max) {
        req->discarded += len;
        req->too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = 0;
        req->body_cap = 0;
        return;
    }
    /* libmicrohttpd hands the body over in pieces as small as its pool
       leaves room for (a few hundred bytes behind a large head): grow
       geometrically, or a 1 MiB body costs thousands of full copies. */
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap * 2 : 4096;
        if (cap < req->body_len + len + 1) {
            cap = req->body_len + len + 1;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        char *grown = realloc(req->body, cap);
        if (!grown) {
            req->too_large = true;
            return;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = 0;
}

static bool s_is_json(const char *ctype)
{
    if (!ctype || strncasecmp(ctype, "application/json", 16) != 0) {
        return false;
    }
    char c = ctype[16];
    return c == 0 || c == ';' || c == ' ' || c == '\t';
}

/* Runs the route: 414/431, 404/405, 413, 415, then auth and the handler. */
static void s_dispatch(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    req->state = GW_REQ_RUNNING;
    req->deadline_ms = util_mono_ms() + srv->cfg->request_timeout_ms;
    if (req->head_status == 414) {
        gw_req_fail(req, 414, "uri_too_long", "the request target is longer than %d bytes",
                    S_MAX_TARGET);
    } else if (req->head_status == 431) {
        gw_req_fail(req, 431, "headers_too_large",
                    "the request line and headers are larger than %d bytes", S_MAX_HEAD);
    } else if (!req->route) {
        if (req->miss_status == 405) {
            gw_req_fail(req, 405, "method_not_allowed", "%s is not allowed on %s", req->method,
                        req->path);
        } else {
            gw_req_fail(req, 404, "not_found", "no route for %s %s", req->method, req->path);
        }
    } else if (req->too_large) {
        gw_req_fail(req, 413, "payload_too_large", "the request body is larger than %ld bytes",
                    srv->cfg->max_body);
    } else if (srv->stopping) {
        gw_req_fail(req, 503, "unavailable", "the gateway is shutting down");
    } else if ((req->route->flags & GW_ROUTE_BODY) && req->body_len > 0 &&
               !s_is_json(gw_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        gw_req_fail(req, 415, "unsupported_media_type",
                    "the request body must be sent as Content-Type: application/json");
    } else if ((req->route->flags & GW_ROUTE_AUTH) && !req->authed) {
        gw_auth_check(req, req->route->handler);
    } else {
        req->route->handler(req);
    }
}

/* The token was good: read the body now (or answer 413 without reading it). */
static void s_authed(gw_req_t *req)
{
    req->authed = true;
    if (req->too_large) {
        s_dispatch(req);
    } else {
        req->state = GW_REQ_RECEIVING;
    }
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        gw_server_kick(req->srv);
    }
}

/* First call of a route that needs a token: check it on the head, before a
   byte of the body is read, so that an unauthenticated client cannot make
   the gateway read (or buffer) its body. True when the check started. */
static bool s_auth_first(gw_req_t *req)
{
    if (req->head_status || !req->route || !(req->route->flags & GW_ROUTE_AUTH) ||
        req->srv->stopping) {
        return false;
    }
    req->state = GW_REQ_AUTH;
    req->deadline_ms = util_mono_ms() + req->srv->cfg->request_timeout_ms;
    gw_auth_check(req, s_authed);
    return true;
}

/* After the handler: queue a prepared response, or suspend while waiting. */
static enum MHD_Result s_settle(gw_req_t *req)
{
    if (req->state == GW_REQ_READY) {
        req->state = GW_REQ_DONE;
        enum MHD_Result rc = MHD_queue_response(req->conn, req->response_status, req->response);
        if (!req->response_shared) {
            MHD_destroy_response(req->response);
        }
        req->response = NULL;
        gw_metrics_http(req->srv->metrics, req->route, (int)req->response_status);
        LOG_I("%s %s status=%u us=%lld", req->method, req->path, req->response_status,
              (long long)(util_mono_us() - req->started_us));
        return rc;
    }
    if ((req->state == GW_REQ_RUNNING || req->state == GW_REQ_AUTH) && !req->suspended) {
        /* Suspended in the head call (auth), libmicrohttpd calls the head
           call again after the resume, before any body. */
        req->head_again = req->state == GW_REQ_AUTH;
        MHD_suspend_connection(req->conn);
        req->suspended = true;
    }
    return MHD_YES;
}

enum MHD_Result gw_http_access(void *cls,
                               struct MHD_Connection *conn,
                               const char *url,
                               const char *method,
                               const char *version,
                               const char *upload_data,
                               size_t *upload_data_size,
                               void **req_cls)
{
    gw_req_t *req = *req_cls;
    if (!req) {
        /* First call: headers only. Answering now would close the connection. */
        req = s_req_new(cls, conn, url, method);
        *req_cls = req;
        gw_conn_busy(conn, true, false);
        if (req) {
            /* Answered after the body, like any request: the answer is
               queued on the second call, keeps the connection and leaves
               more of the pool for its headers. */
            req->head_status = s_head_status(conn, url, method, version);
        }
        if (req && s_auth_first(req)) {
            /* Answered now (401, 429, or 413 after a good token) or later. */
            return s_settle(req);
        }
        if (req && req->too_large) {
            /* Content-Length is over the limit: answer 413 before reading the
               body; answering on the first call also closes the connection. */
            s_dispatch(req);
            return s_settle(req);
        }
        return req ? MHD_YES : MHD_NO;
    }
    if (req->state == GW_REQ_AUTH && req->srv->stopping) {
        /* Resumed at shutdown while its token was being checked. */
        gw_upstream_cancel(req->srv->upstream, req->call_id);
        req->call_id = 0;
        gw_req_fail(req, 503, "unavailable", "the gateway is shutting down");
    }
    if (req->state == GW_REQ_READY || req->state == GW_REQ_AUTH) {
        /* Answered (or being authenticated) before the body: it is not
           read; libmicrohttpd closes the connection after the answer. */
        return s_settle(req);
    }
    if (req->cut) {
        return MHD_NO; /* 408 written at the deadline (gw_conn_tick): close */
    }
    if (req->head_again && *upload_data_size == 0) {
        req->head_again = false; /* the repeated head call: the body comes next */
        return MHD_YES;
    }
    if (*upload_data_size) {
        s_body_append(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (req->discarded > S_DISCARD_MAX) {
            LOG_I("%s %s closed: body passed the limit by %zu bytes", req->method, req->path,
                  req->discarded);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (req->state == GW_REQ_RECEIVING) {
        s_dispatch(req);
    } else if (req->state == GW_REQ_RUNNING && req->srv->stopping) {
        /* Resumed at shutdown without an answer: never suspend again, MHD
           must see no suspended connection when it stops. */
        gw_upstream_cancel(req->srv->upstream, req->call_id);
        gw_registry_cancel(req->srv->registry, req->admin_id);
        req->call_id = 0;
        req->admin_id = 0;
        gw_req_fail(req, 503, "unavailable", "the gateway is shutting down");
    }
    return s_settle(req);
}

void gw_http_completed(void *cls,
                       struct MHD_Connection *conn,
                       void **req_cls,
                       enum MHD_RequestTerminationCode toe)
{
    gw_req_t *req = *req_cls;
    if (!req) {
        return;
    }
    gw_conn_busy(conn, false, req->response_status == 101);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->state != GW_REQ_DONE) {
        gw_metrics_http(req->srv->metrics, req->route, 499);
        LOG_I("%s %s ended before an answer toe=%d", req->method, req->path, (int)toe);
    }
    s_req_free(req);
    *req_cls = NULL;
}

/* ---- responses ----------------------------------------------------------- */

void gw_req_respond(gw_req_t *req, unsigned status, struct MHD_Response *resp)
{
    if (!resp) {
        LOG_E("cannot build a response status=%u", status);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 503;
    }
    if (req->state == GW_REQ_DONE || req->state == GW_REQ_READY) {
        LOG_E("second response dropped %s %s status=%u", req->method, req->path, status);
        MHD_destroy_response(resp);
        return;
    }
    gw_legacy_headers(req, resp);
    gw_limits_headers(req, resp);
    req->response = resp;
    req->response_status = status;
    req->state = GW_REQ_READY;
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        gw_server_kick(req->srv);
    }
}

void gw_req_respond_shared(gw_req_t *req, unsigned status, struct MHD_Response *resp)
{
    if (req->state == GW_REQ_DONE || req->state == GW_REQ_READY || !resp) {
        gw_req_fail(req, 503, "unavailable", "no response");
        return;
    }
    gw_req_respond(req, status, resp);
    req->response_shared = true;
}

void gw_req_respond_json(gw_req_t *req, unsigned status, const char *json, unsigned retry_after)
{
    bool body = json && *json && status != 204 && status != 304;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body ? strlen(json) : 0, body ? (void *)json : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (resp && body) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
    if (resp && (retry_after || status == 503 || status == 429)) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after ? retry_after : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (resp && status == 405 && req->allow[0]) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->allow);
    }
    gw_req_respond(req, status, resp);
}

void gw_req_respond_value(gw_req_t *req, unsigned status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    gw_req_respond_json(req, status, text, 0);
    free(text);
}

void gw_req_respond_error(gw_req_t *req, const gw_error_t *err)
{
    char *body = gw_error_body(err);
    gw_req_respond_json(req, (unsigned)err->status, body ? body : "{}", err->retry_after);
    free(body);
}

void gw_req_fail(gw_req_t *req, int status, const char *code, const char *fmt, ...)
{
    gw_error_t err;
    gw_error_set(&err, status, code, NULL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    gw_req_respond_error(req, &err);
}

/* ---- upstream calls ------------------------------------------------------ */

static void s_on_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    req->call_id = 0;
    if (req->then) {
        req->then(req, reply);
    } else {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    }
}

void gw_req_call(gw_req_t *req, proto_op_id_t op, json_t *args, gw_reply_fn *then)
{
    const proto_op_t *spec = &proto_ops[op];
    bool conv_bound = spec->scope == PROTO_SCOPE_CONV ||
                      (spec->scope == PROTO_SCOPE_CONV_OPT && !util_uuid_is_nil(req->conv_id));
    char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    json_decref(args);
    if (!text) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    gw_call_t call = {.op = spec->name,
                      .conv_id = conv_bound ? req->conv_id : NULL,
                      .team_id = req->has_team ? req->team_id : NULL,
                      .limits = req->has_team ? &req->limits : NULL,
                      .args = text,
                      .deadline_ms = req->deadline_ms,
                      /* A token lookup is counted, not shed: refused in the head
                         call, its 503 would also close the connection (the body
                         unread), and every token is looked up again each
                         GW_AUTH_POS_TTL_MS, under overload too. */
                      .shed = op != PROTO_OP_AUTH};
    req->then = then;
    req->call_id = gw_upstream_call(req->srv->upstream, &call, s_on_reply, req);
    free(text);
    if (!req->call_id) {
        gw_error_t err;
        gw_error_set(&err, 503, "unavailable", NULL, "%s",
                     gw_upstream_busy(req->srv->upstream)
                         ? "the node has too many requests in flight; retry later"
                     : conv_bound ? "no live node owns this conversation right now"
                                  : "no live node is available right now");
        err.retry_after = 1;
        gw_req_respond_error(req, &err);
    }
}

/* ---- request facts -------------------------------------------------------- */

const char *gw_req_header(gw_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *gw_req_query(gw_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int gw_req_idempotency(gw_req_t *req, json_t *args, gw_error_t *err)
{
    const char *key = gw_req_header(req, "Idempotency-Key");
    if (!key) {
        return 0;
    }
    size_t n = strlen(key);
    bool ok = n > 0 && n <= GW_IDEMPOTENCY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = key[i] >= 0x20 && key[i] < 0x7f;
    }
    if (!ok) {
        return gw_error_set(err, 400, "invalid_field", "Idempotency-Key",
                            "Idempotency-Key must be 1 to %d printable ASCII characters",
                            GW_IDEMPOTENCY_MAX);
    }
    /* The hash covers method, path and body, so a reused key with another
       request is told apart (409 at the node). */
    size_t len = strlen(req->method) + strlen(req->path) + req->body_len + 3;
    char *buf = malloc(len);
    if (!buf) {
        return gw_error_set(err, 503, "unavailable", NULL, "out of memory");
    }
    int k = snprintf(buf, len, "%s %s\n", req->method, req->path);
    if (req->body_len) {
        memcpy(buf + k, req->body, req->body_len);
    }
    char hex[65];
    util_sha256_hex(buf, (size_t)k + req->body_len, hex);
    free(buf);
    json_object_set_new(args, "idempotency_key", json_string(key));
    json_object_set_new(args, "request_hash", json_string(hex));
    return 0;
}

void gw_http_fail_all(gw_server_t *srv)
{
    for (gw_req_t *req = zlistx_first(srv->reqs); req; req = zlistx_next(srv->reqs)) {
        if (req->state == GW_REQ_RUNNING || req->state == GW_REQ_AUTH) {
            gw_upstream_cancel(srv->upstream, req->call_id);
            gw_registry_cancel(srv->registry, req->admin_id);
            req->call_id = 0;
            req->admin_id = 0;
            gw_req_fail(req, 503, "unavailable", "the gateway is shutting down");
        }
    }
}
