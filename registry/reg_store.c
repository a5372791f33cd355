/*  reg_store — registry membership persistence: blocking load at startup and
    a writer zactor owning a blocking libpq connection. The loop thread sends
    "SAVE" + a heap snapshot pointer over the actor pipe (ownership moves to
    the thread); the thread keeps only the newest snapshot. */
#define LOG_MODULE "reg_store"
#include "registry/reg_store.h"

#include "common/db_schema.h"
#include "common/log.h"
#include "common/util.h"

#include <czmq.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECT_TIMEOUT_S    2    /* s: bounds how long $TERM can wait on a connect */
#define S_STATEMENT_TIMEOUT_MS 2000 /* bounds how long $TERM can wait on a query */
#define S_RETRY_MS             1000 /* delay between failed writes */

typedef struct {
    uint64_t epoch;     /* ring epoch */
    size_t count;       /* nodes */
    reg_node_t nodes[]; /* copies, id order */
} s_snapshot_t;

struct reg_store_t {
    zactor_t *actor; /* the writer thread */
    char *conninfo;  /* owned copy, read by the thread until it stops */
};

/* Writer-thread state. */
typedef struct {
    const char *conninfo;  /* borrowed from reg_store_t */
    PGconn *conn;          /* NULL while disconnected */
    s_snapshot_t *pending; /* newest unwritten snapshot, owned */
    int64_t next_try_ms;   /* earliest retry after a failure */
    bool failing;          /* the last attempt failed (log once per streak) */
} s_writer_t;

static const char *const s_upsert_node =
    "INSERT INTO nodes (id, state, router, pub, weight, last_heartbeat, updated_at)"
    " VALUES ($1, $2, $3, $4, $5::int, COALESCE(to_timestamp($6::bigint / 1000.0), now()), now())"
    " ON CONFLICT (id) DO UPDATE SET"
    " updated_at = CASE WHEN (nodes.state, nodes.router, nodes.pub, nodes.weight)"
    "   IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.router, EXCLUDED.pub, EXCLUDED.weight)"
    "   THEN now() ELSE nodes.updated_at END,"
    " state = EXCLUDED.state, router = EXCLUDED.router, pub = EXCLUDED.pub,"
    " weight = EXCLUDED.weight,"
    " last_heartbeat = GREATEST(nodes.last_heartbeat, EXCLUDED.last_heartbeat)";
static const char *const s_delete_others = "DELETE FROM nodes WHERE id <> ALL ($1::text[])";
static const char *const s_set_epoch =
    "INSERT INTO ring_state (singleton, epoch, updated_at) VALUES (true, $1::bigint, now())"
    " ON CONFLICT (singleton) DO UPDATE SET epoch = GREATEST(ring_state.epoch, EXCLUDED.epoch),"
    " updated_at = now()";

/* ---- libpq helpers ------------------------------------------------------ */

static PGconn *s_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = db_schema_connect(conninfo, "bicky-registry", S_CONNECT_TIMEOUT_S, err, errlen);
    if (conn) {
        char sql[64];
        snprintf(sql, sizeof sql, "SET statement_timeout = %d", S_STATEMENT_TIMEOUT_MS);
        PQclear(PQexec(conn, sql));
    }
    return conn;
}

/* Runs one parameterised statement expecting want; -1 with err otherwise. */
static int s_exec(PGconn *conn,
                  const char *sql,
                  int nparams,
                  const char *const *params,
                  ExecStatusType want,
                  PGresult **res_p,
                  char *err,
                  size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        db_schema_error_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), err, errlen);
        PQclear(res);
        return -1;
    }
    if (res_p) {
        *res_p = res;
    } else {
        PQclear(res);
    }
    return 0;
}

/* ---- load (blocking, before the loop) ----------------------------------- */

/* Converts one row of the nodes query into a node. -1 on an unknown state. */
static int s_row_to_node(PGresult *res, int row, reg_node_t *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", PQgetvalue(res, row, 0));
    snprintf(n->router, sizeof n->router, "%s", PQgetvalue(res, row, 2));
    snprintf(n->pub, sizeof n->pub, "%s", PQgetvalue(res, row, 3));
    n->weight = (uint32_t)strtoul(PQgetvalue(res, row, 4), NULL, 10);
    n->beat_wall_ms = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    return reg_node_state_parse(PQgetvalue(res, row, 1), &n->state);
}

