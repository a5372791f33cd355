/*  reg_ctl_import_check — `bickyctl import`: checks one record of either
    format (Bicky's export: {"kind": "conversation"|"message"|"event"}; the
    TypeScript server's {"interaction", "messages"}) and stages it as rows of
    the current unit. Every value is checked here so that the staged rows
    always satisfy the schema (a bad timestamp or an over-long field would
    abort a whole batch): a refusal names the line and the field. */
#include "common/util.h"
#include "registry/reg_ctl_import.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *v[IMP_NCOLS];                   /* column values (borrowed or from owned) */
    char *owned[4];                             /* JSON texts to free */
    size_t nowned;                              /* used */
    char unit[24], line[24], seq[24], rseq[24]; /* number texts */
    char id[37];                                /* the row's id (canonical) */
} s_row_t;

static void s_row_free(s_row_t *r)
{
    for (size_t i = 0; i < r->nowned; i++) {
        free(r->owned[i]);
    }
}

/* Sets column col to v's compact JSON text. */
static void s_row_json(s_row_t *r, int col, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    r->owned[r->nowned++] = text;
    r->v[col] = text;
}

static void s_row_init(s_row_t *r, imp_t *imp, const char *kind, long line)
{
    memset(r, 0, sizeof *r);
    snprintf(r->unit, sizeof r->unit, "%ld", imp->cur ? imp->cur->unit : 0L);
    snprintf(r->line, sizeof r->line, "%ld", line);
    r->v[IMP_C_UNIT] = r->unit;
    r->v[IMP_C_LINE] = r->line;
    r->v[IMP_C_KIND] = kind;
    r->v[IMP_C_CONV] = imp->conv;
}

/* ---- value checks: each returns NULL when fine, else why ---------------------------- */

/* Characters (code points) of UTF-8 text. */
size_t imp_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static const char *s_text(const json_t *v, size_t min, size_t max, bool null_ok, const char **out)
{
    static const char *const why[] = {"must be a string", "is too long", "must not be empty"};
    *out = NULL;
    if (null_ok && (!v || json_is_null(v))) {
        return NULL;
    }
    if (!json_is_string(v)) {
        return why[0];
    }
    size_t n = imp_chars(json_string_value(v));
    if (n > max) {
        return why[1];
    }
    if (n < min) {
        return why[2];
    }
    *out = json_string_value(v);
    return NULL;
}

static bool s_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static int s_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* RFC 3339 date-time (fraction optional, Z or ±HH:MM), a real calendar date. */
bool imp_is_time(const char *t)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(t) < 20 || !s_digits(t, 4) || t[4] != '-' || !s_digits(t + 5, 2) || t[7] != '-' ||
        !s_digits(t + 8, 2) || (t[10] != 'T' && t[10] != ' ') || !s_digits(t + 11, 2) ||
        t[13] != ':' || !s_digits(t + 14, 2) || t[16] != ':' || !s_digits(t + 17, 2)) {
        return false;
    }
    int y = s_num(t, 4), mo = s_num(t + 5, 2), d = s_num(t + 8, 2);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        s_num(t + 11, 2) > 23 || s_num(t + 14, 2) > 59 || s_num(t + 17, 2) > 59) {
        return false;
    }
    const char *p = t + 19;
    if (*p == '.') {
        size_t f = strspn(p + 1, "0123456789");
        if (f < 1 || f > 9) {
            return false;
        }
        p += 1 + f;
    }
    if (*p == 'Z' || *p == 'z') {
        return p[1] == 0;
    }
    return (*p == '+' || *p == '-') && s_digits(p + 1, 2) && p[3] == ':' && s_digits(p + 4, 2) &&
           p[6] == 0 && s_num(p + 1, 2) < 16 && s_num(p + 4, 2) < 60;
}

static const char *s_time(const json_t *v, const char **out)
{
    *out = json_string_value(v);
    return *out && imp_is_time(*out) ? NULL : "must be an RFC 3339 date-time";
}

bool imp_in(const char *s, const char *const *set)
{
    for (; s && *set; set++) {
        if (strcmp(s, *set) == 0) {
            return true;
        }
    }
    return false;
}

