/*  reg_server — registry sockets and protocol handlers on one zloop.
    Every handler does bounded, non-blocking work: membership is in memory,
    persistence goes to reg_store's thread, replies and publications use
    non-blocking sends (a full pipe drops, the peer retries). */
#define LOG_MODULE "reg_server"
#include "registry/reg_server.h"

#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "registry/reg_members.h"
#include "registry/reg_store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_READ_BUDGET 256       /* messages handled per readable event */
#define S_MAX_MSG     (1 << 20) /* registry messages are small; cap what a peer can send */

struct reg_server_t {
    char *pub_ep;            /* advertised PUB endpoint (copy of cfg->pub_bind) */
    zsock_t *router;         /* requests from nodes, gateways, bickyctl */
    zsock_t *pub;            /* ring updates, topic "ring" */
    reg_members_t *members;  /* membership and epoch */
    reg_store_t *store;      /* persistence thread */
    bool dirty;              /* membership changed since the last snapshot was queued */
    int64_t next_publish_ms; /* next periodic ring publication (monotonic) */
    int64_t next_save_ms;    /* next periodic snapshot (monotonic) */
};

static reg_now_t s_now(void)
{
    return (reg_now_t){.mono_ms = util_mono_ms(), .wall_ms = util_wall_ms()};
}

/* ---- outgoing messages --------------------------------------------------- */

/* Fills msg as a PROTO_RING of every node in id order. msg->nodes is heap
   (the caller frees it); msg->pub is borrowed from self. -1 on OOM. */
static int s_ring_msg(reg_server_t *self, uint64_t req_id, proto_msg_t *msg)
{
    size_t n = reg_members_size(self->members);
    int64_t now = util_mono_ms();
    memset(msg, 0, sizeof *msg);
    msg->type = PROTO_RING;
    msg->req_id = req_id;
    msg->ring_epoch = reg_members_epoch(self->members);
    msg->pub = self->pub_ep;
    msg->nodes = calloc(n ? n : 1, sizeof *msg->nodes);
    if (!msg->nodes) {
        LOG_E("out of memory building the ring");
        return -1;
    }
    msg->nnodes = n;
    for (size_t i = 0; i < n; i++) {
        const reg_node_t *src = reg_members_at(self->members, i);
        proto_node_t *dst = &msg->nodes[i];
        snprintf(dst->id, sizeof dst->id, "%s", src->id);
        snprintf(dst->state, sizeof dst->state, "%s", reg_node_state_name(src->state));
        snprintf(dst->router, sizeof dst->router, "%s", src->router);
        snprintf(dst->pub, sizeof dst->pub, "%s", src->pub);
        dst->weight = src->weight;
        dst->actors = src->actors;
        dst->age_ms = now > src->beat_ms ? (uint64_t)(now - src->beat_ms) : 0;
    }
    return 0;
}

static void s_publish(reg_server_t *self)
{
    proto_msg_t msg;
    if (s_ring_msg(self, 0, &msg) == 0) {
        wire_publish(self->pub, REG_RING_TOPIC, strlen(REG_RING_TOPIC), &msg);
    }
    free(msg.nodes);
    self->next_publish_ms = util_mono_ms() + REG_PUBLISH_EVERY_MS;
}

static void s_reply_ring(reg_server_t *self, zframe_t *peer, uint64_t req_id)
{
    proto_msg_t msg;
    if (s_ring_msg(self, req_id, &msg) == 0 && wire_send(self->router, peer, &msg) < 0) {
        LOG_D("ring reply dropped req=%" PRIu64, req_id);
    }
    free(msg.nodes);
}

/* Sends a REG_ACK. state and error are borrowed; the encoder only reads them. */
static void
s_ack(reg_server_t *self, zframe_t *peer, uint64_t req_id, const char *state, const char *error)
{
    proto_msg_t ack = {.type = PROTO_REG_ACK,
                       .req_id = req_id,
                       .ring_epoch = reg_members_epoch(self->members),
                       .state = (char *)state,
                       .pub = self->pub_ep,
                       .error = (char *)error};
    wire_send(self->router, peer, &ack);
}

/* A membership change: publish now, persist soon (next tick). */
static void s_changed(reg_server_t *self, const char *reason, const char *node_id)
{
    LOG_N("ring changed epoch=%" PRIu64 " reason=%s node=%s", reg_members_epoch(self->members),
          reason, node_id ? node_id : "-");
    s_publish(self);
    self->dirty = true;
}

/* ---- request handlers --------------------------------------------------- */

static void s_on_register(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    reg_join_t join = {msg->node_id, msg->router, msg->pub, msg->weight};
    const char *why = NULL;
    reg_change_t rc = reg_members_register(self->members, &join, s_now(), &why);
    if (rc == REG_REJECTED) {
        LOG_W("register rejected node=%s error=\"%s\"", msg->node_id, why);
        s_ack(self, peer, msg->req_id, "unknown", why);
        return;
    }
    const reg_node_t *n = reg_members_find(self->members, msg->node_id);
    LOG_I("register node=%s router=%s pub=%s weight=%u state=%s", n->id, n->router, n->pub,
          n->weight, reg_node_state_name(n->state));
    if (rc == REG_CHANGED) {
        s_changed(self, "join", n->id);
    }
    s_ack(self, peer, msg->req_id, reg_node_state_name(n->state), NULL);
}

