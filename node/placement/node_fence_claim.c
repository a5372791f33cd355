/*  node_fence_claim — the claims of activations (docs/placement.md), as a group commit:
    the activations that arrive while a claim statement is in flight (waiting for its
    commit, i.e. its WAL flush) are claimed together by ONE statement (NODE_Q_OWN_CLAIMS,
    up to NODE_CLAIM_CHUNK conversations) in one transaction, sent when it completes (or at
    the end of the loop turn when none is in flight), so a burst of activations waits for
    one WAL flush, not one each. Each actor's load batch is held until then and sent right
    after its claim, so the state loaded is the one the previous owner left. A row another
    transaction holds is skipped (SKIP LOCKED): only that conversation waits and retries
    every 100 ms while its requests wait in the mailbox (503 after 5 s); a batch failing as
    a whole (the 200 ms lock timeout on a row inserted by a transaction that stays open) is
    retried one claim per transaction. Loop thread only. */
#define LOG_MODULE "node_fence"
#include "common/log.h"
#include "common/util.h"
#include "node/placement/node_placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_REFUSED_SOLO  NODE_FENCE_VERDICTS       /* its batch failed: retry in one of its own */
#define S_REFUSED_WAIT  (NODE_FENCE_VERDICTS + 1) /* held by a running node or locked: retry */
#define S_REFUSED_MOVED (NODE_FENCE_VERDICTS + 2) /* the holder's epoch is newer than our ring */

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef struct {
    node_actor_t *actor; /* waiting for its claim (state LOADING, hence pinned) */
    int64_t since_ms;    /* first refusal */
    bool inflight;       /* a retry (claim + load) is running */
    bool solo;           /* claimed alone: a batch with it failed as a whole */
} s_wait_t;

typedef struct {
    node_actor_t *actor; /* claimant (pinned: state LOADING) */
    db_batch_t *load;    /* its load batch, sent right after the claim (owned) */
    db_batch_fn *done;   /* the load's callback */
    void *arg;
    bool solo; /* gets a transaction of its own */
} s_pend_t;

typedef struct {
    node_claims_t *claims;   /* owner */
    uint64_t epoch;          /* epoch claimed */
    size_t n;                /* claimants */
    node_actor_t *actors[1]; /* [n], in the order of the statement's arrays */
} s_batch_t;

struct node_claims_t {
    node_t *node;    /* borrowed */
    s_wait_t *waits; /* claims waiting for the previous owner's release */
    size_t nwaits;
    size_t capwaits;
    int wait_timer; /* NODE_CLAIM_RETRY_MS timer while waits exist, -1 none */
    s_pend_t *pend; /* activations of this loop turn, claimed at its end */
    size_t npend;
    size_t cappend;
    int flush_timer; /* zero-delay timer sending them, -1 none */
    size_t inflight; /* claim statements sent and not completed */
};

node_claims_t *node_claims_new(node_t *node)
{
    node_claims_t *self = calloc(1, sizeof *self);
    if (self) {
        self->node = node;
        self->wait_timer = self->flush_timer = -1;
    }
    return self;
}

void node_claims_destroy(node_claims_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_claims_t *self = *self_p;
    zloop_t *loop = self->node->loop;
    if (self->wait_timer >= 0) {
        zloop_timer_end(loop, self->wait_timer);
    }
    if (self->flush_timer >= 0) {
        zloop_timer_end(loop, self->flush_timer);
    }
    /* Loads still held (the node stopped within the turn): failed like any pending work. */
    s_pend_t *pend = self->pend;
    size_t n = self->npend;
    self->pend = NULL;
    self->npend = self->cappend = 0;
    for (size_t i = 0; i < n; i++) {
        db_batch_destroy(&pend[i].load);
        pend[i].done(pend[i].arg, DB_ERR_CONN, "node closing", "");
    }
    free(pend);
    free(self->waits);
    free(self);
    *self_p = NULL;
}

/* ---- waiting claims ------------------------------------------------------------------------ */

static s_wait_t *s_wait_find(node_claims_t *self, const node_actor_t *a)
{
    for (size_t i = 0; i < self->nwaits; i++) {
        if (self->waits[i].actor == a) {
            return &self->waits[i];
        }
    }
    return NULL;
}

