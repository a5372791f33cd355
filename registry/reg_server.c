/*  reg_server — registry sockets, timers and lifecycle on one zloop. The
    request handlers are in reg_server_reply.c and reg_server_admin.c, the
    active/standby roles and the save cycle in reg_server_role.c. Every handler does bounded,
    non-blocking work: membership is in memory, Postgres is reg_store's
    thread, replies and publications use non-blocking sends (a full pipe
    drops, the peer retries). */
#define LOG_MODULE "reg_server"
#include "registry/reg_server.h"

#include "common/endpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "registry/registry_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_READ_BUDGET    256       /* messages handled per readable event */
#define S_MAX_MSG        (1 << 20) /* registry messages are small; cap what a peer can send */
#define S_FIRST_EVENT_MS 6000      /* wait for the store's first lock attempt (connect + query) */
#define S_UNWATCHED_MS   250       /* a tick this late: the registry was not running */

static int s_on_router(zloop_t *loop, zsock_t *reader, void *arg)
{
    reg_server_t *self = arg;
    for (int budget = S_READ_BUDGET; budget > 0 && (zsock_events(reader) & ZMQ_POLLIN); budget--) {
        zframe_t *peer = NULL;
        proto_msg_t msg;
        keys_peer_t who;
        /* Malformed frames are logged and dropped inside wire_recv. */
        if (wire_recv_peer(reader, &peer, &msg, "registry", &who) == 0) {
            reg_server_dispatch(self, peer, &msg, &who);
            proto_msg_reset(&msg);
        }
        zframe_destroy(&peer);
    }
    return 0;
}

static int s_on_store(zloop_t *loop, zsock_t *reader, void *arg)
{
    return reg_server_on_store_events(arg);
}

/* Liveness sweep, periodic publication and persistence (active only). A tick
   that comes S_UNWATCHED_MS or more late means the registry itself did not
   run (SIGSTOP, starvation): the nodes' heartbeats of that time wait in the
   ROUTER's queue, not yet read, so their silence does not count. Without
   that, an active registry woken from a pause longer than --dead-after-ms
   declared every node dead at once (tests/chaos/run). */
static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    reg_server_t *self = arg;
    int64_t now = util_mono_ms();
    int64_t late = self->last_tick_ms ? now - self->last_tick_ms - REG_TICK_MS : 0;
    self->last_tick_ms = now;
    size_t dropped = reg_pending_expire(self->pending, now - REG_PENDING_WAIT_MS);
    if (dropped) {
        LOG_W("dropped %zu held replies: their change was not stored in time", dropped);
    }
    reg_server_checks_expire(self, now - REG_CHECK_WAIT_MS);
    if (!self->active) {
        return 0;
    }
    if (late >= S_UNWATCHED_MS) {
        reg_members_unwatched(self->members, late, now);
        LOG_N("the registry did not run for %" PRId64 " ms (paused or starved): node "
              "silence of that time does not count",
              late);
    }
    if (reg_members_sweep(self->members, now) > 0) {
        reg_server_changed(self, "death", NULL);
    }
    if (now >= self->next_publish_ms) {
        reg_server_publish(self);
    }
    reg_server_maybe_save(self);
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int s_on_monitor(zloop_t *loop, zsock_t *reader, void *arg)
{
    return keys_monitor_log((zactor_t *)reader, arg);
}

static zsock_t *s_bind(reg_server_t *self, int type, const char *endpoint)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        LOG_E("cannot create a socket");
        return NULL;
    }
    zsock_set_linger(sock, 0);
    if (self->keys) {
        keys_server(self->keys, sock);
        zactor_t **mon = type == ZMQ_ROUTER ? &self->mon_router : &self->mon_pub;
        *mon = keys_monitor_new(sock);
    }
    zsock_set_sndhwm(sock, 10000);
    zsock_set_maxmsgsize(sock, S_MAX_MSG);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        LOG_E("cannot bind endpoint=%s error=\"%s\"", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
    }
    return sock;
}

/* The PUB endpoint clients are told (reg_ack.pub, ring.pub): advertise, or the bound one
   with a wildcard port resolved. Caller frees; NULL when out of memory. */
static char *s_advertised(zsock_t *pub, const char *advertise)
{
    char *bound = zsock_last_endpoint(pub);
    char out[256];
    int rc = bound ? endpoint_advertised(bound, advertise, out, sizeof out) : -1;
    free(bound);
    if (rc < 0) {
        LOG_E("cannot form the advertised PUB endpoint");
        return NULL;
    }
    return strdup(out);
}

