/*  test_gw_api — component tests of the API handlers (gw_api_*): the real
    gateway loop against the fake node of gw_fake.h. Checks what reaches the
    node (op, args, conversation, team), what the client gets back, the auth
    cache, MOVED retries and SSE replay + live without gap or duplicate. */
#include "tests/fixtures/gw_fake.h"

TestSuite(gw_api, .timeout = 30);

static void s_ready(gwt_t *t)
{
    gwt_start(t, true, NULL);
    cr_assert_eq(gwt_wait_ready(t, 5000), 200);
}

Test(gw_api, create_get_post_list_delete)
{
    gwt_t t;
    s_ready(&t);
    http_t *r = http_do(&t, "POST", "/api/conversations", s_auth_json,
                        "{\"title\":\"hello\",\"metadata\":{\"k\":1},\"on_busy\":\"reject\"}", 0);
    cr_assert_eq(r->status, 201, "%ld %s", r->status, r->body);
    fake_stats_t s = fake_stats(&t);
    cr_assert_str_eq(s.op, "conv.create");
    cr_assert(strstr(s.args, "\"title\":\"hello\"") && strstr(s.args, "\"on_busy\":\"reject\""),
              "%s", s.args);
    json_t *conv = json_loads(r->body, 0, NULL);
    char id[40];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(conv, "id")));
    json_decref(conv);
    uint8_t raw[16];
    cr_assert_eq(util_uuid_parse(id, raw), 0, "gateway must pick a UUID: %s", id);
    free(r);

    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%s", id);
    r = http_do(&t, "GET", path, s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    cr_assert(strstr(r->body, "conv.get") && strstr(r->body, id), "%s", r->body);
    free(r);

    snprintf(path, sizeof path, "/api/conversations/%s/messages", id);
    r = http_do(&t, "POST", path, s_auth_json, "{\"content\":\"hi there\"}", 0);
    cr_assert_eq(r->status, 202, "%ld %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"message\""));
    free(r);

    r = http_do(&t, "GET", "/api/conversations?limit=10&status=idle&cursor=abc", s_auth_json, NULL,
                0);
    cr_assert_eq(r->status, 200);
    s = fake_stats(&t);
    cr_assert_str_eq(s.op, "conv.list");
    cr_assert(strstr(s.args, "\"limit\":10") && strstr(s.args, "\"cursor\":\"abc\"") &&
                  strstr(s.args, "\"status\":\"idle\""),
              "%s", s.args);
    free(r);

    snprintf(path, sizeof path, "/api/conversations/%s", id);
    r = http_do(&t, "DELETE", path, s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 204, "%ld %s", r->status, r->body);
    cr_assert_eq(r->len, 0);
    free(r);
    gwt_stop(&t);
}

Test(gw_api, validation_errors_name_the_field)
{
    gwt_t t;
    s_ready(&t);
    struct {
        const char *method, *path, *body, *code, *needle;
        long status;
    } cases[] = {
        {"POST", "/api/message", "{\"content\":", "invalid_json", "\"line\":1", 400},
        {"POST", "/api/message", "{\"content\":\"   \"}", "invalid_field", "\"field\":\"content\"",
         400},
        {"POST", "/api/message", "{\"content\":5}", "invalid_field", "\"field\":\"content\"", 400},
        {"POST", "/api/message", "{\"content\":\"x\",\"conversation_id\":\"nope\"}",
         "invalid_field", "\"field\":\"conversation_id\"", 400},
        {"POST", "/api/message", "{\"content\":\"x\",\"bogus\":1}", "invalid_field",
         "\"field\":\"bogus\"", 400},
        {"POST", "/api/message", "{\"content\":\"a\",\"content\":\"b\"}", "invalid_json", "line",
         400},
        {"POST", "/api/conversations", "{\"on_busy\":\"later\"}", "invalid_field",
         "\"field\":\"on_busy\"", 400},
        {"GET", "/api/conversations?limit=0", NULL, "invalid_field", "\"field\":\"limit\"", 400},
        {"GET", "/api/conversations?limit=501", NULL, "invalid_field", "limit", 400},
        {"GET", "/api/conversations/not-a-uuid", NULL, "invalid_field", "\"field\":\"id\"", 400},
        {"GET", "/api/events?after=-1", NULL, "invalid_field", "after", 400},
        {"GET", "/api/permissions?status=bogus", NULL, "invalid_field", "\"field\":\"status\"",
         400},
        {"GET", "/api/permissions?status=bogus", NULL, "invalid_field",
         "status must be one of: pending, approved, denied, expired", 400},
        {"GET", "/api/conversations?status=bogus", NULL, "invalid_field", "\"field\":\"status\"",
         400},
        {"GET", "/api/conversations?status=bogus", NULL, "invalid_field",
         "one of: idle, queued, processing, waiting_for_permission, error, archived", 400},
        {"POST", "/api/permission-rules", "{\"scope\":\"world\"}", "invalid_field",
         "scope must be one of: team, conversation", 400},
    };
    int ops_before = fake_stats(&t).ops;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_t *r = http_do(&t, cases[i].method, cases[i].path, s_auth_json, cases[i].body, 0);
        cr_expect_eq(r->status, cases[i].status, "case %zu: %ld %s", i, r->status, r->body);
        cr_expect(strstr(r->body, cases[i].code) && strstr(r->body, cases[i].needle),
                  "case %zu: %s", i, r->body);
        free(r);
    }
    cr_assert_eq(fake_stats(&t).ops, ops_before, "invalid requests must not reach a node");
    gwt_stop(&t);
}

