/*  test_proto — the wire format: every message type round-trips, and every
    malformed frame (truncated, wrong types, unknown version or type, missing
    or oversized fields, random bytes) is an error value, never a crash. */
#include "proto/proto.h"

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static proto_node_t s_nodes[2] = {
    {"n1", "alive", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", 1, 3, 10},
    {"n2", "draining", "tcp://127.0.0.1:3", "tcp://127.0.0.1:4", 2, 0, 999},
};

/* One filled message of each type. */
static proto_msg_t s_sample(proto_type_t type)
{
    proto_msg_t m = {0};
    m.type = type;
    m.req_id = 42;
    m.ring_epoch = 7;
    m.has_conv = true;
    memset(m.conv_id, 0xab, 16);
    m.has_team = true;
    memset(m.team_id, 0xcd, 16);
    m.node_id = "n1";
    m.router = "tcp://127.0.0.1:7110";
    m.pub = "tcp://127.0.0.1:7111";
    m.state = "alive";
    m.action = "drain";
    m.op = "msg.post";
    m.body = "{\"content\":\"hi\"}";
    m.error = "nope";
    m.event_type = "message.created";
    m.weight = 2;
    m.actors = 5;
    m.status = 202;
    m.retry_after = 1;
    m.event_id = 123456789012ULL;
    m.seq = 9;
    m.revoked_seq = 3;
    m.token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    m.token = "bk_0123456789abcdef";
    m.nodes = s_nodes;
    m.nnodes = 2;
    return m;
}

static void s_roundtrip(proto_type_t type)
{
    proto_msg_t in = s_sample(type), out;
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK, "encode %s", proto_type_name(type));
    char err[64] = "";
    cr_assert_eq(proto_decode(data, size, &out, err, sizeof err), PROTO_OK, "decode %s: %s",
                 proto_type_name(type), err);
    cr_assert_eq(out.type, type);
    cr_assert_eq(out.v, PROTO_VERSION);
    cr_assert_eq(out.req_id, 42);
    cr_assert_eq(out.ring_epoch, 7);
    cr_assert(out.has_conv && out.has_team);
    cr_assert_eq(memcmp(out.conv_id, in.conv_id, 16), 0);
    cr_assert_eq(memcmp(out.team_id, in.team_id, 16), 0);
    /* Every prefix of a valid frame is truncated, and so an error. */
    for (size_t k = 0; k < size; k++) {
        proto_msg_t bad;
        cr_assert_neq(proto_decode(data, k, &bad, NULL, 0), PROTO_OK, "prefix %zu accepted", k);
    }
    proto_msg_reset(&out);
    free(data);
}

Test(proto, roundtrip_every_type)
{
    for (int t = 1; t < PROTO_TYPE_END; t++) {
        if (strcmp(proto_type_name((proto_type_t)t), "unknown") != 0) {
            s_roundtrip((proto_type_t)t);
        }
    }
}

Test(proto, payload_fields_survive)
{
    proto_msg_t in = s_sample(PROTO_RING), out;
    uint8_t *data;
    size_t size;
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    cr_assert_eq(proto_decode(data, size, &out, NULL, 0), PROTO_OK);
    cr_assert_eq(out.nnodes, 2);
    cr_assert_str_eq(out.nodes[1].id, "n2");
    cr_assert_str_eq(out.nodes[1].state, "draining");
    cr_assert_eq(out.nodes[1].weight, 2);
    cr_assert_eq(out.nodes[1].age_ms, 999);
    cr_assert_str_eq(out.pub, "tcp://127.0.0.1:7111");
    cr_assert_eq(out.revoked_seq, 3);
    cr_assert_null(out.op, "fields of other types are not sent");
    proto_msg_reset(&out);
    cr_assert_null(out.nodes);
    free(data);
    in = s_sample(PROTO_REVOKED);
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    cr_assert_eq(proto_decode(data, size, &out, NULL, 0), PROTO_OK);
    cr_assert_eq(out.seq, 9);
    cr_assert_str_eq(out.token_sha256, in.token_sha256);
    cr_assert_null(out.nodes);
    proto_msg_reset(&out);
    free(data);

    in = s_sample(PROTO_ADMIN);
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    cr_assert_eq(proto_decode(data, size, &out, NULL, 0), PROTO_OK);
    cr_assert_str_eq(out.action, "drain");
    cr_assert_str_eq(out.token, "bk_0123456789abcdef", "a gateway forwards its caller's token");
    proto_msg_reset(&out);
    cr_assert_null(out.token);
    free(data);
    in = s_sample(PROTO_ADMIN_REP);
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    cr_assert_eq(proto_decode(data, size, &out, NULL, 0), PROTO_OK);
    cr_assert_eq(out.status, 202);
    cr_assert_str_eq(out.state, "alive", "the node's state after the action");
    cr_assert_null(out.token);
    proto_msg_reset(&out);
    free(data);

    in = s_sample(PROTO_EVENT);
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    cr_assert_eq(proto_decode(data, size, &out, NULL, 0), PROTO_OK);
    cr_assert_eq(out.event_id, 123456789012ULL);
    cr_assert_str_eq(out.event_type, "message.created");
    cr_assert_eq(out.seq, 9);
    cr_assert_str_eq(out.body, "{\"content\":\"hi\"}");
    proto_msg_reset(&out);
    free(data);
}

