/*  node_store — how the node writes and reads Postgres: the prepared statements,
    write sets (the statements of one actor's change, committed together), the
    group commit that sends every write set of a loop turn as one transaction,
    and the rendering of rows as API JSON. Loop thread only (rendering: any). */
#ifndef BICKY_NODE_STORE_H
#define BICKY_NODE_STORE_H

#include "common/db_conn.h"
#include "node/core/node_core.h"

#include <stdbool.h>

/* ---- statements (node_sql.c) ----------------------------------------------------------- */

/* Registers every prepared statement on db. -1 on failure. */
int node_sql_prepare(db_conn_t *db);
/* Named result columns and parameters of the statements whose results are read by
   position (node_sql.c keeps each statement's SQL in this order). */
typedef enum { /* NODE_Q_CONV_LOAD: the row an actor is activated from */
               NODE_LOAD_STATUS,
               NODE_LOAD_ON_BUSY,
               NODE_LOAD_MSG_SEQ,
               NODE_LOAD_EVT_SEQ,
               NODE_LOAD_ECHO_DELAY,
               NODE_LOAD_ECHO_FAIL,
               NODE_LOAD_STRATEGY,
               NODE_LOAD_OBSERVED /* "t" when observers are attached */
} node_load_col_t;
typedef enum { /* NODE_Q_CONV_TOUCH / _TOUCH_LITE (and each row of NODE_Q_TOUCH_MULTI
                  after its id): what a write set leaves the actor with */
               NODE_TOUCH_CONV_JSON, /* the conversation's JSON (NULL in the lite touch) */
               NODE_TOUCH_STATUS,
               NODE_TOUCH_ON_BUSY,
               NODE_TOUCH_ECHO_DELAY,
               NODE_TOUCH_ECHO_FAIL,
               NODE_TOUCH_STRATEGY
} node_touch_col_t;
typedef enum { /* NODE_Q_IDEM_GET */
               NODE_IDEM_HASH,
               NODE_IDEM_STATUS,
               NODE_IDEM_RESPONSE
} node_idem_col_t;
/* Every event insert (NODE_Q_EVT*, NODE_Q_EVT_PERM...) returns the event id first, then
   (the inserts whose event Postgres renders) the event's JSON; its parameters begin
   team, conversation, seq, type, and end with the time. NODE_Q_EVT and _EMBED go on
   with the source, the action and (_EMBED) the embedded row, rendered by the node. */
#define NODE_EVT_RET_ID   0
#define NODE_EVT_RET_JSON 1
#define NODE_EVT_P_CONV   1
#define NODE_EVT_P_SEQ    2
#define NODE_EVT_P_TYPE   3
#define NODE_EVT_P_SOURCE 4
#define NODE_EVT_P_ACTION 5
#define NODE_EVT_P_EMBED  6

