/*  gw_registry — the gateway's link to the registry: a DEALER to the first
    registry of the comma list that answers (moving on after 1 s of silence,
    or at the next tick when it answers as a standby: reg_ack state
    "standby"), RING_GET at start and every few seconds, and a SUB on the
    registry's PUB (topic "ring"). Every RING goes to gw_upstream. The same
    DEALER carries the admin requests (drain/undrain) the HTTP API forwards
    with the caller's token; their replies are told apart by req_id (a
    RING_GET has 0). Loop thread only. */
#define LOG_MODULE "gw_registry"
#include "gateway/gateway_internal.h"
#include "gateway/gw_api_nodes.h"

#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

#define S_SILENCE_MS 1000      /* an unanswered RING_GET moves to the next registry */
#define S_STANDBY_MS 200       /* a standby's answer moves to the next one after this */
#define S_MAX_BATCH  64        /* messages handled per reader wake-up */
#define S_STANDBY    "standby" /* reg_ack state of a registry that is not active */
#define S_ADMIN_MAX  32        /* admin requests in flight at once */

/* An admin request in flight (drain/undrain for an HTTP caller). */
typedef struct {
    uint64_t id;         /* its req_id (> 0; RING_GET uses 0), 0 when the slot is free */
    gw_admin_fn *fn;     /* callback */
    void *owner;         /* its argument */
    int64_t deadline_ms; /* mono deadline → 504 */
} s_admin_t;

struct gw_registry_t {
    gw_server_t *srv;             /* owner */
    char **endpoints;             /* registry ROUTER endpoints (owned) */
    size_t count;                 /* endpoints */
    size_t cur;                   /* endpoint in use */
    zsock_t *dealer;              /* requests to endpoints[cur] */
    zsock_t *sub;                 /* registry PUB, topic "ring" */
    char sub_endpoint[256];       /* where sub is connected, "" when not */
    int64_t asked_ms;             /* send time of the unanswered RING_GET, 0 when none */
    int64_t next_ms;              /* next periodic RING_GET */
    bool silent;                  /* the current registry stopped answering (logged once) */
    bool standby;                 /* the current registry answered as a standby */
    bool standby_logged;          /* a standby was logged since the last RING */
    s_admin_t admin[S_ADMIN_MAX]; /* admin requests in flight */
    uint64_t next_admin;          /* last admin req_id issued */
};

static void s_admin_fail_all(gw_registry_t *self, int status, const char *why);

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_sub(zloop_t *loop, zsock_t *sock, void *arg);

static int s_split(gw_registry_t *self, const char *list)
{
    char *copy = strdup(list ? list : "");
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        char **grown = realloc(self->endpoints, (n + 1) * sizeof *grown);
        if (!grown) {
            break;
        }
        self->endpoints = grown;
        self->endpoints[n++] = strdup(t);
    }
    free(copy);
    self->count = n;
    return n > 0 ? 0 : -1;
}

/* (Re)creates the DEALER on endpoints[cur]; queued requests are dropped
   (admin requests in flight are answered 503: their reply cannot come). */
static int s_connect(gw_registry_t *self)
{
    s_admin_fail_all(self, 503, "the registry link moved to another registry; retry");
    if (self->dealer) {
        zloop_reader_end(self->srv->loop, self->dealer);
        zsock_destroy(&self->dealer);
    }
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer) {
        return -1;
    }
    zsock_set_linger(self->dealer, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->dealer, (int64_t)PROTO_MAX_FRAME);
    zsock_set_sndhwm(self->dealer, 16);
    keys_t *keys = self->srv->cfg->keys;
    if (keys && keys_client(keys, self->dealer, KEYS_ROLE_REGISTRY, NULL) < 0) {
        return -1;
    }
    if (zsock_connect(self->dealer, "%s", self->endpoints[self->cur]) < 0) {
        LOG_E("cannot connect to registry endpoint=%s", self->endpoints[self->cur]);
        return -1;
    }
    zloop_reader(self->srv->loop, self->dealer, s_on_dealer, self);
    zloop_reader_set_tolerant(self->srv->loop, self->dealer);
    return 0;
}

