/*  gw_api_conv — conversation routes: create, list, get, patch, delete
    (archive), cancel; plus the request helpers the other API handlers share
    (path ids, bodies and query arguments checked against the op table,
    proto/proto_ops.c, as the node checks them). Each handler validates, then hands
    the op to the owning node (or any node for team-wide reads) and suspends.
    Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/op_args.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_api_conv_param(gw_req_t *req)
{
    gw_error_t err;
    if (gw_parse_uuid(req->params[0], "id", req->conv_id, &err) < 0) {
        gw_req_respond_error(req, &err);
        return -1;
    }
    if (util_uuid_is_nil(req->conv_id)) {
        /* A well-formed id that no conversation can have (nodes refuse it). */
        gw_req_fail(req, 404, "not_found", "conversation not found");
        return -1;
    }
    return 0;
}

json_t *gw_api_body(gw_req_t *req, proto_op_id_t op, json_t *preset)
{
    gw_error_t err;
    json_t *obj = gw_json_parse(req->body, req->body_len, &err);
    json_t *args = NULL;
    if (obj) {
        args = gw_json_args(obj, op, preset, &err);
    } else {
        json_decref(preset);
    }
    if (args && proto_ops[op].write && gw_req_idempotency(req, args, &err) < 0) {
        json_decref(args);
        args = NULL;
    }
    if (!args) {
        gw_req_respond_error(req, &err);
        return NULL;
    }
    /* The team's strategy allow-list (gw_limits.c answers the 400). */
    if ((op == PROTO_OP_CONV_CREATE || op == PROTO_OP_CONV_PATCH) &&
        gw_limits_strategy(req, args, op == PROTO_OP_CONV_CREATE) < 0) {
        json_decref(args);
        return NULL;
    }
    return args;
}

/* The query value of field f as JSON: integers parsed (text the parser refuses
   stays text, which the check then refuses with the field's message). */
static json_t *s_query_value(const proto_field_t *f, const char *text)
{
    long long n;
    if (f->type == PROTO_FT_INT && gw_parse_int(text, f->min, f->max, &n) == 0) {
        return json_integer((json_int_t)n);
    }
    return json_string(text);
}

int gw_api_query(gw_req_t *req, proto_op_id_t op, json_t *args)
{
    const proto_op_t *spec = &proto_ops[op];
    gw_error_t err;
    op_args_err_t e;
    for (const proto_field_t *f = spec->fields; f->name; f++) {
        const char *text = f->flags & PROTO_F_GATEWAY ? NULL : gw_req_query(req, f->name);
        if (!text) {
            continue;
        }
        if (strcmp(f->name, "cursor") == 0 && gw_parse_cursor(text, &err) < 0) {
            gw_req_respond_error(req, &err);
            return -1;
        }
        json_t *v = s_query_value(f, text);
        if (!v) { /* not UTF-8: json_string refuses it */
            gw_error_set(&err, 400, "invalid_field", f->name, "%s is not valid UTF-8", f->name);
            gw_req_respond_error(req, &err);
            return -1;
        }
        json_object_set_new(args, f->name, v);
    }
    if (op_args_check(spec, args, 0, &e) < 0) {
        gw_error_set(&err, 400, "invalid_field", e.field, "%s", e.message);
        gw_req_respond_error(req, &err);
        return -1;
    }
    if (proto_field_find(spec->fields, "limit") && !json_object_get(args, "limit")) {
        json_object_set_new(args, "limit", json_integer(PROTO_LIST_DEFAULT));
    }
    return 0;
}

int gw_api_id_arg(gw_req_t *req, json_t *args)
{
    gw_error_t err;
    uint8_t raw[16];
    char id[UTIL_UUID_STR_LEN + 1];
    if (gw_parse_uuid(req->params[0], "id", raw, &err) < 0) {
        gw_req_respond_error(req, &err);
        return -1;
    }
    util_uuid_format(raw, id);
    json_object_set_new(args, "id", json_string(id));
    return 0;
}

bool gw_api_new_conv_id(gw_req_t *req, const json_t *args, uint8_t out[16])
{
    const char *key = json_string_value(json_object_get(args, "idempotency_key"));
    if (!key) {
        util_uuid_generate(out);
        return true;
    }
    /* A retried create with the same Idempotency-Key must land on the same
       conversation id (and so the same owner): derive it from team and key. */
    size_t klen = strlen(key);
    uint8_t buf[16 + GW_IDEMPOTENCY_MAX];
    memcpy(buf, req->team_id, 16);
    memcpy(buf + 16, key, klen);
    char hex[65];
    util_sha256_hex(buf, 16 + klen, hex);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
    return false;
}

/* ---- handlers -------------------------------------------------------------- */

void gw_h_conv_create(gw_req_t *req)
{
    json_t *args = gw_api_body(req, PROTO_OP_CONV_CREATE, NULL);
    if (!args) {
        return;
    }
    if (gw_api_new_conv_id(req, args, req->conv_id)) {
        json_object_set_new(args, "fresh", json_true()); /* the node skips its lookup */
    }
    gw_req_call(req, PROTO_OP_CONV_CREATE, args, NULL);
}

void gw_h_conv_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_query(req, PROTO_OP_CONV_LIST, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, PROTO_OP_CONV_LIST, args, NULL);
}

void gw_h_conv_get(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    gw_req_call(req, PROTO_OP_CONV_GET, json_object(), NULL);
}

void gw_h_conv_patch(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, PROTO_OP_CONV_PATCH, NULL);
    if (args) {
        gw_req_call(req, PROTO_OP_CONV_PATCH, args, NULL);
    }
}

void gw_h_conv_delete(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    gw_error_t err;
    json_t *args = json_object();
    if (gw_req_idempotency(req, args, &err) < 0) {
        json_decref(args);
        gw_req_respond_error(req, &err);
        return;
    }
    gw_req_call(req, PROTO_OP_CONV_DELETE, args, NULL);
}

void gw_h_conv_cancel(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, PROTO_OP_CONV_CANCEL, NULL);
    if (args) {
        gw_req_call(req, PROTO_OP_CONV_CANCEL, args, NULL);
    }
}
