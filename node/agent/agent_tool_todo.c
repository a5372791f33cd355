/*  agent_tool_todo — todo_write: validates and normalises the model's task
    list and returns it; the node stores it as an event. Pure: it touches no
    file. Any thread. */
#include "node/agent/agent_tool_internal.h"

#include <string.h>

/* Longest content of one item, in bytes. */
#define AGENT_TODO_MAX_CONTENT 2000

static const char *const s_statuses[] = {"pending", "in_progress", "completed"};

/* Index of status in s_statuses, or -1. */
static int s_status_index(const char *status)
{
    for (int i = 0; status && i < 3; i++) {
        if (strcmp(status, s_statuses[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Validates item i and appends its normalised form to list; counts[] per status. */
static int
s_todo_item(agent_tool_ctx_t *ctx, size_t i, json_t *item, json_t *list, json_int_t counts[3])
{
    json_t *content = json_object_get(item, "content");
    json_t *status = json_object_get(item, "status");
    if (!json_is_object(item) || !json_is_string(content) || !json_is_string(status)) {
        return agent_tool_fail(ctx, "todos[%zu] must be an object with string content and status",
                               i);
    }
    size_t len = json_string_length(content);
    if (len == 0 || len > AGENT_TODO_MAX_CONTENT || strlen(json_string_value(content)) != len) {
        return agent_tool_fail(ctx, "todos[%zu].content must be 1 to %d bytes without NUL", i,
                               AGENT_TODO_MAX_CONTENT);
    }
    int idx = s_status_index(json_string_value(status));
    if (idx < 0) {
        return agent_tool_fail(ctx, "todos[%zu].status must be pending, in_progress or completed",
                               i);
    }
    counts[idx]++;
    return json_array_append_new(
        list, json_pack("{s:O, s:s}", "content", content, "status", s_statuses[idx]));
}

int agent_tool_todo_write(agent_tool_ctx_t *ctx)
{
    json_t *todos = json_object_get(ctx->args, "todos");
    if (!json_is_array(todos)) {
        return agent_tool_fail(ctx, "argument \"todos\" must be an array");
    }
    if (json_array_size(todos) > ctx->limits->todo_max_items) {
        return agent_tool_fail(ctx, "at most %zu todos", ctx->limits->todo_max_items);
    }
    json_t *list = json_array();
    json_int_t counts[3] = {0, 0, 0};
    size_t i;
    json_t *item;
    json_array_foreach(todos, i, item)
    {
        if (!list || s_todo_item(ctx, i, item, list, counts) != 0) {
            json_decref(list);
            return -1;
        }
    }
    *ctx->result = json_pack("{s:o, s:{s:I, s:I, s:I}}", "todos", list, "counts", "pending",
                             counts[0], "in_progress", counts[1], "completed", counts[2]);
    return 0;
}
