/*  node_strategy — what drives a conversation's turns, behind one small
    interface used by node_turn.c: add the turn-context statement to a turn
    start, begin the turn once it is stored, build the writes the strategy
    owes (step ends, permission requests, tool results, the next model call),
    react to their commits, describe the turn's end, and stop. echo stays in
    node_echo.c; openai and anthropic are node_strat_llm.c; permissions are
    node_perm.c (the same for every strategy); tools run through node_tools.c
    on the agent pool. Also the node-wide agent state (config, pool, HTTP
    client, work dir, repository). Loop thread only, except where a comment
    says a function runs on a pool worker. */
#ifndef BICKY_NODE_STRATEGY_H
#define BICKY_NODE_STRATEGY_H

#include "common/cfg_file.h"
#include "node/agent/agent_claude.h"
#include "node/agent/agent_http.h"
#include "node/agent/agent_llm.h"
#include "node/agent/agent_pool.h"
#include "node/agent/agent_tools.h"
#include "node/node_internal.h"

#include <jansson.h>
#include <limits.h>

#define NODE_HISTORY_ROWS    400               /* messages loaded for a model's history */
#define NODE_HISTORY_BYTES   (4 * 1024 * 1024) /* content bytes loaded for a history */
#define NODE_RULES_MAX       1000              /* permission rules read per tool step */
#define NODE_AGENT_TICK_MS   500               /* permission expiry and worktree lock retries */
#define NODE_EXPIRE_SWEEP_S  5                 /* warm conversations with expired requests */
#define NODE_TOOL_RESULT_MAX (512 * 1024)      /* bytes of one tool result kept for the model */

/* What a committed strategy write was (node_plan_t.strat_op). */
typedef enum {
    NODE_SOP_NONE = 0,
    NODE_SOP_STEP,      /* a model call's tool calls: requests asked, rule decisions */
    NODE_SOP_DECIDE,    /* a decision from the API (strat_arg: call index or -1) */
    NODE_SOP_EXPIRE,    /* a request expired (strat_arg: call index) */
    NODE_SOP_TOOL_DONE, /* a tool result stored (strat_arg: call index) */
    NODE_SOP_NEXT,      /* the next model call's assistant message stored */
    NODE_SOP_RECOVER,   /* interrupted tool calls recorded after a restart */
    NODE_SOP_CLAUDE,    /* claude-code: requests, rule decisions, tool events */
} node_sop_t;

typedef enum {
    NODE_CALL_ASK = 0,  /* needs a permission request (step write) */
    NODE_CALL_ALLOW,    /* allowed by a rule (the step write starts it) */
    NODE_CALL_DENY,     /* refused by a rule, or not a tool of the strategy */
    NODE_CALL_PENDING,  /* request stored, waiting for a decision */
    NODE_CALL_RUNNING,  /* tool.started stored, running on the pool */
    NODE_CALL_FINISHED, /* result known, its write is owed */
    NODE_CALL_DONE,     /* result stored */
    NODE_CALL_NEW       /* claude-code: asked by the CLI, the rules are not read yet */
} node_call_state_t;

/* One tool call of the current model call. */
typedef struct {
    char *id;            /* the model's tool call id */
    char *name;          /* tool name */
    json_t *args;        /* arguments object (owned) */
    uint8_t state;       /* node_call_state_t */
    bool has_perm;       /* a permission request exists */
    bool expired;        /* its request passed expires_at (expiry write owed) */
    bool ran;            /* the tool ran (tool.completed), else a refusal */
    bool is_error;       /* result is an error for the model */
    bool invalid;        /* arguments held a NUL character: refused without asking */
    uint8_t perm_id[16]; /* the permission request */
    int64_t expires_ms;  /* wall ms of expiry, 0 = never */
    char rule_id[40];    /* deciding rule id, "" when none */
    char *result;        /* result text for the model (owned) */
    long duration_ms;    /* how long the tool ran */
    char *cli_request;   /* claude-code: the CLI\'s can_use_tool request id */
    bool owed;           /* claude-code: its rule decision or request is not stored yet */
    node_req_t *ask;     /* claude-code, channel mcp: the permission.ask to answer (owned) */
} node_call_t;

