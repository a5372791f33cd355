/*  gw_accept — the gateway's door: its own listening socket, accept, and a
    head stage in front of libmicrohttpd. Each new connection waits here (an
    epoll set of its own, a loop poller) until its first request head has
    arrived; the head is peeked at (MSG_PEEK: the bytes stay in the socket)
    and judged by gw_head_scan. A head within the limits is handed to
    libmicrohttpd with MHD_add_connection, which reads it as if it had
    accepted the connection; a head over them gets the API's JSON 414/431
    from here, then the connection is drained and closed (libmicrohttpd
    0.9.75 would answer a fixed HTML page for a head its pool cannot hold).
    Loop thread only. */
#define LOG_MODULE "gw_accept"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_PEEK         4096                /* head bytes looked at (> GW_HEAD_BUDGET) */
#define S_ACCEPT_BATCH 64                  /* accepts per wake of the listener */
#define S_EVENTS       64                  /* epoll events taken per wake */
#define S_DRAIN_MS     5000                /* a refused client may keep sending this long */
#define S_DRAIN_MAX    (64u * 1024 * 1024) /* bytes read and dropped from it at most */

typedef enum {
    S_WAITING, /* waiting for a complete head */
    S_DRAIN,   /* refused: the answer is sent, the rest of the request is dropped */
} s_state_t;

typedef struct {
    gw_accept_t *acc;             /* owner */
    int fd;                       /* the connection's socket (ours) */
    s_state_t state;              /* stage */
    struct sockaddr_storage addr; /* peer address, for MHD_add_connection */
    socklen_t addr_len;           /* its length */
    int64_t deadline_ms;          /* give up at (mono) */
    size_t drained;               /* bytes dropped while draining */
    char ip[GW_IP_KEY_MAX];       /* peer address, counted in the per-IP table */
    void *handle;                 /* position in acc->waiting or acc->draining */
} s_pend_t;

struct gw_accept_t {
    gw_server_t *srv;           /* owner */
    int listen_fd;              /* listening socket, -1 once quiesced */
    int epoll_fd;               /* connections in the head stage */
    uint16_t port;              /* bound port */
    zmq_pollitem_t listen_item; /* listen_fd as a loop poller */
    zmq_pollitem_t epoll_item;  /* epoll_fd as a loop poller */
    zlistx_t *waiting;          /* s_pend_t waiting for a head, oldest first (freed here) */
    zlistx_t *draining;         /* s_pend_t being drained, oldest first (freed here) */
};

