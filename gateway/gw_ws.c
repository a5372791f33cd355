/*  gw_ws — WebSocket transport: GET /socket/websocket answers 101 through
    libmicrohttpd's upgrade; the upgraded (non-blocking) socket then lives in
    an epoll set of its own (the hub, one loop poller) and wslay does the
    framing: masking enforced (a server context refuses unmasked frames with
    1002), fragments reassembled up to --max-body + 4 KiB (else 1009), ping
    answered with pong, close handshake. Text messages are checked for UTF-8
    (else 1007) and handed to the Phoenix layer (gw_phx.c); binary ones are
    refused (1003). Unsent output is bounded (GW_WS_OUT_MAX, else 1008); a
    socket silent for GW_WS_IDLE_MS is closed (1001). Loop thread only. */
#define LOG_MODULE "gw_ws"
#include "gateway/gw_ws.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define S_EVENTS        64   /* epoll events per wake */
#define S_CLOSE_WAIT_MS 5000 /* a peer that does not answer our close is cut */
#define S_SWEEP_MS      1000 /* idle sweep period */
/* Reading stops while this much output waits: a client that sends requests
   faster than it reads the answers is slowed down by TCP, not closed. */
#define S_READ_PAUSE (GW_WS_OUT_MAX / 2)

struct gw_ws_t {
    gw_ws_hub_t *hub;                      /* owner */
    int fd;                                /* upgraded socket (libmicrohttpd's) */
    struct MHD_UpgradeResponseHandle *urh; /* to close it */
    wslay_event_context_ptr ctx;           /* framing */
    gw_phx_t *phx;                         /* protocol state */
    uint8_t team_id[16];                   /* the token's team */
    bool counted;                          /* holds one of its team's stream slots */
    limits_t limits;                       /* the team's limits at the upgrade */
    char *extra;                           /* bytes read past the upgrade head (owned) */
    size_t extra_len, extra_off;           /* of extra */
    int64_t last_in_ms;                    /* last message received (mono) */
    int64_t close_ms;                      /* when our close was queued, 0 before */
    uint32_t events;                       /* epoll interest */
    bool draining;                         /* closed: reading the peer's rest until it leaves */
    void *handle;                          /* position in hub->sockets */
};

struct gw_ws_hub_t {
    gw_server_t *srv;    /* owner */
    int epoll_fd;        /* the sockets */
    zmq_pollitem_t item; /* epoll_fd as a loop poller */
    zlistx_t *sockets;   /* gw_ws_t (freed here) */
    int64_t sweep_ms;    /* next idle sweep */
};

/* ---- wslay callbacks ------------------------------------------------------ */

static ssize_t
s_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    gw_ws_t *ws = user_data;
    if (ws->extra_off < ws->extra_len) {
        size_t n = ws->extra_len - ws->extra_off;
        n = n < len ? n : len;
        memcpy(buf, ws->extra + ws->extra_off, n);
        ws->extra_off += n;
        return (ssize_t)n;
    }
    if (wslay_event_get_queued_msg_length(ctx) > S_READ_PAUSE) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(ws->fd, buf, len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return n;
}

static ssize_t
s_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    gw_ws_t *ws = user_data;
    ssize_t n = send(ws->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return n;
}

/* Whether text[0, len) is valid UTF-8 (jansson's check). */
static bool s_utf8(const char *text, size_t len)
{
    json_t *s = json_stringn(text, len);
    json_decref(s);
    return s != NULL;
}

static void s_on_msg(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_msg_recv_arg *arg,
                     void *user_data)
{
    gw_ws_t *ws = user_data;
    ws->last_in_ms = util_mono_ms();
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (!s_utf8((const char *)arg->msg, arg->msg_length)) {
            gw_ws_close(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "invalid UTF-8");
            return;
        }
        if (!ws->close_ms) {
            gw_phx_on_text(ws->phx, (const char *)arg->msg, arg->msg_length);
        }
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        gw_ws_close(ws, WSLAY_CODE_UNSUPPORTED_DATA, "binary messages are not supported");
    }
}

/* ---- one socket ------------------------------------------------------------- */

