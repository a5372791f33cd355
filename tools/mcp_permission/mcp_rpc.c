/*  mcp_rpc — the MCP side of bicky-mcp-permission: newline-delimited
    JSON-RPC 2.0 on stdin/stdout (initialize, notifications/initialized,
    ping, tools/list, tools/call, notifications/cancelled). tools/call of
    approval_prompt becomes a PROTO_API_REQ "permission.ask" to the node;
    its answer becomes the tool result: one text block holding
    {"behavior":"allow","updatedInput":{…}} or {"behavior":"deny","message":"…"}.
    Nothing but protocol lines is written to stdout. */
#define LOG_MODULE "mcp_rpc"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "tools/mcp_permission/mcp_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const s_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", MCP_PROTOCOL,
                                         NULL};

/* Writes msg (stolen) as one line; a failed write stops the server. */
static void s_write(mcp_t *self, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL;
    if (!line) {
        free(text);
        LOG_E("cannot encode a reply (out of memory)");
        return;
    }
    line[len++] = '\n';
    for (size_t off = 0; off < len && !self->out_broken;) {
        ssize_t w = write(self->out_fd, line + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            LOG_E("stdout: %s", strerror(errno));
            self->out_broken = true;
            break;
        }
        off += (size_t)w;
    }
    free(line);
}

void mcp_send_error(mcp_t *self, json_t *id, int code, const char *message)
{
    s_write(self, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                            id ? id : json_null(), "error", "code", code, "message", message));
}

static void s_send_result(mcp_t *self, json_t *id, json_t *result)
{
    s_write(self, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void s_initialize(mcp_t *self, json_t *id, json_t *params)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    const char *version = MCP_PROTOCOL;
    for (size_t i = 0; asked && s_versions[i]; i++) {
        if (strcmp(asked, s_versions[i]) == 0) {
            version = s_versions[i];
        }
    }
    s_send_result(self, id,
                  json_pack("{s:s, s:{s:{}}, s:{s:s, s:s}}", "protocolVersion", version,
                            "capabilities", "tools", "serverInfo", "name", "bicky-mcp-permission",
                            "version", BICKY_VERSION));
}

static void s_tools_list(mcp_t *self, json_t *id)
{
    json_t *schema = json_pack(
        "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}, s:[s,s]}", "type", "object",
        "properties", "tool_name", "type", "string", "description", "the tool the agent wants",
        "input", "type", "object", "description", "the tool's input", "tool_use_id", "type",
        "string", "description", "the tool_use block id", "required", "tool_name", "input");
    json_t *tool = json_pack("{s:s, s:s, s:o}", "name", MCP_TOOL_NAME, "description",
                             "Asks Bicky (a person, or a rule) whether a tool call may run.",
                             "inputSchema", schema);
    s_send_result(self, id, json_pack("{s:[o]}", "tools", tool));
}

static void s_call_free(mcp_call_t *call)
{
    json_decref(call->id);
    json_decref(call->input);
    free(call);
}

/* Asks the node; returns 0 with the call recorded, or -1 with why. */
static int s_ask_node(mcp_t *self, json_t *id, json_t *args, const char **why)
{
    const char *tool = json_string_value(json_object_get(args, "tool_name"));
    json_t *input = json_object_get(args, "input");
    json_t *tuid = json_object_get(args, "tool_use_id");
    json_t *body = json_pack("{s:s, s:s, s:O}", "conversation_id", self->conversation, "tool_name",
                             tool, "input", input);
    if (body && json_is_string(tuid)) {
        json_object_set(body, "tool_use_id", tuid);
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    mcp_call_t *call = text ? calloc(1, sizeof *call) : NULL;
    proto_msg_t msg = {.v = PROTO_VERSION,
                       .type = PROTO_API_REQ,
                       .req_id = ++self->next_req,
                       .has_conv = true,
                       .op = (char *)proto_ops[PROTO_OP_PERMISSION_ASK].name,
                       .body = text};
    memcpy(msg.conv_id, self->conv_id, sizeof msg.conv_id);
    *why = "out of memory";
    if (call && wire_send(self->dealer, NULL, &msg) < 0) {
        *why = "cannot send the question to the node";
    } else if (call) {
        call->id = json_incref(id);
        call->input = json_incref(input);
        call->req_id = msg.req_id;
        call->deadline_ms = self->timeout_s > 0 ? util_mono_ms() + self->timeout_s * 1000 : 0;
        call->next = self->calls;
        self->calls = call;
        self->ncalls++;
        LOG_I("asked the node req=%llu tool=%s", (unsigned long long)msg.req_id, tool);
        free(text);
        return 0;
    }
    free(call);
    free(text);
    return -1;
}

static void s_tools_call(mcp_t *self, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    const char *tool = json_string_value(json_object_get(args, "tool_name"));
    json_t *tuid = json_object_get(args, "tool_use_id");
    const char *why = NULL;
    if (!json_is_object(params) || !name) {
        mcp_send_error(self, id, MCP_ERR_PARAMS, "tools/call needs params.name");
    } else if (strcmp(name, MCP_TOOL_NAME) != 0) {
        mcp_send_error(self, id, MCP_ERR_PARAMS, "Unknown tool");
    } else if (!json_is_object(args) || !tool || !*tool ||
               !json_is_object(json_object_get(args, "input")) ||
               (tuid && !json_is_string(tuid) && !json_is_null(tuid))) {
        mcp_send_error(
            self, id, MCP_ERR_PARAMS,
            "arguments must be {tool_name: string, input: object, tool_use_id?: string}");
    } else if (self->ncalls >= MCP_MAX_CALLS) {
        mcp_send_error(self, id, MCP_ERR_NODE, "too many permission questions waiting");
    } else if (s_ask_node(self, id, args, &why) < 0) {
        mcp_send_error(self, id, MCP_ERR_NODE, why);
    }
}

static void s_cancelled(mcp_t *self, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    for (mcp_call_t **pp = &self->calls; rid && *pp; pp = &(*pp)->next) {
        if (json_equal((*pp)->id, rid)) {
            mcp_call_t *call = *pp;
            *pp = call->next;
            self->ncalls--;
            s_call_free(call);
            return;
        }
    }
}

static void s_request(mcp_t *self, json_t *id, const char *method, json_t *params)
{
    if (strcmp(method, "initialize") == 0) {
        s_initialize(self, id, params);
    } else if (strcmp(method, "ping") == 0) {
        s_send_result(self, id, json_object());
    } else if (strcmp(method, "tools/list") == 0) {
        s_tools_list(self, id);
    } else if (strcmp(method, "tools/call") == 0) {
        s_tools_call(self, id, params);
    } else {
        mcp_send_error(self, id, MCP_ERR_METHOD, "Method not found");
    }
}

static bool s_id_ok(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id) || json_is_real(id) || json_is_null(id);
}

void mcp_handle_line(mcp_t *self, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!msg) {
        char why[256];
        snprintf(why, sizeof why, "Parse error: %s", jerr.text);
        mcp_send_error(self, NULL, MCP_ERR_PARSE, why);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    const char *version = json_string_value(json_object_get(msg, "jsonrpc"));
    if (!json_is_object(msg) || (id && !s_id_ok(id))) {
        mcp_send_error(self, NULL, MCP_ERR_REQUEST, "Invalid Request");
    } else if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
        LOG_D("ignored a response from the client");
    } else if (!version || strcmp(version, "2.0") != 0 || !json_is_string(method)) {
        if (id) {
            mcp_send_error(self, id, MCP_ERR_REQUEST, "Invalid Request");
        }
    } else if (!id) {
        if (strcmp(json_string_value(method), "notifications/cancelled") == 0) {
            s_cancelled(self, json_object_get(msg, "params"));
        }
    } else {
        s_request(self, id, json_string_value(method), json_object_get(msg, "params"));
    }
    json_decref(msg);
}

