/*  db_conn — one asynchronous libpq connection driven by a zloop, in
    pipeline mode. Never blocks the loop: connects with PQconnectStart/Poll,
    sends with PQsendQueryPrepared/Params, reads when the socket is readable,
    and reconnects with back-off when the connection is lost (pending work
    fails with DB_ERR_CONN while it is down). Owner-thread only.

    Work is sent as batches. A batch is an ordered list of statements sent in
    one pipeline with one PQpipelineSync. A transactional batch is wrapped in
    BEGIN … COMMIT, so it commits or fails as a whole (group commit); a plain
    batch runs each statement in the implicit transaction of the sync.
    Several batches may be in flight; they complete in submission order.
    Only this module (and other db_*.c files) include <libpq-fe.h>. */
#ifndef BICKY_DB_CONN_H
#define BICKY_DB_CONN_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define DB_ANSWER_DEADLINE_MS 10000 /* default of db_conn_set_deadline */

typedef struct db_conn_t db_conn_t;
typedef struct db_batch_t db_batch_t;
typedef struct db_result_t db_result_t;

typedef enum {
    DB_OK = 0,
    DB_ERR_CONN = -1,   /* not connected / connection lost: retry later (503) */
    DB_ERR_QUERY = -2,  /* the statement failed (constraint, syntax…); see sqlstate */
    DB_ERR_ABORTED = -3 /* an earlier statement of the same batch failed */
} db_status_t;

/* Called once per statement, in order, when its result is known. res is
   borrowed for the duration of the call (NULL unless status == DB_OK).
   For a transactional batch a DB_OK statement result is not yet committed:
   act on it in the batch callback. */
typedef void(db_stmt_fn)(void *arg, db_status_t status, const db_result_t *res);
/* Called once per batch after its sync: DB_OK when every statement (and the
   COMMIT) succeeded; otherwise the first failure, with its message and
   SQLSTATE (borrowed strings, valid during the call). error and sqlstate are
   NULL on DB_OK and never NULL otherwise; sqlstate is "" when the failure did
   not come from the server (DB_ERR_CONN: not connected, queue full, lost). */
typedef void(db_batch_fn)(void *arg, db_status_t status, const char *error, const char *sqlstate);

/* Creates the connection and starts connecting on loop. conninfo is copied.
   Prepared statements registered with db_conn_prepare are (re)prepared after
   every (re)connect. Returns NULL on OOM. */
db_conn_t *db_conn_new(zloop_t *loop, const char *conninfo);
/* Fails everything pending with DB_ERR_CONN (callbacks run inside this call),
   closes, removes its poller and timers from the loop, frees, nulls *self_p.
   Call it after zloop_start returns or from a socket handler: not from one of
   this connection's callbacks (asserted), nor from a zloop timer handler (czmq
   may still run, in the same pass, a timer or poller just removed). */
void db_conn_destroy(db_conn_t **self_p);
/* Registers a named prepared statement (name and sql are copied). Call before
   or after connecting; returns 0 or -1 (duplicate name, OOM). */
int db_conn_prepare(db_conn_t *self, const char *name, const char *sql, int nparams);
/* True while connected and prepared (new batches will be sent now). */
bool db_conn_ready(const db_conn_t *self);
/* How long sent work may wait for any byte from the server (DB_ANSWER_DEADLINE_MS by
   default; <= 0: no limit). Past it the connection is declared lost, as when the socket
   fails: every batch in flight or queued fails with DB_ERR_CONN ("no answer from the
   database within N ms") and it reconnects with back-off. It must exceed the longest
   statement (a server that computes sends nothing meanwhile). */
void db_conn_set_deadline(db_conn_t *self, int ms);
/* Batches sent and not yet completed. */
size_t db_conn_in_flight(const db_conn_t *self);

/* Starts a batch; transactional wraps it in BEGIN/COMMIT. Never NULL-safe to
   ignore: returns NULL on OOM. */
db_batch_t *db_batch_new(db_conn_t *conn, bool transactional);
/* Appends a statement: the name of a prepared statement, or (when name is
   NULL) literal sql with $n parameters. params are copied (text format; a
   NULL entry is SQL NULL). cb may be NULL. Returns 0 or -1 on OOM. Never add
   BEGIN/COMMIT/ROLLBACK yourself: use a transactional batch (docs/db.md). */
int db_batch_add(db_batch_t *batch,
                 const char *name,
                 const char *sql,
                 int nparams,
                 const char *const *params,
                 db_stmt_fn *cb,
                 void *arg);
/* Statements in the batch so far. */
size_t db_batch_size(const db_batch_t *batch);
/* Sends the batch (takes ownership; nulls *batch_p). When the connection is
   down, every statement callback and then done are called with DB_ERR_CONN
   from a zero-delay loop timer, never from inside this call. */
void db_batch_submit(db_batch_t **batch_p, db_batch_fn *done, void *arg);
/* Drops an unsubmitted batch; accepts NULL. */
void db_batch_destroy(db_batch_t **batch_p);

/* Result accessors (borrowed res; strings valid during the callback). */
int db_result_rows(const db_result_t *res);
int db_result_cols(const db_result_t *res);
/* Text value of row/col, or NULL for SQL NULL or out of range. */
const char *db_result_value(const db_result_t *res, int row, int col);
/* Rows affected by INSERT/UPDATE/DELETE (0 when not applicable). */
long db_result_affected(const db_result_t *res);

#endif
