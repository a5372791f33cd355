/*  proto — msgpack envelope and payload codec, driven by one field table per
    message type so that every message has exactly one encoder and decoder.
    Pure functions; any thread. */
#include "proto/proto.h"
#include "proto/proto_internal.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_STR, F_U64, F_NODES } s_kind_t;

typedef struct {
    const char *key; /* payload map key */
    s_kind_t kind;   /* field type */
    size_t off;      /* offset in proto_msg_t */
    bool required;   /* absent → PROTO_ERR_MISSING */
    size_t max;      /* max string length, or max value for F_U64 */
} s_field_t;

#define STR(k, req, mx)                                                                            \
    {                                                                                              \
#k, F_STR, offsetof(proto_msg_t, k), req, mx                                               \
    }
#define U64(k, req, mx)                                                                            \
    {                                                                                              \
#k, F_U64, offsetof(proto_msg_t, k), req, mx                                               \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, F_STR, 0, false, 0                                                                   \
    }

static const s_field_t s_register[] = {STR(node_id, true, 63), STR(router, true, 255),
                                       STR(pub, true, 255), U64(weight, true, 64), END};
static const s_field_t s_heartbeat[] = {STR(node_id, true, 63), U64(actors, false, UINT64_MAX),
                                        END};
static const s_field_t s_reg_ack[] = {STR(state, true, 15), STR(pub, false, 255),
                                      STR(error, false, 1024), END};
static const s_field_t s_empty[] = {END};
static const s_field_t s_ring[] = {
    STR(pub, false, 255),
    U64(revoked_seq, false, UINT64_MAX),
    {"nodes", F_NODES, offsetof(proto_msg_t, nodes), true, PROTO_MAX_NODES},
    END};
/* token: an API token a gateway forwards for its HTTP caller (the registry checks it). */
static const s_field_t s_admin[] = {STR(action, true, 15), STR(node_id, true, 63),
                                    STR(token, false, 512), END};
static const s_field_t s_revoked[] = {U64(seq, true, UINT64_MAX), STR(token_sha256, true, 64), END};
static const s_field_t s_admin_rep[] = {U64(status, true, 999), STR(error, false, 1024),
                                        STR(state, false, 15), END};
/* The team's limits ride on each request (the gateway has them from its auth
   cache), so a node never asks Postgres for them. */
static const s_field_t s_api_req[] = {STR(op, true, 63),
                                      STR(body, false, PROTO_MAX_BODY),
                                      U64(team_turns, false, 1000000000),
                                      U64(team_actors, false, 1000000000),
                                      U64(team_worktrees, false, 1000000000),
                                      END};
static const s_field_t s_api_rep[] = {U64(status, true, 999), STR(body, false, PROTO_MAX_BODY),
                                      U64(retry_after, false, 86400), END};
static const s_field_t s_event[] = {U64(event_id, true, UINT64_MAX), STR(event_type, true, 63),
                                    STR(body, true, PROTO_MAX_BODY), U64(seq, false, UINT64_MAX),
                                    END};

typedef struct {
    const char *name;
    const s_field_t *fields;
} s_type_t;

static const s_type_t s_types[PROTO_TYPE_END] = {
    [PROTO_REGISTER] = {"register", s_register},
    [PROTO_HEARTBEAT] = {"heartbeat", s_heartbeat},
    [PROTO_REG_ACK] = {"reg_ack", s_reg_ack},
    [PROTO_RING_GET] = {"ring_get", s_empty},
    [PROTO_RING] = {"ring", s_ring},
    [PROTO_ADMIN] = {"admin", s_admin},
    [PROTO_ADMIN_REP] = {"admin_rep", s_admin_rep},
    [PROTO_REVOKED] = {"revoked", s_revoked},
    [PROTO_API_REQ] = {"api_req", s_api_req},
    [PROTO_API_REP] = {"api_rep", s_api_rep},
    [PROTO_MOVED] = {"moved", s_empty},
    [PROTO_EVENT] = {"event", s_event},
};

const char *proto_type_name(proto_type_t type)
{
    if ((int)type > 0 && type < PROTO_TYPE_END && s_types[type].name) {
        return s_types[type].name;
    }
    return "unknown";
}

void proto_topic(const uint8_t team[16], const uint8_t conv[16], uint8_t out[PROTO_TOPIC_LEN])
{
    memcpy(out, team, 16);
    memcpy(out + 16, conv, 16);
}

