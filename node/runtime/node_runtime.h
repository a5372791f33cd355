/*  node_runtime — the life of an actor: activation, the mailbox pump, commit
    outcomes, reloads, drops and passivation. Loop thread only. */
#ifndef BICKY_NODE_RUNTIME_H
#define BICKY_NODE_RUNTIME_H

#include "node/placement/node_placement.h"

/* ---- actor runtime (node_runtime.c) ------------------------------------------------------ */

/* Delivers a conversation-bound request to its actor (activating it). Takes req. */
void node_actor_deliver(node_t *node, node_req_t *req);
/* Processes what the actor can process now (mailbox, turn ends, turn starts). */
void node_actor_pump(node_t *node, node_actor_t *actor);
/* Forgets the actor's state and reloads it from Postgres (keeps the mailbox). */
void node_actor_reload(node_t *node, node_actor_t *actor);
/* Answers every waiting request with 503 and frees the actor (or dooms it when
   database work is in flight). */
void node_actor_drop(node_t *node, node_actor_t *actor, const char *why);
/* True when nothing is waiting, running or in flight for the actor. */
bool node_actor_quiescent(const node_actor_t *actor);
/* Passivation sweep: frees actors idle for --actor-idle-s. */
void node_actors_sweep(node_t *node);

/* Group commit outcome of one of an actor's write sets (node_runtime.c). */
void node_actor_committed(node_t *node, node_ws_t *ws, node_ws_outcome_t outcome);

/* Scheduler callback: an actor's wake-up is due. */
void node_actor_wake(node_t *node, node_actor_t *actor);

#endif