/* Blocks until the store thread reports its first lock attempt. */
static int s_first_event(reg_server_t *self)
{
    zpoller_t *poller = zpoller_new(reg_store_sock(self->store), NULL);
    void *which = poller ? zpoller_wait(poller, S_FIRST_EVENT_MS) : NULL;
    zpoller_destroy(&poller);
    if (!which) {
        LOG_W("no answer from the store thread yet; starting as standby");
        return 0;
    }
    return reg_server_on_store_events(self);
}

reg_server_t *reg_server_new(const reg_config_t *cfg)
{
    reg_server_t *self = calloc(1, sizeof *self);
    if (!self || !(self->bind_ep = strdup(cfg->bind)) ||
        !(self->pending = reg_pending_new(REG_PENDING_MAX))) {
        LOG_E("out of memory");
        reg_server_destroy(&self);
        return NULL;
    }
    self->dead_after_ms = cfg->dead_after_ms;
    self->keys = cfg->keys;
    /* Every key of the cluster may connect (nodes, gateways, admins); what
       each may ask is decided per message by its role (reg_server_reply.c). */
    if ((self->keys && keys_serve(self->keys, KEYS_ROLE_NONE) < 0) ||
        !(self->router = s_bind(self, ZMQ_ROUTER, cfg->bind)) ||
        !(self->pub = s_bind(self, ZMQ_PUB, cfg->pub_bind)) ||
        !(self->pub_ep = s_advertised(self->pub, cfg->pub_advertise)) ||
        !(self->store = reg_store_new(cfg->database_url, cfg->dead_after_ms)) ||
        s_first_event(self) < 0) {
        reg_server_destroy(&self);
        return NULL;
    }
    LOG_N("registry started router=%s pub=%s pub_bind=%s role=%s epoch=%" PRIu64
          " dead_after_ms=%" PRId64 " curve=%s",
          cfg->bind, self->pub_ep, cfg->pub_bind, self->active ? "active" : "standby", self->epoch,
          cfg->dead_after_ms, self->keys ? "on" : "off");
    return self;
}

void reg_server_destroy(reg_server_t **self_p)
{
    if (self_p && *self_p) {
        reg_server_t *self = *self_p;
        if (self->store && self->active) {
            /* Heartbeat times and any change still waiting: one last write
               (the thread merges it with a save still in flight). */
            reg_store_save(self->store, self->members, self->generation,
                           reg_members_version(self->members) != self->saved_version);
        }
        zactor_destroy(&self->mon_router);
        zactor_destroy(&self->mon_pub);
        zsock_destroy(&self->router);
        zsock_destroy(&self->pub);
        reg_store_destroy(&self->store);
        reg_pending_destroy(&self->pending);
        for (size_t i = 0; i < REG_CHECKS_MAX; i++) {
            zframe_destroy(&self->checks[i].peer); /* token checks still waiting */
        }
        reg_members_destroy(&self->members);
        reg_view_free(&self->frozen);
        reg_view_free(&self->candidate);
        free(self->pub_ep);
        free(self->bind_ep);
        free(self);
        *self_p = NULL;
    }
}

int reg_server_attach(reg_server_t *self, zloop_t *loop)
{
    if (zloop_reader(loop, reg_store_sock(self->store), s_on_store, self) < 0 ||
        zloop_reader(loop, self->router, s_on_router, self) < 0 ||
        zloop_timer(loop, REG_TICK_MS, 0, s_on_tick, self) < 0) {
        LOG_E("cannot attach the registry to its loop");
        return -1;
    }
    zloop_reader_set_tolerant(loop, self->router);
    if ((self->mon_router &&
         zloop_reader(loop, (zsock_t *)self->mon_router, s_on_monitor, "registry-router") < 0) ||
        (self->mon_pub &&
         zloop_reader(loop, (zsock_t *)self->mon_pub, s_on_monitor, "registry-pub") < 0)) {
        LOG_E("cannot attach the socket monitors to the loop");
        return -1;
    }
    return 0;
}

uint64_t reg_server_epoch(const reg_server_t *self)
{
    return self->epoch;
}

bool reg_server_active(const reg_server_t *self)
{
    return self->active;
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    char *cmd = zstr_recv(pipe);
    bool term = !cmd || !strcmp(cmd, "$TERM");
    zstr_free(&cmd);
    return term ? -1 : 0;
}

void reg_server_actor(zsock_t *pipe, void *args)
{
    reg_server_t *self = reg_server_new(args);
    zloop_t *loop = self ? zloop_new() : NULL;
    if (!loop || reg_server_attach(self, loop) < 0 ||
        zloop_reader(loop, pipe, s_on_pipe, NULL) < 0) {
        zloop_destroy(&loop);
        reg_server_destroy(&self);
        return;
    }
    zsock_signal(pipe, 0);
    zloop_start(loop);
    zloop_destroy(&loop);
    reg_server_destroy(&self);
}
