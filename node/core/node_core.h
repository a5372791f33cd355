/*  node_core — what every part of the node shares: the node object, requests and
    replies, event publishing, the actor table with its mailboxes, and the JSON, buffer and cursor
   helpers. Depends on nothing else in node/. Everything here runs on the node's loop thread. */
#ifndef BICKY_NODE_CORE_H
#define BICKY_NODE_CORE_H

#include "common/db_conn.h"
#include "common/metrics.h"
#include "common/ring.h"
#include "common/sock_path.h"
#include "node/node.h"
#include "proto/proto.h"
#include "proto/proto_ops.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define NODE_ROUTER_HWM  50000 /* queued messages per peer on ROUTER and PUB */
#define NODE_RECV_BURST  256   /* API requests read per reader call (fairness) */
#define NODE_TICK_MS     100   /* interrupt check and stop progress */
#define NODE_SWEEP_MS    1000  /* passivation sweep period */
#define NODE_STOP_MS     4500  /* graceful stop budget (SIGTERM must exit within 5 s) */
#define NODE_MAX_REPLY   (8u * 1024 * 1024) /* list replies stop growing here */
#define NODE_RETRY_AFTER 1                  /* seconds, in 503 replies */

typedef struct node_actor_t node_actor_t;
typedef struct node_actors_t node_actors_t;
typedef struct node_sched_t node_sched_t;
typedef struct node_commit_t node_commit_t;
typedef struct node_fence_t node_fence_t;   /* single activation (node/placement) */
typedef struct node_engine_t node_engine_t; /* the turn engine (node/runtime) */
typedef struct node_ws_t node_ws_t;
typedef struct node_merged_t node_merged_t; /* node_ws_stmt.h */
typedef struct node_reg_t node_reg_t;
typedef struct node_op_t node_op_t;
typedef struct node_agents_t node_agents_t; /* strategies, tools, permissions (node_strategy.h) */
typedef struct node_run_t node_run_t;       /* a running non-echo turn (node_strategy.h) */
typedef struct node_metrics_t node_metrics_t;

/* ---- the node ---------------------------------------------------------------------------- */

struct node_t {
    const node_cfg_t *cfg;       /* borrowed configuration */
    zloop_t *loop;               /* the one loop */
    zsock_t *router;             /* API requests from gateways */
    zsock_t *pub;                /* events to gateways */
    char router_ep[256];         /* advertised ROUTER endpoint (--advertise, else the bound one) */
    char pub_ep[256];            /* advertised PUB endpoint (--pub-advertise, else the bound one) */
    char router_local[256];      /* bound ROUTER endpoint, wildcard host as loopback (children) */
    zsock_t *local;              /* ROUTER (ipc, 600) for this node's permission servers'
                                    permission.ask (with CURVE, or a channel mcp strategy) */
    char local_ep[256];          /* its endpoint; "" when there is none */
    sock_path_t local_path;      /* its file (and private directory, when the path is long) */
    zactor_t *mon_router;        /* refused handshakes on router (CURVE only) */
    zactor_t *mon_pub;           /* refused handshakes on pub (CURVE only) */
    db_conn_t *db;               /* the Postgres pipeline connection */
    node_reg_t *reg;             /* registry client; NULL when standalone */
    node_actors_t *actors;       /* resident actors */
    node_sched_t *sched;         /* turn steps and back-off wake-ups */
    node_commit_t *commit;       /* group commit */
    node_fence_t *fence;         /* ownership claims and guards */
    const node_engine_t *engine; /* turns, as the runtime drives them */
    ring_t *ring;                /* current ring (alive nodes sorted by id) */
    ring_member_t *members;      /* ring members, same order as given to ring_set */
    size_t nmembers;             /* count of members */
    uint64_t epoch;              /* epoch of the current ring */
    bool have_ring;              /* a ring was received (or standalone) */
    bool stopping;               /* graceful stop in progress: refuse new requests */
    bool closing;                /* node_destroy is running: submit no database work */
    int64_t stop_deadline;       /* mono ms at which the loop ends regardless */
    int tick_timer;              /* NODE_TICK_MS timer */
    int sweep_timer;             /* passivation sweep timer */
    uint64_t requests;           /* API requests received (stats) */
    node_agents_t *agents;       /* strategies, agent pool, HTTP client, worktrees */
    node_metrics_t *metrics;     /* latency histograms (GET /metrics) */
    metrics_http_t *metrics_http; /* their endpoint (--metrics-bind), or NULL */
};

