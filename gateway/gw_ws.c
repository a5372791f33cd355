/*  gw_ws — WebSocket transport: GET /socket/websocket answers 101 through
    libmicrohttpd's upgrade (gw_ws_upgrade.c), which then lets go of the
    socket; it lives in an epoll set of its own (the hub, one loop poller)
    and wslay reads the frames: masking enforced (a server context refuses
    unmasked frames with 1002), fragments reassembled up to --max-body +
    4 KiB (else 1009), ping answered with pong, close handshake. Text
    messages are checked for UTF-8 (else 1007) and handed to the Phoenix
    layer (gw_phx.c); binary ones are refused (1003). Output is framed here
    and written at once when the socket takes it; what it does not take waits
    in a buffer (gw_ws_out.c) bounded by GW_WS_OUT_MAX (else 1008). A quiet
    socket holds neither that buffer nor a wslay context: the context (two
    4 KiB buffers in wslay 1.1.1) is made when bytes arrive or a close is
    queued and freed once no frame is half read. A socket silent for
    GW_WS_IDLE_MS is closed (1001). Loop thread only. */
#define LOG_MODULE "gw_ws"
#include "gateway/gw_ws.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    gw_ws_hub_t *hub;            /* owner */
    int fd;                      /* upgraded socket (ours: libmicrohttpd let go) */
    char ip[GW_IP_KEY_MAX];      /* client address */
    bool ip_counted;             /* counted in the per-IP table */
    wslay_event_context_ptr ctx; /* framing; NULL while idle (s_release) */
    gw_phx_t *phx;               /* protocol state */
    gw_ws_out_t out;             /* unsent output */
    uint64_t in_fed;             /* bytes given to ctx since it was made */
    uint64_t in_done;            /* of them, bytes of whole frames it read */
    uint64_t in_frame;           /* bytes of the frame being read */
    bool in_frag;                /* a fragmented message is being read */
    uint8_t team_id[16];         /* the token's team */
    bool counted;                /* holds one of its team's stream slots */
    limits_t limits;             /* the team's limits at the upgrade */
    char *extra;                 /* bytes read past the upgrade head (owned) */
    size_t extra_len, extra_off; /* of extra */
    int64_t last_in_ms;          /* last message received (mono) */
    int64_t close_ms;            /* when our close was queued, 0 before */
    uint32_t events;             /* epoll interest */
    bool draining;               /* closed: reading the peer's rest until it leaves */
    void *handle;                /* position in hub->sockets */
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
    if (ws->extra) {
        size_t n = ws->extra_len - ws->extra_off;
        n = n < len ? n : len;
        memcpy(buf, ws->extra + ws->extra_off, n);
        ws->extra_off += n;
        if (ws->extra_off == ws->extra_len) {
            free(ws->extra);
            ws->extra = NULL;
        }
        ws->in_fed += n;
        return (ssize_t)n;
    }
    if (ws->out.len > S_READ_PAUSE) {
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
    ws->in_fed += (uint64_t)n;
    return n;
}

/* wslay's own frames (pong, close) join the output buffer, which s_flush
   writes: wslay never holds output, so its context can be freed when the
   socket is idle, and a close can drop the frames never begun. */
