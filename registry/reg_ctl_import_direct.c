/*  reg_ctl_import_direct — a batch that fits in memory (IMP_DIRECT_MAX bytes
    of staging rows, held in its stream's s->out instead of COPYed into
    imp_rec) goes straight into the tables: in one transaction, the database
    is asked which of its conversations it has (in this team: skipped; in
    another: refused) and the file's repeated conversation ids are refused,
    then the rest is COPYed into conversations (with its counters, known by
    now), messages and events (in seq order, so that their global ids follow
    their seqs), and last_event_id and reverted_by are set. Staging every row
    in a temporary table and copying it again took Postgres about 40% more
    CPU (docs/performance.md, "Import"). A message id the database has
    already, or that the batch repeats, breaks the COPY with a unique
    violation (as does another stream's batch with the same ids, or a
    deadlock with it): the transaction rolls back and the batch goes the
    staged way (reg_ctl_import_flush.c), whose full check names the ids.
    COPY rows are handed to libpq in non-blocking mode, so the importer reads
    the next batch meanwhile. Single-threaded (the CLI's). */
#include "registry/reg_ctl_import_db.h"

#include <stdlib.h>
#include <string.h>

#define S_CHUNK (256 * 1024) /* COPY bytes handed to libpq at once */

typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

typedef struct {
    const char *conv; /* in s->out, 36 bytes */
    long unit;
} s_conv_t;

struct imp_direct_t {
    int table;                /* the COPY under way: 0 conversations, 1 messages, 2 events */
    size_t src;               /* where its next row is in s->out */
    s_buf_t chunk;            /* its converted rows not yet taken by libpq */
    bool ended;               /* PQputCopyEnd done */
    s_buf_t ids;              /* the kept conversations' ids, a uuid[] literal */
    s_buf_t rconv, rseq, rby; /* events with reverted_by: conversation, seq, target seq */
    s_conv_t *convs;          /* the batch's conversation rows */
    size_t nconvs, capconvs;  /* used, allocated */
};

static const char *const s_copy_sql[] = {
    "COPY conversations (id, team_id, source, type, title, strategy, status, on_busy,"
    " metadata, message_count, last_msg_seq, last_event_seq, created_at, updated_at)"
    " FROM STDIN",
    "COPY messages (id, conversation_id, team_id, seq, role, content, status, metadata,"
    " created_at, updated_at) FROM STDIN",
    "COPY events (team_id, conversation_id, seq, type, source, action, reversible, created_at)"
    " FROM STDIN",
};

static const char s_check_sql[] =
    "SELECT id, team_id = $1::uuid FROM conversations WHERE id = ANY($2::uuid[])";

/* last_event_id: one index probe per conversation. */
static const char s_last_sql[] =
    "UPDATE conversations c SET last_event_id = (SELECT e.id FROM events e"
    " WHERE e.conversation_id = c.id AND e.seq = c.last_event_seq)"
    " WHERE c.id = ANY($2::uuid[]) AND c.team_id = $1::uuid AND c.last_event_seq > 0";

static const char s_revert_sql[] =
    "UPDATE events e SET reverted_by = t.id FROM unnest($2::uuid[], $3::bigint[], $4::bigint[])"
    " AS r(conv, seq, rseq) JOIN events t ON t.conversation_id = r.conv AND t.seq = r.rseq"
    " WHERE e.conversation_id = r.conv AND e.seq = r.seq AND e.team_id = $1::uuid";

/* ---- buffers ----------------------------------------------------------------------------- */