/* Owner of a conversation according to the current ring. */
/* node_server.c */
/* One event to publish: a stored event (id and its per-conversation seq) or
   a live-only delta (id 0, seq 0). Strings are borrowed. */
typedef struct {
    uint64_t id;      /* events.id, 0 for a delta */
    uint64_t seq;     /* events.seq, 0 when none */
    const char *type; /* event type */
    const char *body; /* event JSON */
} node_event_out_t;
/* Publishes one event under team+conv. */
void node_publish(node_t *node,
                  const uint8_t team[16],
                  const uint8_t conv[16],
                  const node_event_out_t *ev);

/* ---- requests and replies (node_reply.c) ------------------------------------------------- */

typedef struct node_req_t {
    zframe_t *identity;     /* ROUTER peer frame (owned) */
    zsock_t *sock;          /* the ROUTER it came on, where the reply goes (borrowed) */
    uint64_t req_id;        /* gateway request id, echoed */
    const node_op_t *op;    /* operation */
    json_t *args;           /* parsed args object (owned) */
    uint8_t team_id[16];    /* caller's team (has_team) */
    uint8_t conv_id[16];    /* conversation (has_conv) */
    bool has_team;          /* team_id present */
    bool has_conv;          /* conv_id present */
    bool idem_checked;      /* idempotency key looked up (or none) */
    bool idem_pending;      /* its idempotency lookup is in flight */
    uint32_t lim_turns;     /* the team's limits from the envelope (defaults when absent): */
    uint32_t lim_actors;    /* running turns and resident actors per node, */
    uint32_t lim_worktrees; /* active worktrees (common/limits.h) */
} node_req_t;

typedef enum {
    NODE_OP_TEAM, /* team-wide read: any node answers */
    NODE_OP_READ, /* conversation-bound read: owner answers, plain batch */
    NODE_OP_ACTOR /* conversation-bound, runs in the conversation's actor */
} node_op_kind_t;

/* Handlers take ownership of req (they reply, or hand it on). */
typedef void(node_read_fn)(node_t *node, node_req_t *req);
typedef void(node_actor_fn)(node_t *node, node_actor_t *actor, node_req_t *req);

/* The node's binding of an op of the shared table (proto/proto_ops.h: name, scope,
   team, idempotency, arguments) to the code that runs it. */
struct node_op_t {
    const proto_op_t *spec; /* the op's row in proto_ops[] */
    node_op_kind_t kind;    /* where it runs */
    node_read_fn *read;     /* NODE_OP_TEAM / NODE_OP_READ */
    node_actor_fn *run;     /* NODE_OP_ACTOR */
};

/* Frees a request (identity, args); accepts NULL, nulls *req_p. No reply is sent. */
void node_req_destroy(node_req_t **req_p);
/* Sends API_REP {status, body, retry_after} and destroys the request. */
void node_reply(node_t *node, node_req_t **req_p, int status, const char *body, int retry_after);
/* Same for a body Postgres built (json_build_object, jsonb text): sent compacted
   (node_buf_json), the spacing of every body the node sends; 503 on OOM. */
void node_reply_pg(node_t *node, node_req_t **req_p, int status, const char *json);
/* Error reply {"error": message, "code": code}; 503/429 carry retry_after. */
void node_reply_error(
    node_t *node, node_req_t **req_p, int status, const char *code, const char *message);
/* 400 invalid_field naming the field ("invalid field: <field>"). */
void node_reply_field(node_t *node, node_req_t **req_p, const char *field);
/* 400 invalid_field naming the field, with message saying what is allowed. */
void node_reply_error_field(node_t *node,
                            node_req_t **req_p,
                            const char *field,
                            const char *message);
/* 503 unavailable with retry_after NODE_RETRY_AFTER. */
void node_reply_busy(node_t *node, node_req_t **req_p, const char *why);
/* PROTO_MOVED with the node's epoch: the gateway refreshes its ring and retries. */
void node_reply_moved(node_t *node, node_req_t **req_p);

/* ---- actors (node_actor.c: table, LRU, mailbox) ------------------------------------------ */

typedef enum { NODE_ACTOR_LOADING, NODE_ACTOR_ABSENT, NODE_ACTOR_READY } node_actor_state_t;
typedef enum {
    NODE_ST_IDLE,
    NODE_ST_QUEUED,
    NODE_ST_PROCESSING,
    NODE_ST_WAITING,
    NODE_ST_ERROR,
    NODE_ST_ARCHIVED
} node_status_t;
typedef enum { NODE_BUSY_ENQUEUE, NODE_BUSY_REJECT, NODE_BUSY_INTERRUPT } node_on_busy_t;

