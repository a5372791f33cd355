/*  test_agent_claude — the claude-code engine with the real Claude Code CLI
    against tests/fixtures/fake_llm.py, on a real zloop: a streamed turn, a
    tool_use allowed and denied over --permission-prompt-tool stdio, cancel
    during a tool (no process left), Bicky's timeout, resume after exporting
    the session and importing it into a fresh HOME and cwd, and the MCP
    permission channel end to end. Without the CLI those tests skip; the
    error paths (spawn failures, non-CLI output, exit without result) and
    the runner's destroy run with ordinary programs. The session helpers
    have their own file, test_agent_claude_session.c. */
#include "common/wire.h"
#include "tests/fixtures/claude_cli.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>

static llm_fake_t s_fake;
static bool s_fake_up;
static zloop_t *s_loop;
static agent_relay_t *s_relay;
static agent_claude_t *s_cc;
static cc_dirs_t s_dirs;
static cc_rec_t s_rec;
static char s_base_url[64];

static void s_setup(void)
{
    util_signals_install();
    cc_dirs_make(&s_dirs);
    s_loop = zloop_new();
    s_relay = agent_relay_new(NULL);
    cr_assert_not_null(s_relay);
    s_cc = agent_claude_new(s_loop, s_relay);
    cr_assert_not_null(s_cc);
    memset(&s_rec, 0, sizeof s_rec);
    s_rec.loop = s_loop;
}

static void s_teardown(void)
{
    agent_claude_destroy(&s_cc);
    cr_assert_null(s_cc);
    agent_relay_destroy(&s_relay);
    cr_assert_null(s_relay);
    zloop_destroy(&s_loop);
    if (s_fake_up) {
        llm_fake_stop(&s_fake);
    }
    cc_rm_rf(s_dirs.root);
}

TestSuite(agent_claude, .init = s_setup, .fini = s_teardown, .timeout = 90);

static void s_fake_start(void)
{
    llm_fake_start(&s_fake);
    s_fake_up = true;
    snprintf(s_base_url, sizeof s_base_url, "http://127.0.0.1:%d", s_fake.port);
}

static const char *const s_tools[] = {"Bash", "Read", NULL};

static agent_claude_params_t s_params(const char *cli, const char *prompt)
{
    return (agent_claude_params_t){.command = cli,
                                   .cwd = s_dirs.wd,
                                   .home = s_dirs.home,
                                   .prompt = prompt,
                                   .model = "fake-model",
                                   .tools = s_tools,
                                   .timeout_s = 60,
                                   .base_url = s_base_url,
                                   .api_key = "sk-test-claude"};
}

static void s_start(const agent_claude_params_t *p)
{
    char err[512] = "";
    s_rec.run = agent_claude_start(s_cc, p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "start: %s", err);
}

static bool s_all_reaped(void *arg)
{
    return agent_claude_active(s_cc) == 0;
}

/* Runs until the run ended and its process is reaped. */
static void s_run_to_end(int max_ms)
{
    pid_t pid = agent_claude_pid(s_rec.run);
    cc_drive(s_loop, cc_rec_ended, &s_rec, max_ms);
    cc_drive(s_loop, s_all_reaped, NULL, 10000);
    cr_assert_eq(kill(pid, 0), -1, "the CLI is gone");
    cr_assert_eq(errno, ESRCH);
    cr_assert_eq(s_rec.after_end, 0, "one terminal callback");
}

static const char s_write_script[] =
    "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"id\":\"toolu_w1\",\"text\":\"Let me write it.\","
    "\"arguments\":{\"command\":\"echo hi > out.txt\",\"description\":\"write\"}},"
    "{\"kind\":\"text\",\"text\":\"All done now.\"}]";

static bool s_file_says_hi(void)
{
    char path[PATH_MAX + 16], buf[16] = "";
    snprintf(path, sizeof path, "%s/out.txt", s_dirs.wd);
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, "hi\n") == 0;
}