static void s_ask(gw_registry_t *self)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_RING_GET};
    m.ring_epoch = gw_upstream_epoch(self->srv->upstream);
    wire_send(self->dealer, NULL, &m);
    self->asked_ms = util_mono_ms();
}

gw_registry_t *gw_registry_new(gw_server_t *srv, const char *endpoints)
{
    gw_registry_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->srv = srv;
    if (s_split(self, endpoints) < 0) {
        LOG_E("no registry endpoint in '%s'", endpoints ? endpoints : "");
        gw_registry_destroy(&self);
        return NULL;
    }
    self->sub = zsock_new(ZMQ_SUB);
    if (self->sub && srv->cfg->keys &&
        keys_client(srv->cfg->keys, self->sub, KEYS_ROLE_REGISTRY, NULL) < 0) {
        zsock_destroy(&self->sub);
    }
    if (!self->sub || s_connect(self) < 0) {
        gw_registry_destroy(&self);
        return NULL;
    }
    zsock_set_linger(self->sub, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->sub, (int64_t)PROTO_MAX_FRAME);
    zsock_set_subscribe(self->sub, "ring");
    zsock_set_subscribe(self->sub, "revoked");
    zloop_reader(srv->loop, self->sub, s_on_sub, self);
    zloop_reader_set_tolerant(srv->loop, self->sub);
    s_ask(self);
    return self;
}

void gw_registry_destroy(gw_registry_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_registry_t *self = *self_p;
    /* Requests still waiting were answered by gw_http_fail_all (which cancels theirs). */
    if (self->dealer) {
        zloop_reader_end(self->srv->loop, self->dealer);
        zsock_destroy(&self->dealer);
    }
    if (self->sub) {
        zloop_reader_end(self->srv->loop, self->sub);
        zsock_destroy(&self->sub);
    }
    for (size_t i = 0; i < self->count; i++) {
        free(self->endpoints[i]);
    }
    free(self->endpoints);
    free(self);
    *self_p = NULL;
}

const char *gw_registry_current(const gw_registry_t *self)
{
    return self->endpoints[self->cur];
}

void gw_registry_refresh(gw_registry_t *self)
{
    if (!self->asked_ms) {
        s_ask(self);
    }
}

/* ---- admin requests ------------------------------------------------------ */

/* Frees the slot, then runs its callback (which may send another request). */
static void s_admin_finish(s_admin_t *a, const gw_admin_reply_t *reply)
{
    gw_admin_fn *fn = a->fn;
    void *owner = a->owner;
    memset(a, 0, sizeof *a);
    fn(owner, reply);
}

static void s_admin_fail_all(gw_registry_t *self, int status, const char *why)
{
    for (size_t i = 0; i < S_ADMIN_MAX; i++) {
        if (self->admin[i].id) {
            gw_admin_reply_t r = {.status = status, .error = why};
            s_admin_finish(&self->admin[i], &r);
        }
    }
}

static s_admin_t *s_admin_find(gw_registry_t *self, uint64_t id)
{
    for (size_t i = 0; id && i < S_ADMIN_MAX; i++) {
        if (self->admin[i].id == id) {
            return &self->admin[i];
        }
    }
    return NULL;
}

uint64_t gw_registry_admin(gw_registry_t *self,
                           const char *action,
                           const char *node_id,
                           const char *token,
                           int64_t deadline_ms,
                           gw_admin_fn *fn,
                           void *owner)
{
    s_admin_t *a = NULL;
    for (size_t i = 0; i < S_ADMIN_MAX && !a; i++) {
        a = self->admin[i].id ? NULL : &self->admin[i];
    }
    if (!a || !self->dealer) {
        return 0;
    }
    proto_msg_t m = {.v = PROTO_VERSION,
                     .type = PROTO_ADMIN,
                     .req_id = ++self->next_admin,
                     .ring_epoch = gw_upstream_epoch(self->srv->upstream),
                     .action = (char *)action,
                     .node_id = (char *)node_id,
                     .token = (char *)token};
    if (wire_send(self->dealer, NULL, &m) < 0) {
        LOG_W("cannot send admin action=%s node=%s to the registry", action, node_id);
        return 0;
    }
    *a = (s_admin_t){.id = m.req_id, .fn = fn, .owner = owner, .deadline_ms = deadline_ms};
    return a->id;
}

