/*  agent_llm_openai — OpenAI-compatible chat completions (OpenAI, LM Studio,
    Ollama, vLLM, llama.cpp): POST {base_url}/chat/completions with
    "stream": true. Chunks are `data: {json}` lines ending with `data: [DONE]`;
    content deltas become text, tool-call deltas are assembled by their index
    across chunks, and the last chunk carries usage (stream_options).
    Loop thread only. */
#include "node/agent/agent_llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- request ---------------------------------------------------------------- */

/* Sets key to a string; -1 when value is not valid UTF-8 or out of memory. */
static int s_set_str(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value));
}

static json_t *s_tool_calls(const json_t *calls)
{
    json_t *out = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c)
    {
        const json_t *args = json_object_get(c, "arguments");
        char *text = args ? json_dumps(args, JSON_COMPACT) : strdup("{}");
        json_t *fn = json_object();
        json_t *call = json_object();
        int rc = !text || !fn || !call || !out;
        rc = rc || json_object_set(call, "id", json_object_get(c, "id")) ||
             s_set_str(call, "type", "function") ||
             json_object_set(fn, "name", json_object_get(c, "name")) ||
             s_set_str(fn, "arguments", text) || json_object_set(call, "function", fn) ||
             json_array_append(out, call);
        free(text);
        json_decref(fn);
        json_decref(call);
        if (rc) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *s_message(const json_t *m)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *content = agent_llm_content(m);
    json_t *out = json_object();
    int rc = !out || s_set_str(out, "role", role);
    if (strcmp(role, "tool") == 0) {
        bool is_error = json_is_true(json_object_get(m, "is_error"));
        char *text = NULL;
        /* OpenAI has no error flag on tool results: say it in the text. */
        if (asprintf(&text, "%s%s", is_error ? "Error: " : "", content) < 0) {
            text = NULL;
        }
        rc = rc || !text ||
             json_object_set(out, "tool_call_id", json_object_get(m, "tool_call_id")) ||
             s_set_str(out, "content", text);
        free(text);
    } else if (strcmp(role, "assistant") == 0 &&
               json_array_size(json_object_get(m, "tool_calls"))) {
        rc = rc ||
             json_object_set_new(out, "content", content[0] ? json_string(content) : json_null()) ||
             json_object_set_new(out, "tool_calls", s_tool_calls(json_object_get(m, "tool_calls")));
    } else {
        rc = rc || s_set_str(out, "content", content);
    }
    if (rc) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *s_messages(const agent_llm_params_t *p, agent_llm_error_t *err)
{
    json_t *out = json_array();
    const char *prompt = p->strategy->system_prompt;
    if (out && prompt && prompt[0]) {
        json_t *sys = json_pack("{s:s, s:s}", "role", "system", "content", prompt);
        if (json_array_append_new(out, sys) != 0) {
            agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "system_prompt is not valid UTF-8");
            json_decref(out);
            return NULL;
        }
    }
    size_t i;
    const json_t *m;
    json_array_foreach(p->messages, i, m)
    {
        if (!out || json_array_append_new(out, s_message(m)) != 0) {
            agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "cannot translate messages[%zu]", i);
            json_decref(out);
            return NULL;
        }
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
        json_t *fn = json_object();
        int rc =
            !out || !fn || json_object_set(fn, "name", json_object_get(t, "name")) ||
            (desc && json_object_set(fn, "description", desc)) ||
            json_object_set_new(fn, "parameters",
                                schema ? json_incref(schema)
                                       : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        if (rc || json_array_append_new(
                      out, json_pack("{s:s, s:o}", "type", "function", "function", fn)) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *s_build(const agent_llm_params_t *p, agent_llm_error_t *err)
{
    const cfg_strategy_t *s = p->strategy;
    json_t *messages = s_messages(p, err);
    if (!messages) {
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:o, s:b, s:{s:b}, s:I}", "model", s->model, "messages",
                             messages, "stream", 1, "stream_options", "include_usage", 1,
                             "max_tokens", (json_int_t)s->max_tokens);
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
                            "cannot build the OpenAI request "
                            "(invalid UTF-8 in model, tools, or out of memory)");
    }
    return body;
}

