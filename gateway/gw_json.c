/*  gw_json — request body parsing and field validation, query value parsing,
    and the API.md error body. Pure functions over their arguments; any thread
    (the gateway calls them from its loop thread). */
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_error_set(
    gw_error_t *err, int status, const char *code, const char *field, const char *fmt, ...)
{
    memset(err, 0, sizeof *err);
    err->status = status;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int gw_error_enum(gw_error_t *err, const char *field, const char *const *values)
{
    gw_error_set(err, 400, "invalid_field", field, "%s must be one of ", field);
    size_t n = strlen(err->message);
    for (size_t i = 0; values && values[i] && n < sizeof err->message; i++) {
        int k =
            snprintf(err->message + n, sizeof err->message - n, "%s%s", i ? ", " : "", values[i]);
        n += k > 0 ? (size_t)k : 0;
    }
    return -1;
}

char *gw_error_body(const gw_error_t *err)
{
    json_t *o = json_pack("{s:s, s:s}", "error", err->message, "code", err->code);
    if (!o) {
        return NULL;
    }
    if (err->field[0]) {
        json_object_set_new(o, "field", json_string(err->field));
    }
    if (err->line > 0) {
        json_object_set_new(o, "line", json_integer(err->line));
        json_object_set_new(o, "column", json_integer(err->column));
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* ---- parsing ----------------------------------------------------------- */

static bool s_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isspace((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

json_t *gw_json_parse(const char *body, size_t len, gw_error_t *err)
{
    if (!body || s_blank(body, len)) {
        return json_object();
    }
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        gw_error_set(err, 400, "invalid_json", NULL, "invalid JSON at line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        err->line = jerr.line > 0 ? jerr.line : 1;
        err->column = jerr.column > 0 ? jerr.column : 1;
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        gw_error_set(err, 400, "invalid_json", NULL, "the request body must be a JSON object");
        return NULL;
    }
    return v;
}

/* ---- field validation -------------------------------------------------- */

typedef enum {
    K_TEXT,      /* non-blank string, 1..max code points */
    K_TEXT_NULL, /* string of ≤ max code points, or null */
    K_CONTENT,   /* non-blank string (bounded by --max-body) */
    K_OBJECT,    /* JSON object */
    K_UUID,      /* UUID string */
    K_UUID_NULL, /* UUID string or null */
    K_ON_BUSY,   /* enqueue | reject | interrupt */
} s_kind_t;

typedef struct {
    const char *name; /* JSON key */
    s_kind_t kind;    /* accepted values */
    size_t max;       /* code points for K_TEXT / K_TEXT_NULL */
    bool required;    /* absent → invalid_field */
} s_spec_t;

#define CONV_FIELDS                                                                                \
    {"title", K_TEXT_NULL, 1000, false}, {"metadata", K_OBJECT, 0, false},                         \
        {"strategy", K_TEXT, 64, false}, {"worktree_id", K_UUID_NULL, 0, false},                   \
    {                                                                                              \
        "on_busy", K_ON_BUSY, 0, false                                                             \
    }

static const s_spec_t s_conv_create[] = {
    {"source", K_TEXT, 64, false}, {"type", K_TEXT, 64, false}, CONV_FIELDS, {NULL, 0, 0, 0}};
static const s_spec_t s_conv_patch[] = {CONV_FIELDS, {NULL, 0, 0, 0}};
static const s_spec_t s_msg_post[] = {
    {"content", K_CONTENT, 0, true}, {"metadata", K_OBJECT, 0, false}, {NULL, 0, 0, 0}};
static const s_spec_t s_message[] = {{"content", K_CONTENT, 0, true},
                                     {"conversation_id", K_UUID, 0, false},
                                     {"source", K_TEXT, 64, false},
                                     {"type", K_TEXT, 64, false},
                                     CONV_FIELDS,
                                     {NULL, 0, 0, 0}};
static const s_spec_t s_empty[] = {{NULL, 0, 0, 0}};

static const s_spec_t *s_shape_specs(gw_shape_t shape)
{
    switch (shape) {
        case GW_SHAPE_CONV_CREATE:
            return s_conv_create;
        case GW_SHAPE_CONV_PATCH:
            return s_conv_patch;
        case GW_SHAPE_MSG_POST:
            return s_msg_post;
        case GW_SHAPE_MESSAGE:
            return s_message;
        case GW_SHAPE_EMPTY:
            return s_empty;
    }
    return s_empty;
}

size_t gw_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        n += (*p & 0xC0) != 0x80;
    }
    return n;
}

static int s_check_text(const s_spec_t *sp, const json_t *v, gw_error_t *err)
{
    if (sp->kind == K_TEXT_NULL && json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return gw_error_set(err, 400, "invalid_field", sp->name, "%s must be a string%s", sp->name,
                            sp->kind == K_TEXT_NULL ? " or null" : "");
    }
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (sp->kind != K_TEXT_NULL && s_blank(s, bytes)) {
        return gw_error_set(err, 400, "invalid_field", sp->name, "%s must not be empty", sp->name);
    }
    if (sp->max && gw_utf8_len(s) > sp->max) {
        return gw_error_set(err, 400, "invalid_field", sp->name,
                            "%s must be at most %zu characters", sp->name, sp->max);
    }
    return 0;
}

/* Validates one UUID field; on success *norm is the lowercase form (new
   reference) or NULL for null. */
static int s_check_uuid(const s_spec_t *sp, const json_t *v, json_t **norm, gw_error_t *err)
{
    *norm = NULL;
    if (sp->kind == K_UUID_NULL && json_is_null(v)) {
        *norm = json_null();
        return 0;
    }
    uint8_t id[16];
    if (!json_is_string(v) || util_uuid_parse(json_string_value(v), id) < 0) {
        return gw_error_set(err, 400, "invalid_field", sp->name, "%s must be a UUID%s", sp->name,
                            sp->kind == K_UUID_NULL ? " or null" : "");
    }
    char text[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(id, text);
    *norm = json_string(text);
    return 0;
}

static int s_check_field(const s_spec_t *sp, const json_t *v, json_t *out, gw_error_t *err)
{
    json_t *norm = NULL;
    switch (sp->kind) {
        case K_TEXT:
        case K_TEXT_NULL:
        case K_CONTENT:
            if (s_check_text(sp, v, err) < 0) {
                return -1;
            }
            break;
        case K_OBJECT:
            if (!json_is_object(v)) {
                return gw_error_set(err, 400, "invalid_field", sp->name, "%s must be a JSON object",
                                    sp->name);
            }
            break;
        case K_UUID:
        case K_UUID_NULL:
            if (s_check_uuid(sp, v, &norm, err) < 0) {
                return -1;
            }
            break;
        case K_ON_BUSY: {
            const char *s = json_string_value(v);
            if (!s || (strcmp(s, "enqueue") && strcmp(s, "reject") && strcmp(s, "interrupt"))) {
                return gw_error_set(err, 400, "invalid_field", sp->name,
                                    "%s must be one of enqueue, reject, interrupt", sp->name);
            }
            break;
        }
    }
    json_object_set_new(out, sp->name, norm ? norm : json_deep_copy(v));
    return 0;
}

static const s_spec_t *s_find_spec(const s_spec_t *specs, const char *key)
{
    for (const s_spec_t *sp = specs; sp->name; sp++) {
        if (strcmp(sp->name, key) == 0) {
            return sp;
        }
    }
    return NULL;
}

json_t *gw_json_validate(const json_t *obj, gw_shape_t shape, gw_error_t *err)
{
    const s_spec_t *specs = s_shape_specs(shape);
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const s_spec_t *sp = s_find_spec(specs, key);
        if (!sp) {
            char shown[48];
            snprintf(shown, sizeof shown, "%s", key);
            gw_error_set(err, 400, "invalid_field", shown, "unknown field '%s'", shown);
            json_decref(out);
            return NULL;
        }
        if (s_check_field(sp, v, out, err) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    for (const s_spec_t *sp = specs; sp->name; sp++) {
        if (sp->required && !json_object_get(obj, sp->name)) {
            gw_error_set(err, 400, "invalid_field", sp->name, "%s is required", sp->name);
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- query values ------------------------------------------------------ */

int gw_parse_int(const char *text, long long min, long long max, long long *out)
{
    if (!text || !*text || strlen(text) > 20) {
        return -1;
    }
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p) && !(p == text && *p == '-')) {
            return -1;
        }
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || !end || *end || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int gw_parse_limit(const char *text, long *out, gw_error_t *err)
{
    if (!text) {
        *out = GW_LIST_LIMIT_DEF;
        return 0;
    }
    long long v;
    if (gw_parse_int(text, 1, GW_LIST_LIMIT_MAX, &v) < 0) {
        return gw_error_set(err, 400, "invalid_field", "limit",
                            "limit must be an integer from 1 to %d", GW_LIST_LIMIT_MAX);
    }
    *out = (long)v;
    return 0;
}

int gw_parse_cursor(const char *text, gw_error_t *err)
{
    size_t n = text ? strlen(text) : 0;
    bool ok = n > 0 && n <= GW_CURSOR_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = text[i] > 0x20 && text[i] < 0x7f;
    }
    if (!ok) {
        return gw_error_set(err, 400, "invalid_field", "cursor",
                            "cursor must be the opaque next_cursor of a previous page");
    }
    return 0;
}

int gw_parse_uuid(const char *text, const char *field, uint8_t out[16], gw_error_t *err)
{
    if (!text || util_uuid_parse(text, out) < 0) {
        return gw_error_set(err, 400, "invalid_field", field, "%s must be a UUID", field);
    }
    return 0;
}
