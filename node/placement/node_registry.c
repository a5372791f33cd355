/*  node_registry — the node's side of the registry protocol: a DEALER to the
    current registry (REGISTER at start and whenever the registry does not
    know us, HEARTBEAT {actors} every second, RING_GET at start and when a
    newer epoch is seen), failover along the --registry list after 1 s
    without an answer, and a SUB on the registry's PUB (topic "ring") whose
    endpoint is learnt from REG_ACK/RING. A registry that answers as a
    standby (reg_ack state "standby") is skipped like a silent one, at the
    next tick. Also owns the node's ring: alive nodes sorted by id →
    ring_set, the ownership test, and the list of nodes that may still hold
    conversations (alive or draining) that claims respect (node_fence.c).
    Loop thread only. */
#define LOG_MODULE "node_registry"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "node/placement/node_placement.h"

#include <stdlib.h>
#include <string.h>

#define RING_TOPIC    "ring"
#define RING_GET_GAP  200       /* ms between two epoch-hint RING_GETs */
#define STATE_STANDBY "standby" /* reg_ack state of a registry that is not active */

struct node_reg_t {
    node_t *node;                  /* borrowed */
    char *list;                    /* owned copy of --registry, split in place */
    char *endpoints[NODE_REG_MAX]; /* registry ROUTER endpoints (into list) */
    size_t n;                      /* endpoints */
    size_t cur;                    /* the one we talk to */
    zsock_t *dealer;               /* to endpoints[cur] */
    zsock_t *sub;                  /* to the registry's PUB, NULL until known */
    char sub_ep[256];              /* endpoint sub is connected to */
    int64_t awaiting_since;        /* mono ms of the oldest unanswered request, 0 none */
    int64_t last_beat;             /* mono ms of the last REGISTER/HEARTBEAT */
    int64_t last_ring_get;         /* mono ms of the last RING_GET */
    bool registered;               /* the registry acknowledged us alive/draining */
    bool skip;                     /* the current registry is a standby: next one at the tick */
    bool standby_logged;           /* "standby" logged since the last real answer */
    char *live;                    /* text[] literal of alive + draining node ids, or NULL */
    int timer;                     /* NODE_REG_TICK_MS timer */
};

/* A Postgres text[] literal of the ids of nodes that may hold conversations. */
static char *s_live_literal(const proto_node_t *nodes, size_t n)
{
    char *out = malloc(n * (2 * sizeof nodes[0].id + 3) + 3);
    if (!out) {
        return NULL;
    }
    size_t len = 0, k = 0;
    out[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        const char *st = nodes[i].state;
        size_t idlen = strnlen(nodes[i].id, sizeof nodes[i].id);
        if (idlen == 0 || idlen == sizeof nodes[i].id ||
            (strcmp(st, "alive") != 0 && strcmp(st, "draining") != 0)) {
            continue;
        }
        if (k++ > 0) {
            out[len++] = ',';
        }
        out[len++] = '"';
        for (size_t c = 0; c < idlen; c++) {
            if (nodes[i].id[c] == '"' || nodes[i].id[c] == '\\') {
                out[len++] = '\\';
            }
            out[len++] = nodes[i].id[c];
        }
        out[len++] = '"';
    }
    out[len++] = '}';
    out[len] = 0;
    return out;
}

const char *node_reg_live(const node_t *node)
{
    return node->reg && node->reg->live ? node->reg->live : "{}";
}

/* ---- the ring ---------------------------------------------------------------------------- */

static int s_cmp_member(const void *a, const void *b)
{
    return strcmp(((const ring_member_t *)a)->id, ((const ring_member_t *)b)->id);
}

static bool s_same_members(const node_t *node, const ring_member_t *m, size_t n)
{
    if (n != node->nmembers) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].id, node->members[i].id) != 0 || m[i].weight != node->members[i].weight) {
            return false;
        }
    }
    return true;
}

