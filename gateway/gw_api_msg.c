/*  gw_api_msg — message routes (list, post, the POST /api/message shortcut
    that creates the conversation when needed) and GET /api/status (the
    cluster view: ring from this gateway, counts from a node). Loop thread
    only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

void gw_h_msg_list(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = json_object();
    if (gw_api_uint_arg(req, args, "after_seq") < 0 || gw_api_page_args(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "msg.list", true, args, NULL);
}

void gw_h_msg_post(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, GW_SHAPE_MSG_POST);
    if (args) {
        gw_req_call(req, "msg.post", true, args, NULL);
    }
}

/* ---- POST /api/message ------------------------------------------------------ */

static bool s_is_conv_field(const char *key)
{
    static const char *keys[] = {"source",      "type",    "title", "strategy",
                                 "worktree_id", "on_busy", NULL};
    for (const char **k = keys; *k; k++) {
        if (strcmp(*k, key) == 0) {
            return true;
        }
    }
    return false;
}

static void s_message_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    if (reply->status != 202) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
        return;
    }
    json_t *body = reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    json_t *msg = json_object_get(body, "message");
    char conv[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(req->conv_id, conv);
    json_t *out = json_pack("{s:s, s:s?, s:b}", "conversation_id", conv, "message_id",
                            json_string_value(json_object_get(msg, "id")), "created",
                            json_is_true(json_object_get(body, "created")));
    if (out && json_is_object(msg)) {
        json_object_set(out, "message", msg);
    }
    json_decref(body);
    gw_req_respond_value(req, 202, out);
}

void gw_h_message(gw_req_t *req)
{
    json_t *in = gw_api_body(req, GW_SHAPE_MESSAGE);
    if (!in) {
        return;
    }
    json_t *args = json_object();
    json_t *create = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        if (s_is_conv_field(key)) {
            json_object_set(create, key, v);
        } else if (strcmp(key, "conversation_id") != 0) {
            json_object_set(args, key, v);
        }
    }
    const char *cid = json_string_value(json_object_get(in, "conversation_id"));
    if (cid) {
        util_uuid_parse(cid, req->conv_id);
    } else if (gw_api_new_conv_id(req, in, req->conv_id)) {
        json_object_set_new(args, "fresh", json_true()); /* the node skips its lookup */
    }
    json_object_set_new(args, "create", create);
    json_decref(in);
    gw_req_call(req, "msg.post", true, args, s_message_reply);
}

/* ---- GET /api/status ----------------------------------------------------------- */

static json_t *s_gateway_json(gw_server_t *srv)
{
    return json_pack("{s:s, s:I, s:i, s:I, s:I, s:s}", "version", BICKY_VERSION, "uptime_s",
                     (json_int_t)((util_wall_ms() - srv->started_ms) / 1000), "connections",
                     (int)gw_server_connections(srv), "sse_clients",
                     (json_int_t)zlistx_size(srv->sse), "pending_calls",
                     (json_int_t)gw_upstream_pending(srv->upstream), "registry",
                     gw_registry_current(srv->registry));
}

static void s_status_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    gw_server_t *srv = req->srv;
    json_t *counts = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    json_t *by_status = json_object_get(counts, "conversations_by_status");
    json_t *nodes = gw_upstream_nodes_json(srv->upstream);
    json_int_t actors = 0;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        actors += json_integer_value(json_object_get(n, "actors"));
    }
    json_t *out = json_pack("{s:I, s:I, s:o, s:I, s:O, s:o}", "ring_epoch",
                            (json_int_t)gw_upstream_epoch(srv->upstream), "live_nodes",
                            (json_int_t)gw_upstream_live(srv->upstream), "nodes", nodes, "actors",
                            actors, "conversations_by_status", by_status ? by_status : json_null(),
                            "gateway", s_gateway_json(srv));
    if (out && !by_status) {
        json_object_set_new(
            out, "counts_error",
            json_string(reply->status == 200 ? "bad status reply" : "no node answered the counts"));
    }
    json_decref(counts);
    gw_req_respond_value(req, 200, out);
}

void gw_h_status(gw_req_t *req)
{
    gw_req_call(req, "status", false, json_object(), s_status_reply);
}
