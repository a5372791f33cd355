/*  db_conn — the connection side of the async libpq pipeline: connect with
    PQconnectStart/PQconnectPoll on the loop, prepare registered statements,
    watch the socket, tear down on failure and reconnect with back-off.
    Batches live in db_conn_batch.c (building, queueing, callbacks) and
    db_conn_pipe.c (sending segments, reading results).
    Owner-thread only: every function runs on the thread that runs the zloop. */
#define LOG_MODULE "db_conn"
#include "common/db_conn_internal.h"
#include "common/db_schema.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void s_connect_start(db_conn_t *self);
static void s_lost(db_conn_t *self, const char *why);

/* --- poller and timers ------------------------------------------------------------------- */

static int s_on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static void s_set_poller(db_conn_t *self, int fd, short events)
{
    if (fd == self->fd && events == self->events) {
        return;
    }
    if (self->fd >= 0) {
        zmq_pollitem_t old = {NULL, self->fd, 0, 0};
        zloop_poller_end(self->loop, &old);
    }
    self->fd = -1;
    self->events = 0;
    if (fd < 0 || events == 0) {
        return;
    }
    zmq_pollitem_t item = {NULL, fd, events, 0};
    if (zloop_poller(self->loop, &item, s_on_socket, self) != 0) {
        db_conn_broken(self, "cannot register the socket with the loop");
        return;
    }
    /* Hang-ups and errors must reach s_on_socket (libpq reports them), not remove the
       poller behind our back. */
    zloop_poller_set_tolerant(self->loop, &item);
    self->fd = fd;
    self->events = events;
}

void db_conn_update_poller(db_conn_t *self)
{
    if (!self->pg || self->broken || self->state == DB_STATE_CONNECTING) {
        return;
    }
    short events = ZMQ_POLLIN | (self->flush_pending ? ZMQ_POLLOUT : 0);
    s_set_poller(self, PQsocket(self->pg), events);
}

static void s_timer_end(db_conn_t *self, int *timer_id)
{
    if (*timer_id >= 0) {
        zloop_timer_end(self->loop, *timer_id);
        *timer_id = -1;
    }
}

static int s_on_retry(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    self->retry_timer = -1; /* one-shot: zloop removes it after this call */
    s_connect_start(self);
    return 0;
}

static int s_on_connect_timeout(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    self->connect_timer = -1;
    s_lost(self, "connect timed out");
    return 0;
}

static int s_on_lost_timer(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    self->lost_timer = -1;
    if (self->broken) {
        s_lost(self, self->lost_why);
    }
    return 0;
}

static void s_schedule_retry(db_conn_t *self)
{
    if (self->destroying || self->retry_timer >= 0) {
        return;
    }
    self->retry_timer = zloop_timer(self->loop, (size_t)self->backoff_ms, 1, s_on_retry, self);
    if (self->retry_timer < 0) {
        LOG_E("cannot arm the reconnect timer; the connection stays down");
    }
    self->backoff_ms =
        self->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : self->backoff_ms * 2;
}

/* --- teardown ---------------------------------------------------------------------------- */

static void s_close(db_conn_t *self)
{
    s_set_poller(self, -1, 0);
    s_timer_end(self, &self->connect_timer);
    s_timer_end(self, &self->lost_timer);
    s_timer_end(self, &self->read_timer);
    if (self->pg) {
        PQfinish(self->pg);
        self->pg = NULL;
    }
    self->state = DB_STATE_DOWN;
    self->flush_pending = false;
    self->broken = false;
    self->block_open = false;
}

void db_conn_broken(db_conn_t *self, const char *why)
{
    if (self->broken) {
        return;
    }
    self->broken = true;
    snprintf(self->lost_why, sizeof self->lost_why, "%s", why ? why : "connection failed");
    /* Stop polling now so a dead socket cannot spin the loop until the timer runs. */
    s_set_poller(self, -1, 0);
    if (!self->destroying && self->lost_timer < 0) {
        self->lost_timer = zloop_timer(self->loop, 0, 1, s_on_lost_timer, self);
    }
}

/* Closes the connection, fails everything sent or queued, and schedules a reconnect.
   Runs only from loop handlers (never inside db_batch_submit). */
