/*  gw_phx — the Phoenix Channels v2 protocol on a gateway WebSocket, as the
    `phoenix` JavaScript client speaks it: every message is a JSON array
    [join_ref, ref, topic, event, payload]. Topic "phoenix" takes heartbeats;
    "conversation:<id>" is joined after the conversation's owner node says the
    socket's team may read it (conv.get), then every live event of the
    conversation is pushed with its type as the event name and its JSON as
    payload (after the stored ones past last_event_id: gw_phx_resume.c);
    "team" is joined at once and pushes every event of the socket's team, as
    GET /api/stream does. "message:create", "conversation:cancel",
    "permission:approve" and "permission:deny" do what the HTTP routes do,
    with their checks and answers (the team topic takes the permission
    decisions only, for any conversation of the team); phx_leave answers ok,
    then phx_close. Anything else is an error reply and the socket stays.
    Loop thread only. */
#define LOG_MODULE "gw_phx"
#include "gateway/gw_ws.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_TOPIC_MAX 80 /* "conversation:" + a UUID, with room */

typedef gw_phx_chan_t s_chan_t;

typedef struct {
    gw_phx_t *phx;           /* owner */
    uint64_t id;             /* upstream call */
    json_t *join_ref, *ref;  /* to address the reply (owned) */
    char topic[S_TOPIC_MAX]; /* the message's topic */
    s_chan_t *join;          /* the channel being joined, NULL for a push */
    json_t *decide;          /* perm.decide's args once perm.get has answered (owned) */
    void *handle;            /* position in phx->calls */
} s_call_t;

struct gw_phx_t {
    gw_ws_t *ws;     /* the socket */
    zlistx_t *chans; /* s_chan_t (freed here) */
    zlistx_t *calls; /* s_call_t in flight (freed here) */
};

gw_phx_t *gw_phx_new(gw_ws_t *ws)
{
    gw_phx_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->ws = ws;
    self->chans = zlistx_new();
    self->calls = zlistx_new();
    if (!self->chans || !self->calls) {
        gw_phx_destroy(&self);
    }
    return self;
}

static void s_call_free(s_call_t *call);

/* The fan-out topic's length: team + conversation, or the team alone. */
static size_t s_fan_len(const gw_phx_chan_t *c)
{
    return c->team ? 16 : sizeof c->fan;
}

/* Frees channel c: unsubscribes, and drops a join of it still in flight. */
void gw_phx_chan_free(gw_phx_chan_t *c)
{
    gw_phx_t *self = c->phx;
    s_call_t *call = zlistx_first(self->calls);
    while (call) {
        s_call_t *next = zlistx_next(self->calls);
        if (call->join == c) {
            s_call_free(call);
        }
        call = next;
    }
    gw_phx_chan_stop(c);
    if (c->live) {
        gw_fanout_remove_ws(gw_ws_server(self->ws)->fanout, c->fan, s_fan_len(c), c);
    }
    zlistx_delete(self->chans, c->handle);
    json_decref(c->join_ref);
    free(c);
}

static void s_call_free(s_call_t *call)
{
    gw_upstream_cancel(gw_ws_server(call->phx->ws)->upstream, call->id);
    zlistx_delete(call->phx->calls, call->handle);
    json_decref(call->join_ref);
    json_decref(call->ref);
    json_decref(call->decide);
    free(call);
}

void gw_phx_destroy(gw_phx_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_phx_t *self = *self_p;
    void *p;
    while (self->calls && (p = zlistx_first(self->calls))) {
        s_call_free(p);
    }
    while (self->chans && (p = zlistx_first(self->chans))) {
        gw_phx_chan_free(p);
    }
    zlistx_destroy(&self->calls);
    zlistx_destroy(&self->chans);
    free(self);
    *self_p = NULL;
}

/* ---- sending -------------------------------------------------------------- */

/* Sends [join_ref, ref, topic, event, payload] (payload taken). */
static void s_send(gw_phx_t *self,
                   json_t *join_ref,
                   json_t *ref,
                   const char *topic,
                   const char *event,
                   json_t *payload)
{
    json_t *msg = json_pack("[OOsso]", join_ref ? join_ref : json_null(), ref ? ref : json_null(),
                            topic, event, payload ? payload : json_object());
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text) {
        gw_ws_send_text(self->ws, text, strlen(text));
    }
    free(text);
}

void gw_phx_chan_error(gw_phx_chan_t *c)
{
    /* phx_error makes the phoenix client rejoin the channel later. */
    gw_phx_t *self = c->phx;
    json_t *jr = json_incref(c->join_ref);
    char topic[sizeof c->topic];
    snprintf(topic, sizeof topic, "%s", c->topic);
    gw_phx_chan_free(c);
    s_send(self, jr, jr, topic, "phx_error", NULL);
    json_decref(jr);
}

