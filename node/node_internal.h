/*  node_internal — declarations shared by the node_*.c files: the node object,
    requests, the op table, actors (table, mailbox, runtime), the scheduler,
    group commit write sets, turns, SQL statement names and small JSON helpers.
    Everything here runs on the node's loop thread. */
#ifndef BICKY_NODE_INTERNAL_H
#define BICKY_NODE_INTERNAL_H

#include "common/db_conn.h"
#include "common/ring.h"
#include "node/node.h"
#include "node/node_sql.h"
#include "proto/proto.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define NODE_ROUTER_HWM     50000 /* queued messages per peer on ROUTER and PUB */
#define NODE_RECV_BURST     256   /* API requests read per reader call (fairness) */
#define NODE_TICK_MS        100   /* interrupt check and stop progress */
#define NODE_SWEEP_MS       1000  /* passivation sweep period */
#define NODE_STOP_MS        4500  /* graceful stop budget (SIGTERM must exit within 5 s) */
#define NODE_REG_TICK_MS    250   /* registry client timer */
#define NODE_REG_HEARTBEAT  1000  /* heartbeat period */
#define NODE_REG_TIMEOUT    1000  /* no answer within this → next registry */
#define NODE_REG_MAX        8     /* registries in --registry */
#define NODE_MAX_REPLY      (8u * 1024 * 1024) /* list replies stop growing here */
#define NODE_LIST_DEFAULT   50
#define NODE_LIST_MAX       500
#define NODE_CONTENT_MAX    (1024 * 1024) /* message content bytes */
#define NODE_ECHO_BURST     64            /* deltas per scheduler step when delay is 0 */
#define NODE_BACKOFF_MIN_MS 200           /* strategy restart back-off after a failed turn */
#define NODE_BACKOFF_MAX_MS 5000
#define NODE_RETRY_AFTER    1 /* seconds, in 503 replies */

typedef struct node_actor_t node_actor_t;
typedef struct node_actors_t node_actors_t;
typedef struct node_sched_t node_sched_t;
typedef struct node_commit_t node_commit_t;
typedef struct node_ws_t node_ws_t;
typedef struct node_merged_t node_merged_t; /* node_ws_stmt.h */
typedef struct node_reg_t node_reg_t;
typedef struct node_op_t node_op_t;
typedef struct node_agents_t node_agents_t; /* strategies, tools, permissions (node_strategy.h) */
typedef struct node_run_t node_run_t;       /* a running non-echo turn (node_strategy.h) */

/* ---- the node ---------------------------------------------------------------------------- */

struct node_t {
    const node_cfg_t *cfg;  /* borrowed configuration */
    zloop_t *loop;          /* the one loop */
    zsock_t *router;        /* API requests from gateways */
    zsock_t *pub;           /* events to gateways */
    char router_ep[256];    /* bound ROUTER endpoint (advertised) */
    char pub_ep[256];       /* bound PUB endpoint (advertised) */
    db_conn_t *db;          /* the Postgres pipeline connection */
    node_reg_t *reg;        /* registry client; NULL when standalone */
    node_actors_t *actors;  /* resident actors */
    node_sched_t *sched;    /* turn steps and back-off wake-ups */
    node_commit_t *commit;  /* group commit */
    ring_t *ring;           /* current ring (alive nodes sorted by id) */
    ring_member_t *members; /* ring members, same order as given to ring_set */
    size_t nmembers;        /* count of members */
    uint64_t epoch;         /* epoch of the current ring */
    bool have_ring;         /* a ring was received (or standalone) */
    bool stopping;          /* graceful stop in progress: refuse new requests */
    bool closing;           /* node_destroy is running: submit no database work */
    int64_t stop_deadline;  /* mono ms at which the loop ends regardless */
    int tick_timer;         /* NODE_TICK_MS timer */
    int sweep_timer;        /* passivation sweep timer */
    uint64_t requests;      /* API requests received (stats) */
    node_agents_t *agents;  /* strategies, agent pool, HTTP client, worktrees */
};

