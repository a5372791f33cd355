/*  agent_claude_parse — one stream-json line of the CLI's stdout → callbacks
    (CLAUDE_CODE.md lists the lines): system/init → on_init; stream_event
    message_start / text_delta of the top-level agent → on_message_start /
    on_text; assistant tool_use blocks →
    on_tool_started; user tool_result blocks → on_tool_completed;
    control_request can_use_tool → on_permission (other subtypes get an
    error control_response); result → kept for on_done. Unknown line types
    are ignored (newer CLIs add some); a line that is not a JSON object with
    a string "type" is malformed. Every callback is skipped once the run is
    finished (a callback may cancel it). The result line becomes on_done's
    struct here too (agent_claude_result_read). Loop thread only. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_REQUEST_ID 128

static const char *s_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

static void s_on_system(agent_claude_run_t *run, json_t *msg)
{
    if (strcmp(s_str(msg, "subtype"), "init") != 0 || run->init_seen) {
        return;
    }
    run->init_seen = true;
    if (run->cb.on_init && !run->finished) {
        run->cb.on_init(run->arg, s_str(msg, "session_id"));
    }
}

/* Text of the top-level agent only: a subagent's (parent_tool_use_id set)
   is its own conversation, not the assistant's answer. */
static void s_on_stream_event(agent_claude_run_t *run, json_t *msg)
{
    json_t *event = json_object_get(msg, "event");
    json_t *delta = json_object_get(event, "delta");
    json_t *parent = json_object_get(msg, "parent_tool_use_id");
    if (parent && !json_is_null(parent)) {
        return;
    }
    if (strcmp(s_str(event, "type"), "message_start") == 0) {
        if (run->cb.on_message_start && !run->finished) {
            run->cb.on_message_start(run->arg);
        }
        return;
    }
    if (strcmp(s_str(event, "type"), "content_block_delta") != 0 ||
        strcmp(s_str(delta, "type"), "text_delta") != 0) {
        return;
    }
    json_t *text = json_object_get(delta, "text");
    size_t len = json_string_length(text);
    if (json_is_string(text) && len > 0 && run->cb.on_text && !run->finished) {
        run->cb.on_text(run->arg, json_string_value(text), len);
    }
}

static void s_on_assistant(agent_claude_run_t *run, json_t *msg)
{
    json_t *content = json_object_get(json_object_get(msg, "message"), "content");
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        if (strcmp(s_str(block, "type"), "tool_use") != 0) {
            continue;
        }
        json_t *input = json_object_get(block, "input");
        json_t *empty = input ? NULL : json_object();
        if (run->cb.on_tool_started && !run->finished) {
            run->cb.on_tool_started(run->arg, s_str(block, "id"), s_str(block, "name"),
                                    input ? input : empty);
        }
        json_decref(empty);
    }
}

/* A tool_result's content as text: a string as is; text blocks joined by
   newlines, other blocks as "[type]". Caller frees. */
static char *s_result_text(json_t *content)
{
    if (json_is_string(content)) {
        return strdup(json_string_value(content));
    }
    size_t cap = 1, i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        cap += strlen(s_str(block, "text")) + strlen(s_str(block, "type")) + 3;
    }
    char *out = calloc(1, cap);
    if (!out) {
        return NULL;
    }
    json_array_foreach(content, i, block)
    {
        if (i) {
            strcat(out, "\n");
        }
        if (strcmp(s_str(block, "type"), "text") == 0) {
            strcat(out, s_str(block, "text"));
        } else {
            strcat(out, "[");
            strcat(out, s_str(block, "type"));
            strcat(out, "]");
        }
    }
    return out;
}

static void s_on_user(agent_claude_run_t *run, json_t *msg)
{
    json_t *content = json_object_get(json_object_get(msg, "message"), "content");
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        if (strcmp(s_str(block, "type"), "tool_result") != 0) {
            continue;
        }
        char *text = s_result_text(json_object_get(block, "content"));
        if (run->cb.on_tool_completed && !run->finished) {
            run->cb.on_tool_completed(run->arg, s_str(block, "tool_use_id"), text ? text : "",
                                      json_is_true(json_object_get(block, "is_error")));
        }
        free(text);
    }
}

static void s_send_control_error(agent_claude_run_t *run, const char *request_id, const char *why)
{
    json_t *line = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "control_response", "response",
                             "subtype", "error", "request_id", request_id, "error", why);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (!text || agent_claude_io_send(run, text) < 0) {
        LOG_W("cannot answer claude control request pid=%d", (int)run->pid);
    }
    free(text);
    json_decref(line);
}

static bool s_request_id_ok(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > S_MAX_REQUEST_ID) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static void s_deny_now(agent_claude_run_t *run, const char *request_id, const char *why)
{
    json_t *line = json_pack("{s:s, s:{s:s, s:s, s:{s:s, s:s}}}", "type", "control_response",
                             "response", "subtype", "success", "request_id", request_id, "response",
                             "behavior", "deny", "message", why);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (!text || agent_claude_io_send(run, text) < 0) {
        LOG_W("cannot deny claude permission request pid=%d", (int)run->pid);
    }
    free(text);
    json_decref(line);
}