/* Replies {"status": status, "response": response} (response taken). */
static void s_reply(gw_phx_t *self,
                    json_t *join_ref,
                    json_t *ref,
                    const char *topic,
                    const char *status,
                    json_t *response)
{
    s_send(
        self, join_ref, ref, topic, "phx_reply",
        json_pack("{s:s, s:o}", "status", status, "response", response ? response : json_object()));
}

static void
s_reply_reason(gw_phx_t *self, json_t *join_ref, json_t *ref, const char *topic, const char *reason)
{
    s_reply(self, join_ref, ref, topic, "error", json_pack("{s:s}", "reason", reason));
}

/* The API's error object of err as a reply payload (with "reason" too). */
static json_t *s_error_response(const gw_error_t *err)
{
    char *body = gw_error_body(err);
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    if (o) {
        json_object_set_new(o, "reason", json_string(err->code));
    }
    return o;
}

/* ---- node calls --------------------------------------------------------------- */

static s_call_t *s_call(gw_phx_t *self,
                        json_t *join_ref,
                        json_t *ref,
                        const char *topic,
                        const uint8_t *conv,
                        proto_op_id_t op,
                        json_t *args,
                        s_chan_t *join);

static s_chan_t *s_find(gw_phx_t *self, const char *topic)
{
    for (s_chan_t *c = zlistx_first(self->chans); c; c = zlistx_next(self->chans)) {
        if (strcmp(c->topic, topic) == 0) {
            return c;
        }
    }
    return NULL;
}

/* perm.get answered for a permission:approve/deny push: the request must be
   of the topic's conversation (else not_found, as for another team's; on the
   team topic any conversation of the team will do); then perm.decide goes to
   that conversation's owner. */
static void s_decide(s_call_t *call, const gw_reply_t *reply, json_t *body)
{
    gw_phx_t *self = call->phx;
    const char *conv = json_string_value(json_object_get(body, "conversation_id"));
    bool team = strcmp(call->topic, "team") == 0;
    const char *mine = team ? "" : call->topic + strlen("conversation:");
    uint8_t id[16];
    if (reply->status != 200) {
        s_reply(self, call->join_ref, call->ref, call->topic, "error",
                body ? json_incref(body) : json_object());
    } else if (!conv || util_uuid_parse(conv, id) < 0 || (!team && strcasecmp(conv, mine) != 0)) {
        gw_error_t err;
        gw_error_set(&err, 404, "not_found", NULL, "no such permission request in %s", call->topic);
        s_reply(self, call->join_ref, call->ref, call->topic, "error", s_error_response(&err));
    } else {
        json_t *args = call->decide;
        call->decide = NULL;
        s_call(self, call->join_ref, call->ref, call->topic, id, PROTO_OP_PERM_DECIDE, args, NULL);
    }
}

/* Subscribes joined channel c, replies ok and starts its replay; false when
   the subscription cannot be made (nothing sent, c untouched). */
static bool s_live(gw_phx_t *self, s_chan_t *c, json_t *join_ref, json_t *ref)
{
    if (gw_fanout_add_ws(gw_ws_server(self->ws)->fanout, c->fan, s_fan_len(c), c) < 0) {
        return false;
    }
    c->live = true;
    s_reply(self, join_ref, ref, c->topic, "ok", NULL);
    gw_phx_chan_start(c);
    return true;
}

static void s_on_reply(void *owner, const gw_reply_t *reply)
{
    s_call_t *call = owner;
    gw_phx_t *self = call->phx;
    call->id = 0;
    json_t *body = reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    if (call->join) {
        s_chan_t *c = call->join;
        call->join = NULL; /* freeing c must not free this call */
        if (reply->status == 200 && s_live(self, c, call->join_ref, call->ref)) {
            /* joined */
        } else {
            bool missing = reply->status == 404 || reply->status == 400;
            gw_phx_chan_free(c);
            s_reply(self, call->join_ref, call->ref, call->topic, "error",
                    missing ? json_pack("{s:s}", "reason", "unauthorized")
                            : json_pack("{s:s, s:O?}", "reason", "unavailable", "error", body));
        }
    } else if (call->decide) {
        s_decide(call, reply, body);
    } else {
        bool ok = reply->status >= 200 && reply->status < 300;
        s_reply(self, call->join_ref, call->ref, call->topic, ok ? "ok" : "error",
                body ? json_incref(body) : json_object());
    }
    json_decref(body);
    s_call_free(call);
}