Test(gw_api, auth_is_cached_and_bad_tokens_refused)
{
    gwt_t t;
    s_ready(&t);
    for (int i = 0; i < 3; i++) {
        http_t *r = http_do(&t, "GET", "/api/events", s_auth_json, NULL, 0);
        cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
        free(r);
    }
    cr_assert_eq(fake_stats(&t).auths, 1, "positive answers are cached");
    const char *bad[] = {"Authorization: Bearer nope", NULL};
    for (int i = 0; i < 2; i++) {
        http_t *r = http_do(&t, "GET", "/api/events", bad, NULL, 0);
        cr_assert_eq(r->status, 401);
        cr_assert(strcasestr(r->headers, "WWW-Authenticate: Bearer"));
        cr_assert(strstr(r->body, "\"code\":\"unauthorized\""));
        free(r);
    }
    cr_assert_eq(fake_stats(&t).auths, 2, "negative answers are cached too");
    fake_stats_t s = fake_stats(&t);
    cr_assert_str_eq(s.op, "events.list");
    gwt_stop(&t);
}

Test(gw_api, moved_is_retried_then_gives_up)
{
    gwt_t t;
    /* Each MOVED may park the call up to GW_MOVED_PARK_MS for a fresh ring:
       give the retries room under a sanitizer on a loaded machine, so only
       the MOVED logic decides the answer, never the request deadline. */
    gwt_start_ex(&t, true, NULL, 5000);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    fake_mode(&t, FAKE_MOVED_ONCE);
    http_t *r = http_do(&t, "GET", "/api/conversations/33333333-3333-4333-8333-333333333333",
                        s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    free(r);
    fake_stats_t s = fake_stats(&t);
    cr_assert_eq(s.ops, 2);
    cr_assert_eq(s.moved, 1);
    fake_mode(&t, FAKE_MOVED_ALWAYS);
    r = http_do(&t, "GET", "/api/conversations/33333333-3333-4333-8333-333333333333", s_auth_json,
                NULL, 0);
    cr_assert_eq(r->status, 503, "%ld %s", r->status, r->body);
    cr_assert(strcasestr(r->headers, "Retry-After:"));
    free(r);
    cr_assert_eq(fake_stats(&t).moved, GW_MOVED_MAX + 1);
    gwt_stop(&t);
}

Test(gw_api, message_shortcut_and_idempotency)
{
    gwt_t t;
    s_ready(&t);
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN,
                          "Content-Type: application/json", "Idempotency-Key: abc-1", NULL};
    const char *body = "{\"content\":\"hello\",\"source\":\"cli\",\"metadata\":{\"a\":1}}";
    http_t *r = http_do(&t, "POST", "/api/message", hdrs, body, 0);
    cr_assert_eq(r->status, 202, "%ld %s", r->status, r->body);
    json_t *o = json_loads(r->body, 0, NULL);
    const char *conv = json_string_value(json_object_get(o, "conversation_id"));
    cr_assert_not_null(conv);
    cr_assert_str_eq(json_string_value(json_object_get(o, "message_id")),
                     "22222222-2222-4222-8222-222222222222");
    cr_assert(json_is_true(json_object_get(o, "created")));
    fake_stats_t s = fake_stats(&t);
    cr_assert_str_eq(s.op, "msg.post");
    json_t *args = json_loads(s.args, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(args, "content")), "hello");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(args, "create"), "source")),
                     "cli");
    cr_assert_str_eq(json_string_value(json_object_get(args, "idempotency_key")), "abc-1");
    cr_assert_eq(strlen(json_string_value(json_object_get(args, "request_hash"))), 64);
    json_decref(args);
    /* A retry with the same key lands on the same conversation id. */
    http_t *r2 = http_do(&t, "POST", "/api/message", hdrs, body, 0);
    json_t *o2 = json_loads(r2->body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o2, "conversation_id")), conv);
    json_decref(o2);
    json_decref(o);
    free(r2);
    free(r);
    gwt_stop(&t);
}