/* Owner of a conversation according to the current ring. */
typedef enum { NODE_OWNER_SELF, NODE_OWNER_OTHER, NODE_OWNER_NONE } node_owner_t;

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

/* node_registry.c — registry client and ring. */
node_reg_t *node_reg_new(node_t *node);
void node_reg_destroy(node_reg_t **self_p);
/* Which node owns conv at the node's epoch. */
node_owner_t node_ring_owner(node_t *node, const uint8_t conv[16]);
/* Installs a ring: nodes (alive ones are kept, sorted by id) at epoch. -1 on bad input. */
int node_ring_apply(node_t *node, const proto_node_t *nodes, size_t n, uint64_t epoch);
/* A request carried a newer epoch than ours: ask the registry for the ring. */
void node_reg_epoch_hint(node_t *node, uint64_t epoch);
/* Our ring is probably stale (a fence refused us): ask the registry for the ring now
   (at most every 200 ms). No-op when standalone. */
void node_reg_refresh(node_t *node);
/* Nodes that may still hold conversations (state alive or draining in our ring), as a
   Postgres text[] literal; "{}" when standalone or before the first ring. Borrowed. */
const char *node_reg_live(const node_t *node);

/* ---- requests and replies (node_dispatch.c) ---------------------------------------------- */

typedef struct node_req_t {
    zframe_t *identity;  /* ROUTER peer frame (owned) */
    uint64_t req_id;     /* gateway request id, echoed */
    const node_op_t *op; /* operation */
    json_t *args;        /* parsed args object (owned) */
    uint8_t team_id[16]; /* caller's team (has_team) */
    uint8_t conv_id[16]; /* conversation (has_conv) */
    bool has_team;       /* team_id present */
    bool has_conv;       /* conv_id present */
    bool idem_checked;   /* idempotency key looked up (or none) */
    bool idem_pending;   /* its idempotency lookup is in flight */
} node_req_t;

typedef enum {
    NODE_OP_TEAM, /* team-wide read: any node answers */
    NODE_OP_READ, /* conversation-bound read: owner answers, plain batch */
    NODE_OP_ACTOR /* conversation-bound, runs in the conversation's actor */
} node_op_kind_t;

/* Handlers take ownership of req (they reply, or hand it on). */
typedef void(node_read_fn)(node_t *node, node_req_t *req);
typedef void(node_actor_fn)(node_t *node, node_actor_t *actor, node_req_t *req);

struct node_op_t {
    const char *name;    /* "conv.create" */
    node_op_kind_t kind; /* where it runs */
    bool needs_team;     /* team_id required (all but auth) */
    bool write;          /* accepts idempotency_key */
    node_read_fn *read;  /* NODE_OP_TEAM / NODE_OP_READ */
    node_actor_fn *run;  /* NODE_OP_ACTOR */
};

/* Handles one received message from the ROUTER (takes identity and msg contents). */
void node_dispatch(node_t *node, zframe_t **identity_p, proto_msg_t *msg);
/* Frees a request (identity, args); accepts NULL, nulls *req_p. No reply is sent. */
void node_req_destroy(node_req_t **req_p);
/* Sends API_REP {status, body, retry_after} and destroys the request. */
void node_reply(node_t *node, node_req_t **req_p, int status, const char *body, int retry_after);
/* Error reply {"error": message, "code": code}; 503/429 carry retry_after. */
void node_reply_error(
    node_t *node, node_req_t **req_p, int status, const char *code, const char *message);
/* 400 invalid_field naming the field. */
void node_reply_field(node_t *node, node_req_t **req_p, const char *field);
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
#define NODE_AF_ECHO   0x10 /* the stored strategy is an echo strategy on this node */

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

/* Creates an empty table. NULL on OOM. */
node_actors_t *node_actors_new(void);
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
/* Least recently used actor, or NULL. */
node_actor_t *node_actors_oldest(const node_actors_t *self);
/* Resident actors. */
size_t node_actors_count(const node_actors_t *self);
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

/* ---- actor runtime (node_runtime.c) ------------------------------------------------------ */

