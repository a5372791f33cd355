/*  reg_store_db — the store thread's libpq session: the advisory lock of
    the active registry, the takeover read, the one-statement snapshot
    write, and the admin-token check. The connection is non-blocking and every query has a
   client-side deadline (poll on PQsocket), so a vanished server cannot hold the thread longer than
   REG_STORE_QUERY_MS. Store thread only; the registry's only libpq code. */
#define LOG_MODULE "reg_store"
#include "common/db_schema.h"
#include "common/log.h"
#include "common/util.h"
#include "registry/registry_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECT_TIMEOUT_S 2 /* s: bounds a connect, hence how long $TERM can wait */

struct reg_db_t {
    PGconn *conn; /* non-blocking session */
    bool broken;  /* a call timed out or the connection failed */
};

/* The advisory-lock key as Postgres stores a bigint key in pg_locks:
   classid = high 32 bits, objid = low 32 bits, objsubid = 1. */
static const char *const s_check_lock =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND objsubid = 1"
    " AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid";
static const char *const s_bump_epoch =
    "INSERT INTO ring_state (singleton, epoch, updated_at) VALUES (true, 1, now())"
    " ON CONFLICT (singleton) DO UPDATE SET epoch = ring_state.epoch + 1, updated_at = now()"
    " RETURNING epoch";
static const char *const s_load_nodes =
    "SELECT id, state, router, pub, weight,"
    " (extract(epoch FROM last_heartbeat) * 1000)::bigint FROM nodes ORDER BY id";
/* One statement, hence one implicit transaction: the rows of the snapshot,
   the deletion of the others, and the optional epoch bump commit together. */
static const char *const s_write_snapshot =
    "WITH input AS ("
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],"
    "                       $6::bigint[]) AS t(id, state, router, pub, weight, beat_ms)"
    "), upserted AS ("
    "  INSERT INTO nodes (id, state, router, pub, weight, last_heartbeat, updated_at)"
    "  SELECT id, state, router, pub, weight,"
    "         COALESCE(to_timestamp(beat_ms / 1000.0), now()), now() FROM input"
    "  ON CONFLICT (id) DO UPDATE SET"
    "  updated_at = CASE WHEN (nodes.state, nodes.router, nodes.pub, nodes.weight)"
    "    IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.router, EXCLUDED.pub, EXCLUDED.weight)"
    "    THEN now() ELSE nodes.updated_at END,"
    "  state = EXCLUDED.state, router = EXCLUDED.router, pub = EXCLUDED.pub,"
    "  weight = EXCLUDED.weight,"
    "  last_heartbeat = GREATEST(nodes.last_heartbeat, EXCLUDED.last_heartbeat)"
    "  RETURNING 1"
    "), removed AS ("
    "  DELETE FROM nodes WHERE id <> ALL ($1::text[]) RETURNING 1"
    "), bumped AS ("
    "  UPDATE ring_state SET epoch = epoch + 1, updated_at = now()"
    "  WHERE singleton AND $7::boolean RETURNING epoch"
    ")"
    " SELECT (SELECT epoch FROM bumped), (SELECT count(*) FROM upserted),"
    " (SELECT count(*) FROM removed)";

/* ---- session ------------------------------------------------------------ */

static PGresult *s_query(reg_db_t *self,
                         const char *sql,
                         int nparams,
                         const char *const *params,
                         ExecStatusType want,
                         char *err,
                         size_t errlen);

/* Server-side limits of the session: statement_timeout stops a query this
   side gave up on; idle_session_timeout ends the session, and so releases
   the lock, when a frozen or cut-off registry stops talking (an active one
   checks every REG_STORE_RETRY_MS). Best effort: a server without
   idle_session_timeout (before 14) keeps only the first. */
static void s_session_limits(reg_db_t *self)
{
    char stmt[16], idle[16], err[256];
    snprintf(stmt, sizeof stmt, "%d", REG_STORE_QUERY_MS);
    snprintf(idle, sizeof idle, "%d", REG_STORE_IDLE_KILL_MS);
    const char *both[] = {stmt, idle};
    PGresult *res = s_query(self,
                            "SELECT set_config('statement_timeout', $1, false),"
                            " set_config('idle_session_timeout', $2, false)",
                            2, both, PGRES_TUPLES_OK, err, sizeof err);
    if (!res && reg_db_usable(self)) {
        LOG_W("no idle_session_timeout on this server (%s): a frozen active registry keeps"
              " the lock until its session dies",
              err);
        res = s_query(self, "SELECT set_config('statement_timeout', $1, false)", 1, both,
                      PGRES_TUPLES_OK, err, sizeof err);
    }
    PQclear(res);
}

