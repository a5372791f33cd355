/*  node_strategies — the model-driven strategies: openai and anthropic (an HTTP
    model API with tool calls) and claude-code (the Claude Code CLI). Loop thread only. */
#ifndef BICKY_NODE_STRATEGIES_H
#define BICKY_NODE_STRATEGIES_H

#include "node/perm/node_perm.h"

/* ---- node-wide (node_strategy.c) --------------------------------------------------------- */

/* The strategies behind the turn engine (echo, openai, anthropic, claude-code). */
extern const node_strategy_if_t node_strategies;
/* Creates the agent state of node (pool, HTTP client, work dir); NULL (logged) on failure. */
node_agents_t *node_agents_new(node_t *node);
/* Stops every run and the pool and frees; nulls *self_p; accepts NULL. */
void node_agents_destroy(node_agents_t **self_p);
/* Registers the statements of the strategies and permissions on db. -1 on failure. */
int node_agents_sql_prepare(db_conn_t *db);

/* ---- observers (node_observe.c, issue 15) ----------------------------------------------- */

#define NODE_OBSERVERS_MAX     8   /* observers attached to one conversation */
#define NODE_OBSERVER_NAME_MAX 32  /* characters of an observer's name */
#define NODE_OBS_RUNS_MAX      256 /* observer runs in flight or owed, per node */

typedef struct node_observers_t node_observers_t;
/* The node's observer runs (none yet); NULL on OOM. */
node_observers_t *node_observers_new(node_t *node);
/* Cancels every run (no callback, nothing written) and frees; nulls *self_p. */
void node_observers_destroy(node_observers_t **self_p);
/* A turn of actor's responder ended (stored): its due observers start (the interface's
   turn_ended). */
void node_observe_turn_ended(node_t *node, node_actor_t *actor);
/* Submits the write of one observer outcome owed to actor. True when submitted. */
bool node_observe_pending_write(node_t *node, node_actor_t *actor);
/* Fails runs past their timeout; drops outcomes nobody took (the agents' tick). */
void node_observe_tick(node_observers_t *self);
/* Registers the statements of node_observe.c. */
int node_observe_sql_prepare(db_conn_t *db);

/* ---- a turn left waiting for a permission (node_perm_recover.c) ------------------------ */

/* Starts recovering actor's turn left waiting for a permission, or (lost) a claude-code
   turn that was running when its node was lost (node_recover.c hands it over). */
void node_perm_recover(node_t *node, node_actor_t *actor, bool lost);
/* Sweeps the database for expired requests of conversations this node owns. */
void node_perm_sweep(node_agents_t *agents);

/* ---- echo (node_echo.c) ------------------------------------------------------------------ */

#define NODE_ECHO_BURST 64 /* deltas per scheduler step when delay is 0 */

/* Echo strategy: one scheduler step of the running turn (stream deltas, detect end). */
void node_echo_step(node_t *node, node_actor_t *actor);
/* Prepares a starting turn's reply from the user content. */
int node_echo_begin(node_t *node, node_actor_t *actor, const char *content);
/* Words (runs of non-space) in text. */
uint32_t node_echo_words(const char *text);
/* Publishes reply as the message.delta events of assistant message asst_id, numbered
   from 0 (one per word with its leading whitespace), as node_echo_step does. */
void node_echo_deltas(node_t *node,
                      node_actor_t *actor,
                      const uint8_t asst_id[16],
                      const char *reply);
/* Whether the strategy named name (NULL = the default, "echo") is an echo strategy. */
bool node_echo_is(const char *name);
/* The interface's whole_turn for echo: a posted message to an echo conversation with no
   delay, whose reply fits one scheduler step and whose turn does not fail, is written
   whole with the message. 1 added, 0 not, -1 OOM. */
int node_echo_whole_turn(node_t *node, node_ws_t *ws);
/* The interface's end_json for an echo turn (usage, or the injected failure). */
void node_echo_end_json(const node_actor_t *actor, node_end_t how, char **meta, char **action);

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
    json_t *names;      /* tool_use id → tool name */
    bool rules_busy;    /* a rules read is in flight */
    json_t *grants;     /* resumed after a restart: approved [{name, input}] not asked again */
    char *followup;     /* resumed after a restart: the decisions, told to the model */
    char *task;         /* resumed after a restart: the user's message (if the session is lost) */
    bool call_start;    /* a model call started: its first text is set apart from earlier text */
    bool ckpt_dirty;    /* a step completed since the last checkpoint started */
    bool ckpt_busy;     /* a checkpoint is being exported or written */
    bool ckpt_sent;     /* a write in flight carries it */
    int64_t ckpt_at_ms; /* mono ms the last checkpoint started, 0 none */
    char *ckpt;         /* an exported checkpoint owed to Postgres (owned) */
    size_t ckpt_len;    /* its size */
    bool reimport;      /* prepare: import the transcript from Postgres even if present */
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
/* A step of the running turn completed (a tool result, or the next model call
   started): a checkpoint of its transcript is due (node_claude_session.c). */
void node_claude_step(node_run_t *run);
/* Starts the checkpoint due, unless one is in flight or the last one started less than
   a second ago (now_ms: mono). The export runs on the pool; its bundle is then owed. */
void node_claude_tick(node_run_t *run, int64_t now_ms);
/* Adds the owed checkpoint (claude_sessions, turn_message_id = the running turn's user
   message) to ws. True when one was added. */
bool node_claude_add_checkpoint(node_ws_t *ws, node_run_t *run);
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
/* Resumes a claude-code turn that was running when its node was lost, from the
   transcript checkpointed in Postgres (imported over any copy on this node): --resume
   with a follow-up telling the model so. task: the turn's user message (for a new
   session, should the transcript be gone). NULL, or why it cannot (the turn fails). */
const char *node_claude_resume_lost(node_run_t *run,
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

#endif
