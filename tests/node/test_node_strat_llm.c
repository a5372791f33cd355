/*  test_node_strat_llm — the openai and anthropic strategies in a real node
    (standalone, in a thread of the test) against tests/fixtures/fake_llm.py
    and the test database: a streamed turn with usage, the history of a
    second turn, a tool call through the permission flow (approve, deny,
    remember, two pending at once, expiry), tools confined to the
    conversation's directory, provider failures (429, 500, malformed,
    stalled) as turn.failed, cancel during a tool call, and a node restarted
    while a request is pending. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/llm_fake.h"
#include "tests/fixtures/node_test.h"

#include <ftw.h>

static nt_t s_t;
static llm_fake_t s_fake;
static cfg_file_t *s_cfg;
static char s_work[128];

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void s_setup_kind(cfg_strategy_kind_t kind, const char *extra)
{
    if (!nt_open(&s_t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    llm_fake_start(&s_fake);
    char text[512];
    snprintf(text, sizeof text, "tools = read_file, list_directory, bash, write_file\n%s",
             extra ? extra : "");
    s_cfg = llm_fake_config(&s_fake, kind, text);
    snprintf(s_work, sizeof s_work, "/tmp/bicky-llm-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_work));
    s_t.cfg.strategies = s_cfg;
    s_t.cfg.work_dir = s_work;
    nt_start_node(&s_t);
    nt_connect(&s_t);
    zclock_sleep(100);
}

static void s_teardown(void)
{
    nt_stop(&s_t);
    llm_fake_stop(&s_fake);
    cfg_file_destroy(&s_cfg);
    if (s_work[0]) {
        nftw(s_work, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
}

TestSuite(node_strat_llm, .fini = s_teardown, .timeout = 60);

/* Creates a conversation and posts content; returns the user message id. */
static void s_post(uint8_t conv[16], const char *content, bool create)
{
    if (create) {
        nt_create(&s_t, conv, "{\"strategy\":\"s\"}");
    }
    char body[512];
    snprintf(body, sizeof body, "{\"content\":\"%s\"}", content);
    nt_rep_t r = nt_call(&s_t, "msg.post", conv, body);
    cr_assert_eq(r.status, 202, "msg.post status=%d", r.status);
    nt_rep_free(&r);
}

/* Waits for a stored event of type; returns its body (caller decrefs). */
static json_t *s_event(const char *type, int *deltas)
{
    json_t *b = NULL;
    long long id = nt_event_of(&s_t, type, &b, deltas);
    cr_assert_gt(id, 0, "no %s event", type);
    return b;
}

static const char *s_action_str(const json_t *ev, const char *k1, const char *k2)
{
    return nt_str(json_object_get(ev, "action"), k1, k2);
}

static void s_decide(const char *perm, const uint8_t conv[16], const char *extra, int want)
{
    char body[512];
    snprintf(body, sizeof body, "{\"id\":\"%s\"%s}", perm, extra);
    nt_rep_t r = nt_call(&s_t, "perm.decide", conv, body);
    cr_assert_eq(r.status, want, "perm.decide %s: %d", body, r.status);
    nt_rep_free(&r);
}

static char *s_conv_status(const uint8_t conv[16])
{
    nt_rep_t r = nt_call(&s_t, "conv.get", conv, "{}");
    cr_assert_eq(r.status, 200);
    char *st = strdup(nt_str(r.body, "status", NULL));
    nt_rep_free(&r);
    return st;
}

/* ---- plain turns ---------------------------------------------------------------------------- */

static void s_full_turn(cfg_strategy_kind_t kind)
{
    s_setup_kind(kind, NULL);
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"text\":\"Hello there from the model\","
                             "\"usage\":{\"input_tokens\":7,\"output_tokens\":5}}]");
    uint8_t conv[16];
    s_post(conv, "hi model", true);
    int deltas = 0;
    json_t *ev = s_event("message.completed", &deltas);
    cr_assert_geq(deltas, 2, "deltas=%d", deltas);
    const json_t *msg = json_object_get(json_object_get(ev, "action"), "message");
    cr_assert_str_eq(nt_str(msg, "content", NULL), "Hello there from the model");
    cr_assert_str_eq(nt_str(msg, "role", NULL), "assistant");
    cr_assert_str_eq(nt_str(msg, "metadata", "model"), "fake-model");
    cr_assert_eq(nt_int(json_object_get(msg, "metadata"), "usage", "input_tokens"), 7);
    cr_assert_eq(nt_int(json_object_get(msg, "metadata"), "usage", "output_tokens"), 5);
    json_decref(ev);
    ev = s_event("turn.completed", NULL);
    cr_assert_eq(nt_int(json_object_get(ev, "action"), "usage", "output_tokens"), 5);
    json_decref(ev);
    nt_assert_gapless(&s_t, conv);
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "idle");
    free(st);

    /* Second turn: the model gets the whole history. */
    s_post(conv, "and again", false);
    json_decref(s_event("turn.completed", NULL));
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 2);
    const json_t *msgs =
        json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    char *text = json_dumps(msgs, JSON_COMPACT);
    cr_assert(strstr(text, "hi model") && strstr(text, "Hello there from the model") &&
                  strstr(text, "and again"),
              "history: %s", text);
    free(text);
    json_decref(reqs);
}

