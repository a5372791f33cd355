/*  reg_ctl_import — `bickyctl import --team NAME FILE`: reads Bicky's export
    (JSON Lines) or the TypeScript server's ({"interaction", "messages"}
    records, as JSON Lines or as one JSON array, read element by element)
    and imports it into a team in bounded memory: one record at a time
    (at most IMP_RECORD_MAX bytes), written with COPY, one transaction per
    batch of whole conversations (reg_ctl_import_db.c). A conversation is
    imported whole or refused whole, with the line and the reason; one whose
    id the database already has in this team is skipped, so a second run (or
    a run after a killed one) changes nothing. With --follow URL the records
    come from a running old server instead (reg_ctl_import_follow.c). */
#include "registry/reg_ctl_import.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    FILE *in;         /* input */
    bool array;       /* one JSON array (else JSON Lines) */
    bool done;        /* end of input (or of the array) */
    long line;        /* current line (1-based) */
    long rec_line;    /* line where the current record starts */
    char *buf;        /* record bytes */
    size_t len, cap;  /* used, allocated */
    bool too_big;     /* the record passed IMP_RECORD_MAX (its bytes were dropped) */
    long long bytes;  /* bytes read (progress) */
    long long size;   /* input size, 0 when unknown */
    bool tty;         /* progress bar on stderr */
    int64_t next_ms;  /* next progress update */
    int64_t start_ms; /* start */
    json_rec_t *jr;   /* the fast reader of messages and events (reg_ctl_import_fast.c) */
} s_reader_t;

/* ---- the report --------------------------------------------------------------------------- */

void imp_refuse(imp_t *imp, long line, const char *conv, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    imp->refused++;
    if (!imp->json) {
        printf("refused  line %ld%s%s: %s\n", line, conv ? " conversation " : "", conv ? conv : "",
               why);
    } else if (json_array_size(imp->report) < IMP_REPORT_MAX) {
        json_array_append_new(imp->report, json_pack("{s:I, s:s?, s:s}", "line", (json_int_t)line,
                                                     "conversation_id", conv, "reason", why));
    }
}

/* ---- units ------------------------------------------------------------------------------- */

int imp_unit_begin(imp_t *imp, const char *conv, long line)
{
    if (imp->nunits >= IMP_BATCH_UNITS && imp_db_flush(imp->db, imp) < 0) {
        return -1;
    }
    imp_unit_t *u = &imp->units[imp->nunits++];
    *u = (imp_unit_t){.unit = ++imp->next_unit, .line = line};
    snprintf(u->conv, sizeof u->conv, "%s", conv);
    snprintf(imp->conv, sizeof imp->conv, "%s", conv);
    imp->cur = u;
    imp->in_unit = true;
    imp->unit_bad = false;
    imp->unit_line = line;
    imp->next_msg = imp->next_evt = 1;
    imp->want_msgs = imp->want_evts = -1;
    return 0;
}

void imp_unit_refuse(imp_t *imp, long line, const char *why)
{
    if (imp->unit_bad) {
        return;
    }
    imp->unit_bad = true;
    imp->cur->refused = true;
    imp_refuse(imp, line, imp->conv, "%s", why);
}

int imp_unit_end(imp_t *imp)
{
    if (!imp->in_unit) {
        return 0;
    }
    long long got_m = imp->next_msg - 1, got_e = imp->next_evt - 1;
    if (!imp->unit_bad && imp->want_msgs >= 0 && got_m != imp->want_msgs) {
        char why[160];
        snprintf(why, sizeof why, "incomplete: %lld of its %lld messages", got_m, imp->want_msgs);
        imp_unit_refuse(imp, imp->unit_line, why);
    } else if (!imp->unit_bad && imp->want_evts >= 0 && got_e != imp->want_evts) {
        char why[160];
        snprintf(why, sizeof why, "incomplete: %lld of its %lld events", got_e, imp->want_evts);
        imp_unit_refuse(imp, imp->unit_line, why);
    }
    imp->in_unit = false;
    imp->cur = NULL;
    return imp->batch_rows >= IMP_BATCH_ROWS ? imp_db_flush(imp->db, imp) : 0;
}

/* ---- reading records ---------------------------------------------------------------------- */

static int s_getc(s_reader_t *r)
{
    int c = getc_unlocked(r->in);
    if (c != EOF) {
        r->bytes++;
        r->line += c == '\n';
    }
    return c;
}