int node_ring_apply(node_t *node, const proto_node_t *nodes, size_t n, uint64_t epoch)
{
    ring_member_t *m = calloc(n ? n : 1, sizeof *m);
    if (!m) {
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(nodes[i].id, sizeof nodes[i].id);
        if (strcmp(nodes[i].state, "alive") != 0 || len == 0 || len >= RING_ID_MAX ||
            nodes[i].weight > 64) {
            continue;
        }
        memcpy(m[k].id, nodes[i].id, len + 1);
        m[k++].weight = nodes[i].weight;
    }
    qsort(m, k, sizeof *m, s_cmp_member);
    bool same = node->have_ring && s_same_members(node, m, k);
    if (!same && ring_set(node->ring, m, k) < 0) {
        LOG_W("ring refused epoch=%llu members=%zu", (unsigned long long)epoch, k);
        free(m);
        return -1;
    }
    if (same) {
        free(m);
    } else {
        free(node->members);
        node->members = m;
        node->nmembers = k;
    }
    bool changed = !same || epoch != node->epoch;
    node->epoch = epoch;
    node->have_ring = true;
    if (node->reg) {
        char *live = s_live_literal(nodes, n);
        if (live) {
            free(node->reg->live);
            node->reg->live = live;
        }
    }
    if (changed) {
        LOG_N("ring epoch=%llu members=%zu", (unsigned long long)epoch, k);
    }
    if (!same) {
        node_handoff_rehome(node);
    }
    return 0;
}

node_owner_t node_ring_owner(node_t *node, const uint8_t conv[16])
{
    if (!node->have_ring) {
        return NODE_OWNER_NONE;
    }
    int idx = ring_lookup(node->ring, conv);
    if (idx < 0 || (size_t)idx >= node->nmembers) {
        return NODE_OWNER_NONE;
    }
    return strcmp(node->members[idx].id, node->cfg->id) == 0 ? NODE_OWNER_SELF : NODE_OWNER_OTHER;
}

/* ---- registry client --------------------------------------------------------------------- */

static void s_send(node_reg_t *self, proto_type_t type)
{
    node_t *node = self->node;
    proto_msg_t m = {.v = PROTO_VERSION, .type = type, .ring_epoch = node->epoch};
    m.node_id = (char *)node->cfg->id;
    if (type == PROTO_REGISTER) {
        m.router = node->router_ep;
        m.pub = node->pub_ep;
        m.weight = (uint64_t)node->cfg->weight;
    } else if (type == PROTO_HEARTBEAT) {
        m.actors = node_actors_count(node->actors);
    } else {
        m.node_id = NULL;
        self->last_ring_get = util_mono_ms();
    }
    if (wire_send(self->dealer, NULL, &m) < 0) {
        LOG_D("registry send dropped type=%s", proto_type_name(type));
    }
    if (!self->awaiting_since) {
        self->awaiting_since = util_mono_ms();
    }
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_sub(zloop_t *loop, zsock_t *sock, void *arg);

static int s_connect(node_reg_t *self)
{
    if (self->dealer) {
        zloop_reader_end(self->node->loop, self->dealer);
        zsock_destroy(&self->dealer);
    }
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer) {
        return -1;
    }
    zsock_set_linger(self->dealer, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->dealer, (int64_t)PROTO_MAX_FRAME);
    zsock_set_sndhwm(self->dealer, 64);
    const char *ep = self->endpoints[self->cur];
    keys_t *keys = self->node->cfg->keys;
    if (keys && keys_client(keys, self->dealer, KEYS_ROLE_REGISTRY, NULL) < 0) {
        LOG_E("no registry key: cannot reach the registry");
    }
    if (zsock_connect(self->dealer, "%s", ep) < 0) {
        LOG_E("cannot connect to registry endpoint=%s", ep);
    }
    self->awaiting_since = 0;
    self->registered = false;
    LOG_I("registry endpoint=%s", ep);
    return zloop_reader(self->node->loop, self->dealer, s_on_dealer, self);
}

