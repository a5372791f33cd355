/*  node_ops — the API operations: the op table, dispatch of requests from the
    gateways, and one file per resource (conversations, messages, reads,
    permissions, worktrees with their queue). Loop thread only. */
#ifndef BICKY_NODE_OPS_H
#define BICKY_NODE_OPS_H

#include "node/strategies/node_strategies.h"

/* Handles one received message from a ROUTER, sock (borrowed; the reply goes
   there), sent by who (its certificate, when CURVE is on). Takes identity and
   msg contents. With CURVE, API ops are for gateway keys on the main ROUTER
   and permission.ask is for the local socket; anything else is refused (403)
   and logged. */
void node_dispatch(
    node_t *node, zsock_t *sock, zframe_t **identity_p, proto_msg_t *msg, const keys_peer_t *who);

/* ---- ops (node_ops_*.c) ------------------------------------------------------------------ */

/* The op table and its lookup (NULL when unknown). */
const node_op_t *node_op_find(const char *name);

void node_op_auth(node_t *node, node_req_t *req);
void node_op_status(node_t *node, node_req_t *req);
void node_op_conv_list(node_t *node, node_req_t *req);
void node_op_events_list(node_t *node, node_req_t *req);
void node_op_conv_get(node_t *node, node_req_t *req);
void node_op_msg_list(node_t *node, node_req_t *req);
void node_op_conv_create(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_patch(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_delete(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_cancel(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_msg_post(node_t *node, node_actor_t *actor, node_req_t *req);

/* What the op table cannot check of obj's conversation fields (create, patch): NULL, or
   "strategy" when it is not one this node runs. */
const char *node_conv_check_create(const json_t *obj);
/* Adds the conversation insert (+ worktree check) and conversation.created for the
   (validated) fields of obj. Returns 0 or -1 (OOM). */
int node_conv_add_create(node_t *node, node_ws_t *ws, const json_t *obj);

/* ---- worktrees (node_wt_queue.c, node_ops_wt.c) ------------------------------------------ */

/* A worktree create or removal, serialised per repository (node_wt_queue.c). */
typedef struct node_wt_op_t node_wt_op_t;
/* A create of branch at base (NULL = HEAD) under a new id; NULL on OOM. */
node_wt_op_t *node_wt_op_create(const char *branch, const char *base);
/* A removal of worktree id (row: its stored JSON, copied; force: even when dirty). */
node_wt_op_t *node_wt_op_delete(const char *id, bool force, const char *row);
/* Queues op (taken) for req (taken); req is answered when op is done. */
void node_wt_enqueue(node_t *node, node_req_t *req, node_wt_op_t *op);
/* The queue of the node (node_agents_new / destroy); the retry tick. */
int node_wt_init(node_agents_t *agents);
void node_wt_destroy(node_agents_t *agents);
void node_wt_tick(node_agents_t *agents);
/* Registers the worktree statements (node_ops_wt.c). */
int node_wt_sql_prepare(db_conn_t *db);
#define NODE_Q_WT_INSERT "node_wt_insert"
#define NODE_Q_WT_REMOVE "node_wt_remove"
#define NODE_Q_WT_ROW    "node_wt_row"
#define NODE_Q_WT_LIST   "node_wt_list"
#define NODE_Q_WT_EVT    "node_wt_evt"
#define NODE_Q_WT_LOCK   "node_wt_lock"
#define NODE_Q_WT_UNLOCK "node_wt_unlock"
#define NODE_Q_WT_COUNT  "node_wt_count"

/* ---- ops (node_ops_perm.c, node_ops_wt.c) ------------------------------------------------ */

void node_op_perm_list(node_t *node, node_req_t *req);
void node_op_perm_get(node_t *node, node_req_t *req);
void node_op_perm_decide(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_rule_list(node_t *node, node_req_t *req);
void node_op_wt_list(node_t *node, node_req_t *req);
void node_op_wt_get(node_t *node, node_req_t *req);
void node_op_wt_create(node_t *node, node_req_t *req);
void node_op_wt_delete(node_t *node, node_req_t *req);
void node_op_strategies(node_t *node, node_req_t *req);
/* Registers the statements of node_ops_perm.c. */
int node_ops_perm_sql_prepare(db_conn_t *db);

/* ---- events (event.get: node_ops_read.c; event.revert: node_ops_revert.c) ----------------- */

void node_op_event_get(node_t *node, node_req_t *req);
void node_op_event_revert(node_t *node, node_actor_t *actor, node_req_t *req);
/* Registers the statements of node_ops_revert.c. */
int node_ops_revert_sql_prepare(db_conn_t *db);
/* True when types is a comma list of event type names (letters, digits, '.', '_', '-';
   1–64 each), as events.list's types filter takes it (node_ops_read.c). */
bool node_event_types_ok(const char *types);

/* ---- actors of a conversation (node_ops_actors.c, issue 15) ------------------------------- */

void node_op_actor_list(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_actor_attach(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_actor_detach(node_t *node, node_actor_t *actor, node_req_t *req);
/* True when name is an observer name: 1–NODE_OBSERVER_NAME_MAX of a-z 0-9 _ -, a letter
   first, not "responder" (the conversation's own actor). */
bool node_actor_name_ok(const char *name);
/* Registers the statements of node_ops_actors.c. */
int node_ops_actors_sql_prepare(db_conn_t *db);

/* ---- rules and their team events (node_ops_rules.c) --------------------------------------- */

/* A rule as JSON (API.md Permission rule), built by Postgres from row r. */
#define NODE_RULE_JSON(r)                                                                          \
    "json_build_object('id', " r ".id, 'scope', " r ".scope, 'conversation_id', " r                \
    ".conversation_id, 'tool_pattern', " r ".tool_pattern, 'decision', " r                         \
    ".decision, 'created_at', " NODE_TS(r ".created_at") ")"
void node_op_rule_create(node_t *node, node_req_t *req);
void node_op_rule_delete(node_t *node, node_req_t *req);
/* event.revert_team: reverts a team event (permission_rule.created / .deleted). */
void node_op_event_revert_team(node_t *node, node_req_t *req);
/* Registers the statements of node_ops_rules.c. */
int node_ops_rules_sql_prepare(db_conn_t *db);

#endif
