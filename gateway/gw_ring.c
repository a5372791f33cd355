/*  gw_ring — the gateway's view of the cluster membership: applies RING
    messages (from the registry's reply or PUB), keeps one DEALER per known
    node (alive or draining) and the event SUB connected to its PUB, and
    rebuilds the consistent-hash ring from the alive nodes sorted by id, so
    that ring_lookup agrees with every other process. Each DEALER is
    monitored: when its connection drops, the calls in flight on it can get
    no answer (the node's ROUTER forgets the peer), so they are answered 503
    at once rather than at their deadline — a node restarted under its id
    before the registry saw it dead changes no ring. Loop thread only. */
#define LOG_MODULE "gw_ring"
#include "gateway/gateway_internal.h"

#include "common/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The connection of a node's DEALER dropped: its calls in flight are lost. */
static int s_on_monitor(zloop_t *loop, zsock_t *mon, void *arg)
{
    gw_node_t *n = arg;
    (void)loop;
    zmsg_t *msg = zmsg_recv(mon);
    zframe_t *f = msg ? zmsg_first(msg) : NULL;
    uint16_t event = 0;
    if (f && zframe_size(f) >= sizeof event) {
        memcpy(&event, zframe_data(f), sizeof event);
    }
    zmsg_destroy(&msg);
    if (event == ZMQ_EVENT_DISCONNECTED) {
        size_t before = gw_upstream_pending(n->up);
        gw_upstream_fail_conn(n->up, n->id);
        LOG_N("connection to node=%s lost; calls answered 503=%zu", n->id,
              before - gw_upstream_pending(n->up));
    }
    return 0;
}

/* Stops watching and closes the node's DEALER (its calls stay pending). */
static void s_node_close(gw_node_t *n)
{
    if (n->mon) {
        zloop_reader_end(n->up->srv->loop, n->mon);
        if (n->dealer) {
            zmq_socket_monitor(zsock_resolve(n->dealer), NULL, 0);
        }
        zsock_destroy(&n->mon);
    }
    if (n->dealer) {
        zloop_reader_end(n->up->srv->loop, n->dealer);
        zsock_destroy(&n->dealer);
    }
}

/* Watches the DEALER's disconnections on an inproc PAIR read by the loop. A node
   that cannot be watched still works; its lost calls end at their deadline. */
static void s_node_watch(gw_node_t *n)
{
    /* A name never used before in this process: a monitor stopped a moment ago
       may still hold its endpoint (libzmq closes it asynchronously). */
    static unsigned long s_seq;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://gw-node-mon-%lu", ++s_seq);
    if (zmq_socket_monitor(zsock_resolve(n->dealer), ep, ZMQ_EVENT_DISCONNECTED) != 0) {
        LOG_W("cannot watch the connection to node=%s: %s", n->id, zmq_strerror(zmq_errno()));
        return;
    }
    n->mon = zsock_new(ZMQ_PAIR);
    if (!n->mon || zsock_connect(n->mon, "%s", ep) < 0 ||
        zloop_reader(n->up->srv->loop, n->mon, s_on_monitor, n) < 0) {
        LOG_W("cannot watch the connection to node=%s", n->id);
        zmq_socket_monitor(zsock_resolve(n->dealer), NULL, 0);
        zsock_destroy(&n->mon);
    }
}

void gw_node_free(void **item)
{
    gw_node_t *n = *item;
    if (!n) {
        return;
    }
    s_node_close(n);
    if (n->pub[0] && n->up->srv->fanout) {
        gw_fanout_disconnect(n->up->srv->fanout, n->pub);
    }
    free(n);
    *item = NULL;
}

