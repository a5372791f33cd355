/*  gw_poll — GET /api/events?wait=N, the long-poll form of the team's log for
    clients that cannot hold a stream. The request listens to its team's live
    events first, then asks for the page; a page with events is the answer.
    An empty one makes the request wait (suspended: no thread, no timer per
    byte) until the team's next stored event, which makes it ask again with
    the same filters — so an event of another type keeps it waiting — or
    until N seconds have passed, which answers the empty page. Listening
    before asking means an event committed between the two is not missed.
    Loop thread only. */
#define LOG_MODULE "gw_poll"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

struct gw_poll_t {
    gw_req_t *req;  /* owner */
    json_t *args;   /* events.list args (owned) */
    int timer;      /* zloop timer id of the deadline, -1 once it fired */
    bool listening; /* on the fan-out */
    bool querying;  /* events.list in flight */
    bool woke;      /* a stored event arrived since the last query was sent */
    bool expired;   /* the deadline passed */
    char *empty;    /* the last empty page the node answered (owned) */
};

static void s_query(gw_poll_t *p);

/* Answers the empty page the node gave (or an empty one). */
static void s_answer_empty(gw_poll_t *p)
{
    const char *body = p->empty ? p->empty : "{\"data\":[],\"next_cursor\":null}";
    gw_req_respond_json(p->req, 200, body, 0);
}

static void s_on_page(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    gw_poll_t *p = req->poll;
    p->querying = false;
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    size_t n = json_array_size(json_object_get(body, "data"));
    json_decref(body);
    if (reply->status != 200 || n > 0) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
        return;
    }
    free(p->empty);
    p->empty = reply->body ? strdup(reply->body) : NULL;
    if (p->woke && !p->expired) {
        s_query(p);
    } else if (p->expired) {
        s_answer_empty(p);
    }
    /* else: wait for an event or the deadline */
}

static void s_query(gw_poll_t *p)
{
    gw_req_t *req = p->req;
    p->woke = false;
    p->querying = true;
    /* Each query has the gateway's usual upstream deadline, from now. */
    req->deadline_ms = util_mono_ms() + req->srv->cfg->request_timeout_ms;
    gw_req_call(req, PROTO_OP_EVENTS_LIST, json_deep_copy(p->args), s_on_page);
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    gw_poll_t *p = arg;
    p->timer = -1;
    p->expired = true;
    if (p->req->state == GW_REQ_RUNNING && !p->querying) {
        s_answer_empty(p);
    }
    return 0;
}

void gw_poll_deliver(gw_poll_t *p, const proto_msg_t *event)
{
    if (!event->event_id || p->req->state != GW_REQ_RUNNING || p->expired) {
        return; /* deltas are not stored: they cannot be in the page */
    }
    p->woke = true;
    if (!p->querying) {
        s_query(p);
    }
}

void gw_poll_start(gw_req_t *req, json_t *args, long wait_s)
{
    gw_poll_t *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(args);
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    p->req = req;
    p->args = args;
    p->timer = -1;
    req->poll = p;
    if (gw_fanout_add_poll(req->srv->fanout, req->team_id, 16, p) < 0) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    p->listening = true;
    p->timer = zloop_timer(req->srv->loop, (size_t)wait_s * 1000, 1, s_on_deadline, p);
    if (p->timer < 0) {
        gw_req_fail(req, 503, "unavailable", "out of memory");
        return;
    }
    s_query(p);
}

void gw_poll_destroy(gw_poll_t **self_p)
{
    gw_poll_t *p = self_p ? *self_p : NULL;
    if (!p) {
        return;
    }
    if (p->listening) {
        gw_fanout_remove_poll(p->req->srv->fanout, p->req->team_id, 16, p);
    }
    if (p->timer >= 0) {
        zloop_timer_end(p->req->srv->loop, p->timer);
    }
    json_decref(p->args);
    free(p->empty);
    free(p);
    *self_p = NULL;
}