void gw_registry_cancel(gw_registry_t *self, uint64_t id)
{
    s_admin_t *a = self ? s_admin_find(self, id) : NULL;
    if (a) {
        memset(a, 0, sizeof *a);
    }
}

static void s_admin_expire(gw_registry_t *self, int64_t now_ms)
{
    for (size_t i = 0; i < S_ADMIN_MAX; i++) {
        if (self->admin[i].id && self->admin[i].deadline_ms <= now_ms) {
            LOG_W("the registry did not answer admin req=%llu in time endpoint=%s",
                  (unsigned long long)self->admin[i].id, self->endpoints[self->cur]);
            gw_admin_reply_t r = {.status = 504, .error = "the registry did not answer in time"};
            s_admin_finish(&self->admin[i], &r);
        }
    }
}

/* A reply to an admin request (req_id > 0): its answer, or a standby's reg_ack. */
static void s_on_admin_reply(gw_registry_t *self, const proto_msg_t *m)
{
    s_admin_t *a = s_admin_find(self, m->req_id);
    if (!a) {
        LOG_D("dropped a registry reply for unknown req=%llu", (unsigned long long)m->req_id);
        return;
    }
    gw_admin_reply_t r = {.status = 503, .error = "the registry is a standby; retry"};
    if (m->type == PROTO_ADMIN_REP) {
        r = (gw_admin_reply_t){
            .status = (int)m->status, .error = m->error, .state = m->state, .epoch = m->ring_epoch};
    } else if (m->type != PROTO_REG_ACK) {
        LOG_W("unexpected registry reply type=%s to an admin request", proto_type_name(m->type));
        r.error = "the registry gave an invalid answer";
    }
    s_admin_finish(a, &r);
}

void gw_registry_tick(gw_registry_t *self, int64_t now_ms)
{
    s_admin_expire(self, now_ms);
    if (self->asked_ms && now_ms - self->asked_ms >= S_SILENCE_MS) {
        size_t from = self->cur;
        self->cur = (self->cur + 1) % self->count;
        bool was_standby = self->standby;
        self->standby = false;
        if (was_standby) {
            /* Moving on from a standby (its answer set asked_ms back): logged already. */
        } else if (!self->silent || self->count > 1) {
            LOG_W("registry silent for %d ms endpoint=%s next=%s", S_SILENCE_MS,
                  self->endpoints[from], self->endpoints[self->cur]);
        }
        self->silent = true;
        if (s_connect(self) == 0) {
            s_ask(self);
        }
        return;
    }
    if (!self->asked_ms && now_ms >= self->next_ms) {
        s_ask(self);
    }
}

/* Builds the SUB endpoint from a PUB endpoint: a wildcard host ("*",
   "0.0.0.0", "[::]") is replaced by the host of the registry we talk to. */
static void s_pub_endpoint(const gw_registry_t *self, const char *pub, char *out, size_t cap)
{
    const char *host = strstr(pub, "://");
    const char *port = strrchr(pub, ':');
    bool wild = host && port && port > host + 2 &&
                (!strncmp(host + 3, "*:", 2) || !strncmp(host + 3, "0.0.0.0:", 8) ||
                 !strncmp(host + 3, "[::]:", 5));
    const char *reg = self->endpoints[self->cur];
    const char *rhost = strstr(reg, "://");
    const char *rport = strrchr(reg, ':');
    if (!wild || !rhost || !rport || rport <= rhost + 2) {
        snprintf(out, cap, "%s", pub);
        return;
    }
    snprintf(out, cap, "%.*s%s", (int)(rport - reg), reg, port);
}

