/*  node_strategies — the model-driven strategies: openai and anthropic (an HTTP
    model API with tool calls) and claude-code (the Claude Code CLI). Loop thread only. */
#ifndef BICKY_NODE_STRATEGIES_H
#define BICKY_NODE_STRATEGIES_H

#include "node/perm/node_perm.h"

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
    bool call_start; /* a model call started: its first text is set apart from earlier text */
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

#endif
