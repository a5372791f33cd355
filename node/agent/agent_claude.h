/*  agent_claude — the claude-code strategy's engine: one run of the Claude
    Code CLI per user turn, driven on the node's zloop without ever blocking.
    A run posix_spawns the CLI (argv as an array, never a shell) in its own
    process group with stream-json in and out, an offline environment and a
    per-conversation HOME; its stdin/stdout/stderr are non-blocking pipes
    registered as zloop pollers, and its exit is seen through a pidfd (or a
    WNOHANG poll from the runner's 100 ms tick). The user message goes in as
    one stream-json line; output lines become callbacks (text deltas, tools
    started and completed, permission requests, the result). Permissions use
    `--permission-prompt-tool stdio` (a can_use_tool control_request is
    answered with agent_claude_permission_reply) or, with channel mcp, the
    bicky-mcp-permission server. Every run is bounded by Bicky's own timeout
    and can be cancelled: the process group gets SIGTERM, then SIGKILL after
    a grace period, and is reaped without a blocking waitpid. After a run
    the group is killed, so no process of it is left behind.
    The session transcript helpers (agent_claude_session_*) do blocking file
    I/O: call them on an agent_pool worker, never on the loop.
    Every other function: the loop thread that owns the runner's zloop;
    callbacks run there. The node must ignore SIGPIPE (util_signals_install). */
#ifndef BICKY_AGENT_CLAUDE_H
#define BICKY_AGENT_CLAUDE_H

#include "node/agent/agent_guard.h"
#include "node/agent/agent_relay.h"
#include "node/agent/agent_sandbox.h"
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define AGENT_CLAUDE_MAX_LINE      (4u * 1024 * 1024)  /* default bound on one output line */
#define AGENT_CLAUDE_MAX_QUEUE     (16u * 1024 * 1024) /* bytes waiting to go to the CLI's stdin */
#define AGENT_CLAUDE_MAX_PENDING   64                  /* open can_use_tool requests per run */
#define AGENT_CLAUDE_INTERRUPT_MS  1000                /* interrupt request → SIGTERM */
#define AGENT_CLAUDE_KILL_GRACE_MS 2000                /* SIGTERM → SIGKILL */
#define AGENT_CLAUDE_EXIT_WAIT_MS  10000 /* result seen, stdin closed: wait for the exit */
#define AGENT_CLAUDE_TICK_MS       100   /* the runner's timer: timeouts, kills, reaping */
#define AGENT_CLAUDE_REASON_MAX    1024  /* bytes of an on_error reason, with NUL */
#define AGENT_CLAUDE_SESSION_MAX   (64u * 1024 * 1024) /* default cap of an exported session */
#define AGENT_CLAUDE_MCP_SERVER    "perm" /* --mcp-config server name (tool mcp__perm__...) */

typedef struct agent_claude_t agent_claude_t;         /* runner: one per loop (node) */
typedef struct agent_claude_run_t agent_claude_run_t; /* one CLI process = one user turn */

typedef enum {
    AGENT_CLAUDE_PERM_STDIO = 0, /* --permission-prompt-tool stdio: on_permission + reply */
    AGENT_CLAUDE_PERM_MCP,       /* bicky-mcp-permission asks the node over ZeroMQ */
} agent_claude_perm_channel_t;

/* The MCP permission server (channel mcp). Strings are copied at start. */
typedef struct {
    const char *command;         /* bicky-mcp-permission binary (absolute path) */
    const char *endpoint;        /* the node's ROUTER endpoint (--node) */
    const char *conversation_id; /* conversation UUID (--conversation) */
    long timeout_s;              /* --timeout-s; 0 = wait for the decision */
} agent_claude_mcp_t;