Test(agent_claude, streams_a_turn)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"text\":\"Hello from the fake model.\","
                             "\"usage\":{\"input_tokens\":21,\"output_tokens\":7}}]");
    uint8_t sid[16];
    char sid_text[UTIL_UUID_STR_LEN + 1];
    util_uuid_generate(sid);
    util_uuid_format(sid, sid_text);
    agent_claude_params_t p = s_params(cli, "say hi");
    p.session_id = sid_text;
    s_start(&p);
    s_run_to_end(30000);
    cr_assert(s_rec.done, "failed: %s", s_rec.reason);
    cr_assert_eq(s_rec.inits, 1);
    cr_assert_str_eq(s_rec.session, sid_text);
    cr_assert_str_eq(s_rec.res_session, sid_text);
    cr_assert_str_eq(s_rec.text, "Hello from the fake model.");
    cr_assert_geq(s_rec.text_calls, 2, "streamed in pieces");
    cr_assert_eq(s_rec.message_starts, 1, "one model call");
    cr_assert_str_eq(s_rec.res_text, "Hello from the fake model.");
    cr_assert_str_eq(s_rec.res_subtype, "success");
    cr_assert_not(s_rec.res_is_error);
    cr_assert_eq(s_rec.in_tok, 21);
    cr_assert_eq(s_rec.out_tok, 7);
    cr_assert_gt(s_rec.cost, 0.0);
    cr_assert_eq(s_rec.exit_status, 0);
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 1);
    json_t *req = json_array_get(reqs, 0);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(req, "headers"), "x-api-key")),
        "sk-test-claude");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(req, "body"), "model")),
                     "fake-model");
    json_decref(reqs);
    char path[PATH_MAX];
    cr_assert_eq(agent_claude_session_path(s_dirs.home, s_dirs.wd, sid_text, path, sizeof path), 0);
    cr_assert_eq(access(path, R_OK), 0, "transcript at %s", path);
}

Test(agent_claude, permission_allowed_runs_the_tool)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake, s_write_script);
    s_rec.policy = "allow";
    agent_claude_params_t p = s_params(cli, "write hi to out.txt");
    s_start(&p);
    s_run_to_end(30000);
    cr_assert(s_rec.done, "failed: %s", s_rec.reason);
    cr_assert_eq(s_rec.perms, 1);
    cr_assert_str_eq(s_rec.perm_tool[0], "Bash");
    cr_assert_str_eq(s_rec.perm_command[0], "echo hi > out.txt");
    cr_assert_eq(s_rec.started, 1);
    cr_assert_str_eq(s_rec.tool_name[0], "Bash");
    cr_assert_eq(s_rec.completed, 1);
    cr_assert_not(s_rec.tool_error[0], "tool result: %s", s_rec.tool_content[0]);
    cr_assert(s_file_says_hi());
    /* The engine passes the text as the CLI streams it; the start of each model call
       tells its caller where one call's text ends (node_strat_claude.c sets them apart). */
    cr_assert_str_eq(s_rec.text, "Let me write it.All done now.");
    cr_assert_str_eq(s_rec.res_text, "All done now.");
    cr_assert_eq(s_rec.turns, 2);
    cr_assert_eq(s_rec.message_starts, 2, "a message_start per model call");
    cr_assert_eq(s_rec.denials, 0);
}

Test(agent_claude, permission_denied_goes_on)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake, s_write_script);
    s_rec.policy = "deny";
    agent_claude_params_t p = s_params(cli, "write hi to out.txt");
    s_start(&p);
    s_run_to_end(30000);
    cr_assert(s_rec.done, "failed: %s", s_rec.reason);
    cr_assert_eq(s_rec.perms, 1);
    cr_assert_eq(s_rec.completed, 1);
    cr_assert(s_rec.tool_error[0]);
    cr_assert_str_eq(s_rec.tool_content[0], "nope");
    cr_assert_not(s_file_says_hi());
    cr_assert_str_eq(s_rec.res_text, "All done now.");
    cr_assert_not(s_rec.res_is_error);
    cr_assert_eq(s_rec.denials, 1);
    /* The model saw the denial as the tool result. */
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 2);
    char *second = json_dumps(json_array_get(reqs, 1), JSON_COMPACT);
    cr_assert_not_null(strstr(second, "\"tool_result\""));
    cr_assert_not_null(strstr(second, "nope"));
    free(second);
    json_decref(reqs);
}

