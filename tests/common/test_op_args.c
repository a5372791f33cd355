/*  test_op_args — the checker of the op table's rows (common/op_args.c),
    table driven over real ops: every type, null, lengths in characters,
    invalid UTF-8 and NUL in strings made by code (a parser never yields
    them), enums listing their values, UUIDs lowercased, nested objects,
    required fields, conditions, client mode, and errors cut on a character
    boundary. */
#include "common/op_args.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(op_args, .timeout = 10);

typedef struct {
    proto_op_id_t op;    /* the op whose row applies */
    unsigned flags;      /* OP_ARGS_* */
    const char *args;    /* JSON */
    const char *field;   /* refused field, NULL when accepted */
    const char *message; /* its message */
} s_case_t;

static const s_case_t s_cases[] = {
    {PROTO_OP_CONV_CREATE, 0, "{}", NULL, NULL},
    {PROTO_OP_CONV_CREATE, 0, "{\"title\":null,\"worktree_id\":null}", NULL, NULL},
    {PROTO_OP_CONV_CREATE, 0, "{\"title\":\"\"}", NULL, NULL},
    {PROTO_OP_CONV_CREATE, 0, "{\"title\":7}", "title", "title must be a string or null"},
    {PROTO_OP_CONV_CREATE, 0, "{\"source\":\"\"}", "source", "source must not be empty"},
    {PROTO_OP_CONV_CREATE, 0, "{\"source\":\" \\t\"}", "source", "source must not be blank"},
    {PROTO_OP_CONV_CREATE, 0, "{\"source\":null}", "source", "source must be a string"},
    {PROTO_OP_CONV_CREATE, 0, "{\"on_busy\":\"later\"}", "on_busy",
     "on_busy must be one of: enqueue, reject, interrupt"},
    {PROTO_OP_CONV_CREATE, 0, "{\"on_busy\":null}", "on_busy",
     "on_busy must be one of: enqueue, reject, interrupt"},
    {PROTO_OP_CONV_CREATE, 0, "{\"metadata\":[]}", "metadata", "metadata must be a JSON object"},
    {PROTO_OP_CONV_CREATE, 0, "{\"worktree_id\":\"nope\"}", "worktree_id",
     "worktree_id must be a UUID or null"},
    {PROTO_OP_CONV_CREATE, 0, "{\"fresh\":1}", "fresh", "fresh must be true or false"},
    {PROTO_OP_CONV_CREATE, 0, "{\"fresh\":true}", NULL, NULL},
    {PROTO_OP_CONV_CREATE, OP_ARGS_CLIENT, "{\"fresh\":true}", "fresh", "unknown field 'fresh'"},
    {PROTO_OP_CONV_CREATE, 0, "{\"status\":\"idle\"}", "status", "unknown field 'status'"},
    {PROTO_OP_CONV_PATCH, 0, "{\"source\":\"web\"}", "source", "unknown field 'source'"},
    {PROTO_OP_CONV_PATCH, 0, "{\"idempotency_key\":\"\"}", "idempotency_key",
     "idempotency_key must not be empty"},
    {PROTO_OP_MSG_POST, 0, "{}", "content", "content is required"},
    {PROTO_OP_MSG_POST, 0, "{\"content\":null}", "content", "content must be a string"},
    {PROTO_OP_MSG_POST, 0, "{\"content\":\" \\n \"}", "content", "content must not be blank"},
    {PROTO_OP_MSG_POST, 0, "{\"content\":\"x\",\"create\":{\"type\":5}}", "type",
     "type must be a string"},
    {PROTO_OP_MSG_POST, 0, "{\"content\":\"x\",\"create\":{\"fresh\":true}}", "fresh",
     "unknown field 'fresh'"},
    {PROTO_OP_MSG_POST, OP_ARGS_CLIENT, "{\"content\":\"x\",\"create\":{}}", "create",
     "unknown field 'create'"},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":0}", "limit", "limit must be an integer from 1 to 500"},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":\"20\"}", NULL, NULL},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":\"2x\"}", "limit",
     "limit must be an integer from 1 to 500"},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":1.5}", "limit", "limit must be an integer from 1 to 500"},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":\"+5\"}", "limit",
     "limit must be an integer from 1 to 500"},
    {PROTO_OP_CONV_LIST, 0, "{\"limit\":\" 5\"}", "limit",
     "limit must be an integer from 1 to 500"},
    {PROTO_OP_MSG_LIST, 0, "{\"after_seq\":\"99999999999999999999\"}", "after_seq",
     "after_seq must be a non-negative integer"},
    {PROTO_OP_CONV_LIST, 0, "{\"status\":\"weird\"}", "status",
     "status must be one of: idle, queued, processing, waiting_for_permission, error, archived"},
    {PROTO_OP_MSG_LIST, 0, "{\"after_seq\":-1}", "after_seq",
     "after_seq must be a non-negative integer"},
    {PROTO_OP_AUTH, 0, "{\"token_sha256\":\"abc\"}", "token_sha256",
     "token_sha256 must be exactly 64 characters"},
    {PROTO_OP_PERM_DECIDE, 0,
     "{\"id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\",\"decision\":\"approve\",\"reason\":\"x\"}",
     "reason", "reason is accepted only when decision is deny"},
    {PROTO_OP_PERM_DECIDE, 0,
     "{\"id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\",\"decision\":\"deny\",\"reason\":null}",
     NULL, NULL},
    {PROTO_OP_PERM_DECIDE, 0, "{\"id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\"}", "decision",
     "decision is required"},
    /* A client body of approve: decision is the gateway's, so its condition waits. */
    {PROTO_OP_PERM_DECIDE, OP_ARGS_CLIENT, "{\"reason\":\"x\"}", NULL, NULL},
    {PROTO_OP_PERM_DECIDE, OP_ARGS_CLIENT, "{\"remember\":\"forever\"}", "remember",
     "remember must be one of: conversation, team"},
    {PROTO_OP_RULE_CREATE, 0,
     "{\"scope\":\"conversation\",\"tool_pattern\":\"*\",\"decision\":"
     "\"allow\"}",
     "conversation_id", "conversation_id is required when scope is conversation"},
    {PROTO_OP_RULE_CREATE, 0,
     "{\"scope\":\"team\",\"conversation_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\","
     "\"tool_pattern\":\"*\",\"decision\":\"allow\"}",
     "conversation_id", "conversation_id is accepted only when scope is conversation"},
    {PROTO_OP_RULE_CREATE, 0,
     "{\"scope\":\"team\",\"conversation_id\":null,\"tool_pattern\":\"*\",\"decision\":"
     "\"deny\"}",
     NULL, NULL},
    {PROTO_OP_RULE_CREATE, 0, "{\"scope\":null,\"tool_pattern\":\"*\",\"decision\":\"deny\"}",
     "scope", "scope is required"},
    {PROTO_OP_WT_DELETE, 0, "{\"id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\",\"force\":\"yes\"}",
     "force", "force must be true or false"},
    {PROTO_OP_STATUS, 0, "{\"x\":1}", "x", "unknown field 'x'"},
};