/* Delivers a conversation-bound request to its actor (activating it). Takes req. */
void node_actor_deliver(node_t *node, node_req_t *req);
/* Processes what the actor can process now (mailbox, turn ends, turn starts). */
void node_actor_pump(node_t *node, node_actor_t *actor);
/* Forgets the actor's state and reloads it from Postgres (keeps the mailbox). */
void node_actor_reload(node_t *node, node_actor_t *actor);
/* Answers every waiting request with 503 and frees the actor (or dooms it when
   database work is in flight). */
void node_actor_drop(node_t *node, node_actor_t *actor, const char *why);
/* True when nothing is waiting, running or in flight for the actor. */
bool node_actor_quiescent(const node_actor_t *actor);
/* Passivation sweep: frees actors idle for --actor-idle-s. */
void node_actors_sweep(node_t *node);

#include "node/node_fence.h" /* single activation and hand-off */

/* ---- recovery on activation (node_recover.c) --------------------------------------------- */

/* True when the freshly loaded actor's stored status says a turn was running or
   waiting (processing/queued): its previous owner was lost mid-turn. */
bool node_recover_needed(const node_actor_t *actor);
/* Reads the lost turn and pending messages (the actor stays LOADING meanwhile),
   then fails the lost turn (reason node_lost) and starts the pending messages. */
void node_recover_start(node_t *node, node_actor_t *actor);

/* ---- scheduler (node_sched.c): one wake-up per actor, one zloop timer ------------------- */

node_sched_t *node_sched_new(node_t *node);
void node_sched_destroy(node_sched_t **self_p);
/* Schedules (or reschedules) actor's wake-up at mono ms due. -1 on OOM. */
int node_sched_at(node_sched_t *self, node_actor_t *actor, int64_t due_ms);
/* Cancels the actor's wake-up if any. */
void node_sched_cancel(node_sched_t *self, node_actor_t *actor);
/* Scheduled wake-ups. */
size_t node_sched_size(const node_sched_t *self);

/* ---- group commit (node_commit.c) -------------------------------------------------------- */

typedef enum {
    NODE_SK_PLAIN,   /* nothing special */
    NODE_SK_EVENT,   /* events insert: publish (col 0 id, col 1 JSON); unique → stale */
    NODE_SK_SEQ,     /* messages insert: unique violation → stale owner */
    NODE_SK_IDEM,    /* idempotency insert: unique violation → concurrent duplicate */
    NODE_SK_CONV,    /* conversations insert: unique violation → exists */
    NODE_SK_WORKTREE /* worktree check: failure → invalid worktree_id */
} node_stmt_kind_t;

typedef enum {
    NODE_WS_OK,
    NODE_WS_CONN,   /* database unreachable / outcome unknown */
    NODE_WS_STALE,  /* another node wrote this conversation: drop the actor */
    NODE_WS_IDEM,   /* same idempotency key committed concurrently */
    NODE_WS_EXISTS, /* conversation id already taken */
    NODE_WS_FIELD,  /* a value was refused (field names it) */
    NODE_WS_FAILED  /* anything else */
} node_ws_outcome_t;

typedef enum { NODE_END_NONE, NODE_END_COMPLETED, NODE_END_FAILED, NODE_END_CANCELLED } node_end_t;

/* What a write set does to the actor's turns once committed. */
typedef struct {
    uint8_t end;           /* node_end_t: the running turn ends */
    bool start;            /* a turn starts */
    bool start_from_queue; /* it is the queue head's (else the posted message's) */
    bool enqueue;          /* the posted message waits in the queue */
    bool clear_queue;      /* archive: forget queued turns */
    bool created;          /* the conversation was created by this write */
    uint8_t user_id[16];   /* posted user message id */
    uint8_t asst_id[16];   /* started turn's assistant message id */
    char *content;         /* posted content (owned), moved into the turn/queue */
    node_ws_t *ws;         /* the write set holding this plan (strategy hooks), or NULL */
    int strat_ctx;         /* 1 + index of the turn-context statement, 0 = none */
    uint8_t strat_op;      /* strategy write (node_strategy.h node_sop_t), 0 = none */
    int32_t strat_arg;     /* its argument (a tool call index, -1 = none) */
    bool folded;           /* a whole echo turn is written by this set (node_turn.c) */
    int fold_evt;          /* its turn.started statement: deltas are published after it */
    char *fold_reply;      /* its reply text (owned), published as deltas */
} node_plan_t;