Test(agent_claude, cancel_during_a_tool_kills_the_group)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake,
                    "[{\"kind\":\"tool_call\",\"name\":\"Bash\",\"arguments\":{\"command\":"
                    "\"sleep 29.713 > out.txt\",\"description\":\"wait\"}},"
                    "{\"kind\":\"text\",\"text\":\"never\"}]");
    s_rec.policy = "allow";
    s_rec.cancel_after_allow_ms = 700;
    agent_claude_params_t p = s_params(cli, "wait a while");
    s_start(&p);
    pid_t pid = agent_claude_pid(s_rec.run);
    cc_drive(s_loop, cc_rec_ended, &s_rec, 30000);
    cr_assert(s_rec.cancelled);
    cr_assert_not(s_rec.done || s_rec.failed, "no callback after cancel");
    int64_t ms = cc_drive(s_loop, s_all_reaped, NULL, 10000);
    cr_assert_lt(ms, AGENT_CLAUDE_KILL_GRACE_MS + 1000);
    cr_assert_eq(kill(pid, 0), -1);
    cr_assert_eq(errno, ESRCH);
    cr_assert_not(cc_process_with("sleep 29.713"), "the tool's process is gone too");
}

/* A "CLI" that ignores the interrupt and SIGTERM and leaves a process in a
   session of its own (as the real CLI does with its Bash tool). */
Test(agent_claude, stubborn_process_tree_is_killed)
{
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/stubborn.sh", s_dirs.root);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\ntrap '' TERM\nsetsid sleep 29.714 </dev/null >/dev/null 2>&1 &\n"
          "exec sleep 60\n",
          f);
    fclose(f);
    chmod(script, 0700);
    agent_claude_params_t p = s_params(script, "hi");
    s_start(&p);
    pid_t pid = agent_claude_pid(s_rec.run);
    for (int i = 0; i < 200 && !cc_process_with("sleep 29.714"); i++) {
        usleep(10000);
    }
    cr_assert(cc_process_with("sleep 29.714"));
    agent_claude_cancel(&s_rec.run);
    int64_t ms = cc_drive(s_loop, s_all_reaped, NULL, 10000);
    cr_assert_geq(ms, AGENT_CLAUDE_INTERRUPT_MS + AGENT_CLAUDE_KILL_GRACE_MS - 100);
    cr_assert_eq(kill(pid, 0), -1);
    for (int i = 0; i < 100 && cc_process_with("sleep 29.714"); i++) {
        usleep(10000); /* SIGKILL is delivered asynchronously */
    }
    cr_assert_not(cc_process_with("sleep 29.714"), "the descendant in its own session is gone");
    cr_assert_not(s_rec.done || s_rec.failed);
}

Test(agent_claude, cancel_while_asking)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake, s_write_script);
    s_rec.policy = "cancel";
    agent_claude_params_t p = s_params(cli, "write hi");
    s_start(&p);
    pid_t pid = agent_claude_pid(s_rec.run);
    cc_drive(s_loop, cc_rec_ended, &s_rec, 30000);
    cc_drive(s_loop, s_all_reaped, NULL, 10000);
    cr_assert_eq(s_rec.perms, 1);
    cr_assert_not(s_rec.done || s_rec.failed);
    cr_assert_eq(kill(pid, 0), -1);
    cr_assert_not(s_file_says_hi());
}

Test(agent_claude, timeout_kills_the_run)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"text\":\"one two three four\","
                             "\"stall_s\":30}]");
    agent_claude_params_t p = s_params(cli, "stall");
    p.timeout_s = 2;
    s_start(&p);
    int64_t t0 = util_mono_ms();
    s_run_to_end(20000);
    cr_assert(s_rec.failed);
    cr_assert_str_eq(s_rec.reason, "timeout");
    int64_t ms = util_mono_ms() - t0;
    cr_assert(ms >= 1900 && ms < 2000 + AGENT_CLAUDE_KILL_GRACE_MS + 2000, "took %lld ms",
              (long long)ms);
}

/* The content of a request's messages as one JSON text (caller frees). */
static char *s_messages_text(json_t *reqs, size_t i)
{
    json_t *body = json_object_get(json_array_get(reqs, i), "body");
    return json_dumps(json_object_get(body, "messages"), JSON_COMPACT);
}

