/*  registry_internal — declarations shared inside registry/ only:
    reg_db (reg_store_db.c), the libpq session of the store thread, and the
    server object shared by reg_server.c, reg_server_role.c and
    reg_server_reply.c. Not for bickyctl or other components. */
#ifndef BICKY_REGISTRY_INTERNAL_H
#define BICKY_REGISTRY_INTERNAL_H

#include "proto/proto.h"
#include "registry/reg_members.h"
#include "registry/reg_pending.h"
#include "registry/reg_server.h"
#include "registry/reg_store.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- reg_db: one blocking libpq session with client-side deadlines ------
   Store thread only. Every call waits at most REG_STORE_QUERY_MS for
   Postgres; after a timeout or a broken connection the session is unusable
   (reg_db_usable is false) and must be closed, which also releases the
   advisory lock when the server notices. Errors go to err as one line. */
typedef struct reg_db_t reg_db_t;

/* Connects (connect_timeout 2 s). NULL with err on failure. */
reg_db_t *reg_db_connect(const char *conninfo, char *err, size_t errlen);
/* Closes the session (releasing its locks) and nulls *self_p; accepts NULL. */
void reg_db_close(reg_db_t **self_p);
/* False once a call timed out or the connection broke. */
bool reg_db_usable(const reg_db_t *self);
/* pg_try_advisory_lock(REG_STORE_LOCK_KEY): 1 acquired, 0 held by another
   session, -1 on error. Call only while not holding it (the lock nests). */
int reg_db_try_lock(reg_db_t *self, char *err, size_t errlen);
/* pg_advisory_unlock(REG_STORE_LOCK_KEY): 0 once the server has released
   it (so a successor can take it at once), -1 with err. */
int reg_db_unlock(reg_db_t *self, char *err, size_t errlen);
/* 0 when this session still holds the lock, -1 (with err) otherwise. */
int reg_db_check_lock(reg_db_t *self, char *err, size_t errlen);
/* Takeover, holding the lock: reads every row of nodes into a new heap
   array (*nodes_p, freed by the caller; *count rows) and bumps
   ring_state.epoch (creating the row if needed) into *epoch. 0 or -1. */
int reg_db_take_over(
    reg_db_t *self, reg_node_t **nodes_p, size_t *count, uint64_t *epoch, char *err, size_t errlen);
/* LISTEN bicky_token_revoked on the session, then reads the revocation counter into *seq.
   0, or -1 with err. */
int reg_db_listen(reg_db_t *self, uint64_t *seq, char *err, size_t errlen);
/* Reads the revocation counter (table token_revocations). 0, or -1 with err. */
int reg_db_revoked_seq(reg_db_t *self, uint64_t *seq, char *err, size_t errlen);
/* Reads the API token whose SHA-256 hex is sha256 (live rows only, with its team's name)
   into out (result ADMIN, NOT_ADMIN or UNKNOWN). 0, or -1 with err. */
int reg_db_token(reg_db_t *self, const char *sha256, reg_token_t *out, char *err, size_t errlen);
/* The session's socket (poll it for notifications), -1 when there is none. */
int reg_db_socket(const reg_db_t *self);
/* One revocation notification: the counter after it and the token's SHA-256 hex. */
typedef void(reg_db_revoked_fn)(void *arg, uint64_t seq, const char *token_sha256);
/* Reads what arrived on the socket without blocking and calls fn for every revocation
   notification. 0, or -1 when the session broke. */
int reg_db_notifies(reg_db_t *self, reg_db_revoked_fn *fn, void *arg);
/* Writes nodes[count] in one statement: upserts each (reg_node_stored_state),
   deletes every other row, and when bump is true also adds 1 to
   ring_state.epoch and stores the new value in *epoch (else *epoch = 0).
   0 or -1. */
int reg_db_write(reg_db_t *self,
                 const reg_node_t *nodes,
                 size_t count,
                 bool bump,
                 uint64_t *epoch,
                 char *err,
                 size_t errlen);

/* ---- the server object ----------------------------------------------------
   Loop thread only. While standby, members is NULL and epoch is 0; every
   request is answered with a standby reg_ack. While active, epoch is the
   last epoch Postgres handed out for a stored membership (saved_version);
   changes since then wait for their own epoch before anyone sees them in a
   ring, and the replies to the requests that made them wait with them. */
typedef struct {
    proto_node_t *nodes; /* the ring message's nodes, id order (heap) */
    size_t count;        /* nodes */
} reg_view_t;

/* An admin request forwarded by a gateway with its caller's API token, waiting
   for the store thread to check that token (reg_server_admin.c). */
#define REG_CHECKS_MAX    64   /* token checks waiting at once; beyond that 503 */
#define REG_CHECK_WAIT_MS 3000 /* a check unanswered this long gets 503 */

typedef struct {
    uint64_t id;              /* check id (0: free slot) */
    zframe_t *peer;           /* ROUTER identity of the requester (owned) */
    uint64_t req_id;          /* echoed */
    char action[16];          /* drain | undrain */
    char node_id[REG_ID_MAX]; /* the node acted on */
    int64_t since_ms;         /* monotonic time the check was asked */
} reg_check_t;

