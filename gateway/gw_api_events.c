/*  gw_api_events — event routes: a conversation's events (JSON page, or an
    SSE stream with Accept: text/event-stream), the team's SSE stream
    (/api/stream) and the team's log (/api/events, with ?wait= a long-poll:
    gw_poll.c). Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

static bool s_wants_sse(gw_req_t *req)
{
    const char *accept = gw_req_header(req, MHD_HTTP_HEADER_ACCEPT);
    return accept && strstr(accept, "text/event-stream") != NULL;
}

/* Reads the resume point: Last-Event-ID (what a reconnecting EventSource
   sends) wins over ?after=. -1 after answering 400. */
static int s_resume_point(gw_req_t *req, gw_sse_spec_t *spec)
{
    const char *h = gw_req_header(req, "Last-Event-ID");
    const char *q = gw_req_query(req, "after");
    const char *text = h ? h : q;
    long long v;
    if (!text) {
        return 0;
    }
    if (gw_parse_int(text, 0, INT64_MAX, &v) < 0) {
        const char *field = h ? "Last-Event-ID" : "after";
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", field, "%s must be a non-negative event id",
                     field);
        gw_req_respond_error(req, &err);
        return -1;
    }
    spec->resume = true;
    spec->after = (uint64_t)v;
    return 0;
}

static void s_stream(gw_req_t *req, bool conv)
{
    gw_sse_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.has_conv = conv;
    memcpy(spec.conv_id, req->conv_id, 16);
    memcpy(spec.team_id, req->team_id, 16);
    if (s_resume_point(req, &spec) < 0) {
        return;
    }
    gw_sse_start(req, &spec);
}

/* A page of events: the conversation's when req->conv_id is set (its route), else the
   team's. */
static void s_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_EVENTS_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_EVENTS_LIST, args, NULL);
}

void gw_h_conv_events(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    if (s_wants_sse(req)) {
        s_stream(req, true);
    } else {
        s_list(req);
    }
}

void gw_h_stream(gw_req_t *req)
{
    s_stream(req, false);
}

void gw_h_team_events(gw_req_t *req)
{
    const char *text = gw_req_query(req, "wait");
    long long wait_s = 0;
    if (text && gw_parse_int(text, 0, GW_POLL_WAIT_MAX_S, &wait_s) < 0) {
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "wait", "wait must be 0 to %d seconds",
                     GW_POLL_WAIT_MAX_S);
        gw_req_respond_error(req, &err);
        return;
    }
    if (wait_s == 0) {
        s_list(req);
        return;
    }
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_EVENTS_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_poll_start(req, args, (long)wait_s);
}

/* ---- revert ----------------------------------------------------------------------------- */

/* The path's event id as event.get / event.revert's args; NULL after a 400. */
static json_t *s_event_id(gw_req_t *req)
{
    long long id;
    if (gw_parse_int(req->params[0], 1, INT64_MAX, &id) < 0) {
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "id", "id must be a positive event id");
        gw_req_respond_error(req, &err);
        return NULL;
    }
    return json_pack("{s:I}", "id", (json_int_t)id);
}

/* event.get answered: the revert goes to the owner of the event's conversation (any node
   for a team event). */
static void s_revert_route(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    const json_t *conv = json_object_get(body, "conversation_id");
    if (reply->status != 200) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    } else if (json_is_null(conv)) {
        /* A team event (a rule's creation or deletion): any node reverts it. */
        json_t *args = s_event_id(req);
        if (args) {
            gw_req_call(req, PROTO_OP_EVENT_REVERT_TEAM, args, NULL);
        }
    } else if (!json_is_string(conv) ||
               util_uuid_parse(json_string_value(conv), req->conv_id) < 0) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected event");
    } else {
        json_t *args = s_event_id(req);
        if (args) {
            gw_req_call(req, PROTO_OP_EVENT_REVERT, args, NULL);
        }
    }
    json_decref(body);
}

void gw_h_event_revert(gw_req_t *req)
{
    json_t *args = s_event_id(req);
    if (args) {
        gw_req_call(req, PROTO_OP_EVENT_GET, args, s_revert_route);
    }
}
