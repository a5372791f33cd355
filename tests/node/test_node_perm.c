/*  test_node_perm — permission rules and the provider-neutral history
    (pure, table driven), then the permission API ops of a real node against
    the test database: perm.list / perm.get (filters, paging, another
    team's → 404), perm.decide refusals, rule.create / rule.list /
    rule.delete (validation, a conversation rule of another team → 404),
    and strategies. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/node_test.h"

/* ---- pure ------------------------------------------------------------------------------------ */

Test(node_perm, pattern_matching_and_validity)
{
    const struct {
        const char *pattern, *tool;
        int want;
    } cases[] = {
        {"*", "read_file", 1},     {"read_*", "read_file", 6}, {"read_file", "read_file", 10000},
        {"read", "read_file", -1}, {"read_file", "read", -1},  {"mcp__*", "mcp__perm__x", 6},
        {"bash*", "bash", 5},      {"Bash", "bash", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(node_perm_match(cases[i].pattern, cases[i].tool), cases[i].want, "%s vs %s",
                     cases[i].pattern, cases[i].tool);
    }
    const char *good[] = {"*", "read_file", "mcp__*", "a.b:c-d", "x*"};
    const char *bad[] = {"", "**", "a*b", "re ad", "a/b", "ä", "$(x)", NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert(node_perm_pattern_valid(good[i]), "%s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(!node_perm_pattern_valid(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
    }
    char long_pattern[300];
    memset(long_pattern, 'a', sizeof long_pattern - 1);
    long_pattern[sizeof long_pattern - 1] = '\0';
    cr_assert(!node_perm_pattern_valid(long_pattern));
}

static json_t *s_rule(const char *id, const char *scope, const char *pattern, const char *dec)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "id", id, "scope", scope, "tool_pattern", pattern,
                     "decision", dec);
}

Test(node_perm, the_most_specific_rule_decides)
{
    json_t *rules = json_array();
    char id[40];
    cr_assert_eq(node_perm_decide(rules, "bash", id), 0);
    json_array_append_new(rules, s_rule("r1", "team", "*", "allow"));
    cr_assert_eq(node_perm_decide(rules, "bash", id), 1);
    cr_assert_str_eq(id, "r1");
    json_array_append_new(rules, s_rule("r2", "team", "bash", "deny"));
    cr_assert_eq(node_perm_decide(rules, "bash", id), -1);
    cr_assert_str_eq(id, "r2");
    cr_assert_eq(node_perm_decide(rules, "read_file", id), 1);
    /* A conversation rule outranks any team rule, even a more specific one. */
    json_array_append_new(rules, s_rule("r3", "conversation", "b*", "allow"));
    cr_assert_eq(node_perm_decide(rules, "bash", id), 1);
    cr_assert_str_eq(id, "r3");
    /* Same pattern, both decisions: deny wins. */
    json_array_append_new(rules, s_rule("r4", "conversation", "b*", "deny"));
    cr_assert_eq(node_perm_decide(rules, "bash", id), -1);
    cr_assert_str_eq(id, "r4");
    json_decref(rules);
}

static json_t *
s_row(const char *id, const char *role, const char *content, const char *status, const char *meta)
{
    json_t *m = meta ? json_loads(meta, 0, NULL) : json_object();
    cr_assert_not_null(m, "bad meta %s", meta);
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "role", role, "content", content,
                     "status", status, "metadata", m);
}