static int s_auth_headers(const char *api_key, char **lines)
{
    if (api_key && api_key[0] && asprintf(&lines[0], "Authorization: Bearer %s", api_key) < 0) {
        lines[0] = NULL;
        return -1;
    }
    return 0;
}

/* --- stream ------------------------------------------------------------------ */

static const char *s_stop_reason(const char *finish)
{
    if (strcmp(finish, "stop") == 0) {
        return "end_turn";
    }
    if (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0) {
        return "tool_use";
    }
    if (strcmp(finish, "length") == 0) {
        return "max_tokens";
    }
    return finish;
}

static int s_tool_delta(agent_llm_request_t *self, const json_t *d)
{
    const json_t *index = json_object_get(d, "index");
    const char *id = json_string_value(json_object_get(d, "id"));
    const agent_llm_tool_t *last = self->ntools ? &self->tools[self->ntools - 1] : NULL;
    int idx;
    if (json_is_integer(index)) {
        idx = json_integer_value(index) > 100000 ? -1 : (int)json_integer_value(index);
    } else if (last && (!id || (last->id && strcmp(last->id, id) == 0))) {
        idx = last->index; /* some servers omit the index: more of the last call */
    } else {
        idx = last ? last->index + 1 : 0; /* … or a new id: the next call */
    }
    if (idx < 0) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "bad tool call index in the stream");
    }
    agent_llm_tool_t *t = agent_llm_tool(self, idx, true);
    const json_t *fn = json_object_get(d, "function");
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    if (!t || agent_llm_tool_set(self, &t->id, id) != 0 ||
        agent_llm_tool_set(self, &t->name, json_string_value(json_object_get(fn, "name"))) != 0) {
        return -1;
    }
    return args ? agent_llm_tool_append(self, t, args, strlen(args)) : 0;
}

static int s_choice(agent_llm_request_t *self, const json_t *choice)
{
    const json_t *delta = json_object_get(choice, "delta");
    const json_t *content = json_object_get(delta, "content");
    const json_t *calls = json_object_get(delta, "tool_calls");
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (json_is_string(content) &&
        agent_llm_emit_text(self, json_string_value(content), json_string_length(content)) != 0) {
        return -1;
    }
    size_t i;
    const json_t *d;
    json_array_foreach(calls, i, d)
    {
        if (s_tool_delta(self, d) != 0) {
            return -1;
        }
    }
    if (finish) {
        agent_llm_set_stop(self, s_stop_reason(finish));
    }
    return 0;
}

static int s_chunk(agent_llm_request_t *self, const json_t *chunk)
{
    const json_t *error = json_object_get(chunk, "error");
    const json_t *usage = json_object_get(chunk, "usage");
    const json_t *choices = json_object_get(chunk, "choices");
    if (error) {
        const char *msg = json_string_value(json_object_get(error, "message"));
        return agent_llm_fail(self, AGENT_LLM_ERR_PROVIDER, "openai stream error: %.400s",
                              msg                     ? msg
                              : json_is_string(error) ? json_string_value(error)
                                                      : "?");
    }
    if (json_is_object(usage)) {
        self->usage.input_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        self->usage.output_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    if (choices && !json_is_array(choices)) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL,
                              "openai chunk: choices is not an array");
    }
    /* Only the first choice: we never ask for n > 1. */
    const json_t *choice = json_array_get(choices, 0);
    return choice ? s_choice(self, choice) : 0;
}

static int s_on_event(agent_llm_request_t *self, const char *event, const char *data, size_t len)
{
    if (self->finished) {
        return 0; /* nothing counts after [DONE] */
    }
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        self->finished = true;
        return 0;
    }
    json_t *chunk = agent_llm_parse_chunk(self, data, len);
    if (!chunk) {
        return -1;
    }
    int rc = s_chunk(self, chunk);
    json_decref(chunk);
    return rc;
}

const agent_llm_provider_t agent_llm_openai = {
    .name = "openai",
    .end_marker = "[DONE]",
    .path = "/chat/completions",
    .build = s_build,
    .auth_headers = s_auth_headers,
    .on_event = s_on_event,
};
