/*  test_node_strat_claude — the claude-code strategy in a real node
    (standalone, in a thread of the test) with the real Claude Code CLI
    ($BICKY_CLAUDE, else `claude` on PATH; skipped without it) talking to
    tests/fixtures/fake_llm.py: a streamed turn whose session id and files
    are kept in Postgres; a Bash tool call through the durable permission
    flow (approved: it runs in the conversation's directory; denied: it does
    not), over the stdio channel and over the MCP channel (bicky-mcp-permission
    asking the node with permission.ask); a second turn resuming the session,
    also after the node's copy of the session was lost (imported back from
    Postgres); and a node restart while a request is pending (the request
    waits again; approved, the session is resumed and the call runs; denied,
    the resumed model goes on without it); the texts of a turn's model calls
    set apart by a blank line. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/claude_cli.h"
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

static void s_cleanup(void)
{
    nt_stop(&s_t);
    llm_fake_stop(&s_fake);
    cfg_file_destroy(&s_cfg);
    if (s_work[0]) {
        nftw(s_work, s_rm, 16, FTW_DEPTH | FTW_PHYS);
        s_work[0] = '\0';
    }
}

static void s_nothing(void)
{
}

/* A node whose only strategy "cc" runs the CLI against the fake (channel: the
   permission_channel line, "" for the default). */
static void s_setup_ch(const char *cli, const char *channel)
{
    if (!nt_open(&s_t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    setenv("BICKY_TEST_CLAUDE_KEY", "sk-test-claude", 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    llm_fake_start(&s_fake);
    char text[1024], err[256];
    snprintf(text, sizeof text,
             "[strategy.cc]\nkind = claude-code\ncommand = %s\nbase_url = http://127.0.0.1:%d\n"
             "model = fake-model\napi_key_env = BICKY_TEST_CLAUDE_KEY\ntools = Bash, Read\n"
             "timeout_s = 60\n%s",
             cli, s_fake.port, channel);
    s_cfg = cfg_file_load_string(text, "test.ini", err, sizeof err);
    cr_assert_not_null(s_cfg, "%s", err);
    snprintf(s_work, sizeof s_work, "/tmp/bicky-cc-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_work));
    s_t.cfg.strategies = s_cfg;
    s_t.cfg.work_dir = s_work;
    s_t.cfg.mcp_permission_bin = cc_mcp_binary();
    nt_start_node(&s_t);
    nt_connect(&s_t);
    zclock_sleep(100);
}

static void s_setup(const char *cli)
{
    s_setup_ch(cli, "");
}

TestSuite(node_strat_claude, .fini = s_cleanup, .timeout = 120);

static void s_post(uint8_t conv[16], const char *content, bool create)
{
    if (create) {
        nt_create(&s_t, conv, "{\"strategy\":\"cc\"}");
    }
    char body[256];
    snprintf(body, sizeof body, "{\"content\":\"%s\"}", content);
    nt_rep_t r = nt_call(&s_t, "msg.post", conv, body);
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
}

static json_t *s_event(const char *type, int *deltas)
{
    json_t *b = NULL;
    for (int i = 0; i < 4; i++) {
        /* The CLI takes a few seconds: wait in NT_TIMEOUT slices. */
        if (nt_event_of(&s_t, type, &b, deltas) > 0) {
            return b;
        }
    }
    cr_assert_fail("no %s event", type);
    return NULL;
}

static const char *s_msg_content(const json_t *ev)
{
    return nt_str(json_object_get(json_object_get(ev, "action"), "message"), "content", NULL);
}

static char *s_session(const uint8_t conv[16])
{
    nt_rep_t r = nt_call(&s_t, "conv.get", conv, "{}");
    const char *sid = nt_str(json_object_get(r.body, "metadata"), "claude_code", "session_id");
    char *out = sid ? strdup(sid) : NULL;
    nt_rep_free(&r);
    return out;
}

Test(node_strat_claude, a_turn_and_its_session_kept_in_postgres)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"text\":\"Hello from the fake model.\"}]");
    uint8_t conv[16];
    s_post(conv, "say hi", true);
    int deltas = 0;
    json_t *ev = s_event("message.completed", &deltas);
    cr_assert_str_eq(s_msg_content(ev), "Hello from the fake model.");
    cr_assert_geq(deltas, 2);
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    char *sid = s_session(conv);
    cr_assert_not_null(sid, "no session id in the metadata");
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM claude_sessions WHERE conversation_id = '%s' "
                           "AND session_id = '%s' AND length(bundle) > 0",
                           c, sid),
                 1);
    /* The node loses its copy of the session: the next turn imports it and resumes. */
    char home[512];
    snprintf(home, sizeof home, "%s/claude/%s", s_work, c);
    nftw(home, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"text\":\"Second answer.\"}]");
    s_post(conv, "again please", false);
    ev = s_event("message.completed", NULL);
    cr_assert_str_eq(s_msg_content(ev), "Second answer.");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    json_t *reqs = llm_fake_requests(&s_fake);
    char *text = json_dumps(json_array_get(reqs, json_array_size(reqs) - 1), JSON_COMPACT);
    cr_assert(strstr(text, "say hi") && strstr(text, "again please"),
              "the resumed session carries the first turn: %.300s", text);
    free(text);
    json_decref(reqs);
    char *sid2 = s_session(conv);
    cr_assert_str_eq(sid2, sid, "the same session goes on");
    free(sid);
    free(sid2);
    nt_assert_gapless(&s_t, conv);
}

