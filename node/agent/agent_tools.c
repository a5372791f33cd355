/*  agent_tools — dispatch of the built-in tools, their JSON schemas, the
    one-line descriptions used by permission requests, and the argument
    helpers every tool uses. agent_tool_run blocks (worker threads only); the
    rest is pure and thread-safe. */
#define LOG_MODULE "agent_tools"
#include "common/disk_usage.h"
#include "common/log.h"
#include "node/agent/agent_tool_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int(agent_tool_fn)(agent_tool_ctx_t *ctx);

typedef struct {
    const char *name;   /* the name models call */
    agent_tool_fn *run; /* the implementation */
} agent_tool_entry_t;

static const agent_tool_entry_t s_tools[] = {
    {"read_file", agent_tool_read_file},
    {"write_file", agent_tool_write_file},
    {"list_directory", agent_tool_list_directory},
    {"grep", agent_tool_grep},
    {"bash", agent_tool_bash},
    {"todo_write", agent_tool_todo_write},
};
#define AGENT_TOOL_COUNT (sizeof s_tools / sizeof s_tools[0])

/* The definitions sent to models. Kept as JSON text so that it reads like
   what the providers document. */
static const char s_schema_json[] =
    "["
    "{\"name\":\"read_file\",\"description\":\"Read a text file of the working tree. Returns "
    "up to `limit` lines starting at line `offset` (1-based), capped in size; `truncated` "
    "tells whether more follows.\",\"input_schema\":{\"type\":\"object\",\"properties\":{"
    "\"path\":{\"type\":\"string\",\"description\":\"path relative to the working tree\"},"
    "\"offset\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"first line (1-based)\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"number of lines\"}},"
    "\"required\":[\"path\"]}},"
    "{\"name\":\"write_file\",\"description\":\"Create or replace a file of the working tree "
    "with the given content; missing parent directories are created.\",\"input_schema\":{"
    "\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":"
    "\"path relative to the working tree\"},\"content\":{\"type\":\"string\"}},"
    "\"required\":[\"path\",\"content\"]}},"
    "{\"name\":\"list_directory\",\"description\":\"List a directory of the working tree: "
    "name, type (file, dir, symlink, other) and size of each entry.\",\"input_schema\":{"
    "\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":"
    "\"directory relative to the working tree (default: its root)\"}}}},"
    "{\"name\":\"grep\",\"description\":\"Search text files of the working tree for a POSIX "
    "extended regular expression; returns file, line number and line of each match. Binary "
    "files and .git are skipped.\",\"input_schema\":{\"type\":\"object\",\"properties\":{"
    "\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\",\"description\":"
    "\"file or directory to search (default: the whole tree)\"},\"max_results\":{\"type\":"
    "\"integer\",\"minimum\":1},\"ignore_case\":{\"type\":\"boolean\"}},"
    "\"required\":[\"pattern\"]}},"
    "{\"name\":\"bash\",\"description\":\"Run a command with /bin/bash -c in the working "
    "tree, stdin empty, with a timeout; returns exit code, stdout and stderr (capped).\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
    "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"seconds before the "
    "command and its children are killed\"}},\"required\":[\"command\"]}},"
    "{\"name\":\"todo_write\",\"description\":\"Replace the task list of this conversation. "
    "Each item has content and a status (pending, in_progress, completed).\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"todos\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"properties\":{\"content\":{\"type\":\"string\"},"
    "\"status\":{\"type\":\"string\",\"enum\":[\"pending\",\"in_progress\",\"completed\"]}},"
    "\"required\":[\"content\",\"status\"]}}},\"required\":[\"todos\"]}}"
    "]";

void agent_tool_limits_default(agent_tool_limits_t *out)
{
    *out = (agent_tool_limits_t){
        .read_max_bytes = 256 * 1024,
        .read_max_lines = 2000,
        .write_max_bytes = 1024 * 1024,
        .list_max_entries = 1000,
        .grep_max_results = 200,
        .grep_max_files = 20000,
        .grep_max_file_bytes = 8 * 1024 * 1024,
        .grep_max_line = 400,
        .grep_timeout_s = 30,
        .bash_max_output = 64 * 1024,
        .bash_max_command = 64 * 1024,
        .bash_timeout_s = 120,
        .bash_max_timeout_s = 600,
        .todo_max_items = 100,
    };
    agent_sandbox_limits_default(&out->rlimits);
}