static int
s_load_nodes(PGconn *conn, reg_members_t *members, int64_t now_ms, char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (s_exec(conn,
               "SELECT id, state, router, pub, weight,"
               " (extract(epoch FROM last_heartbeat) * 1000)::bigint FROM nodes ORDER BY id",
               0, NULL, PGRES_TUPLES_OK, &res, err, errlen) < 0) {
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        reg_node_t n;
        if (s_row_to_node(res, i, &n) < 0 || reg_members_restore(members, &n, now_ms) < 0) {
            LOG_W("ignored a bad row of table nodes id=%s", PQgetvalue(res, i, 0));
            continue;
        }
        LOG_I("restored node id=%s state=%s", n.id, reg_node_state_name(n.state));
    }
    PQclear(res);
    return 0;
}

static int s_load_epoch(PGconn *conn, reg_members_t *members, char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (s_exec(conn, "SELECT epoch FROM ring_state WHERE singleton", 0, NULL, PGRES_TUPLES_OK, &res,
               err, errlen) < 0) {
        return -1;
    }
    uint64_t stored = PQntuples(res) ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%" PRIu64, stored + 1);
    const char *params[] = {epoch};
    if (s_exec(conn, s_set_epoch, 1, params, PGRES_COMMAND_OK, NULL, err, errlen) < 0) {
        return -1;
    }
    reg_members_set_epoch(members, stored + 1);
    return 0;
}

int reg_store_load(
    const char *conninfo, reg_members_t *members, int64_t now_ms, char *err, size_t errlen)
{
    PGconn *conn = s_connect(conninfo, err, errlen);
    if (!conn) {
        return -1;
    }
    int rc = s_load_nodes(conn, members, now_ms, err, errlen);
    if (rc == 0) {
        rc = s_load_epoch(conn, members, err, errlen);
    }
    PQfinish(conn);
    return rc;
}

/* ---- writer thread ------------------------------------------------------ */

/* Builds the text[] literal {"a","b"} of the snapshot's ids (heap, freed by
   the caller). Ids are validated to plain characters; quote anyway. */
static char *s_id_array(const s_snapshot_t *snap)
{
    size_t cap = 3 + snap->count * (2 * REG_ID_MAX + 3);
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    size_t k = 0;
    out[k++] = '{';
    for (size_t i = 0; i < snap->count; i++) {
        if (i) {
            out[k++] = ',';
        }
        out[k++] = '"';
        for (const char *p = snap->nodes[i].id; *p; p++) {
            if (*p == '"' || *p == '\\') {
                out[k++] = '\\';
            }
            out[k++] = *p;
        }
        out[k++] = '"';
    }
    out[k++] = '}';
    out[k] = 0;
    return out;
}

static int s_write_node(PGconn *conn, const reg_node_t *n, char *err, size_t errlen)
{
    char weight[16], beat[32];
    snprintf(weight, sizeof weight, "%u", n->weight);
    snprintf(beat, sizeof beat, "%" PRId64, n->beat_wall_ms);
    const char *params[] = {n->id,  reg_node_state_name(n->state),    n->router, n->pub,
                            weight, n->beat_wall_ms > 0 ? beat : NULL};
    return s_exec(conn, s_upsert_node, 6, params, PGRES_COMMAND_OK, NULL, err, errlen);
}

