/*  test_node_args — the node's side of the shared op table (proto/proto_ops.c,
    common/op_args.c): every op of the table has a handler whose kind fits its
    scope, the node's enum names are the table's, and, over the wire of a real
    node: lengths count characters (UTF-8 code points), not bytes; bytes that
    are not UTF-8 never reach an op; enum refusals list the allowed values; an
    unknown op or argument is refused with a message naming it. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/node_test.h"

Test(node_args, every_op_of_the_table_has_a_fitting_handler)
{
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        const node_op_t *op = node_op_find(proto_ops[i].name);
        cr_assert_not_null(op, "%s has no handler", proto_ops[i].name);
        cr_assert_eq(op->spec, &proto_ops[i]);
        bool bound = proto_ops[i].scope == PROTO_SCOPE_CONV;
        cr_assert_eq(op->kind != NODE_OP_TEAM, bound, "%s: kind vs scope", proto_ops[i].name);
        cr_assert_eq(op->kind == NODE_OP_ACTOR, op->run != NULL, "%s", proto_ops[i].name);
        cr_assert_eq(op->kind != NODE_OP_ACTOR, op->read != NULL, "%s", proto_ops[i].name);
    }
    cr_assert_null(node_op_find("conv.explode"));
    /* The names the node stores and parses are the table's enum values. */
    const proto_field_t *status = proto_field_find(proto_ops[PROTO_OP_CONV_LIST].fields, "status");
    const proto_field_t *on_busy =
        proto_field_find(proto_ops[PROTO_OP_CONV_CREATE].fields, "on_busy");
    for (int i = 0; status->values[i]; i++) {
        cr_assert_eq(node_status_parse(status->values[i]), i, "%s", status->values[i]);
        cr_assert_str_eq(node_status_name(i), status->values[i]);
    }
    for (int i = 0; on_busy->values[i]; i++) {
        cr_assert_eq(node_on_busy_parse(on_busy->values[i]), i, "%s", on_busy->values[i]);
        cr_assert_str_eq(node_on_busy_name(i), on_busy->values[i]);
    }
}

/* A JSON body {"<key>":"<n times s>"<rest>}; caller frees. */
static char *s_repeat_body(const char *key, const char *s, int n, const char *rest)
{
    size_t len = strlen(key) + strlen(s) * (size_t)n + strlen(rest) + 16;
    char *body = malloc(len);
    cr_assert_not_null(body);
    int k = snprintf(body, len, "{\"%s\":\"", key);
    for (int i = 0; i < n; i++) {
        k += snprintf(body + k, len - (size_t)k, "%s", s);
    }
    snprintf(body + k, len - (size_t)k, "\"%s}", rest);
    return body;
}

/* conv.create of a new conversation with body; returns the reply (caller frees). */
static nt_rep_t s_create(nt_t *t, const char *body)
{
    uint8_t conv[16];
    util_uuid_generate(conv);
    return nt_call(t, "conv.create", conv, body);
}

static void s_expect_refused(nt_rep_t *r, const char *field, const char *message)
{
    cr_assert_eq(r->status, 400, "status %d", r->status);
    cr_assert_str_eq(nt_str(r->body, "code", NULL), "invalid_field");
    cr_assert_str_eq(nt_str(r->body, "field", NULL), field);
    cr_assert_str_eq(nt_str(r->body, "error", NULL), message);
    nt_rep_free(r);
}

Test(node_args, title_counts_characters_not_bytes, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    /* 1000 "é" are 2000 bytes: the limit is 1000 characters (docs/api.md). */
    char *body = s_repeat_body("title", "\xc3\xa9", 1000, "");
    nt_rep_t r = s_create(&t, body);
    cr_assert_eq(r.status, 201, "1000 characters: %d", r.status);
    cr_assert_eq(strlen(nt_str(r.body, "title", NULL)), 2000);
    nt_rep_free(&r);
    free(body);
    body = s_repeat_body("title", "\xc3\xa9", 501, "");
    r = s_create(&t, body);
    cr_assert_eq(r.status, 201, "501 characters (1002 bytes): %d", r.status);
    nt_rep_free(&r);
    free(body);
    body = s_repeat_body("title", "\xc3\xa9", 1001, "");
    r = s_create(&t, body);
    s_expect_refused(&r, "title", "title is longer than 1000 characters");
    free(body);
    /* Four-byte characters count once too. */
    body = s_repeat_body("title", "\xf0\x9f\x8e\x89", 1000, "");
    r = s_create(&t, body);
    cr_assert_eq(r.status, 201, "1000 emoji: %d", r.status);
    nt_rep_free(&r);
    free(body);
    nt_stop(&t);
}