struct reg_server_t {
    char *pub_ep;              /* advertised PUB endpoint (cfg->pub_advertise or the bound one) */
    char *bind_ep;             /* ROUTER endpoint (copy of cfg->bind), for logs */
    int64_t dead_after_ms;     /* from the config */
    zsock_t *router;           /* requests from nodes, gateways, bickyctl */
    zsock_t *pub;              /* ring updates, topic "ring" (active only) */
    reg_store_t *store;        /* election and persistence thread */
    reg_pending_t *pending;    /* replies waiting for their change to be stored */
    reg_members_t *members;    /* membership; NULL while standby */
    bool active;               /* holds the lock (per the store's last event) */
    uint64_t generation;       /* the store activation this loop follows */
    uint64_t epoch;            /* published ring epoch; 0 while standby */
    uint64_t saved_version;    /* members version that epoch stands for */
    reg_view_t frozen;         /* the ring at epoch, served while newer changes wait */
    bool inflight;             /* a save is with the store thread */
    uint64_t inflight_version; /* members version of that save */
    bool inflight_bump;        /* that save asks for a new epoch */
    reg_view_t candidate;      /* the ring at inflight_version (when bumping) */
    char reason[96];           /* changes since the last save was queued, for the log */
    char inflight_reason[96];  /* the same for the save in flight */
    int64_t next_publish_ms;   /* next periodic ring publication (monotonic) */
    int64_t last_tick_ms;      /* when the liveness sweep last ran (monotonic; 0: not yet) */
    uint64_t revoked_seq;      /* token revocation counter, in every ring (0 = not known) */
    int64_t next_save_ms;      /* next periodic snapshot (monotonic) */
    int64_t save_backoff_ms;   /* no save before this, after a failed one (monotonic) */
    keys_t *keys;              /* CURVE and roles (borrowed); NULL = insecure */
    zactor_t *mon_router;      /* refused handshakes on router (CURVE only) */
    zactor_t *mon_pub;         /* refused handshakes on pub (CURVE only) */
    reg_check_t checks[REG_CHECKS_MAX]; /* admin requests waiting for their token check */
    uint64_t next_check_id;             /* last check id handed out */
};

/* reg_server_role.c: the store's events and the save cycle. */
/* Handles every waiting store event; -1 only on a fatal error. */
int reg_server_on_store_events(reg_server_t *self);
/* A membership change (reason and node_id borrowed, for the log): queue it
   for storage and a new epoch. */
void reg_server_changed(reg_server_t *self, const char *reason, const char *node_id);
/* Queues a save when one is due and none is in flight. */
void reg_server_maybe_save(reg_server_t *self);
/* Publishes the ring at epoch on PUB (active only). */
void reg_server_publish(reg_server_t *self);
/* Fills msg as a PROTO_RING at epoch. msg->nodes is heap (the caller frees
   it); msg->pub is borrowed from self. -1 on OOM. */
int reg_server_ring_msg(reg_server_t *self, uint64_t req_id, proto_msg_t *msg);
/* Frees a view's nodes and zeroes it. */
void reg_view_free(reg_view_t *view);

/* reg_server_reply.c: request handlers. */
/* Handles one decoded request from peer (borrowed). */
void reg_server_dispatch(reg_server_t *self,
                         zframe_t *peer,
                         const proto_msg_t *msg,
                         const keys_peer_t *who);
/* Sends the reply a pending entry waits for (now, with the current epoch). */
void reg_server_answer(reg_server_t *self, reg_reply_t *reply);
/* Sends a standby reg_ack for req_id to peer (borrowed). */
void reg_server_standby_ack(reg_server_t *self, zframe_t *peer, uint64_t req_id);
/* Sends an admin_rep (error and state borrowed, may be NULL) to peer (borrowed). */
void reg_server_admin_rep(reg_server_t *self,
                          zframe_t *peer,
                          uint64_t req_id,
                          uint64_t status,
                          const char *error,
                          const char *state);
/* Holds the reply to a request that changed membership until the change is
   stored (peer borrowed; reply copied). */
void reg_server_hold(reg_server_t *self, zframe_t *peer, reg_reply_t *reply);

/* reg_server_admin.c: drain, undrain, remove. */
/* Handles an admin request the sender's role allows (reg_server_reply.c checked it):
   acts at once for an admin key (or without keys and without a token); with a
   token (from a gateway), acts only once the store thread has found it live and
   admin. peer and msg borrowed. */
void reg_server_admin(reg_server_t *self,
                      zframe_t *peer,
                      const proto_msg_t *msg,
                      const keys_peer_t *who);
/* The store thread's answer to a token check (REG_STORE_TOKEN). */
void reg_server_on_token(reg_server_t *self, const reg_token_t *tok);
/* Answers 503 to the checks asked before before_ms (every tick; INT64_MAX: all of them,
   at shutdown) and frees their slots. */
void reg_server_checks_expire(reg_server_t *self, int64_t before_ms);

#endif
