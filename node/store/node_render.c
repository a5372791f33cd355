/*  node_render — API.md JSON of conversations, messages and events from plain
    fields, compact (the node's one spacing, as jansson's JSON_COMPACT), with
    the keys, string escapes and times json_build_object/to_char produced in
    SQL (see the rendering section of node_store.h). Pure functions; any
    thread. */
#include "node/store/node_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings ----------------------------------------------------------------------------- */

void node_render_str(node_buf_t *b, const char *s)
{
    if (!s) {
        node_buf_add(b, "null", 4);
        return;
    }
    node_buf_add(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        node_buf_add(b, run, (size_t)(p - run));
        run = p + 1;
        char esc[8];
        switch (ch) {
            case '\b':
                node_buf_add(b, "\\b", 2);
                break;
            case '\f':
                node_buf_add(b, "\\f", 2);
                break;
            case '\n':
                node_buf_add(b, "\\n", 2);
                break;
            case '\r':
                node_buf_add(b, "\\r", 2);
                break;
            case '\t':
                node_buf_add(b, "\\t", 2);
                break;
            case '"':
                node_buf_add(b, "\\\"", 2);
                break;
            case '\\':
                node_buf_add(b, "\\\\", 2);
                break;
            default:
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                node_buf_add(b, esc, 6);
                break;
        }
    }
    node_buf_str(b, run);
    node_buf_add(b, "\"", 1);
}

/* ---- timestamps -------------------------------------------------------------------------- */

typedef struct {
    long long year; /* astronomical (1 BC = 0) */
    int mon, day, hour, min, sec;
    long usec;
} s_tm_t;

