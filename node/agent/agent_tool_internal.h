/*  agent_tool_internal — what the tool files share: the call context,
    argument helpers, confined opening and UTF-8 clean-up. Worker threads
    only (the same thread as the agent_tool_run call). */
#ifndef BICKY_AGENT_TOOL_INTERNAL_H
#define BICKY_AGENT_TOOL_INTERNAL_H

#include "node/agent/agent_tools.h"

#include <stdint.h>

/* Everything one tool call needs. */
typedef struct {
    char root_real[PATH_MAX];          /* realpath of the worktree root */
    const agent_tool_limits_t *limits; /* never NULL */
    json_t *args;                      /* borrowed JSON object */
    json_t **result;                   /* where the tool puts its new result */
    char **error;                      /* where a failure message goes */
} agent_tool_ctx_t;

/* Sets *ctx->error to the formatted message (replacing any earlier one) and
   returns -1, so that tools can `return agent_tool_fail(ctx, ...)`. */
int agent_tool_fail(agent_tool_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The disk quota (limits->rlimits.disk_mb, 0 = none) before a tool writes: fails
   (agent_tool_fail, a message naming sandbox_disk_mb) when the worktree already takes
   more than the quota on disk, or would with adding bytes more. Walks the whole tree
   (common/disk_usage.h): blocking, worker threads only. Returns 0 or -1. */
int agent_tool_disk_check(agent_tool_ctx_t *ctx, long long adding, const char *what);

/* Reads string argument key. A missing key gives *out = NULL and 0 unless
   required. Refuses a non-string and a string with an embedded NUL byte.
   *out is borrowed from args. len may be NULL. */
int agent_arg_string(
    agent_tool_ctx_t *ctx, const char *key, bool required, const char **out, size_t *len);

/* Reads optional integer argument key into *out: def when missing; refuses a
   non-integer or a value outside [min, max]. */
int agent_arg_int(
    agent_tool_ctx_t *ctx, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out);

/* Reads path argument key (def when missing and def != NULL) and resolves it
   with agent_path_resolve against ctx->root_real into out. */
int agent_arg_path(
    agent_tool_ctx_t *ctx, const char *key, const char *def, bool for_create, char out[PATH_MAX]);

/* Opens the parent directory of resolved (an output of agent_path_resolve
   against root_real) by walking down from root_real one component at a time
   with O_NOFOLLOW, so that a symlink swapped in after resolution is refused
   rather than followed. With mkdirs, missing directories are created (0755).
   Copies the last component into name ("." when resolved is the root itself).
   Returns a directory fd (caller closes), or -1 with errno set. */
int agent_path_open_parent(const char *root_real,
                           const char *resolved,
                           bool mkdirs,
                           char name[NAME_MAX + 1]);

/* The part of resolved below root_real ("." for the root itself). Borrowed
   from resolved. */
const char *agent_path_rel(const char *root_real, const char *resolved);

/* A new JSON string holding buf[0..len) with every invalid UTF-8 sequence and
   every NUL byte replaced by U+FFFD, so that any bytes become valid JSON text
   (and Postgres text). Returns NULL when out of memory. */
json_t *agent_json_text(const char *buf, size_t len);

/* The tools, each reading ctx->args and setting *ctx->result or *ctx->error. */
int agent_tool_read_file(agent_tool_ctx_t *ctx);
int agent_tool_write_file(agent_tool_ctx_t *ctx);
int agent_tool_list_directory(agent_tool_ctx_t *ctx);
int agent_tool_grep(agent_tool_ctx_t *ctx);
int agent_tool_bash(agent_tool_ctx_t *ctx);
int agent_tool_todo_write(agent_tool_ctx_t *ctx);

#endif
