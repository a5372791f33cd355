/*  agent_llm_history — validation of the provider-neutral history and tool
    definitions (documented in agent_llm.h), so the provider translators can
    assume a well-formed input. Pure functions; any thread. */
#include "node/agent/agent_llm_internal.h"

#include <stdio.h>
#include <string.h>

#define S_MAX_ID 256 /* longest tool call id or tool name */

static bool s_nonempty(const json_t *v, size_t max)
{
    const char *s = json_string_value(v);
    return s && s[0] && strlen(s) <= max;
}

static int s_check_calls(const json_t *calls, size_t i, char *err, size_t errlen)
{
    if (!json_is_array(calls)) {
        snprintf(err, errlen, "messages[%zu].tool_calls is not an array", i);
        return -1;
    }
    size_t j;
    const json_t *c;
    json_array_foreach(calls, j, c)
    {
        const json_t *args = json_object_get(c, "arguments");
        if (!json_is_object(c) || !s_nonempty(json_object_get(c, "id"), S_MAX_ID) ||
            !s_nonempty(json_object_get(c, "name"), S_MAX_ID)) {
            snprintf(err, errlen, "messages[%zu].tool_calls[%zu] needs a string id and name", i, j);
            return -1;
        }
        if (args && !json_is_object(args)) {
            snprintf(err, errlen, "messages[%zu].tool_calls[%zu].arguments is not an object", i, j);
            return -1;
        }
    }
    return 0;
}

static int s_check_message(const json_t *m, size_t i, char *err, size_t errlen)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    const json_t *calls = json_object_get(m, "tool_calls");
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool") &&
                  strcmp(role, "system"))) {
        snprintf(err, errlen, "messages[%zu].role must be user, assistant, tool or system", i);
        return -1;
    }
    bool assistant = strcmp(role, "assistant") == 0;
    if (!json_is_string(content) && !(assistant && (!content || json_is_null(content)))) {
        snprintf(err, errlen, "messages[%zu].content must be a string", i);
        return -1;
    }
    if (calls && !json_is_null(calls) &&
        (!assistant || s_check_calls(calls, i, err, errlen) != 0)) {
        if (!assistant) {
            snprintf(err, errlen, "messages[%zu]: only assistant messages have tool_calls", i);
        }
        return -1;
    }
    if (strcmp(role, "tool") == 0) {
        const json_t *is_error = json_object_get(m, "is_error");
        if (!s_nonempty(json_object_get(m, "tool_call_id"), S_MAX_ID)) {
            snprintf(err, errlen, "messages[%zu].tool_call_id must be a non-empty string", i);
            return -1;
        }
        if (is_error && !json_is_boolean(is_error)) {
            snprintf(err, errlen, "messages[%zu].is_error must be a boolean", i);
            return -1;
        }
    }
    return 0;
}

static int s_check_tools(const json_t *tools, char *err, size_t errlen)
{
    if (!json_is_array(tools)) {
        snprintf(err, errlen, "tools is not an array");
        return -1;
    }
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *desc = json_object_get(t, "description");
        const json_t *schema = agent_llm_tool_schema(t);
        if (!json_is_object(t) || !s_nonempty(json_object_get(t, "name"), S_MAX_ID)) {
            snprintf(err, errlen, "tools[%zu] needs a string name", i);
            return -1;
        }
        if ((desc && !json_is_string(desc)) || (schema && !json_is_object(schema))) {
            snprintf(err, errlen,
                     "tools[%zu]: description must be a string, input_schema an "
                     "object",
                     i);
            return -1;
        }
    }
    return 0;
}

int agent_llm_check(const json_t *messages, const json_t *tools, char *err, size_t errlen)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        snprintf(err, errlen, "messages must be a non-empty array");
        return -1;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m)
    {
        if (!json_is_object(m)) {
            snprintf(err, errlen, "messages[%zu] is not an object", i);
            return -1;
        }
        if (s_check_message(m, i, err, errlen) != 0) {
            return -1;
        }
    }
    return tools && !json_is_null(tools) ? s_check_tools(tools, err, errlen) : 0;
}

const char *agent_llm_content(const json_t *msg)
{
    const char *text = json_string_value(json_object_get(msg, "content"));
    return text ? text : "";
}

json_t *agent_llm_tool_schema(const json_t *tool)
{
    json_t *schema = json_object_get(tool, "input_schema");
    return schema ? schema : json_object_get(tool, "parameters");
}