int agent_tool_fail(agent_tool_ctx_t *ctx, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(*ctx->error);
    *ctx->error = strdup(buf);
    return -1;
}

int agent_tool_disk_check(agent_tool_ctx_t *ctx, long long adding, const char *what)
{
    long long quota = (long long)ctx->limits->rlimits.disk_mb << 20;
    if (quota <= 0) {
        return 0;
    }
    long long used = disk_usage(ctx->root_real, quota);
    if (used < 0) {
        return agent_tool_fail(ctx, "cannot measure the worktree's disk use; %s", what);
    }
    if (used + adding > quota) {
        return agent_tool_fail(ctx,
                               "disk quota: the worktree takes %lld MiB on disk%s; its quota is "
                               "%lld MiB (sandbox_disk_mb): %s. It must shrink below the quota "
                               "before tools may write to it again.",
                               (used + (1 << 20) - 1) >> 20,
                               adding ? " and this write would pass it" : "", quota >> 20, what);
    }
    return 0;
}

int agent_arg_string(
    agent_tool_ctx_t *ctx, const char *key, bool required, const char **out, size_t *len)
{
    json_t *value = json_object_get(ctx->args, key);
    *out = NULL;
    if (!value || json_is_null(value)) {
        return required ? agent_tool_fail(ctx, "missing argument \"%s\"", key) : 0;
    }
    if (!json_is_string(value)) {
        return agent_tool_fail(ctx, "argument \"%s\" must be a string", key);
    }
    const char *text = json_string_value(value);
    size_t n = json_string_length(value);
    if (strlen(text) != n) {
        return agent_tool_fail(ctx, "argument \"%s\" contains a NUL byte", key);
    }
    *out = text;
    if (len) {
        *len = n;
    }
    return 0;
}

int agent_arg_int(
    agent_tool_ctx_t *ctx, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out)
{
    json_t *value = json_object_get(ctx->args, key);
    *out = def;
    if (!value || json_is_null(value)) {
        return 0;
    }
    if (!json_is_integer(value)) {
        return agent_tool_fail(ctx, "argument \"%s\" must be an integer", key);
    }
    int64_t v = (int64_t)json_integer_value(value);
    if (v < min || v > max) {
        return agent_tool_fail(ctx, "argument \"%s\" must be between %lld and %lld", key,
                               (long long)min, (long long)max);
    }
    *out = v;
    return 0;
}

int agent_arg_path(
    agent_tool_ctx_t *ctx, const char *key, const char *def, bool for_create, char out[PATH_MAX])
{
    const char *path;
    if (agent_arg_string(ctx, key, def == NULL, &path, NULL) != 0) {
        return -1;
    }
    if (!path) {
        path = def;
    }
    const char *why;
    if (agent_path_resolve(ctx->root_real, path, for_create, out, &why) != 0) {
        /* Every path argument is called "path"; the reason names it already. */
        return agent_tool_fail(ctx, "%s", why);
    }
    return 0;
}

static const agent_tool_entry_t *s_find(const char *name)
{
    for (size_t i = 0; name && i < AGENT_TOOL_COUNT; i++) {
        if (strcmp(s_tools[i].name, name) == 0) {
            return &s_tools[i];
        }
    }
    return NULL;
}

bool agent_tool_known(const char *name)
{
    return s_find(name) != NULL;
}

