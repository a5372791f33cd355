/*  gw_fanout — live events from the nodes to SSE clients, Phoenix channels
    and long-polls: one SUB socket
    connected to every node's PUB, subscribed to a topic (32 bytes: team +
    conversation; 16 bytes: a whole team) only while that topic has
    listeners (refcounted by the listener list). Loop thread only. */
#define LOG_MODULE "gw_fanout"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

#define S_MAX_BATCH 512 /* events handled per reader wake-up */

typedef struct {
    uint8_t topic[PROTO_TOPIC_LEN]; /* subscribed prefix */
    size_t len;                     /* 16 or 32 */
    zlistx_t *clients;              /* gw_sse_t listeners (not owned) */
    zlistx_t *chans;                /* Phoenix channels listening (not owned) */
    zlistx_t *polls;                /* gw_poll_t long-polls waiting (not owned) */
} s_topic_t;

struct gw_fanout_t {
    gw_server_t *srv; /* owner */
    zsock_t *sub;     /* connected to every node PUB */
    zhashx_t *topics; /* hex(topic) → s_topic_t (owned) */
    zhashx_t *peers;  /* endpoint → "" for every connected PUB */
};

static int s_on_event(zloop_t *loop, zsock_t *sock, void *arg);

static void s_topic_free(void **item)
{
    s_topic_t *t = *item;
    if (t) {
        zlistx_destroy(&t->clients);
        zlistx_destroy(&t->chans);
        zlistx_destroy(&t->polls);
        free(t);
        *item = NULL;
    }
}

static void s_hex(const uint8_t *topic, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[topic[i] >> 4];
        out[2 * i + 1] = digits[topic[i] & 15];
    }
    out[2 * len] = 0;
}

gw_fanout_t *gw_fanout_new(gw_server_t *srv)
{
    gw_fanout_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->srv = srv;
    self->sub = zsock_new(ZMQ_SUB);
    self->topics = zhashx_new();
    self->peers = zhashx_new();
    if (!self->sub || !self->topics || !self->peers) {
        gw_fanout_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->topics, s_topic_free);
    zsock_set_linger(self->sub, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->sub, (int64_t)PROTO_MAX_FRAME);
    zsock_set_rcvhwm(self->sub, 100000);
    zloop_reader(srv->loop, self->sub, s_on_event, self);
    zloop_reader_set_tolerant(srv->loop, self->sub);
    return self;
}

