/*  node_turns — turns: the turn engine (start, stream, end, queue, back-off), the
    strategy interface and the runs of model-driven strategies, the tools a run calls,
    the scheduler of turn steps, and the recovery of a turn left by a lost node. Loop thread only,
   except where a comment says a function runs on a pool worker. */
#ifndef BICKY_NODE_TURNS_H
#define BICKY_NODE_TURNS_H

#include "common/cfg_file.h"
#include "node/agent/agent_claude.h"
#include "node/agent/agent_http.h"
#include "node/agent/agent_llm.h"
#include "node/agent/agent_pool.h"
#include "node/agent/agent_tools.h"
#include "node/runtime/node_runtime.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>

#define NODE_BACKOFF_MIN_MS  200 /* strategy restart back-off after a failed turn */
#define NODE_BACKOFF_MAX_MS  5000
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
typedef struct node_strategy_if_t node_strategy_if_t;

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
    node_cc_t *cc;                  /* claude-code state (node_strat_claude.c), or NULL */
    const node_strategy_if_t *impl; /* the strategies (the agents' strategy) */
    atomic_bool tools_stop;         /* set when the turn ends: running bash tools are killed */
    bool lost; /* failing because its node was lost: turn.failed says reason node_lost */
};

/* Node-wide agent state. */
struct node_agents_t {
    const node_strategy_if_t *strategy; /* the strategies (node/strategies) */
    node_t *node;                       /* owner */
    const cfg_file_t *cfg;              /* strategies (borrowed, or own_cfg) */
    cfg_file_t *own_cfg;                /* built-in default when none was given */
    agent_pool_t *pool;                 /* tools and git */
    agent_http_t *http;                 /* model calls */
    char work_dir[PATH_MAX];            /* absolute work dir */
    char conv_dir[PATH_MAX];            /* work_dir/conversations */
    char wt_dir[PATH_MAX];              /* work_dir/worktrees */
    char repo[PATH_MAX];                /* absolute repository, "" when none */
    int64_t wt_lock_key;                /* advisory lock key of the repository */
    agent_tool_limits_t limits;         /* tool caps */
    node_run_t *runs;                   /* live runs */
    int timer;                          /* NODE_AGENT_TICK_MS timer */
    int64_t next_sweep_ms;              /* next expired-request sweep (mono) */
    bool any_timeout;                   /* some strategy sets permission_timeout_s */
    struct node_wtq_t *wtq;             /* worktree operations (node_ops_wt.c) */
    struct node_observers_t *observers; /* observer runs (node/strategies/node_observe.c) */
    bool git_init;                      /* agent_worktree_global_init was called */
    agent_claude_t *claude;             /* claude-code runs */
    agent_relay_t *relay;               /* their model calls; NULL without a claude-code strategy */
    char mcp_bin[PATH_MAX];             /* bicky-mcp-permission (permission_channel = mcp) */
    agent_guard_t guard;                /* bicky-exec and the children's pid files */
    agent_sandbox_t sandbox;            /* bwrap for tools and the CLI (--sandbox) */
};

/* ---- the strategy interface ----------------------------------------------------------- */

/* What the turn engine (node_turn.c), runs and permissions ask of a conversation's
   strategy. node/strategies implements it for echo, openai, anthropic and claude-code
   (node_strategies) and sets it in node_agents_t.strategy. Loop thread only. */
