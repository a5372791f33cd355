/*  gw_phx_resume — what a joined channel sends, in the order of
    the SSE streams (gw_sse.c): a join with last_event_id N first gets every
    stored event after N (events.list, page by page, from the owner node)
    while the live events that arrive meanwhile are held; then the held ones
    it has not sent yet, then live ones. A stored event is never sent twice
    (ids at or below the last one sent are dropped) and never skipped: when
    a live event's per-conversation seq is not the next one (it was
    published before the subscription reached the node), the channel
    catches up from the store first (conversation channels; the team channel
    orders by id only, as the team SSE stream does). A join from the start
    (last_event_id 0) expects seq 1 first; a join from a later id whose
    replay found nothing does not know the seq to expect, so its first live
    event is checked against the store too. message.delta events (no
    id) are always passed on. Loop thread only. */
#define LOG_MODULE "gw_phx"
#include "gateway/gw_ws.h"

#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_PAGE     GW_SSE_REPLAY_PAGE /* events per page */
#define S_HELD_MAX GW_SSE_HELD_MAX    /* held bytes per channel, else phx_error */

typedef struct {
    uint64_t id, seq; /* the event's ids (0 for a delta) */
    char *frame;      /* the message to send (owned) */
    size_t len;       /* its length */
} s_held_t;

int gw_phx_resume_point(gw_phx_chan_t *c, const json_t *payload)
{
    json_t *v = json_object_get(payload, "last_event_id");
    long long n = -1;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v) && gw_parse_int(json_string_value(v), 0, INT64_MAX, &n) < 0) {
        n = -1;
    }
    if (n < 0) {
        return -1;
    }
    c->resume = true;
    c->last_id = (uint64_t)n;
    return 0;
}

