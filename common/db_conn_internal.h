/*  db_conn internals shared by db_conn.c (connection state machine),
    db_conn_batch.c (batches: build, send, read results, fail) and db_result.c.
    Owner-thread only, like the public API. Only db_*.c include this file. */
#ifndef BICKY_DB_CONN_INTERNAL_H
#define BICKY_DB_CONN_INTERNAL_H

#include "common/db_conn.h"

#include <libpq-fe.h>
#include <stdint.h>

#define DB_BACKOFF_MIN_MS 100 /* first reconnect delay */
#define DB_BACKOFF_MAX_MS                                                                          \
    1600                            /* reconnect delay cap (doubling from the minimum): a          \
                                       database back after a long outage is found in time */
#define DB_CONNECT_TIMEOUT_MS 5000  /* a connect attempt that takes longer fails */
#define DB_MAX_QUEUED         10000 /* queued-but-unsent batches; beyond it fail fast */
#define DB_MAX_IN_FLIGHT      128   /* sent batches awaiting their sync; bounds libpq buffers */
#define DB_WARN_INTERVAL_MS   1000  /* at most one "queue full" warning per interval */
#define DB_ERRMSG_MAX         256   /* kept copy of the reason a connection broke */
#define DB_DEADLINE_CHECK_MS  100   /* how often the answer deadline is checked */

typedef enum {
    DB_STATE_DOWN,       /* no connection; a retry timer is armed (or destroying) */
    DB_STATE_CONNECTING, /* PQconnectPoll in progress */
    DB_STATE_PREPARING,  /* connected, prepared statements sent, waiting for their syncs */
    DB_STATE_READY       /* connected and prepared: batches are sent */
} db_state_t;

/* One statement of a batch (or one PQsendPrepare of an internal batch). */
typedef struct {
    char *name;     /* prepared statement name, or NULL for literal sql */
    char *sql;      /* literal sql (or the text to prepare); NULL when name is used */
    int nparams;    /* number of entries in params */
    char **params;  /* owned text values; a NULL entry is SQL NULL */
    bool prepare;   /* true: PQsendPrepare(name, sql) instead of executing */
    db_stmt_fn *cb; /* per-statement callback, may be NULL */
    void *arg;      /* cb's argument */
} db_stmt_t;

struct db_batch_t {
    db_conn_t *conn;     /* connection it belongs to (borrowed) */
    bool transactional;  /* wrapped in BEGIN … COMMIT */
    bool internal;       /* sent by the connection itself (prepare, cleanup) */
    bool rollback_first; /* its segment starts with ROLLBACK (see db_conn_send_batch) */
    db_stmt_t *stmts;    /* statements, in order */
    size_t n;            /* statements used */
    size_t cap;          /* statements allocated */
    db_batch_fn *done;   /* batch callback, may be NULL */
    void *arg;           /* done's argument */
    size_t next_query;   /* index of the next query result expected (ROLLBACK, BEGIN,
                            COMMIT count as queries) */
    db_status_t status;  /* first failure so far, DB_OK if none */
    char *error;         /* message of the first failure (owned), NULL if none */
    char sqlstate[6];    /* SQLSTATE of the first failure, "" if none or unknown */
    db_batch_t *next;    /* next batch in whichever queue holds this one */
};

/* A FIFO of batches linked through db_batch_t.next. */
typedef struct {
    db_batch_t *head; /* oldest */
    db_batch_t *tail; /* newest */
    size_t size;      /* number of batches */
} db_queue_t;

/* A statement registered with db_conn_prepare. */
typedef struct {
    char *name;  /* statement name (owned) */
    char *sql;   /* statement text (owned) */
    int nparams; /* declared parameter count (types are inferred by the server) */
} db_prep_t;

struct db_result_t {
    PGresult *pg; /* borrowed for the duration of a statement callback */
};

