/*  gw_legacy — the handlers of the legacy routes (the TypeScript server's
    API, docs/api.md "Legacy routes"). Each maps onto the node ops the /api
    routes use; routes that need several ops keep their state in req->legacy
    (a JSON object freed with the request) and chain the calls. Loop thread
    only. */
#define LOG_MODULE "gw_legacy"
#include "gateway/gw_legacy.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <string.h>

#define S_LIST_MAX 500 /* worktrees listed at most (the newest) */

/* Answers {"error": message} (legacy errors carry no code). */
static void s_error(gw_req_t *req, unsigned status, const char *message)
{
    gw_req_respond_value(req, status, json_pack("{s:s}", "error", message));
}

static void s_success(gw_req_t *req)
{
    gw_req_respond_value(req, 200, json_pack("{s:b}", "success", 1));
}

/* Parses reply's body; on a status other than ok, passes the node's answer
   through (or answers 404 with not_found when given) and returns NULL. */
static json_t *s_reply_body(gw_req_t *req, const gw_reply_t *reply, int ok, const char *not_found)
{
    json_t *body = reply->status == ok && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    if (reply->status == 404 && not_found) {
        s_error(req, 404, not_found);
    } else if (reply->status != ok) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    } else if (!body) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected body");
    }
    return body;
}

/* The :id path parameter as a lowercase UUID into args["id"]; false (and
   404 with body) when it is not a UUID: to an old client it is simply an
   unknown id. */
static bool s_id_arg(gw_req_t *req, json_t *args, const char *key, const char *value)
{
    uint8_t id[16];
    char text[UTIL_UUID_STR_LEN + 1];
    if (util_uuid_parse(req->params[0], id) < 0) {
        gw_req_respond_value(req, 404, json_pack("{s:s}", key, value));
        return false;
    }
    util_uuid_format(id, text);
    json_object_set_new(args, "id", json_string(text));
    return true;
}

/* ---- GET /status ------------------------------------------------------------------ */

static void s_status_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_reply_body(req, reply, 200, NULL);
    if (!body) {
        return;
    }
    json_t *by = json_object_get(body, "conversations_by_status");
    json_int_t total = 0;
    const char *key;
    json_t *v;
    json_object_foreach(by, key, v)
    {
        total += json_integer_value(v);
    }
    json_t *agents = json_array();
    json_t *nodes = gw_upstream_nodes_json(req->srv->upstream);
    size_t i;
    json_array_foreach(nodes, i, v)
    {
        json_array_append_new(agents, json_pack("{s:O?, s:O?}", "node", json_object_get(v, "id"),
                                                "actors", json_object_get(v, "actors")));
    }
    json_decref(nodes);
    json_t *out = json_pack(
        "{s:I, s:I, s:I, s:I, s:o}", "queued", json_integer_value(json_object_get(by, "queued")),
        "processing", json_integer_value(json_object_get(by, "processing")), "waitingForPermission",
        json_integer_value(json_object_get(by, "waiting_for_permission")), "totalInteractions",
        total, "activeAgents", agents);
    json_decref(body);
    gw_req_respond_value(req, 200, out);
}

void gw_h_legacy_status(gw_req_t *req)
{
    gw_req_call(req, PROTO_OP_STATUS, json_object(), s_status_reply);
}

/* ---- POST /message ------------------------------------------------------------------- */

static void s_message_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    if (reply->status == 404) {
        s_error(req, 404, "Interaction not found");
        return;
    }
    if (reply->status == 400 && reply->body && strstr(reply->body, "\"field\":\"worktree_id\"")) {
        s_error(req, 404, "Worktree not found");
        return;
    }
    json_t *body = s_reply_body(req, reply, 202, NULL);
    if (!body) {
        return;
    }
    char conv[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(req->conv_id, conv);
    json_t *out = json_pack("{s:s, s:s, s:O?}", "id", conv, "type",
                            json_is_true(json_object_get(body, "created")) ? "query" : "message",
                            "messageId", json_object_get(json_object_get(body, "message"), "id"));
    json_decref(body);
    gw_req_respond_value(req, 200, out);
}

/* True when v is a string with a non-space character. */
static bool s_has_text(const json_t *v)
{
    const char *s = json_string_value(v);
    for (; s && *s; s++) {
        if (!isspace((unsigned char)*s)) {
            return true;
        }
    }
    return false;
}

