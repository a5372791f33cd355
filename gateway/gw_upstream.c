/*  gw_upstream — calls to the nodes: the table of calls in flight (req_id →
    callback) with deadlines (504), placement on the ring owner or round
    robin, bounded MOVED retries, and the replies read from the node DEALERs
    (the nodes and the ring themselves live in gw_ring.c). A reply is matched
    to its call by req_id and by the node it was sent to; anything else is
    dropped. Loop thread only. */
#define LOG_MODULE "gw_upstream"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_BATCH 256 /* replies handled per reader wake-up */
#define S_BEHIND_MS 100 /* a node behind our ring gets this long to catch up (MOVED) */

typedef struct {
    uint64_t id;          /* req_id */
    gw_reply_fn *fn;      /* callback */
    void *owner;          /* its argument */
    char *op;             /* op name (owned) */
    char *args;           /* args JSON text (owned) */
    bool has_conv;        /* conversation-bound */
    uint8_t conv[16];     /* conversation */
    bool has_team;        /* team known */
    uint8_t team[16];     /* team */
    int64_t deadline_ms;  /* mono deadline → 504 */
    int moved;            /* MOVED replies so far */
    int64_t park_until;   /* > 0 while parked after MOVED */
    uint64_t moved_epoch; /* epoch the node reported in MOVED */
    char node[64];        /* node the call was last sent to */
    uint64_t lim[3];      /* the team's turns, actors, worktrees limits (0 = default) */
    bool shed;            /* refused past --max-inflight (API requests) */
    bool counted;         /* counted in the inflight of node */
} s_call_t;

static void s_call_free(void **item)
{
    s_call_t *c = *item;
    if (c) {
        free(c->op);
        free(c->args);
        free(c);
        *item = NULL;
    }
}

gw_upstream_t *gw_upstream_new(gw_server_t *srv)
{
    gw_upstream_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->srv = srv;
    self->ring = ring_new(0);
    self->nodes = zhashx_new();
    self->calls = zhashx_new();
    if (!self->ring || !self->nodes || !self->calls) {
        gw_upstream_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->nodes, gw_node_free);
    return self;
}

void gw_upstream_destroy(gw_upstream_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_upstream_t *self = *self_p;
    if (self->calls) {
        for (void *c = zhashx_first(self->calls); c; c = zhashx_next(self->calls)) {
            s_call_free(&c);
        }
    }
    zhashx_destroy(&self->calls);
    zhashx_destroy(&self->nodes);
    ring_destroy(&self->ring);
    free(self->ring_nodes);
    free(self);
    *self_p = NULL;
}

uint64_t gw_upstream_epoch(const gw_upstream_t *self)
{
    return self->epoch;
}

size_t gw_upstream_live(const gw_upstream_t *self)
{
    return self->nring;
}

size_t gw_upstream_pending(const gw_upstream_t *self)
{
    return zhashx_size(self->calls);
}

bool gw_upstream_busy(const gw_upstream_t *self)
{
    return self->busy;
}

/* The call is no longer out on its node (answered, parked, failed, resent). */
static void s_uncount(gw_upstream_t *self, s_call_t *c)
{
    if (c->counted) {
        gw_node_t *n = zhashx_lookup(self->nodes, c->node);
        if (n && n->inflight > 0) {
            n->inflight--;
        }
        c->counted = false;
    }
}

/* ---- finishing calls ---------------------------------------------------- */

static void s_key(uint64_t id, char key[17])
{
    snprintf(key, 17, "%016" PRIx64, id);
}

/* Removes the call from the table, runs its callback, then frees it. */
static void s_finish(gw_upstream_t *self, s_call_t *c, const gw_reply_t *reply)
{
    char key[17];
    s_key(c->id, key);
    zhashx_delete(self->calls, key);
    s_uncount(self, c);
    c->fn(c->owner, reply);
    void *item = c;
    s_call_free(&item);
}

