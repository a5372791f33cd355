/*  db_conn batches: build them, queue them (bounded), call their callbacks,
    and fail them when the connection is down or goes away. Sending and reading
    results is db_conn_pipe.c. Owner-thread only (the thread running the zloop). */
#define LOG_MODULE "db_conn"
#include "common/db_conn_internal.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* --- queues ------------------------------------------------------------------------------ */

void db_queue_push(db_queue_t *q, db_batch_t *b)
{
    b->next = NULL;
    if (q->tail) {
        q->tail->next = b;
    } else {
        q->head = b;
    }
    q->tail = b;
    q->size++;
}

db_batch_t *db_queue_pop(db_queue_t *q)
{
    db_batch_t *b = q->head;
    if (b) {
        q->head = b->next;
        if (!q->head) {
            q->tail = NULL;
        }
        q->size--;
        b->next = NULL;
    }
    return b;
}

db_queue_t db_queue_take(db_queue_t *from)
{
    db_queue_t q = *from;
    memset(from, 0, sizeof *from);
    return q;
}

/* --- building ---------------------------------------------------------------------------- */

static void s_stmt_free(db_stmt_t *s)
{
    free(s->name);
    free(s->sql);
    for (int i = 0; i < s->nparams; i++) {
        free(s->params[i]);
    }
    free(s->params);
}

void db_batch_free(db_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        s_stmt_free(&b->stmts[i]);
    }
    free(b->stmts);
    free(b->error);
    free(b);
}

db_batch_t *db_batch_new(db_conn_t *conn, bool transactional)
{
    assert(conn);
    db_batch_t *b = calloc(1, sizeof *b);
    if (!b) {
        LOG_E("out of memory");
        return NULL;
    }
    b->conn = conn;
    b->transactional = transactional;
    b->status = DB_OK;
    return b;
}

static db_stmt_t *s_stmt_slot(db_batch_t *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        db_stmt_t *stmts = realloc(b->stmts, cap * sizeof *stmts);
        if (!stmts) {
            return NULL;
        }
        b->stmts = stmts;
        b->cap = cap;
    }
    db_stmt_t *s = &b->stmts[b->n];
    memset(s, 0, sizeof *s);
    return s;
}

static int s_copy_params(db_stmt_t *s, int nparams, const char *const *params)
{
    if (nparams == 0) {
        return 0;
    }
    s->params = calloc((size_t)nparams, sizeof *s->params);
    if (!s->params) {
        return -1;
    }
    s->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        if (params[i] && !(s->params[i] = strdup(params[i]))) {
            return -1;
        }
    }
    return 0;
}

int db_batch_add(db_batch_t *batch,
                 const char *name,
                 const char *sql,
                 int nparams,
                 const char *const *params,
                 db_stmt_fn *cb,
                 void *arg)
{
    assert(batch);
    assert(name || sql);
    assert(nparams >= 0 && (nparams == 0 || params));
    db_stmt_t *s = s_stmt_slot(batch);
    if (!s) {
        LOG_E("out of memory");
        return -1;
    }
    s->cb = cb;
    s->arg = arg;
    s->name = name ? strdup(name) : NULL;
    s->sql = name ? NULL : strdup(sql);
    if ((name && !s->name) || (!name && !s->sql) || s_copy_params(s, nparams, params) != 0) {
        s_stmt_free(s);
        LOG_E("out of memory");
        return -1;
    }
    batch->n++;
    return 0;
}

db_batch_t *db_batch_new_prepare(db_conn_t *conn, const db_prep_t *prep, db_batch_fn *done)
{
    db_batch_t *b = db_batch_new(conn, false);
    if (!b) {
        return NULL;
    }
    db_stmt_t *s = s_stmt_slot(b);
    if (!s) {
        db_batch_free(b);
        return NULL;
    }
    s->name = strdup(prep->name);
    s->sql = strdup(prep->sql);
    s->nparams = 0; /* parameter types are left to the server; nparams is informative */
    s->prepare = true;
    b->internal = true;
    b->n = 1;
    b->done = done;
    b->arg = conn;
    if (!s->name || !s->sql) {
        db_batch_free(b);
        return NULL;
    }
    return b;
}

size_t db_batch_size(const db_batch_t *batch)
{
    assert(batch);
    return batch->n;
}

void db_batch_destroy(db_batch_t **batch_p)
{
    assert(batch_p);
    if (*batch_p) {
        db_batch_free(*batch_p);
        *batch_p = NULL;
    }
}

