/*  agent_tools — the built-in tools of the HTTP strategies (read_file,
    write_file, list_directory, grep, bash, todo_write), confined to one
    directory (the conversation's worktree). agent_tool_run blocks: call it on
    an agent_pool worker, never on a loop. Everything else here is pure and
    may be called from any thread. */
#ifndef BICKY_AGENT_TOOLS_H
#define BICKY_AGENT_TOOLS_H

#include "node/agent/agent_guard.h"
#include "node/agent/agent_sandbox.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest path a model may name, in bytes (before resolution). */
#define AGENT_TOOL_MAX_USER_PATH 4096

/* Caps applied by the tools; agent_tool_limits_default fills the defaults. */
typedef struct {
    size_t read_max_bytes;          /* read_file: bytes returned per call (256 KiB) */
    size_t read_max_lines;          /* read_file: default and largest `limit` (2000) */
    size_t write_max_bytes;         /* write_file: largest content (1 MiB) */
    size_t list_max_entries;        /* list_directory: entries returned (1000) */
    size_t grep_max_results;        /* grep: default and largest max_results (200) */
    size_t grep_max_files;          /* grep: files examined per call (20000) */
    size_t grep_max_file_bytes;     /* grep: larger files are skipped (8 MiB) */
    size_t grep_max_line;           /* grep: bytes of a matching line returned (400) */
    int grep_timeout_s;             /* grep: wall-clock budget (30 s) */
    size_t bash_max_output;         /* bash: bytes kept per stream, stdout and stderr (64 KiB) */
    size_t bash_max_command;        /* bash: longest command (64 KiB) */
    int bash_timeout_s;             /* bash: default timeout (120 s) */
    int bash_max_timeout_s;         /* bash: largest timeout_s a model may ask for (600 s) */
    size_t todo_max_items;          /* todo_write: items (100) */
    const agent_guard_t *guard;     /* bash: started through bicky-exec (NULL = directly) */
    const agent_sandbox_t *sandbox; /* bash: the node's sandbox (NULL or disabled = none) */
    bool sandbox_off;               /* bash: the strategy opted out (sandbox = false) */
    bool network;                   /* bash: the sandbox keeps the network (tool_network) */
    agent_sandbox_limits_t rlimits; /* bash: resource limits (bicky-exec --limits) */
    const atomic_bool *cancel; /* bash: set by another thread = kill the command now (or NULL) */
} agent_tool_limits_t;

/* Fills *out with the default limits. */
void agent_tool_limits_default(agent_tool_limits_t *out);

/* Runs tool `tool_name` with `args` (a JSON object, borrowed) confined to the
   directory `root` (absolute, must exist). limits may be NULL (defaults).
   Returns 0 and a new JSON object in *result (caller decrefs), or -1 and a
   message for the model in *error (caller frees; also set for unknown tools
   and invalid arguments). Blocking: call on a worker thread. */
int agent_tool_run(const char *root,
                   const char *tool_name,
                   json_t *args,
                   const agent_tool_limits_t *limits,
                   json_t **result,
                   char **error);

/* The tool definitions: a new JSON array of {"name", "description",
   "input_schema"} (JSON Schema objects). Anthropic takes each item as is;
   OpenAI wants {"type":"function","function":{name, description,
   parameters: input_schema}}. Caller decrefs. */
json_t *agent_tools_schema(void);

/* True when name is one of the built-in tools. */
bool agent_tool_known(const char *name);

/* A one-line description of the call for a permission request, e.g.
   "Run bash: make test" or "Write file src/a.c (120 bytes)"; control
   characters are replaced and the line is capped at about 200 bytes. args is
   borrowed and may be NULL. Returns a new string (caller frees), or NULL when
   out of memory. */
char *agent_tool_describe(const char *tool_name, json_t *args);

/* Confinement. Resolves user_path (relative to root) to an absolute real path
   inside root, written to out. Refuses: an empty path, one longer than
   AGENT_TOOL_MAX_USER_PATH, an absolute path, and any path whose resolution
   (symlinks followed, `..` applied) is not root itself or below root + "/".
   With for_create, a missing target is allowed when its deepest existing
   ancestor resolves inside root and the missing components contain no `..`.
   Returns 0, or -1 with *why set to a static message for the model.
   (Embedded NUL bytes are refused by agent_tool_run before this is called.) */
int agent_path_resolve(
    const char *root, const char *user_path, bool for_create, char out[PATH_MAX], const char **why);

#endif
