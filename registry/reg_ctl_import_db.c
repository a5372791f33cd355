/*  reg_ctl_import_db — `bickyctl import`'s database side. Rows are staged
    with COPY into a temporary table (imp_rec, emptied at each commit); at a
    batch's end, in the same transaction, conversations the database already
    has (in this team: skipped; in another: refused) and message ids already
    used or repeated are found and their units dropped, then the rest is
    inserted with INSERT … SELECT: conversations (ON CONFLICT DO NOTHING,
    never owned by a node), their messages, their events (new global ids, in
    file order), reverted_by links and the conversations' counters and
    last_event_id. One transaction per batch: a killed import leaves whole
    conversations or nothing of them. Blocking libpq (the CLI has no loop). */
#include "common/db_schema.h"
#include "common/util.h"
#include "registry/reg_ctl_import.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define S_COPY_CHUNK (256 * 1024) /* bytes handed to PQputCopyData at once */

struct imp_db_t {
    PGconn *conn;     /* the connection */
    char team_id[37]; /* target team */
    bool in_copy;     /* the batch's COPY is open */
    char *out;        /* COPY bytes not yet sent */
    size_t len, cap;  /* used, allocated */
};

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

/* (unit, code, detail, rank) of every unit that must not be inserted; per
   unit the first row says why (a conversation already there outranks its
   message ids). Of units repeating a conversation or message id, the first
   in the file is kept. */
static const char s_check_sql[] =
    "SELECT r.unit, CASE WHEN c.team_id = $1::uuid THEN 'present' ELSE 'foreign' END, NULL, 0"
    " FROM imp_rec r JOIN conversations c ON c.id = r.conv WHERE r.kind = 'c'"
    " UNION ALL SELECT unit, 'duplicate', NULL, 1 FROM (SELECT unit, row_number() OVER"
    " (PARTITION BY conv ORDER BY unit) AS n FROM imp_rec WHERE kind = 'c') d WHERE n > 1"
    " UNION ALL SELECT r.unit, 'msg_exists', r.id::text, 2 FROM imp_rec r CROSS JOIN LATERAL"
    " (SELECT 1 FROM messages m WHERE m.id = r.id LIMIT 1) x WHERE r.kind = 'm'"
    " UNION ALL SELECT unit, 'msg_dup', id::text, 2 FROM (SELECT unit, id, row_number() OVER"
    " (PARTITION BY id ORDER BY unit, seq) AS n FROM imp_rec WHERE kind = 'm') d WHERE n > 1"
    " ORDER BY 1, 4";

/* --follow: a conversation present in this team is updated, not dropped;
   a message id may exist in the same conversation (it is updated), not in
   another; a message whose seq another message of the conversation holds
   means the old server reordered or deleted messages: that unit is dropped. */
static const char s_check_follow_sql[] =
    "SELECT r.unit, 'foreign', NULL, 0 FROM imp_rec r JOIN conversations c ON c.id = r.conv"
    " WHERE r.kind = 'c' AND c.team_id <> $1::uuid"
    " UNION ALL SELECT unit, 'duplicate', NULL, 1 FROM (SELECT unit, row_number() OVER"
    " (PARTITION BY conv ORDER BY unit) AS n FROM imp_rec WHERE kind = 'c') d WHERE n > 1"
    " UNION ALL SELECT r.unit, 'msg_exists', r.id::text, 2 FROM imp_rec r CROSS JOIN LATERAL"
    " (SELECT 1 FROM messages m WHERE m.id = r.id AND m.conversation_id <> r.conv LIMIT 1) x"
    " WHERE r.kind = 'm'"
    " UNION ALL SELECT unit, 'msg_dup', id::text, 2 FROM (SELECT unit, id, row_number() OVER"
    " (PARTITION BY id ORDER BY unit, seq) AS n FROM imp_rec WHERE kind = 'm') d WHERE n > 1"
    " UNION ALL SELECT r.unit, 'msg_moved', r.id::text, 3 FROM imp_rec r JOIN messages m"
    " ON m.conversation_id = r.conv AND m.seq = r.seq AND m.id <> r.id"
    " WHERE r.kind = 'm' AND m.team_id = $1::uuid"
    " ORDER BY 1, 4";

