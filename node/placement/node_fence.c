/*  node_fence — single activation, fenced in Postgres (ARCHITECTURE invariant 1,
    docs/placement.md). The ring says which node should run a conversation; the
    row (conversation_id, node_id, epoch) of conversation_owners says which node
    may write it:
    - activation claims the row before the load, with the node's ring epoch, many
      activations in one statement (node_fence_claim.c): granted when
      the row is ours, or when its holder's epoch is older and the holder is neither
      alive nor draining in our ring; refused otherwise — then either the holder is
      newer than our ring (MOVED, we ask for the ring) or it still runs (hand-off: we
      retry every 100 ms while requests wait in the mailbox, 503 after 5 s);
    - every group-commit write set is preceded by a guard that fails (22012)
      unless the row still names us at our claim's epoch, and holds it FOR SHARE
      until that transaction ends; a failed guard drops the actor and answers
      MOVED so that the gateway retries on the real owner;
    - a freed actor's claim is deleted (batched per loop turn, always sent
      before any later claim), and a node started under an id deletes the
      claims an earlier run of that id left behind.
    The fence object belongs to the node (node->fence; node_server.c). Loop thread only. */
#define LOG_MODULE "node_fence"
#include "common/log.h"
#include "common/util.h"
#include "node/placement/node_placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RELEASE_CHUNK    1000    /* conversations per release statement */
#define S_RELEASE_RETRY_MS 1000    /* failed releases are sent again after this */
#define S_RELEASE_MAX      1000000 /* pending releases kept (beyond: dropped, logged) */

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

struct node_fence_t {
    node_t *node;                  /* borrowed */
    const node_actor_life_t *life; /* drops and reloads actors (borrowed) */
    bool clean;                    /* no claim of an earlier run of our id is left */
    bool cleaning;                 /* the cleanup is in flight */
    node_claims_t *claims;         /* activation claims (node_fence_claim.c, owned) */
    uint8_t (*rel)[16];            /* conversations whose claim must be deleted */
    size_t nrel;                   /* entries used */
    size_t caprel;                 /* entries allocated */
    int rel_timer;                 /* timer sending the releases, -1 none */
    bool rel_failing;              /* the last release failed (logged once per streak) */
    uint64_t lost;                 /* write sets refused by the guard (logged) */
    node_handoff_t handoff;        /* hand-off progress (node_handoff.c) */
};

typedef struct {
    node_fence_t *fence; /* owner */
    uint8_t (*ids)[16];  /* conversations of this release statement (owned) */
    size_t n;            /* count */
} s_release_t;

node_fence_t *node_fence_new(node_t *node, const node_actor_life_t *life)
{
    node_fence_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->node = node;
    self->life = life;
    if (!(self->claims = node_claims_new(node))) {
        free(self);
        return NULL;
    }
    /* A standalone node (tests, dev) shares its id with nobody's past: nothing to clean. */
    self->clean = node->cfg->standalone;
    self->rel_timer = self->handoff.timer = -1;
    return self;
}

void node_fence_drop(node_t *node, node_actor_t *actor, const char *why)
{
    node->fence->life->drop(node, actor, why);
}

void node_fence_reload(node_t *node, node_actor_t *actor)
{
    node->fence->life->reload(node, actor);
}

node_claims_t *node_fence_claims(node_t *node)
{
    node_fence_t *self = node->fence;
    return self ? self->claims : NULL;
}

node_handoff_t *node_fence_handoff(node_t *node)
{
    node_fence_t *self = node->fence;
    return self ? &self->handoff : NULL;
}

void node_fence_destroy(node_fence_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_fence_t *self = *self_p;
    node_claims_destroy(&self->claims); /* first: failing its held loads frees actors */
    if (self->rel_timer >= 0) {
        zloop_timer_end(self->node->loop, self->rel_timer);
    }
    if (self->handoff.timer >= 0) {
        zloop_timer_end(self->node->loop, self->handoff.timer);
    }
    free(self->rel);
    free(self);
    *self_p = NULL;
}

/* ---- cleanup of an earlier run ------------------------------------------------------------ */

static void s_on_cleaned_rows(void *arg, db_status_t status, const db_result_t *res)
{
    if (status == DB_OK && db_result_affected(res) > 0) {
        LOG_N("deleted claims left by an earlier run of this node: %ld", db_result_affected(res));
    }
}

static void s_on_cleaned(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    node_fence_t *self = arg;
    self->cleaning = false;
    self->clean = status == DB_OK;
    if (status != DB_OK && !self->node->closing) {
        LOG_W("cannot delete old claims (retried with the next activation): %s", error);
    }
}

/* Sends the cleanup once before the first claim; claims sent after it in the same
   pipeline run after it. Should a later retry delete a claim of ours, that actor's
   guard fails and the conversation is reactivated: never unsafe. */
