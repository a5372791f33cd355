/*  reg_server — the registry: a ROUTER for node registrations, heartbeats,
    ring requests and admin actions, and a PUB that sends the ring (topic
    "ring") after every membership change and once per second. Several
    registries may share one database: the one whose reg_store holds the
    advisory lock is active, the others stand by and answer every request
    with reg_ack state "standby" (REG_STATE_STANDBY) so that clients move on
    to the next endpoint of their list. Membership lives in reg_members, is
    loaded from Postgres at each takeover and persisted by reg_store (never
    blocking the loop); every new epoch comes from Postgres. Everything runs
    on the thread that owns the zloop the server is attached to. */
#ifndef BICKY_REG_SERVER_H
#define BICKY_REG_SERVER_H

#include "common/keys.h"
#include <czmq.h>

#include <stdbool.h>
#include <stdint.h>

#define REG_RING_TOPIC       "ring"    /* PUB topic of ring updates */
#define REG_REVOKED_TOPIC    "revoked" /* PUB topic of token revocations */
#define REG_PUBLISH_EVERY_MS 1000      /* periodic re-publication of the ring */
#define REG_SAVE_EVERY_MS    5000      /* periodic write of heartbeat times */
#define REG_TICK_MS          100       /* liveness sweep and housekeeping timer */
#define REG_SAVE_RETRY_MS    1000      /* delay before retrying a failed save */
#define REG_STATE_STANDBY    "standby" /* reg_ack state of a registry that is not active */

typedef struct {
    const char *bind;         /* ROUTER endpoint, e.g. "tcp://127.0.0.1:7100" */
    const char *pub_bind;     /* PUB endpoint to bind, e.g. "tcp://0.0.0.0:7101" */
    const char *database_url; /* libpq conninfo (logged only masked) */
    int64_t dead_after_ms;    /* heartbeat silence after which a node is dead */
    keys_t *keys;             /* CURVE and roles (borrowed, outlives the server); NULL = none */
    /* PUB endpoint told to clients (reg_ack.pub, ring.pub); NULL/"" = the bound one. */
    const char *pub_advertise;
} reg_config_t;

typedef struct reg_server_t reg_server_t;

/* Blocking (call before the loop runs): binds both sockets, starts the
   store thread and waits (at most a few seconds) for its first lock
   attempt, so a lone registry is active when this returns; otherwise it
   stands by and takes over later. cfg is copied. NULL on failure, with the
   reason logged. */
reg_server_t *reg_server_new(const reg_config_t *cfg);
/* Detaches nothing (destroy the loop first or together), hands a last
   snapshot to the store when active, closes the sockets, stops the store
   thread (which releases the lock); nulls *self_p; accepts NULL. */
void reg_server_destroy(reg_server_t **self_p);
/* Registers the ROUTER and store readers and the housekeeping timer on
   loop (borrowed; it must outlive the server's use of it). 0 or -1. */
int reg_server_attach(reg_server_t *self, zloop_t *loop);
/* The published ring epoch (0 while standing by). */
uint64_t reg_server_epoch(const reg_server_t *self);
/* True while this registry holds the lock and serves. */
bool reg_server_active(const reg_server_t *self);

/* zactor body running a whole registry on its own zloop, for embedding
   (tests): args is a const reg_config_t * valid until the actor signals.
   Stops on $TERM. When the server cannot start, the actor ends at once. */
void reg_server_actor(zsock_t *pipe, void *args);

#endif