static void s_put(s_reader_t *r, int c)
{
    if (r->too_big) {
        return;
    }
    if (r->len + 2 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        char *grown = r->len + 2 > (size_t)IMP_RECORD_MAX ? NULL : realloc(r->buf, cap);
        if (!grown) {
            r->too_big = true;
            return;
        }
        r->buf = grown;
        r->cap = cap;
    }
    r->buf[r->len++] = (char)c;
}

/* The next line into r->buf; false at the end of input. */
static bool s_next_line(s_reader_t *r)
{
    int c;
    long long n = 0;
    r->len = 0;
    r->too_big = false;
    r->rec_line = r->line;
    while ((c = getc_unlocked(r->in)) != EOF && c != '\n') {
        n++;
        if (r->len + 2 <= r->cap) {
            r->buf[r->len++] = (char)c; /* the common case, without s_put's checks */
        } else {
            s_put(r, c);
        }
    }
    r->bytes += n + (c == '\n');
    r->line += c == '\n';
    if (c == EOF && r->len == 0 && !r->too_big) {
        return false;
    }
    if (r->buf) {
        r->buf[r->len] = 0;
    }
    return true;
}

static int s_skip_space(s_reader_t *r)
{
    int c;
    while ((c = s_getc(r)) == ' ' || c == '\t' || c == '\n' || c == '\r') {
    }
    return c;
}

/* The next element of the array into r->buf (its bytes, balanced by brackets
   outside strings); false at the end. A malformed array ends the input. */
static bool s_next_element(s_reader_t *r, imp_t *imp)
{
    int c = s_skip_space(r), depth = 0;
    bool str = false, esc = false;
    r->len = 0;
    r->too_big = false;
    r->rec_line = r->line;
    if (c == ']' || c == EOF) {
        if (c == EOF) {
            imp_refuse(imp, r->line, NULL, "the JSON array is not closed");
        }
        return false;
    }
    for (; c != EOF; c = s_getc(r)) {
        if (!str && depth == 0 && (c == ',' || c == ']') && r->len > 0) {
            r->done = c == ']';
            break;
        }
        s_put(r, c);
        if (str) {
            str = esc ? (esc = false, true) : c == '\\' ? (esc = true) : c != '"';
        } else {
            str = c == '"';
            depth += (c == '{' || c == '[') - (c == '}' || c == ']');
        }
    }
    if (r->buf) {
        r->buf[r->len] = 0;
    }
    if (c == EOF) {
        r->done = true;
    }
    return r->len > 0 || r->too_big;
}

static void s_progress(s_reader_t *r, imp_t *imp, bool last)
{
    int64_t now = util_mono_ms();
    if (!r->tty || (!last && now < r->next_ms)) {
        return;
    }
    r->next_ms = now + 200;
    double s = (double)(now - r->start_ms) / 1000.0;
    fprintf(stderr, "\rimport: %lld messages read, %.1f MB", imp->read_msgs, r->bytes / 1e6);
    if (r->size > 0) {
        fprintf(stderr, " of %.1f MB (%d%%)", r->size / 1e6, (int)(100.0 * r->bytes / r->size));
    }
    fprintf(stderr, ", %.0f messages/s   %s", s > 0 ? imp->read_msgs / s : 0.0, last ? "\n" : "");
}

/* Parses and handles one record; -1 on a fatal (database) error. */
static int s_handle(s_reader_t *r, imp_t *imp)
{
    if (r->too_big) {
        imp_refuse(imp, r->rec_line, NULL, "record longer than %ld bytes", IMP_RECORD_MAX);
        return 0;
    }
    int fast = imp_fast_record(imp, r->jr, r->buf, r->len, r->rec_line);
    if (fast != 0) {
        return fast < 0 ? -1 : 0;
    }
    json_error_t err;
    json_t *rec = json_loadb(r->buf, r->len, JSON_REJECT_DUPLICATES, &err);
    if (!rec) {
        imp_refuse(imp, r->rec_line, NULL, "invalid JSON at column %d: %s", err.column, err.text);
        return 0;
    }
    return imp_record(imp, rec, r->rec_line);
}