#define NODE_AF_COMMITTING 0x01 /* a write set of this actor is in flight */
#define NODE_AF_IDEM                                                                               \
    0x02                    /* a pinning read is in flight: idempotency lookup,                    \
                               permission decision or turn recovery (node_strategy.h) */
#define NODE_AF_DOOMED 0x04 /* not ours any more: free when quiescent */
#define NODE_AF_RELOAD 0x08 /* state unknown (connection lost mid-commit): reload */
#define NODE_AF_WHOLE  0x10 /* the stored strategy may write whole turns (node_turns.h) */
#define NODE_AF_TURN   0x20 /* its running turn counts in its team's (node_actors_turn_mark) */
#define NODE_AF_OBSERVED                                                                           \
    0x40 /* observers are attached: a turn's end reads them (node_observe.c); set at load,         \
            by an attach, cleared by the detach of the last one */

typedef struct node_mbox_t node_mbox_t;
typedef struct node_turns_t node_turns_t;

/* One resident conversation. Kept small (~100 bytes): the mailbox and the
   turn state are allocated only while in use. */
struct node_actor_t {
    uint8_t conv_id[16];    /* key */
    uint8_t team_id[16];    /* owning team (the team the row was loaded for) */
    node_actor_t *lru_prev; /* LRU list, head = least recently used */
    node_actor_t *lru_next;
    node_mbox_t *mbox;       /* waiting requests, NULL when empty */
    node_turns_t *turns;     /* running/queued turns, NULL when none */
    uint64_t last_msg_seq;   /* highest stored message seq */
    uint64_t last_evt_seq;   /* highest stored event seq */
    int64_t last_used_ms;    /* mono ms of the last activity */
    int32_t echo_delay_ms;   /* per-conversation override, -1 = node default */
    int32_t echo_fail_every; /* per-conversation override, -1 = node default */
    uint64_t fence_epoch;    /* claim held (node_fence.c): its epoch + 1; 0 = none */
    uint32_t turn_count;     /* turns started since activation */
    uint8_t state;           /* node_actor_state_t */
    uint8_t status;          /* node_status_t (stored status) */
    uint8_t on_busy;         /* node_on_busy_t */
    uint8_t flags;           /* NODE_AF_* */
};

/* Frees an actor's turn state (node/turns), which the table does not know. */
typedef void(node_turns_free_fn)(node_turns_t *turns);
/* Creates an empty table; free_turns frees the turn state of the actors still resident
   at destroy (NULL when actors never get any, as in unit tests). NULL on OOM. */
node_actors_t *node_actors_new(node_turns_free_fn *free_turns);
/* Frees every actor (their requests without replies) and the table; nulls *self_p. */
void node_actors_destroy(node_actors_t **self_p);
/* The actor of conv, or NULL. */
node_actor_t *node_actors_find(const node_actors_t *self, const uint8_t conv[16]);
/* Creates and inserts an actor (state LOADING, LRU tail). NULL on OOM or when present. */
node_actor_t *node_actors_add(node_actors_t *self,
                              const uint8_t conv[16],
                              const uint8_t team[16],
                              int64_t now_ms);
/* Unlinks and frees the actor; its mailbox must be empty and turns released. */
void node_actors_remove(node_actors_t *self, node_actor_t *actor);
/* Marks activity: moves the actor to the LRU tail. */
void node_actors_touch(node_actors_t *self, node_actor_t *actor, int64_t now_ms);
/* True when nothing is waiting, running or in flight for the actor. */
bool node_actor_quiescent(const node_actor_t *actor);
/* Least recently used actor, or NULL. */
node_actor_t *node_actors_oldest(const node_actors_t *self);
/* Resident actors. */
size_t node_actors_count(const node_actors_t *self);
/* A team's resident actors, and its actors whose running turn is counted (issue 12
   limits: per node, no database). */
uint32_t node_actors_team_actors(const node_actors_t *self, const uint8_t team[16]);
uint32_t node_actors_team_turns(const node_actors_t *self, const uint8_t team[16]);
/* Counts (running) or uncounts the actor's running turn in its team's turns; idempotent.
   Removing the actor uncounts it. */
void node_actors_turn_mark(node_actors_t *self, node_actor_t *actor, bool running);
/* Calls fn for every actor (fn must not add or remove actors); collects up to cap
   actors for which fn returns true into out; returns how many. */