static void s_cleanup(node_fence_t *self)
{
    node_t *node = self->node;
    if (self->clean || self->cleaning || node->closing) {
        return;
    }
    const char *params[] = {node->cfg->id};
    db_batch_t *b = db_batch_new(node->db, false);
    if (!b || db_batch_add(b, NODE_Q_OWN_CLEANUP, NULL, 1, params, s_on_cleaned_rows, NULL) < 0) {
        db_batch_destroy(&b);
        return;
    }
    self->cleaning = true;
    db_batch_submit(&b, s_on_cleaned, self);
}

/* ---- releases ------------------------------------------------------------------------------ */

static int s_on_rel_timer(zloop_t *loop, int timer_id, void *arg);

static void s_rel_arm(node_fence_t *self, size_t delay_ms)
{
    if (self->rel_timer < 0 && !self->node->closing) {
        self->rel_timer = zloop_timer(self->node->loop, delay_ms, 1, s_on_rel_timer, self);
    }
}

static void s_rel_push(node_fence_t *self, const uint8_t conv[16])
{
    if (self->nrel == self->caprel) {
        size_t cap = self->caprel ? self->caprel * 2 : 64;
        uint8_t(*grown)[16] = cap <= S_RELEASE_MAX ? realloc(self->rel, cap * 16) : NULL;
        if (!grown) {
            s_uuid_t c;
            util_uuid_format(conv, c);
            LOG_E("release queue full: the claim of conversation=%s stays until this node "
                  "restarts or dies",
                  c);
            return;
        }
        self->rel = grown;
        self->caprel = cap;
    }
    memcpy(self->rel[self->nrel++], conv, 16);
}

static void s_on_released(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_release_t *r = arg;
    node_fence_t *self = r->fence;
    node_t *node = self->node;
    if (status == DB_OK && self->rel_failing) {
        LOG_N("claims released again");
        self->rel_failing = false;
    }
    if (status != DB_OK && !node->closing) {
        if (!self->rel_failing) {
            LOG_W("releasing %zu claims failed (retrying every %d ms): %s", r->n,
                  S_RELEASE_RETRY_MS, error);
        }
        self->rel_failing = true;
        for (size_t i = 0; i < r->n; i++) {
            /* Claimed again meanwhile (ordered after this release): not ours to delete. */
            node_actor_t *a = node_actors_find(node->actors, r->ids[i]);
            if (!a || !node_fence_held(a->fence_epoch)) {
                s_rel_push(self, r->ids[i]);
            }
        }
        s_rel_arm(self, S_RELEASE_RETRY_MS);
    }
    free(r->ids);
    free(r);
}

char *node_uuid_array(const uint8_t (*ids)[16], size_t n)
{
    char *list = malloc(n * (UTIL_UUID_STR_LEN + 1) + 3);
    if (!list) {
        return NULL;
    }
    size_t len = 0;
    list[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        util_uuid_format(ids[i], list + len);
        len += UTIL_UUID_STR_LEN;
        list[len++] = ',';
    }
    list[n ? len - 1 : len++] = '}';
    list[len] = 0;
    return list;
}

/* One release statement for ids[0..n) (copied). */
static void s_release_send(node_fence_t *self, const uint8_t (*ids)[16], size_t n)
{
    node_t *node = self->node;
    s_release_t *r = calloc(1, sizeof *r);
    char *list = node_uuid_array(ids, n);
    db_batch_t *b = NULL;
    if (r && list && (r->ids = malloc(n * 16))) {
        b = db_batch_new(node->db, false);
    }
    const char *params[] = {node->cfg->id, list};
    if (!b || db_batch_add(b, NODE_Q_OWN_RELEASE, NULL, 2, params, NULL, NULL) < 0) {
        LOG_E("out of memory releasing %zu claims", n);
        db_batch_destroy(&b);
        free(list);
        free(r ? r->ids : NULL);
        free(r);
        return;
    }
    free(list);
    memcpy(r->ids, ids, n * 16);
    r->n = n;
    r->fence = self;
    db_batch_submit(&b, s_on_released, r);
}

void node_fence_prepare(node_t *node)
{
    node_fence_t *self = node->fence;
    if (self) {
        s_cleanup(self);
        node_fence_flush(node);
    }
}

void node_fence_flush(node_t *node)
{
    node_fence_t *self = node->fence;
    if (!self || !self->nrel || node->closing) {
        return;
    }
    if (self->rel_timer >= 0) {
        zloop_timer_end(node->loop, self->rel_timer);
        self->rel_timer = -1;
    }
    for (size_t i = 0; i < self->nrel; i += S_RELEASE_CHUNK) {
        size_t n = self->nrel - i < S_RELEASE_CHUNK ? self->nrel - i : S_RELEASE_CHUNK;
        s_release_send(self, (const uint8_t(*)[16])self->rel + i, n);
    }
    self->nrel = 0;
}

static int s_on_rel_timer(zloop_t *loop, int timer_id, void *arg)
{
    node_fence_t *self = arg;
    if (self->rel_timer == timer_id) {
        self->rel_timer = -1;
        node_fence_flush(self->node);
    }
    return 0;
}

void node_fence_release(node_t *node, node_actor_t *a)
{
    node_fence_t *self = node->fence;
    bool held = node_fence_held(a->fence_epoch);
    a->fence_epoch = 0;
    if (!self) {
        return;
    }
    node_claims_forget(self->claims, a);
    if (held && !node->closing) {
        s_rel_push(self, a->conv_id);
        s_rel_arm(self, 0);
    }
}