void gw_fanout_destroy(gw_fanout_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_fanout_t *self = *self_p;
    if (self->sub) {
        zloop_reader_end(self->srv->loop, self->sub);
        zsock_destroy(&self->sub);
    }
    zhashx_destroy(&self->topics);
    zhashx_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

void gw_fanout_connect(gw_fanout_t *self, const char *node_id, const char *endpoint)
{
    if (!endpoint || !*endpoint || zhashx_lookup(self->peers, endpoint)) {
        return;
    }
    /* libzmq copies the socket's options at each connect: the server key set
       now is the one this connection expects. */
    if (self->srv->cfg->keys &&
        keys_client(self->srv->cfg->keys, self->sub, KEYS_ROLE_NODE, node_id) < 0) {
        return;
    }
    if (zsock_connect(self->sub, "%s", endpoint) < 0) {
        LOG_W("cannot connect to node pub endpoint=%s", endpoint);
        return;
    }
    zhashx_insert(self->peers, endpoint, (void *)"");
}

void gw_fanout_disconnect(gw_fanout_t *self, const char *endpoint)
{
    if (!endpoint || !zhashx_lookup(self->peers, endpoint)) {
        return;
    }
    zsock_disconnect(self->sub, "%s", endpoint);
    zhashx_delete(self->peers, endpoint);
}

/* The topic entry of topic, created (and subscribed) when create is set. */
static s_topic_t *s_topic(gw_fanout_t *self, const uint8_t *topic, size_t len, bool create)
{
    char key[2 * PROTO_TOPIC_LEN + 1];
    if (len != 16 && len != PROTO_TOPIC_LEN) {
        return NULL;
    }
    s_hex(topic, len, key);
    s_topic_t *t = zhashx_lookup(self->topics, key);
    if (!t && create) {
        t = calloc(1, sizeof *t);
        if (!t || !(t->clients = zlistx_new()) || !(t->chans = zlistx_new()) ||
            !(t->polls = zlistx_new())) {
            if (t) {
                zlistx_destroy(&t->clients);
                zlistx_destroy(&t->chans);
            }
            free(t);
            return NULL;
        }
        memcpy(t->topic, topic, len);
        t->len = len;
        zhashx_insert(self->topics, key, t);
        zmq_setsockopt(zsock_resolve(self->sub), ZMQ_SUBSCRIBE, topic, len);
        LOG_D("subscribed topic=%s", key);
    }
    return t;
}

/* Removes who from list; unsubscribes t when it has no listener left. */
static void s_unlisten(gw_fanout_t *self, s_topic_t *t, zlistx_t *list, void *who)
{
    for (void *c = zlistx_first(list); c; c = zlistx_next(list)) {
        if (c == who) {
            zlistx_delete(list, zlistx_cursor(list));
            break;
        }
    }
    if (zlistx_size(t->clients) == 0 && zlistx_size(t->chans) == 0 && zlistx_size(t->polls) == 0) {
        char key[2 * PROTO_TOPIC_LEN + 1];
        s_hex(t->topic, t->len, key);
        zmq_setsockopt(zsock_resolve(self->sub), ZMQ_UNSUBSCRIBE, t->topic, t->len);
        LOG_D("unsubscribed topic=%s", key);
        zhashx_delete(self->topics, key);
    }
}

int gw_fanout_add(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_sse_t *client)
{
    s_topic_t *t = s_topic(self, topic, len, true);
    return t && zlistx_add_end(t->clients, client) ? 0 : -1;
}

void gw_fanout_remove(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_sse_t *client)
{
    s_topic_t *t = s_topic(self, topic, len, false);
    if (t) {
        s_unlisten(self, t, t->clients, client);
    }
}

int gw_fanout_add_ws(gw_fanout_t *self, const uint8_t *topic, size_t len, void *chan)
{
    s_topic_t *t = s_topic(self, topic, len, true);
    return t && zlistx_add_end(t->chans, chan) ? 0 : -1;
}

void gw_fanout_remove_ws(gw_fanout_t *self, const uint8_t *topic, size_t len, void *chan)
{
    s_topic_t *t = s_topic(self, topic, len, false);
    if (t) {
        s_unlisten(self, t, t->chans, chan);
    }
}

int gw_fanout_add_poll(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_poll_t *poll)
{
    s_topic_t *t = s_topic(self, topic, len, true);
    return t && zlistx_add_end(t->polls, poll) ? 0 : -1;
}

void gw_fanout_remove_poll(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_poll_t *poll)
{
    s_topic_t *t = s_topic(self, topic, len, false);
    if (t) {
        s_unlisten(self, t, t->polls, poll);
    }
}

size_t gw_fanout_topics(const gw_fanout_t *self)
{
    return zhashx_size(self->topics);
}

static void s_dispatch(gw_fanout_t *self, const uint8_t *topic, size_t len, const proto_msg_t *m)
{
    char key[2 * PROTO_TOPIC_LEN + 1];
    s_hex(topic, len, key);
    s_topic_t *t = zhashx_lookup(self->topics, key);
    if (!t) {
        return;
    }
    /* Delivery never removes a listener synchronously (a slow client is only
       marked and resumed), so walking the list here is safe. */
    for (gw_sse_t *c = zlistx_first(t->clients); c; c = zlistx_next(t->clients)) {
        gw_sse_deliver(c, m);
    }
    /* A channel's delivery only queues output (a socket too slow is closed
       later, from its own loop wake), so this walk is safe as well. */
    for (void *c = zlistx_first(t->chans); c; c = zlistx_next(t->chans)) {
        gw_phx_deliver(c, m);
    }
    /* A poll's delivery starts an upstream call at most; its request ends
       (and leaves the list) only from libmicrohttpd, later. */
    for (gw_poll_t *p = zlistx_first(t->polls); p; p = zlistx_next(t->polls)) {
        gw_poll_deliver(p, m);
    }
}

static int s_on_event(zloop_t *loop, zsock_t *sock, void *arg)
{
    gw_fanout_t *self = arg;
    for (int i = 0; i < S_MAX_BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        uint8_t topic[PROTO_TOPIC_LEN];
        size_t tlen = 0;
        proto_msg_t m;
        if (wire_recv_sub(sock, topic, sizeof topic, &tlen, &m, "node_pub") < 0) {
            continue;
        }
        if (m.type != PROTO_EVENT || tlen != PROTO_TOPIC_LEN || !m.event_type || !m.body) {
            LOG_W("dropped event type=%s topic_len=%zu", proto_type_name(m.type), tlen);
        } else {
            s_dispatch(self, topic, PROTO_TOPIC_LEN, &m);
            s_dispatch(self, topic, 16, &m);
        }
        proto_msg_reset(&m);
    }
    gw_server_kick(self->srv);
    return 0;
}
