/*  ring — consistent hashing with weighted virtual nodes (sorted points,
    binary search). A member contributes weight × vnodes points whose
    positions hash its id and point number, so adding a member only takes
    ranges from others and removing one only gives its ranges away. */
#include "common/ring.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t pos;    /* position on the ring */
    uint32_t member; /* index into members */
} s_point_t;

struct ring_t {
    uint32_t vnodes;        /* points per weight unit */
    ring_member_t *members; /* copy of the members */
    size_t nmembers;        /* count of members */
    s_point_t *points;      /* sorted by pos */
    size_t npoints;         /* count of points */
};

ring_t *ring_new(uint32_t vnodes)
{
    ring_t *self = calloc(1, sizeof *self);
    if (self) {
        self->vnodes = vnodes ? vnodes : RING_DEFAULT_VNODES;
    }
    return self;
}

void ring_destroy(ring_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->members);
        free((*self_p)->points);
        free(*self_p);
        *self_p = NULL;
    }
}

static int s_cmp_point(const void *a, const void *b)
{
    const s_point_t *x = a, *y = b;
    if (x->pos != y->pos) {
        return x->pos < y->pos ? -1 : 1;
    }
    /* Ties (astronomically rare) break by member id order for determinism. */
    return x->member < y->member ? -1 : x->member > y->member;
}

uint64_t ring_key_hash(const uint8_t key[16])
{
    return util_hash64(key, 16);
}

static int s_validate(const ring_member_t *members, size_t count, size_t *total)
{
    if (count > RING_MAX_MEMBERS) {
        return -1;
    }
    *total = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = strnlen(members[i].id, RING_ID_MAX);
        if (len == 0 || len == RING_ID_MAX || members[i].weight > 64) {
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(members[i].id, members[j].id) == 0) {
                return -1;
            }
        }
        *total += members[i].weight;
    }
    return 0;
}

int ring_set(ring_t *self, const ring_member_t *members, size_t count)
{
    size_t units = 0;
    if (s_validate(members, count, &units) < 0) {
        return -1;
    }
    size_t npoints = units * self->vnodes;
    ring_member_t *m = calloc(count ? count : 1, sizeof *m);
    s_point_t *p = calloc(npoints ? npoints : 1, sizeof *p);
    if (!m || !p) {
        free(m);
        free(p);
        return -1;
    }
    memcpy(m, members, count * sizeof *m);
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        char label[RING_ID_MAX + 16];
        for (uint32_t v = 0; v < m[i].weight * self->vnodes; v++) {
            int n = snprintf(label, sizeof label, "%s#%u", m[i].id, v);
            p[k].pos = util_hash64(label, (size_t)n);
            p[k].member = (uint32_t)i;
            k++;
        }
    }
    qsort(p, npoints, sizeof *p, s_cmp_point);
    free(self->members);
    free(self->points);
    self->members = m;
    self->nmembers = count;
    self->points = p;
    self->npoints = npoints;
    return 0;
}

int ring_lookup(const ring_t *self, const uint8_t key[16])
{
    if (self->npoints == 0) {
        return -1;
    }
    uint64_t h = ring_key_hash(key);
    /* First point at or after h; wrap to the first point. */
    size_t lo = 0, hi = self->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->points[mid].pos < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == self->npoints) {
        lo = 0;
    }
    return (int)self->points[lo].member;
}

size_t ring_size(const ring_t *self)
{
    return self->nmembers;
}

const ring_member_t *ring_member(const ring_t *self, size_t i)
{
    return i < self->nmembers ? &self->members[i] : NULL;
}

double ring_share(const ring_t *self, size_t i)
{
    if (self->npoints == 0 || i >= self->nmembers) {
        return 0.0;
    }
    /* Point k owns (pos[k-1], pos[k]]; the first owns the wrap-around arc. */
    long double owned = 0;
    for (size_t k = 0; k < self->npoints; k++) {
        if (self->points[k].member != i) {
            continue;
        }
        uint64_t prev = k ? self->points[k - 1].pos : self->points[self->npoints - 1].pos;
        owned += (long double)(uint64_t)(self->points[k].pos - prev);
    }
    if (self->npoints == 1) {
        return 1.0;
    }
    return (double)(owned / 18446744073709551616.0L);
}