Test(proto, encode_rejects_missing_required)
{
    proto_msg_t m = {0};
    uint8_t *data = NULL;
    size_t size;
    m.type = PROTO_API_REQ; /* op is required */
    cr_assert_eq(proto_encode(&m, &data, &size), PROTO_ERR_MISSING);
    m.type = (proto_type_t)99;
    cr_assert_eq(proto_encode(&m, &data, &size), PROTO_ERR_TYPE);
    cr_assert_null(data);
}

/* Builds an envelope by hand so each field can be broken on purpose. */
typedef struct {
    const char *name;
    int expect;
    void (*build)(msgpack_packer *pk);
} s_case_t;

static void s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void s_env(msgpack_packer *pk, uint32_t v, uint32_t type, int conv_len)
{
    msgpack_pack_map(pk, conv_len >= 0 ? 4 : 3);
    s_str(pk, "v");
    msgpack_pack_uint32(pk, v);
    s_str(pk, "type");
    msgpack_pack_uint32(pk, type);
    if (conv_len >= 0) {
        uint8_t id[32] = {0};
        s_str(pk, "conv_id");
        msgpack_pack_bin(pk, (size_t)conv_len);
        msgpack_pack_bin_body(pk, id, (size_t)conv_len);
    }
    s_str(pk, "payload");
}

static void b_ok(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_RING_GET, 16);
    msgpack_pack_map(pk, 0);
}
static void b_version(msgpack_packer *pk)
{
    s_env(pk, 2, PROTO_RING_GET, -1);
    msgpack_pack_map(pk, 0);
}
static void b_unknown_type(msgpack_packer *pk)
{
    s_env(pk, 1, 77, -1);
    msgpack_pack_map(pk, 0);
}
static void b_type_zero(msgpack_packer *pk)
{
    s_env(pk, 1, 0, -1);
    msgpack_pack_map(pk, 0);
}
static void b_short_conv(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_RING_GET, 15);
    msgpack_pack_map(pk, 0);
}
static void b_no_payload(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    s_str(pk, "v");
    msgpack_pack_uint32(pk, 1);
    s_str(pk, "type");
    msgpack_pack_uint32(pk, PROTO_RING_GET);
}
static void b_not_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint32(pk, 1);
}
static void b_version_str(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    s_str(pk, "v");
    s_str(pk, "1");
}
static void b_payload_array(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_RING_GET, -1);
    msgpack_pack_array(pk, 0);
}
static void b_missing_op(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_API_REQ, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "body");
    s_str(pk, "{}");
}
static void b_op_int(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_API_REQ, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "op");
    msgpack_pack_int(pk, -5);
}
static void b_op_too_long(msgpack_packer *pk)
{
    char op[200];
    memset(op, 'x', sizeof op - 1);
    op[sizeof op - 1] = 0;
    s_env(pk, 1, PROTO_API_REQ, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "op");
    s_str(pk, op);
}
static void b_op_nul(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_API_REQ, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "op");
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\0b", 3);
}
static void b_weight_big(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_REGISTER, -1);
    msgpack_pack_map(pk, 4);
    s_str(pk, "node_id");
    s_str(pk, "n1");
    s_str(pk, "router");
    s_str(pk, "r");
    s_str(pk, "pub");
    s_str(pk, "p");
    s_str(pk, "weight");
    msgpack_pack_uint32(pk, 65);
}
static void b_nodes_bad(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_RING, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "nodes");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "id");
    msgpack_pack_uint32(pk, 1);
}
static void b_negative_status(msgpack_packer *pk)
{
    s_env(pk, 1, PROTO_API_REP, -1);
    msgpack_pack_map(pk, 1);
    s_str(pk, "status");
    msgpack_pack_int(pk, -200);
}