Test(node_perm, history_groups_turns_and_drops_unanswered_calls)
{
    json_t *rows = json_array();
    json_array_append_new(rows, s_row("u1", "user", "first", "completed", NULL));
    json_array_append_new(
        rows, s_row("a1", "assistant", "looking", "completed",
                    "{\"user_message_id\":\"u1\",\"tool_calls\":[{\"id\":\"c1\",\"name\":"
                    "\"read_file\",\"arguments\":{\"path\":\"x\"}},{\"id\":\"c2\",\"name\":"
                    "\"bash\",\"arguments\":{}}]}"));
    /* A message posted during turn 1, started later. */
    json_array_append_new(rows, s_row("u2", "user", "second", "completed", NULL));
    json_array_append_new(rows, s_row("t1", "tool", "{\"content\":\"X\"}", "completed",
                                      "{\"user_message_id\":\"u1\",\"tool_call_id\":\"c1\"}"));
    json_array_append_new(
        rows, s_row("a2", "assistant", "done one", "completed", "{\"user_message_id\":\"u1\"}"));
    json_array_append_new(rows, s_row("u3", "user", "queued", "pending", NULL));
    json_array_append_new(
        rows, s_row("a3", "assistant", "partial", "streaming", "{\"user_message_id\":\"u2\"}"));
    bool has = false;
    json_t *h = node_llm_history(rows, "u2", NULL, &has);
    cr_assert(has);
    char *text = json_dumps(h, JSON_COMPACT);
    const char *want =
        "[{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"assistant\",\"content\":"
        "\"looking\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"read_file\",\"arguments\":"
        "{\"path\":\"x\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":"
        "\"{\\\"content\\\":\\\"X\\\"}\",\"is_error\":false},{\"role\":\"assistant\","
        "\"content\":\"done one\",\"tool_calls\":[]},{\"role\":\"user\",\"content\":\"second\"}]";
    cr_assert_str_eq(text, want);
    free(text);
    char err[256];
    cr_assert_eq(agent_llm_check(h, NULL, err, sizeof err), 0, "%s", err);
    json_decref(h);
    /* Skipping a1 drops its tool result too. */
    h = node_llm_history(rows, "u3", "a1", &has);
    cr_assert(has);
    text = json_dumps(h, JSON_COMPACT);
    cr_assert_null(strstr(text, "looking"));
    cr_assert_null(strstr(text, "c1"));
    cr_assert_not_null(strstr(text, "queued"));
    free(text);
    json_decref(h);
    h = node_llm_history(rows, "nope", NULL, &has);
    cr_assert(!has);
    json_decref(h);
    json_decref(rows);
}

/* ---- ops ------------------------------------------------------------------------------------- */

static nt_t s_t;

static void s_setup(void)
{
    nt_start(&s_t);
}

static void s_teardown(void)
{
    nt_stop(&s_t);
}

static int s_status(const char *op, const uint8_t *conv, const uint8_t *team, const char *body)
{
    nt_rep_t r = nt_recv(&s_t, nt_send(&s_t, op, conv, team, body));
    int st = r.status;
    nt_rep_free(&r);
    return st;
}

/* perm.decide of request id with the JSON members rest; returns the status. */
static int s_decide(const uint8_t conv[16], const uint8_t *team, const char *id, const char *rest)
{
    char body[256];
    snprintf(body, sizeof body, "{\"id\":\"%s\",%s}", id, rest);
    return s_status("perm.decide", conv, team, body);
}

/* Inserts a permission request for conv directly (fixture); its new id goes to id. */
static void s_request(const uint8_t conv[16], char id[37], const char *status)
{
    char c[37], sql[1024];
    uint8_t raw[16];
    util_uuid_generate(raw);
    util_uuid_format(raw, id);
    util_uuid_format(conv, c);
    snprintf(sql, sizeof sql,
             "INSERT INTO tool_permissions (id, team_id, conversation_id, tool_name, status) "
             "VALUES ('%s', '%s', '%s', 'bash', '%s')",
             id, s_t.team_s, c, status);
    nt_sql(&s_t, sql);
}

Test(node_perm,
     list_and_get_requests_of_the_team_only,
     .init = s_setup,
     .fini = s_teardown,
     .timeout = 30)
{
    uint8_t conv[16], other[16];
    char other_s[37], p1[37], p2[37], p3[37], q[256];
    nt_create(&s_t, conv, NULL);
    s_request(conv, p1, "pending");
    s_request(conv, p2, "approved");
    s_request(conv, p3, "pending");
    nt_rep_t r = nt_call(&s_t, "perm.list", NULL, "{\"status\":\"pending\",\"limit\":1}");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 1);
    const char *cursor = nt_str(r.body, "next_cursor", NULL);
    cr_assert_not_null(cursor);
    char body[256];
    snprintf(body, sizeof body, "{\"status\":\"pending\",\"limit\":5,\"cursor\":\"%s\"}", cursor);
    nt_rep_free(&r);
    r = nt_call(&s_t, "perm.list", NULL, body);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 1);
    cr_assert(json_is_null(json_object_get(r.body, "next_cursor")));
    nt_rep_free(&r);
    snprintf(q, sizeof q, "{\"id\":\"%s\"}", p2);
    r = nt_call(&s_t, "perm.get", NULL, q);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "approved");
    cr_assert_str_eq(nt_str(r.body, "tool_name", NULL), "bash");
    cr_assert(json_is_null(json_object_get(r.body, "expires_at")));
    nt_rep_free(&r);
    cr_assert_eq(s_status("perm.list", NULL, NULL, "{\"status\":\"nope\"}"), 400);
    cr_assert_eq(s_status("perm.list", NULL, NULL, "{\"conversation_id\":\"x\"}"), 400);
    cr_assert_eq(s_status("perm.get", NULL, NULL, "{\"id\":\"x\"}"), 400);
    /* Another team sees nothing of it. */
    nt_team_new(&s_t, other, other_s);
    cr_assert_eq(s_status("perm.get", NULL, other, q), 404);
    r = nt_recv(&s_t, nt_send(&s_t, "perm.list", NULL, other, "{}"));
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 0);
    nt_rep_free(&r);
    cr_assert_eq(s_decide(conv, other, p1, "\"decision\":\"approve\""), 404);
    /* An orphan pending request (no turn waits for it) is still decided. */
    cr_assert_eq(s_decide(conv, NULL, p1, "\"decision\":\"deny\",\"reason\":\"no\""), 200);
    cr_assert_eq(s_decide(conv, NULL, p1, "\"decision\":\"deny\",\"reason\":\"no\""), 200);
    cr_assert_eq(s_decide(conv, NULL, p1, "\"decision\":\"deny\",\"reason\":\"other\""), 409);
    cr_assert_eq(s_decide(conv, NULL, p3, "\"decision\":\"deny\",\"remember\":\"team\""), 400);
    nt_assert_gapless(&s_t, conv);
}

