/*  test_gw_json — table-driven tests of request body parsing and field
    validation (gw_json): malformed JSON, wrong types, empty and huge
    content, bad UUIDs, unknown fields, and the query value parsers. */
#include "gateway/gateway_internal.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gw_json, .timeout = 10);

typedef struct {
    const char *body;  /* request body */
    gw_shape_t shape;  /* route shape */
    const char *code;  /* expected error code, NULL when valid */
    const char *field; /* expected field ("" for invalid_json) */
} s_case_t;

static const s_case_t s_cases[] = {
    /* malformed JSON */
    {"{", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"{\"content\": }", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"[1,2]", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"\"text\"", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"a\",\"content\":\"b\"}", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"\xff\xfe\"}", GW_SHAPE_MSG_POST, "invalid_json", ""},
    {"{\"content\":\"a\"} trailing", GW_SHAPE_MSG_POST, "invalid_json", ""},
    /* content */
    {"{}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\"\"}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\" \\n\\t \"}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":null}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":42}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":[\"a\"]}", GW_SHAPE_MSG_POST, "invalid_field", "content"},
    {"{\"content\":\"hi\",\"metadata\":[]}", GW_SHAPE_MSG_POST, "invalid_field", "metadata"},
    {"{\"content\":\"hi\",\"metadata\":{\"a\":{\"b\":1}}}", GW_SHAPE_MSG_POST, NULL, NULL},
    {"{\"content\":\"hi\",\"extra\":1}", GW_SHAPE_MSG_POST, "invalid_field", "extra"},
    /* conversation create */
    {"", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"  \n ", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"source\":\"\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "source"},
    {"{\"source\":1}", GW_SHAPE_CONV_CREATE, "invalid_field", "source"},
    {"{\"type\":\"   \"}", GW_SHAPE_CONV_CREATE, "invalid_field", "type"},
    {"{\"title\":null}", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"title\":\"\"}", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"title\":7}", GW_SHAPE_CONV_CREATE, "invalid_field", "title"},
    {"{\"worktree_id\":null}", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"worktree_id\":\"123\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "worktree_id"},
    {"{\"worktree_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5g\"}", GW_SHAPE_CONV_CREATE,
     "invalid_field", "worktree_id"},
    {"{\"worktree_id\":\"3b0e8e2a8a3c-4c56-9a7e-9c1c2b3d4e5f0\"}", GW_SHAPE_CONV_CREATE,
     "invalid_field", "worktree_id"},
    {"{\"on_busy\":\"enqueue\"}", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"on_busy\":\"interrupt\"}", GW_SHAPE_CONV_CREATE, NULL, NULL},
    {"{\"on_busy\":\"wait\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "on_busy"},
    {"{\"on_busy\":null}", GW_SHAPE_CONV_CREATE, "invalid_field", "on_busy"},
    {"{\"strategy\":\"\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "strategy"},
    {"{\"metadata\":\"x\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "metadata"},
    {"{\"status\":\"idle\"}", GW_SHAPE_CONV_CREATE, "invalid_field", "status"},
    /* patch: source and type are fixed at creation */
    {"{\"source\":\"web\"}", GW_SHAPE_CONV_PATCH, "invalid_field", "source"},
    {"{\"title\":\"t\",\"metadata\":{}}", GW_SHAPE_CONV_PATCH, NULL, NULL},
    {"{}", GW_SHAPE_CONV_PATCH, NULL, NULL},
    /* /api/message */
    {"{\"content\":\"x\",\"conversation_id\":\"nope\"}", GW_SHAPE_MESSAGE, "invalid_field",
     "conversation_id"},
    {"{\"content\":\"x\",\"conversation_id\":null}", GW_SHAPE_MESSAGE, "invalid_field",
     "conversation_id"},
    {"{\"content\":\"x\",\"conversation_id\":\"3B0E8E2A-8A3C-4C56-9A7E-9C1C2B3D4E5F\"}",
     GW_SHAPE_MESSAGE, NULL, NULL},
    {"{\"conversation_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\"}", GW_SHAPE_MESSAGE,
     "invalid_field", "content"},
    /* cancel takes no fields */
    {"{}", GW_SHAPE_EMPTY, NULL, NULL},
    {"{\"why\":1}", GW_SHAPE_EMPTY, "invalid_field", "why"},
};

Test(gw_json, validation_table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        gw_error_t err;
        memset(&err, 0, sizeof err);
        json_t *obj = gw_json_parse(c->body, strlen(c->body), &err);
        json_t *args = obj ? gw_json_validate(obj, c->shape, &err) : NULL;
        if (!c->code) {
            cr_expect_not_null(args, "case %zu (%s): %s", i, c->body, err.message);
        } else {
            cr_expect_null(args, "case %zu (%s) accepted", i, c->body);
            cr_expect_eq(err.status, 400, "case %zu", i);
            cr_expect_str_eq(err.code ? err.code : "", c->code, "case %zu (%s)", i, c->body);
            cr_expect_str_eq(err.field, c->field, "case %zu (%s)", i, c->body);
        }
        json_decref(args);
        json_decref(obj);
    }
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
                       "9C1C2B3D4E5F\",\"metadata\":{\"k\":[1,2]}}";
    json_t *obj = gw_json_parse(body, strlen(body), &err);
    json_t *args = gw_json_validate(obj, GW_SHAPE_MESSAGE, &err);
    json_decref(obj);
    cr_assert_not_null(args);
    cr_assert_str_eq(json_string_value(json_object_get(args, "conversation_id")),
                     "3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(args, "metadata"), "k")), 2);
    json_decref(args);
}

Test(gw_json, huge_content_and_length_limits)
{
    size_t n = 2 * 1024 * 1024;
    char *body = malloc(n + 32);
    strcpy(body, "{\"content\":\"");
    memset(body + 12, 'a', n);
    strcpy(body + 12 + n, "\"}");
    gw_error_t err;
    json_t *obj = gw_json_parse(body, strlen(body), &err);
    json_t *args = gw_json_validate(obj, GW_SHAPE_MSG_POST, &err);
    cr_assert_not_null(args, "content size is bounded by --max-body, not here");
    json_decref(args);
    json_decref(obj);
    /* Titles count characters, not bytes: 1000 two-byte characters pass. */
    char *title = malloc(4100);
    strcpy(title, "{\"title\":\"");
    size_t k = strlen(title);
    for (int i = 0; i < 1000; i++) {
        title[k++] = (char)0xc3;
        title[k++] = (char)0xa9;
    }
    strcpy(title + k, "\"}");
    obj = gw_json_parse(title, strlen(title), &err);
    args = gw_json_validate(obj, GW_SHAPE_CONV_CREATE, &err);
    cr_assert_not_null(args, "%s", err.message);
    json_decref(args);
    json_decref(obj);
    strcpy(title + k, "x\"}");
    obj = gw_json_parse(title, strlen(title), &err);
    cr_assert_null(gw_json_validate(obj, GW_SHAPE_CONV_CREATE, &err));
    cr_assert_str_eq(err.field, "title");
    json_decref(obj);
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
    cr_assert_eq(gw_utf8_len("h\xc3\xa9llo"), 5);
}