static void s_free(gw_ws_t *ws)
{
    gw_ws_hub_t *hub = ws->hub;
    if (ws->counted) {
        gw_limits_stream_close(hub->srv->limits, ws->team_id);
    }
    /* The protocol first: it may still want to send (it cannot now). */
    gw_phx_destroy(&ws->phx);
    epoll_ctl(hub->epoll_fd, EPOLL_CTL_DEL, ws->fd, NULL);
    if (ws->handle) {
        zlistx_delete(hub->sockets, ws->handle);
    }
    if (ws->ctx) {
        wslay_event_context_free(ws->ctx);
    }
    /* libmicrohttpd closes the socket and ends the request. */
    MHD_upgrade_action(ws->urh, MHD_UPGRADE_ACTION_CLOSE);
    gw_server_kick(hub->srv);
    free(ws->extra);
    free(ws);
}

/* Sets the epoll interest from what wslay wants; frees the socket when it
   wants nothing more (closed both ways, or failed). */
static void s_update(gw_ws_t *ws)
{
    bool rd = wslay_event_want_read(ws->ctx), wr = wslay_event_want_write(ws->ctx);
    if (!rd && !wr) {
        /* Done both ways. Freeing now, with bytes of the peer unread, would
           reset the connection and could destroy our close frame before
           the peer reads it: end our side, drop what still comes, and free
           at its end (or after S_CLOSE_WAIT_MS, gw_ws_hub_tick). */
        ws->draining = true;
        ws->close_ms = ws->close_ms ? ws->close_ms : util_mono_ms();
        shutdown(ws->fd, SHUT_WR);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = ws};
        epoll_ctl(ws->hub->epoll_fd, EPOLL_CTL_MOD, ws->fd, &ev);
        ws->events = ev.events;
        return;
    }
    bool paused = wslay_event_get_queued_msg_length(ws->ctx) > S_READ_PAUSE;
    uint32_t want = (rd && !paused ? EPOLLIN | EPOLLRDHUP : 0) | (wr ? EPOLLOUT : 0);
    if (want != ws->events) {
        struct epoll_event ev = {.events = want, .data.ptr = ws};
        epoll_ctl(ws->hub->epoll_fd, EPOLL_CTL_MOD, ws->fd, &ev);
        ws->events = want;
    }
}

/* Reads and writes what the socket allows. */
/* Reads and drops what a closed peer still sends; frees at its end. */
static void s_drain(gw_ws_t *ws)
{
    char buf[16384];
    ssize_t n;
    while ((n = recv(ws->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        s_free(ws);
    }
}

static void s_io(gw_ws_t *ws, uint32_t events)
{
    if (ws->draining) {
        s_drain(ws);
        return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && wslay_event_want_read(ws->ctx) &&
        wslay_event_recv(ws->ctx) != 0) {
        s_free(ws);
        return;
    }
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        s_free(ws);
        return;
    }
    s_update(ws);
}

int gw_ws_send_text(gw_ws_t *ws, const char *text, size_t len)
{
    if (ws->close_ms || !ws->ctx) {
        return -1;
    }
    if (wslay_event_get_queued_msg_length(ws->ctx) + len > GW_WS_OUT_MAX) {
        LOG_I("socket too slow: %zu bytes unsent; closing",
              wslay_event_get_queued_msg_length(ws->ctx));
        gw_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION, "too slow: output limit reached");
        gw_metrics_ws_slow(ws->hub->srv->metrics);
        return -1;
    }
    struct wslay_event_msg msg = {
        .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
        return -1;
    }
    /* Written at the next wake for output (EPOLLOUT is armed by s_update). */
    uint32_t want = ws->events | EPOLLOUT;
    if (want != ws->events) {
        struct epoll_event ev = {.events = want, .data.ptr = ws};
        epoll_ctl(ws->hub->epoll_fd, EPOLL_CTL_MOD, ws->fd, &ev);
        ws->events = want;
    }
    return 0;
}

void gw_ws_close(gw_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->close_ms) {
        return;
    }
    ws->close_ms = util_mono_ms();
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    uint32_t want = ws->events | EPOLLOUT;
    struct epoll_event ev = {.events = want, .data.ptr = ws};
    epoll_ctl(ws->hub->epoll_fd, EPOLL_CTL_MOD, ws->fd, &ev);
    ws->events = want;
}

const uint8_t *gw_ws_team(const gw_ws_t *ws)
{
    return ws->team_id;
}

const limits_t *gw_ws_limits(const gw_ws_t *ws)
{
    return &ws->limits;
}

gw_server_t *gw_ws_server(const gw_ws_t *ws)
{
    return ws->hub->srv;
}

/* ---- the hub ------------------------------------------------------------------ */