static int s_node_connect(gw_node_t *n)
{
    n->dealer = zsock_new(ZMQ_DEALER);
    if (!n->dealer) {
        return -1;
    }
    zsock_set_linger(n->dealer, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(n->dealer, (int64_t)PROTO_MAX_FRAME);
    zsock_set_sndhwm(n->dealer, 10000);
    keys_t *keys = n->up->srv->cfg->keys;
    if (keys && keys_client(keys, n->dealer, KEYS_ROLE_NODE, n->id) < 0) {
        zsock_destroy(&n->dealer);
        return -1;
    }
    if (zsock_connect(n->dealer, "%s", n->router) < 0) {
        LOG_W("cannot connect to node=%s router=%s", n->id, n->router);
        zsock_destroy(&n->dealer);
        return -1;
    }
    zloop_reader(n->up->srv->loop, n->dealer, gw_upstream_on_node, n);
    zloop_reader_set_tolerant(n->up->srv->loop, n->dealer);
    s_node_watch(n);
    return 0;
}

static void s_node_update(gw_upstream_t *self, gw_node_t *n, const proto_node_t *pn)
{
    if (strcmp(n->router, pn->router) != 0) {
        LOG_N("node router changed node=%s router=%s", n->id, pn->router);
        s_node_close(n);
        gw_upstream_fail_node(self, n->id);
        snprintf(n->router, sizeof n->router, "%s", pn->router);
        s_node_connect(n);
    }
    if (strcmp(n->pub, pn->pub) != 0) {
        if (n->pub[0]) {
            gw_fanout_disconnect(self->srv->fanout, n->pub);
        }
        snprintf(n->pub, sizeof n->pub, "%s", pn->pub);
        gw_fanout_connect(self->srv->fanout, n->id, n->pub);
    }
    snprintf(n->state, sizeof n->state, "%s", pn->state);
    n->weight = pn->weight > 64 ? 64 : pn->weight;
    n->actors = pn->actors;
    n->seen = true;
}

static gw_node_t *s_node_add(gw_upstream_t *self, const proto_node_t *pn)
{
    gw_node_t *n = calloc(1, sizeof *n);
    if (!n) {
        return NULL;
    }
    n->up = self;
    snprintf(n->id, sizeof n->id, "%s", pn->id);
    snprintf(n->router, sizeof n->router, "%s", pn->router);
    if (s_node_connect(n) < 0) {
        free(n);
        return NULL;
    }
    zhashx_insert(self->nodes, n->id, n);
    LOG_N("node joined node=%s router=%s pub=%s", pn->id, pn->router, pn->pub);
    return n;
}

static int s_by_id(const void *a, const void *b)
{
    return strcmp((*(gw_node_t *const *)a)->id, (*(gw_node_t *const *)b)->id);
}

/* Rebuilds the ring from the alive nodes sorted by id (the order every
   process uses, so ring_lookup agrees everywhere). */
static void s_rebuild_ring(gw_upstream_t *self)
{
    size_t total = zhashx_size(self->nodes), k = 0;
    gw_node_t **alive = calloc(total ? total : 1, sizeof *alive);
    ring_member_t *members = calloc(total ? total : 1, sizeof *members);
    for (gw_node_t *n = zhashx_first(self->nodes); n && alive && members;
         n = zhashx_next(self->nodes)) {
        n->in_ring = false;
        if (strcmp(n->state, "alive") == 0 && n->weight > 0 && n->dealer) {
            alive[k++] = n;
        }
    }
    if (alive && members) {
        qsort(alive, k, sizeof *alive, s_by_id);
        for (size_t i = 0; i < k; i++) {
            snprintf(members[i].id, sizeof members[i].id, "%s", alive[i]->id);
            members[i].weight = alive[i]->weight;
        }
    }
    if (!alive || !members || ring_set(self->ring, members, k) < 0) {
        LOG_E("cannot rebuild the ring members=%zu; keeping the previous one", k);
        free(alive);
        free(members);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        alive[i]->in_ring = true;
    }
    free(self->ring_nodes);
    free(members);
    self->ring_nodes = alive;
    self->nring = k;
}

/* Removes the nodes absent from the latest RING (or dead). */
static void s_sweep_nodes(gw_upstream_t *self)
{
    zlistx_t *gone = zlistx_new();
    for (gw_node_t *n = zhashx_first(self->nodes); n; n = zhashx_next(self->nodes)) {
        if (!n->seen) {
            zlistx_add_end(gone, n->id);
        }
    }
    for (char *id = zlistx_first(gone); id; id = zlistx_next(gone)) {
        LOG_N("node left node=%s", id);
        gw_upstream_fail_node(self, id);
        zhashx_delete(self->nodes, id);
    }
    zlistx_destroy(&gone);
}

void gw_upstream_set_ring(gw_upstream_t *self, const proto_msg_t *ring, bool from_reply)
{
    if (self->have_ring && ring->ring_epoch < self->epoch && !from_reply) {
        return;
    }
    for (gw_node_t *n = zhashx_first(self->nodes); n; n = zhashx_next(self->nodes)) {
        n->seen = false;
    }
    for (size_t i = 0; i < ring->nnodes; i++) {
        const proto_node_t *pn = &ring->nodes[i];
        if (!pn->id[0] || strcmp(pn->state, "dead") == 0) {
            continue;
        }
        gw_node_t *n = zhashx_lookup(self->nodes, pn->id);
        n = n ? n : s_node_add(self, pn);
        if (n) {
            s_node_update(self, n, pn);
        }
    }
    s_sweep_nodes(self);
    size_t before = self->nring;
    s_rebuild_ring(self);
    if (!self->have_ring || self->epoch != ring->ring_epoch || before != self->nring) {
        LOG_N("ring epoch=%" PRIu64 " live_nodes=%zu known_nodes=%zu", ring->ring_epoch,
              self->nring, zhashx_size(self->nodes));
    }
    self->epoch = ring->ring_epoch;
    self->have_ring = true;
    gw_upstream_resend_parked(self);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

json_t *gw_upstream_nodes_json(const gw_upstream_t *self)
{
    json_t *arr = json_array();
    zlistx_t *ids = zhashx_keys(self->nodes);
    zlistx_set_comparator(ids, s_cmp_str);
    zlistx_sort(ids);
    for (const char *id = zlistx_first(ids); id; id = zlistx_next(ids)) {
        const gw_node_t *n = zhashx_lookup(self->nodes, id);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:i, s:b}", "id", n->id, "state",
                                             n->state, "weight", (int)n->weight, "actors",
                                             (int)n->actors, "in_ring", n->in_ring));
    }
    zlistx_destroy(&ids);
    return arr;
}