/* ---- encoding ---------------------------------------------------------- */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_pack_node(msgpack_packer *pk, const proto_node_t *n)
{
    msgpack_pack_map(pk, 7);
    s_pack_str(pk, "id");
    s_pack_str(pk, n->id);
    s_pack_str(pk, "state");
    s_pack_str(pk, n->state);
    s_pack_str(pk, "router");
    s_pack_str(pk, n->router);
    s_pack_str(pk, "pub");
    s_pack_str(pk, n->pub);
    s_pack_str(pk, "weight");
    msgpack_pack_uint64(pk, n->weight);
    s_pack_str(pk, "actors");
    msgpack_pack_uint64(pk, n->actors);
    s_pack_str(pk, "age_ms");
    msgpack_pack_uint64(pk, n->age_ms);
}

static int s_count_payload(const proto_msg_t *msg, const s_field_t *fields, uint32_t *count)
{
    *count = 0;
    for (const s_field_t *f = fields; f->key; f++) {
        const char *base = (const char *)msg + f->off;
        if (f->kind == F_STR) {
            const char *s = *(char *const *)base;
            if (!s && f->required) {
                return PROTO_ERR_MISSING;
            }
            if (s && strlen(s) > f->max) {
                return PROTO_ERR_RANGE;
            }
            *count += s != NULL;
        } else if (f->kind == F_NODES) {
            if (msg->nnodes > f->max) {
                return PROTO_ERR_RANGE;
            }
            *count += 1;
        } else {
            *count += 1;
        }
    }
    return PROTO_OK;
}

static void
s_pack_payload(msgpack_packer *pk, const proto_msg_t *msg, const s_field_t *fields, uint32_t count)
{
    msgpack_pack_map(pk, count);
    for (const s_field_t *f = fields; f->key; f++) {
        const char *base = (const char *)msg + f->off;
        if (f->kind == F_STR) {
            const char *s = *(char *const *)base;
            if (s) {
                s_pack_str(pk, f->key);
                s_pack_str(pk, s);
            }
        } else if (f->kind == F_U64) {
            s_pack_str(pk, f->key);
            msgpack_pack_uint64(pk, *(const uint64_t *)base);
        } else {
            s_pack_str(pk, f->key);
            msgpack_pack_array(pk, msg->nnodes);
            for (size_t i = 0; i < msg->nnodes; i++) {
                s_pack_node(pk, &msg->nodes[i]);
            }
        }
    }
}

static void s_pack_id(msgpack_packer *pk, const char *key, bool has, const uint8_t id[16])
{
    s_pack_str(pk, key);
    if (has) {
        msgpack_pack_bin(pk, 16);
        msgpack_pack_bin_body(pk, id, 16);
    } else {
        msgpack_pack_nil(pk);
    }
}

int proto_encode(const proto_msg_t *msg, uint8_t **data, size_t *size)
{
    if ((int)msg->type <= 0 || msg->type >= PROTO_TYPE_END || !s_types[msg->type].fields) {
        return PROTO_ERR_TYPE;
    }
    const s_field_t *fields = s_types[msg->type].fields;
    uint32_t count = 0;
    int rc = s_count_payload(msg, fields, &count);
    if (rc != PROTO_OK) {
        return rc;
    }
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    s_pack_str(&pk, "v");
    msgpack_pack_uint32(&pk, PROTO_VERSION);
    s_pack_str(&pk, "type");
    msgpack_pack_uint32(&pk, (uint32_t)msg->type);
    s_pack_str(&pk, "req_id");
    msgpack_pack_uint64(&pk, msg->req_id);
    s_pack_id(&pk, "conv_id", msg->has_conv, msg->conv_id);
    s_pack_id(&pk, "team_id", msg->has_team, msg->team_id);
    s_pack_str(&pk, "ring_epoch");
    msgpack_pack_uint64(&pk, msg->ring_epoch);
    s_pack_str(&pk, "payload");
    s_pack_payload(&pk, msg, fields, count);
    if (!sbuf.data) {
        return PROTO_ERR_NOMEM;
    }
    /* The sbuffer's storage is malloc'd: hand it over instead of copying. */
    *size = sbuf.size;
    *data = (uint8_t *)msgpack_sbuffer_release(&sbuf);
    return PROTO_OK;
}

/* ---- decoding ---------------------------------------------------------- */

static int s_fail(char *err, size_t errlen, int code, const char *what, const char *key)
{
    if (err && errlen) {
        snprintf(err, errlen, "%s%s%s", what, key ? ": " : "", key ? key : "");
    }
    return code;
}

