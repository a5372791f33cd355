/*  node_perm — permission requests: a tool call waits for a human (or a remembered
    rule) before it runs; requests, rules, decisions, expiry and the recovery of a
    turn left waiting. Loop thread only. */
#ifndef BICKY_NODE_PERM_H
#define BICKY_NODE_PERM_H

#include "node/turns/node_turns.h"

/* ---- permissions (node_perm.c) ----------------------------------------------------------- */

/* Appends a new event with the next seq: NODE_Q_EVT_PERM embeds permission perm_id
   as action.request. Returns the statement index or -1. */
int node_ws_event_perm(node_ws_t *ws,
                       const char *type,
                       const char *source,
                       const char *action,
                       const uint8_t perm_id[16]);

/* Specificity of pattern for tool name: -1 no match, else higher = more specific
   ("*" 0, "prefix*" 1 + prefix length, exact 10000). Pure. */
int node_perm_match(const char *pattern, const char *tool);
/* True when pattern is a valid rule pattern ("*", "name", "prefix*"; [A-Za-z0-9_.:-]). */
bool node_perm_pattern_valid(const char *pattern);
/* Decides name by rules (array of {id, scope, tool_pattern, decision}): the most
   specific match, conversation scope first, deny on a tie. Returns 1 allow, -1 deny,
   0 no rule; the rule id is copied to rule_id (40 bytes). Pure. */
int node_perm_decide(const json_t *rules, const char *name, char rule_id[40]);
/* Reads the rules and decides every call of the step (phase RULES → STEP). */
void node_perm_load_rules(node_run_t *run);
/* Called on the loop with the rules of run's conversation and team (an array,
   borrowed), or NULL when they could not be read; only while run has an actor. */
typedef void(node_rules_fn)(node_run_t *run, const json_t *rules);
/* Starts reading the rules (run is referenced until done). -1 when the read
   cannot start; done is then never called. */
int node_perm_read_rules(node_run_t *run, node_rules_fn *done);
/* Adds the permission request of call c (a row and permission.requested) to ws. */
void node_perm_add_request(node_ws_t *ws, node_run_t *run, node_call_t *c);
/* Adds permission.decided for call c, which a rule decided (no request row). */
void node_perm_add_rule_event(node_ws_t *ws, node_run_t *run, const node_call_t *c);
/* Builds the step write (phase STEP). True when submitted. */
bool node_perm_step_write(node_t *node, node_run_t *run);
/* The step write committed: requests pending, rule-allowed tools started. */
void node_perm_step_committed(node_run_t *run);
/* Builds the expiry write of the first expired request. True when submitted. */
bool node_perm_expire_write(node_t *node, node_run_t *run);
/* Index of the call waiting on permission perm_id, or -1. */
int node_perm_call_of(const node_run_t *run, const uint8_t perm_id[16]);
/* Adds the denial of every pending request of run to ws (turn end). */
int node_perm_add_end(node_ws_t *ws, node_run_t *run, node_end_t how);
/* Marks requests past their expiry (timer). */
void node_perm_tick(node_run_t *run, int64_t now_wall_ms);
/* Registers the permission statements. */
int node_perm_sql_prepare(db_conn_t *db);

/* The decision of perm.decide, built by node_ops_perm.c. */
typedef struct {
    uint8_t perm_id[16];         /* the request */
    bool approve;                /* approve or deny */
    const char *remember;        /* "conversation" | "team" | NULL */
    const json_t *updated_input; /* approve: replacement arguments, or NULL */
    const char *reason;          /* deny: reason, or NULL */
    const char *tool_name;       /* the request's tool (for remember) */
} node_decision_t;

/* Builds and submits the write of a decision of a pending request (req answered on
   commit with the decided request). Takes req. */
void node_perm_decide_write(node_t *node,
                            node_actor_t *actor,
                            node_req_t *req,
                            const node_decision_t *d);
/* The decision write committed: answers, then runs or records the call. */
void node_perm_decide_committed(node_t *node, node_actor_t *actor, node_plan_t *plan);

#define NODE_Q_RULES         "node_rules"
#define NODE_Q_PERM_INSERT   "node_perm_insert"
#define NODE_Q_PERM_DECIDE   "node_perm_decide"
#define NODE_Q_PERM_ROW      "node_perm_row"
#define NODE_Q_PERM_GET      "node_perm_get"
#define NODE_Q_PERM_LIST     "node_perm_list"
#define NODE_Q_PERM_TURN     "node_perm_turn"
#define NODE_Q_PERM_SWEEP    "node_perm_sweep"
#define NODE_Q_EVT_PERM      "node_evt_perm"
#define NODE_Q_RULE_REMEMBER "node_rule_remember"

/* A permission request (API.md Permission request, plus tool_use_id and updated_input). */
#define NODE_PERM_JSON(p)                                                                          \
    "json_build_object('id', " p ".id, 'conversation_id', " p ".conversation_id, 'message_id', " p \
    ".message_id, 'tool_name', " p ".tool_name, 'tool_use_id', " p ".tool_use_id, 'arguments', " p \
    ".arguments, 'description', " p ".description, 'status', " p                                   \
    ".status, 'decided_at', " NODE_TS(                                                             \
        p ".decided_at") ", 'reason', " p ".reason, 'updated_input', " p                           \
                         ".updated_input, 'created_at', " NODE_TS(                                 \
                             p ".created_at") ", 'expires_at', " NODE_TS(p ".expires_at") ")"

#endif