typedef enum {
    NODE_RUN_LOADING = 0, /* reading the turn context / history */
    NODE_RUN_STREAMING,   /* a model call is in flight */
    NODE_RUN_RULES,       /* reading the permission rules for the tool calls */
    NODE_RUN_STEP,        /* the step write is owed */
    NODE_RUN_TOOLS,       /* tool calls are being decided and run */
    NODE_RUN_NEXT,        /* every call is done: the next model call's write is owed */
    NODE_RUN_ENDING,      /* the turn's end is owed (node_turn builds it) */
    NODE_RUN_RECOVERING,  /* reactivated while waiting for a permission: reading state */
    NODE_RUN_CLAUDE       /* claude-code: the CLI runs the turn */
} node_run_phase_t;

typedef struct node_cc_t node_cc_t;

/* A running non-echo turn. Owned by the actor's node_turns_t; async work
   holds references so that callbacks after the turn ended find it dead. */
struct node_run_t {
    node_agents_t *agents;                     /* node-wide state */
    node_run_t *prev, *next;                   /* live runs (expiry scan) */
    node_actor_t *actor;                       /* the conversation's actor; NULL once released */
    int refs;                                  /* the turn's reference + async work in flight */
    uint8_t phase;                             /* node_run_phase_t */
    const cfg_strategy_t *strategy;            /* borrowed from the config */
    char source[112];                          /* event source {"kind":"actor","id":<strategy>} */
    char *root;                                /* tools root (absolute), NULL until known */
    bool root_make;                            /* the root is the per-conversation dir: create it */
    char *content;                             /* the user message text */
    json_t *history;                           /* provider-neutral history (owned) */
    agent_llm_request_t *req;                  /* model call in flight */
    int model_calls;                           /* model calls made in this turn */
    node_call_t *calls;                        /* tool calls of the current model call */
    size_t ncalls;                             /* entries in calls */
    agent_llm_usage_t step_usage;              /* usage of the current model call */
    agent_llm_usage_t usage;                   /* usage of the whole turn */
    char stop_reason[32];                      /* last stop reason */
    bool max_turns;                            /* ended because max_turns model calls were made */
    char *error;                               /* failure reason (turn.failed) */
    uint8_t next_id[16];                       /* next model call's assistant message */
    char strategy_name[CFG_FILE_MAX_NAME + 1]; /* the conversation's strategy */
    node_cc_t *cc; /* claude-code state (node_strat_claude.c), or NULL */
};

/* Node-wide agent state. */
struct node_agents_t {
    node_t *node;               /* owner */
    const cfg_file_t *cfg;      /* strategies (borrowed, or own_cfg) */
    cfg_file_t *own_cfg;        /* built-in default when none was given */
    agent_pool_t *pool;         /* tools and git */
    agent_http_t *http;         /* model calls */
    char work_dir[PATH_MAX];    /* absolute work dir */
    char conv_dir[PATH_MAX];    /* work_dir/conversations */
    char wt_dir[PATH_MAX];      /* work_dir/worktrees */
    char repo[PATH_MAX];        /* absolute repository, "" when none */
    int64_t wt_lock_key;        /* advisory lock key of the repository */
    agent_tool_limits_t limits; /* tool caps */
    node_run_t *runs;           /* live runs */
    int timer;                  /* NODE_AGENT_TICK_MS timer */
    int64_t next_sweep_ms;      /* next expired-request sweep (mono) */
    bool any_timeout;           /* some strategy sets permission_timeout_s */
    struct node_wtq_t *wtq;     /* worktree operations (node_ops_wt.c) */
    bool git_init;              /* agent_worktree_global_init was called */
    agent_claude_t *claude;     /* claude-code runs */
    char mcp_bin[PATH_MAX];     /* bicky-mcp-permission (permission_channel = mcp) */
};

/* ---- node-wide (node_strategy.c) --------------------------------------------------------- */

