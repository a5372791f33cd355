/*  gw_ws — WebSocket connections of the gateway (RFC 6455 over
    libmicrohttpd's upgrade, framed by wslay) and the Phoenix Channels v2
    protocol spoken on them (gw_phx.c). Loop thread only. */
#ifndef BICKY_GATEWAY_WS_H
#define BICKY_GATEWAY_WS_H

#include "gateway/gateway_internal.h"

#define GW_WS_IDLE_MS     60000        /* no message (heartbeat) this long → close 1001 */
#define GW_WS_OUT_MAX     (256 * 1024) /* unsent bytes per socket → close 1008 */
#define GW_WS_FRAME_SLACK 4096         /* a message may be --max-body plus this much */
#define GW_WS_TOPICS_MAX  64           /* joined topics per socket */
#define GW_WS_PENDING_MAX 16           /* joins and pushes waiting for a node, per socket */

typedef struct gw_ws_t gw_ws_t;
typedef struct gw_ws_hub_t gw_ws_hub_t;
typedef struct gw_phx_t gw_phx_t;

/* ---- the hub: every WebSocket of the process (gw_ws.c) ------------------- */

/* An epoll set of the upgraded sockets, registered with srv's loop. */
gw_ws_hub_t *gw_ws_hub_new(gw_server_t *srv);
/* Closes every socket (libmicrohttpd closes them) and frees; nulls *self_p. */
void gw_ws_hub_destroy(gw_ws_hub_t **self_p);
/* Sends close 1001 to every socket (shutdown); they end as their peers answer. */
void gw_ws_hub_close_all(gw_ws_hub_t *self);
/* Closes idle sockets (GW_WS_IDLE_MS) and those whose close handshake hangs. */
void gw_ws_hub_tick(gw_ws_hub_t *self, int64_t now_ms);
/* Open sockets. */
size_t gw_ws_hub_count(const gw_ws_hub_t *self);

/* The request values a WebSocket handshake is judged on (NULL: absent). */
typedef struct {
    const char *upgrade;    /* Upgrade header */
    const char *connection; /* Connection header */
    const char *version;    /* Sec-WebSocket-Version header */
    const char *key;        /* Sec-WebSocket-Key header */
    const char *vsn;        /* ?vsn= query value */
} gw_ws_handshake_t;

/* 0 when h is a WebSocket upgrade the gateway takes (Upgrade lists websocket,
   Connection lists upgrade, version 13, a key of 16 bytes in base64, vsn
   absent or 2.0.0), else -1 with err (400 invalid_field). Pure, any thread. */
int gw_ws_handshake_check(const gw_ws_handshake_t *h, gw_error_t *err);
/* GET /socket/websocket: checks the upgrade request and answers 101 (the
   socket then joins the hub), or the JSON error. Runs after auth
   (gw_ws_upgrade.c). */
void gw_h_socket(gw_req_t *req);

/* What the upgrade hands to the hub (all borrowed for the call). */
typedef struct {
    int fd;                 /* the upgraded socket (a duplicate, taken over) */
    const uint8_t *team_id; /* the token's team (16 bytes) */
    const limits_t *limits; /* the team's limits */
    const char *ip;         /* client address (gw_iptab_key) */
    const char *extra;      /* bytes read past the head */
    size_t extra_len;       /* of extra */
} gw_ws_open_t;

/* Takes an upgraded socket into the hub (counted against its address in
   the per-IP table and in gw_server_connections) and reads what already
   came; on failure the socket is closed (gw_ws.c, from gw_ws_upgrade.c). */
void gw_ws_open(gw_ws_hub_t *hub, const gw_ws_open_t *open);

/* ---- a socket's unsent output (gw_ws_out.c, pure) ------------------------- */

#define GW_WS_HEAD_MAX 10 /* bytes of a server frame's header at most */

typedef struct {
    char *data;   /* bytes [off, off + len) are unsent (owned; NULL when empty) */
    size_t off;   /* start of the unsent bytes */
    size_t len;   /* unsent bytes */
    size_t cap;   /* allocated bytes */
    size_t begun; /* of len, the rest of a frame already partly written */
} gw_ws_out_t;

/* Writes the header of an unmasked final text frame of len payload bytes
   into head; returns its length (2, 4 or 10). */
size_t gw_ws_text_head(uint8_t head[GW_WS_HEAD_MAX], size_t len);
/* Frees the buffer and zeroes *out (an empty buffer needs no call). */
void gw_ws_out_free(gw_ws_out_t *out);
/* Appends len bytes of whole frames (copied); 0, or -1 out of memory
   (nothing appended). Grows by doubling from 1 KiB. */