static void s_fail(gw_upstream_t *self, s_call_t *c, int status, const char *code, const char *why)
{
    gw_error_t err;
    gw_error_set(&err, status, code, NULL, "%s", why);
    char *body = gw_error_body(&err);
    gw_reply_t r = {.status = status, .body = body, .retry_after = status == 503 ? 1 : 0};
    gw_metrics_upstream(self->srv->metrics, status == 504 ? "timeout" : "unavailable");
    s_finish(self, c, &r);
    free(body);
}

/* Collects the ids of the calls matching pred (the table may change under
   the callbacks, so they run after the walk, each call looked up again). */
typedef struct {
    uint64_t *ids; /* matching req_ids */
    size_t count;  /* entries */
} s_ids_t;

static s_ids_t s_select(gw_upstream_t *self, bool (*pred)(s_call_t *, void *), void *arg)
{
    s_ids_t out = {calloc(zhashx_size(self->calls) + 1, sizeof(uint64_t)), 0};
    for (s_call_t *c = zhashx_first(self->calls); c && out.ids; c = zhashx_next(self->calls)) {
        if (pred(c, arg)) {
            out.ids[out.count++] = c->id;
        }
    }
    return out;
}

static s_call_t *s_lookup(gw_upstream_t *self, uint64_t id)
{
    char key[17];
    s_key(id, key);
    return zhashx_lookup(self->calls, key);
}

/* Runs action on every still-pending call of ids, then frees ids. */
static void s_each(gw_upstream_t *self, s_ids_t *ids, void (*action)(gw_upstream_t *, s_call_t *))
{
    for (size_t i = 0; i < ids->count; i++) {
        s_call_t *c = s_lookup(self, ids->ids[i]);
        if (c) {
            action(self, c);
        }
    }
    free(ids->ids);
    ids->ids = NULL;
}

/* ---- sending ------------------------------------------------------------ */

static gw_node_t *s_pick(gw_upstream_t *self, const s_call_t *c)
{
    if (self->nring == 0) {
        return NULL;
    }
    if (c->has_conv) {
        int idx = ring_lookup(self->ring, c->conv);
        return idx < 0 || (size_t)idx >= self->nring ? NULL : self->ring_nodes[idx];
    }
    return self->ring_nodes[self->rr++ % self->nring];
}

/* Sends c to its node: 0, -1 when no node can take it, -2 when c is shed and
   its node has --max-inflight calls out. The bound is what keeps a node's
   queue (and so the wait of every request in it) short under overload: past
   it the client hears 503 + Retry-After at once instead of waiting in line. */
static int s_send(gw_upstream_t *self, s_call_t *c)
{
    s_uncount(self, c);
    gw_node_t *n = s_pick(self, c);
    if (!n) {
        return -1;
    }
    long max = self->srv->cfg->max_inflight;
    if (c->shed && max > 0 && n->inflight >= (uint64_t)max) {
        return -2;
    }
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_API_REQ, .req_id = c->id};
    m.has_conv = c->has_conv;
    memcpy(m.conv_id, c->conv, 16);
    m.has_team = c->has_team;
    memcpy(m.team_id, c->team, 16);
    m.ring_epoch = self->epoch;
    m.op = c->op;
    m.body = c->args;
    m.team_turns = c->lim[0];
    m.team_actors = c->lim[1];
    m.team_worktrees = c->lim[2];
    if (wire_send(n->dealer, NULL, &m) < 0) {
        LOG_W("cannot send req=%016" PRIx64 " op=%s node=%s", c->id, c->op, n->id);
        return -1;
    }
    snprintf(c->node, sizeof c->node, "%s", n->id);
    n->inflight++;
    c->counted = true;
    c->park_until = 0;
    LOG_D("sent req=%016" PRIx64 " op=%s node=%s", c->id, c->op, n->id);
    return 0;
}

