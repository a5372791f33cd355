/*  gw_api_perm — permission requests and rules. Lists, gets and rules are
    team-wide ops (any node). A decision (approve/deny) must reach the
    conversation's owner, and the request id alone does not name the
    conversation: the gateway first asks any node for the request (perm.get,
    which answers 404 for an unknown id or another team's), then sends
    perm.decide to the ring owner of the request's conversation. Also the
    small field checker the agent routes share. Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

static const char *const s_perm_statuses[] = {"pending", "approved", "denied", "expired", NULL};
static const char *const s_remember[] = {"conversation", "team", NULL};
static const char *const s_scopes[] = {"team", "conversation", NULL};
static const char *const s_decisions[] = {"allow", "deny", NULL};

static const gw_field_t s_approve_fields[] = {
    {"remember", GW_F_STR, 16, s_remember},
    {"updated_input", GW_F_OBJECT, 0, NULL},
    {NULL, GW_F_STR, 0, NULL},
};
static const gw_field_t s_deny_fields[] = {
    {"reason", GW_F_STR, 1000, NULL},
    {NULL, GW_F_STR, 0, NULL},
};
static const gw_field_t s_rule_fields[] = {
    {"scope", GW_F_STR, 16, s_scopes},
    {"conversation_id", GW_F_UUID, 0, NULL},
    {"tool_pattern", GW_F_STR, 200, NULL},
    {"decision", GW_F_STR, 8, s_decisions},
    {NULL, GW_F_STR, 0, NULL},
};

/* ---- field checks ---------------------------------------------------------------------- */

static bool s_allowed(const char *const *values, const char *v)
{
    for (size_t i = 0; values && values[i]; i++) {
        if (strcmp(values[i], v) == 0) {
            return true;
        }
    }
    return !values;
}

/* Checks one value; 0 or -1 with err set. Writes the (normalised) value to out. */
static int s_check(const gw_field_t *f, json_t *v, json_t *out, gw_error_t *err)
{
    const char *s = json_string_value(v);
    switch (f->type) {
        case GW_F_OBJECT:
            if (!json_is_object(v)) {
                return gw_error_set(err, 400, "invalid_field", f->name, "%s must be an object",
                                    f->name);
            }
            break;
        case GW_F_BOOL:
            if (!json_is_boolean(v)) {
                return gw_error_set(err, 400, "invalid_field", f->name, "%s must be a boolean",
                                    f->name);
            }
            break;
        case GW_F_UUID: {
            uint8_t raw[16];
            char norm[UTIL_UUID_STR_LEN + 1];
            if (!s || util_uuid_parse(s, raw) < 0) {
                return gw_error_set(err, 400, "invalid_field", f->name, "%s must be a UUID",
                                    f->name);
            }
            util_uuid_format(raw, norm);
            json_object_set_new(out, f->name, json_string(norm));
            return 0;
        }
        case GW_F_STR:
            if (f->values && (!s || !s_allowed(f->values, s))) {
                return gw_error_enum(err, f->name, f->values);
            }
            if (!s || strlen(s) != json_string_length(v) || !*s || gw_utf8_len(s) > f->max) {
                return gw_error_set(err, 400, "invalid_field", f->name,
                                    "%s must be a non-empty string within its length limit",
                                    f->name);
            }
            break;
    }
    json_object_set(out, f->name, v);
    return 0;
}