Test(op_args, table_of_cases)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        json_t *args = json_loads(c->args, 0, NULL);
        cr_assert_not_null(args, "case %zu: bad JSON", i);
        op_args_err_t err;
        memset(&err, 0, sizeof err);
        int rc = op_args_check(&proto_ops[c->op], args, c->flags, &err);
        if (!c->field) {
            cr_expect_eq(rc, 0, "case %zu (%s): %s", i, c->args, err.message);
        } else {
            cr_expect_eq(rc, -1, "case %zu (%s) accepted", i, c->args);
            cr_expect_str_eq(err.field, c->field, "case %zu (%s)", i, c->args);
            cr_expect_str_eq(err.message, c->message, "case %zu (%s)", i, c->args);
        }
        json_decref(args);
    }
}

/* {"title": <n copies of s>} built by code, so any bytes can be in it. */
static json_t *s_title(const char *s, size_t len, int n)
{
    char *buf = malloc(len * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        memcpy(buf + len * (size_t)i, s, len);
    }
    json_t *o = json_pack("{s:o}", "title", json_stringn_nocheck(buf, len * (size_t)n));
    free(buf);
    return o;
}

static const char *s_check_title(json_t *o, op_args_err_t *err)
{
    int rc = op_args_check(&proto_ops[PROTO_OP_CONV_PATCH], o, 0, err);
    json_decref(o);
    return rc == 0 ? NULL : err->message;
}

