/*  gw_sse — Server-Sent Events clients. A client subscribes to its topic
    first, then (on resume) replays the stored events after the client's last
    id page by page through the `events.list` op, then goes live; any live
    event whose id is not above the last one sent is dropped, so there is no
    gap and no duplicate. Output goes through a bounded buffer drained by an
    MHD content reader that suspends the connection when the buffer is empty
    and is resumed when data arrives. A client that falls behind is
    disconnected (it can resume) — except behind big events (over half the
    buffer, e.g. a long message): a stored event that does not fit then is not
    queued, the client catches up from the store page by page as it drains,
    exactly like a resume (a delta that does not fit is dropped: deltas are
    live only). A client that takes no byte for two keep-alive intervals (at
    least S_STALL_MIN_MS) while output waits is disconnected too.
    Loop thread only. */
#define LOG_MODULE "gw_sse"
#include "gateway/gateway_internal.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char s_hello[] = ": connected\n\n";

#define S_STALL_MIN_MS 500  /* least time a client may take no byte while output waits */
#define S_SWEEP_MAX_MS 1000 /* keep-alive and stall sweep period at most */

typedef enum {
    S_SETUP,     /* waiting for the first page or the conversation check */
    S_STREAMING, /* response queued */
    S_CLOSING,   /* ends once the buffer is sent */
} s_state_t;

typedef struct {
    uint64_t id;  /* stored event id, 0 for live-only deltas */
    uint64_t seq; /* per-conversation seq of a stored event, 0 when unknown */
    char *data;   /* SSE frame (owned) */
    size_t len;   /* bytes */
} s_frame_t;

struct gw_sse_t {
    gw_server_t *srv;               /* owner */
    struct MHD_Connection *conn;    /* connection once streaming */
    gw_req_t *req;                  /* request while setting up, else NULL */
    gw_sse_spec_t spec;             /* what the client asked for */
    uint8_t topic[PROTO_TOPIC_LEN]; /* subscribed topic */
    size_t topic_len;               /* 32 (conversation) or 16 (team) */
    s_state_t state;                /* lifecycle */
    bool started;                   /* owned by an MHD response */
    bool suspended;                 /* connection suspended by our reader */
    bool overflow;                  /* disconnected for falling behind */
    bool replaying;                 /* stored events still to send */
    gw_sse_buf_t out;               /* bytes for the reader */
    zlistx_t *held;                 /* s_frame_t live events held during replay */
    size_t held_bytes;              /* bytes in held */
    uint64_t last_id;               /* last stored event id sent (or replay position) */
    uint64_t last_seq;              /* conversation streams: seq of that event, 0 unknown */
    bool caught_up;                 /* a catch-up replay began after a live event came */
    json_t *page;                   /* current replay page (array) */
    size_t page_idx;                /* next event of page */
    bool page_more;                 /* more pages after this one */
    bool again;                     /* stored events were dropped: replay once more */
    bool held_big;                  /* a big frame is among the held events */
    uint64_t call_id;               /* pending upstream call */
    int64_t last_write_ms;          /* last time bytes went out (keep-alive) */
    int64_t last_drain_ms;          /* last time the client took bytes (stall check) */
    void *handle;                   /* position in srv->sse */
    bool counted;                   /* holds one of its team's stream slots */
    uint32_t lim[3];                /* the team's turns, actors, worktrees limits (its calls) */
};

/* A frame in the client's format (the legacy stream has its own). */
static char *
s_frame(const gw_sse_t *c, uint64_t id, const char *type, const char *data, size_t *len)
{
    return c->spec.format ? c->spec.format(id, type, data, len) : gw_sse_frame(id, type, data, len);
}

static void s_frame_free(void **item)
{
    s_frame_t *f = *item;
    if (f) {
        free(f->data);
        free(f);
        *item = NULL;
    }
}

static void s_destroy(gw_sse_t *c)
{
    if (c->counted) {
        gw_limits_stream_close(c->srv->limits, c->spec.team_id);
    }
    gw_fanout_remove(c->srv->fanout, c->topic, c->topic_len, c);
    gw_upstream_cancel(c->srv->upstream, c->call_id);
    if (c->handle) {
        zlistx_delete(c->srv->sse, c->handle);
    }
    zlistx_destroy(&c->held);
    gw_sse_buf_free(&c->out);
    json_decref(c->page);
    free(c);
}