static void s_follow_pub(gw_registry_t *self, const char *pub)
{
    char ep[256];
    if (!pub || !*pub) {
        return;
    }
    s_pub_endpoint(self, pub, ep, sizeof ep);
    if (strcmp(ep, self->sub_endpoint) == 0) {
        return;
    }
    if (self->sub_endpoint[0]) {
        zsock_disconnect(self->sub, "%s", self->sub_endpoint);
    }
    self->sub_endpoint[0] = 0;
    if (zsock_connect(self->sub, "%s", ep) < 0) {
        LOG_W("cannot connect to registry pub endpoint=%s", ep);
        return;
    }
    snprintf(self->sub_endpoint, sizeof self->sub_endpoint, "%s", ep);
    LOG_I("following registry pub endpoint=%s", ep);
}

/* A standby answered our RING_GET: ask the next endpoint shortly (not at once, so that
   a list of nothing but standbys during a takeover is not spun through). */
static void s_on_standby(gw_registry_t *self)
{
    if (!self->standby_logged) {
        LOG_N("registry endpoint=%s is a standby; trying the next one", self->endpoints[self->cur]);
    }
    self->standby = self->standby_logged = true;
    self->asked_ms = util_mono_ms() - S_SILENCE_MS + S_STANDBY_MS;
}

static void s_on_reply(gw_registry_t *self, proto_msg_t *m)
{
    if (m->req_id != 0) {
        s_on_admin_reply(self, m);
        return;
    }
    if (m->type == PROTO_REG_ACK && m->state && strcmp(m->state, S_STANDBY) == 0) {
        s_on_standby(self);
        return;
    }
    if (m->type != PROTO_RING) {
        LOG_D("ignored registry reply type=%s", proto_type_name(m->type));
        return;
    }
    if (self->silent) {
        LOG_N("registry answers endpoint=%s epoch=%llu", self->endpoints[self->cur],
              (unsigned long long)m->ring_epoch);
    }
    self->silent = false;
    self->standby = self->standby_logged = false;
    self->asked_ms = 0;
    self->next_ms = util_mono_ms() + self->srv->cfg->registry_refresh_ms;
    s_follow_pub(self, m->pub);
    gw_auth_cache_revoked_seq(self->srv->auth, m->revoked_seq);
    gw_upstream_set_ring(self->srv->upstream, m, true);
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    gw_registry_t *self = arg;
    for (int i = 0; i < S_MAX_BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        proto_msg_t m;
        if (wire_recv(sock, NULL, &m, "registry") < 0) {
            continue;
        }
        s_on_reply(self, &m);
        proto_msg_reset(&m);
    }
    return 0;
}

static int s_on_sub(zloop_t *loop, zsock_t *sock, void *arg)
{
    gw_registry_t *self = arg;
    for (int i = 0; i < S_MAX_BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        uint8_t topic[16];
        size_t tlen = 0;
        proto_msg_t m;
        if (wire_recv_sub(sock, topic, sizeof topic, &tlen, &m, "registry_pub") < 0) {
            continue;
        }
        if (m.type == PROTO_RING && tlen == 4 && memcmp(topic, "ring", 4) == 0) {
            gw_auth_cache_revoked_seq(self->srv->auth, m.revoked_seq);
            gw_upstream_set_ring(self->srv->upstream, &m, false);
        } else if (m.type == PROTO_REVOKED && tlen == 7 && memcmp(topic, "revoked", 7) == 0) {
            LOG_I("token revoked seq=%llu", (unsigned long long)m.seq);
            gw_auth_cache_revoked(self->srv->auth, m.token_sha256, m.seq);
        } else {
            LOG_D("ignored registry pub type=%s", proto_type_name(m.type));
        }
        proto_msg_reset(&m);
    }
    return 0;
}