static int s_cat(s_buf_t *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(b->p, cap);
        if (!grown) {
            reg_ctl_fail("out of memory");
            return -1;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int s_cats(s_buf_t *b, const char *p)
{
    return s_cat(b, p, strlen(p));
}

/* Appends one element to a Postgres array literal being built ("{a,b"). */
static int s_elem(s_buf_t *b, const char *p, size_t n)
{
    return s_cat(b, b->len ? "," : "{", 1) < 0 ? -1 : s_cat(b, p, n);
}

/* Closes the literal (its elements never end in '}'); "{}" when empty. */
static const char *s_array(s_buf_t *b)
{
    if (!b->len) {
        return "{}";
    }
    if (b->p[b->len - 1] != '}' && s_cat(b, "}", 1) < 0) {
        return NULL;
    }
    return b->p;
}

/* ---- the batch's rows -------------------------------------------------------------------- */

/* The row at p: where it ends (its newline, or end), its unit number and its
   kind (the first and third fields; 0 when malformed). COPY text escapes tabs
   and newlines, so both split it. */
static const char *s_head(const char *p, const char *end, long *unit, char *kind)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    nl = nl ? nl : end;
    char *stop;
    *unit = strtol(p, &stop, 10);
    const char *k =
        stop < nl && *stop == '\t' ? memchr(stop + 1, '\t', (size_t)(nl - stop - 1)) : NULL;
    *kind = k && k + 2 < nl && k[2] == '\t' ? k[1] : 0;
    return nl;
}

/* The fields of the row from p to its newline nl: starts and lengths. */
static void s_fields(const char *p, const char *nl, const char **f, size_t *n)
{
    for (int i = 0; i < IMP_NCOLS; i++) {
        const char *tab = i + 1 < IMP_NCOLS ? memchr(p, '\t', (size_t)(nl - p)) : NULL;
        const char *stop = tab ? tab : nl;
        f[i] = p;
        n[i] = (size_t)(stop - p);
        p = tab ? tab + 1 : nl;
    }
}

/* Appends the row (fields f, n) of unit u to the COPY of table t. 0 / -1. */
static int s_row(imp_stream_t *s, int t, const imp_unit_t *u, const char **f, const size_t *n)
{
    static const int cols[3][14] = {
        {IMP_C_CONV, -1, IMP_C_SOURCE, IMP_C_TYPE, IMP_C_TITLE, IMP_C_STRATEGY, IMP_C_STATUS,
         IMP_C_ON_BUSY, IMP_C_METADATA, -2, -2, -3, IMP_C_CREATED, IMP_C_UPDATED},
        {IMP_C_ID, IMP_C_CONV, -1, IMP_C_SEQ, IMP_C_ROLE, IMP_C_CONTENT, IMP_C_STATUS,
         IMP_C_METADATA, IMP_C_CREATED, IMP_C_UPDATED, -9},
        {-1, IMP_C_CONV, IMP_C_SEQ, IMP_C_TYPE, IMP_C_SOURCE, IMP_C_ACTION, IMP_C_REVERSIBLE,
         IMP_C_CREATED, -9},
    };
    s_buf_t *b = &s->d->chunk;
    for (int i = 0; i < 14 && cols[t][i] != -9; i++) {
        int c = cols[t][i];
        char num[24];
        int rc = i ? s_cat(b, "\t", 1) : 0;
        if (c >= 0) {
            rc = rc < 0 ? rc : s_cat(b, f[c], n[c]);
        } else if (c == -1) {
            rc = rc < 0 ? rc : s_cats(b, s->db->team_id);
        } else {
            /* Seqs go 1, 2, 3…: a conversation's count is its last seq. */
            snprintf(num, sizeof num, "%lld", c == -2 ? u->msgs : u->events);
            rc = rc < 0 ? rc : s_cats(b, num);
        }
        if (rc < 0) {
            return -1;
        }
    }
    if (t == 2 && !(n[IMP_C_REVERTED_BY] == 2 && memcmp(f[IMP_C_REVERTED_BY], "\\N", 2) == 0)) {
        if (s_elem(&s->d->rconv, f[IMP_C_CONV], n[IMP_C_CONV]) < 0 ||
            s_elem(&s->d->rseq, f[IMP_C_SEQ], n[IMP_C_SEQ]) < 0 ||
            s_elem(&s->d->rby, f[IMP_C_REVERTED_BY], n[IMP_C_REVERTED_BY]) < 0) {
            return -1;
        }
    }
    return s_cat(b, "\n", 1);
}

/* Converts the running COPY's next rows into d->chunk (about S_CHUNK bytes). */
static int s_convert(imp_stream_t *s)
{
    static const char kinds[] = {'c', 'm', 'e'};
    imp_direct_t *d = s->d;
    const char *p = s->out + d->src, *end = s->out + s->len;
    while (p < end && d->chunk.len < S_CHUNK) {
        long unit;
        char kind;
        const char *nl = s_head(p, end, &unit, &kind);
        const imp_unit_t *u = kind == kinds[d->table] ? imp_stream_unit(s, unit) : NULL;
        if (u && !u->refused) {
            const char *f[IMP_NCOLS];
            size_t n[IMP_NCOLS];
            s_fields(p, nl, f, n);
            if (s_row(s, d->table, u, f, n) < 0) {
                return -1;
            }
        }
        p = nl < end ? nl + 1 : end;
    }
    d->src = (size_t)(p - s->out);
    return 0;
}

int imp_direct_feed(imp_stream_t *s)
{
    imp_direct_t *d = s->d;
    for (;;) {
        if (!d->chunk.len && d->src < s->len && s_convert(s) < 0) {
            return -1;
        }
        if (!d->chunk.len) {
            break;
        }
        int rc = PQputCopyData(s->conn, d->chunk.p, (int)d->chunk.len);
        if (rc < 0) {
            reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
            return -1;
        }
        if (rc == 0) {
            return 0; /* libpq's buffer is full: again once the socket is writable */
        }
        d->chunk.len = 0;
    }
    if (!d->ended) {
        int rc = PQputCopyEnd(s->conn, NULL);
        if (rc < 0) {
            reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
            return -1;
        }
        if (rc == 0) {
            return 0;
        }
        d->ended = true;
    }
    int rc = PQflush(s->conn);
    if (rc < 0) {
        reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
        return -1;
    }
    if (rc == 0) {
        s->feeding = false;
        PQsetnonblocking(s->conn, 0);
    }
    return 0;
}

/* ---- the check --------------------------------------------------------------------------- */

static int s_conv_cmp(const void *a, const void *b)
{
    const s_conv_t *x = a, *y = b;
    int c = memcmp(x->conv, y->conv, 36);
    return c ? c : (x->unit > y->unit) - (x->unit < y->unit);
}

/* Lists the batch's conversation rows in d->convs, sorted by id then unit. 0 / -1. */
static int s_list_convs(imp_stream_t *s)
{
    imp_direct_t *d = s->d;
    d->nconvs = 0;
    const char *p = s->out, *end = s->out + s->len;
    while (p < end) {
        long unit;
        char kind;
        const char *nl = s_head(p, end, &unit, &kind), *f[IMP_NCOLS];
        size_t n[IMP_NCOLS];
        if (kind == 'c') {
            s_fields(p, nl, f, n);
        }
        if (kind == 'c' && n[IMP_C_CONV] == 36) {
            if (d->nconvs == d->capconvs) {
                size_t cap = d->capconvs ? d->capconvs * 2 : 256;
                s_conv_t *grown = realloc(d->convs, cap * sizeof *grown);
                if (!grown) {
                    reg_ctl_fail("out of memory");
                    return -1;
                }
                d->convs = grown;
                d->capconvs = cap;
            }
            d->convs[d->nconvs++] = (s_conv_t){.conv = f[IMP_C_CONV], .unit = unit};
        }
        p = nl < end ? nl + 1 : end;
    }
    qsort(d->convs, d->nconvs, sizeof *d->convs, s_conv_cmp);
    return 0;
}

/* Drops the units the check found (present, foreign), then the later ones of
   each repeated id. */
static void s_checked(imp_stream_t *s, const PGresult *res)
{
    imp_direct_t *d = s->d;
    imp_t *imp = s->db->imp;
    for (int i = 0; i < PQntuples(res); i++) {
        s_conv_t key = {.conv = PQgetvalue(res, i, 0), .unit = -2};
        const char *code = strcmp(PQgetvalue(res, i, 1), "t") == 0 ? "present" : "foreign";
        /* Every row of that id: the first at or after (id, -2). */
        size_t lo = 0, hi = d->nconvs;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s_conv_cmp(&d->convs[mid], &key) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (; lo < d->nconvs && memcmp(d->convs[lo].conv, key.conv, 36) == 0; lo++) {
            imp_unit_t *u = imp_stream_unit(s, d->convs[lo].unit);
            if (u && !u->refused) {
                imp_unit_dropped(imp, u, code, NULL);
            }
        }
    }
    for (size_t i = 1; i < d->nconvs; i++) {
        imp_unit_t *u = imp_stream_unit(s, d->convs[i].unit);
        if (memcmp(d->convs[i].conv, d->convs[i - 1].conv, 36) == 0 && u && !u->refused) {
            imp_unit_dropped(imp, u, "duplicate", NULL);
        }
    }
}

/* The ids of the batch's units not refused, a uuid[] literal; NULL on OOM. */
static const char *s_kept_ids(imp_stream_t *s)
{
    s_buf_t *ids = &s->d->ids;
    ids->len = 0;
    for (size_t i = 0; i < s->nunits; i++) {
        if (!s->units[i].refused && s_elem(ids, s->units[i].conv, 36) < 0) {
            return NULL;
        }
    }
    return s_array(ids);
}

/* ---- steps ------------------------------------------------------------------------------- */

/* Starts the COPY of table t. */
static int s_copy(imp_stream_t *s, int t)
{
    s->d->table = t;
    s->d->src = 0;
    s->d->chunk.len = 0;
    s->d->ended = false;
    return imp_stream_send(s, IMP_ST_D_COPY, s_copy_sql[t], 0, NULL);
}

/* After a conflict (rolled back): the batch goes the staged way, whose full
   check finds what conflicted. Blocking: conflicts are rare. 0 / -1. */
static int s_fall_back(imp_stream_t *s)
{
    static const char *const sql[] = {"BEGIN", "COPY imp_rec FROM STDIN"};
    for (int i = 0; i < 2; i++) {
        PGresult *res = PQexec(s->conn, sql[i]);
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_COPY_IN) {
            reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
            return -1;
        }
    }
    s->direct = false;
    s->in_copy = true;
    if (imp_flush_start(s) < 0) {
        return -1;
    }
    s->retries = 1; /* the full check */
    return 0;
}