struct db_conn_t {
    zloop_t *loop;                /* loop we run on (borrowed) */
    char *conninfo;               /* owned copy; never logged (it may hold a password) */
    PGconn *pg;                   /* current connection, NULL when down */
    db_state_t state;             /* see db_state_t */
    int fd;                       /* socket registered with the loop, -1 when none */
    short events;                 /* ZMQ_POLLIN/ZMQ_POLLOUT interest registered for fd */
    bool flush_pending;           /* PQflush returned 1: wait for writability */
    bool broken;                  /* a failure was seen; lost_timer will tear down */
    bool destroying;              /* db_conn_destroy is running: arm no timers */
    bool block_open;              /* the last segment sent leaves the session inside a
                                     transaction block: the next one starts with ROLLBACK */
    int dispatching;              /* depth of user callbacks running (destroy asserts 0) */
    int backoff_ms;               /* delay before the next reconnect attempt */
    unsigned attempts;            /* failed connect attempts since the last success */
    int retry_timer;              /* reconnect timer id, -1 when not armed */
    int connect_timer;            /* connect timeout timer id, -1 when not armed */
    int fail_timer;               /* zero-delay timer failing `failing`, -1 when not armed */
    int lost_timer;               /* zero-delay timer handling `broken`, -1 when not armed */
    int read_timer;               /* zero-delay timer reading buffered results, -1 if not */
    char lost_why[DB_ERRMSG_MAX]; /* reason recorded by db_conn_broken */
    db_prep_t *preps;             /* registered prepared statements */
    size_t n_preps;               /* entries used in preps */
    size_t cap_preps;             /* entries allocated in preps */
    db_queue_t pending;           /* submitted, not yet sent (bounded by DB_MAX_QUEUED) */
    db_queue_t in_flight;         /* sent, waiting for their PGRES_PIPELINE_SYNC */
    db_queue_t failing;           /* to be failed with DB_ERR_CONN from fail_timer */
    int64_t last_warn_ms;         /* when the last "queue full" warning was logged */
    size_t dropped;               /* batches refused since that warning */
    int deadline_ms;              /* answer deadline of sent work (<= 0: none) */
    int deadline_timer;           /* periodic check of the deadline, -1 when not armed */
    int64_t heard_ms;             /* last input from the server, or when waiting began */
};

/* Queue helpers. */
void db_queue_push(db_queue_t *q, db_batch_t *b);
db_batch_t *db_queue_pop(db_queue_t *q);
/* Moves every batch of from into a returned queue and empties from. */
db_queue_t db_queue_take(db_queue_t *from);

/* Frees a batch without calling anything. */
void db_batch_free(db_batch_t *b);
/* Queries in b's segment: [ROLLBACK] [BEGIN] statements [COMMIT BEGIN]. */
size_t db_batch_queries(const db_batch_t *b);
/* Statement index of query q of b, or -1 for the ROLLBACK/BEGIN/COMMIT around them. */
long db_batch_stmt_index(const db_batch_t *b, size_t q);
/* Records the first failure of b (msg and state are copied; NULL state means ""). */
void db_batch_note_failure(db_batch_t *b, db_status_t status, const char *msg, const char *state);
/* Calls statement i's callback (res borrowed, NULL unless DB_OK). */
void db_batch_call_stmt(db_batch_t *b, size_t i, db_status_t status, const db_result_t *res);
/* Calls the batch callback with b's overall status. */
void db_batch_call_done(db_batch_t *b);
/* Creates an internal batch that prepares one registered statement; NULL on OOM. */
db_batch_t *db_batch_new_prepare(db_conn_t *conn, const db_prep_t *prep, db_batch_fn *done);
/* Sends queued batches while the connection is ready and not back-pressured. */
void db_conn_send_pending(db_conn_t *self);
/* Pushes b on in_flight and sends its segment; -1 when libpq refused (the connection
   is broken). */
int db_conn_send_batch(db_conn_t *self, db_batch_t *b);
/* Reads every available result and completes batches; returns -1 if the connection broke. */
int db_conn_read_results(db_conn_t *self);
/* Calls the remaining statement callbacks and the batch callback with status, frees b. */
void db_batch_fail(db_batch_t *b, db_status_t status, const char *why);
/* Fails every batch of q (in order) with DB_ERR_CONN. */
void db_queue_fail(db_queue_t *q, const char *why);
/* Fails b with DB_ERR_CONN (message why) from a zero-delay timer (or from destroy). */
void db_conn_fail_later(db_conn_t *self, db_batch_t *b, const char *why);
/* Records a failure seen while sending; the teardown runs from a zero-delay timer so
   that no callback runs inside db_batch_submit or while results are being read. */
void db_conn_broken(db_conn_t *self, const char *why);
/* Flushes libpq's output; notes back-pressure; calls db_conn_broken on error. */
void db_conn_flush(db_conn_t *self);
/* Arms the read timer when libpq already holds results (it reads input while a send
   would block, so the socket may never become readable for them). Never calls back. */
void db_conn_kick(db_conn_t *self);
/* Registers the socket with the interest the current state needs. */
void db_conn_update_poller(db_conn_t *self);

#endif