struct node_strategy_if_t {
    /* Whether the stored strategy name lets a posted message's whole turn be written
       with the message (whole_turn); the actor keeps the answer in NODE_AF_WHOLE. */
    bool (*whole_turns)(const char *name);
    /* May add the whole turn of ws's posted message (plan.content) to ws: its assistant
       message and events, plan.whole_turn set, and ws->live to publish what streamed.
       1 when added, 0 when the turn streams as usual, -1 on OOM. */
    int (*whole_turn)(node_t *node, node_ws_t *ws);
    /* Adds the turn-context statement to a starting turn's write set. */
    void (*add_start)(node_ws_t *ws);
    /* Starts the strategy of a stored turn start (content: the user message). */
    void (*begin)(node_t *node, node_actor_t *actor, node_plan_t *plan, const char *content);
    /* A scheduled wake-up of the running turn (node_sched_at). */
    void (*step)(node_t *node, node_actor_t *actor);
    /* Metadata merged into the ending assistant message and the end event's action (new
       strings; NULL on OOM). */
    void (*end_json)(const node_actor_t *actor, node_end_t how, char **meta, char **action);
    /* Extra statements of a turn end; stops the model call. 0, or -1 on OOM. */
    int (*add_end)(node_t *node, node_ws_t *ws, node_end_t how);
    /* Builds and submits a write the strategy owes (or starts recovering a turn left
       waiting for a permission). True when the actor is now busy. */
    bool (*pending_write)(node_t *node, node_actor_t *actor);
    /* A strategy write of plan committed. */
    void (*committed)(node_t *node, node_actor_t *actor, node_plan_t *plan);
    /* The run fails: its model call or CLI stops; its state stays for the end write. */
    void (*cancel)(node_run_t *run);
    /* The run goes: everything it runs stops without callbacks, its state is freed. */
    void (*stop)(node_run_t *run);
    /* The permission request of call i was decided (input: approved replacement
       arguments or NULL; msg: the denial's text). */
    void (*decided)(node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg);
    /* A turn of the responder ended (completed or failed) and its end is stored: the
       conversation's observers may run. NULL: none. */
    void (*turn_ended)(node_t *node, node_actor_t *actor);
    /* Recovery on activation (node_recover.c) found actor's running turn lost with its
       node; strategy: the conversation's. True when the strategy takes the turn over: it
       reads it back, then resumes or fails it, and queues the pending user messages;
       false: the turn fails (node_lost) as for any strategy. NULL: never. */
    bool (*resume_lost)(node_t *node, node_actor_t *actor, const char *strategy);
};

/* ---- the strategies config (node_run.c) -------------------------------------------------- */

/* The process's strategies config (STYLE §4: the only global, read-only after start).
   node_agents_new sets it; NULL = the built-in default. */
void node_strategy_config_set(const cfg_file_t *cfg);
/* The config set, or NULL. */
const cfg_file_t *node_strategy_config(void);
/* The strategy called name, or NULL when not configured. */
const cfg_strategy_t *node_strategy_lookup(const char *name);
/* Name of the default strategy. */
const char *node_strategy_default_name(void);

/* The turn state is going away: stops and releases its run. Accepts NULL. */
void node_run_release(node_run_t *run);
/* True when the running turn waits for a permission decision. */
bool node_run_waiting(const node_actor_t *actor);

/* ---- runs (node_run.c) ------------------------------------------------------------------- */

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

/* ---- turn state (node_turn.c) ------------------------------------------------------------- */

typedef struct node_pending_t node_pending_t;

/* Turn state of one actor, allocated while a turn runs, waits or backs off. */
struct node_turns_t {
    bool running;          /* a turn is streaming */
    uint8_t end_ready;     /* node_end_t: streaming ended, end write not yet built */
    bool backoff;          /* waiting before the next turn after a failure */
    bool start_ready;      /* back-off over: start the next turn */
    uint8_t user_id[16];   /* running turn: user message */
    uint8_t asst_id[16];   /* running turn: assistant message (streaming row) */
    char *reply;           /* running turn: full reply text */
    size_t pos;            /* bytes of reply streamed so far */
    size_t fail_at;        /* fail after this many deltas (SIZE_MAX = never) */
    uint32_t index;        /* next delta index */
    uint32_t input_tokens; /* words of the user message */
    uint32_t backoff_ms;   /* current back-off */
    int32_t heap_idx;      /* position in the scheduler heap, -1 none */
    node_pending_t *head;  /* queued user messages, oldest first */
    node_pending_t *tail;
    uint32_t nqueued;   /* length of the queue */
    node_run_t *run;    /* state of a non-echo strategy's running turn, or NULL */
    int64_t started_us; /* running turn: mono µs its start was applied (metrics) */
};

