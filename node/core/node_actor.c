/*  node_actor — the resident actors: an open-addressing hash table keyed by
    the 16-byte conversation id (linear probing, backward-shift deletion, load
    ≤ 1/2), an intrusive LRU list for passivation, and the per-actor bounded
    mailbox (a ring buffer allocated only while requests wait).
    No database, no sockets: activation here is a malloc and two pointer
    updates (bench/bench_actor.c). Loop thread only. */
#include "common/util.h"
#include "node/core/node_core.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MIN 1024 /* initial slots (power of two) */

struct node_actors_t {
    node_actor_t **slots;           /* capacity entries, NULL = empty */
    size_t cap;                     /* power of two */
    size_t count;                   /* actors */
    node_actor_t *lru_head;         /* least recently used */
    node_actor_t *lru_tail;         /* most recently used */
    node_turns_free_fn *free_turns; /* frees an actor's turn state at destroy */
    zhashx_t *teams;                /* team hex → s_team_t (owned): only teams with actors */
};

/* A team's share of this node (issue 12 limits): resident actors and counted turns. */
typedef struct {
    uint32_t actors; /* resident actors of the team */
    uint32_t turns;  /* its actors with NODE_AF_TURN */
} s_team_t;

struct node_mbox_t {
    uint32_t head;       /* index of the oldest request */
    uint32_t count;      /* requests waiting */
    uint32_t cap;        /* slots in items */
    node_req_t *items[]; /* ring buffer */
};

static const char *s_status_names[] = {"idle",  "queued",  "processing", "waiting_for_permission",
                                       "error", "archived"};
static const char *s_busy_names[] = {"enqueue", "reject", "interrupt"};

const char *node_status_name(int status)
{
    return status >= 0 && status <= NODE_ST_ARCHIVED ? s_status_names[status] : "idle";
}