int agent_tool_run(const char *root,
                   const char *tool_name,
                   json_t *args,
                   const agent_tool_limits_t *limits,
                   json_t **result,
                   char **error)
{
    assert(result && error);
    *result = NULL;
    *error = NULL;
    agent_tool_limits_t defaults;
    if (!limits) {
        agent_tool_limits_default(&defaults);
        limits = &defaults;
    }
    agent_tool_ctx_t ctx = {.limits = limits, .args = args, .result = result, .error = error};
    const agent_tool_entry_t *tool = s_find(tool_name);
    if (!tool) {
        return agent_tool_fail(&ctx, "unknown tool \"%s\"", tool_name ? tool_name : "");
    }
    if (!json_is_object(args)) {
        return agent_tool_fail(&ctx, "the arguments of %s must be a JSON object", tool->name);
    }
    if (!root || root[0] != '/' || !realpath(root, ctx.root_real) ||
        strcmp(ctx.root_real, "/") == 0) {
        LOG_W("tool refused: bad root tool=%s", tool->name);
        return agent_tool_fail(&ctx, "the worktree is not available");
    }
    int rc = tool->run(&ctx);
    if (rc == 0 && !*result) {
        return agent_tool_fail(&ctx, "out of memory");
    }
    if (rc != 0 && !*error) {
        *error = strdup("the tool failed");
    }
    if (rc != 0) {
        json_decref(*result);
        *result = NULL;
    }
    return rc;
}

json_t *agent_tools_schema(void)
{
    json_error_t err;
    json_t *schema = json_loads(s_schema_json, 0, &err);
    assert(schema); /* a static text: failing to parse is a programming error */
    return schema;
}

/* Copies src into the describe buffer, replacing control characters with a
   space and stopping at the cap. */
static void s_append_clean(char *buf, size_t cap, const char *src)
{
    size_t used = strlen(buf);
    for (; src && *src && used + 1 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        buf[used++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    buf[used] = '\0';
}

/* Cuts buf at cap bytes without splitting a UTF-8 sequence, adding "…". */
static void s_cap_line(char *buf, size_t cap)
{
    if (strlen(buf) <= cap) {
        return;
    }
    size_t cut = cap;
    while (cut > 0 && ((unsigned char)buf[cut] & 0xC0) == 0x80) {
        cut--;
    }
    strcpy(buf + cut, "\xE2\x80\xA6");
}

static const char *s_str_arg(json_t *args, const char *key)
{
    const char *s = json_string_value(json_object_get(args, key));
    return s ? s : "?";
}

char *agent_tool_describe(const char *tool_name, json_t *args)
{
    char buf[1024] = "";
    const char *name = tool_name ? tool_name : "?";
    if (strcmp(name, "read_file") == 0) {
        s_append_clean(buf, sizeof buf, "Read file ");
        s_append_clean(buf, sizeof buf, s_str_arg(args, "path"));
    } else if (strcmp(name, "write_file") == 0) {
        char size[64];
        snprintf(size, sizeof size, " (%zu bytes)",
                 json_string_length(json_object_get(args, "content")));
        s_append_clean(buf, sizeof buf, "Write file ");
        s_append_clean(buf, sizeof buf, s_str_arg(args, "path"));
        s_append_clean(buf, sizeof buf, size);
    } else if (strcmp(name, "list_directory") == 0) {
        const char *path = json_string_value(json_object_get(args, "path"));
        s_append_clean(buf, sizeof buf, "List directory ");
        s_append_clean(buf, sizeof buf, path ? path : ".");
    } else if (strcmp(name, "grep") == 0) {
        const char *path = json_string_value(json_object_get(args, "path"));
        s_append_clean(buf, sizeof buf, "Search for /");
        s_append_clean(buf, sizeof buf, s_str_arg(args, "pattern"));
        s_append_clean(buf, sizeof buf, "/ in ");
        s_append_clean(buf, sizeof buf, path ? path : ".");
    } else if (strcmp(name, "bash") == 0) {
        s_append_clean(buf, sizeof buf, "Run bash: ");
        s_append_clean(buf, sizeof buf, s_str_arg(args, "command"));
    } else if (strcmp(name, "todo_write") == 0) {
        char line[64];
        snprintf(line, sizeof line, "Update the task list (%zu items)",
                 json_array_size(json_object_get(args, "todos")));
        s_append_clean(buf, sizeof buf, line);
    } else {
        s_append_clean(buf, sizeof buf, "Call tool ");
        s_append_clean(buf, sizeof buf, name);
    }
    s_cap_line(buf, 200);
    return strdup(buf);
}