void gw_sse_destroy(gw_sse_t **self_p)
{
    if (self_p && *self_p) {
        s_destroy(*self_p);
        *self_p = NULL;
    }
}

static void s_free_cb(void *cls)
{
    s_destroy(cls);
}

static gw_sse_t *s_new(gw_req_t *req, const gw_sse_spec_t *spec)
{
    gw_sse_t *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->srv = req->srv;
    c->req = req;
    c->spec = *spec;
    gw_limits_pack(&req->limits, c->lim);
    c->last_id = spec->after;
    gw_sse_buf_init(&c->out, (size_t)req->srv->cfg->sse_buffer,
                    (size_t)req->srv->cfg->sse_frame_max);
    c->held = zlistx_new();
    memcpy(c->topic, spec->team_id, 16);
    memcpy(c->topic + 16, spec->conv_id, 16);
    c->topic_len = spec->has_conv ? PROTO_TOPIC_LEN : 16;
    if (!c->held || gw_fanout_add(c->srv->fanout, c->topic, c->topic_len, c) < 0) {
        zlistx_destroy(&c->held);
        free(c);
        return NULL;
    }
    zlistx_set_destructor(c->held, s_frame_free);
    c->handle = zlistx_add_end(c->srv->sse, c);
    return c;
}

static void s_wake(gw_sse_t *c)
{
    if (c->started && c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
        gw_server_kick(c->srv);
    }
}

static void s_overflow(gw_sse_t *c)
{
    if (c->overflow) {
        return;
    }
    LOG_I("disconnecting SSE client (slow, or a frame over --sse-frame-max) buffered=%zu held=%zu "
          "last_id=%" PRIu64,
          c->out.len, c->held_bytes, c->last_id);
    gw_metrics_sse_slow(c->srv->metrics);
    c->overflow = true;
    c->state = S_CLOSING;
    if (c->started) {
        /* A client that does not read leaves MHD no writable moment to call
           our reader; shutting the socket down makes MHD close it now. */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            shutdown(ci->connect_fd, SHUT_RDWR);
        }
    }
    s_wake(c);
}

/* ---- replay ---------------------------------------------------------------- */

static void s_on_page(void *owner, const gw_reply_t *reply);

static int s_call(gw_sse_t *c, const char *op, json_t *args, gw_reply_fn *fn)
{
    char *text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    limits_t lim; /* only what a node applies is kept per client (they are many) */
    gw_limits_unpack(c->lim, &lim);
    gw_call_t call = {.op = op,
                      .conv_id = c->spec.has_conv ? c->spec.conv_id : NULL,
                      .team_id = c->spec.team_id,
                      .limits = &lim,
                      .args = text,
                      .deadline_ms = c->req ? c->req->deadline_ms : 0};
    c->call_id = text ? gw_upstream_call(c->srv->upstream, &call, fn, c) : 0;
    free(text);
    return c->call_id ? 0 : -1;
}

static int s_request_page(gw_sse_t *c)
{
    json_t *args =
        json_pack("{s:I, s:i}", "after", (json_int_t)c->last_id, "limit", GW_SSE_REPLAY_PAGE);
    return s_call(c, proto_ops[PROTO_OP_EVENTS_LIST].name, args, s_on_page);
}

/* Ends a stream that already sent its headers with an `error` event. */
static void s_stream_error(gw_sse_t *c, int status, const char *body)
{
    LOG_W("ending SSE stream after upstream status=%d last_id=%" PRIu64, status, c->last_id);
    size_t len;
    char *frame = gw_sse_frame(0, "error", body ? body : "{}", &len);
    if (frame) {
        gw_sse_buf_append(&c->out, frame, len);
        free(frame);
    }
    c->replaying = false;
    c->state = S_CLOSING;
    s_wake(c);
}

static void s_fall_behind(gw_sse_t *c, uint64_t id);

/* A conversation stream's event that must wait for a catch-up (gw_seq_gap). */
static bool s_gap(const gw_sse_t *c, uint64_t seq)
{
    return c->topic_len == PROTO_TOPIC_LEN &&
           gw_seq_gap(seq, c->last_seq, c->last_id, c->spec.resume, c->caught_up);
}