static const s_case_t s_cases[] = {
    {"valid", PROTO_OK, b_ok},
    {"unknown version", PROTO_ERR_VERSION, b_version},
    {"unknown type", PROTO_ERR_TYPE, b_unknown_type},
    {"type zero", PROTO_ERR_TYPE, b_type_zero},
    {"conv_id of 15 bytes", PROTO_ERR_RANGE, b_short_conv},
    {"no payload", PROTO_ERR_MISSING, b_no_payload},
    {"envelope not a map", PROTO_ERR_SHAPE, b_not_map},
    {"version as string", PROTO_ERR_SHAPE, b_version_str},
    {"payload as array", PROTO_ERR_SHAPE, b_payload_array},
    {"api_req without op", PROTO_ERR_MISSING, b_missing_op},
    {"op as negative int", PROTO_ERR_SHAPE, b_op_int},
    {"op too long", PROTO_ERR_RANGE, b_op_too_long},
    {"op with NUL byte", PROTO_ERR_RANGE, b_op_nul},
    {"weight over 64", PROTO_ERR_RANGE, b_weight_big},
    {"ring node with int id", PROTO_ERR_SHAPE, b_nodes_bad},
    {"negative status", PROTO_ERR_SHAPE, b_negative_status},
};

Test(proto, malformed_table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_cases[i].build(&pk);
        proto_msg_t out;
        char err[96] = "";
        int rc = proto_decode(sb.data, sb.size, &out, err, sizeof err);
        cr_expect_eq(rc, s_cases[i].expect, "%s: got %d (%s)", s_cases[i].name, rc, err);
        if (rc == PROTO_OK) {
            proto_msg_reset(&out);
        } else {
            cr_expect_neq(err[0], 0, "%s: no error text", s_cases[i].name);
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(proto, trailing_bytes_and_empty)
{
    proto_msg_t in = s_sample(PROTO_HEARTBEAT), out;
    uint8_t *data;
    size_t size;
    cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
    uint8_t *longer = malloc(size + 1);
    memcpy(longer, data, size);
    longer[size] = 0xc0;
    cr_assert_eq(proto_decode(longer, size + 1, &out, NULL, 0), PROTO_ERR_TRUNCATED);
    cr_assert_eq(proto_decode(NULL, 0, &out, NULL, 0), PROTO_ERR_TRUNCATED);
    cr_assert_eq(proto_decode(data, 0, &out, NULL, 0), PROTO_ERR_TRUNCATED);
    free(longer);
    free(data);
}

Test(proto, huge_declared_lengths_are_refused_before_allocating)
{
    /* array32, map32, str32 and bin32 headers claiming 4 G entries/bytes. */
    static const uint8_t bombs[][5] = {{0xdd, 0xff, 0xff, 0xff, 0xff},
                                       {0xdf, 0xff, 0xff, 0xff, 0xff},
                                       {0xdb, 0xff, 0xff, 0xff, 0xff},
                                       {0xc6, 0xff, 0xff, 0xff, 0xff}};
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        proto_msg_t out;
        cr_assert_eq(proto_decode(bombs[i], 5, &out, NULL, 0), PROTO_ERR_TRUNCATED);
    }
    /* A nested bomb inside an otherwise plausible map. */
    static const uint8_t nested[] = {0x81, 0xa1, 'v', 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01};
    proto_msg_t out;
    cr_assert_eq(proto_decode(nested, sizeof nested, &out, NULL, 0), PROTO_ERR_TRUNCATED);
}

Test(proto, random_bytes_never_crash)
{
    srand(12345);
    uint8_t buf[512];
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof buf) + 1;
        for (size_t i = 0; i < n; i++) {
            buf[i] = (uint8_t)rand();
        }
        proto_msg_t out;
        if (proto_decode(buf, n, &out, NULL, 0) == PROTO_OK) {
            accepted++;
            proto_msg_reset(&out);
        }
    }
    cr_assert_eq(accepted, 0);
}

Test(proto, mutated_valid_frames_never_crash)
{
    srand(777);
    for (int t = 1; t < PROTO_TYPE_END; t++) {
        if (strcmp(proto_type_name((proto_type_t)t), "unknown") == 0) {
            continue;
        }
        proto_msg_t in = s_sample((proto_type_t)t);
        uint8_t *data;
        size_t size;
        cr_assert_eq(proto_encode(&in, &data, &size), PROTO_OK);
        for (int iter = 0; iter < 2000; iter++) {
            uint8_t *copy = malloc(size);
            memcpy(copy, data, size);
            for (int k = 0; k < 3; k++) {
                copy[(size_t)rand() % size] = (uint8_t)rand();
            }
            proto_msg_t out;
            if (proto_decode(copy, size, &out, NULL, 0) == PROTO_OK) {
                proto_msg_reset(&out);
            }
            free(copy);
        }
        free(data);
    }
}

Test(proto, topic_and_names)
{
    uint8_t team[16], conv[16], topic[PROTO_TOPIC_LEN];
    memset(team, 1, 16);
    memset(conv, 2, 16);
    proto_topic(team, conv, topic);
    cr_assert_eq(topic[0], 1);
    cr_assert_eq(topic[31], 2);
    cr_assert_str_eq(proto_type_name(PROTO_API_REQ), "api_req");
    cr_assert_str_eq(proto_type_name((proto_type_t)999), "unknown");
    proto_msg_reset(NULL);
}
