/*  node_runtime — the life of an actor: activation, the mailbox pump, commit
    outcomes, reloads, drops and passivation. Loop thread only. */
#ifndef BICKY_NODE_RUNTIME_H
#define BICKY_NODE_RUNTIME_H

#include "node/placement/node_placement.h"

/* ---- actor runtime (node_runtime.c) ------------------------------------------------------ */

/* Delivers a conversation-bound request to its actor (activating it). Takes req. */
void node_actor_deliver(node_t *node, node_req_t *req);
/* A conversation-bound read: activates the conversation's actor when none is
   resident (so a conversation left mid-turn by a lost node is recovered), unless the
   team already has max resident actors here. */
void node_actor_warm(node_t *node, const uint8_t team[16], const uint8_t conv[16], uint32_t max);
/* Processes what the actor can process now (mailbox, turn ends, turn starts). */
void node_actor_pump(node_t *node, node_actor_t *actor);
/* Forgets the actor's state and reloads it from Postgres (keeps the mailbox). */
void node_actor_reload(node_t *node, node_actor_t *actor);
/* Answers every waiting request with 503 and frees the actor (or dooms it when
   database work is in flight). */
void node_actor_drop(node_t *node, node_actor_t *actor, const char *why);
/* Passivation sweep: frees actors idle for --actor-idle-s. */
void node_actors_sweep(node_t *node);

/* Group commit outcome of one of an actor's write sets (node_runtime.c). */
void node_actor_committed(node_t *node, node_ws_t *ws, node_ws_outcome_t outcome);

/* The turn engine as the runtime drives it: node/turns implements it (node_turn_engine)
   and node_server.c installs it as node->engine. Loop thread only. */
struct node_engine_t {
    /* The conversation's stored strategy is known (activation, or a write set it). */
    void (*strategy_known)(node_t *node, node_actor_t *actor, const char *strategy);
    /* The freshly loaded actor's stored status says a turn was running or waiting. */
    bool (*recover_needed)(const node_actor_t *actor);
    /* Recovers that turn (the actor stays LOADING meanwhile). */
    void (*recover_start)(node_t *node, node_actor_t *actor);
    /* Applies a committed write set's plan to the actor's turns. */
    void (*apply)(node_t *node, node_actor_t *actor, node_plan_t *plan);
    /* Builds and submits a write the actor's turns owe; true when one was submitted. */
    bool (*pending_write)(node_t *node, node_actor_t *actor);
    /* Frees the actor's turn state (and stops its strategy). */
    void (*release)(node_t *node, node_actor_t *actor);
};

/* The actor lifecycle as node/placement needs it (node_runtime_actors). */
extern const node_actor_life_t node_runtime_actors;

#endif