/* ---- group commit -------------------------------------------------------------------------- */

/* The claim epoch a guard checks for a: -1 (matching no row) without a claim. */
static void s_guard_epoch(const node_actor_t *a, char epoch[24])
{
    if (node_fence_held(a->fence_epoch)) {
        snprintf(epoch, 24, "%llu", (unsigned long long)(a->fence_epoch - 1));
    } else {
        snprintf(epoch, 24, "-1");
    }
}

int node_fence_add_guard(
    node_t *node, db_batch_t *batch, const node_ws_t *ws, db_stmt_fn *cb, void *arg)
{
    if (ws->plan.created) {
        return 0;
    }
    const node_actor_t *a = ws->actor;
    s_uuid_t conv;
    char epoch[24];
    util_uuid_format(a->conv_id, conv);
    /* Without a claim the guard matches no row: the write set fails (never unfenced). */
    s_guard_epoch(a, epoch);
    const char *params[] = {conv, node->cfg->id, epoch};
    return db_batch_add(batch, NODE_Q_OWN_CHECK, NULL, 3, params, cb, arg) == 0 ? 1 : -1;
}

int node_fence_add_guards(node_t *node, db_batch_t *batch, node_ws_t *head, db_stmt_fn *cb)
{
    size_t n = 0;
    node_ws_t *only = NULL;
    for (node_ws_t *ws = head; ws; ws = ws->next) {
        if (!ws->plan.created) {
            n++;
            only = ws;
        }
    }
    if (n <= 1) {
        return only && node_fence_add_guard(node, batch, only, cb, only) < 0 ? -1 : 0;
    }
    node_buf_t convs, epochs;
    node_buf_init(&convs);
    node_buf_init(&epochs);
    node_buf_str(&convs, "{");
    node_buf_str(&epochs, "{");
    for (node_ws_t *ws = head; ws; ws = ws->next) {
        if (ws->plan.created) {
            continue;
        }
        s_uuid_t conv;
        char epoch[24];
        util_uuid_format(ws->actor->conv_id, conv);
        s_guard_epoch(ws->actor, epoch);
        node_buf_str(&convs, convs.len > 1 ? "," : "");
        node_buf_str(&convs, conv);
        node_buf_str(&epochs, epochs.len > 1 ? "," : "");
        node_buf_str(&epochs, epoch);
    }
    node_buf_str(&convs, "}");
    node_buf_str(&epochs, "}");
    int rc = -1;
    if (!convs.oom && !epochs.oom) {
        const char *params[] = {convs.data, node->cfg->id, epochs.data};
        rc = db_batch_add(batch, NODE_Q_OWN_CHECK_MULTI, NULL, 3, params, NULL, NULL);
    }
    node_buf_free(&convs);
    node_buf_free(&epochs);
    return rc;
}

int node_fence_add_own(node_t *node, node_ws_t *ws)
{
    node_fence_prepare(node);
    s_uuid_t conv;
    char epoch[24];
    util_uuid_format(ws->actor->conv_id, conv);
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)node->epoch);
    const char *params[] = {conv, node->cfg->id, epoch};
    /* A unique violation here means the row exists already: handled like a stale seq. */
    return node_ws_add(ws, NODE_Q_OWN_CREATE, NODE_SK_SEQ, 3, params) < 0 ? -1 : 0;
}

void node_fence_committed(node_t *node, const node_ws_t *ws)
{
    if (!ws->plan.created) {
        return;
    }
    int i = node_ws_find(ws, NODE_Q_OWN_CREATE);
    const char *epoch = node_ws_param(ws, i, 2);
    if (epoch) {
        ws->actor->fence_epoch = (uint64_t)node_parse_ll(epoch, 0, 0, INT64_MAX) + 1;
    }
}

void node_fence_lost(node_t *node, node_ws_t *ws)
{
    node_fence_t *self = node->fence;
    node_actor_t *a = ws->actor;
    s_uuid_t c;
    util_uuid_format(a->conv_id, c);
    uint64_t n = self ? ++self->lost : 0;
    LOG_N("fence: conversation=%s is held by another node (our claim epoch=%lld, ring "
          "epoch=%llu); dropping the actor, answering MOVED (refused writes=%llu)",
          c, node_fence_held(a->fence_epoch) ? (long long)(a->fence_epoch - 1) : -1LL,
          (unsigned long long)node->epoch, (unsigned long long)n);
    if (ws->req) {
        node_reply_moved(node, &ws->req);
    }
    for (node_req_t *r; (r = node_mbox_pop(a));) {
        node_reply_moved(node, &r);
    }
    a->fence_epoch = 0;
    node_reg_refresh(node);
}

const node_guard_t node_fence_guard = {
    .flush = node_fence_flush,
    .add_guards = node_fence_add_guards,
    .add_own = node_fence_add_own,
    .committed = node_fence_committed,
    .lost = node_fence_lost,
};
