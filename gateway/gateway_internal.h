/*  gateway_internal — declarations shared by the gw_ modules of bicky-gateway.
    Everything here runs on the gateway's single loop thread: MHD callbacks,
    ZMQ readers and timers all run inside one zloop, so no structure below is
    locked. Only gw_ files include <microhttpd.h> and <jansson.h>. */
#ifndef BICKY_GATEWAY_INTERNAL_H
#define BICKY_GATEWAY_INTERNAL_H

#include <czmq.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "common/limits.h"
#include "common/ring.h"
#include "proto/proto.h"
#include "proto/proto_ops.h"

#define GW_PARAMS_MAX      2              /* path parameters per route */
#define GW_PARAM_LEN       128            /* longest path parameter kept */
#define GW_TICK_MS         50             /* sweep timer: timeouts, parked retries, interrupt */
#define GW_MOVED_MAX       3              /* MOVED retries before 503 */
#define GW_MOVED_PARK_MS   250            /* wait for a fresh ring before resending a MOVED call */
#define GW_LIST_LIMIT_MAX  PROTO_LIST_MAX /* ?limit= upper bound (the op table's) */
#define GW_LIST_LIMIT_DEF  PROTO_LIST_DEFAULT /* ?limit= default */
#define GW_IDEMPOTENCY_MAX 255                /* Idempotency-Key length bound */
#define GW_TOKEN_MAX       512                /* longest bearer token accepted */
#define GW_AUTH_CACHE_SIZE 4096               /* auth cache entries */
#define GW_AUTH_POS_TTL_MS 60000              /* a known token stays trusted this long */
#define GW_AUTH_NEG_TTL_MS 5000         /* an unknown token is refused this long without asking */
#define GW_SSE_BUFFER      (64 * 1024)  /* per-client output buffer */
#define GW_SSE_HELD_MAX    (256 * 1024) /* live events held back during a replay */
#define GW_SSE_REPLAY_PAGE 100          /* events per events.list page while replaying */
#define GW_POLL_WAIT_MAX_S 60           /* GET /api/events?wait= bound, seconds */
#define GW_SSE_BLOCK       512          /* MHD content reader block (one per SSE response) */
#define GW_SSE_BUF_START   2048         /* first allocation of a client's output buffer */

/* The edge's limits (gw_accept.c, gw_conn.c, gw_auth.c, gw_sse.c): defaults of their flags. */
#define GW_SSE_FRAME_MAX       (8L * 1024 * 1024) /* --sse-frame-max: one SSE frame at most */
#define GW_MAX_CONNS_PER_IP    256                /* --max-connections-per-ip */
#define GW_MAX_INFLIGHT        256                /* --max-inflight: calls out per node */
#define GW_REQUEST_DEADLINE_MS 30000              /* --request-deadline-ms: head and body by then */
#define GW_AUTH_FAIL_MAX       30                 /* --auth-fail-max: failures per address ... */
#define GW_AUTH_FAIL_WINDOW_MS 60000 /* ... in this window (--auth-fail-window-ms), then 429 */

typedef struct gw_server_t gw_server_t;
typedef struct gw_req_t gw_req_t;
typedef struct gw_sse_t gw_sse_t;
typedef struct gw_registry_t gw_registry_t;
typedef struct gw_upstream_t gw_upstream_t;
typedef struct gw_fanout_t gw_fanout_t;
typedef struct gw_metrics_t gw_metrics_t;
typedef struct gw_auth_cache_t gw_auth_cache_t;
typedef struct gw_ws_hub_t gw_ws_hub_t;
typedef struct gw_poll_t gw_poll_t;
typedef struct gw_limits_t gw_limits_t;

/* ---- configuration (read-only after gw_server_new) ---------------------- */

