/*  gw_ws_upgrade — GET /socket/websocket: the handshake's checks (RFC 6455
    4.2.1, vsn of Phoenix Channels v2), the 101 through libmicrohttpd's
    upgrade, and the hand-over of the upgraded socket to the hub (gw_ws.c),
    after which libmicrohttpd holds nothing of it.
    Loop thread only, except the pure gw_ws_handshake_check. */
#define LOG_MODULE "gw_ws"
#include "gateway/gw_limits.h"
#include "gateway/gw_ws.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* libmicrohttpd hands over the socket once the 101 is sent. The hub takes
   a duplicate of it, and libmicrohttpd is told to close its connection at
   once: that frees the connection, its memory pool, the request and the
   upgrade handle (~6 KiB, docs/performance.md, P10) while the duplicate
   keeps the TCP connection open (libmicrohttpd 0.9.75 closes an upgraded
   plain-TCP socket with close(), no shutdown()). */
static void s_upgraded(void *cls,
                       struct MHD_Connection *conn,
                       void *req_cls,
                       const char *extra_in,
                       size_t extra_in_size,
                       MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    gw_server_t *srv = cls;
    const gw_req_t *req = req_cls; /* alive until libmicrohttpd closes the socket */
    gw_ws_open_t open = {.fd = fcntl(sock, F_DUPFD_CLOEXEC, 0),
                         .team_id = req->team_id,
                         .limits = &req->limits,
                         .ip = req->ip,
                         .extra = extra_in,
                         .extra_len = extra_in_size};
    if (open.fd < 0) {
        LOG_W("cannot take a WebSocket: %s", strerror(errno));
    } else {
        gw_ws_open(srv->ws, &open);
    }
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    gw_server_kick(srv);
}

/* Sec-WebSocket-Accept of key (RFC 6455 4.2.2): base64 (SHA-1 (key GUID)). */
static void s_accept_key(const char *key, char out[32])
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(buf, (size_t)n, sha, &len, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, sha, (int)len);
}

/* Whether the comma list header holds token (case-insensitive). */
static bool s_has_token(const char *header, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t')) {
            end--;
        }
        if (end == n && strncasecmp(p, token, n) == 0) {
            return true;
        }
        p += len;
    }
    return false;
}

int gw_ws_handshake_check(const gw_ws_handshake_t *h, gw_error_t *err)
{
    unsigned char raw[32];
    const char *why = NULL;
    if (!h->upgrade || !s_has_token(h->upgrade, "websocket") || !h->connection ||
        !s_has_token(h->connection, "upgrade")) {
        why = "a WebSocket handshake needs Upgrade: websocket";
    } else if (!h->version || strcmp(h->version, "13") != 0) {
        why = "Sec-WebSocket-Version must be 13";
    } else if (!h->key || strlen(h->key) != 24 ||
               EVP_DecodeBlock(raw, (const unsigned char *)h->key, 24) != 18) {
        why = "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)";
    } else if (h->vsn && strcmp(h->vsn, "2.0.0") != 0) {
        why = "vsn must be 2.0.0 (Phoenix Channels v2)";
    }
    return why ? gw_error_set(err, 400, "invalid_field", NULL, "%s", why) : 0;
}

/* Checks the handshake headers; 0, or -1 with the error answered. */
static int s_check_handshake(gw_req_t *req, const char **key)
{
    gw_ws_handshake_t h = {.upgrade = gw_req_header(req, "Upgrade"),
                           .connection = gw_req_header(req, "Connection"),
                           .version = gw_req_header(req, "Sec-WebSocket-Version"),
                           .key = gw_req_header(req, "Sec-WebSocket-Key"),
                           .vsn = gw_req_query(req, "vsn")};
    gw_error_t err;
    if (gw_ws_handshake_check(&h, &err) < 0) {
        gw_req_respond_error(req, &err);
        return -1;
    }
    *key = h.key;
    return 0;
}

void gw_h_socket(gw_req_t *req)
{
    const char *key = NULL;
    if (s_check_handshake(req, &key) < 0) {
        return;
    }
    if (gw_limits_streams(req->srv->limits, req->team_id) >= req->limits.streams) {
        gw_limits_stream_take(req); /* answers the 429 */
        return;
    }
    struct MHD_Response *resp = MHD_create_response_for_upgrade(s_upgraded, req->srv);
    if (!resp) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    char accept[32];
    s_accept_key(key, accept);
    MHD_add_response_header(resp, "Upgrade", "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    gw_req_respond(req, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
}