/* Sends held live events that the replay did not already cover. */
static void s_flush_held(gw_sse_t *c)
{
    s_frame_t *f;
    while ((f = zlistx_first(c->held)) != NULL) {
        if (f->id == 0 || f->id > c->last_id) {
            if (s_gap(c, f->seq)) {
                s_fall_behind(c, f->id); /* purges held, f included */
                return;
            }
            if (gw_sse_buf_append(&c->out, f->data, f->len) < 0) {
                return;
            }
            c->last_id = f->id ? f->id : c->last_id;
            c->last_seq = f->seq ? f->seq : c->last_seq;
        }
        c->held_bytes -= f->len;
        zlistx_delete(c->held, zlistx_cursor(c->held));
    }
    c->held_big = false;
}

/* Moves one stored event of the page into the buffer; false when full. */
static bool s_replay_one(gw_sse_t *c, const json_t *ev)
{
    json_int_t id = json_integer_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (id <= 0 || !type || (uint64_t)id <= c->last_id) {
        return true;
    }
    char *text = json_dumps(ev, JSON_COMPACT);
    size_t len = 0;
    char *frame = text ? s_frame(c, (uint64_t)id, type, text, &len) : NULL;
    free(text);
    if (!frame) {
        return false;
    }
    int rc = gw_sse_buf_append(&c->out, frame, len);
    free(frame);
    if (rc == GW_SSE_TOO_BIG) {
        s_overflow(c); /* closed: the buffer does not grow for one frame */
    }
    if (rc < 0) {
        return false;
    }
    c->last_id = (uint64_t)id;
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    c->last_seq = seq > 0 ? (uint64_t)seq : c->last_seq;
    return true;
}

/* Fills the buffer from the replay page and asks for the next page. */
static void s_pump_replay(gw_sse_t *c)
{
    /* Nothing to do while a page is on its way (the current one is consumed). */
    if (c->replaying && !c->call_id) {
        size_t n = c->page ? json_array_size(c->page) : 0;
        while (c->page_idx < n && c->out.len < c->out.max / 2) {
            if (!s_replay_one(c, json_array_get(c->page, c->page_idx))) {
                break;
            }
            c->page_idx++;
        }
        if (c->page_idx >= n && !c->page_more && !c->again) {
            c->replaying = false;
            json_decref(c->page);
            c->page = NULL;
        } else if (c->page_idx >= n) {
            c->again = false; /* the next page reads from last_id: it covers the drops */
            if (s_request_page(c) < 0) {
                s_stream_error(c, 503, "{\"error\":\"no live node\",\"code\":\"unavailable\"}");
            }
        }
    }
}

/* Replays what is due, then, once the replay is over, releases the held live
   events; a gap among them starts another catch-up at once. */
static void s_pump(gw_sse_t *c)
{
    s_pump_replay(c);
    if (!c->replaying && c->state == S_STREAMING) {
        s_flush_held(c);
        if (c->replaying) {
            s_pump_replay(c);
        }
    }
}

/* ---- the response ------------------------------------------------------------ */

static ssize_t s_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    gw_sse_t *c = cls;
    if (c->overflow) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    s_pump(c);
    size_t n = gw_sse_buf_read(&c->out, buf, max);
    if (n > 0) {
        c->last_write_ms = c->last_drain_ms = util_mono_ms();
        return (ssize_t)n;
    }
    if (c->state == S_CLOSING) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    MHD_suspend_connection(c->conn);
    c->suspended = true;
    return 0;
}

/* Detaches the client from its request and fails the request. */
static void s_setup_fail(gw_sse_t *c, int status, const char *body, unsigned retry_after)
{
    gw_req_t *req = c->req;
    req->sse = NULL;
    s_destroy(c);
    gw_req_respond_json(req, (unsigned)status, body, retry_after);
}

static void s_begin_stream(gw_sse_t *c)
{
    gw_req_t *req = c->req;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GW_SSE_BLOCK, s_reader, c, s_free_cb);
    if (!resp) {
        s_setup_fail(c, 503, "{\"error\":\"out of memory\",\"code\":\"unavailable\"}", 1);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    /* A first comment lets the headers and a first chunk leave at once. */
    gw_sse_buf_append(&c->out, s_hello, sizeof s_hello - 1);
    c->conn = req->conn;
    c->req = NULL;
    req->sse = NULL;
    c->started = true;
    c->state = c->overflow ? S_CLOSING : S_STREAMING;
    c->last_write_ms = c->last_drain_ms = util_mono_ms();
    LOG_I("SSE stream started topic_len=%zu resume=%d after=%" PRIu64, c->topic_len,
          (int)c->spec.resume, c->spec.after);
    gw_req_respond(req, 200, resp);
}