typedef enum {
    NODE_REPLY_NONE, /* internal write (turn end/start): nobody to answer */
    NODE_REPLY_CONV, /* body = conversation JSON from the touch statement */
    NODE_REPLY_MSG,  /* body = {"message": <user message>} (+ "created") */
    NODE_REPLY_EMPTY /* body = "{}" (or none for 204) */
} node_reply_kind_t;

struct node_ws_t {
    node_actor_t *actor;       /* writer (borrowed; pinned by NODE_AF_COMMITTING) */
    node_req_t *req;           /* request answered on commit, or NULL */
    struct node_stmt_t *stmts; /* statements (owned copies of their parameters) */
    size_t n, cap;             /* statements used / allocated */
    int failed;                /* index of the statement that failed, -1 none */
    node_ws_t *next;           /* next in its group */
    node_plan_t plan;          /* effect on turns */
    int reply_kind;            /* node_reply_kind_t */
    int reply_status;          /* HTTP status on success */
    int msg_stmt;              /* statement returning the user message JSON, -1 */
    int touch_stmt;            /* statement returning the conversation row, -1 */
    int idem_stmt;             /* idempotency insert returning the response, -1 */
    uint64_t saved_msg_seq;    /* counters to restore if the write fails */
    uint64_t saved_evt_seq;
    uint8_t saved_state;   /* actor state before (ABSENT for creates) */
    const char *field;     /* NODE_WS_FIELD: the refused field */
    bool oom;              /* a statement could not be added: abort, never send */
    char ts[32];           /* the set's time for the rows it inserts ("" until needed) */
    node_merged_t *merged; /* multi-row inserts standing for several statements */
    bool grouped;          /* sent with other sets' merged statements (node_commit.c) */
};

/* Creates an empty write set for actor (req may be NULL). Saves the counters. */
node_ws_t *node_ws_new(node_actor_t *actor, node_req_t *req);
/* Frees a write set (and its request without replying); accepts NULL. */
void node_ws_destroy(node_ws_t **ws_p);
/* Appends a prepared statement (params copied; NULL entry = SQL NULL). Returns its
   index, or -1 on OOM. */
int node_ws_add(
    node_ws_t *ws, const char *stmt, node_stmt_kind_t kind, int nparams, const char *const *params);
/* The set's time for the rows it inserts, as Postgres prints a timestamptz (node_write.c). */
const char *node_ws_ts(node_ws_t *ws);
/* Name of statement stmt, or NULL. */
const char *node_ws_name(const node_ws_t *ws, int stmt);
/* Row-0 value of a committed statement's result, or NULL. */
const char *node_ws_value(const node_ws_t *ws, int stmt, int col);
/* Rows returned by a committed statement (-1 when unknown). */
int node_ws_rows(const node_ws_t *ws, int stmt);
/* Index of the first statement named stmt, or -1. */
int node_ws_find(const node_ws_t *ws, const char *stmt);
/* Parameter p of statement stmt as sent (borrowed), or NULL. */
const char *node_ws_param(const node_ws_t *ws, int stmt, int p);
/* Publishes the events the write set stored, in order; returns the highest id. */
uint64_t node_ws_publish(node_t *node, const node_ws_t *ws);

/* Called once per write set when its fate is known (ws ownership passes back). */
typedef void(node_ws_done_fn)(node_t *node, node_ws_t *ws, node_ws_outcome_t outcome);

node_commit_t *node_commit_new(node_t *node, node_ws_done_fn *done);
void node_commit_destroy(node_commit_t **self_p);
/* Adds ws to the current group; the group is sent at the end of this loop turn
   as one transactional batch. Takes ownership. */
void node_commit_submit(node_commit_t *self, node_ws_t **ws_p);
/* Sends the open group now (graceful stop). */
void node_commit_flush(node_commit_t *self);
/* True when no group is open and none is in flight. */
bool node_commit_idle(const node_commit_t *self);
/* Group commit outcome of one of an actor's write sets (node_runtime.c). */
void node_actor_committed(node_t *node, node_ws_t *ws, node_ws_outcome_t outcome);