static int s_on_epoll(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    gw_ws_hub_t *self = arg;
    struct epoll_event evs[S_EVENTS];
    int n = epoll_wait(self->epoll_fd, evs, S_EVENTS, 0);
    for (int i = 0; i < n; i++) {
        s_io(evs[i].data.ptr, evs[i].events);
    }
    return 0;
}

gw_ws_hub_t *gw_ws_hub_new(gw_server_t *srv)
{
    gw_ws_hub_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->srv = srv;
    self->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    self->sockets = zlistx_new();
    if (self->epoll_fd < 0 || !self->sockets) {
        gw_ws_hub_destroy(&self);
        return NULL;
    }
    self->item = (zmq_pollitem_t){.fd = self->epoll_fd, .events = ZMQ_POLLIN};
    zloop_poller(srv->loop, &self->item, s_on_epoll, self);
    zloop_poller_set_tolerant(srv->loop, &self->item);
    return self;
}

void gw_ws_hub_destroy(gw_ws_hub_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_ws_hub_t *self = *self_p;
    gw_ws_t *ws;
    while (self->sockets && (ws = zlistx_first(self->sockets))) {
        s_free(ws);
    }
    if (self->epoll_fd >= 0) {
        zloop_poller_end(self->srv->loop, &self->item);
        close(self->epoll_fd);
    }
    zlistx_destroy(&self->sockets);
    free(self);
    *self_p = NULL;
}

void gw_ws_hub_close_all(gw_ws_hub_t *self)
{
    for (gw_ws_t *ws = zlistx_first(self->sockets); ws; ws = zlistx_next(self->sockets)) {
        gw_ws_close(ws, WSLAY_CODE_GOING_AWAY, "server shutting down");
    }
}

void gw_ws_hub_tick(gw_ws_hub_t *self, int64_t now_ms)
{
    if (now_ms < self->sweep_ms) {
        return;
    }
    self->sweep_ms = now_ms + S_SWEEP_MS;
    gw_ws_t *ws = zlistx_first(self->sockets);
    while (ws) {
        gw_ws_t *next = zlistx_next(self->sockets);
        if (ws->close_ms && now_ms - ws->close_ms > S_CLOSE_WAIT_MS) {
            s_free(ws); /* the peer never answered our close */
        } else if (!ws->close_ms && now_ms - ws->last_in_ms > GW_WS_IDLE_MS) {
            LOG_I("socket idle for %d ms: closing", GW_WS_IDLE_MS);
            gw_ws_close(ws, WSLAY_CODE_GOING_AWAY, "idle: no heartbeat");
        }
        ws = next;
    }
}

size_t gw_ws_hub_count(const gw_ws_hub_t *self)
{
    return zlistx_size(self->sockets);
}

/* ---- the upgrade ---------------------------------------------------------------- */

/* libmicrohttpd hands over the socket once the 101 is sent. */
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
    gw_ws_hub_t *hub = srv->ws;
    gw_ws_t *ws = calloc(1, sizeof *ws);
    struct wslay_event_callbacks cbs = {
        .recv_callback = s_recv, .send_callback = s_send, .on_msg_recv_callback = s_on_msg};
    if (!ws || wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0) {
        LOG_W("cannot set up a WebSocket: out of memory");
        free(ws);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    ws->hub = hub;
    ws->fd = sock;
    ws->urh = urh;
    memcpy(ws->team_id, req->team_id, 16);
    ws->limits = req->limits;
    /* The 101 is out: the slot is taken even when handshakes raced past the check. */
    ws->counted = gw_limits_stream_open(srv->limits, ws->team_id, &req->limits, true) == 0;
    ws->last_in_ms = util_mono_ms();
    wslay_event_config_set_max_recv_msg_length(ws->ctx,
                                               (uint64_t)srv->cfg->max_body + GW_WS_FRAME_SLACK);
    if (extra_in_size && (ws->extra = malloc(extra_in_size))) {
        memcpy(ws->extra, extra_in, extra_in_size);
        ws->extra_len = extra_in_size;
    }
    ws->phx = gw_phx_new(ws);
    ws->handle = zlistx_add_end(hub->sockets, ws);
    ws->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ev = {.events = ws->events, .data.ptr = ws};
    if (!ws->phx || !ws->handle || epoll_ctl(hub->epoll_fd, EPOLL_CTL_ADD, sock, &ev) != 0) {
        LOG_W("cannot watch a WebSocket: %s", strerror(errno));
        s_free(ws);
        return;
    }
    LOG_I("WebSocket open fd=%d", sock);
    s_io(ws, ws->extra_len ? EPOLLIN : 0);
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
