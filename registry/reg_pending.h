/*  reg_pending — replies the active registry holds back until the
    membership change their request made is stored with its own epoch (so
    an ack's ring_epoch always covers the change, and an acknowledged drain
    survives a crash). A bounded FIFO in request order; entries older than
    their client's patience are dropped. Loop thread only. */
#ifndef BICKY_REG_PENDING_H
#define BICKY_REG_PENDING_H

#include "proto/proto.h"
#include "registry/reg_members.h"

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define REG_PENDING_MAX     4096 /* held replies; beyond that replies go out at once */
#define REG_PENDING_WAIT_MS 2000 /* a client gives up after 1 s; keep a margin, then drop */

typedef struct {
    proto_type_t type;        /* PROTO_REG_ACK or PROTO_ADMIN_REP */
    uint64_t req_id;          /* echoed */
    uint64_t version;         /* members version whose storage it waits for */
    int64_t since_ms;         /* monotonic time it was held */
    char node_id[REG_ID_MAX]; /* REG_ACK: whose state to report */
    uint64_t status;          /* ADMIN_REP: status code */
    zframe_t *peer;           /* ROUTER identity of the requester (owned) */
} reg_reply_t;

typedef struct reg_pending_t reg_pending_t;

/* An empty queue of at most max entries. NULL on OOM. */
reg_pending_t *reg_pending_new(size_t max);
/* Frees every entry and the queue; nulls *self_p; accepts NULL. */
void reg_pending_destroy(reg_pending_t **self_p);
/* Appends a copy of *reply, taking its peer frame (reply->peer is nulled).
   Versions must not decrease from one call to the next. -1 when full
   (nothing taken). */
int reg_pending_add(reg_pending_t *self, reg_reply_t *reply);
/* Moves the oldest entry whose version is <= version into *out (the caller
   then owns out->peer) and returns 0; -1 when there is none. With
   version UINT64_MAX it takes any entry. */
int reg_pending_pop(reg_pending_t *self, uint64_t version, reg_reply_t *out);
/* Drops entries held since before before_ms; returns how many. */
size_t reg_pending_expire(reg_pending_t *self, int64_t before_ms);
/* Entries held. */
size_t reg_pending_size(const reg_pending_t *self);

#endif