/* --- failing ----------------------------------------------------------------------------- */

/* Queries in a batch's segment, in order: [ROLLBACK] [BEGIN] statements [COMMIT BEGIN]. */
static size_t s_pre(const db_batch_t *b)
{
    return (b->rollback_first ? 1 : 0) + (b->transactional ? 1 : 0);
}

size_t db_batch_queries(const db_batch_t *b)
{
    return s_pre(b) + b->n + (b->transactional ? 2 : 0);
}

/* Statement index of query q, or -1 for the ROLLBACK/BEGIN/COMMIT around them. */
long db_batch_stmt_index(const db_batch_t *b, size_t q)
{
    size_t pre = s_pre(b);
    return q >= pre && q < pre + b->n ? (long)(q - pre) : -1;
}

void db_batch_note_failure(db_batch_t *b, db_status_t status, const char *msg, const char *state)
{
    if (b->status != DB_OK) {
        return;
    }
    b->status = status;
    b->error = strdup(msg && *msg ? msg : "unknown error");
    snprintf(b->sqlstate, sizeof b->sqlstate, "%s", state ? state : "");
}

void db_batch_call_stmt(db_batch_t *b, size_t i, db_status_t status, const db_result_t *res)
{
    db_stmt_t *s = &b->stmts[i];
    if (s->cb) {
        db_conn_t *conn = b->conn;
        conn->dispatching++;
        s->cb(s->arg, status, res);
        conn->dispatching--;
    }
}

void db_batch_call_done(db_batch_t *b)
{
    if (b->done) {
        db_conn_t *conn = b->conn;
        bool ok = b->status == DB_OK;
        const char *err = ok ? NULL : (b->error ? b->error : "unknown error");
        conn->dispatching++;
        b->done(b->arg, b->status, err, ok ? NULL : b->sqlstate);
        conn->dispatching--;
    }
}

void db_batch_fail(db_batch_t *b, db_status_t status, const char *why)
{
    db_batch_note_failure(b, status, why, "");
    for (size_t q = b->next_query; q < db_batch_queries(b); q++) {
        long i = db_batch_stmt_index(b, q);
        if (i >= 0) {
            db_batch_call_stmt(b, (size_t)i, status, NULL);
        }
    }
    b->next_query = db_batch_queries(b);
    db_batch_call_done(b);
    db_batch_free(b);
}

void db_queue_fail(db_queue_t *q, const char *why)
{
    db_batch_t *b;
    while ((b = db_queue_pop(q))) {
        db_batch_fail(b, DB_ERR_CONN, why);
    }
}

static int s_on_fail_timer(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    self->fail_timer = -1; /* one-shot */
    db_queue_t q = db_queue_take(&self->failing);
    db_queue_fail(&q, "not connected");
    return 0;
}

void db_conn_fail_later(db_conn_t *self, db_batch_t *b, const char *why)
{
    db_batch_note_failure(b, DB_ERR_CONN, why, "");
    db_queue_push(&self->failing, b);
    if (!self->destroying && self->fail_timer < 0) {
        self->fail_timer = zloop_timer(self->loop, 0, 1, s_on_fail_timer, self);
        if (self->fail_timer < 0) {
            LOG_E("cannot arm the failure timer; failing batches when the connection is closed");
        }
    }
}

/* --- submitting and sending -------------------------------------------------------------- */

static bool s_queue_full(db_conn_t *self)
{
    if (self->pending.size < DB_MAX_QUEUED) {
        return false;
    }
    self->dropped++;
    int64_t now = util_mono_ms();
    if (now - self->last_warn_ms >= DB_WARN_INTERVAL_MS) {
        LOG_W("queue full: refusing batches queued=%zu in_flight=%zu refused=%zu",
              self->pending.size, self->in_flight.size, self->dropped);
        self->last_warn_ms = now;
        self->dropped = 0;
    }
    return true;
}

void db_batch_submit(db_batch_t **batch_p, db_batch_fn *done, void *arg)
{
    assert(batch_p);
    db_batch_t *b = *batch_p;
    if (!b) {
        return;
    }
    *batch_p = NULL;
    db_conn_t *self = b->conn;
    b->done = done;
    b->arg = arg;
    if (self->state == DB_STATE_DOWN) {
        db_conn_fail_later(self, b, "not connected");
        return;
    }
    if (s_queue_full(self)) {
        db_conn_fail_later(self, b, "queue full");
        return;
    }
    db_queue_push(&self->pending, b);
    db_conn_send_pending(self);
}