static int s_read_all(s_reader_t *r, imp_t *imp)
{
    int c = s_skip_space(r);
    r->array = c == '[';
    if (!r->array && c != EOF) {
        ungetc(c, r->in);
        r->bytes--;
    }
    int rc = 0;
    while (rc == 0 && !r->done) {
        bool more = r->array ? s_next_element(r, imp) : s_next_line(r);
        if (!more) {
            break;
        }
        bool blank = !r->array && !r->too_big && strspn(r->buf ? r->buf : "", " \t\r") == r->len;
        rc = blank ? 0 : s_handle(r, imp);
        s_progress(r, imp, false);
    }
    if (rc == 0 && r->array && s_skip_space(r) != EOF) {
        imp_refuse(imp, r->line, NULL, "data after the JSON array");
    }
    return rc;
}

/* ---- the command ----------------------------------------------------------------------- */

static void s_report(imp_t *imp)
{
    if (imp->json) {
        json_t *out =
            json_pack("{s:s, s:{s:I, s:I, s:I}, s:I, s:I, s:O, s:b}", "team", imp->team, "imported",
                      "conversations", (json_int_t)imp->conversations, "messages",
                      (json_int_t)imp->messages, "events", (json_int_t)imp->events, "skipped",
                      (json_int_t)imp->skipped, "refused_count", (json_int_t)imp->refused,
                      "refused", imp->report, "refused_truncated", imp->refused > IMP_REPORT_MAX);
        char *text = json_dumps(out, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(out);
        return;
    }
    printf("imported %lld conversation%s (%lld messages, %lld events) into team %s\n",
           imp->conversations, imp->conversations == 1 ? "" : "s", imp->messages, imp->events,
           imp->team);
    printf("skipped  %lld conversation%s already in the team\n", imp->skipped,
           imp->skipped == 1 ? "" : "s");
    printf("refused  %lld record%s\n", imp->refused, imp->refused == 1 ? "" : "s");
}

static FILE *s_open(const char *path, s_reader_t *r)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    struct stat st;
    if (in && fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)) {
        r->size = st.st_size;
    }
    return in;
}

int reg_ctl_import(reg_ctl_t *ctl, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strncmp(argv[i], "--follow=", 9) == 0) {
            return imp_follow(ctl, argc, argv);
        }
    }
    const char *team = NULL, *follow = NULL;
    long streams = IMP_STREAMS;
    char **pos = NULL;
    const cfg_opt_t opts[] = {
        {"--team", NULL, CFG_STR, &team, 0, 0, "team to import into (required; it must exist)"},
        {"--streams", NULL, CFG_INT, &streams, 1, IMP_STREAMS_MAX,
         "database connections (1-16), each COPYing and inserting its own batches of whole "
         "conversations"},
        {"--follow", NULL, CFG_STR, &follow, 0, 0,
         "URL: instead of FILE, mirror a running old server (`--follow URL --help`)"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc =
        reg_ctl_parse(ctl, "--team NAME [--streams N] FILE (- = stdin) | --team NAME --follow URL",
                      opts, argc, argv, 1, &pos);
    if (rc >= 0) {
        return rc;
    }
    if (!team || !*team) {
        fprintf(stderr, "bickyctl import: --team NAME is required\n");
        return REG_CTL_EXIT_USAGE;
    }
    s_reader_t r = {.line = 1, .tty = isatty(2), .start_ms = util_mono_ms()};
    if (!(r.jr = json_rec_new())) {
        return reg_ctl_fail("out of memory");
    }
    if (!(r.in = s_open(pos[0], &r))) {
        json_rec_destroy(&r.jr);
        return reg_ctl_fail("cannot open %s: %s", pos[0], strerror(errno));
    }
    imp_t imp = {.json = ctl->json, .team = team, .report = json_array()};
    int code = REG_CTL_EXIT_FAIL;
    imp.db = imp_db_new(ctl, &imp, (int)streams, &code);
    if (imp.db) {
        rc = s_read_all(&r, &imp);
        rc = rc == 0 ? imp_unit_end(&imp) : rc;
        /* Even after a failure: the other streams' batches end (commit) first. */
        rc = imp_db_finish(imp.db, &imp) < 0 ? -1 : rc;
        s_progress(&r, &imp, true);
        if (ferror(r.in)) {
            rc = reg_ctl_fail("cannot read %s: %s", pos[0], strerror(errno));
        }
        s_report(&imp);
        code = rc < 0 ? REG_CTL_EXIT_FAIL : imp.refused ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_OK;
    }
    imp_db_destroy(&imp.db);
    if (r.in != stdin) {
        fclose(r.in);
    }
    free(r.buf);
    json_rec_destroy(&r.jr);
    json_decref(imp.report);
    return code;
}