/* Statement names. */
#define NODE_Q_CONV_LOAD       "node_conv_load"
#define NODE_Q_CONV_INSERT     "node_conv_insert"
#define NODE_Q_CONV_PATCH      "node_conv_patch"
#define NODE_Q_CONV_TOUCH      "node_conv_touch"
#define NODE_Q_CONV_TOUCH_LITE "node_conv_touch_lite" /* without the conversation JSON */
#define NODE_Q_CONV_GET        "node_conv_get"
#define NODE_Q_CONV_EXISTS     "node_conv_exists"
#define NODE_Q_CONV_LIST       "node_conv_list"       /* first page */
#define NODE_Q_CONV_LIST_AFTER "node_conv_list_after" /* page after a cursor */
#define NODE_Q_WT_CHECK        "node_wt_check"
#define NODE_Q_MSG_INSERT      "node_msg_insert"
#define NODE_Q_MSG_FINISH      "node_msg_finish"
#define NODE_Q_MSG_START       "node_msg_start"
#define NODE_Q_MSG_CANCEL      "node_msg_cancel_pending"
#define NODE_Q_MSG_LIST        "node_msg_list"
#define NODE_Q_EVT             "node_evt"
#define NODE_Q_EVT_EMBED       "node_evt_embed"   /* embeds a row the same set inserts */
#define NODE_Q_EVT_REV         "node_evt_rev"     /* a reversible event (never merged) */
#define NODE_Q_EVT_MSG_DB      "node_evt_msg_db"  /* message stored earlier */
#define NODE_Q_MSG_MULTI       "node_msg_multi"   /* several NODE_Q_MSG_INSERT (node_ws_merge.c) */
#define NODE_Q_EVT_MULTI       "node_evt_multi"   /* several NODE_Q_EVT / _EMBED */
#define NODE_Q_TOUCH_MULTI     "node_touch_multi" /* touches of several write sets */
#define NODE_Q_EVT_CONV        "node_evt_conv"
#define NODE_Q_EVT_LIST        "node_evt_list"
#define NODE_Q_EVT_TEAM        "node_evt_team"
#define NODE_Q_EVT_GET         "node_evt_get"
#define NODE_Q_IDEM_GET        "node_idem_get"
#define NODE_Q_IDEM_DEL        "node_idem_del"
#define NODE_Q_IDEM_CONV       "node_idem_conv"
#define NODE_Q_IDEM_MSG        "node_idem_msg"
#define NODE_Q_IDEM_TEXT       "node_idem_text"
#define NODE_Q_AUTH            "node_auth"
#define NODE_Q_STATUS          "node_status"
#define NODE_Q_OWN_TIMEOUT     "node_own_timeout" /* claim: lock_timeout of its transaction */
#define NODE_Q_OWN_CLAIMS      "node_own_claims"  /* claims of one loop turn's activations */
#define NODE_Q_OWN_CHECK       "node_own_check"   /* guard: 22012 unless the claim is ours */
#define NODE_Q_OWN_CHECK_MULTI "node_own_check_m" /* one guard for a whole group */
#define NODE_Q_OWN_CREATE      "node_own_create"  /* claim of a conversation created by us */
#define NODE_Q_OWN_RELEASE     "node_own_release" /* passivation: delete our claims */
#define NODE_Q_OWN_CLEANUP     "node_own_cleanup" /* start: delete claims of an earlier run */

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
    bool whole_turn;       /* the strategy wrote the posted message's whole turn here */
    char *whole_reply;     /* that turn's reply text (owned), for its live deltas */
    int64_t submitted_us;  /* mono µs its write set was submitted (metrics) */
} node_plan_t;

typedef enum {
    NODE_REPLY_NONE,  /* internal write (turn end/start): nobody to answer */
    NODE_REPLY_CONV,  /* body = conversation JSON from the touch statement */
    NODE_REPLY_MSG,   /* body = {"message": <user message>} (+ "created") */
    NODE_REPLY_EMPTY, /* body = "{}" (or none for 204) */
    NODE_REPLY_EVENT  /* body = the event inserted by statement msg_stmt */
} node_reply_kind_t;

/* Publishes what streamed live within a write set (a whole turn's deltas), called while
   its stored events are published, right after event statement live_at. */
typedef void(node_ws_live_fn)(node_t *node, const node_ws_t *ws);

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
    node_ws_live_fn *live; /* the strategy's live events, or NULL */
    int live_at;           /* the event statement they follow */
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

/* The ownership guard of the group commit (single activation, docs/placement.md): the
   placement layer's fence implements it and node_server.c installs it, so the store
   knows nothing of claims. Every entry is called on the loop thread. */
typedef struct {
    /* Before a group is sent: deletes the claims released earlier in this loop turn. */
    void (*flush)(node_t *node);
    /* Adds the guards of the write sets from head (linked by next) to batch, ahead of
       their statements; cb(ws) gets a single set's guard result. 0, or -1 on OOM. */
    int (*add_guards)(node_t *node, db_batch_t *batch, node_ws_t *head, db_stmt_fn *cb);
    /* A write set creating its conversation: appends the claim insert. -1 on OOM. */
    int (*add_own)(node_t *node, node_ws_t *ws);
    /* ws committed. */
    void (*committed)(node_t *node, const node_ws_t *ws);
    /* ws failed its guard: another node holds the conversation. */
    void (*lost)(node_t *node, node_ws_t *ws);
} node_guard_t;

/* Creates the group commit; done gets every write set's outcome, guard (borrowed, may be
   NULL: no ownership checks) runs with every group. NULL on OOM. */
