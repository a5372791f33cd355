/*  reg_ctl_import_flush — the end of one stream's staged batch (one bigger
    than IMP_DIRECT_MAX, one of --follow, or a held one sent back here by
    reg_ctl_import_direct.c after a conflict), as a chain of
    statements sent with PQsendQueryParams (reg_ctl_import_db.c reads their
    results and calls imp_flush_step), so that while one backend checks and
    inserts a batch the importer stages the next one on another stream. In
    the batch's transaction: the COPY ends, the staged rows are analysed,
    conversations the database already has (in this team: skipped; in
    another: refused) are found and their units dropped (after a unique
    violation, also the units whose message ids are already used or
    repeated: s_check_convs_sql), then the rest is inserted with INSERT … SELECT:
    conversations (ON CONFLICT DO NOTHING, never owned by a node), their
    messages, their events (new global ids, in seq order), reverted_by links
    and the conversations' counters and last_event_id; then COMMIT. Streams
    run side by side, so a message id that two concurrent batches both insert
    collides on the primary key (or the two deadlock): the later one rolls
    back to the savepoint taken before its check and checks again, and now
    sees the other's rows. Single-threaded (the CLI's). */
#include "registry/reg_ctl_import_db.h"

#include <stdlib.h>
#include <string.h>

#define S_RETRIES 8 /* checks run again after conflicts before giving up */

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

/* The first check of a batch (not --follow): its conversations only. Message ids
   used already, in the database or twice in the batch, are left to the messages'
   primary key: the insert then fails with a unique violation, the batch rolls
   back to its savepoint and is checked again with s_check_sql, which names them.
   A new batch rarely has any, and probing a million ids one by one and sorting
   them cost more than the inserts' own uniqueness checks. */
static const char s_check_convs_sql[] =
    "SELECT r.unit, CASE WHEN c.team_id = $1::uuid THEN 'present' ELSE 'foreign' END, NULL, 0"
    " FROM imp_rec r JOIN conversations c ON c.id = r.conv WHERE r.kind = 'c'"
    " UNION ALL SELECT unit, 'duplicate', NULL, 1 FROM (SELECT unit, row_number() OVER"
    " (PARTITION BY conv ORDER BY unit) AS n FROM imp_rec WHERE kind = 'c') d WHERE n > 1"
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
    /* Which conversations this follower mirrors (it archives them when they
       are gone from the old server, and only them). */
    "WITH l AS (INSERT INTO legacy_mirror (conversation_id, team_id, source_url)"
    " SELECT id, $1::uuid, $2 FROM imp_new ON CONFLICT (conversation_id) DO NOTHING"
    " RETURNING 1) SELECT 0, count(*) FROM l",
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
    "INSERT INTO events (team_id, conversation_id, seq, type, source, action, reversible,"
    " created_at) SELECT $1::uuid, r.conv, r.seq, r.type, r.source::jsonb, r.action,"
    " r.reversible, r.created_at FROM imp_rec r JOIN imp_new n ON n.id = r.conv"
    " WHERE r.kind = 'e' ORDER BY r.unit, r.seq",
    /* last_event_id: the id of the event at last_event_seq (set above), one index
       probe per conversation rather than the inserted ids kept and grouped. */
    "UPDATE conversations c SET last_event_id = e.id FROM imp_new n JOIN events e"
    " ON e.conversation_id = n.id WHERE c.id = n.id AND c.team_id = $1::uuid"
    " AND e.seq = c.last_event_seq AND c.last_event_seq > 0",
    "UPDATE events e SET reverted_by = t.id FROM imp_rec r JOIN imp_new n ON n.id = r.conv"
    " JOIN events t ON t.conversation_id = r.conv AND t.seq = r.reverted_by_seq"
    " WHERE r.kind = 'e' AND r.reverted_by_seq IS NOT NULL AND e.conversation_id = r.conv"
    " AND e.seq = r.seq AND e.team_id = $1::uuid",
};

#define S_NINSERT (int)(sizeof s_insert_sql / sizeof s_insert_sql[0])
#define S_NUPSERT (int)(sizeof s_upsert_sql / sizeof s_upsert_sql[0])

int imp_stream_send(imp_stream_t *s, imp_step_t step, const char *sql, int n, const char *const *p)
{
    s->step = step;
    if (PQsendQueryParams(s->conn, sql, n, NULL, p, NULL, NULL, 0) != 1) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        return -1;
    }
    return 0;
}

imp_unit_t *imp_stream_unit(imp_stream_t *s, long n)
{
    long first = s->nunits ? s->units[0].unit : 0;
    return n >= first && n - first < (long)s->nunits ? &s->units[n - first] : NULL;
}

/* Reports one row of s_check_sql and marks its unit dropped. */
void imp_unit_dropped(imp_t *imp, imp_unit_t *u, const char *code, const char *detail)
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

/* Reads the check's rows; writes every dropped unit (and the ones refused
   while reading) as a Postgres int[] literal into s->drop. 0 / -1. */