int node_status_parse(const char *name)
{
    for (int i = 0; name && i <= NODE_ST_ARCHIVED; i++) {
        if (strcmp(name, s_status_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *node_on_busy_name(int on_busy)
{
    return on_busy >= 0 && on_busy <= NODE_BUSY_INTERRUPT ? s_busy_names[on_busy] : "enqueue";
}

int node_on_busy_parse(const char *name)
{
    for (int i = 0; name && i <= NODE_BUSY_INTERRUPT; i++) {
        if (strcmp(name, s_busy_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- hash table -------------------------------------------------------------------------- */

static size_t s_hash(const uint8_t key[16])
{
    return (size_t)util_hash64(key, 16);
}

static void s_team_free(void **item)
{
    free(*item);
    *item = NULL;
}

node_actors_t *node_actors_new(node_turns_free_fn *free_turns)
{
    node_actors_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->free_turns = free_turns;
    self->cap = TABLE_MIN;
    self->slots = calloc(self->cap, sizeof *self->slots);
    self->teams = zhashx_new();
    if (!self->slots || !self->teams) {
        free(self->slots);
        zhashx_destroy(&self->teams);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->teams, s_team_free);
    return self;
}

static void s_team_key(const uint8_t team[16], char key[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        key[2 * i] = hex[team[i] >> 4];
        key[2 * i + 1] = hex[team[i] & 15];
    }
    key[32] = 0;
}

static s_team_t *s_team_find(const node_actors_t *self, const uint8_t team[16])
{
    char key[33];
    s_team_key(team, key);
    return zhashx_lookup(self->teams, key);
}

uint32_t node_actors_team_actors(const node_actors_t *self, const uint8_t team[16])
{
    const s_team_t *t = s_team_find(self, team);
    return t ? t->actors : 0;
}

uint32_t node_actors_team_turns(const node_actors_t *self, const uint8_t team[16])
{
    const s_team_t *t = s_team_find(self, team);
    return t ? t->turns : 0;
}

void node_actors_turn_mark(node_actors_t *self, node_actor_t *actor, bool running)
{
    s_team_t *t = s_team_find(self, actor->team_id);
    bool marked = actor->flags & NODE_AF_TURN;
    if (!t || marked == running) {
        return;
    }
    if (running) {
        actor->flags |= NODE_AF_TURN;
        t->turns++;
    } else {
        actor->flags &= (uint8_t)~NODE_AF_TURN;
        t->turns--;
    }
}

static void s_actor_free(node_actors_t *self, node_actor_t *a)
{
    for (node_req_t *r; (r = node_mbox_pop(a));) {
        node_req_destroy(&r);
    }
    free(a->mbox);
    if (a->turns) {
        assert(self->free_turns);
        self->free_turns(a->turns);
    }
    free(a);
}

void node_actors_destroy(node_actors_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_actors_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        if (self->slots[i]) {
            s_actor_free(self, self->slots[i]);
        }
    }
    free(self->slots);
    zhashx_destroy(&self->teams);
    free(self);
    *self_p = NULL;
}

node_actor_t *node_actors_find(const node_actors_t *self, const uint8_t conv[16])
{
    size_t mask = self->cap - 1;
    for (size_t i = s_hash(conv) & mask;; i = (i + 1) & mask) {
        node_actor_t *a = self->slots[i];
        if (!a || memcmp(a->conv_id, conv, 16) == 0) {
            return a;
        }
    }
}

static void s_place(node_actor_t **slots, size_t cap, node_actor_t *a)
{
    size_t mask = cap - 1;
    size_t i = s_hash(a->conv_id) & mask;
    while (slots[i]) {
        i = (i + 1) & mask;
    }
    slots[i] = a;
}

static int s_grow(node_actors_t *self)
{
    size_t cap = self->cap * 2;
    node_actor_t **slots = calloc(cap, sizeof *slots);
    if (!slots) {
        return -1;
    }
    for (size_t i = 0; i < self->cap; i++) {
        if (self->slots[i]) {
            s_place(slots, cap, self->slots[i]);
        }
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return 0;
}

static void s_lru_unlink(node_actors_t *self, node_actor_t *a)
{
    if (a->lru_prev) {
        a->lru_prev->lru_next = a->lru_next;
    } else {
        self->lru_head = a->lru_next;
    }
    if (a->lru_next) {
        a->lru_next->lru_prev = a->lru_prev;
    } else {
        self->lru_tail = a->lru_prev;
    }
    a->lru_prev = a->lru_next = NULL;
}

static void s_lru_append(node_actors_t *self, node_actor_t *a)
{
    a->lru_prev = self->lru_tail;
    a->lru_next = NULL;
    if (self->lru_tail) {
        self->lru_tail->lru_next = a;
    } else {
        self->lru_head = a;
    }
    self->lru_tail = a;
}

node_actor_t *
node_actors_add(node_actors_t *self, const uint8_t conv[16], const uint8_t team[16], int64_t now_ms)
{
    if ((self->count + 1) * 2 > self->cap && s_grow(self) < 0) {
        return NULL;
    }
    if (node_actors_find(self, conv)) {
        return NULL;
    }
    s_team_t *t = s_team_find(self, team);
    if (!t) {
        char key[33];
        s_team_key(team, key);
        if (!(t = calloc(1, sizeof *t))) {
            return NULL;
        }
        zhashx_insert(self->teams, key, t);
    }
    node_actor_t *a = calloc(1, sizeof *a);
    if (!a) {
        if (t->actors == 0) {
            char key[33];
            s_team_key(team, key);
            zhashx_delete(self->teams, key);
        }
        return NULL;
    }
    t->actors++;
    memcpy(a->conv_id, conv, 16);
    memcpy(a->team_id, team, 16);
    a->state = NODE_ACTOR_LOADING;
    a->echo_delay_ms = a->echo_fail_every = -1;
    a->last_used_ms = now_ms;
    s_place(self->slots, self->cap, a);
    s_lru_append(self, a);
    self->count++;
    return a;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void s_unplace(node_actors_t *self, const node_actor_t *a)
{
    size_t mask = self->cap - 1;
    size_t i = s_hash(a->conv_id) & mask;
    while (self->slots[i] != a) {
        i = (i + 1) & mask;
    }
    self->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; self->slots[j]; j = (j + 1) & mask) {
        size_t home = s_hash(self->slots[j]->conv_id) & mask;
        /* Move slots[j] into the hole when its home is not in (i, j] cyclically. */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            self->slots[i] = self->slots[j];
            self->slots[j] = NULL;
            i = j;
        }
    }
}

void node_actors_remove(node_actors_t *self, node_actor_t *actor)
{
    node_actors_turn_mark(self, actor, false);
    char key[33];
    s_team_key(actor->team_id, key);
    s_team_t *t = zhashx_lookup(self->teams, key);
    if (t && --t->actors == 0) {
        zhashx_delete(self->teams, key);
    }
    s_unplace(self, actor);
    s_lru_unlink(self, actor);
    self->count--;
    s_actor_free(self, actor);
}

void node_actors_touch(node_actors_t *self, node_actor_t *actor, int64_t now_ms)
{
    actor->last_used_ms = now_ms;
    if (self->lru_tail != actor) {
        s_lru_unlink(self, actor);
        s_lru_append(self, actor);
    }
}

node_actor_t *node_actors_oldest(const node_actors_t *self)
{
    return self->lru_head;
}

size_t node_actors_count(const node_actors_t *self)
{
    return self->count;
}

size_t node_actors_select(const node_actors_t *self,
                          bool (*fn)(node_actor_t *, void *),
                          void *arg,
                          node_actor_t **out,
                          size_t cap)
{
    size_t n = 0;
    for (node_actor_t *a = self->lru_head; a && n < cap; a = a->lru_next) {
        if (fn(a, arg)) {
            out[n++] = a;
        }
    }
    return n;
}

/* ---- mailbox ----------------------------------------------------------------------------- */

int node_mbox_push(node_actor_t *actor, node_req_t *req, size_t max)
{
    node_mbox_t *m = actor->mbox;
    uint32_t count = m ? m->count : 0;
    if (count >= max) {
        return -1;
    }
    if (!m || m->count == m->cap) {
        uint32_t cap = m ? m->cap * 2 : 4;
        cap = cap > max ? (uint32_t)max : cap;
        node_mbox_t *g = malloc(sizeof *g + cap * sizeof g->items[0]);
        if (!g) {
            return -1;
        }
        g->head = 0;
        g->count = count;
        g->cap = cap;
        for (uint32_t i = 0; i < count; i++) {
            g->items[i] = m->items[(m->head + i) % m->cap];
        }
        free(m);
        actor->mbox = m = g;
    }
    m->items[(m->head + m->count) % m->cap] = req;
    m->count++;
    return 0;
}

node_req_t *node_mbox_peek(const node_actor_t *actor)
{
    const node_mbox_t *m = actor->mbox;
    return m && m->count ? m->items[m->head] : NULL;
}

node_req_t *node_mbox_pop(node_actor_t *actor)
{
    node_mbox_t *m = actor->mbox;
    if (!m || !m->count) {
        return NULL;
    }
    node_req_t *r = m->items[m->head];
    m->head = (m->head + 1) % m->cap;
    if (--m->count == 0) {
        /* Resident actors keep no mailbox memory while idle. */
        free(m);
        actor->mbox = NULL;
    }
    return r;
}

size_t node_mbox_count(const node_actor_t *actor)
{
    return actor->mbox ? actor->mbox->count : 0;
}

bool node_actor_quiescent(const node_actor_t *actor)
{
    return actor->state != NODE_ACTOR_LOADING &&
           !(actor->flags & (NODE_AF_COMMITTING | NODE_AF_IDEM)) && !actor->mbox && !actor->turns;
}