Test(op_args, lengths_are_characters_of_valid_utf8)
{
    op_args_err_t err;
    cr_assert_null(s_check_title(s_title("\xc3\xa9", 2, 1000), &err), "1000 é");
    cr_assert_null(s_check_title(s_title("\xc3\xa9", 2, 501), &err), "501 é");
    cr_assert_null(s_check_title(s_title("\xf0\x9f\x8e\x89", 4, 1000), &err), "1000 emoji");
    cr_assert_str_eq(s_check_title(s_title("\xc3\xa9", 2, 1001), &err),
                     "title is longer than 1000 characters");
    cr_assert_str_eq(s_check_title(s_title("a", 1, 1001), &err),
                     "title is longer than 1000 characters");
    cr_assert_str_eq(s_check_title(s_title("\xff", 1, 3), &err), "title is not valid UTF-8");
    cr_assert_str_eq(s_check_title(s_title("\xc0\xaf", 2, 1), &err), "title is not valid UTF-8");
    cr_assert_str_eq(s_check_title(s_title("\xed\xa0\x80", 3, 1), &err),
                     "title is not valid UTF-8");
    cr_assert_str_eq(s_check_title(s_title("a\0b", 3, 1), &err),
                     "title must not contain NUL characters");
    cr_assert_str_eq(err.field, "title");
    /* Enum values and UUIDs are compared whole: an embedded NUL is no match. */
    json_t *o = json_pack("{s:o}", "on_busy", json_stringn_nocheck("reject\0x", 8));
    cr_assert_eq(op_args_check(&proto_ops[PROTO_OP_CONV_PATCH], o, 0, &err), -1);
    json_decref(o);
}

Test(op_args, uuids_are_lowercased_in_place)
{
    json_t *o = json_pack("{s:s}", "worktree_id", "3B0E8E2A-8A3C-4C56-9A7E-9C1C2B3D4E5F");
    op_args_err_t err;
    cr_assert_eq(op_args_check(&proto_ops[PROTO_OP_CONV_PATCH], o, 0, &err), 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "worktree_id")),
                     "3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f");
    json_decref(o);
}

Test(op_args, messages_stay_valid_utf8_when_cut)
{
    /* An unknown key of 100 "é": the field (64 bytes) and the message are cut
       between characters, never inside one. */
    char key[201];
    for (int i = 0; i < 100; i++) {
        key[2 * i] = (char)0xc3;
        key[2 * i + 1] = (char)0xa9;
    }
    key[200] = 0;
    json_t *o = json_object();
    json_object_set_new(o, key, json_true());
    op_args_err_t err;
    cr_assert_eq(op_args_check(&proto_ops[PROTO_OP_STATUS], o, 0, &err), -1);
    cr_assert_eq(strlen(err.field), 62);
    cr_assert_geq(proto_utf8_len(err.field, strlen(err.field)), 0);
    cr_assert_geq(proto_utf8_len(err.message, strlen(err.message)), 0);
    json_decref(o);
    op_args_err_set(&err, "f", "%s", "x\xc3\xa9\xe2\x9c");
    cr_assert_str_eq(err.message, "x\xc3\xa9");
}
