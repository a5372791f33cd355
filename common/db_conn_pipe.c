/*  db_conn pipeline: send batches as pipeline segments (with back-pressure),
    flush, and match results to statements in order until each segment's
    PGRES_PIPELINE_SYNC. Owner-thread only (the thread running the zloop). */
#define LOG_MODULE "db_conn"
#include "common/db_conn_internal.h"
#include "common/log.h"
#include "common/util.h"

#include <string.h>

/* --- sending ----------------------------------------------------------------------------- */

static int s_send_sql(PGconn *pg, const char *sql)
{
    return PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

static int s_send_stmt(PGconn *pg, const db_stmt_t *s)
{
    const char *const *params = (const char *const *)s->params;
    if (s->prepare) {
        return PQsendPrepare(pg, s->name, s->sql, 0, NULL);
    }
    if (s->name) {
        return PQsendQueryPrepared(pg, s->name, s->nparams, params, NULL, NULL, 0);
    }
    return PQsendQueryParams(pg, s->sql, s->nparams, NULL, params, NULL, NULL, 0);
}

/* A failed statement makes the server skip everything up to the sync, COMMIT included,
   so a failed BEGIN … COMMIT leaves the session in an aborted block (libpq docs,
   pipeline mode) and would poison every segment already sent after it. Hence a
   transactional segment ends with COMMIT and a second BEGIN: whether it committed or
   failed, the session is then inside a block (empty or aborted), and the next segment
   opens with a ROLLBACK that is always valid and silent. When nothing follows, the
   sync handler sends a lone ROLLBACK segment. */
int db_conn_send_batch(db_conn_t *self, db_batch_t *b)
{
    PGconn *pg = self->pg;
    if (!self->in_flight.head) {
        self->heard_ms = util_mono_ms(); /* the answer deadline runs from now */
    }
    db_queue_push(&self->in_flight, b);
    b->rollback_first = self->block_open;
    self->block_open = b->transactional;
    if (b->rollback_first && !s_send_sql(pg, "ROLLBACK")) {
        return -1;
    }
    if (b->transactional && !s_send_sql(pg, "BEGIN")) {
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!s_send_stmt(pg, &b->stmts[i])) {
            return -1;
        }
    }
    if (b->transactional && (!s_send_sql(pg, "COMMIT") || !s_send_sql(pg, "BEGIN"))) {
        return -1;
    }
    return PQpipelineSync(pg) == 1 ? 0 : -1;
}

/* Closes the block left by the last transactional segment when nothing follows it. */
static void s_send_rollback(db_conn_t *self)
{
    db_batch_t *c = db_batch_new(self, false);
    if (!c) {
        db_conn_broken(self, "out of memory");
        return;
    }
    c->internal = true;
    if (db_conn_send_batch(self, c) != 0) {
        db_conn_broken(self, PQerrorMessage(self->pg));
        return;
    }
    db_conn_flush(self);
}

void db_conn_flush(db_conn_t *self)
{
    int rc = PQflush(self->pg);
    if (rc < 0) {
        db_conn_broken(self, PQerrorMessage(self->pg));
        return;
    }
    self->flush_pending = rc == 1;
}

void db_conn_send_pending(db_conn_t *self)
{
    if (self->state != DB_STATE_READY || self->broken) {
        return;
    }
    bool sent = false;
    /* Stop while libpq still holds unsent output: the socket is full, so queueing more
       would only grow libpq's buffer. Writability resumes sending. */
    while (self->pending.head && self->in_flight.size < DB_MAX_IN_FLIGHT && !self->flush_pending) {
        db_batch_t *b = db_queue_pop(&self->pending);
        if (db_conn_send_batch(self, b) != 0) {
            db_conn_broken(self, PQerrorMessage(self->pg));
            return;
        }
        db_conn_flush(self);
        if (self->broken) {
            return;
        }
        sent = true;
    }
    if (sent) {
        db_conn_kick(self);
        db_conn_update_poller(self);
    }
}