int gw_ws_out_append(gw_ws_out_t *out, const void *data, size_t len);
/* Appends a text frame of text (copied) whose first sent bytes are already
   on the wire (then out was empty); 0, or -1 out of memory (nothing kept). */
int gw_ws_out_text(gw_ws_out_t *out, const char *text, size_t len, size_t sent);
/* Drops the first n unsent bytes (written); frees the buffer once drained. */
void gw_ws_out_consume(gw_ws_out_t *out, size_t n);
/* Drops the queued frames not begun on the wire: what is left ends the
   frame being written, so a close frame can follow it. */
void gw_ws_out_keep_begun(gw_ws_out_t *out);

/* ---- one socket (gw_ws.c), used by the protocol --------------------------- */

/* Queues a text message (len bytes, copied). -1 when the socket is closing;
   closes it with 1008 when its unsent output would pass GW_WS_OUT_MAX. */
int gw_ws_send_text(gw_ws_t *ws, const char *text, size_t len);
/* Starts the close handshake with code and reason. */
void gw_ws_close(gw_ws_t *ws, uint16_t code, const char *reason);
/* The socket's team (16 bytes) and server. */
const uint8_t *gw_ws_team(const gw_ws_t *ws);
/* The team's limits as the upgrade request had them (borrowed, as long as ws). */
const limits_t *gw_ws_limits(const gw_ws_t *ws);
gw_server_t *gw_ws_server(const gw_ws_t *ws);

/* ---- Phoenix Channels v2 (gw_phx.c, gw_phx_resume.c) ---------------------- */

/* A joined (or joining) topic of a socket: a conversation, or the team. */
typedef struct {
    gw_phx_t *phx;                /* owner */
    gw_ws_t *ws;                  /* its socket */
    char topic[80];               /* "conversation:<id>" or "team" */
    json_t *join_ref;             /* the client's join_ref (owned) */
    uint8_t fan[PROTO_TOPIC_LEN]; /* team + conversation: the event topic */
    bool team;                    /* the "team" topic: fan's first 16 bytes only */
    bool live;                    /* subscribed (the node said yes) */
    void *handle;                 /* position in phx->chans */
    bool resume;                  /* the join asked for stored events after last_id */
    bool replaying;               /* a page of stored events is coming: live ones wait */
    uint64_t last_id;             /* last stored event sent (or the join's last_event_id) */
    uint64_t last_seq;            /* its per-conversation seq, 0 when unknown */
    bool page_after_held;         /* the page in flight was asked for with events held */
    bool caught_up;               /* a replay read the store after a held event came */
    zlistx_t *held;               /* live frames held during a replay (freed here) */
    size_t held_bytes;            /* their size */
    uint64_t page_call;           /* events.list call in flight, 0 when none */
} gw_phx_chan_t;

/* Frees c: stops its replay, unsubscribes, drops a join in flight (gw_phx.c). */
void gw_phx_chan_free(gw_phx_chan_t *c);
/* Sends phx_error for c and frees it: the client rejoins (gw_phx.c). */
void gw_phx_chan_error(gw_phx_chan_t *c);
/* Reads last_event_id of a join payload into c (resume, last_id); -1 when it
   is there but not a non-negative integer (gw_phx_resume.c). */
int gw_phx_resume_point(gw_phx_chan_t *c, const json_t *payload);
/* After the join's ok: replays the stored events after last_id when the join
   asked for it, page by page, then the live events held meanwhile. */
void gw_phx_chan_start(gw_phx_chan_t *c);
/* Cancels a page in flight and drops the held frames. */
void gw_phx_chan_stop(gw_phx_chan_t *c);

/* One Phoenix v2 message [join_ref, ref, topic, event, payload]. */
typedef struct {
    json_t *msg;       /* the parsed array: owns the rest (json_decref it when done) */
    json_t *join_ref;  /* a string or null (borrowed) */
    json_t *ref;       /* a string or null (borrowed) */
    const char *topic; /* under 80 bytes (borrowed) */
    const char *event; /* (borrowed) */
    json_t *payload;   /* any JSON value (borrowed) */
} gw_phx_msg_t;

/* Decodes one text message (len bytes, any bytes). 0 with *out filled, or -1
   when it is not a Phoenix v2 message (nothing to free). Pure (gw_phx.c). */
int gw_phx_decode(const char *text, size_t len, gw_phx_msg_t *out);
/* Protocol state of one socket; NULL on OOM. */
gw_phx_t *gw_phx_new(gw_ws_t *ws);
/* Leaves every topic, cancels calls in flight; nulls *self_p. */
void gw_phx_destroy(gw_phx_t **self_p);
/* Handles one text message (valid UTF-8, len bytes). */
void gw_phx_on_text(gw_phx_t *self, const char *text, size_t len);

#endif