static int s_on_listen(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_epoll(zloop_t *loop, zmq_pollitem_t *item, void *arg);

/* Parses --listen (numeric, or "localhost"); -1 when invalid. */
static int s_addr(const gw_config_t *cfg, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    const char *host = strcmp(cfg->listen, "localhost") == 0 ? "127.0.0.1" : cfg->listen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

/* Creates, binds and listens; -1 (logged) on failure. */
static int s_listen(gw_accept_t *self, const gw_config_t *cfg)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (s_addr(cfg, &ss, &len) < 0) {
        LOG_E("invalid listen address '%s' (numeric IPv4/IPv6 or localhost)", cfg->listen);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    if (ok && cfg->reuse_port) {
        ok = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0;
    }
    if (ok && ss.ss_family == AF_INET6) {
        ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0;
    }
    ok = ok && bind(fd, (struct sockaddr *)&ss, len) == 0 && listen(fd, SOMAXCONN) == 0 &&
         getsockname(fd, (struct sockaddr *)&ss, &len) == 0;
    if (!ok) {
        LOG_E("cannot listen address=%s port=%ld: %s", cfg->listen, cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    self->listen_fd = fd;
    self->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

gw_accept_t *gw_accept_new(gw_server_t *srv)
{
    gw_accept_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->srv = srv;
    self->listen_fd = -1;
    self->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    self->waiting = zlistx_new();
    self->draining = zlistx_new();
    if (self->epoll_fd < 0 || !self->waiting || !self->draining || s_listen(self, srv->cfg) < 0) {
        gw_accept_destroy(&self);
        return NULL;
    }
    self->listen_item = (zmq_pollitem_t){.fd = self->listen_fd, .events = ZMQ_POLLIN};
    self->epoll_item = (zmq_pollitem_t){.fd = self->epoll_fd, .events = ZMQ_POLLIN};
    zloop_poller(srv->loop, &self->listen_item, s_on_listen, self);
    zloop_poller_set_tolerant(srv->loop, &self->listen_item);
    zloop_poller(srv->loop, &self->epoll_item, s_on_epoll, self);
    zloop_poller_set_tolerant(srv->loop, &self->epoll_item);
    return self;
}

/* Forgets p (its list entry, its epoll registration) and frees it; closes
   its socket unless it was handed over. */
static void s_forget(s_pend_t *p, bool close_fd)
{
    gw_accept_t *self = p->acc;
    epoll_ctl(self->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
    zlistx_delete(p->state == S_DRAIN ? self->draining : self->waiting, p->handle);
    /* Handed over, the connection is counted again by gw_conn_notify. */
    gw_iptab_close(self->srv->iptab, p->ip);
    if (close_fd) {
        close(p->fd);
    }
    free(p);
}

void gw_accept_quiesce(gw_accept_t *self)
{
    if (self->listen_fd >= 0) {
        zloop_poller_end(self->srv->loop, &self->listen_item);
        close(self->listen_fd);
        self->listen_fd = -1;
    }
    s_pend_t *p;
    while ((p = zlistx_first(self->waiting))) {
        s_forget(p, true);
    }
}

void gw_accept_destroy(gw_accept_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_accept_t *self = *self_p;
    if (self->waiting && self->draining) {
        gw_accept_quiesce(self);
        s_pend_t *p;
        while ((p = zlistx_first(self->draining))) {
            s_forget(p, true);
        }
    }
    if (self->epoll_fd >= 0) {
        zloop_poller_end(self->srv->loop, &self->epoll_item);
        close(self->epoll_fd);
    }
    if (self->listen_fd >= 0) {
        close(self->listen_fd);
    }
    zlistx_destroy(&self->waiting);
    zlistx_destroy(&self->draining);
    free(self);
    *self_p = NULL;
}

uint16_t gw_accept_port(const gw_accept_t *self)
{
    return self->port;
}

size_t gw_accept_pending(const gw_accept_t *self)
{
    return zlistx_size(self->waiting) + zlistx_size(self->draining);
}

/* ---- refusing a head ---------------------------------------------------------- */

void gw_edge_send_error(int fd, const gw_error_t *err, const char *reason)
{
    char *body = gw_error_body(err);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    char out[1024];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     err->status, reason, date, body ? strlen(body) : 2, body ? body : "{}");
    free(body);
    if (n > 0 && (size_t)n < sizeof out &&
        send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        LOG_I("error answer not sent whole fd=%d status=%d", fd, err->status);
    }
}

/* Writes the JSON error of verdict v (414, 431 or 408) on p's socket, with
   Connection: close; the socket's buffer is empty, so one send takes it. */
static void s_send_refusal(s_pend_t *p, gw_head_verdict_t v)
{
    gw_error_t err;
    const char *reason = "Request Header Fields Too Large";
    if (v == GW_HEAD_URI_TOO_LONG) {
        reason = "URI Too Long";
        gw_error_set(&err, 414, "uri_too_long", NULL, "the request target is longer than %d bytes",
                     GW_HEAD_MAX_TARGET);
    } else if (v == GW_HEAD_LATE) {
        reason = "Request Timeout";
        gw_error_set(&err, 408, "request_timeout", NULL,
                     "the request did not arrive within %ld ms (--request-deadline-ms)",
                     p->acc->srv->cfg->request_deadline_ms);
    } else {
        gw_error_set(&err, 431, "headers_too_large", NULL,
                     "the request line and headers are larger than %d bytes (each header field "
                     "and query argument counts 64 bytes more, up to %d)",
                     GW_HEAD_MAX, GW_HEAD_BUDGET);
    }
    gw_edge_send_error(p->fd, &err, reason);
    gw_metrics_http(p->acc->srv->metrics, NULL, err.status);
    LOG_I("head refused status=%d ip=%s", err.status, p->ip);
}

/* Reads and drops what the refused client still sends; closes at its end,
   past S_DRAIN_MAX or at the deadline (gw_accept_tick). Closing while it is
   still sending would reset the connection and could destroy the answer
   before the client reads it. */
static void s_drain(s_pend_t *p)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            p->drained += (size_t)n;
            if (p->drained <= S_DRAIN_MAX) {
                continue;
            }
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        s_forget(p, true);
        return;
    }
}

static void s_refuse(s_pend_t *p, gw_head_verdict_t v)
{
    gw_accept_t *self = p->acc;
    s_send_refusal(p, v);
    shutdown(p->fd, SHUT_WR);
    zlistx_delete(self->waiting, p->handle);
    p->state = S_DRAIN;
    p->deadline_ms = util_mono_ms() + S_DRAIN_MS;
    p->handle = zlistx_add_end(self->draining, p);
    s_drain(p);
}

/* ---- judging a head ----------------------------------------------------------- */

/* Hands p's connection to libmicrohttpd, which reads the head from the socket. */
static void s_hand_over(s_pend_t *p)
{
    gw_server_t *srv = p->acc->srv;
    int fd = p->fd;
    struct sockaddr_storage addr = p->addr;
    socklen_t len = p->addr_len;
    s_forget(p, false);
    /* MHD closes the socket itself when it cannot take it (connection limit). */
    if (MHD_add_connection(srv->mhd, fd, (struct sockaddr *)&addr, len) != MHD_YES) {
        LOG_I("libmicrohttpd refused a connection: %s", strerror(errno));
    }
    gw_server_kick(srv);
}

/* Peeks at p's head and acts on the verdict; waits when it is incomplete. */
static void s_judge(s_pend_t *p)
{
    char buf[S_PEEK];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        s_forget(p, true); /* the client left (or the socket failed) before a head */
        return;
    }
    gw_head_verdict_t v = gw_head_scan(buf, (size_t)n);
    if (v == GW_HEAD_MORE && (size_t)n == sizeof buf) {
        v = GW_HEAD_TOO_LARGE; /* cannot happen: the limits are below S_PEEK */
    }
    if (v == GW_HEAD_OK) {
        s_hand_over(p);
    } else if (v != GW_HEAD_MORE) {
        s_refuse(p, v);
    }
}

/* Connections counted against --max-connections: libmicrohttpd's and ours. */
static size_t s_open(gw_accept_t *self)
{
    return gw_server_connections(self->srv);
}

static void
s_accept_one(gw_accept_t *self, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    s_pend_t *p = calloc(1, sizeof *p);
    const gw_config_t *cfg = self->srv->cfg;
    if (!p || s_open(self) >= (size_t)cfg->max_connections) {
        LOG_I("connection refused: %s", p ? "at --max-connections" : "out of memory");
        free(p);
        close(fd);
        return;
    }
    gw_iptab_key((const struct sockaddr *)addr, p->ip);
    if (gw_iptab_open(self->srv->iptab, p->ip, cfg->max_conns_per_ip, util_mono_ms()) < 0) {
        /* Closed before a byte is read: a flood from one address costs one
           accept each and holds nothing. */
        LOG_I("connection refused: ip=%s at --max-connections-per-ip %ld", p->ip,
              cfg->max_conns_per_ip);
        gw_metrics_http(self->srv->metrics, NULL, 429);
        free(p);
        close(fd);
        return;
    }
    p->acc = self;
    p->fd = fd;
    p->state = S_WAITING;
    p->addr = *addr;
    p->addr_len = len;
    p->deadline_ms = util_mono_ms() + cfg->request_deadline_ms;
    p->handle = zlistx_add_end(self->waiting, p);
    /* Edge-triggered: a peek leaves the bytes in the socket, so only new
       bytes (or the peer's close) wake us again. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
    if (!p->handle || epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        LOG_W("cannot watch a new connection: %s", strerror(errno));
        if (p->handle) {
            zlistx_delete(self->waiting, p->handle);
        }
        gw_iptab_close(self->srv->iptab, p->ip);
        free(p);
        close(fd);
        return;
    }
    s_judge(p); /* the head is often there already */
}

static int s_on_listen(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    gw_accept_t *self = arg;
    for (int i = 0; i < S_ACCEPT_BATCH && self->listen_fd >= 0; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd =
            accept4(self->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                LOG_W("accept failed: %s", strerror(errno));
            }
            break;
        }
        s_accept_one(self, fd, &addr, len);
    }
    return 0;
}

static int s_on_epoll(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    gw_accept_t *self = arg;
    struct epoll_event evs[S_EVENTS];
    int n = epoll_wait(self->epoll_fd, evs, S_EVENTS, 0);
    for (int i = 0; i < n; i++) {
        s_pend_t *p = evs[i].data.ptr;
        if (p->state == S_DRAIN) {
            s_drain(p);
        } else {
            s_judge(p);
        }
    }
    return 0;
}

void gw_accept_tick(gw_accept_t *self, int64_t now_ms)
{
    s_pend_t *p;
    while ((p = zlistx_first(self->waiting)) && p->deadline_ms <= now_ms) {
        /* A head trickled byte by byte (slowloris) ends here, whatever the
           idle timeout: 408, then the rest is drained and dropped. */
        s_refuse(p, GW_HEAD_LATE);
    }
    while ((p = zlistx_first(self->draining)) && p->deadline_ms <= now_ms) {
        s_forget(p, true);
    }
}
