/*  reg_members — membership table kept sorted by id (binary search), so the
    RING message and everyone's ring_set see the nodes in the same order.
    Owner thread only. */
#define LOG_MODULE "reg_members"
#include "registry/reg_members.h"

#include "common/log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reg_members_t {
    reg_node_t *nodes;     /* sorted by id */
    size_t count;          /* nodes in use */
    size_t cap;            /* nodes allocated */
    uint64_t version;      /* bumped on every membership change */
    int64_t dead_after_ms; /* silence after which a node is dead */
};

static const char *const s_state_names[] = {"alive", "draining", "dead"};

const char *reg_node_stored_state(const reg_node_t *node)
{
    if (node->state == REG_NODE_DEAD && node->drained) {
        return s_state_names[REG_NODE_DRAINING];
    }
    return reg_node_state_name(node->state);
}

const char *reg_node_state_name(reg_node_state_t state)
{
    return (unsigned)state < 3 ? s_state_names[state] : "unknown";
}

int reg_node_state_parse(const char *name, reg_node_state_t *out)
{
    for (int i = 0; i < 3; i++) {
        if (name && !strcmp(name, s_state_names[i])) {
            *out = (reg_node_state_t)i;
            return 0;
        }
    }
    return -1;
}

bool reg_node_id_valid(const char *id)
{
    return proto_node_id_valid(id);
}

/* An endpoint is "transport://address", printable, without spaces. */
static bool s_endpoint_valid(const char *ep)
{
    size_t n = ep ? strlen(ep) : 0;
    if (n < 4 || n >= REG_EP_MAX || !strstr(ep, "://")) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ep[i] <= ' ' || ep[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

reg_members_t *reg_members_new(int64_t dead_after_ms)
{
    reg_members_t *self = calloc(1, sizeof *self);
    if (!self) {
        LOG_E("out of memory");
        return NULL;
    }
    self->dead_after_ms = dead_after_ms;
    return self;
}

void reg_members_destroy(reg_members_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->nodes);
        free(*self_p);
        *self_p = NULL;
    }
}

uint64_t reg_members_version(const reg_members_t *self)
{
    return self->version;
}

size_t reg_members_size(const reg_members_t *self)
{
    return self->count;
}

const reg_node_t *reg_members_at(const reg_members_t *self, size_t i)
{
    return i < self->count ? &self->nodes[i] : NULL;
}

/* Index of id, or -(insertion point) - 1 when absent. */
static long s_search(const reg_members_t *self, const char *id)
{
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(self->nodes[mid].id, id);
        if (c == 0) {
            return (long)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -(long)lo - 1;
}

static reg_node_t *s_find(reg_members_t *self, const char *id)
{
    long i = id ? s_search(self, id) : -1;
    return i >= 0 ? &self->nodes[i] : NULL;
}

const reg_node_t *reg_members_find(const reg_members_t *self, const char *id)
{
    return s_find((reg_members_t *)self, id);
}

void reg_members_counts(const reg_members_t *self, size_t counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (size_t i = 0; i < self->count; i++) {
        counts[self->nodes[i].state]++;
    }
}

/* Inserts a zeroed node with this id at its sorted place; NULL when the
   table is full or memory ran out. */
static reg_node_t *s_insert(reg_members_t *self, const char *id)
{
    long at = s_search(self, id);
    assert(at < 0);
    size_t pos = (size_t)(-at - 1);
    if (self->count >= REG_MAX_NODES) {
        return NULL;
    }
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        reg_node_t *nodes = realloc(self->nodes, cap * sizeof *nodes);
        if (!nodes) {
            return NULL;
        }
        self->nodes = nodes;
        self->cap = cap;
    }
    memmove(&self->nodes[pos + 1], &self->nodes[pos], (self->count - pos) * sizeof *self->nodes);
    self->count++;
    reg_node_t *n = &self->nodes[pos];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    return n;
}

int reg_members_restore(reg_members_t *self, const reg_node_t *node, int64_t now_ms)
{
    if (!reg_node_id_valid(node->id) || !s_endpoint_valid(node->router) ||
        !s_endpoint_valid(node->pub) || node->weight > 64 || (unsigned)node->state > 2 ||
        s_find(self, node->id)) {
        return -1;
    }
    reg_node_t *n = s_insert(self, node->id);
    if (!n) {
        return -1;
    }
    *n = *node;
    n->drained = node->drained || node->state == REG_NODE_DRAINING;
    n->beat_ms = now_ms;
    return 0;
}

static reg_change_t s_bump(reg_members_t *self)
{
    self->version++;
    return REG_CHANGED;
}