void node_claims_forget(node_claims_t *self, const node_actor_t *a)
{
    s_wait_t *w = self ? s_wait_find(self, a) : NULL;
    if (w) {
        *w = self->waits[--self->nwaits];
    }
}

static int s_on_wait_timer(zloop_t *loop, int timer_id, void *arg);

/* Keeps the actor loading (its requests wait) and schedules a retry. -1 on OOM. */
static int s_wait_add(node_claims_t *self, node_actor_t *a, bool solo)
{
    s_wait_t *w = s_wait_find(self, a);
    if (!w) {
        if (self->nwaits == self->capwaits) {
            size_t cap = self->capwaits ? self->capwaits * 2 : 16;
            s_wait_t *grown = realloc(self->waits, cap * sizeof *grown);
            if (!grown) {
                return -1;
            }
            self->waits = grown;
            self->capwaits = cap;
        }
        w = &self->waits[self->nwaits++];
        *w = (s_wait_t){.actor = a, .since_ms = util_mono_ms()};
    }
    w->inflight = false;
    w->solo = w->solo || solo;
    a->state = NODE_ACTOR_LOADING;
    if (self->wait_timer < 0) {
        self->wait_timer =
            zloop_timer(self->node->loop, NODE_CLAIM_RETRY_MS, 0, s_on_wait_timer, self);
    }
    return 0;
}

/* One waiting actor at the retry tick: give up, or claim (and load) again. */
static void s_wait_step(node_claims_t *self, node_actor_t *a, int64_t now)
{
    node_t *node = self->node;
    s_wait_t *w = s_wait_find(self, a);
    if (!w || w->inflight) {
        return;
    }
    bool doomed = (a->flags & NODE_AF_DOOMED) != 0;
    if (doomed || node->stopping || now - w->since_ms >= NODE_CLAIM_WAIT_MS) {
        if (!doomed && !node->stopping) {
            s_uuid_t c;
            util_uuid_format(a->conv_id, c);
            LOG_W("claim of conversation=%s still held by another node after %d ms; 503", c,
                  NODE_CLAIM_WAIT_MS);
        }
        node_claims_forget(self, a);
        a->state = NODE_ACTOR_ABSENT;
        node_fence_drop(node, a, doomed ? "conversation moved" : "conversation is moving");
        return;
    }
    w->inflight = true;
    node_fence_reload(node, a);
}

static int s_on_wait_timer(zloop_t *loop, int timer_id, void *arg)
{
    node_claims_t *self = arg;
    size_t n = self->nwaits;
    node_actor_t **snap = n ? malloc(n * sizeof *snap) : NULL;
    for (size_t i = 0; snap && i < n; i++) {
        snap[i] = self->waits[i].actor;
    }
    int64_t now = util_mono_ms();
    /* Each actor is looked up again: a step may free others (never create any). */
    for (size_t i = 0; snap && i < n; i++) {
        s_wait_step(self, snap[i], now);
    }
    free(snap);
    if (self->nwaits == 0 && self->wait_timer == timer_id) {
        zloop_timer_end(loop, timer_id);
        self->wait_timer = -1;
    }
    return 0;
}

/* ---- one claim statement for many activations ------------------------------------------- */

/* The Postgres uuid[] literal of the conversation (or team) ids of actors[0..n). */
static char *s_uuid_list(node_actor_t *const *actors, size_t n, bool team)
{
    uint8_t(*ids)[16] = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(ids[i], team ? actors[i]->team_id : actors[i]->conv_id, 16);
    }
    char *list = node_uuid_array((const uint8_t(*)[16])ids, n);
    free(ids);
    return list;
}

