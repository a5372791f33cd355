/*  gw_legacy_conv — the legacy interaction routes: GET /interactions (a
    conv.list page, then each conversation's last message), GET
    /interactions/:id (conv.get, then msg.list pages) and POST
    /interactions/:id/permission/response (conv.get, perm.list of its pending
    requests, perm.decide of the oldest on the owner). The calls are chained;
    their state lives in req->legacy. Loop thread only. */
#define LOG_MODULE "gw_legacy"
#include "gateway/gw_legacy.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

#define S_LIST_MAX  500   /* interactions listed at most (the newest) */
#define S_MSGS_MAX  10000 /* messages of one interaction at most */
#define S_MSGS_PAGE 500   /* msg.list page */

static const char s_not_found[] = "Interaction not found";

static void s_error(gw_req_t *req, unsigned status, const char *message)
{
    gw_req_respond_value(req, status, json_pack("{s:s}", "error", message));
}

/* The reply's JSON body when its status is ok; otherwise answers (404 →
   legacy not-found, else the node's answer) and returns NULL. */
static json_t *s_body(gw_req_t *req, const gw_reply_t *reply, int ok)
{
    json_t *body = reply->status == ok && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    if (reply->status == 404) {
        s_error(req, 404, s_not_found);
    } else if (reply->status != ok) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    } else if (!body) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected body");
    }
    return body;
}

static bool s_conv_param(gw_req_t *req)
{
    if (util_uuid_parse(req->params[0], req->conv_id) < 0) {
        s_error(req, 404, s_not_found);
        return false;
    }
    return true;
}

/* ---- GET /interactions ------------------------------------------------------------- */

static void s_list_next(gw_req_t *req);

static json_t *s_list_item(const json_t *conv)
{
    json_t *item = gw_legacy_interaction(conv);
    const char *st = json_string_value(json_object_get(conv, "status"));
    bool busy = st && (strcmp(st, "queued") == 0 || strcmp(st, "processing") == 0 ||
                       strcmp(st, "waiting_for_permission") == 0);
    json_object_set_new(item, "messageCount",
                        json_integer(json_integer_value(json_object_get(conv, "message_count"))));
    json_object_set_new(item, "hasUnprocessedMessages", json_boolean(busy));
    return item;
}

static void s_list_last(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *st = req->legacy;
    json_t *item = json_object_get(st, "item");
    if (reply->status != 404) {
        json_t *body = s_body(req, reply, 200);
        if (!body) {
            return;
        }
        json_t *last = gw_legacy_message(json_array_get(json_object_get(body, "data"), 0));
        if (last) {
            json_object_set_new(item, "lastMessage", last);
        }
        json_decref(body);
    }
    json_array_append(json_object_get(st, "out"), item);
    json_object_del(st, "item");
    s_list_next(req);
}

static void s_list_next(gw_req_t *req)
{
    json_t *st = req->legacy;
    json_t *convs = json_object_get(st, "convs");
    json_t *out = json_object_get(st, "out");
    size_t i = json_array_size(out);
    for (; i < json_array_size(convs); i++) {
        json_t *conv = json_array_get(convs, i);
        json_t *item = s_list_item(conv);
        json_int_t count = json_integer_value(json_object_get(conv, "message_count"));
        const char *id = json_string_value(json_object_get(conv, "id"));
        if (count > 0 && id && util_uuid_parse(id, req->conv_id) == 0) {
            json_object_set_new(st, "item", item);
            gw_req_call(req, PROTO_OP_MSG_LIST,
                        json_pack("{s:I, s:i}", "after_seq", count - 1, "limit", 1), s_list_last);
            return;
        }
        json_array_append_new(out, item);
    }
    gw_req_respond_value(req, 200, json_incref(out));
}