/* Writes the snapshot in one transaction. 0 or -1 with err. */
static int s_write(PGconn *conn, const s_snapshot_t *snap, char *err, size_t errlen)
{
    char *ids = s_id_array(snap);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%" PRIu64, snap->epoch);
    const char *ids_param[] = {ids}, *epoch_param[] = {epoch};
    int rc = s_exec(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
    for (size_t i = 0; rc == 0 && i < snap->count; i++) {
        rc = s_write_node(conn, &snap->nodes[i], err, errlen);
    }
    if (rc == 0) {
        rc = s_exec(conn, s_delete_others, 1, ids_param, PGRES_COMMAND_OK, NULL, err, errlen);
    }
    if (rc == 0) {
        rc = s_exec(conn, s_set_epoch, 1, epoch_param, PGRES_COMMAND_OK, NULL, err, errlen);
    }
    if (rc == 0) {
        rc = s_exec(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
    } else if (PQstatus(conn) == CONNECTION_OK) {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    free(ids);
    return rc;
}

/* One attempt at writing the pending snapshot. */
static void s_flush(s_writer_t *w)
{
    char err[512] = "";
    if (!w->conn) {
        w->conn = s_connect(w->conninfo, err, sizeof err);
    }
    if (w->conn && s_write(w->conn, w->pending, err, sizeof err) == 0) {
        if (w->failing) {
            LOG_N("membership is being persisted again epoch=%" PRIu64, w->pending->epoch);
        }
        LOG_D("persisted membership epoch=%" PRIu64 " nodes=%zu", w->pending->epoch,
              w->pending->count);
        free(w->pending);
        w->pending = NULL;
        w->failing = false;
        return;
    }
    if (!w->failing) {
        LOG_W("cannot persist membership (retrying every %d ms): %s", S_RETRY_MS, err);
    }
    w->failing = true;
    w->next_try_ms = util_mono_ms() + S_RETRY_MS;
    if (w->conn && PQstatus(w->conn) != CONNECTION_OK) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
}

/* Reads every queued command; true when $TERM was among them. */
static bool s_drain(zsock_t *pipe, s_writer_t *w)
{
    bool term = false;
    do {
        char *cmd = NULL;
        void *ptr = NULL;
        if (zsock_recv(pipe, "sp", &cmd, &ptr) < 0) {
            return true;
        }
        if (cmd && !strcmp(cmd, "SAVE") && ptr) {
            /* Newer supersedes older: only the latest membership matters. */
            free(w->pending);
            w->pending = ptr;
        } else if (cmd && !strcmp(cmd, "$TERM")) {
            term = true;
        }
        zstr_free(&cmd);
    } while (zsock_events(pipe) & ZMQ_POLLIN);
    return term;
}

static void s_writer_actor(zsock_t *pipe, void *args)
{
    s_writer_t w = {.conninfo = args};
    zpoller_t *poller = zpoller_new(pipe, NULL);
    zsock_signal(pipe, 0);
    bool term = false;
    while (!term) {
        int64_t wait = w.pending ? w.next_try_ms - util_mono_ms() : -1;
        void *which = zpoller_wait(poller, w.pending ? (int)(wait < 0 ? 0 : wait) : -1);
        if (which == pipe) {
            term = s_drain(pipe, &w);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        if (!term && w.pending && util_mono_ms() >= w.next_try_ms) {
            s_flush(&w);
        }
    }
    /* A last write only when already connected, so stopping stays quick. */
    if (w.pending && w.conn) {
        s_flush(&w);
    }
    free(w.pending);
    PQfinish(w.conn);
    zpoller_destroy(&poller);
}

reg_store_t *reg_store_new(const char *conninfo)
{
    reg_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->conninfo = strdup(conninfo))) {
        LOG_E("out of memory");
        reg_store_destroy(&self);
        return NULL;
    }
    self->actor = zactor_new(s_writer_actor, self->conninfo);
    if (!self->actor) {
        LOG_E("cannot start the membership writer thread");
        reg_store_destroy(&self);
        return NULL;
    }
    /* The loop must never wait on the writer: a full pipe fails the send. */
    zsock_set_sndtimeo(zactor_sock(self->actor), 0);
    return self;
}

void reg_store_destroy(reg_store_t **self_p)
{
    if (self_p && *self_p) {
        reg_store_t *self = *self_p;
        if (self->actor) {
            /* $TERM itself must not be dropped by the non-blocking setting. */
            zsock_set_sndtimeo(zactor_sock(self->actor), -1);
        }
        zactor_destroy(&self->actor);
        free(self->conninfo);
        free(self);
        *self_p = NULL;
    }
}

int reg_store_save(reg_store_t *self, const reg_members_t *members)
{
    size_t n = reg_members_size(members);
    s_snapshot_t *snap = malloc(sizeof *snap + n * sizeof(reg_node_t));
    if (!snap) {
        return -1;
    }
    snap->epoch = reg_members_epoch(members);
    snap->count = n;
    for (size_t i = 0; i < n; i++) {
        snap->nodes[i] = *reg_members_at(members, i);
    }
    if (zsock_send(self->actor, "sp", "SAVE", snap) < 0) {
        free(snap);
        return -1;
    }
    return 0;
}