static void s_lost(db_conn_t *self, const char *why)
{
    char reason[DB_ERRMSG_MAX];
    snprintf(reason, sizeof reason, "%s", why ? why : "connection failed");
    size_t len = strlen(reason);
    while (len > 0 && (reason[len - 1] == '\n' || reason[len - 1] == ' ')) {
        reason[--len] = '\0';
    }
    bool was_up = self->state == DB_STATE_READY || self->state == DB_STATE_PREPARING;
    self->attempts++;
    if (was_up) {
        LOG_W("connection lost: %s in_flight=%zu queued=%zu", reason, db_conn_in_flight(self),
              self->pending.size);
    } else {
        LOG_W("connect failed attempt=%u retry_ms=%d: %s", self->attempts, self->backoff_ms,
              reason);
    }
    s_close(self);
    s_schedule_retry(self);
    /* Detach the queues first: callbacks may submit again, and those go to `failing`. */
    db_queue_t in_flight = db_queue_take(&self->in_flight);
    db_queue_t pending = db_queue_take(&self->pending);
    db_queue_fail(&in_flight, reason);
    db_queue_fail(&pending, reason);
}

/* --- connecting -------------------------------------------------------------------------- */

static void s_notice(void *arg, const PGresult *res)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    LOG_I("server notice severity=%s: %s", sev ? sev : "?", msg ? msg : "");
}

/* Prepare results are logged where they arrive (db_conn_pipe.c); nothing else to do. */
static void s_prep_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
}

static void s_ready(db_conn_t *self)
{
    self->state = DB_STATE_READY;
    self->backoff_ms = DB_BACKOFF_MIN_MS;
    self->attempts = 0;
    LOG_N("ready host=%s port=%s db=%s prepared=%zu", PQhost(self->pg), PQport(self->pg),
          PQdb(self->pg), self->n_preps);
    db_conn_send_pending(self);
}

static void s_prep_last_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    db_conn_t *self = arg;
    /* A failed PREPARE was logged with its statement; the connection is still usable and
       batches naming that statement fail on their own. DB_ERR_CONN means s_lost ran. */
    if (status != DB_ERR_CONN && self->state == DB_STATE_PREPARING && !self->broken) {
        s_ready(self);
    }
}

/* Sends every registered statement, each with its own sync so that one bad statement
   cannot abort the others. Batches wait in `pending` until the last sync arrives. */
static int s_send_prepares(db_conn_t *self)
{
    for (size_t i = 0; i < self->n_preps; i++) {
        bool last = i + 1 == self->n_preps;
        db_batch_t *b =
            db_batch_new_prepare(self, &self->preps[i], last ? s_prep_last_done : s_prep_done);
        if (!b) {
            db_conn_broken(self, "out of memory preparing statements");
            return -1;
        }
        if (db_conn_send_batch(self, b) != 0) {
            db_conn_broken(self, PQerrorMessage(self->pg));
            return -1;
        }
    }
    db_conn_flush(self);
    return 0;
}

static void s_connected(db_conn_t *self)
{
    s_timer_end(self, &self->connect_timer);
    if (PQsetnonblocking(self->pg, 1) != 0 || PQenterPipelineMode(self->pg) != 1) {
        s_lost(self, PQerrorMessage(self->pg));
        return;
    }
    PQsetNoticeReceiver(self->pg, s_notice, self);
    LOG_I("connected host=%s port=%s db=%s backend_pid=%d", PQhost(self->pg), PQport(self->pg),
          PQdb(self->pg), PQbackendPID(self->pg));
    self->state = DB_STATE_PREPARING;
    s_set_poller(self, PQsocket(self->pg), ZMQ_POLLIN);
    if (self->n_preps == 0) {
        s_ready(self);
        return;
    }
    if (s_send_prepares(self) == 0) {
        db_conn_update_poller(self);
    }
}

/* Advances PQconnectPoll; the socket may change between calls, so re-read it each time. */
static void s_connect_poll(db_conn_t *self)
{
    switch (PQconnectPoll(self->pg)) {
        case PGRES_POLLING_OK:
            s_connected(self);
            break;
        case PGRES_POLLING_READING:
            s_set_poller(self, PQsocket(self->pg), ZMQ_POLLIN);
            break;
        case PGRES_POLLING_WRITING:
            s_set_poller(self, PQsocket(self->pg), ZMQ_POLLOUT);
            break;
        default:
            s_lost(self, PQerrorMessage(self->pg));
            break;
    }
}

