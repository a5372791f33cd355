/*  gw_legacy_shape — the legacy (TypeScript server) JSON shapes built from
    ours, the legacy SSE vocabulary of GET /stream, and the deprecation
    headers every legacy answer carries. Pure except gw_legacy_headers and
    gw_legacy_token (which read the request). Loop thread only. */
#define LOG_MODULE "gw_legacy"
#include "gateway/gw_legacy.h"

#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- deprecation headers ------------------------------------------------------ */

typedef struct {
    const char *pattern;   /* legacy route */
    const char *successor; /* the /api route that replaces it (":id" = the path id) */
} s_successor_t;

static const s_successor_t s_successors[] = {
    {"/status", "/api/status"},
    {"/message", "/api/message"},
    {"/interactions", "/api/conversations"},
    {"/interactions/:id", "/api/conversations/:id/messages"},
    {"/interactions/:id/permission/response", "/api/permissions?status=pending"},
    {"/permissions/:id/status", "/api/permissions/:id"},
    {"/permissions/:id/approve", "/api/permissions/:id/approve"},
    {"/permissions/:id/deny", "/api/permissions/:id/deny"},
    {"/worktrees", "/api/worktrees"},
    {"/stream", "/api/stream"},
};

/* True when id is safe to put in a header (UUID characters only). */
static bool s_header_safe(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= 36 && strspn(id, "0123456789abcdefABCDEF-") == n;
}

void gw_legacy_headers(gw_req_t *req, struct MHD_Response *resp)
{
    if (!resp || !req->route || !(req->route->flags & GW_ROUTE_LEGACY)) {
        return;
    }
    const char *succ = NULL;
    for (size_t i = 0; i < sizeof s_successors / sizeof s_successors[0]; i++) {
        if (strcmp(s_successors[i].pattern, req->route->pattern) == 0) {
            succ = s_successors[i].successor;
        }
    }
    MHD_add_response_header(resp, "Deprecation", "true");
    if (!succ) {
        return;
    }
    char link[256];
    const char *at = strstr(succ, ":id");
    if (at && s_header_safe(req->params[0])) {
        snprintf(link, sizeof link, "<%.*s%s%s>; rel=\"successor-version\"", (int)(at - succ), succ,
                 req->params[0], at + 3);
    } else {
        snprintf(link, sizeof link, "<%s>; rel=\"successor-version\"", succ);
    }
    MHD_add_response_header(resp, "Link", link);
}

const char *gw_legacy_token(gw_req_t *req, size_t *len)
{
    const char *token = req->srv->cfg->legacy_token;
    if (!token || !req->route || !(req->route->flags & GW_ROUTE_LEGACY) ||
        gw_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION)) {
        return NULL;
    }
    *len = strlen(token);
    return token;
}

/* ---- shapes ---------------------------------------------------------------------- */

const char *gw_legacy_status(const char *status)
{
    if (!status) {
        return "pending";
    }
    if (strcmp(status, "streaming") == 0) {
        return "processing";
    }
    if (strcmp(status, "error") == 0 || strcmp(status, "cancelled") == 0) {
        return "failed";
    }
    return status;
}

static json_t *s_get(const json_t *o, const char *key)
{
    return json_object_get(o, key);
}

json_t *gw_legacy_interaction(const json_t *conv)
{
    if (!json_is_object(conv)) {
        return NULL;
    }
    json_t *meta = s_get(conv, "metadata");
    return json_pack("{s:O?, s:O?, s:O?, s:O?, s:o}", "id", s_get(conv, "id"), "source",
                     s_get(conv, "source"), "type", s_get(conv, "type"), "createdAt",
                     s_get(conv, "created_at"), "metadata",
                     json_is_object(meta) ? json_incref(meta) : json_object());
}

/* The names of metadata.tool_calls ({name} or {function: {name}}), or NULL. */
static json_t *s_tools_used(const json_t *calls)
{
    if (!json_is_array(calls)) {
        return NULL;
    }
    json_t *names = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_t *name = s_get(c, "name");
        if (!json_is_string(name)) {
            name = s_get(s_get(c, "function"), "name");
        }
        if (json_is_string(name)) {
            json_array_append(names, name);
        }
    }
    return names;
}

/* Our message metadata in the legacy spelling: usage {inputTokens,
   outputTokens, totalTokens}, toolsUsed, processingTimeMs; other keys kept. */
