/*  test_gw_json — table-driven tests of request body parsing and of the
    check of bodies against the op table (gw_json_args, gw_json_message_args):
    malformed JSON, wrong types, empty and huge content, bad UUIDs, unknown
    fields, lengths in characters, messages saying what is allowed, and the
    query value parsers. */
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gw_json, .timeout = 10);

#define S_MESSAGE PROTO_OP_COUNT /* POST /api/message (msg.post with "create") */

typedef struct {
    const char *body;  /* request body */
    int route;         /* the route's op (proto_op_id_t), or S_MESSAGE */
    const char *code;  /* expected error code, NULL when valid */
    const char *field; /* expected field ("" for invalid_json) */
} s_case_t;

static const s_case_t s_cases[] = {
    /* malformed JSON */
    {"{", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"{\"content\": }", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"[1,2]", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"\"text\"", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"a\",\"content\":\"b\"}", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"\xff\xfe\"}", PROTO_OP_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"a\"} trailing", PROTO_OP_MSG_POST, "invalid_json", ""},
    /* content */
    {"{}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\"\"}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\" \\n\\t \"}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":null}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":42}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":[\"a\"]}", PROTO_OP_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\"hi\",\"metadata\":[]}", PROTO_OP_MSG_POST, "invalid_field", "metadata"},
    {"{\"content\":\"hi\",\"metadata\":{\"a\":{\"b\":1}}}", PROTO_OP_MSG_POST, NULL, NULL},
    {"{\"content\":\"hi\",\"extra\":1}", PROTO_OP_MSG_POST, "invalid_field", "extra"},
    /* conversation create */
    {"", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"  \n ", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"source\":\"\"}", PROTO_OP_CONV_CREATE, "invalid_field", "source"},
    {"{\"source\":1}", PROTO_OP_CONV_CREATE, "invalid_field", "source"},
    {"{\"type\":\"   \"}", PROTO_OP_CONV_CREATE, "invalid_field", "type"},
    {"{\"title\":null}", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"title\":\"\"}", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"title\":7}", PROTO_OP_CONV_CREATE, "invalid_field", "title"},
    {"{\"worktree_id\":null}", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"worktree_id\":\"123\"}", PROTO_OP_CONV_CREATE, "invalid_field", "worktree_id"},
    {"{\"worktree_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5g\"}", PROTO_OP_CONV_CREATE,
     "invalid_field", "worktree_id"},
    {"{\"worktree_id\":\"3b0e8e2a8a3c-4c56-9a7e-9c1c2b3d4e5f0\"}", PROTO_OP_CONV_CREATE,
     "invalid_field", "worktree_id"},
    {"{\"on_busy\":\"enqueue\"}", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"on_busy\":\"interrupt\"}", PROTO_OP_CONV_CREATE, NULL, NULL},
    {"{\"on_busy\":\"wait\"}", PROTO_OP_CONV_CREATE, "invalid_field", "on_busy"},
    {"{\"on_busy\":null}", PROTO_OP_CONV_CREATE, "invalid_field", "on_busy"},
    {"{\"strategy\":\"\"}", PROTO_OP_CONV_CREATE, "invalid_field", "strategy"},
    {"{\"metadata\":\"x\"}", PROTO_OP_CONV_CREATE, "invalid_field", "metadata"},
    {"{\"status\":\"idle\"}", PROTO_OP_CONV_CREATE, "invalid_field", "status"},
    /* patch: source and type are fixed at creation */
    {"{\"source\":\"web\"}", PROTO_OP_CONV_PATCH, "invalid_field", "source"},
    {"{\"title\":\"t\",\"metadata\":{}}", PROTO_OP_CONV_PATCH, NULL, NULL},
    {"{}", PROTO_OP_CONV_PATCH, NULL, NULL},
    /* /api/message */
    {"{\"content\":\"x\",\"conversation_id\":\"nope\"}", S_MESSAGE, "invalid_field",
     "conversation_id"},
    {"{\"content\":\"x\",\"conversation_id\":null}", S_MESSAGE, "invalid_field", "conversation_id"},
    {"{\"content\":\"x\",\"conversation_id\":\"3B0E8E2A-8A3C-4C56-9A7E-9C1C2B3D4E5F\"}", S_MESSAGE,
     NULL, NULL},
    {"{\"conversation_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\"}", S_MESSAGE, "invalid_field",
     "content"},
    /* cancel takes no fields */
    {"{}", PROTO_OP_CONV_CANCEL, NULL, NULL},
    {"{\"why\":1}", PROTO_OP_CONV_CANCEL, "invalid_field", "why"},
};

