/*  reg_ctl_import_db — `bickyctl import`'s database side: N streams (--streams,
    one connection each, with its own temporary staging table imp_rec). The
    reader puts a batch of whole conversations on one stream: held in memory
    while it fits in IMP_DIRECT_MAX (then COPYed straight into the tables at
    its end, reg_ctl_import_direct.c), else staged with COPY into imp_rec as
    it is read (then checked and inserted, reg_ctl_import_flush.c); meanwhile
    the reader fills the next stream, waiting only when every stream is busy.
    A conversation's rows are all in one batch, so its order and its
    all-or-nothing hold; batches commit in any order, so a killed import
    leaves whole conversations, and a re-run skips them. Blocking libpq to
    stage, async libpq to end a batch; single-threaded (the CLI has no loop). */
#include "registry/reg_ctl_import_db.h"

#include <assert.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define S_COPY_CHUNK (256 * 1024) /* bytes handed to PQputCopyData at once */

static const char *const s_staging_sql[] = {
    /* Room for a batch in the session's temporary buffers (it must be set before
       the first use of a temporary table) and for the checks' sorts. */
    "SET temp_buffers = '256MB'",
    "SET work_mem = '64MB'",
    /* ANALYZE of the staging table samples 3,000 rows, not 30,000: enough to
       tell the planner a batch's size and that reverted_by_seq is rare. */
    "SET default_statistics_target = 10",
    "CREATE TEMP TABLE imp_rec (unit int NOT NULL, line bigint, kind text NOT NULL,"
    " conv uuid NOT NULL, id uuid, seq bigint, source text, type text, title text,"
    " strategy text, status text, on_busy text, role text, content text, metadata jsonb,"
    " action jsonb, reversible boolean, reverted_by_seq bigint, created_at timestamptz,"
    " updated_at timestamptz) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE imp_new (id uuid PRIMARY KEY) ON COMMIT DELETE ROWS",
};