/* Reads n..n_max digits (n_max 0: no upper bound but at most 9 digits) as a number. */
static bool s_num(const char **p, int n, int n_max, long long *out)
{
    long long v = 0;
    int k = 0;
    while (**p >= '0' && **p <= '9' && (n_max == 0 || k < n_max)) {
        if (k >= 9) {
            return false;
        }
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    *out = v;
    return k >= n && (n_max == 0 || k <= n_max);
}

static bool s_lit(const char **p, char c)
{
    if (**p != c) {
        return false;
    }
    (*p)++;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long long s_days(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void s_civil(long long z, s_tm_t *t)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    t->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    t->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
    t->year = yoe + era * 400 + (t->mon <= 2);
}

/* The offset "+HH[:MM[:SS]]" in seconds east of UTC; false when malformed. */
static bool s_offset(const char **p, long long *secs)
{
    int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
    long long h = 0, m = 0, s = 0;
    if (!sign) {
        return false;
    }
    (*p)++;
    if (!s_num(p, 2, 2, &h)) {
        return false;
    }
    if (s_lit(p, ':') && (!s_num(p, 2, 2, &m) || (s_lit(p, ':') && !s_num(p, 2, 2, &s)))) {
        return false;
    }
    *secs = sign * (h * 3600 + m * 60 + s);
    return true;
}

/* Parses ISO timestamptz output into UTC fields. */
static bool s_parse(const char *pg, s_tm_t *t)
{
    const char *p = pg;
    long long y, mo, d, h, mi, s, frac = 0, off = 0;
    if (!p || !s_num(&p, 4, 0, &y) || !s_lit(&p, '-') || !s_num(&p, 2, 2, &mo) || !s_lit(&p, '-') ||
        !s_num(&p, 2, 2, &d) || !(s_lit(&p, ' ') || s_lit(&p, 'T')) || !s_num(&p, 2, 2, &h) ||
        !s_lit(&p, ':') || !s_num(&p, 2, 2, &mi) || !s_lit(&p, ':') || !s_num(&p, 2, 2, &s)) {
        return false;
    }
    if (s_lit(&p, '.')) {
        const char *f = p;
        if (!s_num(&p, 1, 6, &frac)) {
            return false;
        }
        for (long n = p - f; n < 6; n++) {
            frac *= 10;
        }
    }
    if (!s_offset(&p, &off) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        s > 59) {
        return false;
    }
    bool bc = strcmp(p, " BC") == 0;
    if (!bc && *p) {
        return false;
    }
    if (off == 0) { /* UTC already: the usual case */
        *t = (s_tm_t){bc ? 1 - y : y, (int)mo, (int)d, (int)h, (int)mi, (int)s, (long)frac};
        return true;
    }
    long long t_s = s_days(bc ? 1 - y : y, (int)mo, (int)d) * 86400 + h * 3600 + mi * 60 + s - off;
    long long days = t_s >= 0 ? t_s / 86400 : -((-t_s + 86399) / 86400);
    long long rem = t_s - days * 86400;
    s_civil(days, t);
    t->hour = (int)(rem / 3600);
    t->min = (int)(rem / 60 % 60);
    t->sec = (int)(rem % 60);
    t->usec = (long)frac;
    return true;
}

/* Writes v as exactly w digits (zero-padded) at p; returns p + w. */
static char *s_digits(char *p, long long v, int w)
{
    for (int k = w - 1; k >= 0; k--) {
        p[k] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + w;
}

/* to_char's YYYY-MM-DD"T"HH24:MI:SS.MS"Z" (or .US): BC years print as their positive
   number, years beyond 9999 with all their digits. Hand-formatted: snprintf was most of
   the cost of rendering a page. */
static int s_format(const s_tm_t *t, char *out, size_t cap, bool micro)
{
    long long y = t->year <= 0 ? 1 - t->year : t->year;
    int yw = 4;
    for (long long v = y; v > 9999; v /= 10) {
        yw++;
    }
    if ((size_t)yw + (micro ? 24 : 21) > cap) {
        out[0] = 0;
        return -1;
    }
    char *p = s_digits(out, y, yw);
    *p++ = '-';
    p = s_digits(p, t->mon, 2);
    *p++ = '-';
    p = s_digits(p, t->day, 2);
    *p++ = 'T';
    p = s_digits(p, t->hour, 2);
    *p++ = ':';
    p = s_digits(p, t->min, 2);
    *p++ = ':';
    p = s_digits(p, t->sec, 2);
    *p++ = '.';
    p = micro ? s_digits(p, t->usec, 6) : s_digits(p, t->usec / 1000, 3);
    *p++ = 'Z';
    *p = 0;
    return (int)(p - out);
}

int node_ts_api(const char *pg, char out[32])
{
    s_tm_t t;
    if (!s_parse(pg, &t)) {
        out[0] = 0;
        return -1;
    }
    return s_format(&t, out, 32, false);
}

int node_ts_cursor(const char *pg, char out[40])
{
    s_tm_t t;
    if (!s_parse(pg, &t)) {
        out[0] = 0;
        return -1;
    }
    return s_format(&t, out, 40, true);
}

/* ---- objects ----------------------------------------------------------------------------- */

/* ",\"key\":" (or "{\"key\":" for the first key): the key literal is passed whole. */
#define KEY(b, lit) node_buf_add(b, lit, sizeof lit - 1)

static void s_ts(node_buf_t *b, const char *pg)
{
    char ts[32];
    int n = node_ts_api(pg, ts);
    if (n < 0) {
        node_buf_add(b, "null", 4);
        return;
    }
    node_buf_add(b, "\"", 1);
    node_buf_add(b, ts, (size_t)n);
    node_buf_add(b, "\"", 1);
}

static void s_ll(node_buf_t *b, long long v)
{
    char num[24];
    char *p = num + sizeof num;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--p = '-';
    }
    node_buf_add(b, p, (size_t)(num + sizeof num - p));
}

/* A jsonb column's text (Postgres prints {"a": 1, "b": [1, 2]}), compacted; or the
   node's own compact text (own), as it is. */
static void s_raw(node_buf_t *b, const char *json, bool own)
{
    if (own) {
        node_buf_str(b, json ? json : "null");
    } else {
        node_buf_json(b, json);
    }
}

void node_render_conv(node_buf_t *b, const node_conv_fields_t *c)
{
    KEY(b, "{\"id\":");
    node_render_str(b, c->id);
    KEY(b, ",\"source\":");
    node_render_str(b, c->source);
    KEY(b, ",\"type\":");
    node_render_str(b, c->type);
    KEY(b, ",\"title\":");
    node_render_str(b, c->title);
    KEY(b, ",\"strategy\":");
    node_render_str(b, c->strategy);
    KEY(b, ",\"worktree_id\":");
    node_render_str(b, c->worktree_id);
    KEY(b, ",\"status\":");
    node_render_str(b, c->status);
    KEY(b, ",\"on_busy\":");
    node_render_str(b, c->on_busy);
    KEY(b, ",\"metadata\":");
    s_raw(b, c->metadata, c->own);
    KEY(b, ",\"message_count\":");
    s_ll(b, c->message_count);
    KEY(b, ",\"last_event_id\":");
    if (c->last_event_id_null) {
        node_buf_add(b, "null", 4);
    } else {
        s_ll(b, c->last_event_id);
    }
    KEY(b, ",\"created_at\":");
    s_ts(b, c->created_at);
    KEY(b, ",\"updated_at\":");
    s_ts(b, c->updated_at);
    KEY(b, "}");
}

void node_render_msg(node_buf_t *b, const node_msg_fields_t *m)
{
    KEY(b, "{\"id\":");
    node_render_str(b, m->id);
    KEY(b, ",\"conversation_id\":");
    node_render_str(b, m->conversation_id);
    KEY(b, ",\"seq\":");
    s_ll(b, m->seq);
    KEY(b, ",\"role\":");
    node_render_str(b, m->role);
    KEY(b, ",\"content\":");
    node_render_str(b, m->content);
    KEY(b, ",\"status\":");
    node_render_str(b, m->status);
    KEY(b, ",\"metadata\":");
    s_raw(b, m->metadata, m->own);
    KEY(b, ",\"created_at\":");
    s_ts(b, m->created_at);
    KEY(b, ",\"updated_at\":");
    s_ts(b, m->updated_at);
    KEY(b, "}");
}

/* The action, or with an embed (own text only) action || embed: two compact objects
   without a common key ("{}" is empty), joined in place. */
static void s_action(node_buf_t *b, const node_evt_fields_t *e)
{
    if (!e->embed || !e->action || strcmp(e->action, "{}") == 0) {
        s_raw(b, e->embed ? e->embed : e->action, e->own);
        return;
    }
    node_buf_add(b, e->action, strlen(e->action) - 1); /* without its '}' */
    node_buf_add(b, ",", 1);
    node_buf_str(b, e->embed + 1); /* without its '{' */
}

void node_render_evt(node_buf_t *b, const node_evt_fields_t *e)
{
    KEY(b, "{\"id\":");
    s_ll(b, e->id);
    KEY(b, ",\"conversation_id\":");
    node_render_str(b, e->conversation_id);
    KEY(b, ",\"seq\":");
    if (e->seq_null) {
        node_buf_add(b, "null", 4);
    } else {
        s_ll(b, e->seq);
    }
    KEY(b, ",\"type\":");
    node_render_str(b, e->type);
    KEY(b, ",\"source\":");
    s_raw(b, e->source, e->own);
    KEY(b, ",\"action\":");
    s_action(b, e);
    KEY(b, ",\"reversible\":");
    if (e->reversible) {
        node_buf_add(b, "true", 4);
    } else {
        node_buf_add(b, "false", 5);
    }
    KEY(b, ",\"reverted_by\":");
    if (e->reverted_by > 0) {
        s_ll(b, e->reverted_by);
    } else {
        node_buf_add(b, "null", 4);
    }
    KEY(b, ",\"created_at\":");
    s_ts(b, e->created_at);
    KEY(b, "}");
}

/* ---- from result rows -------------------------------------------------------------------- */

static long long s_col_ll(const db_result_t *res, int row, int col, bool *null)
{
    const char *v = db_result_value(res, row, col);
    if (null) {
        *null = v == NULL;
    }
    return v ? strtoll(v, NULL, 10) : 0;
}

void node_render_conv_row(node_buf_t *b, const db_result_t *res, int row, int col)
{
    bool last_null = false;
    long long last = s_col_ll(res, row, col + 10, &last_null);
    node_conv_fields_t c = {
        .id = db_result_value(res, row, col),
        .source = db_result_value(res, row, col + 1),
        .type = db_result_value(res, row, col + 2),
        .title = db_result_value(res, row, col + 3),
        .strategy = db_result_value(res, row, col + 4),
        .worktree_id = db_result_value(res, row, col + 5),
        .status = db_result_value(res, row, col + 6),
        .on_busy = db_result_value(res, row, col + 7),
        .metadata = db_result_value(res, row, col + 8),
        .message_count = s_col_ll(res, row, col + 9, NULL),
        .last_event_id = last,
        .last_event_id_null = last_null,
        .created_at = db_result_value(res, row, col + 11),
        .updated_at = db_result_value(res, row, col + 12),
    };
    node_render_conv(b, &c);
}

void node_render_msg_row(node_buf_t *b, const db_result_t *res, int row, int col)
{
    node_msg_fields_t m = {
        .id = db_result_value(res, row, col),
        .conversation_id = db_result_value(res, row, col + 1),
        .seq = s_col_ll(res, row, col + 2, NULL),
        .role = db_result_value(res, row, col + 3),
        .content = db_result_value(res, row, col + 4),
        .status = db_result_value(res, row, col + 5),
        .metadata = db_result_value(res, row, col + 6),
        .created_at = db_result_value(res, row, col + 7),
        .updated_at = db_result_value(res, row, col + 8),
    };
    node_render_msg(b, &m);
}

void node_render_evt_row(node_buf_t *b, const db_result_t *res, int row, int col)
{
    const char *rev = db_result_value(res, row, col + 6);
    bool seq_null = false;
    long long seq = s_col_ll(res, row, col + 2, &seq_null);
    node_evt_fields_t e = {
        .id = s_col_ll(res, row, col, NULL),
        .conversation_id = db_result_value(res, row, col + 1),
        .seq = seq,
        .seq_null = seq_null,
        .type = db_result_value(res, row, col + 3),
        .source = db_result_value(res, row, col + 4),
        .action = db_result_value(res, row, col + 5),
        .reversible = rev && rev[0] == 't',
        .reverted_by = s_col_ll(res, row, col + 8, NULL),
        .created_at = db_result_value(res, row, col + 7),
    };
    node_render_evt(b, &e);
}