/* The body checked as route would check it: the args, or NULL with err. */
static json_t *s_args(const char *body, size_t len, int route, gw_error_t *err)
{
    json_t *obj = gw_json_parse(body, len, err);
    uint8_t conv[16];
    bool has_conv;
    if (!obj) {
        return NULL;
    }
    if (route == S_MESSAGE) {
        return gw_json_message_args(obj, conv, &has_conv, err);
    }
    return gw_json_args(obj, (proto_op_id_t)route, NULL, err);
}

Test(gw_json, validation_table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        gw_error_t err;
        memset(&err, 0, sizeof err);
        json_t *args = s_args(c->body, strlen(c->body), c->route, &err);
        if (!c->code) {
            cr_expect_not_null(args, "case %zu (%s): %s", i, c->body, err.message);
        } else {
            cr_expect_null(args, "case %zu (%s) accepted", i, c->body);
            cr_expect_eq(err.status, 400, "case %zu", i);
            cr_expect_str_eq(err.code ? err.code : "", c->code, "case %zu (%s)", i, c->body);
            cr_expect_str_eq(err.field, c->field, "case %zu (%s)", i, c->body);
        }
        json_decref(args);
    }
}

Test(gw_json, invalid_utf8_is_named)
{
    const char *bodies[] = {"{\"content\":\"bad \xff\xfe\"}", "{\"content\":\"\xc0\xaf\"}",
                            "{\"content\":\"\xed\xa0\x80\"}", "{\"content\":\"\xf4\x90\x80\x80\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        gw_error_t err;
        cr_assert_null(gw_json_parse(bodies[i], strlen(bodies[i]), &err), "case %zu", i);
        cr_assert_str_eq(err.code, "invalid_json");
        cr_assert(strstr(err.message, "not valid UTF-8"), "case %zu: %s", i, err.message);
        char *text = gw_error_body(&err);
        cr_assert_not_null(text, "case %zu: the error itself must be valid JSON", i);
        free(text);
    }
}

/* Found by tests/fuzz/fuzz_gw_json: jansson's message quotes the input near
   the error and may cut it inside a UTF-8 character ("\\\xce" here); the
   400 then had no body but "{}". Now the broken bytes become '?'. */
Test(gw_json, error_quoting_a_cut_character_has_a_body)
{
    gw_error_t err;
    const char *body = "{\"title\\\xce\xb5 x\": 1}";
    cr_assert_null(gw_json_parse(body, strlen(body), &err));
    char *text = gw_error_body(&err);
    cr_assert_not_null(text, "%s", err.message);
    json_t *o = json_loads(text, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o, "code")), "invalid_json");
    cr_assert_not_null(strstr(json_string_value(json_object_get(o, "error")), "invalid escape"));
    json_decref(o);
    free(text);
    gw_error_set(&err, 400, "invalid_field", "caf\xc3", "field caf\xc3 is cut");
    text = gw_error_body(&err);
    cr_assert_str_eq(text, "{\"error\":\"field caf? is cut\",\"code\":\"invalid_field\","
                           "\"field\":\"caf?\"}");
    free(text);
}

Test(gw_json, invalid_json_reports_position)
{
    gw_error_t err;
    const char *body = "{\n  \"content\": tru\n}";
    cr_assert_null(gw_json_parse(body, strlen(body), &err));
    cr_assert_eq(err.line, 2);
    cr_assert_gt(err.column, 0);
    char *text = gw_error_body(&err);
    json_t *o = json_loads(text, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o, "code")), "invalid_json");
    cr_assert_eq(json_integer_value(json_object_get(o, "line")), 2);
    cr_assert(strstr(json_string_value(json_object_get(o, "error")), "line 2"));
    json_decref(o);
    free(text);
}

Test(gw_json, uuid_is_lowercased_and_fields_copied)
{
    gw_error_t err;
    const char *body = "{\"content\":\"x\",\"conversation_id\":\"3B0E8E2A-8A3C-4C56-9A7E-"
                       "9C1C2B3D4E5F\",\"metadata\":{\"k\":[1,2]},\"source\":\"cli\","
                       "\"worktree_id\":\"3B0E8E2A-8A3C-4C56-9A7E-9C1C2B3D4E5F\"}";
    uint8_t conv[16], want[16];
    bool has_conv = false;
    json_t *args =
        gw_json_message_args(gw_json_parse(body, strlen(body), &err), conv, &has_conv, &err);
    cr_assert_not_null(args, "%s", err.message);
    cr_assert(has_conv);
    util_uuid_parse("3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f", want);
    cr_assert_eq(memcmp(conv, want, 16), 0);
    cr_assert_null(json_object_get(args, "conversation_id"), "it travels in the envelope");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(args, "metadata"), "k")), 2);
    /* The conversation's fields go under "create" (UUIDs lowercased); metadata stays. */
    json_t *create = json_object_get(args, "create");
    cr_assert_str_eq(json_string_value(json_object_get(create, "source")), "cli");
    cr_assert_str_eq(json_string_value(json_object_get(create, "worktree_id")),
                     "3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f");
    cr_assert_null(json_object_get(create, "metadata"));
    cr_assert_null(json_object_get(args, "source"));
    json_decref(args);
}