/* Creates the agent state of node (pool, HTTP client, work dir); NULL (logged) on failure. */
node_agents_t *node_agents_new(node_t *node);
/* Stops every run and the pool and frees; nulls *self_p; accepts NULL. */
void node_agents_destroy(node_agents_t **self_p);
/* Registers every statement of the agent modules on db. -1 on failure. */
int node_agents_sql_prepare(db_conn_t *db);

/* The process's strategies config (STYLE §4: the only global, read-only after start).
   node_agents_new sets it; NULL = the built-in default. */
void node_strategy_config_set(const cfg_file_t *cfg);
/* The strategy called name, or NULL when not configured. */
const cfg_strategy_t *node_strategy_lookup(const char *name);
/* Name of the default strategy. */
const char *node_strategy_default_name(void);

/* ---- turn hooks (called by node_turn.c) -------------------------------------------------- */

/* Adds the turn-context statement to a starting turn's write set. */
void node_strategy_add_start(node_ws_t *ws);
/* Starts the strategy of a stored turn start (content: the user message). */
void node_strategy_begin(node_t *node, node_actor_t *actor, node_plan_t *plan, const char *content);
/* Metadata merged into the ending assistant message and the end event's action, for a
   run (new strings; NULL on OOM). */
void node_strategy_end_json(const node_actor_t *actor, node_end_t how, char **meta, char **action);
/* Extra statements of a turn end (pending requests denied); stops the model call. */
int node_strategy_add_end(node_t *node, node_ws_t *ws, node_end_t how);
/* Builds and submits a write the strategy owes (or starts recovering a turn left waiting
   for a permission). True when the actor is now busy. */
bool node_strategy_pending_write(node_t *node, node_actor_t *actor);
/* A strategy write of plan committed. */
void node_strategy_committed(node_t *node, node_actor_t *actor, node_plan_t *plan);
/* The turn state is going away: stops and releases its run. Accepts NULL. */
void node_strategy_release(node_run_t *run);
/* True when the running turn waits for a permission decision. */
bool node_strategy_waiting(const node_actor_t *actor);

/* ---- runs (node_strategy.c) -------------------------------------------------------------- */

/* A new run for actor's running turn (attached to actor->turns). NULL on OOM. */
node_run_t *node_run_new(node_t *node, node_actor_t *actor, const cfg_strategy_t *s);
/* Takes / drops a reference; the last drop frees. */
void node_run_ref(node_run_t *run);
void node_run_unref(node_run_t *run);
/* Frees the calls of the current model call. */
void node_run_clear_calls(node_run_t *run);
/* Ends the running turn as failed with reason (the end write follows). */
void node_run_fail(node_run_t *run, const char *reason);
/* Pumps the run's actor (after an async step). */
void node_run_pump(node_run_t *run);
/* The node of a live run. */
node_t *node_run_node(const node_run_t *run);
/* Publishes a message.delta of the current assistant message. */
void node_run_delta(node_run_t *run, const char *text, size_t len);
/* Status the conversation has after a write of this run (waiting or processing). */
int node_run_status(const node_run_t *run);
/* Appends a new event with the next seq: NODE_Q_EVT_PERM embeds permission perm_id
   as action.request. Returns the statement index or -1. */
int node_ws_event_perm(node_ws_t *ws,
                       const char *type,
                       const char *source,
                       const char *action,
                       const uint8_t perm_id[16]);

/* ---- openai / anthropic (node_strat_llm.c) ----------------------------------------------- */

/* Starts the turn: loads the history, then the first model call. */
void node_llm_begin(node_run_t *run, const char *content);
/* Builds the next model call's write (phase NEXT). True when submitted. */
bool node_llm_next_write(node_t *node, node_run_t *run);
/* The next model call's assistant message is stored: start the call. */
void node_llm_next_committed(node_run_t *run);
/* Builds the provider-neutral history from message rows (JSON array of
   {id, role, content, status, metadata} oldest first): completed user messages
   (and current, the running turn's) each followed by the assistant/tool messages
   whose metadata.user_message_id names it; tool calls without a result are left
   out, and so is assistant message skip_asst (may be NULL). *has_current tells
   whether current was among the rows. Pure. Returns a new array. */