static void s_follow_pub(node_reg_t *self, const char *pub)
{
    if (!pub || !*pub || strcmp(pub, self->sub_ep) == 0) {
        return;
    }
    if (self->sub) {
        zloop_reader_end(self->node->loop, self->sub);
        zsock_destroy(&self->sub);
    }
    self->sub = zsock_new(ZMQ_SUB);
    if (!self->sub) {
        return;
    }
    zsock_set_linger(self->sub, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->sub, (int64_t)PROTO_MAX_FRAME);
    zsock_set_subscribe(self->sub, RING_TOPIC);
    keys_t *keys = self->node->cfg->keys;
    if (keys && keys_client(keys, self->sub, KEYS_ROLE_REGISTRY, NULL) < 0) {
        LOG_E("no registry key: cannot follow the registry's ring");
    }
    if (zsock_connect(self->sub, "%s", pub) < 0) {
        LOG_W("cannot subscribe to registry pub=%s", pub);
    }
    snprintf(self->sub_ep, sizeof self->sub_ep, "%s", pub);
    zloop_reader(self->node->loop, self->sub, s_on_sub, self);
    LOG_I("following registry pub=%s", pub);
}

static void s_on_ack(node_reg_t *self, const proto_msg_t *m)
{
    node_t *node = self->node;
    if (strcmp(m->state, STATE_STANDBY) == 0) {
        /* Not the active registry: nothing in its answer is the cluster's view. */
        if (!self->standby_logged) {
            LOG_N("registry endpoint=%s is a standby; trying the next one",
                  self->endpoints[self->cur]);
        }
        self->standby_logged = true;
        self->skip = true;
        return;
    }
    self->standby_logged = false;
    bool known = strcmp(m->state, "alive") == 0 || strcmp(m->state, "draining") == 0;
    if (!known) {
        /* unknown (registry restarted without us) or dead (we were too slow): rejoin. */
        if (self->registered || strcmp(m->state, "unknown") != 0) {
            LOG_N("registry says state=%s; registering again", m->state);
        }
        self->registered = false;
        s_send(self, PROTO_REGISTER);
        self->last_beat = util_mono_ms();
    } else if (!self->registered) {
        self->registered = true;
        LOG_N("registered with registry endpoint=%s state=%s", self->endpoints[self->cur],
              m->state);
    }
    s_follow_pub(self, m->pub);
    if (m->ring_epoch > node->epoch || !node->have_ring) {
        s_send(self, PROTO_RING_GET);
    }
}

static void s_on_ring(node_reg_t *self, const proto_msg_t *m, bool reply)
{
    node_t *node = self->node;
    if (reply) {
        /* Only the registry we talk to decides where we subscribe (and the SUB socket
           cannot be replaced while its own reader runs). */
        s_follow_pub(self, m->pub);
    }
    /* A published ring older than ours is a late message; an answer to RING_GET is the
       registry's current view and wins even if its epoch went back (registry reset). */
    if (!reply && node->have_ring && m->ring_epoch < node->epoch) {
        return;
    }
    node_ring_apply(node, m->nodes, m->nnodes, m->ring_epoch);
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    node_reg_t *self = arg;
    for (int i = 0; i < 64; i++) {
        proto_msg_t m;
        if (wire_recv(sock, NULL, &m, "registry") < 0) {
            if (!(zsock_events(sock) & ZMQ_POLLIN)) {
                break;
            }
            continue;
        }
        self->awaiting_since = 0;
        if (m.type == PROTO_REG_ACK) {
            s_on_ack(self, &m);
        } else if (m.type == PROTO_RING) {
            s_on_ring(self, &m, true);
        } else {
            LOG_W("unexpected message from registry type=%s", proto_type_name(m.type));
        }
        proto_msg_reset(&m);
    }
    return 0;
}