/* What to run. Everything is copied by agent_claude_start; NULL means unset. */
typedef struct {
    const char *command;        /* the CLI: a path or a name looked up in PATH (NULL: "claude") */
    const char *cwd;            /* working directory: absolute, must exist (the worktree) */
    const char *home;           /* HOME of the CLI: absolute, must exist (per conversation) */
    const char *prompt;         /* the user message text (required unless content is set) */
    const json_t *content;      /* or the message content as a JSON array of blocks (borrowed) */
    const char *model;          /* --model */
    const char *system_prompt;  /* --append-system-prompt (or --system-prompt, below) */
    bool replace_system_prompt; /* pass system_prompt as --system-prompt (drops the CLI's own) */
    const char *const *tools;   /* NULL-terminated: --tools (the tools that exist); NULL = CLI's */
    const char *const *allowed_tools; /* NULL-terminated: --allowedTools (run without asking) */
    long max_turns;                   /* --max-turns; 0 = not passed */
    long timeout_s;                   /* Bicky's bound on the whole run; 0 = none */
    const char *resume_session_id;    /* --resume this session (a UUID) */
    const char *session_id;           /* --session-id for a new session (a UUID) */
    const char *base_url;             /* the real model API (the relay's upstream) */
    const char *api_key;              /* its key: stays in the relay, never in the CLI */
    const char *setting_sources;      /* --setting-sources (NULL: "user"; "" = not passed) */
    agent_claude_perm_channel_t permission_channel; /* stdio (default) or mcp */
    agent_claude_mcp_t mcp;                         /* channel mcp only */
    const char *const *env; /* NULL-terminated extra "NAME=value" entries (override ours;
                               ANTHROPIC_*, BICKY_* and DATABASE_URL are refused) */
    size_t max_line;        /* bound on one stdout line; 0 = AGENT_CLAUDE_MAX_LINE */
    const agent_guard_t
        *guard; /* start through bicky-exec (borrowed for the call); NULL = directly */
    const agent_sandbox_t *sandbox; /* run in bwrap (needs guard); NULL or disabled = not */
    bool sandbox_off;               /* the strategy opted out (sandbox = false) */
    agent_sandbox_limits_t rlimits; /* bicky-exec --limits (all 0 = none) */
    const char *relay_unix; /* set by agent_claude_start: the relay's unix socket ("" = none) */
} agent_claude_params_t;

/* A can_use_tool request (channel stdio). Pointers are borrowed for the call. */
typedef struct {
    const char *request_id;   /* answer with agent_claude_permission_reply */
    const char *tool_name;    /* e.g. "Bash" */
    const char *tool_use_id;  /* the tool_use block it is for ("" when not sent) */
    const char *description;  /* the CLI's description of the call ("" when not sent) */
    const char *blocked_path; /* the path that needs the permission ("" when none) */
    json_t *input;            /* the tool input object (json_incref to keep it) */
} agent_claude_perm_t;

/* The CLI's result line. Pointers are borrowed for the duration of on_done. */
typedef struct {
    const char *text;           /* "result": the final answer text ("" when absent) */
    const char *session_id;     /* the session to --resume next time ("" when unknown) */
    const char *subtype;        /* success | error_max_turns | error_during_execution | … */
    const char *stop_reason;    /* e.g. "end_turn" ("" when absent) */
    bool is_error;              /* the CLI reported an error (API error, max turns, …) */
    long input_tokens;          /* usage.input_tokens */
    long output_tokens;         /* usage.output_tokens */
    long cache_read_tokens;     /* usage.cache_read_input_tokens */
    long cache_creation_tokens; /* usage.cache_creation_input_tokens */
    double total_cost_usd;      /* the CLI's cost estimate */
    long num_turns;             /* model calls in the run */
    int exit_status;            /* exit code, or 128 + signal number */
    json_t *permission_denials; /* array of {tool_name, tool_use_id, tool_input} (borrowed) */
    json_t *errors;             /* array of strings, or NULL (borrowed) */
} agent_claude_result_t;

/* Callbacks; any may be NULL. Pointers are borrowed for the call. Exactly one
   of on_done and on_error ends a run unless it is cancelled first; the run
   handle is dead once it returns. Any callback may call agent_claude_start,
   agent_claude_cancel (on this or another run) and
   agent_claude_permission_reply; none may destroy the runner. */
typedef struct {
    /* The CLI started its session (first system/init line). */
    void (*on_init)(void *arg, const char *session_id);
    /* A piece of the assistant's text (top-level agent only; len bytes, NUL-terminated). */
    void (*on_text)(void *arg, const char *text, size_t len);
    /* A tool_use block: the model asked to run tool `name` with `input`. */
    void (*on_tool_started)(void *arg, const char *tool_use_id, const char *name, json_t *input);
    /* Its tool_result: the content as text (text blocks joined), is_error. */
    void (*on_tool_completed)(void *arg,
                              const char *tool_use_id,
                              const char *content,
                              bool is_error);
    /* The CLI asks whether it may run a tool (channel stdio). Answer later
       (or at once) with agent_claude_permission_reply. */
    void (*on_permission)(void *arg, const agent_claude_perm_t *req);
    /* The run ended with a result line and the CLI exited. */
    void (*on_done)(void *arg, const agent_claude_result_t *res);
    /* The run failed: "timeout", a malformed or oversized output line, the
       CLI exiting without a result ("claude exited with status 1: …"), … */
    void (*on_error)(void *arg, const char *reason);
    /* A model call of the top-level agent starts (stream_event message_start): the
       text that follows is that call's. */
    void (*on_message_start)(void *arg);
} agent_claude_callbacks_t;