/* [join_ref,null,"topic","type",json] as text; caller frees. */
static char *s_frame(const gw_phx_chan_t *c, const char *type, const char *json, size_t *len)
{
    char *ref = json_dumps(c->join_ref, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *names = json_pack("[ss]", c->topic, type);
    char *head = names ? json_dumps(names, JSON_COMPACT) : NULL;
    json_decref(names);
    size_t cap = (ref ? strlen(ref) : 0) + (head ? strlen(head) : 0) + strlen(json) + 16;
    char *text = ref && head ? malloc(cap) : NULL;
    if (text) {
        /* head is ["topic","type"]: its inside goes between the refs and the payload. */
        *len = (size_t)snprintf(text, cap, "[%s,null,%.*s,%s]", ref, (int)(strlen(head) - 2),
                                head + 1, json);
    }
    free(head);
    free(ref);
    return text;
}

/* Sends one event; remembers a stored one as the last sent. */
static void s_emit(gw_phx_chan_t *c, uint64_t id, uint64_t seq, const char *frame, size_t len)
{
    gw_ws_send_text(c->ws, frame, len);
    if (id) {
        c->last_id = id;
        /* seq is per conversation: the team channel has no seq to follow. */
        c->last_seq = c->team ? 0 : seq ? seq : c->last_seq;
    }
}

static void s_on_page(void *owner, const gw_reply_t *reply);

/* True when a stored event of seq may not be the one after the last sent
   (gw_seq_gap): the channel must catch up from the store first. */
static bool s_gap(const gw_phx_chan_t *c, uint64_t id, uint64_t seq)
{
    return !c->team && id && gw_seq_gap(seq, c->last_seq, c->last_id, c->resume, c->caught_up);
}

/* Asks the owner for the stored events after last_id; -1 when no node can
   take the call (the caller ends the channel). */
static int s_request_page(gw_phx_chan_t *c)
{
    c->replaying = true;
    c->page_after_held = c->held && zlistx_size(c->held) > 0;
    json_t *args = json_pack("{s:I, s:i}", "after", (json_int_t)c->last_id, "limit", S_PAGE);
    char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    json_decref(args);
    gw_call_t call = {.op = proto_ops[PROTO_OP_EVENTS_LIST].name,
                      .conv_id = c->team ? NULL : c->fan + 16,
                      .team_id = c->fan,
                      .args = text};
    c->page_call = text ? gw_upstream_call(gw_ws_server(c->ws)->upstream, &call, s_on_page, c) : 0;
    free(text);
    if (!c->page_call) {
        LOG_I("cannot replay a channel's events: no node");
        return -1;
    }
    return 0;
}

static void s_held_free(void **item)
{
    s_held_t *h = *item;
    if (h) {
        free(h->frame);
        free(h);
        *item = NULL;
    }
}

/* The replay caught up: sends the held frames not sent yet, in order. A gap
   among them starts another catch-up (the rest stays held); -1 when that
   cannot start. */
static int s_flush(gw_phx_chan_t *c)
{
    s_held_t *h;
    while (c->held && (h = zlistx_first(c->held))) {
        if (s_gap(c, h->id, h->seq)) {
            return s_request_page(c);
        }
        if (!h->id || h->id > c->last_id) {
            s_emit(c, h->id, h->seq, h->frame, h->len);
        }
        c->held_bytes -= h->len;
        zlistx_delete(c->held, zlistx_cursor(c->held));
    }
    c->replaying = false;
    return 0;
}

static void s_on_page(void *owner, const gw_reply_t *reply)
{
    gw_phx_chan_t *c = owner;
    c->page_call = 0;
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    json_t *data = json_object_get(body, "data");
    if (!json_is_array(data)) {
        LOG_I("replay page failed status=%d", reply->status);
        json_decref(body);
        gw_phx_chan_error(c);
        return;
    }
    size_t i, n = json_array_size(data);
    uint64_t before = c->last_id;
    json_t *ev;
    json_array_foreach(data, i, ev)
    {
        uint64_t id = (uint64_t)json_integer_value(json_object_get(ev, "id"));
        const char *type = json_string_value(json_object_get(ev, "type"));
        char *json = json_dumps(ev, JSON_COMPACT);
        size_t len = 0;
        char *frame = type && json && id > c->last_id ? s_frame(c, type, json, &len) : NULL;
        if (frame) {
            s_emit(c, id, (uint64_t)json_integer_value(json_object_get(ev, "seq")), frame, len);
        }
        free(frame);
        free(json);
    }
    bool more =
        n > 0 && json_is_string(json_object_get(body, "next_cursor")) && c->last_id > before;
    json_decref(body);
    /* The last page was asked for after the held events arrived: the store it
       read had them all (an event is published after its commit). */
    c->caught_up = c->caught_up || (!more && c->page_after_held);
    if ((more ? s_request_page(c) : s_flush(c)) < 0) {
        gw_phx_chan_error(c);
    }
}

void gw_phx_chan_start(gw_phx_chan_t *c)
{
    if (c->resume && s_request_page(c) < 0) {
        gw_phx_chan_error(c);
    }
}

void gw_phx_chan_stop(gw_phx_chan_t *c)
{
    gw_upstream_cancel(gw_ws_server(c->ws)->upstream, c->page_call);
    c->page_call = 0;
    zlistx_destroy(&c->held);
    c->held_bytes = 0;
}

void gw_phx_deliver(void *chan, const proto_msg_t *event)
{
    gw_phx_chan_t *c = chan;
    uint64_t id = event->event_id;
    if (id && id <= c->last_id) {
        return; /* sent already (by a replay page) */
    }
    size_t len = 0;
    char *frame = s_frame(c, event->event_type, event->body, &len);
    if (!frame) {
        return;
    }
    bool gap = s_gap(c, id, event->seq);
    if (!c->replaying && !gap) {
        s_emit(c, id, event->seq, frame, len);
        free(frame);
        return;
    }
    if (!c->held && !(c->held = zlistx_new())) {
        free(frame);
        return;
    }
    zlistx_set_destructor(c->held, s_held_free);
    s_held_t *h = calloc(1, sizeof *h);
    if (!h || c->held_bytes + len > S_HELD_MAX) {
        /* Called while the fan-out walks its listeners: the channel cannot
           go away here, the socket is closed instead (as a slow one). */
        free(h);
        free(frame);
        LOG_I("channel held too much during a replay: closing the socket");
        gw_ws_close(c->ws, 1008, "too slow: replay buffer full");
        return;
    }
    *h = (s_held_t){.id = id, .seq = event->seq, .frame = frame, .len = len};
    zlistx_add_end(c->held, h);
    c->held_bytes += len;
    if (gap && !c->replaying) {
        LOG_I("channel missed seq=%" PRIu64 ": catching up", c->last_seq + 1);
        if (s_request_page(c) < 0) {
            gw_ws_close(c->ws, 1011, "cannot catch up: no node");
        }
    }
}