static int s_on_sub(zloop_t *loop, zsock_t *sock, void *arg)
{
    node_reg_t *self = arg;
    for (int i = 0; i < 64; i++) {
        uint8_t topic[PROTO_TOPIC_LEN];
        size_t tlen = 0;
        proto_msg_t m;
        if (wire_recv_sub(sock, topic, sizeof topic, &tlen, &m, "registry-pub") < 0) {
            if (!(zsock_events(sock) & ZMQ_POLLIN)) {
                break;
            }
            continue;
        }
        if (m.type == PROTO_RING && tlen == strlen(RING_TOPIC) &&
            memcmp(topic, RING_TOPIC, tlen) == 0) {
            s_on_ring(self, &m, false);
        } else {
            LOG_W("unexpected message on registry pub type=%s", proto_type_name(m.type));
        }
        proto_msg_reset(&m);
    }
    return 0;
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    node_reg_t *self = arg;
    int64_t now = util_mono_ms();
    bool silent = self->awaiting_since && now - self->awaiting_since >= NODE_REG_TIMEOUT;
    if (silent || self->skip) {
        size_t from = self->cur;
        self->cur = (self->cur + 1) % self->n;
        if (silent) {
            LOG_W("registry silent for %lld ms endpoint=%s; trying endpoint=%s",
                  (long long)(now - self->awaiting_since), self->endpoints[from],
                  self->endpoints[self->cur]);
        }
        self->skip = false;
        if (s_connect(self) < 0) {
            return 0;
        }
        s_send(self, PROTO_REGISTER);
        s_send(self, PROTO_RING_GET);
        self->last_beat = now;
        return 0;
    }
    if (now - self->last_beat >= NODE_REG_HEARTBEAT) {
        s_send(self, self->registered ? PROTO_HEARTBEAT : PROTO_REGISTER);
        self->last_beat = now;
    }
    return 0;
}

static int s_parse_list(node_reg_t *self, const char *list)
{
    self->list = strdup(list ? list : "");
    if (!self->list) {
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(self->list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        if (*tok && self->n < NODE_REG_MAX) {
            self->endpoints[self->n++] = tok;
        }
    }
    if (self->n == 0) {
        LOG_E("--registry names no endpoint");
        return -1;
    }
    return 0;
}

node_reg_t *node_reg_new(node_t *node)
{
    node_reg_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->node = node;
    self->timer = -1;
    if (s_parse_list(self, node->cfg->registry) < 0 || s_connect(self) < 0) {
        node_reg_destroy(&self);
        return NULL;
    }
    self->timer = zloop_timer(node->loop, NODE_REG_TICK_MS, 0, s_on_timer, self);
    s_send(self, PROTO_REGISTER);
    s_send(self, PROTO_RING_GET);
    self->last_beat = util_mono_ms();
    return self;
}

void node_reg_destroy(node_reg_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_reg_t *self = *self_p;
    if (self->timer >= 0) {
        zloop_timer_end(self->node->loop, self->timer);
    }
    if (self->dealer) {
        zloop_reader_end(self->node->loop, self->dealer);
        zsock_destroy(&self->dealer);
    }
    if (self->sub) {
        zloop_reader_end(self->node->loop, self->sub);
        zsock_destroy(&self->sub);
    }
    free(self->list);
    free(self->live);
    free(self);
    *self_p = NULL;
}

void node_reg_refresh(node_t *node)
{
    node_reg_t *self = node->reg;
    if (self && util_mono_ms() - self->last_ring_get >= RING_GET_GAP) {
        s_send(self, PROTO_RING_GET);
    }
}

void node_reg_epoch_hint(node_t *node, uint64_t epoch)
{
    node_reg_t *self = node->reg;
    if (!self || epoch <= node->epoch) {
        return;
    }
    if (util_mono_ms() - self->last_ring_get >= RING_GET_GAP) {
        s_send(self, PROTO_RING_GET);
    }
}
