/*  gw_server — the gateway process object: one zloop that owns the MHD
    daemon (external epoll: its epoll fd is a loop poller, MHD_run runs when
    it is readable, after resumes and on the tick), the registry link, the
    node sockets and the event SUB. Graceful stop on util_interrupted.
    Everything runs on the thread that calls gw_server_run. */
#define LOG_MODULE "gw_server"
#include "gateway/gateway_internal.h"
#include "gateway/gw_limits.h"
#include "gateway/gw_ws.h"

#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_STOP_GRACE_MS 2500 /* running requests get this long to finish at stop */
#define S_FLUSH_MS      300  /* then the 503s given to the rest this long to go out */
/* Per-connection memory pool: request line and headers, read buffer for body
   chunks (the body itself is copied out, see gw_http.c), response headers and
   the chunked output buffer. gw_accept keeps heads it cannot hold away from
   it (GW_HEAD_BUDGET; test_gw_headers.sh). */
#define S_MHD_MEMORY (4 * 1024)

void gw_config_defaults(gw_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1";
    cfg->port = 8080;
    cfg->registry = "tcp://127.0.0.1:7100";
    cfg->request_timeout_ms = 10000;
    cfg->max_body = 1048576;
    cfg->max_connections = 4096;
    cfg->conn_timeout_s = 60;
    cfg->registry_refresh_ms = 2000;
    cfg->keepalive_ms = 10000;
    cfg->sse_buffer = GW_SSE_BUFFER;
    cfg->sse_frame_max = GW_SSE_FRAME_MAX;
    cfg->max_conns_per_ip = GW_MAX_CONNS_PER_IP;
    cfg->max_inflight = GW_MAX_INFLIGHT;
    cfg->request_deadline_ms = GW_REQUEST_DEADLINE_MS;
    cfg->auth_fail_max = GW_AUTH_FAIL_MAX;
    cfg->auth_fail_window_ms = GW_AUTH_FAIL_WINDOW_MS;
    cfg->workers = 1;
}

static void s_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    LOG_E("libmicrohttpd panic file=%s line=%u reason=\"%s\"; aborting", file ? file : "?", line,
          reason ? reason : "?");
    abort();
}

/* fmt is libmicrohttpd's printf format (the attribute tells clang's
   -Wformat-nonliteral so; gcc does not warn). */
__attribute__((format(printf, 2, 0))) static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = 0;
    LOG_I("mhd: %s", line);
}