static void s_connect_start(db_conn_t *self)
{
    /* TCP keepalives and tcp_user_timeout unless the conninfo (last) sets them. */
    const char *keys[DB_TCP_DEFAULTS_N + 2], *vals[DB_TCP_DEFAULTS_N + 2];
    for (size_t i = 0; i < DB_TCP_DEFAULTS_N; i++) {
        keys[i] = db_tcp_default_keys[i];
        vals[i] = db_tcp_default_vals[i];
    }
    keys[DB_TCP_DEFAULTS_N] = "dbname";
    vals[DB_TCP_DEFAULTS_N] = self->conninfo;
    keys[DB_TCP_DEFAULTS_N + 1] = vals[DB_TCP_DEFAULTS_N + 1] = NULL;
    self->pg = PQconnectStartParams(keys, vals, 1);
    if (!self->pg) {
        s_lost(self, "out of memory");
        return;
    }
    if (PQstatus(self->pg) == CONNECTION_BAD) {
        s_lost(self, PQerrorMessage(self->pg));
        return;
    }
    self->state = DB_STATE_CONNECTING;
    LOG_D("connecting host=%s port=%s db=%s", PQhost(self->pg), PQport(self->pg), PQdb(self->pg));
    self->connect_timer =
        zloop_timer(self->loop, DB_CONNECT_TIMEOUT_MS, 1, s_on_connect_timeout, self);
    /* libpq: before the first PQconnectPoll, behave as if it returned POLLING_WRITING. */
    s_set_poller(self, PQsocket(self->pg), ZMQ_POLLOUT);
}

/* --- socket events ----------------------------------------------------------------------- */

/* Reads what libpq holds, resumes sending, and re-arms the poller. */
static void s_service(db_conn_t *self)
{
    if (self->flush_pending) {
        db_conn_flush(self);
    }
    if (self->broken || db_conn_read_results(self) != 0) {
        return;
    }
    db_conn_send_pending(self);
    db_conn_kick(self);
    db_conn_update_poller(self);
}

static int s_on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    db_conn_t *self = arg;
    /* zloop may hand us an event from the poll set built before a timer closed or
       replaced this socket: ignore anything that is not for the current one. */
    if (!self->pg || self->broken || item->fd != self->fd) {
        return 0;
    }
    if (self->state == DB_STATE_CONNECTING) {
        s_connect_poll(self);
        return 0;
    }
    if ((item->revents & (ZMQ_POLLIN | ZMQ_POLLERR)) && !PQconsumeInput(self->pg)) {
        s_lost(self, PQerrorMessage(self->pg));
        return 0;
    }
    if (item->revents & ZMQ_POLLIN) {
        self->heard_ms = util_mono_ms();
    }
    s_service(self);
    return 0;
}

/* Sent work that hears nothing from the server for deadline_ms: the server (or the
   path to it) is gone without a word, which TCP alone may take minutes to notice. */
static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    bool up = self->state == DB_STATE_READY || self->state == DB_STATE_PREPARING;
    if (!up || self->broken || !self->in_flight.head || self->deadline_ms <= 0 ||
        util_mono_ms() - self->heard_ms < self->deadline_ms) {
        return 0;
    }
    char why[96];
    snprintf(why, sizeof why, "no answer from the database within %d ms", self->deadline_ms);
    db_conn_broken(self, why);
    return 0;
}

void db_conn_set_deadline(db_conn_t *self, int ms)
{
    self->deadline_ms = ms;
}

static int s_on_read_timer(zloop_t *loop, int timer_id, void *arg)
{
    db_conn_t *self = arg;
    self->read_timer = -1;
    if (self->pg && !self->broken && self->state != DB_STATE_CONNECTING) {
        s_service(self);
    }
    return 0;
}

void db_conn_kick(db_conn_t *self)
{
    if (!self->pg || self->broken || self->destroying || self->read_timer >= 0 ||
        !self->in_flight.head || PQisBusy(self->pg)) {
        return;
    }
    self->read_timer = zloop_timer(self->loop, 0, 1, s_on_read_timer, self);
}

/* --- public API -------------------------------------------------------------------------- */