static const char s_bash_script[] =
    "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_n1\",\"text\":\"Writing.\","
    "\"arguments\":{\"command\":\"echo hi > out.txt\",\"description\":\"write\"}},"
    "{\"kind\":\"text\",\"text\":\"All done now.\"}]";

static char *s_requested(void)
{
    json_t *ev = s_event("permission.requested", NULL);
    const json_t *req = json_object_get(json_object_get(ev, "action"), "request");
    cr_assert_str_eq(nt_str(req, "tool_name", NULL), "Bash");
    char *id = strdup(nt_str(req, "id", NULL));
    json_decref(ev);
    return id;
}

static void s_decide(const uint8_t conv[16], const char *perm, const char *decision, int want)
{
    char body[256];
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"decision\":\"%s\"}", perm, decision);
    nt_rep_t r = nt_call(&s_t, "perm.decide", conv, body);
    cr_assert_eq(r.status, want, "perm.decide: %d", r.status);
    nt_rep_free(&r);
}

/* Approve then deny one Bash call; the decision reaches the CLI over the channel. */
static void s_approve_then_deny(void)
{
    llm_fake_script(&s_fake, s_bash_script);
    uint8_t conv[16];
    s_post(conv, "write a file", true);
    /* The CLI reports the model's tool_use (tool.started), then asks. */
    json_decref(s_event("tool.started", NULL));
    char *perm = s_requested();
    nt_rep_t r = nt_call(&s_t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "waiting_for_permission");
    nt_rep_free(&r);
    s_decide(conv, perm, "approve", 200);
    json_t *ev = s_event("tool.completed", NULL);
    cr_assert(!json_is_true(json_object_get(json_object_get(ev, "action"), "is_error")));
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    char c[37], path[512];
    util_uuid_format(conv, c);
    snprintf(path, sizeof path, "%s/conversations/%s/out.txt", s_work, c);
    cr_assert_eq(access(path, R_OK), 0, "%s missing", path);
    free(perm);

    /* Denied: the CLI is told, the command does not run. */
    unlink(path);
    llm_fake_script(&s_fake, s_bash_script);
    s_post(conv, "once more", false);
    perm = s_requested();
    s_decide(conv, perm, "deny", 200);
    ev = s_event("tool.completed", NULL);
    cr_assert(json_is_true(json_object_get(json_object_get(ev, "action"), "is_error")));
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    cr_assert_neq(access(path, R_OK), 0, "denied, yet it ran");
    free(perm);
    nt_assert_gapless(&s_t, conv);
}

Test(node_strat_claude, a_tool_call_waits_for_its_permission)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    s_approve_then_deny();
}

