/*  gw_api_events — event routes: a conversation's events (JSON page, or an
    SSE stream with Accept: text/event-stream), the team's SSE stream
    (/api/stream) and the team's log (/api/events). Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"

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
    s_list(req);
}
