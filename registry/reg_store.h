/*  reg_store — persistence of the registry's membership (tables nodes and
    ring_state). reg_store_load is a blocking read used once before the loop
    starts. After that a reg_store_t owns a zactor thread with its own
    blocking libpq connection (statement_timeout 2 s): the loop hands it
    snapshots of the table without ever waiting; the thread writes only the
    newest one, retries a failed write every second, and honours $TERM
    within a few seconds. new/destroy/save: the loop thread only.
    (The registry's only libpq code lives here, as db_ code does elsewhere.) */
#ifndef BICKY_REG_STORE_H
#define BICKY_REG_STORE_H

#include "registry/reg_members.h"

#include <stddef.h>
#include <stdint.h>

typedef struct reg_store_t reg_store_t;

/* Blocking: reads nodes and the epoch into members (which should be empty).
   Every node restarts its heartbeat clock at now_ms (a full grace period).
   Because a crash can lose the last epoch written, the epoch resumes one
   above the stored value, and that value is written before returning, so
   no epoch is ever published twice. 0, or -1 with a reason in err. */
int reg_store_load(
    const char *conninfo, reg_members_t *members, int64_t now_ms, char *err, size_t errlen);

/* Starts the writer thread (conninfo is copied; it connects lazily).
   NULL on failure (logged). */
reg_store_t *reg_store_new(const char *conninfo);
/* Stops the thread (after one last write of a pending snapshot when it is
   connected), frees everything and nulls *self_p; accepts NULL. */
void reg_store_destroy(reg_store_t **self_p);
/* Queues a copy of members (every node and the epoch) for writing. Never
   blocks: returns -1 when the thread's queue is full (try again later). */
int reg_store_save(reg_store_t *self, const reg_members_t *members);

#endif