/* The legacy body as /api/message's: content, metadata, and for a new
   conversation type "query", source "legacy" and the worktree. NULL after
   answering 400/404. Takes nothing. */
static json_t *s_message_body(gw_req_t *req, const json_t *in, bool *append)
{
    json_t *iid = json_object_get(in, "interactionId");
    json_t *wid = json_object_get(in, "worktreeId");
    json_t *meta = json_object_get(in, "metadata");
    if (!s_has_text(json_object_get(in, "content"))) {
        s_error(req, 400, "Content is required");
        return NULL;
    }
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        s_error(req, 400, "metadata must be an object");
        return NULL;
    }
    *append = iid && !json_is_null(iid);
    if (*append &&
        (!json_is_string(iid) || util_uuid_parse(json_string_value(iid), req->conv_id) < 0)) {
        s_error(req, 404, "Interaction not found");
        return NULL;
    }
    uint8_t wt[16];
    if (wid && !json_is_null(wid) &&
        (!json_is_string(wid) || util_uuid_parse(json_string_value(wid), wt) < 0)) {
        s_error(req, 404, "Worktree not found");
        return NULL;
    }
    json_t *out = json_pack("{s:O}", "content", json_object_get(in, "content"));
    if (json_is_object(meta)) {
        json_object_set(out, "metadata", meta);
    }
    if (!*append) {
        json_object_set_new(out, "type", json_string("query"));
        json_object_set_new(out, "source", json_string("legacy"));
        if (wid && !json_is_null(wid)) {
            json_object_set(out, "worktree_id", wid);
        }
    }
    return out;
}

void gw_h_legacy_message(gw_req_t *req)
{
    gw_error_t err;
    json_t *in = gw_json_parse(req->body, req->body_len, &err);
    if (!in) {
        gw_req_respond_error(req, &err);
        return;
    }
    bool append = false;
    json_t *obj = s_message_body(req, in, &append);
    json_decref(in);
    if (!obj) {
        return;
    }
    bool has_conv = false;
    uint8_t ignored[16];
    json_t *args = append ? gw_json_args(obj, PROTO_OP_MSG_POST, NULL, &err)
                          : gw_json_message_args(obj, ignored, &has_conv, &err);
    if (args && gw_req_idempotency(req, args, &err) < 0) {
        json_decref(args);
        args = NULL;
    }
    if (!args) {
        gw_req_respond_value(req, (unsigned)err.status, json_pack("{s:s}", "error", err.message));
        return;
    }
    if (!append && gw_limits_strategy(req, json_object_get(args, "create"), true) < 0) {
        json_decref(args);
        return;
    }
    if (!append && gw_api_new_conv_id(req, args, req->conv_id)) {
        json_object_set_new(args, "fresh", json_true());
    }
    gw_req_call(req, PROTO_OP_MSG_POST, args, s_message_reply);
}

/* ---- permissions ------------------------------------------------------------------------ */

static void s_perm_status_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    if (reply->status == 404) {
        gw_req_respond_value(req, 404, json_pack("{s:s}", "status", "not_found"));
        return;
    }
    json_t *body = s_reply_body(req, reply, 200, NULL);
    if (!body) {
        return;
    }
    /* The old server knew no expiry: an expired request was not granted. */
    const char *st = json_string_value(json_object_get(body, "status"));
    const char *legacy = st && strcmp(st, "expired") == 0 ? "denied" : st ? st : "pending";
    gw_req_respond_value(req, 200, json_pack("{s:s}", "status", legacy));
    json_decref(body);
}

void gw_h_legacy_perm_status(gw_req_t *req)
{
    json_t *args = json_object();
    if (s_id_arg(req, args, "status", "not_found")) {
        gw_req_call(req, PROTO_OP_PERM_GET, args, s_perm_status_reply);
    } else {
        json_decref(args);
    }
}

static const char s_perm_missing[] = "Permission request not found";

static void s_perm_decided(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    if (reply->status == 409) {
        s_error(req, 409, "Permission request already decided");
        return;
    }
    json_t *body = s_reply_body(req, reply, 200, s_perm_missing);
    if (body) {
        s_success(req);
    }
    json_decref(body);
}