reg_db_t *reg_db_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = db_schema_connect(conninfo, "bicky-registry", S_CONNECT_TIMEOUT_S, err, errlen);
    if (!conn) {
        return NULL;
    }
    reg_db_t *self = calloc(1, sizeof *self);
    if (!self || PQsetnonblocking(conn, 1) != 0) {
        snprintf(err, errlen, "out of memory or no non-blocking mode");
        PQfinish(conn);
        free(self);
        return NULL;
    }
    self->conn = conn;
    s_session_limits(self);
    if (!reg_db_usable(self)) {
        snprintf(err, errlen, "the session broke while being set up");
        reg_db_close(&self);
    }
    return self;
}

void reg_db_close(reg_db_t **self_p)
{
    if (self_p && *self_p) {
        PQfinish((*self_p)->conn);
        free(*self_p);
        *self_p = NULL;
    }
}

bool reg_db_usable(const reg_db_t *self)
{
    return self && !self->broken && PQstatus(self->conn) == CONNECTION_OK;
}

/* Flushes and reads until a result can be taken without blocking, or the
   deadline passes. 0, or -1 with err (the session is then broken). */
static int s_wait_ready(reg_db_t *self, int64_t deadline, char *err, size_t errlen)
{
    for (;;) {
        int pending = PQflush(self->conn);
        if (pending < 0 || (pending == 0 && !PQconsumeInput(self->conn))) {
            db_schema_error_line(PQerrorMessage(self->conn), err, errlen);
            self->broken = true;
            return -1;
        }
        if (pending == 0 && !PQisBusy(self->conn)) {
            return 0;
        }
        int64_t left = deadline - util_mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "no answer from the database within %d ms", REG_STORE_QUERY_MS);
            self->broken = true;
            return -1;
        }
        struct pollfd p = {.fd = PQsocket(self->conn), .events = POLLIN};
        if (pending) {
            p.events |= POLLOUT;
        }
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            self->broken = true;
            return -1;
        }
        /* While sending, input is read too (libpq's PQflush contract). */
        if (pending && (p.revents & POLLIN) && !PQconsumeInput(self->conn)) {
            db_schema_error_line(PQerrorMessage(self->conn), err, errlen);
            self->broken = true;
            return -1;
        }
    }
}

/* Runs one parameterised statement; returns its result when its status is
   want (the caller PQclears it), else NULL with err. */
static PGresult *s_query(reg_db_t *self,
                         const char *sql,
                         int nparams,
                         const char *const *params,
                         ExecStatusType want,
                         char *err,
                         size_t errlen)
{
    if (!reg_db_usable(self)) {
        snprintf(err, errlen, "the database session is gone");
        return NULL;
    }
    if (!PQsendQueryParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        db_schema_error_line(PQerrorMessage(self->conn), err, errlen);
        self->broken = PQstatus(self->conn) != CONNECTION_OK;
        return NULL;
    }
    int64_t deadline = util_mono_ms() + REG_STORE_QUERY_MS;
    PGresult *first = NULL;
    for (;;) {
        if (s_wait_ready(self, deadline, err, errlen) < 0) {
            PQclear(first);
            return NULL;
        }
        PGresult *res = PQgetResult(self->conn);
        if (!res) {
            break;
        }
        if (first) {
            PQclear(res);
        } else {
            first = res;
        }
    }
    if (PQresultStatus(first) != want) {
        db_schema_error_line(first ? PQresultErrorMessage(first) : PQerrorMessage(self->conn), err,
                             errlen);
        self->broken = PQstatus(self->conn) != CONNECTION_OK;
        PQclear(first);
        return NULL;
    }
    return first;
}

/* ---- the lock ----------------------------------------------------------- */

static const char *s_key_text(char buf[32])
{
    snprintf(buf, 32, "%" PRId64, REG_STORE_LOCK_KEY);
    return buf;
}

int reg_db_try_lock(reg_db_t *self, char *err, size_t errlen)
{
    char key[32];
    const char *params[] = {s_key_text(key)};
    PGresult *res = s_query(self, "SELECT pg_try_advisory_lock($1::bigint)", 1, params,
                            PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        return -1;
    }
    int rc = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t") ? 1 : 0;
    PQclear(res);
    return rc;
}

