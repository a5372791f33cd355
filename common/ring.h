/*  ring — consistent-hash ring with weighted virtual nodes. One implementation
    for registry, gateways and nodes, so placement is identical everywhere and
    across restarts: a member's points depend only on its id and weight, and a
    key's position only on its 16 bytes. Not thread-safe; one owner. */
#ifndef BICKY_RING_H
#define BICKY_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_DEFAULT_VNODES 2048 /* points per unit of weight; see docs/ring.md */
#define RING_MAX_MEMBERS    1024
#define RING_ID_MAX         64

typedef struct ring_t ring_t;

typedef struct {
    char id[RING_ID_MAX]; /* member (node) id, NUL-terminated */
    uint32_t weight;      /* capacity units, 1..64; 0 keeps the member off the ring */
} ring_member_t;

/* Creates an empty ring with vnodes points per weight unit (0 → default). NULL on OOM. */
ring_t *ring_new(uint32_t vnodes);
/* Destroys the ring and nulls *self_p; accepts NULL. */
void ring_destroy(ring_t **self_p);
/* Replaces the members (copied) and rebuilds the points. Returns 0, or -1 on
   bad input (too many members, weight > 64, empty or duplicate id) or OOM,
   in which case the ring is left unchanged. */
int ring_set(ring_t *self, const ring_member_t *members, size_t count);
/* Returns the index (into the array given to ring_set) of the member owning
   key, or -1 when no member has weight. */
int ring_lookup(const ring_t *self, const uint8_t key[16]);
/* Number of members, and the member at index i (borrowed, valid until ring_set). */
size_t ring_size(const ring_t *self);
const ring_member_t *ring_member(const ring_t *self, size_t i);
/* Share of the 64-bit hash space owned by member i, in [0, 1]. */
double ring_share(const ring_t *self, size_t i);
/* Position of a key on the ring (stable 64-bit hash of the 16 bytes). */
uint64_t ring_key_hash(const uint8_t key[16]);

#endif