static int s_on_control_request(agent_claude_run_t *run, json_t *msg, char *err, size_t errlen)
{
    const char *id = s_str(msg, "request_id");
    json_t *req = json_object_get(msg, "request");
    if (!s_request_id_ok(id) || !json_is_object(req)) {
        snprintf(err, errlen, "malformed claude control_request");
        return -1;
    }
    if (strcmp(s_str(req, "subtype"), "can_use_tool") != 0) {
        s_send_control_error(run, id, "unsupported control request");
        return 0;
    }
    json_t *input = json_object_get(req, "input");
    if (!json_is_object(input)) {
        s_deny_now(run, id, "Bicky: the tool input is not an object");
        return 0;
    }
    if (json_object_size(run->pending) >= AGENT_CLAUDE_MAX_PENDING) {
        s_deny_now(run, id, "Bicky: too many open permission requests");
        return 0;
    }
    json_object_set(run->pending, id, input);
    agent_claude_perm_t perm = {.request_id = id,
                                .tool_name = s_str(req, "tool_name"),
                                .tool_use_id = s_str(req, "tool_use_id"),
                                .description = s_str(req, "description"),
                                .blocked_path = s_str(req, "blocked_path"),
                                .input = input};
    if (run->cb.on_permission && !run->finished) {
        run->cb.on_permission(run->arg, &perm);
    } else if (!run->cb.on_permission) {
        json_object_del(run->pending, id);
        s_deny_now(run, id, "Bicky: no permission handler");
    }
    return 0;
}

static int s_dispatch(agent_claude_run_t *run, const char *type, json_t *msg, char *err, size_t n)
{
    if (strcmp(type, "stream_event") == 0) {
        s_on_stream_event(run, msg);
    } else if (strcmp(type, "system") == 0) {
        s_on_system(run, msg);
    } else if (strcmp(type, "assistant") == 0) {
        s_on_assistant(run, msg);
    } else if (strcmp(type, "user") == 0) {
        s_on_user(run, msg);
    } else if (strcmp(type, "control_request") == 0) {
        return s_on_control_request(run, msg, err, n);
    } else if (strcmp(type, "control_cancel_request") == 0) {
        json_object_del(run->pending, s_str(msg, "request_id"));
    } else if (strcmp(type, "result") == 0) {
        agent_claude_on_result(run, msg);
    } else {
        LOG_D("claude line ignored pid=%d type=%.32s", (int)run->pid, type);
    }
    return 0;
}

int agent_claude_parse_line(
    agent_claude_run_t *run, const char *line, size_t len, char *err, size_t errlen)
{
    size_t blank = 0;
    while (blank < len && (line[blank] == ' ' || line[blank] == '\t' || line[blank] == '\r')) {
        blank++;
    }
    if (blank == len) {
        return 0;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!json_is_object(msg) || !type) {
        snprintf(err, errlen, "malformed claude output line: %s",
                 msg ? "not an object with a type" : jerr.text);
        json_decref(msg);
        return -1;
    }
    int rc = s_dispatch(run, type, msg, err, errlen);
    json_decref(msg);
    return rc;
}

/* A count of the result line. A real outside long's range (1e300) reads as
   0: converting it would be undefined behaviour (fuzz_claude_parse). */
static long s_long(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        return (long)json_integer_value(v);
    }
    double d = json_number_value(v);
    return d >= (double)LONG_MIN && d < (double)LONG_MAX ? (long)d : 0;
}

void agent_claude_result_read(const json_t *r, int exit_status, agent_claude_result_t *res)
{
    json_t *usage = json_object_get(r, "usage");
    json_t *denials = json_object_get(r, "permission_denials");
    json_t *errors = json_object_get(r, "errors");
    *res = (agent_claude_result_t){
        .text = s_str(r, "result"),
        .session_id = s_str(r, "session_id"),
        .subtype = s_str(r, "subtype"),
        .stop_reason = s_str(r, "stop_reason"),
        .is_error = json_is_true(json_object_get(r, "is_error")),
        .input_tokens = s_long(usage, "input_tokens"),
        .output_tokens = s_long(usage, "output_tokens"),
        .cache_read_tokens = s_long(usage, "cache_read_input_tokens"),
        .cache_creation_tokens = s_long(usage, "cache_creation_input_tokens"),
        .total_cost_usd = json_number_value(json_object_get(r, "total_cost_usd")),
        .num_turns = s_long(r, "num_turns"),
        .exit_status = exit_status,
        .permission_denials = json_is_array(denials) ? denials : NULL,
        .errors = json_is_array(errors) ? errors : NULL,
    };
}