/* Creates a runner whose runs live on loop (borrowed: destroy the runner
   before the loop, after zloop_start has run once or from inside a loop
   handler, since zloop defers timer cancellation until it runs). relay
   (borrowed, must outlive the runner) carries every run's model calls: a run
   gets a token of its own, which dies when the run ends, and the CLI sees
   only the relay's URL and that token, never params.base_url or
   params.api_key. Without a relay (NULL) the CLI talks to base_url directly
   and a run with an api_key is refused. Returns NULL (logged) on failure. */
agent_claude_t *agent_claude_new(zloop_t *loop, agent_relay_t *relay);

/* Kills every process group still running (SIGKILL), reaps them (waits for
   killed processes; bounded), frees every run without calling back, and
   frees the runner. Nulls *self_p; accepts NULL. */
void agent_claude_destroy(agent_claude_t **self_p);

/* Starts one turn. cb is copied; arg is passed to every callback. Returns
   the run (owned by the runner; the handle is valid until on_done/on_error
   returns or agent_claude_cancel), or NULL with the reason in err (bad
   params, cwd or home missing, the command not found, out of memory). */
agent_claude_run_t *agent_claude_start(agent_claude_t *self,
                                       const agent_claude_params_t *params,
                                       const agent_claude_callbacks_t *cb,
                                       void *arg,
                                       char *err,
                                       size_t errlen);

/* Answers can_use_tool request request_id with a control_response: allow
   (updated_input, borrowed, or NULL for the tool's input as asked) or deny
   (deny_message, NULL for a default). Returns 0, or -1 when the run has
   ended or request_id is not open (answered, cancelled by the CLI, unknown). */
int agent_claude_permission_reply(agent_claude_run_t *run,
                                  const char *request_id,
                                  bool allow,
                                  const json_t *updated_input,
                                  const char *deny_message);

/* Cancels a run: no callback runs for it afterwards. The CLI is asked to
   interrupt and its stdin closed; if it has not exited within
   AGENT_CLAUDE_INTERRUPT_MS, its group and descendants get SIGTERM, then
   SIGKILL after AGENT_CLAUDE_KILL_GRACE_MS; the runner reaps it. (Once the
   result line was read, the CLI is only left to exit.) Nulls *run_p;
   accepts NULL. Not for a run that already ended. */
void agent_claude_cancel(agent_claude_run_t **run_p);

/* The CLI's pid (also its process group id). */
pid_t agent_claude_pid(const agent_claude_run_t *run);

/* Runs whose process has not been reaped yet (cancelled ones included). */
size_t agent_claude_active(const agent_claude_t *self);

/* bicky-fwd, the sandboxed CLI's only way to the model relay, is looked for in the
   directory of guard's bicky-exec (borrowed; NULL or no shim: none): its path goes
   to out. Returns 0 when it is there and executable, else -1. Any thread. */
int agent_claude_fwd_path(const agent_guard_t *guard, char out[PATH_MAX]);

/* --- session transcripts (blocking file I/O: worker threads only) --- */

/* True when id is a usable session id: 1–64 bytes of [0-9A-Za-z-]. */
bool agent_claude_session_id_valid(const char *id);

/* The CLI's project directory for cwd under home:
   <home>/.claude/projects/<cwd, realpath'd, each character other than
   [A-Za-z0-9] replaced by '-' (cut at 200 with a hash suffix, as the CLI
   does)>. Returns 0, or -1 when it does not fit in outlen. */
int agent_claude_project_dir(const char *home, const char *cwd, char *out, size_t outlen);

/* The transcript file: <project dir>/<session_id>.jsonl. Returns 0, or -1
   on an invalid session id or when it does not fit. */
int agent_claude_session_path(
    const char *home, const char *cwd, const char *session_id, char *out, size_t outlen);

/* Exports a session: the transcript plus every regular file under
   <project dir>/<session_id>/ (tool results, subagents), as one bundle of
   bytes for Postgres (format in docs/claude-code.md). max_bytes caps the
   bundle (0 = AGENT_CLAUDE_SESSION_MAX). Returns 0 with *data (caller frees)
   and *len, or -1 with the reason in err (no transcript, too large, I/O). */
int agent_claude_session_export(const char *home,
                                const char *cwd,
                                const char *session_id,
                                size_t max_bytes,
                                char **data,
                                size_t *len,
                                char *err,
                                size_t errlen);

/* Writes an exported bundle back under home for cwd (either may differ from
   the export's), so `--resume session_id` finds it. Each file is written to
   a temporary name and renamed. Validates every path in the bundle (it must
   belong to session_id; no "..", no absolute paths). Returns 0, or -1 with
   the reason in err. */
int agent_claude_session_import(const char *home,
                                const char *cwd,
                                const char *session_id,
                                const char *data,
                                size_t len,
                                char *err,
                                size_t errlen);

#endif