Test(node_perm, rules_crud_and_validation, .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    uint8_t conv[16], other[16];
    char other_s[37], c[37], body[512];
    nt_create(&s_t, conv, NULL);
    util_uuid_format(conv, c);
    nt_rep_t r = nt_call(&s_t, "rule.create", NULL,
                         "{\"scope\":\"team\",\"tool_pattern\":\"read_*\",\"decision\":\"allow\"}");
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(nt_str(r.body, "tool_pattern", NULL), "read_*");
    cr_assert(json_is_null(json_object_get(r.body, "conversation_id")));
    char *rule = strdup(nt_str(r.body, "id", NULL));
    nt_rep_free(&r);
    snprintf(body, sizeof body,
             "{\"scope\":\"conversation\",\"conversation_id\":\"%s\",\"tool_pattern\":\"bash\","
             "\"decision\":\"deny\"}",
             c);
    cr_assert_eq(s_status("rule.create", NULL, NULL, body), 201);
    const char *bad[] = {
        "{\"scope\":\"world\",\"tool_pattern\":\"x\",\"decision\":\"allow\"}",
        "{\"scope\":\"team\",\"tool_pattern\":\"a b\",\"decision\":\"allow\"}",
        "{\"scope\":\"team\",\"tool_pattern\":\"x\",\"decision\":\"maybe\"}",
        "{\"scope\":\"conversation\",\"tool_pattern\":\"x\",\"decision\":\"allow\"}",
        "{\"tool_pattern\":\"x\",\"decision\":\"allow\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_status("rule.create", NULL, NULL, bad[i]), 400, "%s", bad[i]);
    }
    r = nt_call(&s_t, "rule.list", NULL, "{}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 2);
    nt_rep_free(&r);
    snprintf(body, sizeof body, "{\"conversation_id\":\"%s\"}", c);
    r = nt_call(&s_t, "rule.list", NULL, body);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 1);
    nt_rep_free(&r);
    /* Another team: cannot target our conversation, nor delete our rule. */
    nt_team_new(&s_t, other, other_s);
    snprintf(body, sizeof body,
             "{\"scope\":\"conversation\",\"conversation_id\":\"%s\",\"tool_pattern\":\"x\","
             "\"decision\":\"allow\"}",
             c);
    cr_assert_eq(s_status("rule.create", NULL, other, body), 404);
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", rule);
    cr_assert_eq(s_status("rule.delete", NULL, other, body), 404);
    cr_assert_eq(s_status("rule.delete", NULL, NULL, body), 204);
    cr_assert_eq(s_status("rule.delete", NULL, NULL, body), 404);
    free(rule);
}

Test(node_perm, strategies_lists_names_without_secrets, .init = s_setup, .fini = s_teardown)
{
    nt_rep_t r = nt_call(&s_t, "strategies", NULL, "{}");
    cr_assert_eq(r.status, 200);
    const json_t *s0 = json_array_get(json_object_get(r.body, "data"), 0);
    cr_assert_str_eq(nt_str(s0, "name", NULL), "echo");
    cr_assert_str_eq(nt_str(s0, "kind", NULL), "echo");
    cr_assert(json_is_true(json_object_get(s0, "default")));
    nt_rep_free(&r);
}