/* --follow: upserts. Unchanged rows are not rewritten (IS DISTINCT FROM), so a
   re-sync of an unchanged server writes nothing; each statement answers
   (inserted, changed). Messages keep their seq (a moved one was dropped). */
static const char *const s_upsert_sql[] = {
    "WITH c AS (INSERT INTO conversations (id, team_id, source, type, title, strategy, status,"
    " on_busy, metadata, message_count, last_msg_seq, created_at, updated_at)"
    " SELECT r.conv, $1::uuid, r.source, r.type, r.title, r.strategy, r.status, r.on_busy,"
    " r.metadata, 0, 0, r.created_at, r.updated_at FROM imp_rec r WHERE r.kind = 'c'"
    " ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, type = EXCLUDED.type,"
    " metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at,"
    " updated_at = EXCLUDED.updated_at WHERE conversations.team_id = $1::uuid AND"
    " (conversations.source, conversations.type, conversations.metadata,"
    " conversations.created_at, conversations.updated_at) IS DISTINCT FROM (EXCLUDED.source,"
    " EXCLUDED.type, EXCLUDED.metadata, EXCLUDED.created_at, EXCLUDED.updated_at)"
    " RETURNING xmax = 0 AS ins), n AS (INSERT INTO imp_new SELECT conv FROM imp_rec"
    " WHERE kind = 'c') SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins)"
    " FROM c",
    "WITH m AS (INSERT INTO messages (id, conversation_id, team_id, seq, role, content, status,"
    " metadata, created_at, updated_at) SELECT r.id, r.conv, $1::uuid, r.seq, r.role, r.content,"
    " r.status, r.metadata, r.created_at, r.updated_at FROM imp_rec r JOIN imp_new n"
    " ON n.id = r.conv WHERE r.kind = 'm' ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role,"
    " content = EXCLUDED.content, status = EXCLUDED.status, metadata = EXCLUDED.metadata,"
    " created_at = EXCLUDED.created_at, updated_at = now()"
    " WHERE messages.conversation_id = EXCLUDED.conversation_id"
    " AND messages.team_id = $1::uuid AND (messages.role, messages.content, messages.status,"
    " messages.metadata, messages.created_at) IS DISTINCT FROM (EXCLUDED.role,"
    " EXCLUDED.content, EXCLUDED.status, EXCLUDED.metadata, EXCLUDED.created_at)"
    " RETURNING xmax = 0 AS ins) SELECT count(*) FILTER (WHERE ins),"
    " count(*) FILTER (WHERE NOT ins) FROM m",
    "WITH x AS (SELECT m.conversation_id AS id, count(*) AS n, max(m.seq) AS mx FROM messages m"
    " JOIN imp_new i ON i.id = m.conversation_id WHERE m.team_id = $1::uuid GROUP BY 1),"
    " u AS (UPDATE conversations c SET message_count = x.n, last_msg_seq = x.mx FROM x"
    " WHERE c.id = x.id AND c.team_id = $1::uuid AND (c.message_count, c.last_msg_seq)"
    " IS DISTINCT FROM (x.n::int, x.mx) RETURNING 1) SELECT 0, count(*) FROM u",
};