/* Rows (ord, granted, holder's epoch before, row locked by another transaction). */
static void s_on_claim_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_batch_t *c = arg;
    int rows = status == DB_OK ? db_result_rows(res) : 0;
    for (int r = 0; r < rows; r++) {
        long long ord = node_parse_ll(db_result_value(res, r, 0), 0, 0, (long long)c->n);
        const char *granted = db_result_value(res, r, 1);
        const char *holder = db_result_value(res, r, 2);
        const char *busy = db_result_value(res, r, 3);
        if (ord < 1) {
            continue; /* not a row of ours: the actor waits and retries */
        }
        node_actor_t *a = c->actors[ord - 1];
        long long h = holder ? node_parse_ll(holder, -1, -1, INT64_MAX) : -1;
        if (granted && strcmp(granted, "t") == 0) {
            a->fence_epoch = c->epoch + 1;
        } else if (busy && strcmp(busy, "t") == 0) {
            a->fence_epoch = S_REFUSED_WAIT;
        } else {
            a->fence_epoch = h > (long long)c->epoch ? S_REFUSED_MOVED : S_REFUSED_WAIT;
        }
    }
}

static void s_flush(node_claims_t *self);

static void s_on_claimed(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_batch_t *c = arg;
    node_claims_t *self = c->claims;
    if (status != DB_OK) {
        /* Nothing was claimed (or, connection lost, we cannot know: the loads fail too and
           node_fence_loaded makes the release cover it). One row locked past the lock
           timeout fails them all: each is then retried in a transaction of its own. */
        bool solo = status == DB_ERR_QUERY && c->n > 1;
        if (solo) {
            LOG_I("claiming %zu conversations failed (sqlstate %s), retrying one by one: %s", c->n,
                  sqlstate, error);
        }
        for (size_t i = 0; i < c->n; i++) {
            c->actors[i]->fence_epoch = solo ? S_REFUSED_SOLO : S_REFUSED_WAIT;
        }
    }
    free(c);
    /* The activations that came meanwhile go now, together: one commit for all. */
    if (--self->inflight == 0) {
        s_flush(self);
    }
}

/* The claim of g[0..n) (one statement, one transaction), then their loads. */
static void s_send(node_claims_t *self, s_pend_t *const *g, size_t n)
{
    node_t *node = self->node;
    s_batch_t *c = malloc(sizeof *c + n * sizeof c->actors[0]);
    for (size_t i = 0; i < n; i++) {
        g[i]->actor->fence_epoch = 0; /* no verdict yet: waits and retries if none comes */
        if (c) {
            c->actors[i] = g[i]->actor;
        }
    }
    char *convs = c ? s_uuid_list(c->actors, n, false) : NULL;
    char *teams = c ? s_uuid_list(c->actors, n, true) : NULL;
    db_batch_t *b = convs && teams ? db_batch_new(node->db, false) : NULL;
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)node->epoch);
    const char *params[] = {convs, teams, node->cfg->id, epoch, node_reg_live(node)};
    if (!b || db_batch_add(b, NODE_Q_OWN_TIMEOUT, NULL, 0, NULL, NULL, NULL) < 0 ||
        db_batch_add(b, NODE_Q_OWN_CLAIMS, NULL, 5, params, s_on_claim_rows, c) < 0) {
        LOG_E("out of memory claiming %zu conversations (retried)", n);
        db_batch_destroy(&b);
        free(c);
    } else {
        c->claims = self;
        c->epoch = node->epoch;
        c->n = n;
        self->inflight++;
        db_batch_submit(&b, s_on_claimed, c);
    }
    free(convs);
    free(teams);
    for (size_t i = 0; i < n; i++) {
        db_batch_submit(&g[i]->load, g[i]->done, g[i]->arg);
    }
}

/* Sends the pending claims, alone those that must be, the others by NODE_CLAIM_CHUNK, unless
   claims are in flight: their completion sends them (so activations arriving while a claim
   waits for its commit share the next one, as in a group commit). */
static void s_flush(node_claims_t *self)
{
    if (self->flush_timer >= 0) {
        zloop_timer_end(self->node->loop, self->flush_timer);
        self->flush_timer = -1;
    }
    size_t n = self->npend;
    if (!n || self->inflight || self->node->closing) {
        return;
    }
    node_fence_prepare(self->node);
    s_pend_t **chunk = malloc((n < NODE_CLAIM_CHUNK ? n : NODE_CLAIM_CHUNK) * sizeof *chunk);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        s_pend_t *p = &self->pend[i];
        if (p->solo || !chunk) {
            s_send(self, &p, 1);
            continue;
        }
        chunk[k++] = p;
        if (k == NODE_CLAIM_CHUNK) {
            s_send(self, chunk, k);
            k = 0;
        }
    }
    if (k) {
        s_send(self, chunk, k);
    }
    free(chunk);
    self->npend = 0;
}