/* ---- turns (node_turn.c) and echo (node_echo.c) ------------------------------------------ */

typedef struct node_pending_t node_pending_t;

/* Turn state of one actor, allocated while a turn runs, waits or backs off. */
struct node_turns_t {
    bool running;          /* a turn is streaming */
    uint8_t end_ready;     /* node_end_t: streaming ended, end write not yet built */
    bool backoff;          /* waiting before the next turn after a failure */
    bool start_ready;      /* back-off over: start the next turn */
    uint8_t user_id[16];   /* running turn: user message */
    uint8_t asst_id[16];   /* running turn: assistant message (streaming row) */
    char *reply;           /* running turn: full reply text */
    size_t pos;            /* bytes of reply streamed so far */
    size_t fail_at;        /* fail after this many deltas (SIZE_MAX = never) */
    uint32_t index;        /* next delta index */
    uint32_t input_tokens; /* words of the user message */
    uint32_t backoff_ms;   /* current back-off */
    int32_t heap_idx;      /* position in the scheduler heap, -1 none */
    node_pending_t *head;  /* queued user messages, oldest first */
    node_pending_t *tail;
    uint32_t nqueued; /* length of the queue */
    node_run_t *run;  /* state of a non-echo strategy's running turn, or NULL */
};

/* Turn state of actor, allocated on demand (NULL on OOM). */
node_turns_t *node_turns_get(node_actor_t *actor);
/* Frees turn state (queue included) and cancels its wake-up. */
void node_turns_release(node_t *node, node_actor_t *actor);
/* Frees turn state without touching the scheduler (table teardown). Accepts NULL. */
void node_turns_free(node_turns_t *turns);
/* True when a turn is streaming or its end is not yet stored. */
bool node_turn_running(const node_actor_t *actor);
/* Queued turns. */
uint32_t node_turn_queued(const node_actor_t *actor);

/* ---- building write sets (node_write.c) ------------------------------------------------- */

/* Appends a message insert with seq = next message seq (kind NODE_SK_SEQ).
   metadata is JSON text or NULL. Returns the statement index or -1. */
int node_ws_message(node_ws_t *ws,
                    const uint8_t id[16],
                    const char *role,
                    const char *content,
                    const char *status,
                    const char *metadata);
/* Appends an event insert with seq = next event seq. action is JSON text (NULL = {});
   msg_id embeds that message as action.message, with_conv the conversation. */
int node_ws_event(node_ws_t *ws,
                  const char *type,
                  const char *source,
                  const char *action,
                  const uint8_t *msg_id,
                  bool with_conv);
/* Appends the final conversation update: counters, messages added by this write set,
   status (-1 = unchanged). Sets ws->touch_stmt. */
int node_ws_touch(node_ws_t *ws, int status);
/* Event source JSON: {"kind":"user","id":<team>} / {"kind":"actor","id":"echo"}. */
void node_user_source(const node_actor_t *actor, char out[96]);
#define NODE_ACTOR_SOURCE "{\"kind\":\"actor\",\"id\":\"echo\"}"
/* Gives up a write set being built: restores the actor's counters, answers its
   request with status/code/message (400 with field when code is NULL), frees it. */
void node_ws_abort(
    node_t *node, node_ws_t **ws_p, int status, const char *code, const char *message);
/* Finishes a write set: adds the idempotency insert when the request carries a key,
   pins the actor (NODE_AF_COMMITTING) and submits it to the group commit. Takes ws. */
void node_ws_finish(node_t *node, node_ws_t **ws_p);

/* ---- turns (node_turn.c) and echo (node_echo.c) ------------------------------------------ */

/* True when a message posted by this write (whose running turn ends with end) starts a
   turn at once: nothing runs, nothing waits, no back-off, conversation open. */