Test(gw_api, status_merges_ring_and_counts)
{
    gwt_t t;
    s_ready(&t);
    http_t *r = http_do(&t, "GET", "/api/status", s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    json_t *o = json_loads(r->body, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(o, "ring_epoch")), 1);
    cr_assert_eq(json_array_size(json_object_get(o, "nodes")), 1);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(o, "conversations_by_status"), "idle")),
        2);
    json_decref(o);
    free(r);
    gwt_stop(&t);
}

/* n copies of s after prefix and before suffix; caller frees. */
static char *s_repeat(const char *prefix, const char *s, int n, const char *suffix)
{
    size_t len = strlen(prefix) + strlen(s) * (size_t)n + strlen(suffix) + 1;
    char *out = malloc(len);
    int k = snprintf(out, len, "%s", prefix);
    for (int i = 0; i < n; i++) {
        k += snprintf(out + k, len - (size_t)k, "%s", s);
    }
    snprintf(out + k, len - (size_t)k, "%s", suffix);
    return out;
}

/* The error message of an invalid_field answer naming field, or "" (static). */
static const char *s_refusal(http_t *r, const char *field)
{
    static char msg[512];
    json_t *o = json_loads(r->body, 0, NULL);
    bool ok = r->status == 400 &&
              strcmp(json_string_value(json_object_get(o, "code")) ?: "", "invalid_field") == 0 &&
              strcmp(json_string_value(json_object_get(o, "field")) ?: "", field) == 0;
    snprintf(msg, sizeof msg, "%s", ok ? json_string_value(json_object_get(o, "error")) : "");
    json_decref(o);
    return msg;
}