Test(agent_claude, resume_after_export_and_import_elsewhere)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    s_fake_start();
    agent_claude_params_t p = s_params(cli, "first turn question");
    s_start(&p);
    s_run_to_end(30000);
    cr_assert(s_rec.done, "turn 1 failed: %s", s_rec.reason);
    cr_assert_str_eq(s_rec.res_text, "You said: first turn question");
    char sid[80], err[512];
    snprintf(sid, sizeof sid, "%s", s_rec.res_session);
    cr_assert(agent_claude_session_id_valid(sid));
    char *bundle = NULL;
    size_t len = 0;
    cr_assert_eq(
        agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 0, &bundle, &len, err, sizeof err),
        0, "%s", err);
    cc_rm_rf(s_dirs.home); /* the old node is gone */
    cr_assert_eq(
        agent_claude_session_import(s_dirs.home2, s_dirs.wd2, sid, bundle, len, err, sizeof err), 0,
        "%s", err);
    free(bundle);
    free(llm_fake_call(&s_fake, "POST", "/_reset", "{}"));
    memset(&s_rec, 0, sizeof s_rec);
    s_rec.loop = s_loop;
    p = s_params(cli, "second turn");
    p.home = s_dirs.home2;
    p.cwd = s_dirs.wd2;
    p.resume_session_id = sid;
    s_start(&p);
    s_run_to_end(30000);
    cr_assert(s_rec.done, "turn 2 failed: %s", s_rec.reason);
    cr_assert_not(s_rec.res_is_error, "%s", s_rec.res_text);
    cr_assert_str_eq(s_rec.res_session, sid);
    cr_assert_str_eq(s_rec.res_text, "You said: second turn");
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 1);
    char *msgs = s_messages_text(reqs, 0);
    cr_assert_not_null(strstr(msgs, "first turn question"), "history resent: %.400s", msgs);
    cr_assert_not_null(strstr(msgs, "You said: first turn question"));
    cr_assert_not_null(strstr(msgs, "second turn"));
    free(msgs);
    json_decref(reqs);
}

/* --- the MCP permission channel, end to end ---------------------------- */

typedef struct {
    zsock_t *router; /* the test's stand-in for the node */
    int questions;   /* permission.ask requests seen */
    char conv[40];   /* their conversation_id */
    char tool[32];   /* their tool_name */
} s_node_t;

static int s_on_node_req(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_node_t *n = arg;
    zframe_t *who = NULL;
    proto_msg_t req;
    if (wire_recv(sock, &who, &req, "test") < 0) {
        return 0;
    }
    json_t *body = json_loads(req.body ? req.body : "", 0, NULL);
    n->questions++;
    snprintf(n->conv, sizeof n->conv, "%s",
             json_string_value(json_object_get(body, "conversation_id")));
    snprintf(n->tool, sizeof n->tool, "%s", json_string_value(json_object_get(body, "tool_name")));
    json_t *dec = json_pack("{s:s, s:O}", "behavior", "allow", "updatedInput",
                            json_object_get(body, "input"));
    char *text = json_dumps(dec, JSON_COMPACT);
    proto_msg_t rep = {.v = PROTO_VERSION,
                       .type = PROTO_API_REP,
                       .req_id = req.req_id,
                       .status = 200,
                       .body = text};
    cr_assert_eq(strcmp(req.op, "permission.ask"), 0);
    wire_send(sock, who, &rep);
    free(text);
    json_decref(dec);
    json_decref(body);
    zframe_destroy(&who);
    proto_msg_reset(&req);
    return 0;
}

Test(agent_claude, mcp_channel_end_to_end)
{
    CC_REQUIRE_CLI(cli, s_teardown);
    const char *mcp = cc_mcp_binary();
    if (!mcp) {
        s_teardown();
        cr_skip_test("bicky-mcp-permission not built next to the tests");
    }
    s_fake_start();
    llm_fake_script(&s_fake, s_write_script);
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc://@bicky-cc-test-%d", (int)getpid());
    s_node_t node = {.router = zsock_new_router(endpoint)};
    cr_assert_not_null(node.router);
    zsock_set_rcvtimeo(node.router, 500);
    cr_assert_eq(zloop_reader(s_loop, node.router, s_on_node_req, &node), 0);
    const char *conv = "6f1c0a52-6a57-4a8e-9d7c-5f7d2e0b3b11";
    agent_claude_params_t p = s_params(cli, "write hi to out.txt");
    p.permission_channel = AGENT_CLAUDE_PERM_MCP;
    p.mcp = (agent_claude_mcp_t){
        .command = mcp, .endpoint = endpoint, .conversation_id = conv, .timeout_s = 30};
    s_start(&p);
    s_run_to_end(45000);
    zloop_reader_end(s_loop, node.router);
    zsock_destroy(&node.router);
    cr_assert(s_rec.done, "failed: %s", s_rec.reason);
    cr_assert_eq(s_rec.perms, 0, "no stdio prompt on the mcp channel");
    cr_assert_eq(node.questions, 1);
    cr_assert_str_eq(node.conv, conv);
    cr_assert_str_eq(node.tool, "Bash");
    cr_assert(s_file_says_hi());
    cr_assert_str_eq(s_rec.res_text, "All done now.");
    cr_assert_not(cc_process_with(mcp), "the MCP server exited with the CLI");
}