db_conn_t *db_conn_new(zloop_t *loop, const char *conninfo)
{
    assert(loop);
    assert(conninfo);
    db_conn_t *self = calloc(1, sizeof *self);
    if (!self) {
        LOG_E("out of memory");
        return NULL;
    }
    self->loop = loop;
    self->fd = -1;
    self->retry_timer = self->connect_timer = self->fail_timer = -1;
    self->lost_timer = self->read_timer = -1;
    self->backoff_ms = DB_BACKOFF_MIN_MS;
    self->deadline_ms = DB_ANSWER_DEADLINE_MS;
    self->conninfo = strdup(conninfo);
    self->deadline_timer = zloop_timer(loop, DB_DEADLINE_CHECK_MS, 0, s_on_deadline, self);
    if (!self->conninfo || self->deadline_timer < 0) {
        LOG_E("out of memory");
        if (self->deadline_timer >= 0) {
            zloop_timer_end(loop, self->deadline_timer);
        }
        free(self->conninfo);
        free(self);
        return NULL;
    }
    s_connect_start(self);
    return self;
}

void db_conn_destroy(db_conn_t **self_p)
{
    assert(self_p);
    db_conn_t *self = *self_p;
    if (!self) {
        return;
    }
    /* Destroying from inside one of this connection's own callbacks would free the
       batch being dispatched: a programmer error. */
    assert(self->dispatching == 0);
    self->destroying = true;
    s_close(self);
    s_timer_end(self, &self->retry_timer);
    s_timer_end(self, &self->fail_timer);
    s_timer_end(self, &self->deadline_timer);
    /* Callbacks may submit again; those land in `failing` and are failed here too. */
    while (self->in_flight.size || self->pending.size || self->failing.size) {
        db_queue_t in_flight = db_queue_take(&self->in_flight);
        db_queue_t pending = db_queue_take(&self->pending);
        db_queue_t failing = db_queue_take(&self->failing);
        db_queue_fail(&in_flight, "connection closed");
        db_queue_fail(&pending, "connection closed");
        db_queue_fail(&failing, "connection closed");
    }
    for (size_t i = 0; i < self->n_preps; i++) {
        free(self->preps[i].name);
        free(self->preps[i].sql);
    }
    free(self->preps);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}

static int s_prep_add(db_conn_t *self, const char *name, const char *sql, int nparams)
{
    if (self->n_preps == self->cap_preps) {
        size_t cap = self->cap_preps ? self->cap_preps * 2 : 8;
        db_prep_t *preps = realloc(self->preps, cap * sizeof *preps);
        if (!preps) {
            return -1;
        }
        self->preps = preps;
        self->cap_preps = cap;
    }
    db_prep_t *p = &self->preps[self->n_preps];
    p->name = strdup(name);
    p->sql = strdup(sql);
    p->nparams = nparams;
    if (!p->name || !p->sql) {
        free(p->name);
        free(p->sql);
        return -1;
    }
    self->n_preps++;
    return 0;
}

int db_conn_prepare(db_conn_t *self, const char *name, const char *sql, int nparams)
{
    assert(self);
    assert(name && *name);
    assert(sql);
    assert(nparams >= 0);
    for (size_t i = 0; i < self->n_preps; i++) {
        if (strcmp(self->preps[i].name, name) == 0) {
            LOG_E("duplicate prepared statement name=%s", name);
            return -1;
        }
    }
    if (s_prep_add(self, name, sql, nparams) != 0) {
        LOG_E("out of memory registering statement name=%s", name);
        return -1;
    }
    /* While connected, prepare it now, ordered before every batch submitted after this
       call; otherwise the next (re)connect prepares it with the others. */
    if (self->state == DB_STATE_READY || self->state == DB_STATE_PREPARING) {
        db_batch_t *b = db_batch_new_prepare(self, &self->preps[self->n_preps - 1], s_prep_done);
        if (!b) {
            db_conn_broken(self, "out of memory preparing a statement");
            return 0;
        }
        db_queue_push(&self->pending, b);
        db_conn_send_pending(self);
    }
    return 0;
}

bool db_conn_ready(const db_conn_t *self)
{
    assert(self);
    return self->state == DB_STATE_READY && !self->broken;
}

size_t db_conn_in_flight(const db_conn_t *self)
{
    assert(self);
    size_t n = 0;
    for (const db_batch_t *b = self->in_flight.head; b; b = b->next) {
        n += !b->internal;
    }
    return n;
}
