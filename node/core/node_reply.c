/*  node_reply — what the node sends: replies to API requests on the ROUTER
    (status and body, errors, MOVED) and events on the PUB socket. Every body
    is compact JSON (jansson's JSON_COMPACT spacing); Postgres-built text is
    compacted on the way (node_reply_pg). Loop thread only. */
#define LOG_MODULE "node_reply"
#include "common/log.h"
#include "common/wire.h"
#include "node/core/node_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies ----------------------------------------------------------------------------- */

void node_req_destroy(node_req_t **req_p)
{
    if (!req_p || !*req_p) {
        return;
    }
    node_req_t *req = *req_p;
    zframe_destroy(&req->identity);
    json_decref(req->args);
    free(req);
    *req_p = NULL;
}

static void s_send(node_t *node, node_req_t *req, proto_msg_t *m)
{
    m->v = PROTO_VERSION;
    m->req_id = req->req_id;
    m->ring_epoch = node->epoch;
    m->has_conv = req->has_conv;
    memcpy(m->conv_id, req->conv_id, 16);
    if (wire_send(req->sock ? req->sock : node->router, req->identity, m) < 0) {
        LOG_W("reply dropped req=%llu type=%s", (unsigned long long)req->req_id,
              proto_type_name(m->type));
    }
}

void node_reply(node_t *node, node_req_t **req_p, int status, const char *body, int retry_after)
{
    node_req_t *req = *req_p;
    if (!req) {
        return;
    }
    proto_msg_t m = {.type = PROTO_API_REP};
    m.status = (uint64_t)status;
    m.body = (char *)(body ? body : "");
    m.retry_after = retry_after > 0 ? (uint64_t)retry_after : 0;
    s_send(node, req, &m);
    LOG_D("reply req=%llu op=%s status=%d", (unsigned long long)req->req_id,
          req->op ? req->op->spec->name : "-", status);
    node_req_destroy(req_p);
}

void node_reply_pg(node_t *node, node_req_t **req_p, int status, const char *json)
{
    node_buf_t b;
    node_buf_init(&b);
    node_buf_json(&b, json);
    if (b.oom) {
        node_reply_busy(node, req_p, "out of memory");
    } else {
        node_reply(node, req_p, status, b.data, 0);
    }
    node_buf_free(&b);
}

void node_reply_error(
    node_t *node, node_req_t **req_p, int status, const char *code, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "error", message, "code", code);
    char *body = j ? node_json_text(j) : NULL;
    int retry = status == 503 || status == 429 ? NODE_RETRY_AFTER : 0;
    node_reply(node, req_p, status, body ? body : "{\"error\":\"error\",\"code\":\"error\"}",
               retry);
    free(body);
    json_decref(j);
}

void node_reply_error_field(node_t *node,
                            node_req_t **req_p,
                            const char *field,
                            const char *message)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "error", message, "code", "invalid_field", "field", field);
    char *body = j ? node_json_text(j) : NULL;
    node_reply(node, req_p, 400, body ? body : "{\"code\":\"invalid_field\"}", 0);
    free(body);
    json_decref(j);
}

void node_reply_field(node_t *node, node_req_t **req_p, const char *field)
{
    char message[96];
    snprintf(message, sizeof message, "invalid field: %s", field);
    node_reply_error_field(node, req_p, field, message);
}

void node_reply_busy(node_t *node, node_req_t **req_p, const char *why)
{
    node_reply_error(node, req_p, 503, "unavailable", why);
}

void node_reply_moved(node_t *node, node_req_t **req_p)
{
    if (!*req_p) {
        return;
    }
    proto_msg_t m = {.type = PROTO_MOVED};
    s_send(node, *req_p, &m);
    LOG_D("moved req=%llu epoch=%llu", (unsigned long long)(*req_p)->req_id,
          (unsigned long long)node->epoch);
    node_req_destroy(req_p);
}

/* ---- events ------------------------------------------------------------------------------ */

void node_publish(node_t *node,
                  const uint8_t team[16],
                  const uint8_t conv[16],
                  const node_event_out_t *ev)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_EVENT, .ring_epoch = node->epoch};
    m.has_team = m.has_conv = true;
    memcpy(m.team_id, team, 16);
    memcpy(m.conv_id, conv, 16);
    m.event_id = ev->id;
    m.seq = ev->seq;
    m.event_type = (char *)ev->type;
    m.body = (char *)ev->body;
    uint8_t topic[PROTO_TOPIC_LEN];
    proto_topic(team, conv, topic);
    if (wire_publish(node->pub, topic, sizeof topic, &m) < 0) {
        LOG_W("event not published type=%s id=%llu", ev->type, (unsigned long long)ev->id);
    }
}