static bool s_key_is(const msgpack_object_kv *kv, const char *key)
{
    size_t n = strlen(key);
    return kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
           memcmp(kv->key.via.str.ptr, key, n) == 0;
}

static const msgpack_object *s_get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (s_key_is(&map->via.map.ptr[i], key)) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

static int s_get_u64(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return PROTO_ERR_SHAPE;
    }
    if (o->via.u64 > max) {
        return PROTO_ERR_RANGE;
    }
    *out = o->via.u64;
    return PROTO_OK;
}

static int s_copy_str(const msgpack_object *o, size_t max, char *buf, size_t bufsize)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return PROTO_ERR_SHAPE;
    }
    size_t n = o->via.str.size;
    if (n > max || n >= bufsize || memchr(o->via.str.ptr, 0, n)) {
        return PROTO_ERR_RANGE;
    }
    memcpy(buf, o->via.str.ptr, n);
    buf[n] = 0;
    return PROTO_OK;
}

static int s_dup_str(const msgpack_object *o, size_t max, char **out)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return PROTO_ERR_SHAPE;
    }
    size_t n = o->via.str.size;
    if (n > max || memchr(o->via.str.ptr, 0, n)) {
        return PROTO_ERR_RANGE;
    }
    char *s = malloc(n + 1);
    if (!s) {
        return PROTO_ERR_NOMEM;
    }
    memcpy(s, o->via.str.ptr, n);
    s[n] = 0;
    *out = s;
    return PROTO_OK;
}

static int s_decode_node(const msgpack_object *o, proto_node_t *n)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        return PROTO_ERR_SHAPE;
    }
    static const struct {
        const char *key;
        size_t off, size;
    } strs[] = {{"id", offsetof(proto_node_t, id), sizeof n->id},
                {"state", offsetof(proto_node_t, state), sizeof n->state},
                {"router", offsetof(proto_node_t, router), sizeof n->router},
                {"pub", offsetof(proto_node_t, pub), sizeof n->pub}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const msgpack_object *v = s_get(o, strs[i].key);
        if (!v) {
            return PROTO_ERR_MISSING;
        }
        int rc = s_copy_str(v, strs[i].size - 1, (char *)n + strs[i].off, strs[i].size);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    uint64_t w = 0, a = 0, age = 0;
    const msgpack_object *v;
    int rc = PROTO_OK;
    if ((v = s_get(o, "weight")) && (rc = s_get_u64(v, 64, &w)) != PROTO_OK) {
        return rc;
    }
    if ((v = s_get(o, "actors")) && (rc = s_get_u64(v, UINT32_MAX, &a)) != PROTO_OK) {
        return rc;
    }
    if ((v = s_get(o, "age_ms")) && (rc = s_get_u64(v, UINT64_MAX, &age)) != PROTO_OK) {
        return rc;
    }
    n->weight = (uint32_t)w;
    n->actors = (uint32_t)a;
    n->age_ms = age;
    return PROTO_OK;
}

static int s_decode_nodes(const msgpack_object *o, size_t max, proto_msg_t *out)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return PROTO_ERR_SHAPE;
    }
    if (o->via.array.size > max) {
        return PROTO_ERR_RANGE;
    }
    size_t n = o->via.array.size;
    out->nodes = calloc(n ? n : 1, sizeof *out->nodes);
    if (!out->nodes) {
        return PROTO_ERR_NOMEM;
    }
    out->nnodes = n;
    for (size_t i = 0; i < n; i++) {
        int rc = s_decode_node(&o->via.array.ptr[i], &out->nodes[i]);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_OK;
}

static int s_decode_payload(const msgpack_object *p, proto_msg_t *out, const char **bad)
{
    if (p->type != MSGPACK_OBJECT_MAP) {
        *bad = "payload";
        return PROTO_ERR_SHAPE;
    }
    for (const s_field_t *f = s_types[out->type].fields; f->key; f++) {
        const msgpack_object *v = s_get(p, f->key);
        *bad = f->key;
        if (!v || v->type == MSGPACK_OBJECT_NIL) {
            if (f->required) {
                return PROTO_ERR_MISSING;
            }
            continue;
        }
        char *base = (char *)out + f->off;
        int rc = f->kind == F_STR   ? s_dup_str(v, f->max, (char **)base)
                 : f->kind == F_U64 ? s_get_u64(v, f->max, (uint64_t *)base)
                                    : s_decode_nodes(v, f->max, out);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_OK;
}

static int s_decode_id(const msgpack_object *env, const char *key, bool *has, uint8_t id[16])
{
    const msgpack_object *v = s_get(env, key);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        *has = false;
        return PROTO_OK;
    }
    if (v->type != MSGPACK_OBJECT_BIN) {
        return PROTO_ERR_SHAPE;
    }
    if (v->via.bin.size != 16) {
        return PROTO_ERR_RANGE;
    }
    memcpy(id, v->via.bin.ptr, 16);
    *has = true;
    return PROTO_OK;
}