typedef struct {
    const char *listen;                  /* numeric IPv4/IPv6 address, or "localhost" */
    long port;                           /* HTTP port */
    const char *registry;                /* comma list of registry ROUTER endpoints */
    long request_timeout_ms;             /* upstream deadline → 504 */
    long max_body;                       /* request body bound → 413 */
    long max_connections;                /* MHD connection limit */
    long conn_timeout_s;                 /* idle HTTP connection timeout */
    long registry_refresh_ms;            /* periodic RING_GET */
    long keepalive_ms;                   /* SSE comment interval (≤ 15000) */
    long sse_buffer;                     /* per-client SSE buffer bytes */
    long sse_frame_max;                  /* one SSE frame at most; over it the client is closed */
    long max_conns_per_ip;               /* open connections per client address (0 = any) */
    long max_inflight;                   /* API calls out to one node before 503 (0 = any) */
    long request_deadline_ms;            /* a request's head and body arrive within this */
    long auth_fail_max;                  /* failed authentications per address and window */
    long auth_fail_window_ms;            /* ... then 429 until the window ends (0 max = off) */
    long workers;                        /* worker processes sharing the port (1 = no fork) */
    long drain_ms;                       /* after SIGTERM: serve on, /ready 503, this long */
    bool reuse_port;                     /* bind with SO_REUSEPORT (set in workers) */
    const struct cfg_file_t *strategies; /* --config (GET /api/strategies); NULL = built-in */
    keys_t *keys;                        /* CURVE gateway key (borrowed); NULL = insecure */
    const char *legacy_token; /* assumed on legacy routes sent without a token; NULL = off */
} gw_config_t;

/* Fills cfg with the defaults of the brief. */
void gw_config_defaults(gw_config_t *cfg);

/* ---- worker processes (gw_workers.c) ------------------------------------- */

/* Runs one worker: returns the process exit code. index counts from 1. */
typedef int gw_worker_fn(long index, void *arg);
/* Checks that cfg's address and port are free (bind without SO_REUSEPORT),
   then forks cfg->workers workers that run fn and supervises them: restarts
   one that dies (with back-off), stops them all on SIGTERM/SIGINT (exit 0),
   gives up when one keeps failing at start (exit 1). Called before any ZMQ
   context or MHD daemon exists. Returns the exit code of the parent. */
int gw_workers_run(const gw_config_t *cfg, gw_worker_fn *fn, void *arg);

/* ---- errors (gw_json.c) ------------------------------------------------- */

typedef struct {
    int status;           /* HTTP status */
    const char *code;     /* machine code (static string) */
    char message[320];    /* human message */
    char field[64];       /* offending field, "" when none */
    int line, column;     /* invalid_json position, 0 when unknown */
    unsigned retry_after; /* Retry-After seconds, 0 when none */
} gw_error_t;

/* Sets every member of err; fmt formats the human message. Returns -1 so a
   validator can `return gw_error_set (...)`. */