Test(gw_json, huge_content_and_length_limits)
{
    /* Content: up to 1 Mi characters (the node's bound; --max-body usually binds first). */
    size_t n = 512 * 1024;
    char *body = malloc(2 * n + 32);
    strcpy(body, "{\"content\":\"");
    for (size_t i = 0; i < n; i++) {
        body[12 + 2 * i] = (char)0xc3;
        body[12 + 2 * i + 1] = (char)0xa9;
    }
    strcpy(body + 12 + 2 * n, "\"}");
    gw_error_t err;
    json_t *args = s_args(body, strlen(body), PROTO_OP_MSG_POST, &err);
    cr_assert_not_null(args, "512 Ki characters in 1 MiB: %s", err.message);
    json_decref(args);
    n = 1024 * 1024 + 1;
    body = realloc(body, n + 32);
    memset(body + 12, 'a', n);
    strcpy(body + 12 + n, "\"}");
    cr_assert_null(s_args(body, strlen(body), PROTO_OP_MSG_POST, &err));
    cr_assert_str_eq(err.message, "content is longer than 1048576 characters");
    /* Titles count characters, not bytes: 1000 two-byte characters pass. */
    char *title = malloc(4100);
    strcpy(title, "{\"title\":\"");
    size_t k = strlen(title);
    for (int i = 0; i < 1000; i++) {
        title[k++] = (char)0xc3;
        title[k++] = (char)0xa9;
    }
    strcpy(title + k, "\"}");
    args = s_args(title, strlen(title), PROTO_OP_CONV_CREATE, &err);
    cr_assert_not_null(args, "%s", err.message);
    json_decref(args);
    strcpy(title + k, "x\"}");
    cr_assert_null(s_args(title, strlen(title), PROTO_OP_CONV_CREATE, &err));
    cr_assert_str_eq(err.field, "title");
    cr_assert_str_eq(err.message, "title is longer than 1000 characters");
    free(title);
    free(body);
}

Test(gw_json, query_values)
{
    gw_error_t err;
    long limit;
    cr_assert_eq(gw_parse_limit(NULL, &limit, &err), 0);
    cr_assert_eq(limit, GW_LIST_LIMIT_DEF);
    cr_assert_eq(gw_parse_limit("500", &limit, &err), 0);
    cr_assert_eq(limit, 500);
    const char *bad[] = {"0", "501", "-1", "abc", "", "10x", "1e3", " 5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(gw_parse_limit(bad[i], &limit, &err), -1, "limit '%s'", bad[i]);
        cr_expect_str_eq(err.field, "limit");
    }
    long long v;
    cr_assert_eq(gw_parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
    cr_assert_eq(gw_parse_int("9223372036854775808", 0, INT64_MAX, &v), -1);
    cr_assert_eq(gw_parse_int("-5", 0, 10, &v), -1);
    cr_assert_eq(gw_parse_cursor("eyJjIjoiMjAyNiJ9", &err), 0);
    cr_assert_eq(gw_parse_cursor("", &err), -1);
    cr_assert_eq(gw_parse_cursor("has space", &err), -1);
    cr_assert_str_eq(err.field, "cursor");
    uint8_t id[16];
    cr_assert_eq(gw_parse_uuid("3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f", "id", id, &err), 0);
    cr_assert_eq(gw_parse_uuid("3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5", "id", id, &err), -1);
    cr_assert_eq(gw_parse_uuid(NULL, "conversation_id", id, &err), -1);
    cr_assert_str_eq(err.field, "conversation_id");
}

Test(gw_json, error_body_shape)
{
    gw_error_t err;
    cr_assert_eq(
        gw_error_set(&err, 400, "invalid_field", "content", "content must be %s", "a string"), -1);
    char *text = gw_error_body(&err);
    cr_assert_str_eq(text, "{\"error\":\"content must be a string\",\"code\":\"invalid_field\","
                           "\"field\":\"content\"}");
    free(text);
    gw_error_set(&err, 503, "unavailable", NULL, "down");
    text = gw_error_body(&err);
    cr_assert_str_eq(text, "{\"error\":\"down\",\"code\":\"unavailable\"}");
    free(text);
}

Test(gw_json, gateway_bounds_are_the_op_table_s)
{
    /* The header rule and the wire argument agree on the Idempotency-Key's length. */
    const proto_field_t *key =
        proto_field_find(proto_ops[PROTO_OP_MSG_POST].fields, "idempotency_key");
    cr_assert_eq(key->max, GW_IDEMPOTENCY_MAX);
    cr_assert_eq(GW_LIST_LIMIT_MAX,
                 proto_field_find(proto_ops[PROTO_OP_CONV_LIST].fields, "limit")->max);
}