static int s_decode_envelope(const msgpack_object *env, proto_msg_t *out, const char **bad)
{
    uint64_t v = 0, type = 0;
    const msgpack_object *o;
    int rc;
    *bad = "v";
    if (!(o = s_get(env, "v"))) {
        return PROTO_ERR_MISSING;
    }
    if ((rc = s_get_u64(o, UINT32_MAX, &v)) != PROTO_OK) {
        return rc;
    }
    if (v != PROTO_VERSION) {
        return PROTO_ERR_VERSION;
    }
    *bad = "type";
    if (!(o = s_get(env, "type"))) {
        return PROTO_ERR_MISSING;
    }
    if ((rc = s_get_u64(o, UINT32_MAX, &type)) != PROTO_OK) {
        return rc;
    }
    if (type == 0 || type >= PROTO_TYPE_END || !s_types[type].fields) {
        return PROTO_ERR_TYPE;
    }
    out->v = (uint32_t)v;
    out->type = (proto_type_t)type;
    *bad = "req_id";
    if ((o = s_get(env, "req_id")) && (rc = s_get_u64(o, UINT64_MAX, &out->req_id)) != PROTO_OK) {
        return rc;
    }
    *bad = "ring_epoch";
    if ((o = s_get(env, "ring_epoch")) &&
        (rc = s_get_u64(o, UINT64_MAX, &out->ring_epoch)) != PROTO_OK) {
        return rc;
    }
    *bad = "conv_id";
    if ((rc = s_decode_id(env, "conv_id", &out->has_conv, out->conv_id)) != PROTO_OK) {
        return rc;
    }
    *bad = "team_id";
    if ((rc = s_decode_id(env, "team_id", &out->has_team, out->team_id)) != PROTO_OK) {
        return rc;
    }
    *bad = "payload";
    if (!(o = s_get(env, "payload"))) {
        return PROTO_ERR_MISSING;
    }
    return s_decode_payload(o, out, bad);
}

static const char *s_err_name(int rc)
{
    switch (rc) {
        case PROTO_ERR_TRUNCATED:
            return "truncated or not msgpack";
        case PROTO_ERR_SHAPE:
            return "wrong type";
        case PROTO_ERR_VERSION:
            return "unknown version";
        case PROTO_ERR_TYPE:
            return "unknown message type";
        case PROTO_ERR_MISSING:
            return "missing field";
        case PROTO_ERR_RANGE:
            return "field out of range";
        default:
            return "out of memory";
    }
}

int proto_decode(const void *data, size_t size, proto_msg_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!data || size == 0 || size > PROTO_MAX_FRAME) {
        return s_fail(err, errlen, PROTO_ERR_TRUNCATED, s_err_name(PROTO_ERR_TRUNCATED), NULL);
    }
    if (!proto_prescan(data, size)) {
        return s_fail(err, errlen, PROTO_ERR_TRUNCATED, s_err_name(PROTO_ERR_TRUNCATED), NULL);
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, data, size, &off);
    int rc;
    const char *bad = NULL;
    if (ur != MSGPACK_UNPACK_SUCCESS || off != size) {
        rc = PROTO_ERR_TRUNCATED;
    } else if (u.data.type != MSGPACK_OBJECT_MAP) {
        rc = PROTO_ERR_SHAPE;
        bad = "envelope";
    } else {
        rc = s_decode_envelope(&u.data, out, &bad);
    }
    msgpack_unpacked_destroy(&u);
    if (rc != PROTO_OK) {
        proto_msg_reset(out);
        return s_fail(err, errlen, rc, s_err_name(rc), bad);
    }
    return PROTO_OK;
}

void proto_msg_reset(proto_msg_t *msg)
{
    if (!msg) {
        return;
    }
    free(msg->node_id);
    free(msg->router);
    free(msg->pub);
    free(msg->state);
    free(msg->action);
    free(msg->op);
    free(msg->body);
    free(msg->error);
    free(msg->event_type);
    free(msg->token_sha256);
    free(msg->token);
    free(msg->nodes);
    memset(msg, 0, sizeof *msg);
}

bool proto_node_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > PROTO_NODE_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}