static void s_on_page(void *owner, const gw_reply_t *reply)
{
    gw_sse_t *c = owner;
    c->call_id = 0;
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    json_t *data = json_object_get(body, "data");
    if (!json_is_array(data)) {
        int status = reply->status == 200 ? 502 : reply->status;
        const char *text = reply->status == 200
                               ? "{\"error\":\"bad events page\",\"code\":\"bad_gateway\"}"
                               : reply->body;
        json_decref(body);
        if (!c->started) {
            s_setup_fail(c, status, text, reply->retry_after);
        } else {
            s_stream_error(c, status, text);
        }
        return;
    }
    size_t n = json_array_size(data);
    json_int_t top = n ? json_integer_value(json_object_get(json_array_get(data, n - 1), "id")) : 0;
    /* Another page only when this one made progress and the node says so. */
    c->page_more = n > 0 && json_is_string(json_object_get(body, "next_cursor")) && top > 0 &&
                   (uint64_t)top > c->last_id;
    json_decref(c->page);
    c->page = json_incref(data);
    c->page_idx = 0;
    json_decref(body);
    if (!c->started) {
        s_begin_stream(c);
        return;
    }
    s_pump(c);
    s_wake(c);
}

static void s_on_check(void *owner, const gw_reply_t *reply)
{
    gw_sse_t *c = owner;
    c->call_id = 0;
    if (reply->status != 200) {
        s_setup_fail(c, reply->status, reply->body, reply->retry_after);
        return;
    }
    s_begin_stream(c);
}

void gw_sse_start(gw_req_t *req, const gw_sse_spec_t *spec)
{
    if (gw_limits_stream_take(req) < 0) {
        return;
    }
    gw_sse_t *c = s_new(req, spec);
    if (!c) {
        gw_limits_stream_close(req->srv->limits, req->team_id);
        gw_req_fail(req, 503, "unavailable", "cannot open an event stream right now");
        return;
    }
    c->counted = true;
    req->sse = c;
    int rc = 0;
    if (spec->resume) {
        c->replaying = true;
        rc = s_request_page(c);
    } else if (spec->has_conv) {
        rc = s_call(c, proto_ops[PROTO_OP_CONV_GET].name, json_object(), s_on_check);
    } else {
        s_begin_stream(c);
    }
    if (rc < 0) {
        s_setup_fail(c, 503,
                     "{\"error\":\"no live node is available right now\",\"code\":\"unavailable\"}",
                     1);
    }
}

/* ---- live events ---------------------------------------------------------------- */

/* More than half the output buffer: cannot queue behind others. */
static bool s_big(const gw_sse_t *c, size_t len)
{
    return len > c->out.max / 2;
}

/* A stored event was not queued: catch up from the store (after last_id) once the
   client drains, as a resume does. Held events are dropped too (the replay covers
   the stored ones; held deltas are lost, as on any resume). */
static void s_fall_behind(gw_sse_t *c, uint64_t id)
{
    if (c->last_id == 0 && !c->spec.resume) {
        /* Nothing stored sent yet and no resume point: catch up from the oldest
           event dropped (the ones before it were never this client's). */
        uint64_t floor = id;
        for (s_frame_t *f = zlistx_first(c->held); f; f = zlistx_next(c->held)) {
            floor = f->id && f->id < floor ? f->id : floor;
        }
        c->last_id = floor - 1;
    }
    if (!c->replaying) {
        LOG_I("SSE client behind: catching up from the store last_id=%" PRIu64, c->last_id);
        c->replaying = true;
        c->page_more = true;
        json_decref(c->page);
        c->page = NULL;
        c->page_idx = 0;
    }
    c->again = true;
    c->caught_up = true; /* this replay starts after event id arrived: it covers it */
    zlistx_purge(c->held);
    c->held_bytes = 0;
    c->held_big = false;
}