int imp_direct_start(imp_stream_t *s)
{
    if (!s->d && !(s->d = calloc(1, sizeof *s->d))) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    imp_direct_t *d = s->d;
    d->rconv.len = d->rseq.len = d->rby.len = 0;
    memset(s->counts, 0, sizeof s->counts);
    s->direct = true;
    return imp_stream_send(s, IMP_ST_D_BEGIN, "BEGIN", 0, NULL);
}

/* Sends the step after s->step, whose result res was fine. 0 / -1. */
static int s_advance(imp_stream_t *s, PGresult *res)
{
    imp_direct_t *d = s->d;
    switch (s->step) {
        case IMP_ST_D_BEGIN: {
            const char *p[] = {s->db->team_id, s_list_convs(s) < 0 ? NULL : s_kept_ids(s)};
            if (!p[1]) {
                return -1;
            }
            return imp_stream_send(s, IMP_ST_D_CHECK, s_check_sql, 2, p);
        }
        case IMP_ST_D_CHECK:
            s_checked(s, res);
            return s_copy(s, 0);
        case IMP_ST_D_COPY:
            /* PGRES_COPY_IN: the rows, without blocking (s_pump goes on). */
            s->step = IMP_ST_D_FEED;
            s->feeding = true;
            if (PQsetnonblocking(s->conn, 1) != 0) {
                reg_ctl_fail("database error: %s", PQerrorMessage(s->conn));
                return -1;
            }
            return imp_direct_feed(s);
        case IMP_ST_D_FEED: {
            s->counts[d->table] = atoll(PQcmdTuples(res));
            if (d->table < 2) {
                return s_copy(s, d->table + 1);
            }
            const char *p[] = {s->db->team_id, s_kept_ids(s)};
            return p[1] ? imp_stream_send(s, IMP_ST_D_LAST, s_last_sql, 2, p) : -1;
        }
        case IMP_ST_D_LAST:
            if (d->rconv.len) {
                const char *p[] = {s->db->team_id, s_array(&d->rconv), s_array(&d->rseq),
                                   s_array(&d->rby)};
                return p[1] && p[2] && p[3]
                           ? imp_stream_send(s, IMP_ST_D_REVERT, s_revert_sql, 4, p)
                           : -1;
            }
            return imp_stream_send(s, IMP_ST_COMMIT, "COMMIT", 0, NULL);
        case IMP_ST_D_REVERT:
            return imp_stream_send(s, IMP_ST_COMMIT, "COMMIT", 0, NULL);
        case IMP_ST_D_ROLLBACK:
            return s_fall_back(s);
        default:
            return -1;
    }
}

void imp_direct_step(imp_stream_t *s, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int rc;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
        (st == PGRES_COPY_IN && s->step == IMP_ST_D_COPY)) {
        rc = s_advance(s, res);
    } else if (s->step != IMP_ST_D_ROLLBACK && state &&
               (strcmp(state, "23505") == 0 || strcmp(state, "40P01") == 0)) {
        /* A message id used already or twice, or another stream's batch
           with the same ids: this one goes the staged way. */
        rc = imp_stream_send(s, IMP_ST_D_ROLLBACK, "ROLLBACK", 0, NULL);
    } else {
        reg_ctl_fail("database error: %s",
                     res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
        rc = -1;
    }
    PQclear(res);
    if (rc < 0) {
        s->db->failed = true;
        s->step = IMP_ST_IDLE;
        s->feeding = false;
    }
}

void imp_direct_free(imp_stream_t *s)
{
    if (s->d) {
        free(s->d->chunk.p);
        free(s->d->ids.p);
        free(s->d->rconv.p);
        free(s->d->rseq.p);
        free(s->d->rby.p);
        free(s->d->convs);
        free(s->d);
        s->d = NULL;
    }
}