/* The state a node that is heard from again takes. */
static reg_node_state_t s_live_state(const reg_node_t *n)
{
    return n->drained ? REG_NODE_DRAINING : REG_NODE_ALIVE;
}

reg_change_t
reg_members_register(reg_members_t *self, const reg_join_t *join, reg_now_t now, const char **why)
{
    if (!reg_node_id_valid(join->id)) {
        *why = "invalid node id (1..63 characters of A-Z a-z 0-9 . _ : -)";
        return REG_REJECTED;
    }
    if (!s_endpoint_valid(join->router) || !s_endpoint_valid(join->pub)) {
        *why = "invalid endpoint (expected transport://address, no spaces)";
        return REG_REJECTED;
    }
    if (join->weight > 64) {
        *why = "weight out of range (0..64)";
        return REG_REJECTED;
    }
    reg_node_t *n = s_find(self, join->id);
    bool changed = false;
    if (!n) {
        if (!(n = s_insert(self, join->id))) {
            *why = "registry full";
            return REG_REJECTED;
        }
        changed = true;
    }
    changed = changed || n->state == REG_NODE_DEAD || strcmp(n->router, join->router) ||
              strcmp(n->pub, join->pub) || n->weight != join->weight;
    snprintf(n->router, sizeof n->router, "%s", join->router);
    snprintf(n->pub, sizeof n->pub, "%s", join->pub);
    n->weight = (uint32_t)join->weight;
    n->state = s_live_state(n);
    n->beat_ms = now.mono_ms;
    n->beat_wall_ms = now.wall_ms;
    return changed ? s_bump(self) : REG_UNCHANGED;
}

reg_change_t
reg_members_heartbeat(reg_members_t *self, const char *id, uint64_t actors, reg_now_t now)
{
    reg_node_t *n = s_find(self, id);
    if (!n) {
        return REG_REJECTED;
    }
    n->actors = actors > UINT32_MAX ? UINT32_MAX : (uint32_t)actors;
    n->beat_ms = now.mono_ms;
    n->beat_wall_ms = now.wall_ms;
    if (n->state != REG_NODE_DEAD) {
        return REG_UNCHANGED;
    }
    /* A node declared dead that is beating again (a pause, a partition)
       still has the endpoints it registered: take it back. */
    n->state = s_live_state(n);
    return s_bump(self);
}

static reg_change_t s_remove(reg_members_t *self, reg_node_t *n)
{
    size_t pos = (size_t)(n - self->nodes);
    memmove(n, n + 1, (self->count - pos - 1) * sizeof *n);
    self->count--;
    return s_bump(self);
}

static reg_change_t s_set_drained(reg_members_t *self, reg_node_t *n, bool drained)
{
    if (n->drained == drained) {
        return REG_UNCHANGED;
    }
    n->drained = drained;
    if (n->state == REG_NODE_DEAD) {
        /* Remembered for when it comes back. The ring does not change now,
           but the mark must reach Postgres (reg_node_stored_state). */
        return s_bump(self);
    }
    reg_node_state_t to = s_live_state(n);
    if (to == n->state) {
        return REG_UNCHANGED;
    }
    n->state = to;
    return s_bump(self);
}

reg_change_t reg_members_admin(
    reg_members_t *self, const char *action, const char *id, int *status, const char **why)
{
    bool drain = !strcmp(action, "drain"), undrain = !strcmp(action, "undrain");
    bool remove = !strcmp(action, "remove");
    if (!drain && !undrain && !remove) {
        *status = 400;
        *why = "unknown action (expected drain, undrain or remove)";
        return REG_REJECTED;
    }
    reg_node_t *n = s_find(self, id);
    if (!n) {
        *status = 404;
        *why = "no such node";
        return REG_REJECTED;
    }
    *status = 200;
    *why = NULL;
    if (remove) {
        return s_remove(self, n);
    }
    return s_set_drained(self, n, drain);
}

size_t reg_members_sweep(reg_members_t *self, int64_t now_ms)
{
    size_t died = 0;
    for (size_t i = 0; i < self->count; i++) {
        reg_node_t *n = &self->nodes[i];
        if (n->state != REG_NODE_DEAD && now_ms - n->beat_ms > self->dead_after_ms) {
            n->state = REG_NODE_DEAD;
            died++;
            LOG_N("node dead id=%s silent_ms=%" PRId64, n->id, now_ms - n->beat_ms);
        }
    }
    if (died) {
        s_bump(self);
    }
    return died;
}

void reg_members_unwatched(reg_members_t *self, int64_t ms, int64_t now_ms)
{
    for (size_t i = 0; i < self->count; i++) {
        reg_node_t *n = &self->nodes[i];
        n->beat_ms = n->beat_ms + ms > now_ms ? now_ms : n->beat_ms + ms;
    }
}