json_t *
node_llm_history(const json_t *rows, const char *current, const char *skip_asst, bool *has_current);
/* Sets the tools root: the worktree path, else the conversation's dir under the work
   dir (created before the first tool runs). -1 on OOM. */
int node_llm_set_root(node_run_t *run, const char *wt_path);
/* Appends the results of the current calls to the history (tool messages). */
void node_llm_append_results(node_run_t *run);

/* ---- claude-code (node_strat_claude.c, node_claude_session.c) ----------------------------- */

/* The claude-code state of a run. */
struct node_cc_t {
    agent_claude_run_t *proc; /* the CLI run; NULL before it starts and once it ended */
    char home[PATH_MAX];      /* its HOME */
    char session[72];         /* session id, "" unknown */
    bool resume;              /* the session existed before this turn */
    char *bundle;             /* exported session files (owned) */
    size_t bundle_len;        /* their size */
    struct s_evt_t *head;     /* tool lines owed (node_strat_claude.c) */
    struct s_evt_t *tail;
    json_t *names;   /* tool_use id → tool name */
    bool rules_busy; /* a rules read is in flight */
    json_t *grants;  /* resumed after a restart: approved [{name, input}] not asked again */
    char *followup;  /* resumed after a restart: the decisions, told to the model */
    char *task;      /* resumed after a restart: the user's message (if the session is lost) */
};

/* Starts the CLI for the prepared run (node_strat_claude.c). */
void node_claude_start(node_run_t *run);
/* Exports the session's files on the pool, then ends the turn completed. */
void node_claude_export(node_run_t *run);

/* Starts the turn: prepares the dirs (importing the session's transcript from
   Postgres when this node lacks it), then runs the CLI. session: the session to
   resume (metadata.claude_code.session_id) or NULL. */
void node_claude_begin(node_run_t *run,
                       const char *content,
                       const char *wt_path,
                       const char *session);
/* Allocates the claude state of run (phase CLAUDE): dirs, HOME, the session to resume
   (or NULL). 0, or -1 after failing the run. */
int node_claude_setup(node_run_t *run, const char *wt_path, const char *session);
/* Prepares the dirs (importing the session when missing) on the pool, then starts. */
void node_claude_prepare(node_run_t *run);
/* Adds the session id to the conversation's metadata (claude_code.session_id). */
void node_claude_add_session(node_ws_t *ws, const node_run_t *run);
/* Builds the write of what the CLI reported (phase CLAUDE). True when submitted. */
bool node_claude_pending_write(node_t *node, node_run_t *run);
/* That write committed. */
void node_claude_committed(node_run_t *run);
/* Answers the CLI's permission request of call i. */
void node_claude_answer(
    node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg);
/* A turn end's extra statements: the session id in the metadata, the transcript. */
int node_claude_add_end(node_ws_t *ws, node_run_t *run, node_end_t how);
/* Stops the CLI (no callback afterwards); the state stays. Accepts a non-claude run. */
void node_claude_cancel(node_run_t *run);
/* Stops the CLI (no callback afterwards) and frees the claude state. */
void node_claude_stop(node_run_t *run);
/* Registers the claude-code statements. */
int node_claude_sql_prepare(db_conn_t *db);
/* Adds a permission question of the CLI to the run (state NEW; the rules are read
   next): cli_request (stdio) or ask (mcp, taken on success). Index, or -1 (OOM). */
int node_claude_add_call(node_run_t *run,
                         const char *tool_use_id,
                         const char *tool_name,
                         const json_t *input,
                         const char *cli_request,
                         node_req_t *ask);

/* ---- claude-code after a restart (node_claude_resume.c) ---------------------------------- */

/* Rebuilds a claude-code turn left waiting by a dead node: its pending requests (perms:
   [{id, status, tool_use_id, tool_name, arguments, expires_ms}]) wait again, with no
   CLI. task: the turn's user message. NULL, or why the turn cannot wait (it fails). */
const char *node_claude_restore(node_run_t *run,
                                const json_t *perms,
                                const char *wt_path,
                                const char *session,
                                const char *task);