uint64_t gw_upstream_call(gw_upstream_t *self, const gw_call_t *call, gw_reply_fn *fn, void *owner)
{
    s_call_t *c = calloc(1, sizeof *c);
    if (!c) {
        return 0;
    }
    c->id = ++self->next_id;
    c->fn = fn;
    c->owner = owner;
    c->op = strdup(call->op);
    c->args = strdup(call->args ? call->args : "{}");
    c->has_conv = call->conv_id != NULL;
    if (call->conv_id) {
        memcpy(c->conv, call->conv_id, 16);
    }
    c->has_team = call->team_id != NULL;
    if (call->team_id) {
        memcpy(c->team, call->team_id, 16);
    }
    if (call->limits) {
        c->lim[0] = call->limits->turns;
        c->lim[1] = call->limits->actors;
        c->lim[2] = call->limits->worktrees;
    }
    c->deadline_ms =
        call->deadline_ms ? call->deadline_ms : util_mono_ms() + self->srv->cfg->request_timeout_ms;
    c->shed = call->shed;
    void *item = c;
    int rc = c->op && c->args ? s_send(self, c) : -1;
    self->busy = rc == -2;
    if (rc < 0) {
        if (self->busy) {
            gw_metrics_upstream(self->srv->metrics, "overloaded");
        }
        s_call_free(&item);
        return 0;
    }
    char key[17];
    s_key(c->id, key);
    zhashx_insert(self->calls, key, c);
    return c->id;
}

void gw_upstream_cancel(gw_upstream_t *self, uint64_t id)
{
    if (id) {
        char key[17];
        s_key(id, key);
        s_call_t *c = zhashx_lookup(self->calls, key);
        if (c) {
            s_uncount(self, c);
        }
        zhashx_delete(self->calls, key);
        void *item = c;
        s_call_free(&item);
    }
}

static bool s_any(s_call_t *c, void *arg)
{
    return true;
}

static void s_fail_shutdown(gw_upstream_t *self, s_call_t *c)
{
    s_fail(self, c, 503, "unavailable", "the gateway is shutting down");
}

void gw_upstream_fail_all(gw_upstream_t *self)
{
    s_ids_t ids = s_select(self, s_any, NULL);
    s_each(self, &ids, s_fail_shutdown);
}

static bool s_expired(s_call_t *c, void *arg)
{
    return c->deadline_ms <= *(int64_t *)arg;
}

static bool s_park_over(s_call_t *c, void *arg)
{
    return c->park_until > 0 && c->park_until <= *(int64_t *)arg;
}

static void s_resend(gw_upstream_t *self, s_call_t *c)
{
    int rc = s_send(self, c);
    if (rc == -2) {
        s_fail(self, c, 503, "unavailable",
               "the node has too many requests in flight; retry later");
    } else if (rc < 0) {
        s_fail(self, c, 503, "unavailable", "no live node owns this conversation right now");
    }
}

static void s_timeout(gw_upstream_t *self, s_call_t *c)
{
    LOG_W("upstream timeout req=%016" PRIx64 " op=%s node=%s ms=%ld", c->id, c->op, c->node,
          self->srv->cfg->request_timeout_ms);
    s_fail(self, c, 504, "timeout", "the node did not answer in time");
}

void gw_upstream_tick(gw_upstream_t *self, int64_t now_ms)
{
    s_ids_t ids = s_select(self, s_expired, &now_ms);
    s_each(self, &ids, s_timeout);
    ids = s_select(self, s_park_over, &now_ms);
    s_each(self, &ids, s_resend);
}

/* ---- replies ------------------------------------------------------------ */