/* Turn state of actor, allocated on demand (NULL on OOM). */
node_turns_t *node_turns_get(node_actor_t *actor);
/* The turn engine the runtime drives (node_runtime.h node_engine_t). */
extern const node_engine_t node_turn_engine;
/* Scheduler callback: an actor's wake-up is due (the running turn's next step, or the
   end of its back-off). */
void node_actor_wake(node_t *node, node_actor_t *actor);
/* Frees turn state (queue included) and cancels its wake-up. */
void node_turns_release(node_t *node, node_actor_t *actor);
/* Frees turn state without touching the scheduler (table teardown). Accepts NULL. */
void node_turns_free(node_turns_t *turns);
/* True when a turn is streaming or its end is not yet stored. */
bool node_turn_running(const node_actor_t *actor);
/* Queued turns. */
uint32_t node_turn_queued(const node_actor_t *actor);

/* ---- the turn engine (node_turn.c) -------------------------------------------------------- */

/* True when a message posted by this write (whose running turn ends with end) starts a
   turn at once: nothing runs, nothing waits, no back-off, conversation open. */
bool node_turn_posted_starts(const node_t *node, const node_actor_t *actor, int end);
/* Adds the statements ending the running turn (how) to ws; plan.end set. */
int node_turn_add_end(node_t *node, node_ws_t *ws, node_end_t how);
/* Decides whether a turn starts with this write (after its end and post effects) and
   adds its statements (the posted message's, whose id is plan.user_id, or the queue
   head's); otherwise a posted message is enqueued. Returns 0 or -1 (OOM). */
int node_turn_plan_next(node_t *node, node_ws_t *ws, bool posted);
/* Applies a committed plan to the actor's turns (start streaming, queue...). */
void node_turn_apply(node_t *node, node_actor_t *actor, node_plan_t *plan);
/* Internal writes the actor owes (a turn end, a start after back-off): builds and
   submits one if due. Returns true when a write was submitted. */
bool node_turn_pending_write(node_t *node, node_actor_t *actor);
/* Status after a write given the plan (for the touch statement). */
int node_turn_status_after(const node_actor_t *actor, const node_plan_t *plan);
/* Appends a stored pending user message to the actor's queue (turn recovery). 0 or -1. */
int node_turn_enqueue(node_actor_t *actor, const uint8_t user_id[16], const char *content);

/* The conversation's stored strategy is known: sets or clears NODE_AF_WHOLE. */
void node_turn_strategy_known(node_t *node, node_actor_t *actor, const char *strategy);

/* ---- scheduler (node_sched.c): one wake-up per actor, one zloop timer ------------------- */

node_sched_t *node_sched_new(node_t *node);
void node_sched_destroy(node_sched_t **self_p);
/* Schedules (or reschedules) actor's wake-up at mono ms due. -1 on OOM. */
int node_sched_at(node_sched_t *self, node_actor_t *actor, int64_t due_ms);
/* Cancels the actor's wake-up if any. */
void node_sched_cancel(node_sched_t *self, node_actor_t *actor);

/* ---- recovery on activation (node_recover.c) --------------------------------------------- */

/* True when the freshly loaded actor's stored status says a turn was running or
   waiting (processing/queued): its previous owner was lost mid-turn. */
bool node_recover_needed(const node_actor_t *actor);
/* Reads the lost turn and pending messages (the actor stays LOADING meanwhile),
   then fails the lost turn (reason node_lost) and starts the pending messages. */
void node_recover_start(node_t *node, node_actor_t *actor);

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

#define NODE_Q_TURN_CTX    "node_turn_ctx"
#define NODE_Q_HISTORY     "node_history"
#define NODE_Q_RECOVER_MSG "node_recover_msg"
#define NODE_Q_PENDING_MSG "node_pending_msgs"

#endif