int reg_db_unlock(reg_db_t *self, char *err, size_t errlen)
{
    char key[32];
    const char *params[] = {s_key_text(key)};
    PGresult *res = s_query(self, "SELECT pg_advisory_unlock($1::bigint)", 1, params,
                            PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        return -1;
    }
    int rc = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t") ? 0 : -1;
    PQclear(res);
    if (rc < 0) {
        snprintf(err, errlen, "the session did not hold the registry lock");
    }
    return rc;
}

int reg_db_check_lock(reg_db_t *self, char *err, size_t errlen)
{
    char key[32];
    const char *params[] = {s_key_text(key)};
    PGresult *res = s_query(self, s_check_lock, 1, params, PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        return -1;
    }
    bool held = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    if (!held) {
        snprintf(err, errlen, "the session no longer holds the registry lock");
        return -1;
    }
    return 0;
}

/* ---- takeover ----------------------------------------------------------- */

/* Converts one row of s_load_nodes. -1 on an unknown state. */
static int s_row_to_node(PGresult *res, int row, reg_node_t *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", PQgetvalue(res, row, 0));
    snprintf(n->router, sizeof n->router, "%s", PQgetvalue(res, row, 2));
    snprintf(n->pub, sizeof n->pub, "%s", PQgetvalue(res, row, 3));
    n->weight = (uint32_t)strtoul(PQgetvalue(res, row, 4), NULL, 10);
    n->beat_wall_ms = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    if (reg_node_state_parse(PQgetvalue(res, row, 1), &n->state) < 0) {
        return -1;
    }
    n->drained = n->state == REG_NODE_DRAINING;
    return 0;
}