/* Starts op for conversation conv (unused by team ops); the reply, addressed
   to topic, goes to s_on_reply. */
static s_call_t *s_call(gw_phx_t *self,
                        json_t *join_ref,
                        json_t *ref,
                        const char *topic,
                        const uint8_t *conv,
                        proto_op_id_t op,
                        json_t *args,
                        s_chan_t *join)
{
    gw_server_t *srv = gw_ws_server(self->ws);
    char *text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    s_call_t *call = calloc(1, sizeof *call);
    if (!text || !call) {
        free(text);
        free(call);
        if (join) {
            gw_phx_chan_free(join);
        }
        s_reply_reason(self, join_ref, ref, topic, "unavailable");
        return NULL;
    }
    call->phx = self;
    call->join_ref = json_incref(join_ref);
    call->ref = json_incref(ref);
    snprintf(call->topic, sizeof call->topic, "%s", topic);
    call->join = join;
    call->handle = zlistx_add_end(self->calls, call);
    gw_call_t c = {.op = proto_ops[op].name,
                   .conv_id = proto_ops[op].scope == PROTO_SCOPE_TEAM ? NULL : conv,
                   .team_id = gw_ws_team(self->ws),
                   .limits = gw_ws_limits(self->ws),
                   .args = text};
    call->id = gw_upstream_call(srv->upstream, &c, s_on_reply, call);
    free(text);
    if (!call->id) {
        call->join = NULL;
        if (join) {
            gw_phx_chan_free(join);
        }
        s_reply_reason(self, join_ref, ref, topic, "unavailable");
        s_call_free(call);
        return NULL;
    }
    return call;
}

/* ---- events of the client --------------------------------------------------------- */

/* The conversation id of "conversation:<uuid>", lowercased; -1 when topic is
   not one. */
static int s_conv_topic(const char *topic, uint8_t conv[16])
{
    static const char prefix[] = "conversation:";
    return strncmp(topic, prefix, sizeof prefix - 1) == 0 &&
                   util_uuid_parse(topic + sizeof prefix - 1, conv) == 0
               ? 0
               : -1;
}

static void
s_join(gw_phx_t *self, json_t *join_ref, json_t *ref, const char *topic, json_t *payload)
{
    uint8_t conv[16] = {0};
    bool team = strcmp(topic, "team") == 0;
    if (!team && s_conv_topic(topic, conv) < 0) {
        s_reply_reason(self, join_ref, ref, topic, "unmatched topic");
        return;
    }
    s_chan_t *old = s_find(self, topic);
    if (old) {
        gw_phx_chan_free(old); /* a rejoin replaces the channel, as Phoenix does */
    }
    if (zlistx_size(self->chans) >= GW_WS_TOPICS_MAX) {
        s_reply_reason(self, join_ref, ref, topic, "too many topics on this socket");
        return;
    }
    s_chan_t *c = calloc(1, sizeof *c);
    if (!c) {
        s_reply_reason(self, join_ref, ref, topic, "unavailable");
        return;
    }
    c->phx = self;
    c->ws = self->ws;
    if (gw_phx_resume_point(c, payload) < 0) {
        free(c);
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", "last_event_id",
                     "last_event_id must be a non-negative integer");
        s_reply(self, join_ref, ref, topic, "error", s_error_response(&err));
        return;
    }
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->join_ref = json_incref(join_ref ? join_ref : json_null());
    c->team = team;
    memcpy(c->fan, gw_ws_team(self->ws), 16);
    memcpy(c->fan + 16, conv, 16);
    c->handle = zlistx_add_end(self->chans, c);
    if (!team) {
        s_call(self, join_ref, ref, topic, conv, PROTO_OP_CONV_GET, json_object(), c);
    } else if (!s_live(self, c, join_ref, ref)) {
        /* The socket's own team: nothing to ask a node. */
        gw_phx_chan_free(c);
        s_reply_reason(self, join_ref, ref, topic, "unavailable");
    }
}

/* permission:approve / permission:deny {"id", …}: the HTTP routes' checks
   (body taken), then perm.get, then perm.decide (s_decide). */