static int s_on_mhd(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_kick(zloop_t *loop, int timer_id, void *arg);
static int s_on_tick(zloop_t *loop, int timer_id, void *arg);

static int s_mhd_start(gw_server_t *self)
{
    /* No listening socket of its own: gw_accept accepts, looks at each head
       and hands the connection over with MHD_add_connection. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    self->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, gw_http_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)self->cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)self->cfg->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_MHD_MEMORY, MHD_OPTION_NOTIFY_COMPLETED,
        gw_http_completed, self, MHD_OPTION_NOTIFY_CONNECTION, gw_conn_notify, self,
        MHD_OPTION_END);
    if (!self->mhd) {
        LOG_E("cannot start libmicrohttpd");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0) {
        LOG_E("libmicrohttpd gave no epoll fd");
        return -1;
    }
    self->mhd_item = (zmq_pollitem_t){.socket = NULL, .fd = info->epoll_fd, .events = ZMQ_POLLIN};
    zloop_poller(self->loop, &self->mhd_item, s_on_mhd, self);
    zloop_poller_set_tolerant(self->loop, &self->mhd_item);
    self->accept = gw_accept_new(self);
    if (!self->accept) {
        return -1;
    }
    self->http_port = gw_accept_port(self->accept);
    LOG_N("listening address=%s port=%u max_connections=%ld", self->cfg->listen, self->http_port,
          self->cfg->max_connections);
    return 0;
}

gw_server_t *gw_server_new(const gw_config_t *cfg)
{
    gw_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    self->kick_timer = -1;
    self->started_ms = util_wall_ms();
    MHD_set_panic_func(s_panic, NULL);
    self->loop = zloop_new();
    self->metrics = gw_metrics_new();
    self->auth = gw_auth_cache_new(GW_AUTH_CACHE_SIZE, GW_AUTH_POS_TTL_MS, GW_AUTH_NEG_TTL_MS);
    self->limits = gw_limits_new(GW_LIMITS_TEAMS);
    self->reqs = zlistx_new();
    self->sse = zlistx_new();
    self->conns = zlistx_new();
    /* Every address with a connection open needs a slot: room for as many
       as --max-connections (capped), plus room for failing addresses. */
    size_t slots = (size_t)(cfg->max_connections < 65536 ? cfg->max_connections : 65536) + 4096;
    self->iptab = gw_iptab_new(slots, cfg->auth_fail_max, cfg->auth_fail_window_ms);
    if (!self->loop || !self->metrics || !self->auth || !self->limits || !self->reqs ||
        !self->sse || !self->conns || !self->iptab) {
        gw_server_destroy(&self);
        return NULL;
    }
    static const char health[] = "{\"status\":\"ok\",\"version\":\"" BICKY_VERSION "\"}";
    self->health =
        MHD_create_response_from_buffer(sizeof health - 1, (void *)health, MHD_RESPMEM_PERSISTENT);
    if (!self->health || MHD_add_response_header(self->health, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                 "application/json") != MHD_YES) {
        gw_server_destroy(&self);
        return NULL;
    }
    self->fanout = gw_fanout_new(self);
    self->upstream = self->fanout ? gw_upstream_new(self) : NULL;
    self->registry = self->upstream ? gw_registry_new(self, cfg->registry) : NULL;
    self->ws = self->registry ? gw_ws_hub_new(self) : NULL;
    if (!self->ws || s_mhd_start(self) < 0) {
        gw_server_destroy(&self);
        return NULL;
    }
    zloop_timer(self->loop, GW_TICK_MS, 0, s_on_tick, self);
    return self;
}

/* Resumes every connection we suspended: MHD_stop_daemon must not see any. */
static void s_resume_all(gw_server_t *self)
{
    for (gw_req_t *req = zlistx_first(self->reqs); req; req = zlistx_next(self->reqs)) {
        if (req->suspended) {
            req->suspended = false;
            MHD_resume_connection(req->conn);
        }
    }
    gw_sse_close_all(self);
}

void gw_server_destroy(gw_server_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_server_t *self = *self_p;
    gw_accept_destroy(&self->accept);
    /* Upgraded sockets go first: libmicrohttpd closes them (and ends their
       requests) before it stops. */
    gw_ws_hub_destroy(&self->ws);
    if (self->mhd) {
        self->stopping = true;
        s_resume_all(self);
        MHD_run(self->mhd);
        MHD_stop_daemon(self->mhd);
        self->mhd = NULL;
    }
    gw_registry_destroy(&self->registry);
    gw_upstream_destroy(&self->upstream);
    gw_fanout_destroy(&self->fanout);
    zlistx_destroy(&self->reqs);
    zlistx_destroy(&self->sse);
    zlistx_destroy(&self->conns);
    gw_iptab_destroy(&self->iptab);
    gw_auth_cache_destroy(&self->auth);
    gw_limits_destroy(&self->limits);
    gw_metrics_destroy(&self->metrics);
    if (self->health) {
        MHD_destroy_response(self->health);
    }
    zloop_destroy(&self->loop);
    free(self);
    *self_p = NULL;
}

unsigned gw_server_connections(gw_server_t *self)
{
    const union MHD_DaemonInfo *info =
        self->mhd ? MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
    size_t ours = self->accept ? gw_accept_pending(self->accept) : 0;
    ours += self->ws ? gw_ws_hub_count(self->ws) : 0; /* libmicrohttpd let them go */
    return (info ? info->num_connections : 0) + (unsigned)ours;
}

/* ---- MHD inside the loop ---------------------------------------------------- */

static void s_mhd_run(gw_server_t *self)
{
    MHD_run(self->mhd);
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    /* MHD may still hold work (more ready connections, resumed ones): come
       back before the next tick when it says so. */
    if (MHD_get_timeout(self->mhd, &timeout) == MHD_YES && timeout < GW_TICK_MS) {
        gw_server_kick(self);
    }
}

void gw_server_kick(gw_server_t *self)
{
    if (self->kick_timer < 0) {
        self->kick_timer = zloop_timer(self->loop, 0, 1, s_on_kick, self);
    }
}

static int s_on_kick(zloop_t *loop, int timer_id, void *arg)
{
    gw_server_t *self = arg;
    self->kick_timer = -1;
    s_mhd_run(self);
    return 0;
}

static int s_on_mhd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_mhd_run(arg);
    return 0;
}