static void s_on_moved(gw_upstream_t *self, s_call_t *c, const proto_msg_t *m)
{
    s_uncount(self, c); /* the node is done with it */
    gw_metrics_upstream(self->srv->metrics, "moved");
    if (++c->moved > GW_MOVED_MAX) {
        LOG_W("giving up after MOVED req=%016" PRIx64 " op=%s tries=%d", c->id, c->op, c->moved);
        s_fail(self, c, 503, "unavailable", "the conversation is moving between nodes");
        return;
    }
    LOG_I("moved req=%016" PRIx64 " node=%s node_epoch=%" PRIu64 " epoch=%" PRIu64, c->id, c->node,
          m->ring_epoch, self->epoch);
    c->moved_epoch = m->ring_epoch;
    if (m->ring_epoch > self->epoch) {
        /* The node knows a newer ring: wait for it (resent as soon as it arrives). */
        c->park_until = util_mono_ms() + GW_MOVED_PARK_MS;
        gw_registry_refresh(self->srv->registry);
        return;
    }
    gw_node_t *owner = s_pick(self, c);
    if (owner && strcmp(owner->id, c->node) != 0) {
        /* Our ring is newer and names another owner (hand-off, fence): go there now. */
        s_resend(self, c);
        return;
    }
    /* The node is behind our ring (our epoch in the request makes it ask): retry soon. */
    c->park_until = util_mono_ms() + S_BEHIND_MS;
}

static void s_on_reply(gw_upstream_t *self, gw_node_t *n, const proto_msg_t *m)
{
    char key[17];
    s_key(m->req_id, key);
    s_call_t *c = zhashx_lookup(self->calls, key);
    if (!c || c->park_until || strcmp(c->node, n->id) != 0) {
        LOG_D("dropped reply for unknown req=%016" PRIx64 " node=%s", m->req_id, n->id);
        gw_metrics_upstream(self->srv->metrics, "dropped");
        return;
    }
    if (m->type == PROTO_MOVED) {
        s_on_moved(self, c, m);
        return;
    }
    gw_reply_t r = {.status = (int)m->status, .body = m->body, .retry_after = 0};
    r.retry_after = m->retry_after > 3600 ? 3600 : (unsigned)m->retry_after;
    if (r.status < 200 || r.status > 599) {
        LOG_W("node answered a bad status=%d req=%016" PRIx64 " node=%s", r.status, c->id, n->id);
        s_fail(self, c, 502, "bad_gateway", "the node gave an invalid answer");
        return;
    }
    gw_metrics_upstream(self->srv->metrics, "ok");
    s_finish(self, c, &r);
}

int gw_upstream_on_node(zloop_t *loop, zsock_t *sock, void *arg)
{
    gw_node_t *n = arg;
    for (int i = 0; i < S_MAX_BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        proto_msg_t m;
        if (wire_recv(sock, NULL, &m, "node") < 0) {
            continue;
        }
        if (m.type == PROTO_API_REP || m.type == PROTO_MOVED) {
            s_on_reply(n->up, n, &m);
        } else {
            LOG_W("dropped unexpected message type=%s node=%s", proto_type_name(m.type), n->id);
        }
        proto_msg_reset(&m);
    }
    gw_server_kick(n->up->srv);
    return 0;
}

/* ---- calls of a node, parked calls ---------------------------------------- */

static bool s_on_node_id(s_call_t *c, void *arg)
{
    return c->park_until == 0 && strcmp(c->node, (const char *)arg) == 0;
}

static void s_fail_left(gw_upstream_t *self, s_call_t *c)
{
    s_fail(self, c, 503, "unavailable", "the node left the cluster");
}

void gw_upstream_fail_node(gw_upstream_t *self, const char *node_id)
{
    s_ids_t ids = s_select(self, s_on_node_id, (void *)node_id);
    s_each(self, &ids, s_fail_left);
}

static void s_fail_conn(gw_upstream_t *self, s_call_t *c)
{
    s_fail(self, c, 503, "unavailable",
           "the connection to the node was lost; the request may have been applied (retry "
           "with the same Idempotency-Key)");
}

void gw_upstream_fail_conn(gw_upstream_t *self, const char *node_id)
{
    s_ids_t ids = s_select(self, s_on_node_id, (void *)node_id);
    s_each(self, &ids, s_fail_conn);
}

static bool s_parked_ready(s_call_t *c, void *arg)
{
    return c->park_until > 0 && c->moved_epoch <= *(uint64_t *)arg;
}

void gw_upstream_resend_parked(gw_upstream_t *self)
{
    s_ids_t ids = s_select(self, s_parked_ready, &self->epoch);
    s_each(self, &ids, s_resend);
}
