/*  op_args — the checker of the op table's rows (proto/proto_ops.c) over
    jansson values. It lives in common/ because both the gateway (client
    bodies) and the node (every api_req it receives) link common/, and JSON is
    the language of the API both speak (STYLE §1), while proto/ stays free of
    any JSON library. The only common/ module that includes <jansson.h>.
    Pure functions; any thread. */
#include "common/op_args.h"

#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cuts s (NUL-terminated) so that it does not end inside a UTF-8 sequence. */
static void s_cut_utf8(char *s)
{
    size_t n = strlen(s);
    size_t start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80) {
        start--;
    }
    if (start == 0 || (unsigned char)s[start - 1] < 0x80) {
        return;
    }
    /* s[start - 1] leads a sequence: keep it only when it is complete. */
    start--;
    if (proto_utf8_len(s + start, n - start) < 0) {
        s[start] = 0;
    }
}

int op_args_err_set(op_args_err_t *err, const char *field, const char *fmt, ...)
{
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    s_cut_utf8(err->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    s_cut_utf8(err->message);
    return -1;
}

/* ---- values ---------------------------------------------------------------------------------- */

static bool s_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isspace((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static int s_check_string(const proto_field_t *f, const json_t *v, op_args_err_t *err)
{
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    int64_t chars = proto_utf8_len(s, bytes);
    if (chars == -2) {
        return op_args_err_set(err, f->name, "%s must not contain NUL characters", f->name);
    }
    if (chars < 0) {
        return op_args_err_set(err, f->name, "%s is not valid UTF-8", f->name);
    }
    if (chars == 0 && f->min > 0) {
        return op_args_err_set(err, f->name, "%s must not be empty", f->name);
    }
    if ((f->flags & PROTO_F_NONBLANK) && s_blank(s, bytes)) {
        return op_args_err_set(err, f->name, "%s must not be blank", f->name);
    }
    if (chars > f->max) {
        return op_args_err_set(err, f->name, "%s is longer than %lld characters", f->name,
                               (long long)f->max);
    }
    if (chars < f->min && f->min == f->max) {
        return op_args_err_set(err, f->name, "%s must be exactly %lld characters", f->name,
                               (long long)f->min);
    }
    if (chars < f->min) {
        return op_args_err_set(err, f->name, "%s is shorter than %lld characters", f->name,
                               (long long)f->min);
    }
    return 0;
}

/* The integer of v: a JSON integer, or its decimal text (digits, an optional leading '-'):
   query values arrive as text, and the node has always taken them so. -1 if neither. */
static int s_integer(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) != json_string_length(v) || strlen(s) > 20) {
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) && !(p == s && *p == '-' && p[1])) {
            return -1;
        }
    }
    char *end = NULL;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static int s_check_int(const proto_field_t *f, const json_t *v, op_args_err_t *err)
{
    long long n;
    if (s_integer(v, &n) == 0 && n >= f->min && n <= f->max) {
        return 0;
    }
    if (f->max == INT64_MAX && f->min == 0) {
        return op_args_err_set(err, f->name, "%s must be a non-negative integer", f->name);
    }
    return op_args_err_set(err, f->name, "%s must be an integer from %lld to %lld", f->name,
                           (long long)f->min, (long long)f->max);
}

static int s_check_enum(const proto_field_t *f, const json_t *v, op_args_err_t *err)
{
    const char *s = json_string_value(v);
    for (size_t i = 0; s && f->values[i]; i++) {
        if (strcmp(f->values[i], s) == 0 && strlen(s) == json_string_length(v)) {
            return 0;
        }
    }
    char list[OP_ARGS_MESSAGE_MAX] = "";
    size_t n = 0;
    for (size_t i = 0; f->values[i] && n < sizeof list; i++) {
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", f->values[i]);
    }
    return op_args_err_set(err, f->name, "%s must be one of: %s", f->name, list);
}