static int s_read_nodes(reg_db_t *self, reg_node_t **nodes_p, size_t *count, char *err, size_t len)
{
    PGresult *res = s_query(self, s_load_nodes, 0, NULL, PGRES_TUPLES_OK, err, len);
    if (!res) {
        return -1;
    }
    int rows = PQntuples(res);
    reg_node_t *nodes = calloc(rows > 0 ? (size_t)rows : 1, sizeof *nodes);
    if (!nodes) {
        PQclear(res);
        snprintf(err, len, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (int i = 0; i < rows; i++) {
        if (s_row_to_node(res, i, &nodes[k]) < 0) {
            LOG_W("ignored a row of table nodes with an unknown state id=%s",
                  PQgetvalue(res, i, 0));
            continue;
        }
        k++;
    }
    PQclear(res);
    *nodes_p = nodes;
    *count = k;
    return 0;
}

int reg_db_take_over(
    reg_db_t *self, reg_node_t **nodes_p, size_t *count, uint64_t *epoch, char *err, size_t errlen)
{
    if (s_read_nodes(self, nodes_p, count, err, errlen) < 0) {
        return -1;
    }
    PGresult *res = s_query(self, s_bump_epoch, 0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!res || PQntuples(res) != 1) {
        if (res) {
            snprintf(err, errlen, "ring_state returned no epoch");
        }
        PQclear(res);
        free(*nodes_p);
        *nodes_p = NULL;
        return -1;
    }
    *epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* ---- snapshot write ----------------------------------------------------- */

/* A growing text buffer for Postgres array literals. */
typedef struct {
    char *data; /* heap, NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed */
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->oom = true;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

/* Appends s as a double-quoted array element (" and \ escaped). */
static void s_put_quoted(s_buf_t *b, const char *s)
{
    s_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            s_put(b, "\\", 1);
        }
        s_put(b, p, 1);
    }
    s_put(b, "\"", 1);
}

/* Column c of node n as an array element. */
static void s_put_field(s_buf_t *b, const reg_node_t *n, int c)
{
    char num[32];
    switch (c) {
        case 0:
            s_put_quoted(b, n->id);
            break;
        case 1:
            s_put_quoted(b, reg_node_stored_state(n));
            break;
        case 2:
            s_put_quoted(b, n->router);
            break;
        case 3:
            s_put_quoted(b, n->pub);
            break;
        case 4:
            s_put(b, num, (size_t)snprintf(num, sizeof num, "%u", n->weight));
            break;
        default:
            if (n->beat_wall_ms > 0) {
                s_put(b, num, (size_t)snprintf(num, sizeof num, "%" PRId64, n->beat_wall_ms));
            } else {
                s_put(b, "NULL", 4);
            }
            break;
    }
}

#define S_COLUMNS 6

int reg_db_write(reg_db_t *self,
                 const reg_node_t *nodes,
                 size_t count,
                 bool bump,
                 uint64_t *epoch,
                 char *err,
                 size_t errlen)
{
    s_buf_t cols[S_COLUMNS] = {{0}};
    bool oom = false;
    for (int c = 0; c < S_COLUMNS; c++) {
        s_put(&cols[c], "{", 1);
        for (size_t i = 0; i < count; i++) {
            s_put(&cols[c], i ? "," : "", i ? 1 : 0);
            s_put_field(&cols[c], &nodes[i], c);
        }
        s_put(&cols[c], "}", 1);
        oom = oom || cols[c].oom;
    }
    int rc = -1;
    *epoch = 0;
    if (oom) {
        snprintf(err, errlen, "out of memory");
    } else {
        const char *params[] = {cols[0].data, cols[1].data, cols[2].data,           cols[3].data,
                                cols[4].data, cols[5].data, bump ? "true" : "false"};
        PGresult *res = s_query(self, s_write_snapshot, 7, params, PGRES_TUPLES_OK, err, errlen);
        if (res && bump && PQgetisnull(res, 0, 0)) {
            snprintf(err, errlen, "table ring_state has no row");
        } else if (res) {
            *epoch = bump ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
            rc = 0;
        }
        PQclear(res);
    }
    for (int c = 0; c < S_COLUMNS; c++) {
        free(cols[c].data);
    }
    return rc;
}

/* ---- token revocations (sql/0004_token_revocations.sql) ------------------ */

int reg_db_listen(reg_db_t *self, uint64_t *seq, char *err, size_t errlen)
{
    PGresult *res =
        s_query(self, "LISTEN bicky_token_revoked", 0, NULL, PGRES_COMMAND_OK, err, errlen);
    PQclear(res);
    return res ? reg_db_revoked_seq(self, seq, err, errlen) : -1;
}

int reg_db_revoked_seq(reg_db_t *self, uint64_t *seq, char *err, size_t errlen)
{
    PGresult *res = s_query(self, "SELECT seq FROM token_revocations WHERE singleton", 0, NULL,
                            PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        return -1;
    }
    *seq = PQntuples(res) == 1 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

/* ---- admin tokens (sql/0007_admin_tokens.sql) ----------------------------- */

int reg_db_token(reg_db_t *self, const char *sha256, reg_token_t *out, char *err, size_t errlen)
{
    const char *params[] = {sha256};
    PGresult *res = s_query(self,
                            "SELECT a.id::text, tm.id::text, tm.name, a.admin FROM api_tokens a"
                            " JOIN teams tm ON tm.id = a.team_id"
                            " WHERE a.token_sha256 = $1 AND a.revoked_at IS NULL",
                            1, params, PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        return -1;
    }
    out->result = REG_TOKEN_UNKNOWN;
    if (PQntuples(res) == 1) {
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
        snprintf(out->team_id, sizeof out->team_id, "%s", PQgetvalue(res, 0, 1));
        snprintf(out->team, sizeof out->team, "%s", PQgetvalue(res, 0, 2));
        out->result = !strcmp(PQgetvalue(res, 0, 3), "t") ? REG_TOKEN_ADMIN : REG_TOKEN_NOT_ADMIN;
    }
    PQclear(res);
    return 0;
}

int reg_db_socket(const reg_db_t *self)
{
    return reg_db_usable(self) ? PQsocket(self->conn) : -1;
}

int reg_db_notifies(reg_db_t *self, reg_db_revoked_fn *fn, void *arg)
{
    if (!reg_db_usable(self)) {
        return -1;
    }
    if (!PQisBusy(self->conn) && !PQconsumeInput(self->conn)) {
        self->broken = true;
        return -1;
    }
    PGnotify *n;
    while ((n = PQnotifies(self->conn))) {
        unsigned long long seq = 0;
        char sha[65] = "";
        if (sscanf(n->extra, "%llu %64s", &seq, sha) == 2 && strlen(sha) == 64) {
            fn(arg, (uint64_t)seq, sha);
        } else {
            LOG_W("ignored a malformed bicky_token_revoked notification");
        }
        PQfreemem(n);
    }
    return 0;
}