int gw_error_set(
    gw_error_t *err, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Sets err to 400 invalid_field for field, saying which values are allowed (values:
   NULL-terminated). Returns -1. */
int gw_error_enum(gw_error_t *err, const char *field, const char *const *values);
/* The error as API.md JSON ({"error","code"[,"field"|"line","column"]}); caller frees. */
char *gw_error_body(const gw_error_t *err);

/* ---- JSON bodies and query values (gw_json.c, pure) --------------------- */

/* Parses a request body (len bytes, not NUL-terminated; empty means {}) with
   duplicate keys rejected. Returns a new object or NULL with err set
   (400 invalid_json with line/column). */
json_t *gw_json_parse(const char *body, size_t len, gw_error_t *err);
/* Checks a client body obj against op's row of the op table (common/op_args.h):
   only the fields a client may set, their types and limits, required fields;
   then adds preset's members (the fields the gateway sets: path ids, the
   decision; may be NULL) and checks the whole as the node will. Takes obj and
   preset. Returns the args (obj, UUIDs lowercased), or NULL with err set
   (400 invalid_field naming the field and what is allowed). */
json_t *gw_json_args(json_t *obj, proto_op_id_t op, json_t *preset, gw_error_t *err);
/* POST /api/message: splits obj (taken) into msg.post's args, with the
   conversation fields under "create", each part checked against the op table;
   a "conversation_id" is checked and removed, its bytes written to conv and
   *has_conv set. Returns the args or NULL with err set. */
json_t *gw_json_message_args(json_t *obj, uint8_t conv[16], bool *has_conv, gw_error_t *err);
/* Parses a decimal integer in [min, max]; -1 on anything else. */
int gw_parse_int(const char *text, long long min, long long max, long long *out);
/* Validates ?limit= (NULL → default), 1..500; -1 with err naming "limit". */
int gw_parse_limit(const char *text, long *out, gw_error_t *err);
/* Validates an opaque cursor: printable ASCII, not empty (its length is the op
   table's); -1 with err. */
int gw_parse_cursor(const char *text, gw_error_t *err);
/* Validates a UUID (path or field); writes the 16 bytes. -1 with err naming field. */
int gw_parse_uuid(const char *text, const char *field, uint8_t out[16], gw_error_t *err);

/* ---- routes (gw_routes.c) ---------------------------------------------- */

enum {
    GW_ROUTE_AUTH = 1,        /* needs a bearer token (every /api/ route) */
    GW_ROUTE_BODY = 2,        /* takes a JSON body */
    GW_ROUTE_QUERY_TOKEN = 4, /* the token may come as ?token= (WebSocket clients) */
    GW_ROUTE_LEGACY = 8,      /* a legacy route: deprecation headers (gw_legacy.h) */
};

typedef void(gw_handler_fn)(gw_req_t *req);

typedef struct {
    const char *method;     /* "GET", "POST", … */
    const char *pattern;    /* "/api/conversations/:id"; also the metrics label */
    gw_handler_fn *handler; /* answers or starts an upstream call */
    unsigned flags;         /* GW_ROUTE_* */
} gw_route_t;

/* The static route table and its length. */
const gw_route_t *gw_routes(size_t *count);
/* Matches method and path (query already stripped). On a match returns the
   route and fills params (":x" segments in order). Otherwise returns NULL and
   sets *status to 404 (no path matches) or 405 (path matches, method not; the
   allowed methods are written to allow, comma-separated). HEAD matches GET. */
const gw_route_t *gw_route_match(const char *method,
                                 const char *path,
                                 char params[GW_PARAMS_MAX][GW_PARAM_LEN],
                                 char *allow,
                                 size_t allow_len,
                                 int *status);
/* Index of route in the table (metrics), or the table length for NULL. */
size_t gw_route_index(const gw_route_t *route);

/* ---- metrics (gw_metrics.c) --------------------------------------------- */

gw_metrics_t *gw_metrics_new(void);
void gw_metrics_destroy(gw_metrics_t **self_p);
/* Counts one HTTP answer for the route (NULL = unmatched). */
void gw_metrics_http(gw_metrics_t *self, const gw_route_t *route, int status);
/* Counts an upstream outcome: "ok", "timeout", "moved", "unavailable", "dropped". */
void gw_metrics_upstream(gw_metrics_t *self, const char *outcome);
/* Counts an SSE client disconnected for being too slow. */
void gw_metrics_sse_slow(gw_metrics_t *self);
/* Counts a WebSocket closed for output over its cap. */
void gw_metrics_ws_slow(gw_metrics_t *self);
/* Prometheus text of every metric; caller frees. */
char *gw_metrics_render(gw_metrics_t *self, gw_server_t *srv);

/* ---- auth cache (gw_auth.c) --------------------------------------------- */

typedef enum { GW_AUTH_MISS = 0, GW_AUTH_ALLOW, GW_AUTH_DENY } gw_auth_hit_t;

/* A bounded cache token-hash → team (clock eviction). NULL on OOM. */
gw_auth_cache_t *gw_auth_cache_new(size_t capacity, int64_t pos_ttl_ms, int64_t neg_ttl_ms);
void gw_auth_cache_destroy(gw_auth_cache_t **self_p);
/* Looks up the 64-hex token hash at time now_ms; fills team and lim (may be NULL) on ALLOW. */
gw_auth_hit_t gw_auth_cache_get(
    gw_auth_cache_t *self, const char *sha_hex, int64_t now_ms, uint8_t team[16], limits_t *lim);
/* Stores an answer (team NULL for a refusal; lim NULL = the defaults), evicting one entry
   when full. */
void gw_auth_cache_put(gw_auth_cache_t *self,
                       const char *sha_hex,
                       const uint8_t *team,
                       const limits_t *lim,
                       int64_t now_ms);
/* Marks the allowed entry of sha_hex as an admin token or not (put resets it to not). */
void gw_auth_cache_set_admin(gw_auth_cache_t *self, const char *sha_hex, bool admin);
/* True when sha_hex has a live allowed entry marked admin. The console's hint only:
   the registry checks an admin request's token itself. */
bool gw_auth_cache_admin(gw_auth_cache_t *self, const char *sha_hex, int64_t now_ms);
/* Entries currently stored (expired ones included until evicted). */
size_t gw_auth_cache_size(const gw_auth_cache_t *self);
/* Forgets every entry. */
void gw_auth_cache_clear(gw_auth_cache_t *self);
/* A token was revoked (registry PUB, topic "revoked"): its entry goes; seq is the
   revocation counter after it, and a gap from the last one seen (a missed message)
   flushes the whole cache. */
void gw_auth_cache_revoked(gw_auth_cache_t *self, const char *sha_hex, uint64_t seq);
/* The revocation counter of a ring (0 = none known): any change not announced by
   gw_auth_cache_revoked (a missed message, a registry that started over) flushes the
   whole cache. */
void gw_auth_cache_revoked_seq(gw_auth_cache_t *self, uint64_t seq);
/* Authenticates req (Authorization header, cache, `auth` op) and then calls
   next(req) with req->team_id (and req->admin) set, or answers 401/503 itself. */
void gw_auth_check(gw_req_t *req, gw_handler_fn *next);
/* The request's token as gw_auth_check reads it (legacy, bearer header, or ?token= on
   routes that allow it): a pointer into the request (valid while it lives), *len set;
   NULL when absent or malformed. */
const char *gw_auth_token(gw_req_t *req, size_t *len);

/* ---- registry link (gw_registry.c) -------------------------------------- */

/* Connects to the first registry of the comma list; NULL on a bad list. */
gw_registry_t *gw_registry_new(gw_server_t *srv, const char *endpoints);
void gw_registry_destroy(gw_registry_t **self_p);
/* Asks for the ring now (at most one request in flight). */
void gw_registry_refresh(gw_registry_t *self);
/* Periodic work: failover after 1 s of silence, periodic RING_GET, admin deadlines. */
void gw_registry_tick(gw_registry_t *self, int64_t now_ms);
/* Endpoint currently in use (borrowed). */
const char *gw_registry_current(const gw_registry_t *self);
/* Admin requests (drain/undrain) on the same link: gateway/gw_api_nodes.h. */

/* ---- upstream: nodes, ring, calls (gw_upstream.c) ----------------------- */

typedef struct {
    int status;           /* HTTP status from the node, or 503/504 made here */
    const char *body;     /* JSON text (borrowed for the callback), may be NULL */
    unsigned retry_after; /* seconds, 0 when none */
} gw_reply_t;

/* Called exactly once per accepted call, never from inside gw_upstream_call. */
typedef void(gw_reply_fn)(void *owner, const gw_reply_t *reply);

typedef struct {
    const char *op;         /* node op name */
    const uint8_t *conv_id; /* conversation-bound ops, else NULL (round robin) */
    const uint8_t *team_id; /* NULL for auth */
    const char *args;       /* JSON text of the args object (copied) */
    const limits_t *limits; /* the team's limits the node applies (copied); NULL = defaults */
    int64_t deadline_ms;    /* mono ms; 0 → now + request timeout */
    bool shed;              /* refused when the node has --max-inflight calls out */
} gw_call_t;

gw_upstream_t *gw_upstream_new(gw_server_t *srv);
void gw_upstream_destroy(gw_upstream_t **self_p);
/* Applies a RING message (from the registry reply or PUB). from_reply marks
   an answer to our own RING_GET (accepted even with an older epoch). */
void gw_upstream_set_ring(gw_upstream_t *self, const proto_msg_t *ring, bool from_reply);
/* Sends a call; returns its id (> 0), or 0 when no live node can take it now
   or, for a shed call, when its node has --max-inflight calls out (the caller
   answers 503; fn is then never called; gw_upstream_busy says which). */
uint64_t gw_upstream_call(gw_upstream_t *self, const gw_call_t *call, gw_reply_fn *fn, void *owner);
/* True when the last refused gw_upstream_call was refused for --max-inflight. */
bool gw_upstream_busy(const gw_upstream_t *self);
/* Forgets a call; its callback will not run. Accepts 0 and unknown ids. */
void gw_upstream_cancel(gw_upstream_t *self, uint64_t id);
/* Answers every pending call with 503 (shutdown). */
void gw_upstream_fail_all(gw_upstream_t *self);
/* Answers the calls pending on node_id with 503: its connection dropped. */
void gw_upstream_fail_conn(gw_upstream_t *self, const char *node_id);
/* Expires calls past their deadline (504) and resends parked MOVED calls. */
void gw_upstream_tick(gw_upstream_t *self, int64_t now_ms);
/* Ring facts: epoch, alive nodes, whether any is known. */
uint64_t gw_upstream_epoch(const gw_upstream_t *self);
size_t gw_upstream_live(const gw_upstream_t *self);
size_t gw_upstream_pending(const gw_upstream_t *self);
/* The known nodes as a JSON array [{id,state,weight,actors,in_ring}] (new ref). */
json_t *gw_upstream_nodes_json(const gw_upstream_t *self);

/* Internals shared by gw_upstream.c (calls) and gw_ring.c (nodes, ring). */
typedef struct gw_node_t {
    gw_upstream_t *up; /* owner */
    char id[64];       /* node id */
    char router[256];  /* ROUTER endpoint */
    char pub[256];     /* PUB endpoint */
    char state[16];    /* alive | draining */
    uint32_t weight;   /* ring weight */
    uint32_t actors;   /* actors at the last heartbeat */
    uint32_t inflight; /* calls sent to it and not answered yet (gw_upstream.c) */
    bool in_ring;      /* alive and on the ring */
    bool seen;         /* present in the latest RING (mark and sweep) */
    zsock_t *dealer;   /* API requests to router */
    zsock_t *mon;      /* the dealer's disconnections (inproc PAIR), or NULL */
} gw_node_t;

struct gw_upstream_t {
    gw_server_t *srv;       /* owner */
    ring_t *ring;           /* consistent-hash ring of alive nodes */
    uint64_t epoch;         /* epoch of the ring */
    bool have_ring;         /* a RING arrived at least once */
    zhashx_t *nodes;        /* id → gw_node_t (owned) */
    gw_node_t **ring_nodes; /* ring member index → node */
    size_t nring;           /* ring members */
    size_t rr;              /* round-robin position for team ops */
    uint64_t next_id;       /* last req_id issued */
    zhashx_t *calls;        /* "%016x" req_id → s_call_t (owned) */
    bool busy;              /* the last refused call met --max-inflight */
};

/* Reader of a node DEALER: replies and MOVED (gw_upstream.c). */
int gw_upstream_on_node(zloop_t *loop, zsock_t *sock, void *arg);
/* Answers 503 to every call in flight to node_id (gw_upstream.c). */
void gw_upstream_fail_node(gw_upstream_t *self, const char *node_id);
/* Resends the parked MOVED calls the current epoch may place (gw_upstream.c). */
void gw_upstream_resend_parked(gw_upstream_t *self);
/* zhashx destructor of a gw_node_t: closes its socket (gw_ring.c). */
void gw_node_free(void **item);

/* ---- event fan-out and long-polls: gateway/gw_fanout.h -------------------- */

/* ---- SSE framing and buffer (gw_sse_buf.c, pure) ------------------------ */

typedef struct {
    char *data;       /* bytes [off, off + len) are unsent */
    size_t off;       /* start of unsent bytes */
    size_t len;       /* unsent bytes */
    size_t cap;       /* allocated bytes */
    size_t max;       /* bound on len (a lone frame may exceed it in an empty buffer) */
    size_t frame_max; /* bound on one frame, even alone (--sse-frame-max) */
} gw_sse_buf_t;

#define GW_SSE_TOO_BIG (-2) /* gw_sse_buf_append: one frame over frame_max */

/* Formats one SSE frame: "id: N\n" (when id > 0), "event: T\n", "data: D\n\n";
   raw CR/LF in data (JSON whitespace) become spaces. Caller frees. */
char *gw_sse_frame(uint64_t id, const char *type, const char *data, size_t *len);
/* The keep-alive comment frame (static). */
const char *gw_sse_keepalive(size_t *len);
void gw_sse_buf_init(gw_sse_buf_t *buf, size_t max, size_t frame_max);
void gw_sse_buf_free(gw_sse_buf_t *buf);
/* Appends len bytes; -1 (nothing appended) when that would pass max, except
   into an empty buffer; GW_SSE_TOO_BIG (nothing appended, nothing grown)
   when len alone is over frame_max. */
int gw_sse_buf_append(gw_sse_buf_t *buf, const char *data, size_t len);
/* Moves up to max bytes into dst; returns the count. A drained buffer is freed. */
size_t gw_sse_buf_read(gw_sse_buf_t *buf, char *dst, size_t max);
/* A conversation stream (SSE, Phoenix channel) must catch up from the store
   before sending the stored event seq: it may not follow last_seq (0: none
   sent; last_id: last id sent or resume point). From 0, seq 1 comes first;
   from a later id it is unknown until caught_up (api.md, resume). */
bool gw_seq_gap(uint64_t seq, uint64_t last_seq, uint64_t last_id, bool resume, bool caught_up);

/* ---- SSE clients (gw_sse.c) ---------------------------------------------- */

/* Formats one SSE frame of a stored (id > 0) or live event; caller frees.
   A frame of length 0 sends nothing but still counts as sent. */
typedef char *(gw_sse_format_fn)(uint64_t id, const char *type, const char *data, size_t *len);

typedef struct {
    bool has_conv;            /* conversation stream (else team stream) */
    uint8_t conv_id[16];      /* conversation */
    uint8_t team_id[16];      /* caller's team */
    bool resume;              /* replay stored events after `after` first */
    uint64_t after;           /* last event id the client has */
    gw_sse_format_fn *format; /* frame format; NULL = gw_sse_frame (API.md) */
} gw_sse_spec_t;

/* Starts an SSE stream for req: subscribes, then (resume) replays or checks
   the conversation, then queues the streaming response. Answers errors itself. */
void gw_sse_start(gw_req_t *req, const gw_sse_spec_t *spec);
/* Delivers one live event (topic already matched) to the client. */
void gw_sse_deliver(gw_sse_t *client, const proto_msg_t *event);
/* Per-tick work: at most once per min(keep-alive / 4, 1 s), keep-alive comments
   to the due clients (resumed in one batch) and the stall check. */
void gw_sse_tick(gw_server_t *srv, int64_t now_ms);
/* Ends every stream (shutdown) and resumes their connections. */
void gw_sse_close_all(gw_server_t *srv);
/* Destroys a client that never got a response (its req is going away). */
void gw_sse_destroy(gw_sse_t **self_p);

#include "gateway/gw_edge.h" /* request heads, the door, the per-IP table */

/* ---- HTTP requests (gw_http.c) ------------------------------------------ */

typedef enum {
    GW_REQ_RECEIVING, /* headers and body arriving */
    GW_REQ_AUTH,      /* the token is being checked, before any body is read (suspended) */
    GW_REQ_RUNNING,   /* handler started; waiting for a node (suspended) */
    GW_REQ_READY,     /* a response is prepared and will be queued */
    GW_REQ_DONE,      /* response queued */
} gw_req_state_t;

struct gw_req_t {
    gw_server_t *srv;                         /* owner */
    struct MHD_Connection *conn;              /* MHD connection (borrowed) */
    const gw_route_t *route;                  /* matched route or NULL */
    int miss_status;                          /* 404/405 when route is NULL */
    char allow[64];                           /* Allow header for 405 */
    char method[16];                          /* request method */
    char *path;                               /* URL path (owned) */
    char params[GW_PARAMS_MAX][GW_PARAM_LEN]; /* path parameters */
    char *body;                               /* request body (owned, NUL-terminated) */
    size_t body_len;                          /* bytes of body */
    size_t body_cap;                          /* bytes allocated at body */
    bool too_large;                           /* body passed --max-body */
    int head_status;                          /* 414/431: request head over our limit */
    size_t discarded;                         /* body bytes dropped past the limit */
    bool suspended;                           /* MHD connection suspended by us */
    gw_req_state_t state;                     /* lifecycle */
    bool has_team;                            /* authenticated */
    bool admin;                               /* the token is an admin token (auth answer) */
    bool authed;                              /* the token was checked on the head */
    bool head_again;                          /* suspended in the head call: MHD repeats it */
    char ip[GW_IP_KEY_MAX];                   /* client address (gw_iptab_key) */
    int64_t recv_deadline_ms;                 /* head and body complete by then (mono) */
    bool cut;                                 /* shut down at the deadline (gw_conn.c) */
    uint8_t team_id[16];                      /* caller's team */
    uint8_t conv_id[16];                      /* conversation of the route, when any */
    char token_sha[65];                       /* SHA-256 hex of the bearer token */
    limits_t limits;                          /* the team's limits (set with has_team) */
    limits_quota_t quota;                     /* RateLimit-* headers; limit 0 = none */
    int64_t deadline_ms;                      /* overall upstream deadline (mono) */
    uint64_t call_id;                         /* pending upstream call, 0 when none */
    uint64_t admin_id;                        /* pending registry admin request, 0 when none */
    gw_reply_fn *then;                        /* continuation of the pending call */
    gw_handler_fn *next;                      /* handler to run after auth */
    struct MHD_Response *response;            /* prepared response */
    bool response_shared;                     /* response is the server's, not ours to free */
    unsigned response_status;                 /* its status */
    gw_sse_t *sse;                            /* SSE client being set up (owned) */
    gw_poll_t *poll;                          /* GET /api/events?wait= (owned), NULL */
    json_t *legacy;                           /* legacy handlers' state (owned), NULL */
    void *handle;                             /* position in srv->reqs */
    int64_t started_us;                       /* for the access log */
};

/* The MHD access handler and completion notifier. */
enum MHD_Result gw_http_access(void *cls,
                               struct MHD_Connection *conn,
                               const char *url,
                               const char *method,
                               const char *version,
                               const char *upload_data,
                               size_t *upload_data_size,
                               void **req_cls);
void gw_http_completed(void *cls,
                       struct MHD_Connection *conn,
                       void **req_cls,
                       enum MHD_RequestTerminationCode toe);
/* Prepares a response (takes ownership of resp) and, when the connection is
   suspended, resumes it so that MHD queues it. */
void gw_req_respond(gw_req_t *req, unsigned status, struct MHD_Response *resp);
/* Prepares a response the server keeps (e.g. /health): queued, never freed here. */
void gw_req_respond_shared(gw_req_t *req, unsigned status, struct MHD_Response *resp);
/* Prepares a JSON response from text (copied; NULL → no body). */
void gw_req_respond_json(gw_req_t *req, unsigned status, const char *json, unsigned retry_after);
/* Prepares a JSON response from a value (takes the reference). */
void gw_req_respond_value(gw_req_t *req, unsigned status, json_t *value);
/* Prepares the error response of err. */
void gw_req_respond_error(gw_req_t *req, const gw_error_t *err);
/* Shorthand: error with a formatted message. */
void gw_req_fail(gw_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts an upstream call of op for req; on the reply `then` runs (or, when
   then is NULL, the reply is passed through). The op table says where it goes:
   to the owner of req->conv_id (conversation-bound ops; events.list when
   req->conv_id is set), else to any live node. Answers 503 itself when no
   node can take it. args is taken (decref'd). */
void gw_req_call(gw_req_t *req, proto_op_id_t op, json_t *args, gw_reply_fn *then);
/* A request header (borrowed) or NULL; a query argument likewise. */
const char *gw_req_header(gw_req_t *req, const char *name);
const char *gw_req_query(gw_req_t *req, const char *name);
/* Adds idempotency_key / request_hash to args when the request has the
   header; -1 with err when the header is invalid. */
int gw_req_idempotency(gw_req_t *req, json_t *args, gw_error_t *err);
/* Ends every request still waiting (shutdown): cancels calls, answers 503. */
void gw_http_fail_all(gw_server_t *srv);

/* ---- handlers (gw_api_*.c, gw_routes.c) --------------------------------- */

/* Helpers shared by the API handlers (gw_api_conv.c). Each answers the
   request itself (400) and returns -1 / NULL when the input is invalid. */
/* Parses the :id path parameter into req->conv_id. */
int gw_api_conv_param(gw_req_t *req);
/* Parses the JSON body and checks it against op's row (gw_json_args, with
   preset: the fields the handler sets, taken, may be NULL), then adds the
   idempotency fields when op is a write; returns the args (new reference). */
json_t *gw_api_body(gw_req_t *req, proto_op_id_t op, json_t *preset);
/* Adds to args the query arguments named by op's row (?limit= defaulting to 50,
   ?cursor=, filters, ?after=…), checked against the row as the node will. */
int gw_api_query(gw_req_t *req, proto_op_id_t op, json_t *args);
/* Adds the :id path parameter to args["id"] as a lowercase UUID. */
int gw_api_id_arg(gw_req_t *req, json_t *args);
/* The id of a conversation a request creates: derived from team and Idempotency-Key,
   or random. Returns true when random (no row can have it yet: args get "fresh"). */
bool gw_api_new_conv_id(gw_req_t *req, const json_t *args, uint8_t out[16]);

void gw_h_health(gw_req_t *req);
void gw_h_ready(gw_req_t *req);
void gw_h_metrics(gw_req_t *req);
void gw_h_status(gw_req_t *req);
void gw_h_conv_create(gw_req_t *req);
void gw_h_conv_list(gw_req_t *req);
void gw_h_conv_get(gw_req_t *req);
void gw_h_conv_patch(gw_req_t *req);
void gw_h_conv_delete(gw_req_t *req);
void gw_h_conv_cancel(gw_req_t *req);
void gw_h_msg_list(gw_req_t *req);
void gw_h_msg_post(gw_req_t *req);
void gw_h_message(gw_req_t *req);
void gw_h_conv_events(gw_req_t *req);
void gw_h_team_events(gw_req_t *req);
void gw_h_event_revert(gw_req_t *req);
void gw_h_stream(gw_req_t *req);

/* Permissions, rules, worktrees, strategies (gw_api_perm.c, gw_api_wt.c, gw_api_strat.c). */
void gw_h_perm_list(gw_req_t *req);
void gw_h_perm_get(gw_req_t *req);
void gw_h_perm_approve(gw_req_t *req);
void gw_h_perm_deny(gw_req_t *req);
void gw_h_rule_list(gw_req_t *req);
void gw_h_rule_create(gw_req_t *req);
void gw_h_rule_delete(gw_req_t *req);
void gw_h_wt_list(gw_req_t *req);
void gw_h_wt_create(gw_req_t *req);
void gw_h_wt_get(gw_req_t *req);
void gw_h_wt_delete(gw_req_t *req);
void gw_h_strategies(gw_req_t *req);
/* GET /socket/websocket (gw_ws.c). */
void gw_h_socket(gw_req_t *req);

/* ---- server (gw_server.c) ------------------------------------------------ */

struct gw_server_t {
    const gw_config_t *cfg;      /* borrowed, read-only */
    zloop_t *loop;               /* the one loop */
    struct MHD_Daemon *mhd;      /* external-epoll HTTP daemon */
    zmq_pollitem_t mhd_item;     /* MHD epoll fd registered with the loop */
    int kick_timer;              /* one-shot MHD run timer id, -1 when none */
    gw_accept_t *accept;         /* listening socket and head stage */
    gw_ws_hub_t *ws;             /* WebSocket connections (gw_ws.c) */
    bool draining;               /* SIGTERM seen: /ready 503, still serving */
    int64_t drain_until_ms;      /* when draining ends and the stop begins */
    bool stopping;               /* shutdown in progress */
    bool stop_failed;            /* grace over: what was left got 503 */
    bool finished;               /* shutdown done: the loop may end */
    int64_t stop_deadline_ms;    /* when shutdown gives up waiting */
    int64_t started_ms;          /* wall-clock start */
    gw_metrics_t *metrics;       /* counters */
    gw_auth_cache_t *auth;       /* token cache */
    gw_limits_t *limits;         /* per-team buckets and open streams */
    gw_iptab_t *iptab;           /* per-IP connections and failed authentications */
    gw_registry_t *registry;     /* registry link */
    gw_upstream_t *upstream;     /* nodes, ring, calls */
    gw_fanout_t *fanout;         /* event SUB and topics */
    zlistx_t *reqs;              /* live gw_req_t (not owned) */
    zlistx_t *sse;               /* live gw_sse_t (not owned) */
    zlistx_t *conns;             /* libmicrohttpd's connections (gw_conn.c; not owned) */
    uint16_t http_port;          /* bound port */
    struct MHD_Response *health; /* the GET /health answer, built once and reused */
    int64_t sse_sweep_ms;        /* next SSE keep-alive sweep (mono) */
};

/* Builds the server: MHD daemon on cfg->listen:port, registry link, loop.
   NULL (logged) on failure. cfg must outlive the server. */
gw_server_t *gw_server_new(const gw_config_t *cfg);
/* Stops MHD (after resuming everything) and frees; nulls *self_p. */
void gw_server_destroy(gw_server_t **self_p);
/* Runs the loop until util_interrupted, then shuts down gracefully (≤ 5 s).
   Returns 0 on a clean stop, -1 on a fatal error. */
int gw_server_run(gw_server_t *self);
/* Makes MHD run again soon (after resuming connections). */
void gw_server_kick(gw_server_t *self);
/* Open connections: libmicrohttpd's, those in the head stage, WebSockets. */
unsigned gw_server_connections(gw_server_t *self);

#include "gateway/gw_fanout.h"

#endif