Test(node_args, source_type_and_nested_create_count_characters, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    char *body = s_repeat_body("source", "\xc3\xa9", 40, ",\"type\":\"chat\"");
    nt_rep_t r = s_create(&t, body);
    cr_assert_eq(r.status, 201, "source of 40 characters (80 bytes): %d", r.status);
    nt_rep_free(&r);
    free(body);
    body = s_repeat_body("source", "\xc3\xa9", 65, "");
    r = s_create(&t, body);
    s_expect_refused(&r, "source", "source is longer than 64 characters");
    free(body);
    /* msg.post's "create" object is checked with the same rows. */
    uint8_t conv[16];
    util_uuid_generate(conv);
    char *create = s_repeat_body("type", "\xc3\xa9", 64, "");
    char post[512];
    snprintf(post, sizeof post, "{\"content\":\"hi\",\"create\":%s}", create);
    r = nt_call(&t, "msg.post", conv, post);
    cr_assert_eq(r.status, 202, "create.type of 64 characters: %d", r.status);
    nt_rep_free(&r);
    free(create);
    nt_stop(&t);
}

Test(node_args, perm_reason_counts_characters, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    /* 600 "é" (1200 bytes) is a valid reason: the request is then simply unknown. */
    char *body = s_repeat_body("reason", "\xc3\xa9", 600,
                               ",\"id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\","
                               "\"decision\":\"deny\"");
    nt_rep_t r = nt_call(&t, "perm.decide", conv, body);
    cr_assert_eq(r.status, 404, "reason of 600 characters: %d", r.status);
    nt_rep_free(&r);
    free(body);
    nt_stop(&t);
}

Test(node_args, invalid_utf8_never_reaches_an_op, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    /* Raw bytes that are not UTF-8, an overlong '/', an encoded surrogate, an
       escaped lone surrogate, an escaped NUL: the body is refused as JSON
       before any op sees it (op_args refuses them again in strings made by
       code: tests/common/test_op_args.c). */
    const char *bodies[] = {"{\"title\":\"bad \xff\xfe\"}", "{\"title\":\"\xc0\xaf\"}",
                            "{\"title\":\"\xed\xa0\x80\"}", "{\"title\":\"\\ud800\"}",
                            "{\"title\":\"nul \\u0000 inside\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        nt_rep_t r = s_create(&t, bodies[i]);
        cr_assert_eq(r.status, 400, "case %zu: %d", i, r.status);
        cr_assert_str_eq(nt_str(r.body, "code", NULL), "invalid_json", "case %zu", i);
        if (i < 3) {
            cr_assert(strstr(nt_str(r.body, "error", NULL), "not valid UTF-8"), "case %zu: %s", i,
                      nt_str(r.body, "error", NULL));
        }
        nt_rep_free(&r);
    }
    nt_stop(&t);
}

Test(node_args, enum_refusals_list_the_allowed_values, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    nt_rep_t r = s_create(&t, "{\"on_busy\":\"sometimes\"}");
    s_expect_refused(&r, "on_busy", "on_busy must be one of: enqueue, reject, interrupt");
    /* The strategies are this node's configured ones (the built-in echo here). */
    r = s_create(&t, "{\"strategy\":\"gpt-9\"}");
    s_expect_refused(&r, "strategy", "strategy must be one of: echo");
    r = nt_call(&t, "conv.list", NULL, "{\"status\":\"weird\"}");
    s_expect_refused(&r, "status",
                     "status must be one of: idle, queued, processing, waiting_for_permission, "
                     "error, archived");
    r = nt_call(&t, "conv.list", NULL, "{\"limit\":501}");
    s_expect_refused(&r, "limit", "limit must be an integer from 1 to 500");
    nt_stop(&t);
}

Test(node_args, unknown_op_and_unknown_argument_are_named, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    nt_rep_t r = nt_call(&t, "conv.explode", NULL, "{}");
    s_expect_refused(&r, "op", "unknown op 'conv.explode'");
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    r = nt_call(&t, "conv.patch", conv, "{\"titel\":\"typo\"}");
    s_expect_refused(&r, "titel", "unknown field 'titel'");
    r = nt_call(&t, "msg.post", conv, "{\"content\":\"hi\",\"create\":{\"fresh\":true}}");
    s_expect_refused(&r, "fresh", "unknown field 'fresh'");
    r = nt_call(&t, "conv.patch", conv, "{\"metadata\":[1]}");
    s_expect_refused(&r, "metadata", "metadata must be a JSON object");
    nt_stop(&t);
}
