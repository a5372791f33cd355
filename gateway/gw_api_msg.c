/*  gw_api_msg — message routes (list, post, the POST /api/message shortcut
    that creates the conversation when needed) and GET /api/status (the
    cluster view: ring from this gateway, counts from a node). Loop thread
    only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"
#include "gateway/gw_limits.h"

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
    if (gw_api_query(req, PROTO_OP_MSG_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_MSG_LIST, args, NULL);
}

void gw_h_msg_post(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, PROTO_OP_MSG_POST, NULL);
    if (args) {
        gw_req_call(req, PROTO_OP_MSG_POST, args, NULL);
    }
}

/* ---- POST /api/message ------------------------------------------------------ */

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
    gw_error_t err;
    bool has_conv = false;
    json_t *obj = gw_json_parse(req->body, req->body_len, &err);
    json_t *args = obj ? gw_json_message_args(obj, req->conv_id, &has_conv, &err) : NULL;
    if (args && gw_req_idempotency(req, args, &err) < 0) {
        json_decref(args);
        args = NULL;
    }
    if (!args) {
        gw_req_respond_error(req, &err);
        return;
    }
    if (gw_limits_strategy(req, json_object_get(args, "create"), !has_conv) < 0) {
        json_decref(args);
        return;
    }
    if (!has_conv && gw_api_new_conv_id(req, args, req->conv_id)) {
        json_object_set_new(args, "fresh", json_true()); /* the node skips its lookup */
    }
    gw_req_call(req, PROTO_OP_MSG_POST, args, s_message_reply);
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
    /* The caller's team: its limits, this gateway's usage and the answering node's. */
    json_t *team = gw_limits_json(req);
    json_t *node_usage = json_object_get(counts, "team_usage");
    if (team && json_is_object(node_usage)) {
        json_object_update(json_object_get(team, "usage"), node_usage);
    }
    if (out && team) {
        json_object_set_new(out, "team", team);
    } else {
        json_decref(team);
    }
    /* Whether the caller's token is an admin token (the console shows drain buttons). */
    if (out) {
        json_object_set_new(out, "admin", json_boolean(req->admin));
    }
    json_decref(counts);
    gw_req_respond_value(req, 200, out);
}

void gw_h_status(gw_req_t *req)
{
    gw_req_call(req, PROTO_OP_STATUS, json_object(), s_status_reply);
}
