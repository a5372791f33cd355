/*  reg_server — the registry: a ROUTER for node registrations, heartbeats,
    ring requests and admin actions, and a PUB that sends the ring (topic
    "ring") after every membership change and once per second. Membership
    lives in reg_members, is persisted by reg_store (never blocking the loop)
    and is restored from Postgres at start. Everything runs on the thread
    that owns the zloop the server is attached to. */
#ifndef BICKY_REG_SERVER_H
#define BICKY_REG_SERVER_H

#include <czmq.h>
#include <stdint.h>

#define REG_RING_TOPIC       "ring" /* PUB topic of ring updates */
#define REG_PUBLISH_EVERY_MS 1000   /* periodic re-publication of the ring */
#define REG_SAVE_EVERY_MS    5000   /* periodic write of heartbeat times */
#define REG_TICK_MS          100    /* liveness sweep and housekeeping timer */

typedef struct {
    const char *bind;         /* ROUTER endpoint, e.g. "tcp://127.0.0.1:7100" */
    const char *pub_bind;     /* PUB endpoint; also advertised to clients, so connectable */
    const char *database_url; /* libpq conninfo (logged only masked) */
    int64_t dead_after_ms;    /* heartbeat silence after which a node is dead */
} reg_config_t;

typedef struct reg_server_t reg_server_t;

/* Blocking (call before the loop runs): restores membership and the epoch
   from Postgres, binds both sockets and starts the persistence thread.
   cfg is copied. NULL on failure, with the reason logged. */
reg_server_t *reg_server_new(const reg_config_t *cfg);
/* Detaches nothing (destroy the loop first or together), closes the
   sockets, stops the persistence thread; nulls *self_p; accepts NULL. */
void reg_server_destroy(reg_server_t **self_p);
/* Registers the ROUTER reader and the housekeeping timer on loop (borrowed;
   it must outlive the server's use of it). 0 or -1. */
int reg_server_attach(reg_server_t *self, zloop_t *loop);
/* The current ring epoch. */
uint64_t reg_server_epoch(const reg_server_t *self);

/* zactor body running a whole registry on its own zloop, for embedding
   (tests): args is a const reg_config_t * valid until the actor signals.
   Stops on $TERM. When the server cannot start, the actor ends at once. */
void reg_server_actor(zsock_t *pipe, void *args);

#endif