Test(node_strat_llm, openai_full_turn_with_deltas_and_history)
{
    s_full_turn(CFG_STRATEGY_OPENAI);
}

Test(node_strat_llm, anthropic_full_turn_with_deltas_and_history)
{
    s_full_turn(CFG_STRATEGY_ANTHROPIC);
}

/* ---- tool calls and permissions ------------------------------------------------------------- */

/* Posts a message whose model call asks for tool name(args); returns the request id. */
static char *s_ask(uint8_t conv[16], bool create, const char *name, const char *args)
{
    char script[1024];
    snprintf(script, sizeof script,
             "[{\"kind\":\"tool_call\",\"name\":\"%s\",\"arguments\":%s,\"text\":\"Let me look\"},"
             "{\"kind\":\"text\",\"text\":\"All done\"}]",
             name, args);
    llm_fake_script(&s_fake, script);
    s_post(conv, "please use a tool", create);
    json_t *ev = s_event("permission.requested", NULL);
    const char *id = s_action_str(ev, "request", "id");
    cr_assert_not_null(id);
    cr_assert_str_eq(s_action_str(ev, "request", "status"), "pending");
    cr_assert_str_eq(s_action_str(ev, "request", "tool_name"), name);
    char *out = strdup(id);
    json_decref(ev);
    return out;
}

static void s_tool_approve(cfg_strategy_kind_t kind)
{
    s_setup_kind(kind, NULL);
    FILE *f = fopen("/tmp/.bicky-marker", "w");
    fclose(f);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "list_directory", "{\"path\":\".\"}");
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "waiting_for_permission");
    free(st);
    /* perm.get (team-wide) names the conversation. */
    char body[128];
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", perm);
    nt_rep_t r = nt_call(&s_t, "perm.get", NULL, body);
    cr_assert_eq(r.status, 200);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_str_eq(nt_str(r.body, "conversation_id", NULL), c);
    nt_rep_free(&r);

    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    json_t *ev = s_event("tool.started", NULL);
    cr_assert_str_eq(s_action_str(ev, "tool_name", NULL), "list_directory");
    json_decref(ev);
    ev = s_event("tool.completed", NULL);
    cr_assert(!json_is_true(json_object_get(json_object_get(ev, "action"), "is_error")));
    json_decref(ev);
    ev = s_event("turn.completed", NULL);
    json_decref(ev);
    /* The second model call carried the tool's result. */
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 2);
    char *text = json_dumps(json_array_get(reqs, 1), JSON_COMPACT);
    cr_assert(strstr(text, "entries"), "second request: %.400s", text);
    free(text);
    json_decref(reqs);
    st = s_conv_status(conv);
    cr_assert_str_eq(st, "idle");
    free(st);
    nt_assert_gapless(&s_t, conv);
    /* The same decision again: the first answer; another one: 409. */
    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    s_decide(perm, conv, ",\"decision\":\"deny\"", 409);
    free(perm);
}

Test(node_strat_llm, openai_tool_call_approved_runs_and_continues)
{
    s_tool_approve(CFG_STRATEGY_OPENAI);
}

Test(node_strat_llm, anthropic_tool_call_approved_runs_and_continues)
{
    s_tool_approve(CFG_STRATEGY_ANTHROPIC);
}