static int s_check_uuid(const proto_field_t *f, json_t *v, op_args_err_t *err)
{
    uint8_t raw[16];
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || util_uuid_parse(s, raw) < 0) {
        return op_args_err_set(err, f->name, "%s must be a UUID%s", f->name,
                               f->flags & PROTO_F_NULL ? " or null" : "");
    }
    char text[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(raw, text);
    if (strcmp(text, s) != 0) {
        json_string_set(v, text);
    }
    return 0;
}

int op_args_check_value(const proto_field_t *f, json_t *v, unsigned flags, op_args_err_t *err)
{
    const char *or_null = f->flags & PROTO_F_NULL ? " or null" : "";
    if (json_is_null(v) && (f->flags & PROTO_F_NULL)) {
        return 0;
    }
    switch (f->type) {
        case PROTO_FT_STRING:
            if (!json_is_string(v)) {
                return op_args_err_set(err, f->name, "%s must be a string%s", f->name, or_null);
            }
            return s_check_string(f, v, err);
        case PROTO_FT_INT:
            return s_check_int(f, v, err);
        case PROTO_FT_BOOL:
            if (!json_is_boolean(v)) {
                return op_args_err_set(err, f->name, "%s must be true or false", f->name);
            }
            return 0;
        case PROTO_FT_OBJECT:
            if (!json_is_object(v)) {
                return op_args_err_set(err, f->name, "%s must be a JSON object%s", f->name,
                                       or_null);
            }
            return f->fields ? op_args_check_fields(f->fields, v, flags, err) : 0;
        case PROTO_FT_UUID:
            return s_check_uuid(f, v, err);
        case PROTO_FT_ENUM:
            return s_check_enum(f, v, err);
    }
    return op_args_err_set(err, f->name, "%s has an unknown type", f->name);
}

/* ---- objects --------------------------------------------------------------------------------- */

static bool s_present(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return v && !json_is_null(v);
}

/* True when f's condition holds on obj (or f has none). */
static bool s_when_holds(const proto_field_t *f, const json_t *obj)
{
    const char *v = json_string_value(json_object_get(obj, f->when));
    return !f->when || (v && strcmp(v, f->when_is) == 0);
}

/* Presence rules of f on obj: required, and the `when` condition. */
static int s_check_presence(const proto_field_t *fields,
                            const proto_field_t *f,
                            const json_t *obj,
                            unsigned flags,
                            op_args_err_t *err)
{
    const proto_field_t *cond = f->when ? proto_field_find(fields, f->when) : NULL;
    if ((flags & OP_ARGS_CLIENT) &&
        ((f->flags & PROTO_F_GATEWAY) || (cond && (cond->flags & PROTO_F_GATEWAY)))) {
        return 0; /* the gateway adds these, then checks again in full */
    }
    bool holds = s_when_holds(f, obj);
    bool present = s_present(obj, f->name);
    if (present && !holds) {
        return op_args_err_set(err, f->name, "%s is accepted only when %s is %s", f->name, f->when,
                               f->when_is);
    }
    if (!present && holds && (f->flags & PROTO_F_REQUIRED)) {
        if (f->when) {
            return op_args_err_set(err, f->name, "%s is required when %s is %s", f->name, f->when,
                                   f->when_is);
        }
        return op_args_err_set(err, f->name, "%s is required", f->name);
    }
    return 0;
}

int op_args_check_fields(const proto_field_t *fields,
                         json_t *obj,
                         unsigned flags,
                         op_args_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const proto_field_t *f = proto_field_find(fields, key);
        if (!f || ((flags & OP_ARGS_CLIENT) && (f->flags & PROTO_F_GATEWAY))) {
            return op_args_err_set(err, key, "unknown field '%s'", key);
        }
        if (op_args_check_value(f, v, flags, err) < 0) {
            return -1;
        }
    }
    for (const proto_field_t *f = fields; f->name; f++) {
        if (s_check_presence(fields, f, obj, flags, err) < 0) {
            return -1;
        }
    }
    return 0;
}

int op_args_check(const proto_op_t *op, json_t *args, unsigned flags, op_args_err_t *err)
{
    return op_args_check_fields(op->fields, args, flags, err);
}