static const char *const s_insert_sql[] = {
    "WITH c AS (INSERT INTO conversations (id, team_id, source, type, title, strategy, status,"
    " on_busy, metadata, message_count, last_msg_seq, last_event_seq, created_at, updated_at)"
    " SELECT r.conv, $1::uuid, r.source, r.type, r.title, r.strategy, r.status, r.on_busy,"
    " r.metadata, coalesce(m.n, 0), coalesce(m.mx, 0), coalesce(e.mx, 0), r.created_at,"
    " r.updated_at FROM imp_rec r"
    " LEFT JOIN (SELECT unit, count(*) AS n, max(seq) AS mx FROM imp_rec WHERE kind = 'm'"
    " GROUP BY unit) m ON m.unit = r.unit"
    " LEFT JOIN (SELECT unit, max(seq) AS mx FROM imp_rec WHERE kind = 'e' GROUP BY unit) e"
    " ON e.unit = r.unit WHERE r.kind = 'c'"
    " ON CONFLICT (id) DO NOTHING RETURNING id) INSERT INTO imp_new SELECT id FROM c",
    "INSERT INTO messages (id, conversation_id, team_id, seq, role, content, status, metadata,"
    " created_at, updated_at) SELECT r.id, r.conv, $1::uuid, r.seq, r.role, r.content, r.status,"
    " r.metadata, r.created_at, r.updated_at FROM imp_rec r JOIN imp_new n ON n.id = r.conv"
    " WHERE r.kind = 'm'",
    "WITH e AS (INSERT INTO events (team_id, conversation_id, seq, type, source, action,"
    " reversible, created_at) SELECT $1::uuid, r.conv, r.seq, r.type, r.source::jsonb, r.action,"
    " r.reversible, r.created_at FROM imp_rec r JOIN imp_new n ON n.id = r.conv"
    " WHERE r.kind = 'e' ORDER BY r.unit, r.seq RETURNING conversation_id, id)"
    " , u AS (UPDATE conversations c SET last_event_id = x.mx FROM (SELECT conversation_id AS id,"
    " max(id) AS mx FROM e GROUP BY 1) x WHERE c.id = x.id AND c.team_id = $1::uuid RETURNING 1)"
    " SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM u)",
    "UPDATE events e SET reverted_by = t.id FROM imp_rec r JOIN imp_new n ON n.id = r.conv"
    " JOIN events t ON t.conversation_id = r.conv AND t.seq = r.reverted_by_seq"
    " WHERE r.kind = 'e' AND r.reverted_by_seq IS NOT NULL AND e.conversation_id = r.conv"
    " AND e.seq = r.seq AND e.team_id = $1::uuid",
};

