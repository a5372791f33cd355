/*  reg_members — the registry's membership table: nodes by id with their
    state (alive, draining, dead), endpoints, weight and last heartbeat, and
    a version that every membership change bumps (the ring epoch itself is
    Postgres's: reg_store). Pure logic, no I/O: times are passed in, so tests
    drive it directly. One owner thread at a time (the registry loop; the
    store thread builds a table at takeover and hands it over). */
#ifndef BICKY_REG_MEMBERS_H
#define BICKY_REG_MEMBERS_H

#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REG_MAX_NODES 1024 /* = PROTO_MAX_NODES: one RING message carries them all */
#define REG_ID_MAX    (PROTO_NODE_ID_MAX + 1) /* id buffer (proto_node_id_valid) */
#define REG_EP_MAX    256                     /* endpoint buffer; endpoints are 1..255 characters */

typedef enum { REG_NODE_ALIVE = 0, REG_NODE_DRAINING, REG_NODE_DEAD } reg_node_state_t;

typedef struct {
    char id[REG_ID_MAX];     /* node id: [A-Za-z0-9._:-], 1..63 characters */
    char router[REG_EP_MAX]; /* the node's ROUTER endpoint (API requests) */
    char pub[REG_EP_MAX];    /* the node's PUB endpoint (events) */
    uint32_t weight;         /* ring weight, 0..64 (0: alive but owns nothing) */
    uint32_t actors;         /* resident actors at the last heartbeat */
    reg_node_state_t state;  /* alive | draining | dead */
    bool drained;            /* operator intent: off the ring until undrained */
    int64_t beat_ms;         /* monotonic ms of the last register/heartbeat/restore */
    int64_t beat_wall_ms;    /* wall-clock ms of the last register/heartbeat */
} reg_node_t;

typedef struct reg_members_t reg_members_t;

/* Creates an empty table; a node silent for more than dead_after_ms is dead.
   NULL on OOM. */
reg_members_t *reg_members_new(int64_t dead_after_ms);
/* Frees the table and nulls *self_p; accepts NULL. */
void reg_members_destroy(reg_members_t **self_p);

/* Local change counter: 0 for a new table, +1 for every REG_CHANGED result
   (and one per sweep that found deaths). The server maps a stored version
   to the ring epoch Postgres handed out for it. */
uint64_t reg_members_version(const reg_members_t *self);

/* Number of nodes and the node at index i in id order (borrowed, valid until
   the next change), or NULL when out of range. */
size_t reg_members_size(const reg_members_t *self);
const reg_node_t *reg_members_at(const reg_members_t *self, size_t i);
/* The node with this id (borrowed, valid until the next change), or NULL. */
const reg_node_t *reg_members_find(const reg_members_t *self, const char *id);
/* Nodes in each state, indexed by reg_node_state_t (counts[3]). */
void reg_members_counts(const reg_members_t *self, size_t counts[3]);

/* Adds a node read back from storage (copied) without bumping the version.
   Its heartbeat clock restarts at now_ms, so it gets a full dead-after
   period to beat before it is declared dead. A node stored as draining is
   drained (see reg_node_stored_state). -1 on a bad or duplicate row. */
int reg_members_restore(reg_members_t *self, const reg_node_t *node, int64_t now_ms);

/* The clocks of one event: monotonic ms for liveness, wall ms for storage. */
typedef struct {
    int64_t mono_ms; /* util_mono_ms() */
    int64_t wall_ms; /* util_wall_ms() */
} reg_now_t;

/* What a PROTO_REGISTER asks for (borrowed strings). */
typedef struct {
    const char *id;     /* node id */
    const char *router; /* node ROUTER endpoint */
    const char *pub;    /* node PUB endpoint */
    uint64_t weight;    /* ring weight, 0..64 */
} reg_join_t;

/* The result of a call that may change membership. */
typedef enum {
    REG_REJECTED = -1, /* bad input or table full; see *why */
    REG_UNCHANGED = 0, /* accepted, nothing visible changed */
    REG_CHANGED = 1    /* membership (or a stored mark) changed; the version was bumped */
} reg_change_t;

/* A node registers (first start, or a restart re-joining as itself): a new
   id joins alive; a known id gets its endpoints and weight updated, a dead
   one comes back (alive, or draining when it was drained), a draining one
   stays draining. why (borrowed static text) is set on REG_REJECTED. */
reg_change_t
reg_members_register(reg_members_t *self, const reg_join_t *join, reg_now_t now, const char **why);
/* A heartbeat from id: refreshes its clock and actor count; a dead node
   that beats again comes back. REG_REJECTED means the id is unknown. */
reg_change_t
reg_members_heartbeat(reg_members_t *self, const char *id, uint64_t actors, reg_now_t now);
/* An operator action (drain | undrain | remove) on id. *status is 200 on
   success, 404 for an unknown id, 400 for an unknown action; *why (static
   text) explains a non-200 status. Draining or undraining a dead node
   changes no ring but is REG_CHANGED all the same: the mark must be stored. */
reg_change_t reg_members_admin(
    reg_members_t *self, const char *action, const char *id, int *status, const char **why);
/* Declares dead every alive or draining node silent for more than
   dead_after_ms at now_ms. Returns how many died (one version bump for all). */
size_t reg_members_sweep(reg_members_t *self, int64_t now_ms);
/* The registry did not run for ms up to now_ms (paused by SIGSTOP, starved,
   swapped out): moves every node's heartbeat clock on by ms (at most to
   now_ms), so that silence it could not watch does not count toward
   dead_after_ms. The heartbeats queued meanwhile are read right after; a
   node that really died is declared dead dead_after_ms after the pause. */
void reg_members_unwatched(reg_members_t *self, int64_t ms, int64_t now_ms);

/* The state written to table nodes: the state itself, except that a dead
   node that is drained is stored as "draining" so that the operator's mark
   survives a registry restart or takeover (restored, it is draining with a
   fresh grace period, and dead again if it stays silent). */
const char *reg_node_stored_state(const reg_node_t *node);
/* "alive" | "draining" | "dead". */
const char *reg_node_state_name(reg_node_state_t state);
/* Parses a state name; -1 when it is none of the three. */
int reg_node_state_parse(const char *name, reg_node_state_t *out);
/* True when id is 1..63 characters of [A-Za-z0-9._:-]. */
bool reg_node_id_valid(const char *id);

#endif
