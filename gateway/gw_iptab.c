/*  gw_iptab — the per-IP table: open connections and failed authentications
    of each client address, in a fixed array of slots (bounded) indexed by a
    hash of the address text. An address with no connection and no live
    failure window is forgotten at once; when the table is full, the clock
    hand evicts one with no connection open. Loop thread only. */
#include "gateway/gateway_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char key[GW_IP_KEY_MAX]; /* the address as text */
    bool used;               /* slot holds an address */
    unsigned conns;          /* connections open from it */
    long fails;              /* failed authentications in the window */
    int64_t window_ms;       /* start of the failure window (mono), 0 = none */
} s_slot_t;

struct gw_iptab_t {
    s_slot_t *slots;   /* capacity slots */
    size_t capacity;   /* slots */
    size_t count;      /* used slots */
    size_t hand;       /* clock hand for eviction */
    zhashx_t *index;   /* key → s_slot_t * (not owned) */
    long fail_max;     /* failures that block (0 = never) */
    int64_t window_ms; /* failure window length */
};

gw_iptab_t *gw_iptab_new(size_t capacity, long fail_max, int64_t window_ms)
{
    gw_iptab_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->capacity = capacity ? capacity : 1;
    self->slots = calloc(self->capacity, sizeof *self->slots);
    self->index = zhashx_new();
    self->fail_max = fail_max;
    self->window_ms = window_ms > 0 ? window_ms : 1;
    if (!self->slots || !self->index) {
        gw_iptab_destroy(&self);
    }
    return self;
}

void gw_iptab_destroy(gw_iptab_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_iptab_t *self = *self_p;
    zhashx_destroy(&self->index);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

int gw_iptab_key(const struct sockaddr *sa, char key[GW_IP_KEY_MAX])
{
    const void *addr = NULL;
    if (sa && sa->sa_family == AF_INET) {
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa && sa->sa_family == AF_INET6) {
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    }
    if (!addr || !inet_ntop(sa->sa_family, addr, key, GW_IP_KEY_MAX)) {
        snprintf(key, GW_IP_KEY_MAX, "?");
        return -1;
    }
    return 0;
}

static void s_forget(gw_iptab_t *self, s_slot_t *s)
{
    zhashx_delete(self->index, s->key);
    memset(s, 0, sizeof *s);
    self->count--;
}

/* True when s's failure window has ended (or never began). */
static bool s_window_over(const gw_iptab_t *self, const s_slot_t *s, int64_t now_ms)
{
    return s->window_ms == 0 || now_ms - s->window_ms >= self->window_ms;
}

/* A free slot: an unused one, else one with no connection (a finished
   window first: two turns of the hand at most). NULL when every address
   held has connections open. */
static s_slot_t *s_take(gw_iptab_t *self, int64_t now_ms)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t step = 0; step < self->capacity; step++) {
            s_slot_t *s = &self->slots[self->hand];
            self->hand = (self->hand + 1) % self->capacity;
            if (!s->used) {
                return s;
            }
            if (s->conns == 0 && (pass == 1 || s_window_over(self, s, now_ms))) {
                s_forget(self, s);
                return s;
            }
        }
    }
    return NULL;
}

/* The slot of key, made when missing (NULL when the table is full). */
static s_slot_t *s_get(gw_iptab_t *self, const char *key, bool make, int64_t now_ms)
{
    s_slot_t *s = zhashx_lookup(self->index, key);
    if (s || !make) {
        return s;
    }
    s = s_take(self, now_ms);
    if (!s) {
        return NULL;
    }
    snprintf(s->key, sizeof s->key, "%s", key);
    s->used = true;
    self->count++;
    zhashx_insert(self->index, s->key, s);
    return s;
}

int gw_iptab_open(gw_iptab_t *self, const char *key, long max_per_ip, int64_t now_ms)
{
    s_slot_t *s = s_get(self, key, true, now_ms);
    if (!s || (max_per_ip > 0 && s->conns >= (unsigned long)max_per_ip)) {
        return -1;
    }
    s->conns++;
    return 0;
}

void gw_iptab_close(gw_iptab_t *self, const char *key)
{
    s_slot_t *s = s_get(self, key, false, 0);
    if (s && s->conns > 0) {
        s->conns--;
        /* Windows are judged lazily: a finished one is dropped when the
           address asks again or when its slot is needed. */
        if (s->conns == 0 && s->window_ms == 0) {
            s_forget(self, s);
        }
    }
}

unsigned gw_iptab_conns(const gw_iptab_t *self, const char *key)
{
    const s_slot_t *s = zhashx_lookup(self->index, key);
    return s ? s->conns : 0;
}

void gw_iptab_fail(gw_iptab_t *self, const char *key, int64_t now_ms)
{
    if (self->fail_max <= 0) {
        return;
    }
    s_slot_t *s = s_get(self, key, true, now_ms);
    if (!s) {
        return; /* full of open connections: their own limit bounds them */
    }
    if (s_window_over(self, s, now_ms)) {
        s->window_ms = now_ms ? now_ms : 1;
        s->fails = 0;
    }
    s->fails++;
}

int64_t gw_iptab_blocked_ms(gw_iptab_t *self, const char *key, int64_t now_ms)
{
    s_slot_t *s = self->fail_max > 0 ? s_get(self, key, false, now_ms) : NULL;
    if (!s) {
        return 0;
    }
    if (s_window_over(self, s, now_ms)) {
        s->window_ms = 0;
        s->fails = 0;
        if (s->conns == 0) {
            s_forget(self, s);
        }
        return 0;
    }
    return s->fails >= self->fail_max ? s->window_ms + self->window_ms - now_ms : 0;
}

size_t gw_iptab_size(const gw_iptab_t *self)
{
    return self->count;
}