Test(gw_api, limits_count_characters_as_the_node_does)
{
    gwt_t t;
    s_ready(&t);
    /* 1000 "é" (2000 bytes) is a valid title and reaches the node whole. */
    char *body = s_repeat("{\"title\":\"", "\xc3\xa9", 1000, "\"}");
    http_t *r = http_do(&t, "POST", "/api/conversations", s_auth_json, body, 0);
    cr_assert_eq(r->status, 201, "%ld %s", r->status, r->body);
    json_t *args = json_loads(fake_stats(&t).args, 0, NULL);
    cr_assert_eq(json_string_length(json_object_get(args, "title")), 2000);
    json_decref(args);
    free(r);
    free(body);
    body = s_repeat("{\"title\":\"", "\xc3\xa9", 1001, "\"}");
    r = http_do(&t, "POST", "/api/conversations", s_auth_json, body, 0);
    cr_assert_str_eq(s_refusal(r, "title"), "title is longer than 1000 characters", "%s", r->body);
    free(r);
    free(body);
    /* A source filter of 40 "é" is 40 characters (80 bytes): within 64. */
    char *path = s_repeat("/api/conversations?source=", "%C3%A9", 40, "");
    r = http_do(&t, "GET", path, s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    free(r);
    free(path);
    path = s_repeat("/api/conversations?type=", "%C3%A9", 65, "");
    r = http_do(&t, "GET", path, s_auth_json, NULL, 0);
    cr_assert_str_eq(s_refusal(r, "type"), "type is longer than 64 characters", "%s", r->body);
    free(r);
    free(path);
    gwt_stop(&t);
}

Test(gw_api, refusals_say_what_is_allowed)
{
    gwt_t t;
    s_ready(&t);
    static const char perm[] = "/api/permissions/3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f";
    char approve[128], deny[128];
    snprintf(approve, sizeof approve, "%s/approve", perm);
    snprintf(deny, sizeof deny, "%s/deny", perm);
    const struct {
        const char *method, *path, *body, *field, *message;
    } cases[] = {
        {"POST", "/api/conversations", "{\"on_busy\":\"later\"}", "on_busy",
         "on_busy must be one of: enqueue, reject, interrupt"},
        {"GET", "/api/conversations?status=bogus", NULL, "status",
         "status must be one of: idle, queued, processing, waiting_for_permission, error, "
         "archived"},
        {"GET", "/api/permissions?status=maybe", NULL, "status",
         "status must be one of: pending, approved, denied, expired"},
        {"POST", approve, "{\"remember\":\"forever\"}", "remember",
         "remember must be one of: conversation, team"},
        {"POST", approve, "{\"reason\":\"because\"}", "reason",
         "reason is accepted only when decision is deny"},
        {"POST", deny, "{\"remember\":\"team\"}", "remember",
         "remember is accepted only when decision is approve"},
        {"POST", "/api/permission-rules",
         "{\"scope\":\"sometimes\",\"tool_pattern\":\"*\",\"decision\":\"allow\"}", "scope",
         "scope must be one of: team, conversation"},
        {"POST", "/api/permission-rules",
         "{\"scope\":\"team\",\"conversation_id\":\"3b0e8e2a-8a3c-4c56-9a7e-9c1c2b3d4e5f\","
         "\"tool_pattern\":\"*\",\"decision\":\"allow\"}",
         "conversation_id", "conversation_id is accepted only when scope is conversation"},
        {"POST", "/api/permission-rules",
         "{\"scope\":\"conversation\",\"tool_pattern\":\"*\","
         "\"decision\":\"allow\"}",
         "conversation_id", "conversation_id is required when scope is conversation"},
        {"POST", "/api/worktrees", "{\"base\":\"main\"}", "branch", "branch is required"},
        {"POST", "/api/message", "{\"content\":\"x\",\"fresh\":true}", "fresh",
         "unknown field 'fresh'"},
        {"GET", "/api/conversations?limit=0", NULL, "limit",
         "limit must be an integer from 1 to 500"},
    };
    int ops_before = fake_stats(&t).ops;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_t *r = http_do(&t, cases[i].method, cases[i].path, s_auth_json, cases[i].body, 0);
        cr_expect_str_eq(s_refusal(r, cases[i].field), cases[i].message, "case %zu: %ld %s", i,
                         r->status, r->body);
        free(r);
    }
    cr_assert_eq(fake_stats(&t).ops, ops_before, "invalid requests must not reach a node");
    /* The same characters count once in every body: a deny reason of 1000 "é". */
    char *body = s_repeat("{\"reason\":\"", "\xc3\xa9", 1001, "\"}");
    http_t *r = http_do(&t, "POST", deny, s_auth_json, body, 0);
    cr_assert_str_eq(s_refusal(r, "reason"), "reason is longer than 1000 characters", "%s",
                     r->body);
    free(r);
    free(body);
    gwt_stop(&t);
}

Test(gw_api, strategies_carry_every_documented_key)
{
    gwt_t t;
    s_ready(&t);
    int ops = fake_stats(&t).ops;
    http_t *r = http_do(&t, "GET", "/api/strategies", s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    json_t *o = json_loads(r->body, 0, NULL);
    json_t *s0 = json_array_get(json_object_get(o, "data"), 0);
    /* Without --config: the built-in echo, the default. */
    cr_assert_str_eq(json_string_value(json_object_get(s0, "name")), "echo", "%s", r->body);
    static const char *keys[] = {"name", "kind", "model", "default", "tools", "max_turns"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cr_expect_not_null(json_object_get(s0, keys[i]), "no %s in %s", keys[i], r->body);
    }
    cr_assert_eq(json_object_size(s0), sizeof keys / sizeof keys[0], "%s", r->body);
    cr_assert(json_is_null(json_object_get(s0, "max_turns")), "echo makes no model call");
    cr_assert(json_is_true(json_object_get(s0, "default")));
    cr_assert(json_is_null(json_object_get(o, "next_cursor")));
    cr_assert_eq(fake_stats(&t).ops, ops, "answered by the gateway itself");
    json_decref(o);
    free(r);
    gwt_stop(&t);
}