bool node_turn_posted_starts(const node_t *node, const node_actor_t *actor, int end);
/* Adds the statements ending the running turn (how) to ws; plan.end set. */
int node_turn_add_end(node_t *node, node_ws_t *ws, node_end_t how);
/* Decides whether a turn starts with this write (after its end and post effects) and
   adds its statements (the posted message's, whose id is plan.user_id, or the queue
   head's); otherwise a posted message is enqueued. Returns 0 or -1 (OOM). */
int node_turn_plan_next(node_t *node, node_ws_t *ws, bool posted);
/* Applies a committed plan to the actor's turns (start streaming, queue...). */
void node_turn_apply(node_t *node, node_actor_t *actor, node_plan_t *plan);
/* Internal writes the actor owes (a turn end, a start after back-off): builds and
   submits one if due. Returns true when a write was submitted. */
bool node_turn_pending_write(node_t *node, node_actor_t *actor);
/* Status after a write given the plan (for the touch statement). */
int node_turn_status_after(const node_actor_t *actor, const node_plan_t *plan);
/* Appends a stored pending user message to the actor's queue (turn recovery). 0 or -1. */
int node_turn_enqueue(node_actor_t *actor, const uint8_t user_id[16], const char *content);

/* Echo strategy: one scheduler step of the running turn (stream deltas, detect end). */
void node_echo_step(node_t *node, node_actor_t *actor);
/* Prepares a starting turn's reply from the user content. */
int node_echo_begin(node_t *node, node_actor_t *actor, const char *content);
/* Words (runs of non-space) in text. */
uint32_t node_echo_words(const char *text);
/* Publishes reply as the message.delta events of assistant message asst_id, numbered
   from 0 (one per word with its leading whitespace), as node_echo_step does. */
void node_echo_deltas(node_t *node,
                      node_actor_t *actor,
                      const uint8_t asst_id[16],
                      const char *reply);
/* Whether the strategy named name (NULL = the default, "echo") is an echo strategy. */
bool node_echo_is(const char *name);
/* Sets or clears NODE_AF_ECHO from the conversation's stored strategy (NULL: clears). */
void node_actor_set_echo(node_actor_t *actor, const char *strategy);

/* Scheduler callback: an actor's wake-up is due. */
void node_actor_wake(node_t *node, node_actor_t *actor);

/* ---- ops (node_ops_*.c) ------------------------------------------------------------------ */

/* The op table and its lookup (NULL when unknown). */
const node_op_t *node_op_find(const char *name);

void node_op_auth(node_t *node, node_req_t *req);
void node_op_status(node_t *node, node_req_t *req);
void node_op_conv_list(node_t *node, node_req_t *req);
void node_op_events_list(node_t *node, node_req_t *req);
void node_op_conv_get(node_t *node, node_req_t *req);
void node_op_msg_list(node_t *node, node_req_t *req);
void node_op_conv_create(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_patch(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_delete(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_conv_cancel(node_t *node, node_actor_t *actor, node_req_t *req);
void node_op_msg_post(node_t *node, node_actor_t *actor, node_req_t *req);

/* Validates the conversation fields of obj (create); NULL or the bad field's name. */
const char *node_conv_check_create(const json_t *obj);
/* Adds the conversation insert (+ worktree check) and conversation.created for the
   (validated) fields of obj. Returns 0 or -1 (OOM). */
int node_conv_add_create(node_ws_t *ws, const json_t *obj);

/* ---- helpers (node_json.c, node_cursor.c) ------------------------------------------------ */

/* A growable byte buffer for reply bodies. */
typedef struct {
    char *data; /* NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed */
} node_buf_t;

/* Renders the message inserted by statement stmt (a NODE_Q_MSG_INSERT of ws) into b: its
   parameters, the set's time, and metadata (NULL: the parameter's text). node_write.c */
void node_ws_render_msg(const node_ws_t *ws, int stmt, const char *metadata, node_buf_t *b);
void node_buf_init(node_buf_t *b);
void node_buf_add(node_buf_t *b, const char *s, size_t n);
void node_buf_str(node_buf_t *b, const char *s);
/* Appends s as a JSON string literal (quoted, escaped). */
void node_buf_json_str(node_buf_t *b, const char *s);
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