/* A UUID into out (canonical lowercase); false when v is not one. */
static bool s_uuid(const json_t *v, char out[37])
{
    uint8_t raw[16];
    if (!json_is_string(v) || util_uuid_parse(json_string_value(v), raw) < 0) {
        return false;
    }
    util_uuid_format(raw, out);
    return true;
}

const char *const imp_roles[] = {"user", "assistant", "system", "tool", NULL};
const char *const imp_msg_statuses[] = {"pending", "streaming", "completed",
                                        "error",   "cancelled", NULL};

/* ---- Bicky's export --------------------------------------------------------------------- */

/* A conversation's resting status: nothing runs on an imported conversation. */
static const char *s_conv_status(const char *st)
{
    static const char *const keep[] = {"idle", "error", "archived", NULL};
    return imp_in(st, keep) ? st : "idle";
}

/* A message's status; a turn that was running when exported did not finish here. */
const char *imp_msg_status(const char *st)
{
    static const char *const keep[] = {"completed", "error", "cancelled", NULL};
    return imp_in(st, keep) ? st : "cancelled";
}

#define S_CHECK(expr, field)                                                                       \
    do {                                                                                           \
        const char *why_ = (expr);                                                                 \
        if (why_) {                                                                                \
            snprintf(why, whylen, "%s %s", field, why_);                                           \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int s_bicky_conv(const json_t *rec, s_row_t *r, char *why, size_t whylen)
{
    static const char *const statuses[] = {
        "idle", "queued", "processing", "waiting_for_permission", "error", "archived", NULL};
    static const char *const busy[] = {"enqueue", "reject", "interrupt", NULL};
    S_CHECK(s_text(json_object_get(rec, "source"), 1, 64, false, &r->v[IMP_C_SOURCE]), "source");
    S_CHECK(s_text(json_object_get(rec, "type"), 1, 64, false, &r->v[IMP_C_TYPE]), "type");
    S_CHECK(s_text(json_object_get(rec, "title"), 0, 1000, true, &r->v[IMP_C_TITLE]), "title");
    S_CHECK(s_text(json_object_get(rec, "strategy"), 1, 64, false, &r->v[IMP_C_STRATEGY]),
            "strategy");
    const char *st = json_string_value(json_object_get(rec, "status"));
    const char *ob = json_string_value(json_object_get(rec, "on_busy"));
    S_CHECK(imp_in(st, statuses) ? NULL : "is not a conversation status", "status");
    S_CHECK(imp_in(ob, busy) ? NULL : "must be enqueue, reject or interrupt", "on_busy");
    r->v[IMP_C_STATUS] = s_conv_status(st);
    r->v[IMP_C_ON_BUSY] = ob;
    json_t *meta = json_object_get(rec, "metadata");
    S_CHECK(json_is_object(meta) ? NULL : "must be an object", "metadata");
    s_row_json(r, IMP_C_METADATA, meta);
    S_CHECK(s_time(json_object_get(rec, "created_at"), &r->v[IMP_C_CREATED]), "created_at");
    S_CHECK(s_time(json_object_get(rec, "updated_at"), &r->v[IMP_C_UPDATED]), "updated_at");
    return 0;
}

static int s_bicky_msg(imp_t *imp, const json_t *rec, s_row_t *r, char *why, size_t whylen)
{
    char id[37];
    json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
    S_CHECK(s_uuid(json_object_get(rec, "id"), id) ? NULL : "must be a UUID", "id");
    S_CHECK(seq == imp->next_msg ? NULL : "is not the next one (seqs go 1, 2, 3…)", "seq");
    const char *role = json_string_value(json_object_get(rec, "role"));
    S_CHECK(imp_in(role, imp_roles) ? NULL : "must be user, assistant, system or tool", "role");
    S_CHECK(
        s_text(json_object_get(rec, "content"), 0, IMP_CONTENT_MAX, false, &r->v[IMP_C_CONTENT]),
        "content");
    const char *st = json_string_value(json_object_get(rec, "status"));
    S_CHECK(imp_in(st, imp_msg_statuses) ? NULL : "is not a message status", "status");
    json_t *meta = json_object_get(rec, "metadata");
    S_CHECK(json_is_object(meta) ? NULL : "must be an object", "metadata");
    S_CHECK(s_time(json_object_get(rec, "created_at"), &r->v[IMP_C_CREATED]), "created_at");
    S_CHECK(s_time(json_object_get(rec, "updated_at"), &r->v[IMP_C_UPDATED]), "updated_at");
    snprintf(r->seq, sizeof r->seq, "%lld", (long long)seq);
    memcpy(r->id, id, sizeof r->id);
    r->v[IMP_C_ID] = r->id;
    r->v[IMP_C_SEQ] = r->seq;
    r->v[IMP_C_ROLE] = role;
    r->v[IMP_C_STATUS] = imp_msg_status(st);
    s_row_json(r, IMP_C_METADATA, meta);
    return 0;
}

static int s_bicky_event(imp_t *imp, const json_t *rec, s_row_t *r, char *why, size_t whylen)
{
    json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
    json_t *rs = json_object_get(rec, "reverted_by_seq");
    json_t *src = json_object_get(rec, "source"), *act = json_object_get(rec, "action");
    S_CHECK(seq == imp->next_evt ? NULL : "is not the next one (seqs go 1, 2, 3…)", "seq");
    S_CHECK(s_text(json_object_get(rec, "type"), 1, 128, false, &r->v[IMP_C_TYPE]), "type");
    S_CHECK(json_is_object(src) ? NULL : "must be an object", "source");
    S_CHECK(json_is_object(act) ? NULL : "must be an object", "action");
    S_CHECK(json_is_boolean(json_object_get(rec, "reversible")) ? NULL : "must be true or false",
            "reversible");
    S_CHECK(!rs || json_is_null(rs) || json_integer_value(rs) > 0 ? NULL : "must be a seq or null",
            "reverted_by_seq");
    S_CHECK(s_time(json_object_get(rec, "created_at"), &r->v[IMP_C_CREATED]), "created_at");
    snprintf(r->seq, sizeof r->seq, "%lld", (long long)seq);
    r->v[IMP_C_SEQ] = r->seq;
    r->v[IMP_C_REVERSIBLE] = json_is_true(json_object_get(rec, "reversible")) ? "t" : "f";
    if (json_is_integer(rs)) {
        snprintf(r->rseq, sizeof r->rseq, "%lld", (long long)json_integer_value(rs));
        r->v[IMP_C_REVERTED_BY] = r->rseq;
    }
    s_row_json(r, IMP_C_SOURCE, src);
    s_row_json(r, IMP_C_ACTION, act);
    return 0;
}

/* ---- records --------------------------------------------------------------------------- */

/* Stages r (then frees it); -1 on a staging error. */
static int s_stage(imp_t *imp, s_row_t *r)
{
    int rc = imp_db_row(imp->db, r->v);
    s_row_free(r);
    imp->batch_rows++;
    return rc;
}

static json_int_t s_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

static int s_on_conv(imp_t *imp, const json_t *rec, long line)
{
    if (imp_unit_end(imp) < 0) {
        return -1;
    }
    char id[37], why[160];
    if (!s_uuid(json_object_get(rec, "id"), id)) {
        imp_refuse(imp, line, NULL, "conversation id must be a UUID");
        return 0;
    }
    if (imp_unit_begin(imp, id, line) < 0) {
        return -1;
    }
    imp->want_msgs = s_count(json_object_get(rec, "message_count"));
    imp->want_evts = s_count(json_object_get(rec, "last_event_seq"));
    s_row_t r;
    s_row_init(&r, imp, "c", line);
    if (s_bicky_conv(rec, &r, why, sizeof why) < 0) {
        s_row_free(&r);
        imp_unit_refuse(imp, line, why);
        return 0;
    }
    return s_stage(imp, &r);
}

static int s_on_part(imp_t *imp, const json_t *rec, long line, bool msg)
{
    char conv[37], why[160];
    if (!s_uuid(json_object_get(rec, "conversation_id"), conv)) {
        imp_refuse(imp, line, NULL, "%s: conversation_id must be a UUID",
                   msg ? "message" : "event");
        return 0;
    }
    if (!imp->in_unit || strcmp(conv, imp->conv) != 0) {
        imp_refuse(imp, line, conv,
                   "%s outside its conversation (a conversation's records follow "
                   "its conversation record)",
                   msg ? "message" : "event");
        return 0;
    }
    if (imp->unit_bad) {
        return 0;
    }
    s_row_t r;
    s_row_init(&r, imp, msg ? "m" : "e", line);
    int rc = msg ? s_bicky_msg(imp, rec, &r, why, sizeof why)
                 : s_bicky_event(imp, rec, &r, why, sizeof why);
    if (rc < 0) {
        s_row_free(&r);
        char full[200];
        snprintf(full, sizeof full, "%s %lld: %s", msg ? "message" : "event",
                 msg ? imp->next_msg : imp->next_evt, why);
        imp_unit_refuse(imp, line, full);
        return 0;
    }
    rc = imp_stage_part(imp, r.v, msg);
    s_row_free(&r);
    return rc;
}

int imp_stage_part(imp_t *imp, const char *const *cols, bool msg)
{
    imp->cur->msgs += msg;
    imp->cur->events += !msg;
    imp->next_msg += msg;
    imp->next_evt += !msg;
    imp->read_msgs += msg;
    imp->batch_rows++;
    return imp_db_row(imp->db, cols);
}

/* ---- the TypeScript server's records ---------------------------------------------------- */

/* One old message as our row; NULL when fine, else why (in why). */
static int s_old_msg(imp_t *imp, const json_t *m, s_row_t *r, char *why, size_t whylen)
{
    static const char *const statuses[] = {"pending", "processing", "completed", "failed", NULL};
    char iid[37];
    json_t *iv = json_object_get(m, "interactionId");
    json_t *meta = json_object_get(m, "metadata");
    S_CHECK(json_is_object(m) ? NULL : "must be an object", "message");
    S_CHECK(s_uuid(json_object_get(m, "id"), r->id) ? NULL : "must be a UUID", "id");
    S_CHECK(!iv || (s_uuid(iv, iid) && strcmp(iid, imp->conv) == 0) ? NULL
                                                                    : "is not the interaction's",
            "interactionId");
    const char *role = json_string_value(json_object_get(m, "role"));
    S_CHECK(imp_in(role, imp_roles) ? NULL : "must be user, assistant, system or tool", "role");
    S_CHECK(s_text(json_object_get(m, "content"), 0, IMP_CONTENT_MAX, false, &r->v[IMP_C_CONTENT]),
            "content");
    const char *st = json_string_value(json_object_get(m, "status"));
    S_CHECK(imp_in(st, statuses) ? NULL : "must be pending, processing, completed or failed",
            "status");
    S_CHECK(!meta || json_is_object(meta) ? NULL : "must be an object", "metadata");
    S_CHECK(s_time(json_object_get(m, "timestamp"), &r->v[IMP_C_CREATED]), "timestamp");
    r->v[IMP_C_UPDATED] = r->v[IMP_C_CREATED];
    r->v[IMP_C_ID] = r->id;
    r->v[IMP_C_ROLE] = role;
    /* A file is a finished past: nothing in it runs any more. A mirror (--follow)
       shows the old server's live state, which its next event replaces. */
    r->v[IMP_C_STATUS] = strcmp(st, "completed") == 0 ? "completed"
                         : strcmp(st, "failed") == 0  ? "error"
                         : !imp->follow               ? "cancelled"
                         : strcmp(st, "pending") == 0 ? "pending"
                                                      : "streaming";
    snprintf(r->seq, sizeof r->seq, "%lld", imp->next_msg);
    r->v[IMP_C_SEQ] = r->seq;
    if (meta) {
        s_row_json(r, IMP_C_METADATA, meta);
    } else {
        r->v[IMP_C_METADATA] = "{}";
    }
    return 0;
}

/* The old interaction as our conversation row. */
static int s_old_conv(const json_t *in, const json_t *msgs, s_row_t *r, char *why, size_t whylen)
{
    json_t *src = json_object_get(in, "source"), *type = json_object_get(in, "type");
    json_t *meta = json_object_get(in, "metadata");
    S_CHECK(s_text(src, 1, 64, true, &r->v[IMP_C_SOURCE]), "source");
    S_CHECK(s_text(type, 1, 64, true, &r->v[IMP_C_TYPE]), "type");
    S_CHECK(!meta || json_is_object(meta) ? NULL : "must be an object", "metadata");
    S_CHECK(s_time(json_object_get(in, "createdAt"), &r->v[IMP_C_CREATED]), "createdAt");
    S_CHECK(json_is_array(msgs) ? NULL : "must be an array", "messages");
    r->v[IMP_C_SOURCE] = r->v[IMP_C_SOURCE] ? r->v[IMP_C_SOURCE] : "legacy";
    r->v[IMP_C_TYPE] = r->v[IMP_C_TYPE] ? r->v[IMP_C_TYPE] : "query";
    r->v[IMP_C_STRATEGY] = "echo";
    r->v[IMP_C_STATUS] = "idle";
    r->v[IMP_C_ON_BUSY] = "enqueue";
    if (meta) {
        s_row_json(r, IMP_C_METADATA, meta);
    } else {
        r->v[IMP_C_METADATA] = "{}";
    }
    /* Last touched: the last message's time when it is a valid one. */
    const char *last = json_string_value(
        json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "timestamp"));
    r->v[IMP_C_UPDATED] = last && imp_is_time(last) ? last : r->v[IMP_C_CREATED];
    return 0;
}

static int s_on_legacy(imp_t *imp, const json_t *rec, long line)
{
    json_t *in = json_object_get(rec, "interaction"), *msgs = json_object_get(rec, "messages");
    char id[37], why[160];
    if (imp_unit_end(imp) < 0) {
        return -1;
    }
    if (!s_uuid(json_object_get(in, "id"), id)) {
        imp_refuse(imp, line, NULL, "interaction.id must be a UUID");
        return 0;
    }
    if (imp_unit_begin(imp, id, line) < 0) {
        return -1;
    }
    s_row_t r;
    s_row_init(&r, imp, "c", line);
    if (s_old_conv(in, msgs, &r, why, sizeof why) < 0) {
        s_row_free(&r);
        imp_unit_refuse(imp, line, why);
        return 0;
    }
    int rc = s_stage(imp, &r);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (rc < 0 || imp->unit_bad) {
            break;
        }
        s_row_init(&r, imp, "m", line);
        if (s_old_msg(imp, m, &r, why, sizeof why) < 0) {
            s_row_free(&r);
            char full[200];
            snprintf(full, sizeof full, "messages[%zu]: %s", i, why);
            imp_unit_refuse(imp, line, full);
            break;
        }
        imp->next_msg++;
        imp->cur->msgs++;
        imp->read_msgs++;
        rc = s_stage(imp, &r);
    }
    return rc < 0 ? -1 : imp_unit_end(imp);
}

int imp_record(imp_t *imp, json_t *rec, long line)
{
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    int rc = 0;
    if (!json_is_object(rec)) {
        imp_refuse(imp, line, NULL, "a record must be a JSON object");
    } else if (kind && strcmp(kind, "conversation") == 0) {
        rc = s_on_conv(imp, rec, line);
    } else if (kind && (strcmp(kind, "message") == 0 || strcmp(kind, "event") == 0)) {
        rc = s_on_part(imp, rec, line, kind[0] == 'm');
    } else if (json_is_object(json_object_get(rec, "interaction"))) {
        rc = s_on_legacy(imp, rec, line);
    } else {
        imp_refuse(imp, line, NULL,
                   "not an export record (no \"kind\" of conversation, message or event, and "
                   "no \"interaction\" object)");
    }
    json_decref(rec);
    return rc;
}