static ssize_t
s_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    gw_ws_t *ws = user_data;
    if (gw_ws_out_append(&ws->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Counts the bytes of each frame (the client's are masked; wslay refuses
   a length not in its shortest form), so that s_release knows when wslay
   holds no part of one. */
static void s_on_frame_start(wslay_event_context_ptr ctx,
                             const struct wslay_event_on_frame_recv_start_arg *arg,
                             void *user_data)
{
    gw_ws_t *ws = user_data;
    uint64_t n = arg->payload_length;
    ws->in_frame = 2 + 4 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + n;
    if (arg->opcode < WSLAY_CONNECTION_CLOSE) {
        ws->in_frag = !arg->fin; /* control frames may come between fragments */
    }
}

static void s_on_frame_end(wslay_event_context_ptr ctx, void *user_data)
{
    gw_ws_t *ws = user_data;
    ws->in_done += ws->in_frame;
    ws->in_frame = 0;
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

/* ---- the framing context -------------------------------------------------- */

/* Makes the socket's wslay context if it has none; 0, or -1 out of memory. */
static int s_ctx(gw_ws_t *ws)
{
    if (ws->ctx) {
        return 0;
    }
    struct wslay_event_callbacks cbs = {.recv_callback = s_recv,
                                        .send_callback = s_send,
                                        .on_frame_recv_start_callback = s_on_frame_start,
                                        .on_frame_recv_end_callback = s_on_frame_end,
                                        .on_msg_recv_callback = s_on_msg};
    if (wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0) {
        ws->ctx = NULL;
        LOG_W("cannot read a WebSocket: out of memory");
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, (uint64_t)ws->hub->srv->cfg->max_body +
                                                            GW_WS_FRAME_SLACK);
    ws->in_fed = ws->in_done = ws->in_frame = 0;
    ws->in_frag = false;
    return 0;
}

/* Frees the wslay context of a socket at rest: every byte given to it
   belongs to a whole frame, no fragmented message is open, no close was
   sent, received or queued. A new one then starts at the next byte as this
   one would have (wslay 1.1.1 keeps ~8.5 KiB in it: docs/performance.md,
   P10). */
static void s_release(gw_ws_t *ws)
{
    wslay_event_context_ptr ctx = ws->ctx;
    if (ctx && !ws->close_ms && !ws->extra && ws->in_fed == ws->in_done && !ws->in_frag &&
        wslay_event_get_read_enabled(ctx) && wslay_event_get_write_enabled(ctx) &&
        !wslay_event_want_write(ctx) && !wslay_event_get_close_received(ctx) &&
        !wslay_event_get_close_sent(ctx)) {
        wslay_event_context_free(ctx);
        ws->ctx = NULL;
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
    if (ws->ip_counted) {
        gw_iptab_close(hub->srv->iptab, ws->ip);
    }
    close(ws->fd);
    gw_ws_out_free(&ws->out);
    free(ws->extra);
    free(ws);
}

static void s_interest(gw_ws_t *ws, uint32_t want)
{
    if (want != ws->events) {
        struct epoll_event ev = {.events = want, .data.ptr = ws};
        epoll_ctl(ws->hub->epoll_fd, EPOLL_CTL_MOD, ws->fd, &ev);
        ws->events = want;
    }
}

/* Sets the epoll interest from what the socket waits for; when it is done
   both ways (closed, or failed) and all is written, it drains. */
static void s_update(gw_ws_t *ws)
{
    bool rd = !ws->ctx || wslay_event_want_read(ws->ctx);
    bool wr = ws->out.len > 0 || (ws->ctx && wslay_event_want_write(ws->ctx));
    if (!rd && !wr) {
        /* Done both ways. Freeing now, with bytes of the peer unread, would
           reset the connection and could destroy our close frame before
           the peer reads it: end our side, drop what still comes, and free
           at its end (or after S_CLOSE_WAIT_MS, gw_ws_hub_tick). */
        ws->draining = true;
        ws->close_ms = ws->close_ms ? ws->close_ms : util_mono_ms();
        shutdown(ws->fd, SHUT_WR);
        s_interest(ws, EPOLLIN | EPOLLRDHUP);
        return;
    }
    bool paused = ws->out.len > S_READ_PAUSE;
    s_interest(ws, (rd && !paused ? EPOLLIN | EPOLLRDHUP : 0) | (wr ? EPOLLOUT : 0));
}

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

/* Writes what the socket takes of the unsent output; -1 when it failed. */
static int s_flush(gw_ws_t *ws)
{
    while (ws->out.len) {
        ssize_t n =
            send(ws->fd, ws->out.data + ws->out.off, ws->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        gw_ws_out_consume(&ws->out, (size_t)n);
    }
    return 0;
}

/* Reads and writes what the socket allows. */
static void s_io(gw_ws_t *ws, uint32_t events)
{
    if (ws->draining) {
        s_drain(ws);
        return;
    }
    bool in = ws->extra || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    if (in && (!ws->ctx || wslay_event_want_read(ws->ctx)) &&
        (s_ctx(ws) < 0 || wslay_event_recv(ws->ctx) != 0)) {
        s_free(ws);
        return;
    }
    if (ws->ctx && wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        s_free(ws);
        return;
    }
    if (s_flush(ws) < 0) {
        s_free(ws);
        return;
    }
    s_release(ws);
    s_update(ws);
}

int gw_ws_send_text(gw_ws_t *ws, const char *text, size_t len)
{
    wslay_event_context_ptr ctx = ws->ctx;
    if (ws->close_ms ||
        (ctx && (!wslay_event_get_write_enabled(ctx) || wslay_event_get_close_received(ctx)))) {
        return -1;
    }
    uint8_t head[GW_WS_HEAD_MAX];
    size_t hl = gw_ws_text_head(head, len);
    if (ws->out.len + hl + len > GW_WS_OUT_MAX) {
        LOG_I("socket too slow: %zu bytes unsent; closing", ws->out.len);
        gw_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION, "too slow: output limit reached");
        gw_metrics_ws_slow(ws->hub->srv->metrics);
        return -1;
    }
    size_t sent = 0;
    if (ws->out.len == 0) {
        /* Nothing waits: straight to the socket, no copy. A failed write
           leaves the frame queued; the hang-up then frees the socket. */
        struct iovec iov[2] = {{head, hl}, {(void *)text, len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t n = sendmsg(ws->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)(hl + len)) {
            return 0;
        }
        sent = n > 0 ? (size_t)n : 0;
    }
    if (gw_ws_out_text(&ws->out, text, len, sent) != 0) {
        /* Out of memory, maybe with half a frame written: cut the socket
           (its hang-up frees it). */
        LOG_W("cannot queue a WebSocket message: out of memory");
        shutdown(ws->fd, SHUT_RDWR);
        return -1;
    }
    /* Written at the next wake for output. */
    s_interest(ws, ws->events | EPOLLOUT);
    return 0;
}

void gw_ws_close(gw_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->close_ms) {
        return;
    }
    ws->close_ms = util_mono_ms();
    /* The close goes right after the frame being written: the frames
       queued behind it would never be read (a slow socket is closed for
       them). */
    gw_ws_out_keep_begun(&ws->out);
    if (s_ctx(ws) < 0) {
        shutdown(ws->fd, SHUT_RDWR); /* its hang-up frees it */
        return;
    }
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    s_interest(ws, ws->events | EPOLLOUT);
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

void gw_ws_open(gw_ws_hub_t *hub, const gw_ws_open_t *open)
{
    gw_server_t *srv = hub->srv;
    gw_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws) {
        LOG_W("cannot set up a WebSocket: out of memory");
        close(open->fd);
        return;
    }
    ws->hub = hub;
    ws->fd = open->fd;
    /* libmicrohttpd uncounts its connection as it lets go: the socket
       stays counted here, for --max-connections-per-ip. */
    snprintf(ws->ip, sizeof ws->ip, "%s", open->ip);
    ws->ip_counted = gw_iptab_open(srv->iptab, ws->ip, 0, util_mono_ms()) == 0;
    memcpy(ws->team_id, open->team_id, 16);
    ws->limits = *open->limits;
    /* The 101 is out: the slot is taken even when handshakes raced past the check. */
    ws->counted = gw_limits_stream_open(srv->limits, ws->team_id, open->limits, true) == 0;
    ws->last_in_ms = util_mono_ms();
    if (open->extra_len && (ws->extra = malloc(open->extra_len))) {
        memcpy(ws->extra, open->extra, open->extra_len);
        ws->extra_len = open->extra_len;
    }
    ws->phx = gw_phx_new(ws);
    ws->handle = zlistx_add_end(hub->sockets, ws);
    ws->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ev = {.events = ws->events, .data.ptr = ws};
    if (!ws->phx || !ws->handle || epoll_ctl(hub->epoll_fd, EPOLL_CTL_ADD, ws->fd, &ev) != 0) {
        LOG_W("cannot watch a WebSocket: %s", strerror(errno));
        s_free(ws);
        return;
    }
    LOG_I("WebSocket open fd=%d", ws->fd);
    s_io(ws, 0);
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
