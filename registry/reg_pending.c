/*  reg_pending — a fixed-capacity ring buffer of held replies. Because
    versions never decrease along the queue, the entries a stored version
    releases are always at its head. Loop thread only. */
#include "registry/reg_pending.h"

#include <stdlib.h>
#include <string.h>

struct reg_pending_t {
    reg_reply_t *slots; /* cap entries */
    size_t cap;         /* capacity */
    size_t head;        /* index of the oldest entry */
    size_t count;       /* entries held */
};

reg_pending_t *reg_pending_new(size_t max)
{
    reg_pending_t *self = calloc(1, sizeof *self);
    if (!self || !(self->slots = calloc(max ? max : 1, sizeof *self->slots))) {
        free(self);
        return NULL;
    }
    self->cap = max ? max : 1;
    return self;
}

void reg_pending_destroy(reg_pending_t **self_p)
{
    if (self_p && *self_p) {
        reg_pending_t *self = *self_p;
        reg_reply_t r;
        while (reg_pending_pop(self, UINT64_MAX, &r) == 0) {
            zframe_destroy(&r.peer);
        }
        free(self->slots);
        free(self);
        *self_p = NULL;
    }
}

int reg_pending_add(reg_pending_t *self, reg_reply_t *reply)
{
    if (self->count == self->cap) {
        return -1;
    }
    reg_reply_t *slot = &self->slots[(self->head + self->count) % self->cap];
    *slot = *reply;
    reply->peer = NULL;
    self->count++;
    return 0;
}

int reg_pending_pop(reg_pending_t *self, uint64_t version, reg_reply_t *out)
{
    if (self->count == 0 || self->slots[self->head].version > version) {
        return -1;
    }
    *out = self->slots[self->head];
    memset(&self->slots[self->head], 0, sizeof *out);
    self->head = (self->head + 1) % self->cap;
    self->count--;
    return 0;
}

size_t reg_pending_expire(reg_pending_t *self, int64_t before_ms)
{
    /* Entries are in arrival order too, so the old ones are at the head. */
    size_t dropped = 0;
    while (self->count > 0 && self->slots[self->head].since_ms < before_ms) {
        reg_reply_t r;
        reg_pending_pop(self, UINT64_MAX, &r);
        zframe_destroy(&r.peer);
        dropped++;
    }
    return dropped;
}

size_t reg_pending_size(const reg_pending_t *self)
{
    return self->count;
}