static int s_checked(imp_stream_t *s, const PGresult *res)
{
    imp_t *imp = s->db->imp;
    for (int i = 0; i < PQntuples(res); i++) {
        imp_unit_t *u = imp_stream_unit(s, atol(PQgetvalue(res, i, 0)));
        if (u && !u->refused) {
            imp_unit_dropped(imp, u, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        }
    }
    size_t cap = 3 + s->nunits * 21, n = 0;
    free(s->drop);
    s->drop = malloc(cap);
    if (!s->drop) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    s->drop[n++] = '{';
    for (size_t i = 0; i < s->nunits; i++) {
        if (s->units[i].refused) {
            n +=
                (size_t)snprintf(s->drop + n, cap - n, "%s%ld", n > 1 ? "," : "", s->units[i].unit);
        }
    }
    snprintf(s->drop + n, cap - n, "}");
    return 0;
}

/* Keeps what write statement s->write answered. */
static void s_written(imp_stream_t *s, PGresult *res)
{
    int i = s->write;
    if (s->db->imp->follow) {
        /* Each upsert answers (inserted, changed). */
        s->counts[i] = atoll(PQgetvalue(res, 0, 0));
        s->counts_b[i] = atoll(PQgetvalue(res, 0, 1));
        return;
    }
    s->counts[i] = atoll(PQcmdTuples(res));
}

/* The batch is committed: its counts go to the totals. */
static void s_committed(imp_stream_t *s)
{
    imp_t *imp = s->db->imp;
    if (imp->follow) {
        imp->conversations += s->counts[0];
        imp->conv_changed += s->counts_b[0];
        imp->messages += s->counts[1];
        imp->msg_changed += s->counts_b[1];
        return;
    }
    long long kept = 0;
    for (size_t i = 0; i < s->nunits; i++) {
        kept += !s->units[i].refused;
    }
    imp->conversations += s->counts[0];
    imp->messages += s->counts[1];
    imp->events += s->counts[2];
    /* A kept conversation not inserted was inserted meanwhile by another
       stream's batch (the same id later in the file): skipped, like one
       committed before this batch's check. */
    imp->skipped += kept - s->counts[0];
}

/* Sends the write statement i (or COMMIT after the last). */
static int s_next_write(imp_stream_t *s, int i)
{
    const char *p[] = {s->db->team_id};
    int n = s->db->imp->follow ? S_NUPSERT : S_NINSERT;
    if (i >= n) {
        return imp_stream_send(s, IMP_ST_COMMIT, "COMMIT", 0, NULL);
    }
    s->write = i;
    if (!s->db->imp->follow) {
        return imp_stream_send(s, IMP_ST_WRITE, s_insert_sql[i], 1, p);
    }
    /* Only the legacy_mirror statement names the URL ($2): an unused
       parameter would have no type. */
    const char *pu[] = {s->db->team_id, s->db->imp->url};
    bool url = strstr(s_upsert_sql[i], "$2") != NULL;
    return imp_stream_send(s, IMP_ST_WRITE, s_upsert_sql[i], url ? 2 : 1, url ? pu : p);
}

/* A unique violation or a deadlock with another stream's batch, which can be
   checked again once that one has committed or rolled back. */
static bool s_retryable(const imp_stream_t *s, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s->step >= IMP_ST_CHECK && s->step <= IMP_ST_WRITE && s->retries < S_RETRIES && state &&
           (strcmp(state, "23505") == 0 || strcmp(state, "40P01") == 0);
}

/* Sends the step after s->step, whose result res was fine. 0 / -1. */
static int s_advance(imp_stream_t *s, PGresult *res)
{
    const char *team[] = {s->db->team_id};
    switch (s->step) {
        case IMP_ST_COPY_END:
            /* Statistics of the batch, so that the checks probe the big tables'
               indexes instead of scanning them (a temporary table is never
               auto-analysed). */
            return imp_stream_send(s, IMP_ST_ANALYZE, "ANALYZE imp_rec", 0, NULL);
        case IMP_ST_ANALYZE:
            return imp_stream_send(s, IMP_ST_SAVEPOINT, "SAVEPOINT imp_batch", 0, NULL);
        case IMP_ST_SAVEPOINT:
        case IMP_ST_ROLLBACK_TO:
            memset(s->counts, 0, sizeof s->counts);
            memset(s->counts_b, 0, sizeof s->counts_b);
            return imp_stream_send(s, IMP_ST_CHECK,
                                   s->db->imp->follow ? s_check_follow_sql
                                   : s->retries == 0  ? s_check_convs_sql
                                                      : s_check_sql,
                                   1, team);
        case IMP_ST_CHECK: {
            if (s_checked(s, res) < 0) {
                return -1;
            }
            const char *d[] = {s->drop};
            return imp_stream_send(s, IMP_ST_DROP,
                                   "DELETE FROM imp_rec WHERE unit = ANY($1::int[])", 1, d);
        }
        case IMP_ST_DROP:
            return s_next_write(s, 0);
        case IMP_ST_WRITE:
            s_written(s, res);
            return s_next_write(s, s->write + 1);
        case IMP_ST_COMMIT:
            s_committed(s);
            s->step = IMP_ST_IDLE;
            s->direct = false;
            s->len = 0; /* a direct batch's rows, held until now */
            return 0;
        default:
            return -1;
    }
}

int imp_flush_start(imp_stream_t *s)
{
    if (s->len && PQputCopyData(s->conn, s->out, (int)s->len) != 1) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        return -1;
    }
    s->len = 0;
    s->in_copy = false;
    s->retries = 0;
    if (PQputCopyEnd(s->conn, NULL) != 1) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        return -1;
    }
    s->step = IMP_ST_COPY_END;
    return 0;
}

void imp_flush_step(imp_stream_t *s, PGresult *res)
{
    if (s->step >= IMP_ST_D_BEGIN) {
        imp_direct_step(s, res);
        return;
    }
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (s_retryable(s, res)) {
            s->retries++;
            rc = imp_stream_send(s, IMP_ST_ROLLBACK_TO, "ROLLBACK TO SAVEPOINT imp_batch", 0, NULL);
        } else {
            reg_ctl_fail("database error: %s",
                         res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
            rc = -1;
        }
    } else {
        rc = s_advance(s, res);
    }
    PQclear(res);
    if (rc < 0) {
        /* The transaction is left as it is: the connection is not used again
           (the import stops), and closing it rolls back. */
        s->db->failed = true;
        s->step = IMP_ST_IDLE;
    }
}