Test(node_strat_claude, the_mcp_channel_asks_the_node)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    if (!cc_mcp_binary()) {
        cr_skip_test("bicky-mcp-permission not built next to the tests");
    }
    s_setup_ch(cli, "permission_channel = mcp\n");
    s_approve_then_deny();
    /* Nobody asks in a turn that is not running: 409; a bad question: 400. */
    uint8_t conv[16];
    util_uuid_generate(conv);
    nt_rep_t r = nt_call(&s_t, "permission.ask", conv,
                         "{\"tool_name\":\"Bash\",\"input\":{\"command\":\"true\"}}");
    cr_assert_eq(r.status, 409);
    nt_rep_free(&r);
    r = nt_call(&s_t, "permission.ask", conv, "{\"tool_name\":\"Bash\",\"input\":3}");
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
}

/* Reads the turn's events up to turn.completed: the deltas' texts joined into deltas
   (cap bytes), the content of message.completed (owned) into content. */
static void s_turn_text(char *deltas, size_t cap, char **content)
{
    deltas[0] = '\0';
    *content = NULL;
    char type[64];
    for (int i = 0; i < 10000; i++) {
        json_t *b = NULL;
        long long id = nt_event(&s_t, type, &b, 4 * NT_TIMEOUT);
        cr_assert_geq(id, 0, "the turn did not end");
        if (strcmp(type, "message.delta") == 0) {
            strncat(deltas, nt_str(b, "text", NULL), cap - strlen(deltas) - 1);
        } else if (strcmp(type, "message.completed") == 0) {
            *content = strdup(s_msg_content(b));
        }
        json_decref(b);
        if (strcmp(type, "turn.completed") == 0) {
            return;
        }
    }
}

Test(node_strat_claude, the_texts_of_its_model_calls_are_set_apart)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    /* A rule allows Bash: the CLI's three model calls go without waiting. The first has
       no text, so only the second and the third are set apart. */
    nt_rep_t r = nt_call(&s_t, "rule.create", NULL,
                         "{\"scope\":\"team\",\"tool_pattern\":\"Bash\",\"decision\":\"allow\"}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    llm_fake_script(
        &s_fake, "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_s1\",\"arguments\":"
                 "{\"command\":\"true\",\"description\":\"first\"}},"
                 "{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_s2\",\"text\":\"I "
                 "will check now.\",\"arguments\":{\"command\":\"true\",\"description\":\"two\"}},"
                 "{\"kind\":\"text\",\"text\":\"HELD: all good.\"}]");
    uint8_t conv[16];
    s_post(conv, "check twice", true);
    char deltas[4096], c[37];
    char *content = NULL;
    s_turn_text(deltas, sizeof deltas, &content);
    cr_assert_not_null(content, "no message.completed");
    cr_assert_str_eq(content, "I will check now.\n\nHELD: all good.");
    cr_assert_str_eq(deltas, content, "the deltas concatenate to the stored content");
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&s_t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND role = "
                           "'assistant' AND content = E'I will check now.\\n\\nHELD: all good.'",
                           c),
                 1);
    free(content);
    nt_assert_gapless(&s_t, conv);
}

/* True when one model request of the fake carries both a and b. */
static bool s_asked_with(const char *a, const char *b)
{
    json_t *reqs = llm_fake_requests(&s_fake);
    bool found = false;
    for (size_t i = 0; i < json_array_size(reqs) && !found; i++) {
        char *text = json_dumps(json_object_get(json_array_get(reqs, i), "body"), JSON_COMPACT);
        found = text && strstr(text, a) && strstr(text, b);
        free(text);
    }
    json_decref(reqs);
    return found;
}

/* The node goes away while the Bash call waits for its permission, and comes back. */
static char *s_restart_waiting(uint8_t conv[16], const char *script)
{
    llm_fake_script(&s_fake, script);
    s_post(conv, "write a file", true);
    char *perm = s_requested();
    zactor_destroy(&s_t.node);
    zsock_destroy(&s_t.gw);
    zsock_destroy(&s_t.sub);
    zclock_sleep(300); /* the ZeroMQ I/O thread closes the old listeners */
    nt_start_node(&s_t);
    nt_connect(&s_t);
    zclock_sleep(200);
    nt_rep_t r = nt_call(&s_t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "waiting_for_permission");
    nt_rep_free(&r);
    return perm;
}