static void s_hold(gw_sse_t *c, uint64_t id, uint64_t seq, char *frame, size_t len)
{
    s_frame_t *f = malloc(sizeof *f);
    if (!f || c->held_bytes + len > GW_SSE_HELD_MAX) {
        bool big = f && (s_big(c, len) || c->held_big);
        free(f);
        free(frame);
        if (!big) {
            s_overflow(c);
        } else if (id) {
            s_fall_behind(c, id);
        }
        return;
    }
    *f = (s_frame_t){.id = id, .seq = seq, .data = frame, .len = len};
    zlistx_add_end(c->held, f);
    c->held_bytes += len;
    c->held_big = c->held_big || s_big(c, len);
    if (!c->replaying && c->state == S_STREAMING) {
        s_flush_held(c);
        s_wake(c);
    }
}

void gw_sse_deliver(gw_sse_t *c, const proto_msg_t *event)
{
    uint64_t id = event->event_id;
    if (c->state == S_CLOSING || (id && id <= c->last_id)) {
        return;
    }
    size_t len = 0;
    char *frame = s_frame(c, id, event->event_type, event->body, &len);
    if (!frame || len > c->out.frame_max) {
        free(frame); /* one frame over the cap: closed, the client resumes after last_id */
        s_overflow(c);
        return;
    }
    if (c->replaying || c->state == S_SETUP || zlistx_size(c->held) > 0) {
        s_hold(c, id, event->seq, frame, len);
        return;
    }
    if (id && s_gap(c, event->seq)) {
        LOG_I("SSE stream missed seq=%" PRIu64 " after seq=%" PRIu64 ": catching up",
              c->last_seq + 1, c->last_seq);
        free(frame);
        s_fall_behind(c, id); /* the catch-up replays this event too */
        s_pump(c);
        s_wake(c);
        return;
    }
    int rc = gw_sse_buf_append(&c->out, frame, len);
    free(frame);
    if ((rc < 0 && !s_big(c, len) && c->out.len <= c->out.max) || rc == GW_SSE_TOO_BIG) {
        s_overflow(c); /* behind on ordinary events: too slow */
        return;
    }
    if (rc < 0) {
        if (id) {
            s_fall_behind(c, id); /* behind a big event; a delta is dropped */
        }
        return;
    }
    c->last_id = id ? id : c->last_id;
    c->last_seq = event->seq ? event->seq : c->last_seq;
    s_wake(c);
}

void gw_sse_tick(gw_server_t *srv, int64_t now_ms)
{
    /* One sweep per period, not per tick: the due clients are resumed in one
       batch, so libmicrohttpd walks its suspended connections once per sweep
       (it walks all of them after any resume), and idle clients cost one
       visit per period (a quarter of the keep-alive interval). A client
       with nothing to send is never resumed. */
    if (now_ms < srv->sse_sweep_ms) {
        return;
    }
    int64_t period = srv->cfg->keepalive_ms / 4; /* within [GW_TICK_MS, S_SWEEP_MAX_MS] */
    period = period < GW_TICK_MS ? GW_TICK_MS : period > S_SWEEP_MAX_MS ? S_SWEEP_MAX_MS : period;
    srv->sse_sweep_ms = now_ms + period;
    size_t len;
    const char *ka = gw_sse_keepalive(&len);
    int64_t stall_ms = 2 * srv->cfg->keepalive_ms;
    stall_ms = stall_ms < S_STALL_MIN_MS ? S_STALL_MIN_MS : stall_ms;
    for (gw_sse_t *c = zlistx_first(srv->sse); c; c = zlistx_next(srv->sse)) {
        if (!c->started || c->state != S_STREAMING) {
            continue;
        }
        if (c->out.len > 0 && now_ms - c->last_drain_ms >= stall_ms) {
            s_overflow(c); /* stalled: takes nothing while output waits */
            continue;
        }
        if (now_ms - c->last_write_ms >= srv->cfg->keepalive_ms) {
            gw_sse_buf_append(&c->out, ka, len);
            c->last_write_ms = now_ms;
            s_wake(c);
        }
    }
}

void gw_sse_close_all(gw_server_t *srv)
{
    for (gw_sse_t *c = zlistx_first(srv->sse); c; c = zlistx_next(srv->sse)) {
        if (c->started) {
            c->state = S_CLOSING;
            c->replaying = false;
            s_wake(c);
        }
    }
}
