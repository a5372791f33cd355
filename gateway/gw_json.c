/*  gw_json — request body parsing, the check of bodies against the op table
    (proto/proto_ops.c, through common/op_args.c: the same rows and messages
    as the node's), query value parsing, and the API.md error body. Pure
    functions over their arguments; any thread (the gateway calls them from
    its loop thread). */
#include "gateway/gateway_internal.h"

#include "common/op_args.h"
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

/* text as a JSON string. A message may not be valid UTF-8: jansson's
   "near '...'" quotes the broken input and may cut it inside a character,
   and a copied field name or a message cut by its buffer can end inside
   one; then its non-ASCII bytes become '?', so that the error still has a
   body (json_string refuses invalid UTF-8). */
static json_t *s_json_text(const char *text)
{
    json_t *s = json_string(text);
    if (s) {
        return s;
    }
    char copy[sizeof((gw_error_t *)0)->message];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *p = copy; *p; p++) {
        *p = (unsigned char)*p >= 0x80 ? '?' : *p;
    }
    return json_string(copy);
}

char *gw_error_body(const gw_error_t *err)
{
    json_t *o = json_pack("{s:o, s:s}", "error", s_json_text(err->message), "code", err->code);
    if (!o) {
        return NULL;
    }
    if (err->field[0]) {
        json_object_set_new(o, "field", s_json_text(err->field));
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
        gw_error_set(err, 400, "invalid_json", NULL, "invalid JSON at line %d, column %d: %s%s",
                     jerr.line, jerr.column,
                     json_error_code(&jerr) == json_error_invalid_utf8 ? "not valid UTF-8, " : "",
                     jerr.text);
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

/* ---- arguments: the op table's rows (common/op_args.c) ------------------ */

static int s_refuse(gw_error_t *err, const op_args_err_t *e)
{
    return gw_error_set(err, 400, "invalid_field", e->field, "%s", e->message);
}

json_t *gw_json_args(json_t *obj, proto_op_id_t op, json_t *preset, gw_error_t *err)
{
    const proto_op_t *spec = &proto_ops[op];
    op_args_err_t e;
    /* First what the client sent, as a client may send it; then, with the
       fields the gateway sets, the same check the node makes (conditions such
       as "reason only when decision is deny" involve both). */
    int rc = op_args_check(spec, obj, OP_ARGS_CLIENT, &e);
    if (rc == 0 && json_object_size(preset) > 0) {
        json_object_update(obj, preset);
        rc = op_args_check(spec, obj, 0, &e);
    }
    json_decref(preset);
    if (rc < 0) {
        s_refuse(err, &e);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* POST /api/message names the conversation in its body (the envelope's conv_id). */
static const proto_field_t s_conversation_id = {
    "conversation_id", PROTO_FT_UUID, 0, 0, 0, NULL, NULL, NULL, NULL};

json_t *gw_json_message_args(json_t *obj, uint8_t conv[16], bool *has_conv, gw_error_t *err)
{
    const proto_op_t *post = &proto_ops[PROTO_OP_MSG_POST];
    const proto_field_t *conv_fields = proto_field_find(post->fields, "create")->fields;
    json_t *create = json_object();
    json_t *cid = json_object_get(obj, "conversation_id");
    op_args_err_t e;
    int rc = cid ? op_args_check_value(&s_conversation_id, cid, 0, &e) : 0;
    *has_conv = cid && rc == 0 && util_uuid_parse(json_string_value(cid), conv) == 0;
    json_object_del(obj, "conversation_id");
    /* The conversation's fields go under "create"; metadata is the message's. */
    const char *key;
    json_t *v;
    void *next;
    json_object_foreach_safe(obj, next, key, v)
    {
        if (strcmp(key, "metadata") != 0 && proto_field_find(conv_fields, key)) {
            json_object_set(create, key, v);
            json_object_del(obj, key);
        }
    }
    if (rc == 0) {
        rc = op_args_check(post, obj, OP_ARGS_CLIENT, &e);
    }
    if (rc == 0) {
        rc = op_args_check_fields(conv_fields, create, OP_ARGS_CLIENT, &e);
    }
    if (rc < 0) {
        s_refuse(err, &e);
        json_decref(create);
        json_decref(obj);
        return NULL;
    }
    json_object_set_new(obj, "create", create);
    return obj;
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
    bool ok = n > 0;
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
