/*  agent_llm_anthropic — the Anthropic Messages API: POST {base_url}/v1/messages
    with "stream": true. The stream is message_start, then per content block
    content_block_start / content_block_delta (text_delta, input_json_delta)
    / content_block_stop, then message_delta (stop_reason, output usage) and
    message_stop; ping and unknown events are ignored, an error event fails
    the request. Loop thread only. */
#include "node/agent/agent_llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_API_VERSION "2023-06-01"

/* --- request ---------------------------------------------------------------- */

/* Appends block (taken) to the last message when it has the same role (the
   API wants user and assistant to alternate), else to a new message. */
static int s_add_block(json_t *messages, const char *role, json_t *block)
{
    json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    const char *last_role = json_string_value(json_object_get(last, "role"));
    if (!block) {
        return -1;
    }
    if (last_role && strcmp(last_role, role) == 0) {
        return json_array_append_new(json_object_get(last, "content"), block);
    }
    json_t *msg = json_pack("{s:s, s:[o]}", "role", role, "content", block);
    return json_array_append_new(messages, msg);
}

static int s_add_assistant(json_t *messages, const json_t *m)
{
    const char *text = agent_llm_content(m);
    if (text[0] &&
        s_add_block(messages, "assistant", json_pack("{s:s, s:s}", "type", "text", "text", text))) {
        return -1;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(m, "tool_calls"), i, c)
    {
        json_t *args = json_object_get(c, "arguments");
        json_t *block = json_pack("{s:s, s:O, s:O, s:o}", "type", "tool_use", "id",
                                  json_object_get(c, "id"), "name", json_object_get(c, "name"),
                                  "input", args ? json_incref(args) : json_object());
        if (s_add_block(messages, "assistant", block) != 0) {
            return -1;
        }
    }
    return 0;
}

static int s_add_message(json_t *messages, const json_t *m)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *text = agent_llm_content(m);
    if (strcmp(role, "assistant") == 0) {
        return s_add_assistant(messages, m);
    }
    if (strcmp(role, "tool") == 0) {
        json_t *block = json_pack("{s:s, s:O, s:s}", "type", "tool_result", "tool_use_id",
                                  json_object_get(m, "tool_call_id"), "content", text);
        if (block && json_is_true(json_object_get(m, "is_error"))) {
            json_object_set_new(block, "is_error", json_true());
        }
        return s_add_block(messages, "user", block);
    }
    if (strcmp(role, "user") == 0 && text[0]) {
        return s_add_block(messages, "user", json_pack("{s:s, s:s}", "type", "text", "text", text));
    }
    return 0; /* system messages go to the top-level system; empty text is dropped */
}

/* The top-level system text: system_prompt, then every system message. */
static char *s_system(const agent_llm_params_t *p)
{
    const char *prompt = p->strategy->system_prompt;
    char *out = strdup(prompt ? prompt : "");
    size_t i;
    const json_t *m;
    json_array_foreach(p->messages, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!out || strcmp(role, "system") != 0) {
            continue;
        }
        char *joined = NULL;
        if (asprintf(&joined, "%s%s%s", out, out[0] ? "\n\n" : "", agent_llm_content(m)) < 0) {
            joined = NULL;
        }
        free(out);
        out = joined;
    }
    return out;
}

static json_t *s_tools(const json_t *tools)
{
    json_t *out = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *schema = agent_llm_tool_schema(t);
        json_t *desc = json_object_get(t, "description");
        json_t *tool = json_pack("{s:O, s:o}", "name", json_object_get(t, "name"), "input_schema",
                                 schema ? json_incref(schema)
                                        : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        if (tool && desc) {
            json_object_set(tool, "description", desc);
        }
        if (!out || json_array_append_new(out, tool) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *s_build(const agent_llm_params_t *p, agent_llm_error_t *err)
{
    const cfg_strategy_t *s = p->strategy;
    json_t *messages = json_array();
    char *system = s_system(p);
    json_t *body = NULL;
    size_t i;
    const json_t *m;
    json_array_foreach(p->messages, i, m)
    {
        if (!messages || s_add_message(messages, m) != 0) {
            agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "cannot translate messages[%zu]", i);
            goto out;
        }
    }
    body = json_pack("{s:s, s:I, s:b, s:O}", "model", s->model, "max_tokens",
                     (json_int_t)s->max_tokens, "stream", 1, "messages", messages);
    if (body && system && system[0] && json_object_set_new(body, "system", json_string(system))) {
        json_decref(body);
        body = NULL;
    }
    if (body && s->temperature_set) {
        json_object_set_new(body, "temperature", json_real(s->temperature));
    }
    if (body && p->tools && json_array_size(p->tools) > 0 &&
        json_object_set_new(body, "tools", s_tools(p->tools)) != 0) {
        json_decref(body);
        body = NULL;
    }
    if (!body) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST,
                            "cannot build the Anthropic request "
                            "(invalid UTF-8 in model, system_prompt or tools, or out of memory)");
    }
out:
    json_decref(messages);
    free(system);
    return body;
}