/* Runs sql; the result (caller clears) or NULL after saying why. */
static PGresult *s_run(imp_db_t *self, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(self->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_IN) {
        reg_ctl_fail("database error: %s", PQerrorMessage(self->conn));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int s_exec(imp_db_t *self, const char *sql, int n, const char *const *params)
{
    PGresult *res = s_run(self, sql, n, params);
    PQclear(res);
    return res ? 0 : -1;
}

imp_db_t *imp_db_new(reg_ctl_t *ctl, const char *team, int *exit_code)
{
    imp_db_t *self = calloc(1, sizeof *self);
    if (!self || !(self->conn = reg_ctl_db_connect(ctl))) {
        *exit_code = ctl->database_url ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_USAGE;
        free(self);
        return NULL;
    }
    const char *p[] = {team};
    PGresult *res = s_run(self, "SELECT id FROM teams WHERE name = $1", 1, p);
    if (res && PQntuples(res) == 1) {
        snprintf(self->team_id, sizeof self->team_id, "%s", PQgetvalue(res, 0, 0));
    } else if (res) {
        reg_ctl_fail("no such team: %s (create it with bickyctl token create --team)", team);
    }
    bool ok = res && PQntuples(res) == 1;
    for (size_t i = 0; ok && i < sizeof s_staging_sql / sizeof s_staging_sql[0]; i++) {
        ok = s_exec(self, s_staging_sql[i], 0, NULL) == 0;
    }
    PQclear(res);
    if (!ok) {
        *exit_code = REG_CTL_EXIT_FAIL;
        imp_db_destroy(&self);
    }
    return self;
}

void imp_db_destroy(imp_db_t **self_p)
{
    if (self_p && *self_p) {
        imp_db_t *self = *self_p;
        PQfinish(self->conn);
        free(self->out);
        free(self);
        *self_p = NULL;
    }
}

/* ---- COPY ---------------------------------------------------------------------------- */

static int s_reserve(imp_db_t *self, size_t more)
{
    if (self->len + more <= self->cap) {
        return 0;
    }
    size_t cap = self->cap ? self->cap : S_COPY_CHUNK * 2;
    while (cap < self->len + more) {
        cap *= 2;
    }
    char *grown = realloc(self->out, cap);
    if (!grown) {
        return reg_ctl_fail("out of memory");
    }
    self->out = grown;
    self->cap = cap;
    return 0;
}

/* Appends one value in COPY text format (\N for NULL; \, tab, CR, LF escaped). */
static void s_field(imp_db_t *self, const char *v)
{
    if (!v) {
        memcpy(self->out + self->len, "\\N", 2);
        self->len += 2;
        return;
    }
    for (; *v; v++) {
        char c = *v, e = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 0;
        if (e) {
            self->out[self->len++] = '\\';
            c = e;
        }
        self->out[self->len++] = c;
    }
}

static int s_send(imp_db_t *self)
{
    if (self->len && PQputCopyData(self->conn, self->out, (int)self->len) != 1) {
        return reg_ctl_fail("database error: %s", PQerrorMessage(self->conn));
    }
    self->len = 0;
    return 0;
}

int imp_db_row(imp_db_t *self, const char *const *cols)
{
    if (!self->in_copy) {
        if (s_exec(self, "BEGIN", 0, NULL) < 0 ||
            s_exec(self, "COPY imp_rec FROM STDIN", 0, NULL) < 0) {
            return -1;
        }
        self->in_copy = true;
    }
    size_t need = IMP_NCOLS + 1;
    for (int i = 0; i < IMP_NCOLS; i++) {
        need += cols[i] ? 2 * strlen(cols[i]) : 2;
    }
    if (s_reserve(self, need) < 0) {
        return -1;
    }
    for (int i = 0; i < IMP_NCOLS; i++) {
        s_field(self, cols[i]);
        self->out[self->len++] = i + 1 < IMP_NCOLS ? '\t' : '\n';
    }
    return self->len >= S_COPY_CHUNK ? s_send(self) : 0;
}

/* ---- the batch's end -------------------------------------------------------------------- */

/* The batch's unit of number n, or NULL (units are numbered consecutively). */
static imp_unit_t *s_unit(imp_t *imp, long n)
{
    long first = imp->nunits ? imp->units[0].unit : 0;
    return n >= first && n - first < (long)imp->nunits ? &imp->units[n - first] : NULL;
}

/* Reports one row of s_check_sql and marks its unit dropped. */
static void s_dropped(imp_t *imp, imp_unit_t *u, const char *code, const char *detail)
{
    u->refused = true;
    if (strcmp(code, "present") == 0) {
        imp->skipped++;
    } else if (strcmp(code, "foreign") == 0) {
        imp_refuse(imp, u->line, u->conv, "the conversation id is already used by another team");
    } else if (strcmp(code, "duplicate") == 0) {
        imp_refuse(imp, u->line, u->conv, "the conversation appears earlier in the file");
    } else if (strcmp(code, "msg_exists") == 0) {
        imp_refuse(imp, u->line, u->conv, "message id %s already exists", detail);
    } else if (strcmp(code, "msg_moved") == 0) {
        imp_refuse(imp, u->line, u->conv,
                   "message %s is not where the mirror has it: the old server reordered or "
                   "removed messages (not followed)",
                   detail);
    } else {
        imp_refuse(imp, u->line, u->conv, "message id %s appears more than once", detail);
    }
}

/* Finds the units that must not be inserted; writes every dropped unit (and
   the ones refused while reading) as a Postgres int[] literal into *list. */
static int s_check(imp_db_t *self, imp_t *imp, char **list)
{
    const char *p[] = {self->team_id};
    PGresult *res = s_run(self, imp->follow ? s_check_follow_sql : s_check_sql, 1, p);
    if (!res) {
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        imp_unit_t *u = s_unit(imp, atol(PQgetvalue(res, i, 0)));
        if (u && !u->refused) {
            s_dropped(imp, u, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        }
    }
    PQclear(res);
    size_t cap = 3 + imp->nunits * 21, n = 0;
    char *out = malloc(cap);
    if (!out) {
        return reg_ctl_fail("out of memory");
    }
    out[n++] = '{';
    for (size_t i = 0; i < imp->nunits; i++) {
        if (imp->units[i].refused) {
            n += (size_t)snprintf(out + n, cap - n, "%s%ld", n > 1 ? "," : "", imp->units[i].unit);
        }
    }
    snprintf(out + n, cap - n, "}");
    *list = out;
    return 0;
}

/* Ends the COPY; 0 / -1. */
static int s_copy_end(imp_db_t *self)
{
    if (s_send(self) < 0 || PQputCopyEnd(self->conn, NULL) != 1) {
        return reg_ctl_fail("database error: %s", PQerrorMessage(self->conn));
    }
    PGresult *res = PQgetResult(self->conn);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        reg_ctl_fail("database error: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    while ((res = PQgetResult(self->conn)) != NULL) {
        PQclear(res);
    }
    return ok ? 0 : -1;
}

/* --follow: upserts what is left of the batch; adds the counts to imp. */
static int s_upsert(imp_db_t *self, imp_t *imp)
{
    const char *p[] = {self->team_id};
    long long counts[3][2] = {{0}};
    for (size_t i = 0; i < sizeof s_upsert_sql / sizeof s_upsert_sql[0]; i++) {
        PGresult *res = s_run(self, s_upsert_sql[i], 1, p);
        if (!res) {
            return -1;
        }
        counts[i][0] = atoll(PQgetvalue(res, 0, 0));
        counts[i][1] = atoll(PQgetvalue(res, 0, 1));
        PQclear(res);
    }
    imp->conversations += counts[0][0];
    imp->conv_changed += counts[0][1];
    imp->messages += counts[1][0];
    imp->msg_changed += counts[1][1];
    return 0;
}

/* Inserts (or upserts) what is left of the batch; adds the counts to imp. */
static int s_insert(imp_db_t *self, imp_t *imp, const char *drop)
{
    const char *d[] = {drop}, *p[] = {self->team_id};
    long long counts[5] = {0};
    if (s_exec(self, "DELETE FROM imp_rec WHERE unit = ANY($1::int[])", 1, d) < 0) {
        return -1;
    }
    if (imp->follow) {
        return s_upsert(self, imp);
    }
    for (size_t i = 0; i < sizeof s_insert_sql / sizeof s_insert_sql[0]; i++) {
        PGresult *res = s_run(self, s_insert_sql[i], 1, p);
        if (!res) {
            return -1;
        }
        /* The events statement is a SELECT of its count (its last_event_id update
           rides along); the others report their rows. */
        counts[i] = atoll(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : PQcmdTuples(res));
        PQclear(res);
    }
    imp->conversations += counts[0];
    imp->messages += counts[1];
    imp->events += counts[2];
    return 0;
}

int imp_db_flush(imp_db_t *self, imp_t *imp)
{
    char *drop = NULL;
    int rc = 0;
    if (self->in_copy) {
        self->in_copy = false;
        rc = s_copy_end(self);
        /* Statistics of the batch, so that the checks probe the big tables' indexes
           instead of scanning them (a temporary table is never auto-analysed). */
        rc = rc == 0 ? s_exec(self, "ANALYZE imp_rec", 0, NULL) : rc;
        rc = rc == 0 ? s_check(self, imp, &drop) : rc;
        rc = rc == 0 ? s_insert(self, imp, drop) : rc;
        rc = rc == 0 ? s_exec(self, "COMMIT", 0, NULL) : rc;
        if (rc < 0) {
            s_exec(self, "ROLLBACK", 0, NULL);
        }
    }
    free(drop);
    /* A unit being read stays: it moves to the front of the next batch. */
    imp_unit_t cur = imp->cur ? *imp->cur : (imp_unit_t){0};
    imp->nunits = 0;
    imp->batch_rows = 0;
    if (imp->cur) {
        imp->units[0] = cur;
        imp->cur = &imp->units[0];
        imp->nunits = 1;
    }
    return rc;
}