/* --- without the CLI: error paths --------------------------------------- */

Test(agent_claude, start_refuses_bad_params)
{
    char err[512];
    agent_claude_params_t p = s_params("/bin/true", "hi");
    p.cwd = "/nonexistent/bicky";
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    cr_assert_not_null(strstr(err, "cwd"), "%s", err);
    p = s_params("/nonexistent/claude", "hi");
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    cr_assert_not_null(strstr(err, "cannot run"), "%s", err);
    p = s_params("/bin/true", NULL);
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    p = s_params("/bin/true", "hi");
    p.resume_session_id = "../../etc";
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    const char *bad_tools[] = {"Bash,Read", NULL};
    p = s_params("/bin/true", "hi");
    p.tools = bad_tools;
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    p = s_params("/bin/true", "hi");
    p.permission_channel = AGENT_CLAUDE_PERM_MCP;
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    cr_assert_eq(agent_claude_active(s_cc), 0);
}

Test(agent_claude, exit_without_result_is_an_error)
{
    agent_claude_params_t p = s_params("/bin/false", "hi");
    s_start(&p);
    s_run_to_end(10000);
    cr_assert(s_rec.failed);
    cr_assert_not_null(strstr(s_rec.reason, "status 1 without a result"), "%s", s_rec.reason);
}

Test(agent_claude, non_json_output_is_malformed)
{
    agent_claude_params_t p = s_params("/bin/echo", "hi");
    s_start(&p);
    s_run_to_end(10000);
    cr_assert(s_rec.failed);
    cr_assert_not_null(strstr(s_rec.reason, "malformed claude output line"), "%s", s_rec.reason);
}

Test(agent_claude, oversized_line_fails)
{
    agent_claude_params_t p = s_params("/bin/echo", "hi");
    p.max_line = 16;
    s_start(&p);
    s_run_to_end(10000);
    cr_assert(s_rec.failed);
    cr_assert_not_null(strstr(s_rec.reason, "longer than 16 bytes"), "%s", s_rec.reason);
}

/* A stand-in CLI that ignores its arguments and echoes stdin. */
static const char *s_cat_script(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cat.sh", s_dirs.root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\nexec cat\n", f);
    fclose(f);
    chmod(path, 0700);
    return path;
}

Test(agent_claude, reply_to_unknown_request_fails)
{
    agent_claude_params_t p = s_params(s_cat_script(), "hi");
    s_start(&p);
    cr_assert_eq(agent_claude_permission_reply(s_rec.run, "nope", true, NULL, NULL), -1);
    pid_t pid = agent_claude_pid(s_rec.run);
    agent_claude_cancel(&s_rec.run);
    cr_assert_null(s_rec.run);
    cc_drive(s_loop, s_all_reaped, NULL, 10000);
    cr_assert_eq(kill(pid, 0), -1);
}

static bool s_after_50ms(void *arg)
{
    return util_mono_ms() >= *(int64_t *)arg;
}

Test(agent_claude, destroy_kills_live_runs)
{
    agent_claude_params_t p = s_params(s_cat_script(), "hi");
    s_start(&p);
    pid_t pid = agent_claude_pid(s_rec.run);
    int64_t until = util_mono_ms() + 50;
    cc_drive(s_loop, s_after_50ms, &until, 5000);
    cr_assert_eq(agent_claude_active(s_cc), 1, "failed=%d reason=%s", s_rec.failed, s_rec.reason);
    int64_t t0 = util_mono_ms();
    agent_claude_destroy(&s_cc);
    cr_assert_null(s_cc);
    agent_relay_destroy(&s_relay);
    cr_assert_null(s_relay);
    cr_assert_lt(util_mono_ms() - t0, 1000);
    cr_assert_eq(kill(pid, 0), -1, "killed and reaped");
    cr_assert_not(s_rec.done || s_rec.failed, "no callbacks from destroy");
}
