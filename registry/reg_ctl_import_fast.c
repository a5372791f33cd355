/*  reg_ctl_import_fast — `bickyctl import`'s fast way through the records
    that are most of Bicky's export: a message or an event that is valid and
    comes where it belongs (in its conversation, at the next seq). It reads
    the record with json_rec (jsmn, no allocation) instead of jansson's tree,
    checks it as reg_ctl_import_check.c does (s_bicky_msg, s_bicky_event) and
    stages the same row. It refuses nothing: a record it cannot read, or that
    fails any check, is declined untouched, and imp_record reads it with
    jansson and says what is wrong. Single-threaded (the CLI's). */
#include "common/util.h"
#include "registry/reg_ctl_import.h"

#include <string.h>

/* Member name of type t, or NULL when absent / of another type. */
static const char *s_str(const json_rec_t *jr, const char *key)
{
    const json_rec_field_t *f = json_rec_get(jr, key);
    return f && f->type == JSON_REC_STRING ? f->text : NULL;
}

static const json_rec_field_t *s_typed(const json_rec_t *jr, const char *key, json_rec_type_t t)
{
    const json_rec_field_t *f = json_rec_get(jr, key);
    return f && f->type == t ? f : NULL;
}

/* A UUID string member as its canonical form into out; false when it is not one. */
static bool s_uuid(const json_rec_t *jr, const char *key, char out[37])
{
    const char *s = s_str(jr, key);
    uint8_t raw[16];
    if (!s || util_uuid_parse(s, raw) < 0) {
        return false;
    }
    util_uuid_format(raw, out);
    return true;
}

/* A time string member, or NULL. */
static const char *s_time(const json_rec_t *jr, const char *key)
{
    const char *s = s_str(jr, key);
    return s && imp_is_time(s) ? s : NULL;
}

/* A string member of min..max characters, or NULL. */
static const char *s_text(const json_rec_t *jr, const char *key, size_t min, size_t max)
{
    const char *s = s_str(jr, key);
    size_t n = s ? imp_chars(s) : 0;
    return s && n >= min && n <= max ? s : NULL;
}

/* The message's columns, or false (declined). Every member present, no other. */
static bool s_msg(imp_t *imp, const json_rec_t *jr, const char **v, char *id, char *seq)
{
    const json_rec_field_t *sq = s_typed(jr, "seq", JSON_REC_INT);
    const json_rec_field_t *meta = s_typed(jr, "metadata", JSON_REC_OBJECT);
    const char *role = s_str(jr, "role"), *st = s_str(jr, "status");
    if (json_rec_count(jr) != 10 || !s_uuid(jr, "id", id) || !sq || sq->i != imp->next_msg ||
        !imp_in(role, imp_roles) || !imp_in(st, imp_msg_statuses) || !meta ||
        !(v[IMP_C_CONTENT] = s_text(jr, "content", 0, IMP_CONTENT_MAX)) ||
        !(v[IMP_C_CREATED] = s_time(jr, "created_at")) ||
        !(v[IMP_C_UPDATED] = s_time(jr, "updated_at"))) {
        return false;
    }
    snprintf(seq, 24, "%lld", sq->i);
    v[IMP_C_ID] = id;
    v[IMP_C_SEQ] = seq;
    v[IMP_C_ROLE] = role;
    v[IMP_C_STATUS] = imp_msg_status(st);
    v[IMP_C_METADATA] = meta->text;
    return true;
}

/* The event's columns, or false (declined). "id" (its id in the exporting
   database) is ignored whatever it is, as imp_record ignores it. */
static bool s_event(imp_t *imp, const json_rec_t *jr, const char **v, char *seq, char *rseq)
{
    const json_rec_field_t *sq = s_typed(jr, "seq", JSON_REC_INT);
    const json_rec_field_t *src = s_typed(jr, "source", JSON_REC_OBJECT);
    const json_rec_field_t *act = s_typed(jr, "action", JSON_REC_OBJECT);
    const json_rec_field_t *rev = json_rec_get(jr, "reversible");
    const json_rec_field_t *rs = json_rec_get(jr, "reverted_by_seq");
    int want = 8 + (json_rec_get(jr, "id") != NULL) + (rs != NULL);
    if (json_rec_count(jr) != want || !sq || sq->i != imp->next_evt || !src || !act || !rev ||
        (rev->type != JSON_REC_TRUE && rev->type != JSON_REC_FALSE) ||
        (rs && rs->type != JSON_REC_NULL && (rs->type != JSON_REC_INT || rs->i <= 0)) ||
        !(v[IMP_C_TYPE] = s_text(jr, "type", 1, 128)) ||
        !(v[IMP_C_CREATED] = s_time(jr, "created_at"))) {
        return false;
    }
    snprintf(seq, 24, "%lld", sq->i);
    v[IMP_C_SEQ] = seq;
    v[IMP_C_REVERSIBLE] = rev->type == JSON_REC_TRUE ? "t" : "f";
    if (rs && rs->type == JSON_REC_INT) {
        snprintf(rseq, 24, "%lld", rs->i);
        v[IMP_C_REVERTED_BY] = rseq;
    }
    v[IMP_C_SOURCE] = src->text;
    v[IMP_C_ACTION] = act->text;
    return true;
}

int imp_fast_record(imp_t *imp, json_rec_t *jr, const char *buf, size_t len, long line)
{
    /* Only a record of the conversation being read, which is not refused. */
    if (!imp->in_unit || imp->unit_bad || !imp->cur || imp->follow) {
        return 0;
    }
    int rc = json_rec_parse(jr, buf, len);
    if (rc <= 0) {
        return rc < 0 ? reg_ctl_fail("out of memory"), -1 : 0;
    }
    const char *kind = s_str(jr, "kind");
    bool msg = kind && strcmp(kind, "message") == 0;
    char conv[37], id[37], unit[24], ln[24], seq[24], rseq[24];
    const char *v[IMP_NCOLS] = {NULL};
    if ((!msg && (!kind || strcmp(kind, "event") != 0)) || !s_uuid(jr, "conversation_id", conv) ||
        strcmp(conv, imp->conv) != 0 ||
        !(msg ? s_msg(imp, jr, v, id, seq) : s_event(imp, jr, v, seq, rseq))) {
        return 0;
    }
    snprintf(unit, sizeof unit, "%ld", imp->cur->unit);
    snprintf(ln, sizeof ln, "%ld", line);
    v[IMP_C_UNIT] = unit;
    v[IMP_C_LINE] = ln;
    v[IMP_C_KIND] = msg ? "m" : "e";
    v[IMP_C_CONV] = imp->conv;
    return imp_stage_part(imp, v, msg) < 0 ? -1 : 1;
}