static void s_on_heartbeat(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    reg_change_t rc = reg_members_heartbeat(self->members, msg->node_id, msg->actors, s_now());
    if (rc == REG_REJECTED) {
        LOG_D("heartbeat from unknown node=%s", msg->node_id);
        s_ack(self, peer, msg->req_id, "unknown", "unknown node: register again");
        return;
    }
    const reg_node_t *n = reg_members_find(self->members, msg->node_id);
    if (rc == REG_CHANGED) {
        s_changed(self, "back", n->id);
    }
    s_ack(self, peer, msg->req_id, reg_node_state_name(n->state), NULL);
}

static void s_on_admin(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    int status = 500;
    const char *why = NULL;
    reg_change_t rc = reg_members_admin(self->members, msg->action, msg->node_id, &status, &why);
    LOG_N("admin action=%s node=%s status=%d", msg->action, msg->node_id, status);
    if (rc == REG_CHANGED) {
        s_changed(self, msg->action, msg->node_id);
    }
    proto_msg_t rep = {.type = PROTO_ADMIN_REP,
                       .req_id = msg->req_id,
                       .ring_epoch = reg_members_epoch(self->members),
                       .status = (uint64_t)status,
                       .error = (char *)why};
    wire_send(self->router, peer, &rep);
}

static void s_dispatch(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    switch (msg->type) {
        case PROTO_REGISTER:
            s_on_register(self, peer, msg);
            break;
        case PROTO_HEARTBEAT:
            s_on_heartbeat(self, peer, msg);
            break;
        case PROTO_RING_GET:
            s_reply_ring(self, peer, msg->req_id);
            break;
        case PROTO_ADMIN:
            s_on_admin(self, peer, msg);
            break;
        default:
            LOG_W("dropped unexpected message type=%s req=%" PRIu64, proto_type_name(msg->type),
                  msg->req_id);
            break;
    }
}

static int s_on_router(zloop_t *loop, zsock_t *reader, void *arg)
{
    reg_server_t *self = arg;
    for (int budget = S_READ_BUDGET; budget > 0 && (zsock_events(reader) & ZMQ_POLLIN); budget--) {
        zframe_t *peer = NULL;
        proto_msg_t msg;
        /* Malformed frames are logged and dropped inside wire_recv. */
        if (wire_recv(reader, &peer, &msg, "registry") == 0) {
            s_dispatch(self, peer, &msg);
            proto_msg_reset(&msg);
        }
        zframe_destroy(&peer);
    }
    return 0;
}

/* Liveness sweep, periodic publication and persistence. */
static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    reg_server_t *self = arg;
    int64_t now = util_mono_ms();
    if (reg_members_sweep(self->members, now) > 0) {
        s_changed(self, "death", NULL);
    }
    if (now >= self->next_publish_ms) {
        s_publish(self);
    }
    if ((self->dirty || now >= self->next_save_ms) &&
        reg_store_save(self->store, self->members) == 0) {
        self->dirty = false;
        self->next_save_ms = now + REG_SAVE_EVERY_MS;
    }
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static zsock_t *s_bind(int type, const char *endpoint)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        LOG_E("cannot create a socket");
        return NULL;
    }
    zsock_set_linger(sock, 0);
    zsock_set_sndhwm(sock, 10000);
    zsock_set_maxmsgsize(sock, S_MAX_MSG);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        LOG_E("cannot bind endpoint=%s error=\"%s\"", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
    }
    return sock;
}

reg_server_t *reg_server_new(const reg_config_t *cfg)
{
    reg_server_t *self = calloc(1, sizeof *self);
    if (!self || !(self->pub_ep = strdup(cfg->pub_bind)) ||
        !(self->members = reg_members_new(cfg->dead_after_ms))) {
        LOG_E("out of memory");
        reg_server_destroy(&self);
        return NULL;
    }
    char err[768];
    if (reg_store_load(cfg->database_url, self->members, util_mono_ms(), err, sizeof err) < 0) {
        LOG_E("cannot restore membership: %s", err);
        reg_server_destroy(&self);
        return NULL;
    }
    if (!(self->router = s_bind(ZMQ_ROUTER, cfg->bind)) ||
        !(self->pub = s_bind(ZMQ_PUB, cfg->pub_bind)) ||
        !(self->store = reg_store_new(cfg->database_url))) {
        reg_server_destroy(&self);
        return NULL;
    }
    size_t counts[3];
    reg_members_counts(self->members, counts);
    LOG_N("registry started router=%s pub=%s epoch=%" PRIu64
          " alive=%zu draining=%zu dead=%zu dead_after_ms=%" PRId64,
          cfg->bind, cfg->pub_bind, reg_members_epoch(self->members), counts[0], counts[1],
          counts[2], cfg->dead_after_ms);
    return self;
}

void reg_server_destroy(reg_server_t **self_p)
{
    if (self_p && *self_p) {
        reg_server_t *self = *self_p;
        zsock_destroy(&self->router);
        zsock_destroy(&self->pub);
        reg_store_destroy(&self->store);
        reg_members_destroy(&self->members);
        free(self->pub_ep);
        free(self);
        *self_p = NULL;
    }
}

int reg_server_attach(reg_server_t *self, zloop_t *loop)
{
    if (zloop_reader(loop, self->router, s_on_router, self) < 0 ||
        zloop_timer(loop, REG_TICK_MS, 0, s_on_tick, self) < 0) {
        LOG_E("cannot attach the registry to its loop");
        return -1;
    }
    zloop_reader_set_tolerant(loop, self->router);
    /* Publish (and persist) the restored ring right away. */
    self->next_publish_ms = 0;
    self->dirty = true;
    return 0;
}

uint64_t reg_server_epoch(const reg_server_t *self)
{
    return reg_members_epoch(self->members);
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