static void s_list_page(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (!body) {
        return;
    }
    /* The node lists newest first; the old server listed oldest first. */
    json_t *data = json_object_get(body, "data");
    json_t *convs = json_array();
    for (size_t n = json_array_size(data); n > 0; n--) {
        json_array_append(convs, json_array_get(data, n - 1));
    }
    json_decref(body);
    req->legacy = json_pack("{s:o, s:[]}", "convs", convs, "out");
    s_list_next(req);
}

void gw_h_legacy_list(gw_req_t *req)
{
    gw_req_call(req, PROTO_OP_CONV_LIST, json_pack("{s:i}", "limit", S_LIST_MAX), s_list_page);
}

/* ---- GET /interactions/:id ------------------------------------------------------------ */

static void s_get_page(void *owner, const gw_reply_t *reply);

static void s_get_more(gw_req_t *req, const char *cursor)
{
    json_t *args = json_pack("{s:i}", "limit", S_MSGS_PAGE);
    if (cursor) {
        json_object_set_new(args, "cursor", json_string(cursor));
    }
    gw_req_call(req, PROTO_OP_MSG_LIST, args, s_get_page);
}

static void s_get_page(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (!body) {
        return;
    }
    json_t *msgs = json_object_get(req->legacy, "messages");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(body, "data"), i, m)
    {
        json_array_append_new(msgs, gw_legacy_message(m));
    }
    const char *cursor = json_string_value(json_object_get(body, "next_cursor"));
    if (cursor && json_array_size(msgs) < S_MSGS_MAX) {
        s_get_more(req, cursor);
    } else {
        if (cursor) {
            LOG_N("GET /interactions/%s: answered the first %d messages", req->params[0],
                  S_MSGS_MAX);
        }
        gw_req_respond_value(req, 200, json_incref(req->legacy));
    }
    json_decref(body);
}

static void s_get_conv(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (!body) {
        return;
    }
    req->legacy = json_pack("{s:o, s:[]}", "interaction", gw_legacy_interaction(body), "messages");
    json_decref(body);
    s_get_more(req, NULL);
}

void gw_h_legacy_get(gw_req_t *req)
{
    if (s_conv_param(req)) {
        gw_req_call(req, PROTO_OP_CONV_GET, json_object(), s_get_conv);
    }
}

/* ---- POST /interactions/:id/permission/response --------------------------------------- */

static void s_decided(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (body) {
        gw_req_respond_value(req, 200, json_pack("{s:b}", "success", 1));
    }
    json_decref(body);
}

static void s_pending(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (!body) {
        return;
    }
    /* Newest first: the oldest pending request is the last. */
    json_t *data = json_object_get(body, "data");
    json_t *oldest = json_array_get(data, json_array_size(data) - 1);
    json_t *id = json_object_get(oldest, "id");
    if (!json_is_string(id)) {
        s_error(req, 400, "Interaction not waiting for permission");
    } else {
        bool approved = json_is_true(json_object_get(req->legacy, "approved"));
        gw_req_call(req, PROTO_OP_PERM_DECIDE,
                    json_pack("{s:O, s:s}", "id", id, "decision", approved ? "approve" : "deny"),
                    s_decided);
    }
    json_decref(body);
}

static void s_checked(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = s_body(req, reply, 200);
    if (body) {
        gw_req_call(req, PROTO_OP_PERM_LIST,
                    json_pack("{s:s, s:s, s:i}", "status", "pending", "conversation_id",
                              req->params[0], "limit", S_LIST_MAX),
                    s_pending);
    }
    json_decref(body);
}

void gw_h_legacy_perm_response(gw_req_t *req)
{
    if (!s_conv_param(req)) {
        return;
    }
    gw_error_t err;
    json_t *in = gw_json_parse(req->body, req->body_len, &err);
    if (!in) {
        gw_req_respond_value(req, 400, json_pack("{s:s}", "error", err.message));
        return;
    }
    if (!json_is_boolean(json_object_get(in, "approved"))) {
        json_decref(in);
        s_error(req, 400, "approved must be true or false");
        return;
    }
    req->legacy = in;
    gw_req_call(req, PROTO_OP_CONV_GET, json_object(), s_checked);
}