json_t *gw_api_fields(gw_req_t *req, const gw_field_t *fields)
{
    gw_error_t err;
    json_t *obj = gw_json_parse(req->body, req->body_len, &err);
    json_t *out = obj ? json_object() : NULL;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const gw_field_t *f = fields;
        while (f->name && strcmp(f->name, key) != 0) {
            f++;
        }
        int rc = !f->name ? gw_error_set(&err, 400, "invalid_field", key, "unknown field %s", key)
                 : json_is_null(v) ? 0
                                   : s_check(f, v, out, &err);
        if (rc < 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    json_decref(obj);
    if (!out) {
        gw_req_respond_error(req, &err);
    }
    return out;
}

/* The :id path parameter as a lowercase UUID string into args["id"]; -1 after a 400. */
static int s_id_param(gw_req_t *req, json_t *args)
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

/* Adds query argument name (validated: one of values, or a UUID when uuid) to args. */
static int
s_query(gw_req_t *req, json_t *args, const char *name, const char *const *values, bool uuid)
{
    const char *v = gw_req_query(req, name);
    gw_error_t err;
    uint8_t raw[16];
    char norm[UTIL_UUID_STR_LEN + 1];
    if (!v) {
        return 0;
    }
    if (uuid) {
        if (gw_parse_uuid(v, name, raw, &err) < 0) {
            gw_req_respond_error(req, &err);
            return -1;
        }
        util_uuid_format(raw, norm);
        json_object_set_new(args, name, json_string(norm));
        return 0;
    }
    if (!s_allowed(values, v)) {
        gw_error_enum(&err, name, values);
        gw_req_respond_error(req, &err);
        return -1;
    }
    json_object_set_new(args, name, json_string(v));
    return 0;
}

/* ---- permissions ------------------------------------------------------------------------ */

void gw_h_perm_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_page_args(req, args) < 0 ||
        s_query(req, args, "status", s_perm_statuses, false) < 0 ||
        s_query(req, args, "conversation_id", NULL, true) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "perm.list", false, args, NULL);
}

void gw_h_perm_get(gw_req_t *req)
{
    json_t *args = json_object();
    if (s_id_param(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "perm.get", false, args, NULL);
}

/* The validated decision body plus id and decision; NULL after a 400. */
static json_t *s_decision(gw_req_t *req, bool approve)
{
    json_t *args = gw_api_fields(req, approve ? s_approve_fields : s_deny_fields);
    if (!args) {
        return NULL;
    }
    if (s_id_param(req, args) < 0) {
        json_decref(args);
        return NULL;
    }
    json_object_set_new(args, "decision", json_string(approve ? "approve" : "deny"));
    return args;
}

/* perm.get answered: route the decision to the owner of the request's conversation. */
static void s_route(gw_req_t *req, const gw_reply_t *reply, bool approve)
{
    json_t *body = reply->status == 200 && reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    const char *conv = json_string_value(json_object_get(body, "conversation_id"));
    if (reply->status != 200) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
    } else if (!conv || util_uuid_parse(conv, req->conv_id) < 0) {
        gw_req_fail(req, 502, "bad_gateway", "the node answered an unexpected request");
    } else {
        json_t *args = s_decision(req, approve);
        if (args) {
            gw_req_call(req, "perm.decide", true, args, NULL);
        }
    }
    json_decref(body);
}

static void s_route_approve(void *owner, const gw_reply_t *reply)
{
    s_route(owner, reply, true);
}

static void s_route_deny(void *owner, const gw_reply_t *reply)
{
    s_route(owner, reply, false);
}

static void s_decide(gw_req_t *req, bool approve)
{
    json_t *args = s_decision(req, approve);
    if (!args) {
        return;
    }
    json_t *get = json_pack("{s:O}", "id", json_object_get(args, "id"));
    json_decref(args);
    gw_req_call(req, "perm.get", false, get, approve ? s_route_approve : s_route_deny);
}

void gw_h_perm_approve(gw_req_t *req)
{
    s_decide(req, true);
}

void gw_h_perm_deny(gw_req_t *req)
{
    s_decide(req, false);
}

/* ---- rules -------------------------------------------------------------------------------- */

void gw_h_rule_list(gw_req_t *req)
{
    json_t *args = json_object();
    if (gw_api_page_args(req, args) < 0 || s_query(req, args, "conversation_id", NULL, true) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "rule.list", false, args, NULL);
}

void gw_h_rule_create(gw_req_t *req)
{
    json_t *args = gw_api_fields(req, s_rule_fields);
    if (!args) {
        return;
    }
    static const char *required[] = {"scope", "tool_pattern", "decision"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!json_object_get(args, required[i])) {
            gw_error_t err;
            gw_error_set(&err, 400, "invalid_field", required[i], "%s is required", required[i]);
            gw_req_respond_error(req, &err);
            json_decref(args);
            return;
        }
    }
    gw_req_call(req, "rule.create", false, args, NULL);
}

void gw_h_rule_delete(gw_req_t *req)
{
    json_t *args = json_object();
    if (s_id_param(req, args) < 0) {
        json_decref(args);
        return;
    }
    gw_req_call(req, "rule.delete", false, args, NULL);
}