static int s_on_flush(zloop_t *loop, int timer_id, void *arg)
{
    node_claims_t *self = arg;
    if (self->flush_timer == timer_id) {
        self->flush_timer = -1;
        s_flush(self);
    }
    return 0;
}

void node_fence_claim(
    node_t *node, db_batch_t **load_p, node_actor_t *a, db_batch_fn *done, void *arg)
{
    node_claims_t *self = node_fence_claims(node);
    if (self && !node->closing && self->npend == self->cappend) {
        size_t cap = self->cappend ? self->cappend * 2 : 64;
        s_pend_t *grown = realloc(self->pend, cap * sizeof *grown);
        self->cappend = grown ? cap : self->cappend;
        self->pend = grown ? grown : self->pend;
    }
    if (!self || node->closing || self->npend == self->cappend) {
        a->fence_epoch = 0;
        db_batch_submit(load_p, done, arg); /* no claim: the actor waits and retries */
        return;
    }
    s_wait_t *w = s_wait_find(self, a);
    self->pend[self->npend++] =
        (s_pend_t){.actor = a, .load = *load_p, .done = done, .arg = arg, .solo = w && w->solo};
    *load_p = NULL;
    if (self->flush_timer < 0) {
        /* A zero-delay timer fires after this loop turn's readers: the end of the turn. */
        self->flush_timer = zloop_timer(node->loop, 0, 1, s_on_flush, self);
        if (self->flush_timer < 0) {
            s_flush(self);
        }
    }
}

/* ---- outcome ------------------------------------------------------------------------------- */

/* The holder's epoch is newer than our ring: the conversation is not ours to wait for. */
static void s_refused_moved(node_t *node, node_actor_t *a)
{
    s_uuid_t c;
    util_uuid_format(a->conv_id, c);
    LOG_I("claim refused: conversation=%s held under a newer epoch than ours=%llu", c,
          (unsigned long long)node->epoch);
    for (node_req_t *r; (r = node_mbox_pop(a));) {
        node_reply_moved(node, &r);
    }
    a->state = NODE_ACTOR_ABSENT;
    node_reg_refresh(node);
    node_fence_drop(node, a, "conversation moved");
}

bool node_fence_loaded(node_t *node, node_actor_t *a, db_status_t status, const char *sqlstate)
{
    node_claims_t *self = node_fence_claims(node);
    if (!self) {
        return false;
    }
    bool busy_row = status == DB_ERR_QUERY && sqlstate && strcmp(sqlstate, "55P03") == 0;
    if (busy_row && !node->closing && s_wait_add(self, a, false) == 0) {
        return true; /* a transaction holds a row: try again shortly */
    }
    uint64_t verdict = a->fence_epoch;
    if (status != DB_OK && !node_fence_held(verdict)) {
        /* The claim may have committed without our seeing it (connection lost): the
           actor is dropped next, and its release deletes the row if it is ours. */
        a->fence_epoch = node->epoch + 1;
    } else if (verdict >= NODE_FENCE_VERDICTS) {
        a->fence_epoch = 0;
    }
    if (status != DB_OK || a->state != NODE_ACTOR_READY || node_fence_held(verdict)) {
        node_claims_forget(self, a);
        return false;
    }
    /* Found but not claimed: refused, or not attempted (out of memory). */
    a->fence_epoch = 0;
    if (verdict == S_REFUSED_MOVED) {
        node_claims_forget(self, a);
        s_refused_moved(node, a);
        return true;
    }
    if (!node->closing && s_wait_add(self, a, verdict == S_REFUSED_SOLO) == 0) {
        return true;
    }
    node_claims_forget(self, a);
    a->state = NODE_ACTOR_ABSENT;
    node_fence_drop(node, a, "cannot claim the conversation");
    return true;
}