/* Runs sql on conn; the result (caller clears) or NULL after saying why. */
static PGresult *s_run(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_IN) {
        reg_ctl_fail("database error: %s", PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int s_exec(PGconn *conn, const char *sql)
{
    PGresult *res = s_run(conn, sql, 0, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* Opens stream s: its connection and staging tables. 0 / -1 (said why). */
static int s_stream_open(imp_db_t *self, imp_stream_t *s, reg_ctl_t *ctl)
{
    s->db = self;
    s->units = calloc(IMP_BATCH_UNITS, sizeof *s->units);
    if (!s->units) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    if (!(s->conn = reg_ctl_db_connect(ctl))) {
        return -1;
    }
    for (size_t i = 0; i < sizeof s_staging_sql / sizeof s_staging_sql[0]; i++) {
        if (s_exec(s->conn, s_staging_sql[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Finds the team's id on the first stream. 0 / -1 (said why). */
static int s_team(imp_db_t *self, const char *team)
{
    const char *p[] = {team};
    PGresult *res = s_run(self->st[0].conn, "SELECT id FROM teams WHERE name = $1", 1, p);
    int rc = res && PQntuples(res) == 1 ? 0 : -1;
    if (rc == 0) {
        snprintf(self->team_id, sizeof self->team_id, "%s", PQgetvalue(res, 0, 0));
    } else if (res) {
        reg_ctl_fail("no such team: %s (create it with bickyctl token create --team)", team);
    }
    PQclear(res);
    return rc;
}

imp_db_t *imp_db_new(reg_ctl_t *ctl, imp_t *imp, int streams, int *exit_code)
{
    assert(streams >= 1 && streams <= IMP_STREAMS_MAX);
    imp_db_t *self = calloc(1, sizeof *self);
    if (self) {
        self->st = calloc((size_t)streams, sizeof *self->st);
    }
    if (!self || !self->st) {
        free(self);
        *exit_code = reg_ctl_fail("out of memory");
        return NULL;
    }
    self->imp = imp;
    self->n = streams;
    int rc = s_stream_open(self, &self->st[0], ctl);
    if (rc < 0 && !self->st[0].conn) {
        *exit_code = ctl->database_url ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_USAGE;
        imp_db_destroy(&self);
        return NULL;
    }
    rc = rc == 0 ? s_team(self, imp->team) : rc;
    for (int i = 1; rc == 0 && i < streams; i++) {
        rc = s_stream_open(self, &self->st[i], ctl);
    }
    if (rc < 0) {
        *exit_code = REG_CTL_EXIT_FAIL;
        imp_db_destroy(&self);
        return NULL;
    }
    imp->units = self->st[0].units;
    imp->nunits = 0;
    return self;
}

void imp_db_destroy(imp_db_t **self_p)
{
    if (self_p && *self_p) {
        imp_db_t *self = *self_p;
        for (int i = 0; self->st && i < self->n; i++) {
            imp_stream_t *s = &self->st[i];
            PQclear(s->res);
            PQfinish(s->conn);
            free(s->out);
            free(s->units);
            free(s->drop);
            imp_direct_free(s);
        }
        free(self->st);
        free(self);
        *self_p = NULL;
    }
}

/* ---- ending batches ---------------------------------------------------------------------- */

/* Reads what s's backend sent, handing each finished step's result to
   imp_flush_step, without blocking. */
static void s_pump(imp_stream_t *s)
{
    if (s->step == IMP_ST_IDLE) {
        return;
    }
    if (s->feeding) {
        /* A direct batch's COPY rows (reg_ctl_import_direct.c); its result
           comes once they are all handed over. */
        if (imp_direct_feed(s) < 0) {
            s->db->failed = true;
            s->step = IMP_ST_IDLE;
            s->feeding = false;
        }
        if (s->feeding || s->step == IMP_ST_IDLE) {
            return;
        }
    }
    if (PQconsumeInput(s->conn) != 1) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        s->db->failed = true;
        s->step = IMP_ST_IDLE;
        return;
    }
    while (s->step != IMP_ST_IDLE && PQisBusy(s->conn) == 0) {
        PGresult *res = PQgetResult(s->conn);
        if (res && PQresultStatus(res) == PGRES_COPY_IN) {
            /* A direct batch's COPY is ready for its rows: no NULL follows
               until they are sent. */
            PQclear(s->res);
            s->res = NULL;
            imp_flush_step(s, res);
            if (s->feeding) {
                return;
            }
            continue;
        }
        if (res) {
            /* A statement's result comes before the NULL that ends it; of
               several, the first error is the one to report. */
            if (!s->res || PQresultStatus(s->res) == PGRES_COMMAND_OK ||
                PQresultStatus(s->res) == PGRES_TUPLES_OK) {
                PQclear(s->res);
                s->res = res;
            } else {
                PQclear(res);
            }
            continue;
        }
        PGresult *done = s->res;
        s->res = NULL;
        imp_flush_step(s, done);
    }
}

/* Drives every busy stream until stream want (or, want NULL, every stream)
   is idle, sleeping in poll() on their sockets. */
static void s_wait(imp_db_t *self, const imp_stream_t *want)
{
    for (;;) {
        struct pollfd fds[IMP_STREAMS_MAX];
        nfds_t n = 0;
        for (int i = 0; i < self->n; i++) {
            imp_stream_t *s = &self->st[i];
            s_pump(s);
            if (s->step != IMP_ST_IDLE) {
                short ev = POLLIN | (s->feeding ? POLLOUT : 0);
                fds[n++] = (struct pollfd){.fd = PQsocket(s->conn), .events = ev};
            }
        }
        if (want ? want->step == IMP_ST_IDLE : n == 0) {
            return;
        }
        poll(fds, n, 1000);
    }
}

int imp_db_flush(imp_db_t *self, imp_t *imp)
{
    imp_stream_t *s = &self->st[self->cur];
    if (imp->in_unit) {
        /* Only a conversation record of Bicky's format, then no more of it,
           from a source that should give whole records (--follow) ends here:
           its rows cannot stay for the next batch, which is another stream's. */
        imp_unit_refuse(imp, imp->unit_line, "its records end in the middle (not a whole record)");
        imp->in_unit = false;
        imp->cur = NULL;
    }
    if ((s->in_copy || s->len) && !self->failed) {
        /* A batch still held whole goes straight into the tables. */
        s->nunits = imp->nunits;
        if ((s->in_copy ? imp_flush_start(s) : imp_direct_start(s)) < 0) {
            self->failed = true;
        }
        self->cur = (self->cur + 1) % self->n;
    }
    /* The next batch goes to the next stream, once its last batch is done. */
    s_wait(self, &self->st[self->cur]);
    imp->units = self->st[self->cur].units;
    imp->nunits = 0;
    imp->batch_rows = 0;
    return self->failed ? -1 : 0;
}

int imp_db_finish(imp_db_t *self, imp_t *imp)
{
    int rc = imp_db_flush(self, imp);
    s_wait(self, NULL);
    return rc < 0 || self->failed ? -1 : 0;
}

/* --follow: the conversations gone from the old server. The event is the one
   DELETE /api/conversations/:id writes (reversible: reverting it makes the
   conversation idle again), from the system source "import-follow". */
static const char s_archive_sql[] =
    "WITH gone AS (SELECT c.id, c.last_event_seq FROM legacy_mirror l JOIN conversations c"
    " ON c.id = l.conversation_id WHERE l.team_id = $1::uuid AND l.source_url = $2"
    " AND c.team_id = $1::uuid AND c.status <> 'archived'"
    " AND (c.id = ANY($3::uuid[])) = $4::boolean FOR UPDATE OF c),"
    " e AS (INSERT INTO events (team_id, conversation_id, seq, type, source, action, reversible)"
    " SELECT $1::uuid, id, last_event_seq + 1, 'conversation.archived',"
    " '{\"kind\":\"system\",\"id\":\"import-follow\"}', '{}', true FROM gone"
    " RETURNING conversation_id, id, seq)"
    " UPDATE conversations c SET status = 'archived', last_event_seq = e.seq,"
    " last_event_id = e.id, updated_at = now() FROM e WHERE c.id = e.conversation_id";

int imp_db_archive(imp_db_t *self, const char *ids, bool in)
{
    const char *p[] = {self->team_id, self->imp->url, ids, in ? "t" : "f"};
    PGresult *res = s_run(self->st[self->cur].conn, s_archive_sql, 4, p);
    if (!res) {
        return -1;
    }
    self->imp->archived += atoll(PQcmdTuples(res));
    PQclear(res);
    return 0;
}

/* ---- COPY ---------------------------------------------------------------------------- */

static int s_reserve(imp_stream_t *s, size_t more)
{
    if (s->len + more <= s->cap) {
        return 0;
    }
    size_t cap = s->cap ? s->cap : S_COPY_CHUNK * 2;
    while (cap < s->len + more) {
        cap *= 2;
    }
    char *grown = realloc(s->out, cap);
    if (!grown) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    s->out = grown;
    s->cap = cap;
    return 0;
}

/* Appends one value in COPY text format (\N for NULL; \, tab, CR, LF escaped). */
static void s_field(imp_stream_t *s, const char *v)
{
    if (!v) {
        memcpy(s->out + s->len, "\\N", 2);
        s->len += 2;
        return;
    }
    for (;;) {
        /* The run up to the next character to escape, at once. */
        size_t run = strcspn(v, "\\\t\n\r");
        memcpy(s->out + s->len, v, run);
        s->len += run;
        v += run;
        if (!*v) {
            return;
        }
        char c = *v++;
        s->out[s->len++] = '\\';
        s->out[s->len++] = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
    }
}

/* Sends s's COPY bytes, then lets the other streams' batches move on. */
static int s_send(imp_stream_t *s)
{
    if (s->len && PQputCopyData(s->conn, s->out, (int)s->len) != 1) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        return -1;
    }
    s->len = 0;
    for (int i = 0; i < s->db->n; i++) {
        s_pump(&s->db->st[i]);
    }
    return s->db->failed ? -1 : 0;
}

int imp_db_row(imp_db_t *self, const char *const *cols)
{
    imp_stream_t *s = &self->st[self->cur];
    size_t need = IMP_NCOLS + 1;
    for (int i = 0; i < IMP_NCOLS; i++) {
        need += cols[i] ? 2 * strlen(cols[i]) : 2;
    }
    /* A batch is held whole (for reg_ctl_import_direct.c) while it fits in
       IMP_DIRECT_MAX; a bigger one, or one of --follow (upserts), is staged:
       its rows go to imp_rec as they come. */
    if (!s->in_copy && (self->imp->follow || s->len + need > IMP_DIRECT_MAX)) {
        if (self->failed || s_exec(s->conn, "BEGIN") < 0 ||
            s_exec(s->conn, "COPY imp_rec FROM STDIN") < 0) {
            return -1;
        }
        s->in_copy = true;
    }
    if (s_reserve(s, need) < 0) {
        return -1;
    }
    for (int i = 0; i < IMP_NCOLS; i++) {
        s_field(s, cols[i]);
        s->out[s->len++] = i + 1 < IMP_NCOLS ? '\t' : '\n';
    }
    if (s->in_copy) {
        return s->len >= S_COPY_CHUNK ? s_send(s) : 0;
    }
    /* While a batch is held, the other streams' batches move on too (a
       direct COPY is fed only when pumped). */
    self->held += need;
    if (self->held >= S_COPY_CHUNK) {
        self->held = 0;
        for (int i = 0; i < self->n; i++) {
            s_pump(&self->st[i]);
        }
    }
    return self->failed ? -1 : 0;
}