node_commit_t *node_commit_new(node_t *node, node_ws_done_fn *done, const node_guard_t *guard);
void node_commit_destroy(node_commit_t **self_p);
/* Adds ws to the current group; the group is sent at the end of this loop turn
   as one transactional batch. Takes ownership. */
void node_commit_submit(node_commit_t *self, node_ws_t **ws_p);
/* A write set creating its conversation claims it in the same transaction (the guard's
   add_own; 0 without a guard). -1 on OOM. */
int node_commit_add_own(node_commit_t *self, node_ws_t *ws);
/* Sends the open group now (graceful stop). */
void node_commit_flush(node_commit_t *self);
/* True when no group is open and none is in flight. */
bool node_commit_idle(const node_commit_t *self);
/* ---- building write sets (node_write.c) ------------------------------------------------- */

/* Appends a message insert with seq = next message seq (kind NODE_SK_SEQ).
   metadata is JSON text or NULL. Returns the statement index or -1. */
int node_ws_message(node_ws_t *ws,
                    const uint8_t id[16],
                    const char *role,
                    const char *content,
                    const char *status,
                    const char *metadata);
/* Appends the insert of a reversible event (API.md revert: its `reversible` is true),
   seq = next event seq; action is the node's compact JSON text. Index or -1 (OOM). */
int node_ws_event_rev(node_ws_t *ws, const char *type, const char *source, const char *action);
/* The JSON of committed event statement stmt into b; NULL when it is none (or OOM). */
const char *node_ws_render_event(const node_ws_t *ws, int stmt, node_buf_t *b);
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

/* Renders the message inserted by statement stmt (a NODE_Q_MSG_INSERT of ws) into b: its
   parameters, the set's time, and metadata (NULL: the parameter's text). node_write.c */
void node_ws_render_msg(const node_ws_t *ws, int stmt, const char *metadata, node_buf_t *b);
/* ---- rendering (node_render.c) ---------------------------------------------------------- */

/*  The API.md JSON of conversations, messages and events, built
    in the node from plain fields (instead of json_build_object/to_char in SQL).

    The output is compact, the one spacing of every JSON body the node sends
    (jansson's JSON_COMPACT): Postgres' json_build_object output for the same
    values with the whitespace outside strings dropped (test_node_render.c
    compares both on the same values):
      {"id":"…","source":"api",…}    keys in API.md order, no space after ':' or ','
    - strings escaped like Postgres' escape_json (\" \\ \b \f \n \r \t, other
      bytes < 0x20 as \u00xx lowercase, everything else verbatim: UTF-8, '/');
    - a NULL const char * renders null (title, worktree_id, an event's
      conversation_id…); *_null flags do the same for numbers;
    - metadata / action / source are jsonb TEXT (Postgres prints it
      {"a": 1, "b": [1, 2]}), inserted compacted (node_buf_json); or, with
      `own`, the compact text the node itself built (jansson) for a row it
      writes, inserted verbatim (no pass over it on the message path);
    - timestamps are given as Postgres timestamptz text output (any DateStyle
      ISO offset, e.g. "2026-11-27 22:59:22.12+00", "… 04:31:27+05:30") and
      rendered "2026-11-27T22:59:22.120Z" (UTC, milliseconds truncated, as
      to_char's MS). An unparsable timestamp (infinity…) renders null, as
      to_char did.

    Two ways to use it:
      1. from values held in memory: fill node_{conv,msg,evt}_fields_t and call
         node_render_{conv,msg,evt};
      2. from a result row: select NODE_{CONV,MSG,EVT}_COLS("alias") (the SQL
         column list, in the order the row readers expect) and call
         node_render_{conv,msg,evt}_row(b, res, row, first_column).
    node_ts_api / node_ts_cursor convert one timestamptz text.

    bicky-node sets PGDATESTYLE=ISO and PGTZ=UTC (node_main.c), so libpq asks
    for them at connect; any other TimeZone works too (offsets applied here).
    Pure functions; any thread. */

typedef struct {
    const char *id, *conversation_id; /* uuid text */
    long long seq;
    const char *role, *content, *status;
    const char *metadata;                /* jsonb text (compacted, unless own) */
    const char *created_at, *updated_at; /* timestamptz text */
    bool own;                            /* metadata is the node's own compact text */
} node_msg_fields_t;