/* perm.get answered: send the decision to the owner of the request's conversation. */
static void s_perm_route(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_reply_body(req, reply, 200, s_perm_missing);
    if (!body) {
        return;
    }
    const char *conv = json_string_value(json_object_get(body, "conversation_id"));
    if (!conv || util_uuid_parse(conv, req->conv_id) < 0) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected request");
    } else {
        json_t *args = json_pack("{s:O, s:O}", "id", json_object_get(body, "id"), "decision",
                                 json_object_get(req->legacy, "decision"));
        gw_req_call(req, PROTO_OP_PERM_DECIDE, args, s_perm_decided);
    }
    json_decref(body);
}

static void s_perm_decide(gw_req_t *req, const char *decision)
{
    json_t *args = json_object();
    if (!s_id_arg(req, args, "error", s_perm_missing)) {
        json_decref(args);
        return;
    }
    req->legacy = json_pack("{s:s}", "decision", decision);
    gw_req_call(req, PROTO_OP_PERM_GET, args, s_perm_route);
}

void gw_h_legacy_perm_approve(gw_req_t *req)
{
    s_perm_decide(req, "approve");
}

void gw_h_legacy_perm_deny(gw_req_t *req)
{
    s_perm_decide(req, "deny");
}

/* ---- worktrees ------------------------------------------------------------------------- */

static void s_wt_list_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_reply_body(req, reply, 200, NULL);
    if (!body) {
        return;
    }
    json_t *data = json_object_get(body, "data");
    json_t *out = json_array();
    for (size_t n = json_array_size(data); n > 0; n--) {
        json_array_append_new(out, gw_legacy_worktree(json_array_get(data, n - 1)));
    }
    json_decref(body);
    gw_req_respond_value(req, 200, out);
}

void gw_h_legacy_wt_list(gw_req_t *req)
{
    gw_req_call(req, PROTO_OP_WT_LIST, json_pack("{s:i}", "limit", S_LIST_MAX), s_wt_list_reply);
}

static void s_wt_create_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    if (reply->status == 400 || reply->status == 404 || reply->status == 409) {
        json_t *e = reply->body ? json_loads(reply->body, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(e, "error"));
        s_error(req, (unsigned)reply->status, msg ? msg : "Failed to create worktree");
        json_decref(e);
        return;
    }
    json_t *body = s_reply_body(req, reply, 201, NULL);
    if (body) {
        gw_req_respond_value(req, 200, gw_legacy_worktree(body));
    }
    json_decref(body);
}

void gw_h_legacy_wt_create(gw_req_t *req)
{
    gw_error_t err;
    json_t *in = gw_json_parse(req->body, req->body_len, &err);
    if (!in) {
        gw_req_respond_value(req, 400, json_pack("{s:s}", "error", err.message));
        return;
    }
    json_t *branch = json_object_get(in, "branch");
    json_t *base = json_object_get(in, "baseBranch");
    const char *why = NULL;
    if (!s_has_text(branch)) {
        why = "Branch name is required";
    } else if (base && !json_is_null(base) && !s_has_text(base)) {
        why = "baseBranch must be a branch name";
    } else if (json_object_get(in, "customPath")) {
        why = "customPath is not supported: the server chooses worktree paths";
    }
    if (why) {
        json_decref(in);
        s_error(req, 400, why);
        return;
    }
    json_t *args = json_pack("{s:O}", "branch", branch);
    if (base && !json_is_null(base)) {
        json_object_set(args, "base", base);
    }
    json_decref(in);
    args = gw_json_args(args, PROTO_OP_WT_CREATE, NULL, &err);
    if (!args) {
        gw_req_respond_value(req, 400, json_pack("{s:s}", "error", err.message));
        return;
    }
    gw_req_call(req, PROTO_OP_WT_CREATE, args, s_wt_create_reply);
}

/* ---- GET /stream ------------------------------------------------------------------------ */

void gw_h_legacy_stream(gw_req_t *req)
{
    gw_sse_spec_t spec;
    memset(&spec, 0, sizeof spec);
    memcpy(spec.team_id, req->team_id, 16);
    spec.format = gw_legacy_sse_frame;
    const char *last = gw_req_header(req, "Last-Event-ID");
    long long after;
    if (last && gw_parse_int(last, 0, INT64_MAX, &after) < 0) {
        s_error(req, 400, "Last-Event-ID must be a non-negative event id");
        return;
    }
    spec.resume = last != NULL;
    spec.after = last ? (uint64_t)after : 0;
    gw_sse_start(req, &spec);
}