/* The session to resume is not found anywhere: the follow-up of a restored turn gets
   the user's message (task) in front, and a new session starts. */
void node_claude_session_lost(node_run_t *run);
/* Call i was decided while no CLI asks for it (restored): the decision is kept for the
   resumed session, which starts once nothing is pending. True when it was such a call. */
bool node_claude_decided_offline(
    node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg);
/* Call i (just asked by the resumed CLI) is an approved one: answered allow. */
bool node_claude_granted(node_run_t *run, size_t i);

/* ---- claude-code, MCP channel (node_claude_ask.c) ----------------------------------------- */

/* Finds bicky-mcp-permission: --mcp-permission-bin, else next to /proc/self/exe. */
void node_claude_mcp_init(node_agents_t *agents);
/* Op permission.ask from bicky-mcp-permission (envelope conv_id, no team): joins the
   conversation's running claude-code turn; answered when the request is decided. */
void node_op_perm_ask(node_t *node, node_req_t *req);
/* Answers call c's permission.ask with the decision (200, the behavior JSON). */
void node_claude_ask_reply(
    node_run_t *run, node_call_t *c, bool allow, const json_t *input, const char *msg);

/* ---- permissions (node_perm.c) ----------------------------------------------------------- */

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
/* Starts recovering actor's turn left waiting for a permission. */
void node_perm_recover(node_t *node, node_actor_t *actor);
/* Registers the permission statements. */
int node_perm_sql_prepare(db_conn_t *db);
/* Sweeps the database for expired requests of conversations this node owns. */
void node_perm_sweep(node_agents_t *agents);

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

/* ---- tools (node_tools.c) ---------------------------------------------------------------- */

/* Submits call i (state RUNNING) to the pool. */
void node_tools_run(node_run_t *run, size_t i);
/* Adds tool.started for call i to ws. */
int node_tools_add_started(node_ws_t *ws, node_run_t *run, size_t i);
/* Adds the tool message of call i (its result or refusal) to ws. */
int node_tools_add_result(node_ws_t *ws, node_run_t *run, size_t i);
/* Builds the write of the first finished call. True when submitted. */
bool node_tools_done_write(node_t *node, node_run_t *run);
/* True when every call of the step is done; moves the run to NEXT then. */
bool node_tools_all_done(node_run_t *run);
/* Sets call i's result (text copied, capped). */
void node_tools_set_result(node_call_t *c, const char *text, bool is_error);

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

/* ---- ops (node_ops_perm.c, node_ops_wt.c) ------------------------------------------------ */

void node_op_perm_list(node_t *node, node_req_t *req);
void node_op_perm_get(node_t *node, node_req_t *req);
void node_op_perm_decide(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_rule_list(node_t *node, node_req_t *req);
void node_op_rule_create(node_t *node, node_req_t *req);
void node_op_rule_delete(node_t *node, node_req_t *req);
void node_op_wt_list(node_t *node, node_req_t *req);
void node_op_wt_get(node_t *node, node_req_t *req);
void node_op_wt_create(node_t *node, node_req_t *req);
void node_op_wt_delete(node_t *node, node_req_t *req);
void node_op_strategies(node_t *node, node_req_t *req);
/* Registers the statements of node_ops_perm.c. */
int node_ops_perm_sql_prepare(db_conn_t *db);

/* SQL statement names of the agent modules. */
#define NODE_Q_TURN_CTX      "node_turn_ctx"
#define NODE_Q_HISTORY       "node_history"
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
#define NODE_Q_RECOVER_MSG   "node_recover_msg"
#define NODE_Q_PENDING_MSG   "node_pending_msgs"

/* Event JSON as node_sql.c builds it (API.md Event); kept identical. */
#define NODE_TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define NODE_EVT_JSON(e)                                                                           \
    "json_build_object('id', " e ".id, 'conversation_id', " e ".conversation_id, 'seq', " e        \
    ".seq, 'type', " e ".type, 'source', " e ".source, 'action', " e ".action, 'reversible', " e   \
    ".reversible, 'created_at', " NODE_TS(e ".created_at") ")"
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
