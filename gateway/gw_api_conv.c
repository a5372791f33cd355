/*  gw_api_conv — conversation routes: create, list, get, patch, delete
    (archive), cancel; plus the request helpers the other API handlers share
    (path id, validated body, list paging). Each handler validates, then hands
    the op to the owning node (or any node for team-wide reads) and suspends.
    Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_statuses[] = {"idle",  "queued",   "processing", "waiting_for_permission",
                                   "error", "archived", NULL};

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

json_t *gw_api_body(gw_req_t *req, gw_shape_t shape)
{
    gw_error_t err;
    json_t *obj = gw_json_parse(req->body, req->body_len, &err);
    json_t *args = obj ? gw_json_validate(obj, shape, &err) : NULL;
    json_decref(obj);
    if (args && gw_req_idempotency(req, args, &err) < 0) {
        json_decref(args);
        args = NULL;
    }
    if (!args) {
        gw_req_respond_error(req, &err);
    }
    return args;
}

int gw_api_page_args(gw_req_t *req, json_t *args)
{
    gw_error_t err;
    long limit;
    const char *cursor = gw_req_query(req, "cursor");
    if (gw_parse_limit(gw_req_query(req, "limit"), &limit, &err) < 0 ||
        (cursor && gw_parse_cursor(cursor, &err) < 0)) {
        gw_req_respond_error(req, &err);
        return -1;
    }
    json_object_set_new(args, "limit", json_integer(limit));
    if (cursor) {
        json_object_set_new(args, "cursor", json_string(cursor));
    }
    return 0;
}

int gw_api_uint_arg(gw_req_t *req, json_t *args, const char *name)
{
    const char *text = gw_req_query(req, name);
    long long v;
    if (!text) {
        return 0;
    }
    if (gw_parse_int(text, 0, INT64_MAX, &v) < 0) {
        gw_error_t err;
        gw_error_set(&err, 400, "invalid_field", name, "%s must be a non-negative integer", name);
        gw_req_respond_error(req, &err);
        return -1;
    }
    json_object_set_new(args, name, json_integer((json_int_t)v));
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
    json_t *args = gw_api_body(req, GW_SHAPE_CONV_CREATE);
    if (!args) {
        return;
    }
    if (gw_api_new_conv_id(req, args, req->conv_id)) {
        json_object_set_new(args, "fresh", json_true()); /* the node skips its lookup */
    }
    gw_req_call(req, "conv.create", true, args, NULL);
}

static int s_filter(gw_req_t *req, json_t *args, const char *name, const char **allowed)
{
    const char *v = gw_req_query(req, name);
    if (!v) {
        return 0;
    }
    bool ok = *v && strlen(v) <= 64;
    if (ok && allowed) {
        ok = false;
        for (const char **a = allowed; *a && !ok; a++) {
            ok = strcmp(*a, v) == 0;
        }
    }
    if (!ok) {
        gw_error_t err;
        if (allowed) {
            gw_error_enum(&err, name, allowed);
        } else {
            gw_error_set(&err, 400, "invalid_field", name, "%s must be 1 to 64 characters", name);
        }
        gw_req_respond_error(req, &err);
        return -1;
    }
    json_object_set_new(args, name, json_string(v));
    return 0;
}

void gw_h_conv_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_page_args(req, args) < 0 || s_filter(req, args, "source", NULL) < 0 ||
        s_filter(req, args, "type", NULL) < 0 || s_filter(req, args, "status", s_statuses) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "conv.list", false, args, NULL);
}

void gw_h_conv_get(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    gw_req_call(req, "conv.get", true, json_object(), NULL);
}

void gw_h_conv_patch(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, GW_SHAPE_CONV_PATCH);
    if (args) {
        gw_req_call(req, "conv.patch", true, args, NULL);
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
    gw_req_call(req, "conv.delete", true, args, NULL);
}

void gw_h_conv_cancel(gw_req_t *req)
{
    if (gw_api_conv_param(req) < 0) {
        return;
    }
    json_t *args = gw_api_body(req, GW_SHAPE_EMPTY);
    if (args) {
        gw_req_call(req, "conv.cancel", true, args, NULL);
    }
}