/* --- results ----------------------------------------------------------------------------- */

static bool s_conn_sqlstate(const char *state)
{
    /* Class 08 (connection exception) and 57P01..57P03 (admin/crash shutdown, cannot
       connect now) mean the session is going away, not that the statement was wrong. */
    return state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0);
}

static db_status_t s_map_status(db_conn_t *self, const PGresult *r)
{
    switch (PQresultStatus(r)) {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
            return DB_OK;
        case PGRES_PIPELINE_ABORTED:
            return DB_ERR_ABORTED;
        default:
            break;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQstatus(self->pg) == CONNECTION_BAD || s_conn_sqlstate(state)) {
        return DB_ERR_CONN;
    }
    return DB_ERR_QUERY;
}

static void s_on_result(db_conn_t *self, db_batch_t *b, PGresult *r)
{
    size_t q = b->next_query;
    db_status_t st = s_map_status(self, r);
    if (q >= db_batch_queries(b)) {
        /* An error after the last query is the implicit commit at the sync failing
           (e.g. a deferred constraint in a plain batch). */
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (st != DB_OK) {
            db_batch_note_failure(b, st, msg ? msg : PQresultErrorMessage(r),
                                  PQresultErrorField(r, PG_DIAG_SQLSTATE));
        }
        return;
    }
    b->next_query++;
    long i = db_batch_stmt_index(b, q);
    if (st == DB_ERR_QUERY || st == DB_ERR_CONN) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (!msg) {
            msg = PQresultErrorMessage(r);
        }
        db_batch_note_failure(b, st, msg, PQresultErrorField(r, PG_DIAG_SQLSTATE));
        if (i >= 0 && b->stmts[i].prepare) {
            LOG_E("prepare failed name=%s sqlstate=%s: %s", b->stmts[i].name, b->sqlstate,
                  b->error);
        }
    } else if (st == DB_ERR_ABORTED) {
        db_batch_note_failure(b, st, "aborted by an earlier failure in the pipeline", "");
    }
    if (i >= 0) {
        db_result_t res = {r};
        db_batch_call_stmt(b, (size_t)i, st, st == DB_OK ? &res : NULL);
    }
}

static void s_on_sync(db_conn_t *self)
{
    db_batch_t *b = db_queue_pop(&self->in_flight);
    if (!self->in_flight.head && self->block_open && !self->broken) {
        /* Sent before any batch its callback may submit. */
        s_send_rollback(self);
    }
    if (b->next_query < db_batch_queries(b)) {
        /* The server never skips a query before a sync; be safe if it ever seemed to. */
        LOG_W("sync before all results: got=%zu expected=%zu", b->next_query, db_batch_queries(b));
        db_batch_fail(b, DB_ERR_ABORTED, "missing results");
        return;
    }
    db_batch_call_done(b);
    db_batch_free(b);
}

int db_conn_read_results(db_conn_t *self)
{
    int nulls = 0;
    /* A NULL only separates one query's results from the next; a batch ends at its
       PGRES_PIPELINE_SYNC. */
    while (self->in_flight.head && !self->broken && !PQisBusy(self->pg)) {
        PGresult *r = PQgetResult(self->pg);
        if (!r) {
            if (++nulls >= 2) {
                /* libpq has nothing queued while we still wait for a batch: out of step.
                   Reconnecting is the only way back to a known state. */
                db_conn_broken(self, "pipeline out of step with libpq");
                return -1;
            }
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            s_on_sync(self);
        } else {
            s_on_result(self, self->in_flight.head, r);
            PQclear(r);
        }
    }
    if (self->broken) {
        return -1;
    }
    if (PQstatus(self->pg) == CONNECTION_BAD) {
        db_conn_broken(self, PQerrorMessage(self->pg));
        return -1;
    }
    return 0;
}