typedef struct {
    const char *id, *source, *type, *title, *strategy, *worktree_id, *status, *on_busy;
    const char *metadata; /* jsonb text (compacted, unless own) */
    long long message_count;
    long long last_event_id;
    bool last_event_id_null;
    const char *created_at, *updated_at; /* timestamptz text */
    bool own;                            /* metadata is the node's own compact text */
} node_conv_fields_t;

typedef struct {
    long long id;
    const char *conversation_id; /* NULL for team events */
    long long seq;
    bool seq_null;
    const char *type;
    const char *source, *action; /* jsonb text (compacted, unless own) */
    const char *embed;           /* own text only: an object joined to action, or NULL */
    bool reversible;
    long long reverted_by;  /* the event.reverted that reverted it, 0 = none */
    const char *created_at; /* timestamptz text */
    bool own;               /* source and action are the node's own compact text */
} node_evt_fields_t;

/* Append one resource's JSON object to b (b->oom set on allocation failure). */
void node_render_msg(node_buf_t *b, const node_msg_fields_t *m);
void node_render_conv(node_buf_t *b, const node_conv_fields_t *c);
void node_render_evt(node_buf_t *b, const node_evt_fields_t *e);

/* Column lists (SQL text; a is the table alias as a string literal) matching the row
   readers below: NODE_*_NCOLS columns each. */
#define NODE_CONV_COLS(a)                                                                          \
    a ".id, " a ".source, " a ".type, " a ".title, " a ".strategy, " a ".worktree_id, " a          \
      ".status, " a ".on_busy, " a ".metadata, " a ".message_count, " a ".last_event_id, " a       \
      ".created_at, " a ".updated_at"
#define NODE_CONV_NCOLS          13
#define NODE_CONV_COL_CREATED_AT 11 /* offset of created_at in NODE_CONV_COLS */
#define NODE_MSG_COLS(a)                                                                           \
    a ".id, " a ".conversation_id, " a ".seq, " a ".role, " a ".content, " a ".status, " a         \
      ".metadata, " a ".created_at, " a ".updated_at"
#define NODE_MSG_NCOLS   9
#define NODE_MSG_COL_SEQ 2 /* offset of seq in NODE_MSG_COLS */
#define NODE_EVT_COLS(a)                                                                           \
    a ".id, " a ".conversation_id, " a ".seq, " a ".type, " a ".source, " a ".action, " a          \
      ".reversible, " a ".created_at, " a ".reverted_by"
#define NODE_EVT_NCOLS  9
#define NODE_EVT_COL_ID 0 /* offset of id in NODE_EVT_COLS */

/* Render row `row` of res whose columns col.. are NODE_*_COLS. */
void node_render_conv_row(node_buf_t *b, const db_result_t *res, int row, int col);
void node_render_msg_row(node_buf_t *b, const db_result_t *res, int row, int col);
void node_render_evt_row(node_buf_t *b, const db_result_t *res, int row, int col);

/* Appends s as a JSON string escaped exactly like Postgres' escape_json; NULL → null. */
void node_render_str(node_buf_t *b, const char *s);

/* Postgres timestamptz text output ("2026-11-27 22:59:22.123456+00", any offset, optional
   " BC") → "2026-11-27T22:59:22.123Z" (UTC, ms truncated, like to_char's MS). Returns the
   length written, or -1 when malformed (out is then ""). */
int node_ts_api(const char *pg, char out[32]);
/* Same, microseconds: the conv.list cursor form "2026-11-27T22:59:22.123456Z". */
int node_ts_cursor(const char *pg, char out[40]);

/* Event JSON as node_sql.c builds it (API.md Event), in Postgres' spacing: the node
   compacts it (node_buf_json) before it sends it. */
#define NODE_TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define NODE_EVT_JSON(e)                                                                           \
    "json_build_object('id', " e ".id, 'conversation_id', " e ".conversation_id, 'seq', " e        \
    ".seq, 'type', " e ".type, 'source', " e ".source, 'action', " e ".action, 'reversible', " e   \
    ".reversible, 'reverted_by', " e ".reverted_by, 'created_at', " NODE_TS(e ".created_at") ")"
/* A permission request (API.md Permission request, plus tool_use_id and updated_input). */

#endif