size_t node_actors_select(const node_actors_t *self,
                          bool (*fn)(node_actor_t *, void *),
                          void *arg,
                          node_actor_t **out,
                          size_t cap);

/* Mailbox: push (-1 when max reached or OOM), peek, pop, count. */
int node_mbox_push(node_actor_t *actor, node_req_t *req, size_t max);
node_req_t *node_mbox_peek(const node_actor_t *actor);
node_req_t *node_mbox_pop(node_actor_t *actor);
size_t node_mbox_count(const node_actor_t *actor);

const char *node_status_name(int status);
int node_status_parse(const char *name); /* -1 when unknown */
const char *node_on_busy_name(int on_busy);
int node_on_busy_parse(const char *name); /* -1 when unknown */

/* ---- metrics (node_metrics.c) ---------------------------------------------------------- */

#define NODE_METRICS_STRATEGIES 16 /* strategies with their own turn histogram; more: "other" */

/* The node's latency histograms (Prometheus, docs/performance.md). Observed on the
   loop thread; rendered on the metrics endpoint's thread (common/metrics.h). */
struct node_metrics_t {
    metrics_hist_t commit_us;  /* a group's transaction: sent → its result (µs) */
    metrics_hist_t group_size; /* write sets per group sent */
    metrics_hist_t queue_us;   /* a write set: submitted → its group sent (µs) */
    metrics_hist_t turn_us[NODE_METRICS_STRATEGIES + 1]; /* per strategy; the last: other */
    char strategy[NODE_METRICS_STRATEGIES][65];          /* their names */
    _Atomic size_t nstrategies;                          /* names in use */
};

/* A new set of empty histograms, NULL on OOM. */
node_metrics_t *node_metrics_new(void);
void node_metrics_destroy(node_metrics_t **self_p);
/* Records a turn of strategy (NULL: an echo turn; "": "unknown") that took us µs. */
void node_metrics_turn(node_metrics_t *self, const char *strategy, int64_t us);
/* Writes the node's metrics (metrics_render_fn; arg is the node_metrics_t). Any thread. */
void node_metrics_render(FILE *f, void *arg);

/* ---- helpers (node_json.c, node_cursor.c) ------------------------------------------------ */

/* A growable byte buffer for reply bodies. */
typedef struct {
    char *data; /* NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed */
} node_buf_t;

void node_buf_init(node_buf_t *b);
void node_buf_add(node_buf_t *b, const char *s, size_t n);
void node_buf_str(node_buf_t *b, const char *s);
/* Appends s as a JSON string literal (quoted, escaped). */
void node_buf_json_str(node_buf_t *b, const char *s);
/* Appends JSON text json (borrowed, not b's own; NULL → null) in the node's one
   spacing, jansson's JSON_COMPACT: the whitespace outside strings (Postgres' " : ",
   ", ", jsonb's ": ") is dropped, everything else is copied as is. One pass, no
   parsing. */
void node_buf_json(node_buf_t *b, const char *json);
void node_buf_free(node_buf_t *b);

/* Field readers: 0 = absent (out untouched), 1 = present and valid, -1 = invalid. */
int node_arg_str(
    const json_t *obj, const char *key, size_t minlen, size_t maxlen, const char **out);
int node_arg_int(const json_t *obj, const char *key, long long min, long long max, long long *out);
int node_arg_object(const json_t *obj, const char *key, const json_t **out);
/* The list limit (default 50, 1..500); -1 on a bad value. */
int node_arg_limit(const json_t *args, long long *out);
/* Replies 200 {"data":[<rows>],"next_cursor":…} where rows is the
   comma-joined JSON of the page and cursor (borrowed, NULL when this is the
   last page) is the raw cursor text, encoded here. 503 on OOM. */
void node_reply_list(node_t *node, node_req_t **req_p, const node_buf_t *rows, const char *cursor);
/* Serialises a JSON value compactly (malloc'd). */
char *node_json_text(const json_t *value);
/* Parses an optional decimal string (NULL/garbage → dflt, clamped to [min, max]). */
long long node_parse_ll(const char *text, long long dflt, long long min, long long max);

/* Cursors: base64url of the text "created_at|uuid" (conversations) or "n" (seqs, ids).
   encode returns a malloc'd string (NULL on OOM). decode returns 0 and fills out, or
   -1 when the cursor is malformed. */
char *node_cursor_encode(const char *text);
int node_cursor_decode_conv(const char *cursor, char ts[40], char id[37]);
int node_cursor_decode_num(const char *cursor, long long *out);
char *node_cursor_encode_num(long long n);

#endif