/* ---- stopping ------------------------------------------------------------------ */

/* SIGTERM, first step: /ready answers 503 so that a load balancer's health
   check takes this gateway out, while every request is still served; the stop
   itself begins --drain-ms later (at once with 0). */
static void s_begin_drain(gw_server_t *self, int64_t now)
{
    self->draining = true;
    self->drain_until_ms = now + self->cfg->drain_ms;
    if (self->cfg->drain_ms > 0) {
        LOG_N("draining: /ready answers 503, serving on for drain_ms=%ld", self->cfg->drain_ms);
    }
}

/* Second step: no new connections, streams end (their clients resume
   elsewhere), running requests get S_STOP_GRACE_MS to finish. */
static void s_begin_stop(gw_server_t *self, int64_t now)
{
    LOG_N("stopping: no new connections, open requests=%zu streams=%zu", zlistx_size(self->reqs),
          zlistx_size(self->sse));
    self->stopping = true;
    self->stop_deadline_ms = now + S_STOP_GRACE_MS;
    gw_accept_quiesce(self->accept);
    gw_sse_close_all(self);
    gw_ws_hub_close_all(self->ws);
    gw_server_kick(self);
}

/* Ends the loop once every request is answered, or at the deadline after
   answering what is left 503. Returns -1 when the loop must end. */
static int s_stop_step(gw_server_t *self, int64_t now)
{
    if (zlistx_size(self->reqs) == 0 && zlistx_size(self->sse) == 0 &&
        gw_ws_hub_count(self->ws) == 0) {
        self->finished = true;
        return -1;
    }
    if (now < self->stop_deadline_ms) {
        return 0;
    }
    if (self->stop_failed) {
        self->finished = true;
        return -1;
    }
    /* The answers need a few loop turns to be written before MHD stops. */
    LOG_W("stop grace over: answering 503 to open requests=%zu", zlistx_size(self->reqs));
    self->stop_failed = true;
    self->stop_deadline_ms = now + S_FLUSH_MS;
    gw_upstream_fail_all(self->upstream);
    gw_http_fail_all(self);
    gw_server_kick(self);
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    gw_server_t *self = arg;
    int64_t now = util_mono_ms();
    if (util_interrupted && !self->draining) {
        s_begin_drain(self, now);
    }
    if (self->draining && !self->stopping && now >= self->drain_until_ms) {
        s_begin_stop(self, now);
    }
    if (self->stopping && s_stop_step(self, now) < 0) {
        return -1;
    }
    gw_registry_tick(self->registry, now);
    gw_upstream_tick(self->upstream, now);
    gw_accept_tick(self->accept, now);
    gw_conn_tick(self, now);
    gw_ws_hub_tick(self->ws, now);
    gw_sse_tick(self, now);
    s_mhd_run(self);
    return 0;
}

int gw_server_run(gw_server_t *self)
{
    while (!self->finished) {
        /* zloop_start also returns when a signal interrupts its poll; the
           tick then sees util_interrupted and stops gracefully. */
        int rc = zloop_start(self->loop);
        if (rc == -1 && !self->finished) {
            LOG_E("event loop ended by a failing handler");
            return -1;
        }
    }
    LOG_N("stopped");
    return 0;
}