static void s_permission(
    gw_phx_t *self, json_t *join_ref, json_t *ref, const char *topic, bool approve, json_t *body)
{
    gw_error_t err;
    uint8_t id[16];
    const char *text = json_string_value(json_object_get(body, "id"));
    if (!text || gw_parse_uuid(text, "id", id, &err) < 0) {
        if (!text) {
            gw_error_set(&err, 400, "invalid_field", "id", "id is required");
        }
        json_decref(body);
        s_reply(self, join_ref, ref, topic, "error", s_error_response(&err));
        return;
    }
    char lower[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(id, lower);
    json_object_del(body, "id");
    json_t *preset = json_pack("{s:s, s:s}", "decision", approve ? "approve" : "deny", "id", lower);
    json_t *decide = gw_json_args(body, PROTO_OP_PERM_DECIDE, preset, &err);
    if (!decide) {
        s_reply(self, join_ref, ref, topic, "error", s_error_response(&err));
        return;
    }
    s_call_t *call = s_call(self, join_ref, ref, topic, NULL, PROTO_OP_PERM_GET,
                            json_pack("{s:s}", "id", lower), NULL);
    if (call) {
        call->decide = decide;
    } else {
        json_decref(decide);
    }
}

static void s_push(gw_phx_t *self,
                   json_t *join_ref,
                   json_t *ref,
                   const char *topic,
                   const char *event,
                   json_t *payload)
{
    s_chan_t *c = s_find(self, topic);
    if (!c || !c->live) {
        s_reply_reason(self, join_ref, ref, topic, "unmatched topic");
        return;
    }
    if (strcmp(event, "phx_leave") == 0) {
        json_t *jr = json_incref(c->join_ref);
        gw_phx_chan_free(c);
        s_reply(self, join_ref, ref, topic, "ok", NULL);
        s_send(self, jr, jr, topic, "phx_close", NULL);
        json_decref(jr);
        return;
    }
    json_t *body = json_is_object(payload) ? json_deep_copy(payload) : json_object();
    gw_error_t err;
    bool conv_event =
        strcmp(event, "message:create") == 0 || strcmp(event, "conversation:cancel") == 0;
    if (conv_event && c->team) {
        json_decref(body);
        s_reply_reason(self, join_ref, ref, topic, "needs a conversation topic");
    } else if (conv_event) {
        proto_op_id_t op = event[0] == 'm' ? PROTO_OP_MSG_POST : PROTO_OP_CONV_CANCEL;
        json_t *args = gw_json_args(body, op, NULL, &err);
        if (args) {
            s_call(self, join_ref, ref, topic, c->fan + 16, op, args, NULL);
        } else {
            s_reply(self, join_ref, ref, topic, "error", s_error_response(&err));
        }
    } else if (strcmp(event, "permission:approve") == 0 || strcmp(event, "permission:deny") == 0) {
        s_permission(self, join_ref, ref, topic, strcmp(event, "permission:approve") == 0, body);
    } else {
        json_decref(body);
        s_reply_reason(self, join_ref, ref, topic, "unknown event");
    }
}

int gw_phx_decode(const char *text, size_t len, gw_phx_msg_t *out)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    out->msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->msg ||
        json_unpack(out->msg, "[oosso!]", &out->join_ref, &out->ref, &out->topic, &out->event,
                    &out->payload) != 0 ||
        !(json_is_string(out->join_ref) || json_is_null(out->join_ref)) ||
        !(json_is_string(out->ref) || json_is_null(out->ref)) ||
        strlen(out->topic) >= S_TOPIC_MAX) {
        json_decref(out->msg);
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

void gw_phx_on_text(gw_phx_t *self, const char *text, size_t len)
{
    gw_phx_msg_t m;
    if (gw_phx_decode(text, len, &m) < 0) {
        gw_ws_close(self->ws, 1007,
                    "not a Phoenix v2 message: [join_ref, ref, topic, event, payload]");
        return;
    }
    json_t *join_ref = m.join_ref, *ref = m.ref, *payload = m.payload;
    const char *topic = m.topic, *event = m.event;
    /* Everything but heartbeats and leaves may wait for a node. */
    bool calls_node = strcmp(topic, "phoenix") != 0 && strcmp(event, "phx_leave") != 0;
    if (calls_node && zlistx_size(self->calls) >= GW_WS_PENDING_MAX) {
        gw_error_t err;
        gw_error_set(&err, 429, "rate_limited", NULL, "%d requests of this socket are in flight",
                     GW_WS_PENDING_MAX);
        s_reply(self, join_ref, ref, topic, "error", s_error_response(&err));
    } else if (strcmp(topic, "phoenix") == 0) {
        if (strcmp(event, "heartbeat") == 0) {
            s_reply(self, join_ref, ref, topic, "ok", NULL);
        } else {
            s_reply_reason(self, join_ref, ref, topic, "unknown event");
        }
    } else if (strcmp(event, "phx_join") == 0) {
        s_join(self, join_ref, ref, topic, payload);
    } else {
        s_push(self, join_ref, ref, topic, event, payload);
    }
    json_decref(m.msg);
}
