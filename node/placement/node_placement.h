/*  node_placement — which conversations this node may run: the registry client
    and the ring (ownership by consistent hashing), the ownership fence in Postgres
    (claims at activation, a guard in every group commit), and the hand-off of
    actors when the ring changes. docs/placement.md. Loop thread only. */
#ifndef BICKY_NODE_PLACEMENT_H
#define BICKY_NODE_PLACEMENT_H

#include "node/store/node_store.h"

#define NODE_REG_TICK_MS   250  /* registry client timer */
#define NODE_REG_HEARTBEAT 1000 /* heartbeat period */
#define NODE_REG_TIMEOUT   1000 /* no answer within this → next registry */
#define NODE_REG_MAX       8    /* registries in --registry */

typedef enum { NODE_OWNER_SELF, NODE_OWNER_OTHER, NODE_OWNER_NONE } node_owner_t;

/* node_registry.c — registry client and ring. */
node_reg_t *node_reg_new(node_t *node);
void node_reg_destroy(node_reg_t **self_p);
/* Which node owns conv at the node's epoch. */
node_owner_t node_ring_owner(node_t *node, const uint8_t conv[16]);
/* Installs a ring: nodes (alive ones are kept, sorted by id) at epoch. -1 on bad input. */
int node_ring_apply(node_t *node, const proto_node_t *nodes, size_t n, uint64_t epoch);
/* A request carried a newer epoch than ours: ask the registry for the ring. */
void node_reg_epoch_hint(node_t *node, uint64_t epoch);
/* Our ring is probably stale (a fence refused us): ask the registry for the ring now
   (at most every 200 ms). No-op when standalone. */
void node_reg_refresh(node_t *node);
/* Nodes that may still hold conversations (state alive or draining in our ring), as a
   Postgres text[] literal; "{}" when standalone or before the first ring. Borrowed. */
const char *node_reg_live(const node_t *node);

/* ---- single activation (node_fence.c) and hand-off (node_handoff.c) ---------------------
   docs/placement.md. A conversation's actor may write only while this node holds its row
   (conversation_owners: node_id, epoch) claimed at activation; every group-commit write set
   re-checks it (FOR SHARE) in the same transaction. */

#define NODE_CLAIM_RETRY_MS 100  /* a claim waiting for the previous owner's release */
#define NODE_CLAIM_WAIT_MS  5000 /* ... gives up (503) after this long */
#define NODE_CLAIM_CHUNK    1000 /* activations claimed per statement (and transaction) */

/* What the fence does to actors it must give up or reload; node/runtime implements it. */
typedef struct {
    /* Answers the waiting requests 503 (why) and frees the actor, or dooms it while
       database work is in flight. */
    void (*drop)(node_t *node, node_actor_t *actor, const char *why);
    /* Forgets the actor's state and loads it again (keeps the mailbox). */
    void (*reload)(node_t *node, node_actor_t *actor);
} node_actor_life_t;

/* Creates the fence; life (borrowed) drops and reloads actors. NULL on OOM. */
node_fence_t *node_fence_new(node_t *node, const node_actor_life_t *life);
/* Drops / reloads an actor through the fence's node_actor_life_t. */
void node_fence_drop(node_t *node, node_actor_t *actor, const char *why);
void node_fence_reload(node_t *node, node_actor_t *actor);
void node_fence_destroy(node_fence_t **self_p);
/* The fence as the group commit's guard (node_store.h node_guard_t). */
extern const node_guard_t node_fence_guard;
/* Activation (node_fence_claim.c): takes the actor's load batch (*load_p, nulled) and
   sends it, with done(arg), right after the actor's claim, so the state loaded is the one
   left by the previous owner. Claims are grouped like commits: those made while a claim
   statement is in flight go together (one statement per NODE_CLAIM_CHUNK, one
   transaction) when it completes, or at the end of the loop turn when none is. */
void node_fence_claim(
    node_t *node, db_batch_t **load_p, node_actor_t *actor, db_batch_fn *done, void *arg);
/* Activation done (first thing in the load callback). Returns true when the fence took
   the actor over: its claim must wait for the previous owner (state LOADING, retried) or
   our ring is stale (mailbox answered MOVED, actor freed). The caller must then not
   touch the actor. */
bool node_fence_loaded(node_t *node, node_actor_t *actor, db_status_t status, const char *sqlstate);
/* The actor is being freed: its claim row is deleted (batched, at the end of the loop
   turn, before any later claim). */
void node_fence_release(node_t *node, node_actor_t *actor);
/* Sends the pending releases now (called before claims and group commits). */
void node_fence_flush(node_t *node);
/* Group commit: adds the ownership guard of ws to batch (before ws's statements); cb(arg)
   gets its result. Returns 1 when added, 0 when ws needs none (it creates the
   conversation and claims it itself), -1 on OOM. */
int node_fence_add_guard(
    node_t *node, db_batch_t *batch, const node_ws_t *ws, db_stmt_fn *cb, void *arg);
/* Group commit: adds the guards of the write sets from head (linked by next) to batch.
   With more than one to guard they go as one statement without a callback: its failure
   is not attributed, so the group is re-run set by set, each with its own guard. One
   alone gets node_fence_add_guard with cb(ws). 0, or -1 on OOM. */
int node_fence_add_guards(node_t *node, db_batch_t *batch, node_ws_t *head, db_stmt_fn *cb);
/* A write set creating the conversation: appends the claim insert. -1 on OOM. */
int node_fence_add_own(node_t *node, node_ws_t *ws);
/* ws committed: a create's claim is now held. */
void node_fence_committed(node_t *node, const node_ws_t *ws);
/* ws failed its guard (another node holds the conversation): answers its request and
   the actor's mailbox MOVED and asks for the ring; the caller then drops the actor. */
void node_fence_lost(node_t *node, node_ws_t *ws);
/* Hand-off progress, kept by the fence for node_handoff.c. */
typedef struct {
    int timer;        /* progress timer while actors finish, -1 none */
    int64_t since_ms; /* mono ms of the ring change that started it */
    size_t released;  /* actors given up so far */
} node_handoff_t;
node_handoff_t *node_fence_handoff(node_t *node);
/* fence_epoch values from NODE_FENCE_VERDICTS up are a claim's outcome, not a claim. */
#define NODE_FENCE_VERDICTS (UINT64_MAX - 2)
static inline bool node_fence_held(uint64_t fence_epoch)
{
    return fence_epoch != 0 && fence_epoch < NODE_FENCE_VERDICTS;
}
/* Before claims: the cleanup of an earlier run of our id, then the pending releases. */
void node_fence_prepare(node_t *node);
/* The activation claims of the fence (node_fence_claim.c): batching, waits, retries. */
typedef struct node_claims_t node_claims_t;
node_claims_t *node_claims_new(node_t *node);
/* Fails the loads still held (their callbacks run with DB_ERR_CONN), frees. */
void node_claims_destroy(node_claims_t **self_p);
/* The actor is being freed: it waits for no claim any more. */
void node_claims_forget(node_claims_t *self, const node_actor_t *actor);
node_claims_t *node_fence_claims(node_t *node);
/* Ring changed: actors we no longer own answer their waiting requests MOVED; idle ones
   are freed now (claims released), busy ones after their in-flight commit / running
   turn. Logs the hand-off's progress until no such actor is left. */
void node_handoff_rehome(node_t *node);
/* The Postgres uuid[] literal of ids[0..n); malloc'd, NULL on OOM (node_fence.c). */
char *node_uuid_array(const uint8_t (*ids)[16], size_t n);

#endif