static const char s_again_script[] =
    "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_r1\",\"text\":\"Writing.\","
    "\"arguments\":{\"command\":\"echo hi > out.txt\",\"description\":\"write\"}},"
    "{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_r2\",\"text\":\"Again.\","
    "\"arguments\":{\"command\":\"echo hi > out.txt\",\"description\":\"write\"}},"
    "{\"kind\":\"text\",\"text\":\"Written after the restart.\"}]";

Test(node_strat_claude, a_restart_while_waiting_then_approved_resumes)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    uint8_t conv[16];
    char *perm = s_restart_waiting(conv, s_again_script);
    s_decide(conv, perm, "approve", 200);
    /* The session is resumed; the same call is made again and runs without asking. */
    json_t *ev = s_event("tool.completed", NULL);
    cr_assert(!json_is_true(json_object_get(json_object_get(ev, "action"), "is_error")));
    json_decref(ev);
    ev = s_event("message.completed", NULL);
    cr_assert(strstr(s_msg_content(ev), "Written after the restart."), "%s", s_msg_content(ev));
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    char c[37], path[512];
    util_uuid_format(conv, c);
    snprintf(path, sizeof path, "%s/conversations/%s/out.txt", s_work, c);
    cr_assert_eq(access(path, R_OK), 0, "%s missing", path);
    cr_assert_eq(
        nt_sql_ll(&s_t, "SELECT count(*) FROM tool_permissions WHERE conversation_id = '%s'", c), 1,
        "the approved call was not asked again");
    cr_assert(s_asked_with("write a file", "APPROVED: Bash"), "the resumed session is told");
    free(perm);
    nt_assert_gapless(&s_t, conv);
}

Test(node_strat_claude, a_restart_while_waiting_then_denied_resumes)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    uint8_t conv[16];
    char *perm = s_restart_waiting(
        conv, "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_d1\",\"arguments\":"
              "{\"command\":\"echo hi > out.txt\"}},{\"kind\":\"text\",\"text\":\"Fine, I "
              "will not write it.\"}]");
    char body[256];
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"decision\":\"deny\",\"reason\":\"no files\"}",
             perm);
    nt_rep_t r = nt_call(&s_t, "perm.decide", conv, body);
    cr_assert_eq(r.status, 200);
    nt_rep_free(&r);
    json_t *ev = s_event("message.completed", NULL);
    cr_assert_str_eq(s_msg_content(ev), "Fine, I will not write it.");
    json_decref(ev);
    json_decref(s_event("turn.completed", NULL));
    char c[37], path[512];
    util_uuid_format(conv, c);
    snprintf(path, sizeof path, "%s/conversations/%s/out.txt", s_work, c);
    cr_assert_neq(access(path, R_OK), 0, "denied, yet it ran");
    cr_assert(s_asked_with("write a file", "DENIED: Bash"), "the resumed session is told");
    cr_assert(s_asked_with("DENIED: Bash", "no files"), "with the reason");
    free(perm);
    nt_assert_gapless(&s_t, conv);
}

/* While a turn runs, its transcript is checkpointed in Postgres after each completed step
   (turn_message_id = the running turn's user message), before the turn ends. */
Test(node_strat_claude, a_running_turn_is_checkpointed_in_postgres)
{
    CC_REQUIRE_CLI(cli, s_nothing);
    s_setup(cli);
    llm_fake_script(&s_fake, "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_c1\","
                             "\"arguments\":{\"command\":\"echo step-one-output\"}},"
                             "{\"kind\":\"stalled\",\"stall_s\":100}]");
    uint8_t conv[16];
    s_post(conv, "two steps", true);
    json_decref(s_event("tool.completed", NULL));
    char c[37];
    util_uuid_format(conv, c);
    /* Wait (bounded by the suite's timeout) for the checkpoint holding the first step. */
    long long n = 0;
    while ((n = nt_sql_ll(&s_t,
                          "SELECT count(*) FROM claude_sessions s WHERE s.conversation_id = '%s' "
                          "AND s.turn_message_id = (SELECT id FROM messages WHERE "
                          "conversation_id = s.conversation_id AND role = 'user') AND "
                          "position('step-one-output' in convert_from(s.bundle, 'UTF8')) > 0",
                          c)) == 0) {
        zclock_sleep(100);
    }
    cr_assert_eq(n, 1);
    nt_rep_t r = nt_call(&s_t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "processing", "the turn still runs");
    nt_rep_free(&r);
}