/* The decision text for a 200 reply body, or NULL with why. Caller frees. */
static char *s_decision(const char *body, json_t *asked, const char **why)
{
    json_t *rep = body ? json_loads(body, 0, NULL) : NULL;
    const char *behavior = json_string_value(json_object_get(rep, "behavior"));
    json_t *updated = json_object_get(rep, "updatedInput");
    const char *message = json_string_value(json_object_get(rep, "message"));
    json_t *out = NULL;
    if (behavior && strcmp(behavior, "allow") == 0) {
        out = json_pack("{s:s, s:O}", "behavior", "allow", "updatedInput",
                        json_is_object(updated) ? updated : asked);
    } else if (behavior && strcmp(behavior, "deny") == 0) {
        out = json_pack("{s:s, s:s}", "behavior", "deny", "message",
                        message && *message ? message : "Denied");
    }
    *why = "the node's answer is not a decision";
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    json_decref(rep);
    return text;
}

static void s_answer(mcp_t *self, mcp_call_t *call, const proto_msg_t *msg)
{
    char why[512];
    if (msg->type == PROTO_MOVED) {
        mcp_send_error(self, call->id, MCP_ERR_NODE, "the conversation moved to another node");
        return;
    }
    if (msg->status != 200) {
        json_t *rep = msg->body ? json_loads(msg->body, 0, NULL) : NULL;
        const char *error = json_string_value(json_object_get(rep, "error"));
        snprintf(why, sizeof why, "the node answered %llu%s%.300s", (unsigned long long)msg->status,
                 error ? ": " : "", error ? error : "");
        json_decref(rep);
        mcp_send_error(self, call->id, MCP_ERR_NODE, why);
        return;
    }
    const char *bad = NULL;
    char *decision = s_decision(msg->body, call->input, &bad);
    if (!decision) {
        mcp_send_error(self, call->id, MCP_ERR_NODE, bad);
        return;
    }
    LOG_I("answered req=%llu", (unsigned long long)msg->req_id);
    s_send_result(self, call->id,
                  json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", decision));
    free(decision);
}

void mcp_handle_reply(mcp_t *self, const proto_msg_t *msg)
{
    if (msg->type != PROTO_API_REP && msg->type != PROTO_MOVED) {
        LOG_W("unexpected message type=%s from the node", proto_type_name(msg->type));
        return;
    }
    for (mcp_call_t **pp = &self->calls; *pp; pp = &(*pp)->next) {
        if ((*pp)->req_id == msg->req_id) {
            mcp_call_t *call = *pp;
            *pp = call->next;
            self->ncalls--;
            s_answer(self, call, msg);
            s_call_free(call);
            return;
        }
    }
    LOG_I("late or unknown reply req=%llu dropped", (unsigned long long)msg->req_id);
}

void mcp_expire(mcp_t *self, int64_t now_ms)
{
    for (mcp_call_t **pp = &self->calls; *pp;) {
        mcp_call_t *call = *pp;
        if (call->deadline_ms == 0 || now_ms < call->deadline_ms) {
            pp = &call->next;
            continue;
        }
        *pp = call->next;
        self->ncalls--;
        char why[128];
        snprintf(why, sizeof why, "no permission decision within %ld s", self->timeout_s);
        mcp_send_error(self, call->id, MCP_ERR_NODE, why);
        s_call_free(call);
    }
}

void mcp_calls_free(mcp_t *self)
{
    while (self->calls) {
        mcp_call_t *call = self->calls;
        self->calls = call->next;
        s_call_free(call);
    }
    self->ncalls = 0;
}