Test(node_strat_llm, deny_becomes_the_tool_result)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "bash", "{\"command\":\"touch /tmp/bicky-denied\"}");
    s_decide(perm, conv, ",\"decision\":\"deny\",\"reason\":\"not today\"", 200);
    json_t *ev = s_event("permission.decided", NULL);
    cr_assert_str_eq(s_action_str(ev, "request", "status"), "denied");
    cr_assert_str_eq(s_action_str(ev, "request", "reason"), "not today");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    json_t *reqs = llm_fake_requests(&s_fake);
    char *text = json_dumps(json_array_get(reqs, 1), JSON_COMPACT);
    cr_assert(strstr(text, "not today"), "second request: %.400s", text);
    free(text);
    json_decref(reqs);
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM events WHERE type = 'tool.started' AND "
                           "team_id = '%s'",
                           s_t.team_s),
                 0);
    /* Unknown request, other decisions. */
    s_decide(perm, conv, ",\"decision\":\"approve\"", 409);
    s_decide("6f1c1a4e-0000-4000-8000-000000000000", conv, ",\"decision\":\"approve\"", 404);
    s_decide(perm, conv, ",\"decision\":\"maybe\"", 400);
    free(perm);
}

Test(node_strat_llm, remember_allows_the_next_call_without_asking)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "read_file", "{\"path\":\"nope.txt\"}");
    s_decide(perm, conv, ",\"decision\":\"approve\",\"remember\":\"conversation\"", 200);
    json_decref(s_event("turn.completed", NULL));
    free(perm);
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM permission_rules WHERE team_id = '%s' AND "
                           "tool_pattern = 'read_file' AND scope = 'conversation'",
                           s_t.team_s),
                 1);
    llm_fake_script(&s_fake, "[{\"kind\":\"tool_call\",\"name\":\"read_file\",\"arguments\":"
                             "{\"path\":\"x\"}},{\"kind\":\"text\",\"text\":\"ok\"}]");
    s_post(conv, "again", false);
    json_t *ev = s_event("permission.decided", NULL);
    cr_assert_str_eq(nt_str(json_object_get(ev, "action"), "decided_by", NULL), "rule");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    cr_assert_eq(
        nt_sql_ll(&s_t, "SELECT count(*) FROM tool_permissions WHERE team_id = '%s'", s_t.team_s),
        1);
}

Test(node_strat_llm, two_pending_requests_are_decided_each_on_its_own)
{
    s_setup_kind(CFG_STRATEGY_ANTHROPIC, NULL);
    llm_fake_script(&s_fake, "[{\"kind\":\"two_tool_calls\"},{\"kind\":\"text\",\"text\":\"ok\"}]");
    uint8_t conv[16];
    s_post(conv, "two", true);
    json_t *a = s_event("permission.requested", NULL);
    json_t *b = s_event("permission.requested", NULL);
    char *pa = strdup(s_action_str(a, "request", "id"));
    char *pb = strdup(s_action_str(b, "request", "id"));
    json_decref(a);
    json_decref(b);
    s_decide(pb, conv, ",\"decision\":\"approve\"", 200);
    json_decref(s_event("tool.completed", NULL));
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "waiting_for_permission");
    free(st);
    s_decide(pa, conv, ",\"decision\":\"deny\"", 200);
    json_decref(s_event("turn.completed", NULL));
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 2);
    json_decref(reqs);
    nt_assert_gapless(&s_t, conv);
    free(pa);
    free(pb);
}

Test(node_strat_llm, a_request_expires_into_a_denial)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, "permission_timeout_s = 1\n");
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "read_file", "{\"path\":\"a\"}");
    json_t *ev = s_event("permission.decided", NULL);
    cr_assert_str_eq(s_action_str(ev, "request", "status"), "expired");
    cr_assert_str_eq(s_action_str(ev, "request", "reason"), "expired");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    s_decide(perm, conv, ",\"decision\":\"approve\"", 409);
    free(perm);
}

Test(node_strat_llm, tools_stay_in_the_conversation_dir)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "read_file", "{\"path\":\"../../../../etc/passwd\"}");
    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    json_t *ev = s_event("tool.completed", NULL);
    cr_assert(json_is_true(json_object_get(json_object_get(ev, "action"), "is_error")));
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    json_t *reqs = llm_fake_requests(&s_fake);
    char *text = json_dumps(json_array_get(reqs, 1), JSON_COMPACT);
    cr_assert_null(strstr(text, "root:"), "passwd leaked: %.300s", text);
    free(text);
    json_decref(reqs);
    free(perm);
    /* write_file lands in work_dir/conversations/<id>. */
    perm = s_ask(conv, false, "write_file", "{\"path\":\"note.txt\",\"content\":\"hi\"}");
    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    json_decref(s_event("turn.completed", NULL));
    char c[37], path[512];
    util_uuid_format(conv, c);
    snprintf(path, sizeof path, "%s/conversations/%s/note.txt", s_work, c);
    cr_assert_eq(access(path, R_OK), 0, "%s missing", path);
    free(perm);
}