static json_t *s_metadata(const json_t *meta)
{
    json_t *out = json_deep_copy(meta);
    json_t *usage = s_get(meta, "usage");
    if (json_is_object(usage)) {
        json_int_t in = json_integer_value(s_get(usage, "input_tokens"));
        json_int_t outn = json_integer_value(s_get(usage, "output_tokens"));
        json_object_set_new(out, "usage",
                            json_pack("{s:I, s:I, s:I}", "inputTokens", in, "outputTokens", outn,
                                      "totalTokens", in + outn));
    }
    json_t *tools = s_tools_used(s_get(meta, "tool_calls"));
    if (tools) {
        json_object_set_new(out, "toolsUsed", tools);
    }
    json_t *ms = s_get(meta, "duration_ms");
    if (json_is_integer(ms)) {
        json_object_set(out, "processingTimeMs", ms);
    }
    return out;
}

json_t *gw_legacy_message(const json_t *msg)
{
    if (!json_is_object(msg)) {
        return NULL;
    }
    json_t *out =
        json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:s}", "id", s_get(msg, "id"), "interactionId",
                  s_get(msg, "conversation_id"), "role", s_get(msg, "role"), "content",
                  s_get(msg, "content"), "timestamp", s_get(msg, "created_at"), "status",
                  gw_legacy_status(json_string_value(s_get(msg, "status"))));
    json_t *meta = s_get(msg, "metadata");
    if (out && json_is_object(meta) && json_object_size(meta) > 0) {
        json_object_set_new(out, "metadata", s_metadata(meta));
    }
    return out;
}

json_t *gw_legacy_worktree(const json_t *wt)
{
    if (!json_is_object(wt)) {
        return NULL;
    }
    const char *branch = json_string_value(s_get(wt, "branch"));
    if (branch && strncmp(branch, "refs/heads/", 11) == 0) {
        branch += 11;
    }
    return json_pack("{s:O?, s:O?, s:s?, s:O?, s:O?, s:O?}", "id", s_get(wt, "id"), "path",
                     s_get(wt, "path"), "branch", branch, "baseCommit", s_get(wt, "head"), "status",
                     s_get(wt, "status"), "createdAt", s_get(wt, "created_at"));
}

/* ---- GET /stream ------------------------------------------------------------------ */

/* The legacy {"type","timestamp","data"} of one of our events, or NULL when it
   has none. Takes nothing; returns a new reference. */
static json_t *s_legacy_event(const char *type, const json_t *ev)
{
    const json_t *action = s_get(ev, "action");
    json_t *conv_id = s_get(ev, "conversation_id");
    const char *ltype = NULL;
    json_t *data = NULL;
    if (strcmp(type, "conversation.created") == 0) {
        ltype = "interaction:created";
        data = json_pack("{s:o*}", "interaction",
                         gw_legacy_interaction(s_get(action, "conversation")));
    } else if (strncmp(type, "conversation.", 13) == 0 || strncmp(type, "turn.", 5) == 0) {
        /* No snapshot in these events: the id (and what changed) tells the client to refresh. */
        ltype = "interaction:updated";
        data = json_pack("{s:{s:O?}, s:s}", "interaction", "id", conv_id, "change", type);
    } else if (strcmp(type, "message.created") == 0 || strcmp(type, "message.completed") == 0 ||
               strcmp(type, "message.failed") == 0) {
        ltype = type[8] == 'c' && type[9] == 'r' ? "message:added" : "message:updated";
        data = json_pack("{s:o*, s:O?}", "message", gw_legacy_message(s_get(action, "message")),
                         "interactionId", conv_id);
    }
    if (!ltype || !data) {
        json_decref(data);
        return NULL;
    }
    json_t *ts = s_get(ev, "created_at");
    return json_pack("{s:s, s:O?, s:o}", "type", ltype, "timestamp", ts, "data", data);
}

char *gw_legacy_sse_frame(uint64_t id, const char *type, const char *data, size_t *len)
{
    json_t *ev = data ? json_loads(data, 0, NULL) : NULL;
    json_t *legacy = ev && type ? s_legacy_event(type, ev) : NULL;
    json_decref(ev);
    if (!legacy) {
        *len = 0;
        return calloc(1, 1);
    }
    char *text = json_dumps(legacy, JSON_COMPACT);
    json_decref(legacy);
    if (!text) {
        return NULL;
    }
    size_t n = strlen(text) + 48;
    char *frame = malloc(n);
    if (frame) {
        int k = id ? snprintf(frame, n, "id: %" PRIu64 "\ndata: %s\n\n", id, text)
                   : snprintf(frame, n, "data: %s\n\n", text);
        *len = (size_t)k;
    }
    free(text);
    return frame;
}
