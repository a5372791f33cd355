/*  reg_store — the registry's Postgres side: leader election and the
    persistence of membership (tables nodes and ring_state). A reg_store_t
    owns a zactor thread with one libpq session. While that session does not
    hold the advisory lock REG_STORE_LOCK_KEY the registry is a standby: the
    thread tries pg_try_advisory_lock every REG_STORE_RETRY_MS. Once it holds
    the lock it loads membership, bumps the epoch and reports ACTIVE; from
    then on it checks the session every REG_STORE_RETRY_MS and reports
    STANDBY as soon as the session (hence the lock) is lost. Every epoch bump
    runs on that same session, so only the lock holder can bump: two
    registries never hand out epochs at once. On a clean shutdown the
    active one unlocks before it disconnects, so a successor started right
    after takes over on its first attempt.
    The same session answers the loop's token checks (admin requests a
    gateway forwards with its caller's API token).
    The loop thread calls new/destroy/sock/recv/save/check_token; it never
    waits on the database (neither call blocks, events arrive on
    reg_store_sock). */
#ifndef BICKY_REG_STORE_H
#define BICKY_REG_STORE_H

#include "registry/reg_members.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REG_STORE_LOCK_KEY INT64_C(0x6269636b79526567) /* "bickyReg": held by the active */
#define REG_STORE_RETRY_MS 500  /* lock attempt (standby) / session check (active) period */
#define REG_STORE_QUERY_MS 2000 /* client-side deadline of every query */
/* Server-side idle_session_timeout of the lock session. An active registry
   talks to Postgres at least every RETRY_MS and demotes itself when a query
   gets no answer within QUERY_MS, i.e. at most RETRY_MS + QUERY_MS after it
   last heard from the server; the server ends a silent session (frozen or
   cut-off registry) after IDLE_KILL_MS, later than that, and only then can
   a standby get the lock. */
#define REG_STORE_IDLE_KILL_MS 5000

/* What Postgres says of an API token forwarded by a gateway with an admin request. */
typedef enum {
    REG_TOKEN_ADMIN = 1, /* live (not revoked) and api_tokens.admin */
    REG_TOKEN_NOT_ADMIN, /* live, but not an admin token */
    REG_TOKEN_UNKNOWN,   /* no such token, or revoked */
    REG_TOKEN_ERROR,     /* not checked: no session (standby, database away) or the query failed */
} reg_token_result_t;

typedef struct {
    uint64_t check_id;         /* the loop's id of the check */
    reg_token_result_t result; /* the answer */
    char id[37];               /* api_tokens.id ("" unless ADMIN or NOT_ADMIN) */
    char team_id[37];          /* its team's id */
    char team[101];            /* its team's name */
} reg_token_t;

typedef enum {
    REG_STORE_ACTIVE = 1, /* the lock is ours: members and epoch are loaded */
    REG_STORE_STANDBY,    /* the lock is not ours (first attempt failed, or it was lost) */
    REG_STORE_SAVED,      /* a save finished, well or not */
    REG_STORE_REVOKED,    /* a token was revoked (active only): revoked_seq, token_sha256 */
    REG_STORE_REVSEQ,     /* the revocation counter (at activation, and whenever it moved) */
    REG_STORE_TOKEN,      /* the answer to reg_store_check_token: token */
} reg_store_event_type_t;

typedef struct {
    reg_store_event_type_t type; /* what happened */
    uint64_t generation;         /* activation it belongs to (1, 2, …; 0 before the first) */
    reg_members_t *members;      /* ACTIVE: the restored table (owned by the receiver) */
    uint64_t epoch;              /* ACTIVE: the epoch after the takeover bump;
                                    SAVED: the bumped epoch, 0 when not bumped */
    uint64_t version;            /* SAVED: members version that was written */
    bool ok;                     /* SAVED: written and committed */
    uint64_t revoked_seq;        /* REVOKED, REVSEQ: the revocation counter */
    char token_sha256[65];       /* REVOKED: the revoked token's SHA-256 hex */
    reg_token_t token;           /* TOKEN: the check's answer */
} reg_store_event_t;

typedef struct reg_store_t reg_store_t;

/* Starts the thread (conninfo is copied). Restored nodes are given a grace
   period of dead_after_ms. The thread connects and makes its first lock
   attempt at once; its first event is ACTIVE or STANDBY. NULL on failure
   (logged). */
reg_store_t *reg_store_new(const char *conninfo, int64_t dead_after_ms);
/* Stops the thread (it writes a queued save first when it still holds the
   lock; closing its session releases the lock), frees everything and nulls
   *self_p; accepts NULL. Returns within about REG_STORE_QUERY_MS. */
void reg_store_destroy(reg_store_t **self_p);
/* The socket to watch for events (borrowed; readable when one waits). */
zsock_t *reg_store_sock(reg_store_t *self);
/* Reads one waiting event without blocking. 0 with *ev filled, -1 when none.
   An ACTIVE event's members belong to the caller; they are NULL when
   memory ran out (the caller cannot serve: it should exit, which gives the
   lock back). */
int reg_store_recv(reg_store_t *self, reg_store_event_t *ev);
/* Queues a copy of members for writing in one statement: every node (state
   per reg_node_stored_state), deletion of the others, and with bump also
   ring_state.epoch + 1, whose new value comes back in the SAVED event.
   Ignored by the thread unless generation is its current activation. Never
   blocks: -1 when the queue is full or memory ran out (try again later). */
int reg_store_save(reg_store_t *self, const reg_members_t *members, uint64_t generation, bool bump);
/* Queues a check of the API token whose SHA-256 hex is sha256 (borrowed, 64 characters):
   the thread reads api_tokens (and the team's name) on its session and answers with a
   TOKEN event carrying check_id. Never blocks: -1 when the queue is full. */
int reg_store_check_token(reg_store_t *self, uint64_t check_id, const char *sha256);

#endif