static int s_auth_headers(const char *api_key, char **lines)
{
    if (!(lines[0] = strdup("anthropic-version: " S_API_VERSION))) {
        return -1;
    }
    if (api_key && api_key[0] && asprintf(&lines[1], "x-api-key: %s", api_key) < 0) {
        lines[1] = NULL;
        return -1;
    }
    return 0;
}

/* --- stream ------------------------------------------------------------------ */

static int s_block_index(agent_llm_request_t *self, const json_t *ev)
{
    const json_t *index = json_object_get(ev, "index");
    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        json_integer_value(index) > 100000) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL,
                              "anthropic event without a valid index");
    }
    return (int)json_integer_value(index);
}

static int s_block_start(agent_llm_request_t *self, const json_t *ev)
{
    int index = s_block_index(self, ev);
    const json_t *block = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(block, "type"));
    if (index < 0 || !type) {
        return index < 0
                   ? -1
                   : agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "content block without type");
    }
    if (strcmp(type, "text") == 0) {
        const json_t *text = json_object_get(block, "text");
        return agent_llm_emit_text(self, json_string_value(text), json_string_length(text));
    }
    if (strcmp(type, "tool_use") != 0) {
        return 0; /* thinking and server-side blocks are not ours to act on */
    }
    agent_llm_tool_t *t = agent_llm_tool(self, index, true);
    const json_t *input = json_object_get(block, "input");
    if (!t || agent_llm_tool_set(self, &t->id, json_string_value(json_object_get(block, "id"))) ||
        agent_llm_tool_set(self, &t->name, json_string_value(json_object_get(block, "name")))) {
        return -1;
    }
    if (json_is_object(input) && !t->input) {
        t->input = json_incref((json_t *)input);
    }
    return 0;
}

static int s_block_delta(agent_llm_request_t *self, const json_t *ev)
{
    int index = s_block_index(self, ev);
    const json_t *delta = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(delta, "type"));
    if (index < 0) {
        return -1;
    }
    if (type && strcmp(type, "text_delta") == 0) {
        const json_t *text = json_object_get(delta, "text");
        return agent_llm_emit_text(self, json_string_value(text), json_string_length(text));
    }
    if (type && strcmp(type, "input_json_delta") == 0) {
        agent_llm_tool_t *t = agent_llm_tool(self, index, false);
        const json_t *part = json_object_get(delta, "partial_json");
        if (!t) {
            return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL,
                                  "input_json_delta for block %d, which is not a tool_use", index);
        }
        return agent_llm_tool_append(self, t,
                                     json_string_value(part) ? json_string_value(part) : "",
                                     json_string_length(part));
    }
    return 0; /* thinking_delta, signature_delta, citations_delta */
}

static void s_usage(agent_llm_request_t *self, const json_t *usage)
{
    const json_t *in = json_object_get(usage, "input_tokens");
    const json_t *out = json_object_get(usage, "output_tokens");
    if (json_is_integer(in)) {
        self->usage.input_tokens = json_integer_value(in);
    }
    if (json_is_integer(out)) {
        self->usage.output_tokens = json_integer_value(out);
    }
}

static int s_event(agent_llm_request_t *self, const char *type, const json_t *ev)
{
    if (strcmp(type, "content_block_delta") == 0) {
        return s_block_delta(self, ev);
    }
    if (strcmp(type, "content_block_start") == 0) {
        return s_block_start(self, ev);
    }
    if (strcmp(type, "message_start") == 0) {
        s_usage(self, json_object_get(json_object_get(ev, "message"), "usage"));
    } else if (strcmp(type, "message_delta") == 0) {
        const json_t *delta = json_object_get(ev, "delta");
        agent_llm_set_stop(self, json_string_value(json_object_get(delta, "stop_reason")));
        s_usage(self, json_object_get(ev, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        self->finished = true;
    } else if (strcmp(type, "error") == 0) {
        const json_t *e = json_object_get(ev, "error");
        const char *etype = json_string_value(json_object_get(e, "type"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        return agent_llm_fail(self, AGENT_LLM_ERR_PROVIDER, "anthropic stream error: %s: %.400s",
                              etype ? etype : "error", msg ? msg : "?");
    }
    return 0; /* content_block_stop, ping and unknown events */
}

static int s_on_event(agent_llm_request_t *self, const char *event, const char *data, size_t len)
{
    if (self->finished) {
        return 0; /* nothing counts after message_stop */
    }
    json_t *ev = agent_llm_parse_chunk(self, data, len);
    if (!ev) {
        return -1;
    }
    /* The data's "type" names the event; the SSE event name is the fallback. */
    const char *type = json_string_value(json_object_get(ev, "type"));
    int rc = s_event(self, type ? type : event, ev);
    json_decref(ev);
    return rc;
}

const agent_llm_provider_t agent_llm_anthropic = {
    .name = "anthropic",
    .end_marker = "message_stop",
    .path = "/v1/messages",
    .build = s_build,
    .auth_headers = s_auth_headers,
    .on_event = s_on_event,
};