/* ---- failures -------------------------------------------------------------------------------- */

static void s_fails(const char *item, const char *want)
{
    char script[512];
    snprintf(script, sizeof script, "[%s]", item);
    llm_fake_script(&s_fake, script);
    uint8_t conv[16];
    s_post(conv, "fail please", true);
    json_t *ev = s_event("turn.failed", NULL);
    const char *err = s_action_str(ev, "error", NULL);
    cr_assert(err && strstr(err, want), "error \"%s\" lacks \"%s\"", err ? err : "", want);
    json_decref(ev);
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "error");
    free(st);
    nt_assert_gapless(&s_t, conv);
}

Test(node_strat_llm, provider_errors_fail_the_turn)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, "stall_timeout_s = 1\n");
    s_fails("{\"kind\":\"http_error\",\"status\":429,\"message\":\"Rate limit reached\"}", "429");
    s_fails("{\"kind\":\"http_error\",\"status\":500}", "500");
    s_fails("{\"kind\":\"malformed\"}", "");
    s_fails("{\"kind\":\"stalled\",\"stall_s\":5}", "");
    /* The conversation stays usable. */
    uint8_t conv[16];
    s_post(conv, "fine now", true);
    json_decref(s_event("turn.completed", NULL));
}

Test(node_strat_llm, cancel_during_a_tool_call)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "bash", "{\"command\":\"sleep 2; echo late\"}");
    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    json_decref(s_event("tool.started", NULL));
    nt_rep_t r = nt_call(&s_t, "conv.cancel", conv, "{}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    json_decref(s_event("turn.cancelled", NULL));
    zclock_sleep(2500);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                           "type = 'tool.completed'",
                           c),
                 0);
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "idle");
    free(st);
    nt_assert_gapless(&s_t, conv);
    free(perm);
}

Test(node_strat_llm, cancel_while_waiting_denies_the_request)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "read_file", "{\"path\":\"a\"}");
    nt_rep_t r = nt_call(&s_t, "conv.cancel", conv, "{}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    json_decref(s_event("turn.cancelled", NULL));
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM tool_permissions WHERE id = '%s' AND "
                           "status = 'denied'",
                           perm),
                 1);
    s_decide(perm, conv, ",\"decision\":\"approve\"", 409);
    free(perm);
}

Test(node_strat_llm, a_pending_request_survives_a_node_restart)
{
    s_setup_kind(CFG_STRATEGY_ANTHROPIC, NULL);
    uint8_t conv[16];
    char *perm = s_ask(conv, true, "list_directory", "{}");
    zactor_destroy(&s_t.node);
    zsock_destroy(&s_t.gw);
    zsock_destroy(&s_t.sub);
    nt_start_node(&s_t);
    nt_connect(&s_t);
    zclock_sleep(200);
    s_decide(perm, conv, ",\"decision\":\"approve\"", 200);
    json_decref(s_event("tool.completed", NULL));
    json_t *ev = s_event("message.completed", NULL);
    cr_assert_str_eq(
        nt_str(json_object_get(json_object_get(ev, "action"), "message"), "content", NULL),
        "All done");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    char *st = s_conv_status(conv);
    cr_assert_str_eq(st, "idle");
    free(st);
    nt_assert_gapless(&s_t, conv);
    free(perm);
}

Test(node_strat_llm, nul_characters_from_the_model_never_reach_postgres)
{
    s_setup_kind(CFG_STRATEGY_OPENAI, NULL);
    /* Arguments holding a NUL do not parse: the model call fails, nothing is asked. */
    llm_fake_script(&s_fake, "[{\"kind\":\"tool_call\",\"name\":\"read_file\",\"arguments\":"
                             "{\"path\":\"a\\u0000b\"}}]");
    uint8_t conv[16];
    s_post(conv, "nul", true);
    json_decref(s_event("turn.failed", NULL));
    cr_assert_eq(
        nt_sql_ll(&s_t, "SELECT count(*) FROM tool_permissions WHERE team_id = '%s'", s_t.team_s),
        0);
    /* Nor does a NUL in the text: the client refuses it (and the node would scrub it). */
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"deltas\":[\"x\\u0000\",\"y\"]}]");
    zclock_sleep(300); /* the back-off after the failed turn */
    s_post(conv, "text", false);
    json_t *ev = s_event("turn.failed", NULL);
    cr_assert_not_null(strstr(s_action_str(ev, "error", NULL), "malformed"));
    json_decref(ev);
    nt_assert_gapless(&s_t, conv);
}
