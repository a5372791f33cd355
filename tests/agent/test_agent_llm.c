/*  test_agent_llm — the streaming chat client against the real fake_llm.py
    (started per test), driven through a real zloop and curl multi: for the
    OpenAI and the Anthropic API each, plain answers, tool calls assembled
    from fragments, two tool calls, malformed/stalled/truncated streams,
    429/500 with the provider's message, the request JSON sent, an agent loop
    that starts turn 2 from inside on_done, and cancellation. */
#include "node/agent/agent_llm.h"

#include "common/util.h"
#include "tests/fixtures/llm_fake.h"

#include <criterion/criterion.h>
#include <czmq.h>

typedef struct {
    char text[8192];                       /* concatenated text deltas */
    int text_calls;                        /* on_text calls */
    int ntools;                            /* on_tool_call calls */
    char tool_id[4][64], tool_name[4][64]; /* their ids and names */
    json_t *tool_args[4];                  /* their arguments (kept) */
    bool done, failed;                     /* how it ended */
    char stop[32];                         /* stop reason */
    agent_llm_usage_t usage;               /* usage */
    agent_llm_error_t err;                 /* error */
    int cancel_after_text;                 /* cancel from on_text after n calls */
    agent_llm_request_t *req;              /* the request while running */
} s_result_t;

static llm_fake_t s_fake;
static zloop_t *s_loop;
static agent_http_t *s_http;
static cfg_file_t *s_cfg;
static bool s_deadline_hit;

static void s_setup(void)
{
    llm_fake_start(&s_fake);
    setenv("BICKY_TEST_LLM_KEY", "sk-test-secret", 1);
    s_loop = zloop_new();
    s_http = agent_http_new(s_loop);
    cr_assert_not_null(s_http);
}

static void s_teardown(void)
{
    agent_http_destroy(&s_http);
    zloop_destroy(&s_loop);
    cfg_file_destroy(&s_cfg);
    llm_fake_stop(&s_fake);
}

TestSuite(agent_llm, .init = s_setup, .fini = s_teardown, .timeout = 30);

static void s_on_text(void *arg, const char *text, size_t len)
{
    s_result_t *r = arg;
    cr_assert_eq(strlen(text), len);
    strncat(r->text, text, sizeof r->text - strlen(r->text) - 1);
    if (++r->text_calls == r->cancel_after_text) {
        agent_llm_cancel(&r->req);
    }
}

static void s_on_tool_call(void *arg, const char *id, const char *name, json_t *args)
{
    s_result_t *r = arg;
    cr_assert_lt(r->ntools, 4);
    snprintf(r->tool_id[r->ntools], 64, "%s", id);
    snprintf(r->tool_name[r->ntools], 64, "%s", name);
    r->tool_args[r->ntools++] = json_incref(args);
}

static void s_on_done(void *arg, const char *stop, const agent_llm_usage_t *usage)
{
    s_result_t *r = arg;
    cr_assert_not(r->done || r->failed, "one terminal callback only");
    r->done = true;
    snprintf(r->stop, sizeof r->stop, "%s", stop);
    r->usage = *usage;
    r->req = NULL;
}

static void s_on_error(void *arg, const agent_llm_error_t *err)
{
    s_result_t *r = arg;
    cr_assert_not(r->done || r->failed, "one terminal callback only");
    r->failed = true;
    r->err = *err;
    r->req = NULL;
}

static const agent_llm_callbacks_t s_cb = {s_on_text, s_on_tool_call, s_on_done, s_on_error};

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_result_t *r = arg;
    return r->done || r->failed || (!r->req && r->cancel_after_text) ? -1 : 0;
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    s_deadline_hit = true;
    return -1;
}

/* Runs the loop until r ends (or max_ms passes); returns the elapsed ms. */
static int64_t s_run(s_result_t *r, int max_ms)
{
    int64_t t0 = util_mono_ms();
    int tick = zloop_timer(s_loop, 5, 0, s_on_tick, r);
    int deadline = zloop_timer(s_loop, (size_t)max_ms, 1, s_on_deadline, r);
    zloop_start(s_loop);
    zloop_timer_end(s_loop, tick);
    zloop_timer_end(s_loop, deadline);
    return util_mono_ms() - t0;
}

static json_t *s_history(const char *user_text)
{
    return json_pack("[{s:s, s:s}]", "role", "user", "content", user_text);
}

/* Starts one call with strategy "s" and the given history (taken). */
static void s_start(s_result_t *r, json_t *messages, json_t *tools)
{
    agent_llm_params_t p = {
        .strategy = cfg_file_strategy(s_cfg, "s"),
        .api_key = cfg_strategy_api_key(cfg_file_strategy(s_cfg, "s")),
        .messages = messages,
        .tools = tools,
    };
    agent_llm_error_t err;
    r->req = agent_llm_start(s_http, &p, &s_cb, r, &err);
    cr_assert_not_null(r->req, "start failed: %s", err.reason);
    json_decref(messages);
    json_decref(tools);
}

static void s_result_free(s_result_t *r)
{
    for (int i = 0; i < r->ntools; i++) {
        json_decref(r->tool_args[i]);
    }
}

/* One call: configure, script, start, run; r is filled. */
static int64_t
s_call(s_result_t *r, cfg_strategy_kind_t kind, const char *extra, const char *script)
{
    s_cfg = llm_fake_config(&s_fake, kind, extra);
    if (script) {
        llm_fake_script(&s_fake, script);
    }
    s_start(r, s_history("Hello there"), NULL);
    int64_t ms = s_run(r, 20000);
    cr_assert_not(s_deadline_hit, "the request never ended");
    return ms;
}

#define BOTH(name)                                                                                 \
    static void s_##name(cfg_strategy_kind_t kind);                                                \
    Test(agent_llm, openai_##name)                                                                 \
    {                                                                                              \
        s_##name(CFG_STRATEGY_OPENAI);                                                             \
    }                                                                                              \
    Test(agent_llm, anthropic_##name)                                                              \
    {                                                                                              \
        s_##name(CFG_STRATEGY_ANTHROPIC);                                                          \
    }                                                                                              \
    static void s_##name(cfg_strategy_kind_t kind)

BOTH(plain_answer_in_several_deltas)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"text\",\"text\":\"The quick brown fox jumps\"}]");
    cr_assert(r.done, "failed: %s", r.err.reason);
    cr_assert_str_eq(r.text, "The quick brown fox jumps");
    cr_assert_geq(r.text_calls, 5);
    cr_assert_str_eq(r.stop, "end_turn");
    cr_assert_eq(r.ntools, 0);
    cr_assert_eq(r.usage.input_tokens, 11);
    cr_assert_eq(r.usage.output_tokens, 5);
    cr_assert_eq(agent_http_active(s_http), 0);
}

BOTH(default_answer_echoes_the_user)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, NULL);
    cr_assert(r.done, "failed: %s", r.err.reason);
    cr_assert_str_eq(r.text, "You said: Hello there");
}

BOTH(tool_call_with_arguments_in_fragments)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL,
           "[{\"kind\":\"tool_call\",\"name\":\"read_file\",\"id\":\"call_abc\","
           "\"text\":\"Let me look.\",\"arguments\":{\"path\":\"src/main.c\",\"limit\":20,"
           "\"note\":\"quotes \\\" and, commas\"}}]");
    cr_assert(r.done, "failed: %s", r.err.reason);
    cr_assert_str_eq(r.text, "Let me look.");
    cr_assert_eq(r.ntools, 1);
    cr_assert_str_eq(r.tool_id[0], "call_abc");
    cr_assert_str_eq(r.tool_name[0], "read_file");
    cr_assert_str_eq(json_string_value(json_object_get(r.tool_args[0], "path")), "src/main.c");
    cr_assert_eq(json_integer_value(json_object_get(r.tool_args[0], "limit")), 20);
    cr_assert_str_eq(json_string_value(json_object_get(r.tool_args[0], "note")),
                     "quotes \" and, commas");
    cr_assert_str_eq(r.stop, "tool_use");
    s_result_free(&r);
}

BOTH(two_tool_calls_at_once)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"two_tool_calls\"}]");
    cr_assert(r.done, "failed: %s", r.err.reason);
    cr_assert_eq(r.ntools, 2);
    cr_assert_str_eq(r.tool_name[0], "read_file");
    cr_assert_str_eq(json_string_value(json_object_get(r.tool_args[0], "path")), "README.md");
    cr_assert_str_eq(r.tool_name[1], "list_directory");
    cr_assert_str_eq(json_string_value(json_object_get(r.tool_args[1], "path")), ".");
    cr_assert(r.tool_id[0][0] && r.tool_id[1][0]);
    cr_assert_str_neq(r.tool_id[0], r.tool_id[1]);
    cr_assert_str_eq(r.stop, "tool_use");
    s_result_free(&r);
}

BOTH(malformed_stream_is_an_error)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"malformed\"}]");
    cr_assert(r.failed, "a malformed stream must fail");
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_PROTOCOL);
    cr_assert(strstr(r.err.reason, "malformed JSON"), "%s", r.err.reason);
    cr_assert_str_eq(r.text, "Hello from ", "deltas before the bad chunk arrived");
    cr_assert_eq(r.ntools, 0);
}

BOTH(stalled_stream_times_out)
{
    s_result_t r = {0};
    int64_t ms = s_call(&r, kind, "timeout_s = 30\nstall_timeout_s = 1\n",
                        "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    cr_assert(r.failed, "a stalled stream must fail");
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_TIMEOUT, "%s", r.err.reason);
    cr_assert(strstr(r.err.reason, "timeout"), "%s", r.err.reason);
    cr_assert_geq(ms, 900, "took %ld ms", (long)ms);
    cr_assert_leq(ms, 3500, "took %ld ms", (long)ms);
    cr_assert_str_eq(r.text, "Hello from ");
}

Test(agent_llm, overall_timeout_bounds_the_call)
{
    s_result_t r = {0};
    int64_t ms = s_call(&r, CFG_STRATEGY_OPENAI, "timeout_s = 2\n",
                        "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_TIMEOUT, "%s", r.err.reason);
    cr_assert_geq(ms, 1900, "took %ld ms", (long)ms);
    cr_assert_leq(ms, 4500, "took %ld ms", (long)ms);
}

BOTH(http_429_carries_the_provider_message)
{
    s_result_t r = {0};
    s_call(
        &r, kind, NULL,
        "[{\"kind\":\"http_error\",\"status\":429,\"message\":\"Rate limit reached for fake\"}]");
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_HTTP);
    cr_assert_eq(r.err.http_status, 429);
    cr_assert_str_eq(r.err.reason, "HTTP 429: Rate limit reached for fake");
    cr_assert_str_eq(r.text, "");
}

BOTH(http_500_carries_the_provider_message)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL,
           "[{\"kind\":\"http_error\",\"status\":500,\"message\":\"fake internal error\"}]");
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_HTTP);
    cr_assert_eq(r.err.http_status, 500);
    cr_assert_str_eq(r.err.reason, "HTTP 500: fake internal error");
}

BOTH(truncated_stream_is_an_error)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"truncated\"}]");
    cr_assert(r.failed, "a stream without its end marker must fail");
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_PROTOCOL);
    cr_assert(strstr(r.err.reason, kind == CFG_STRATEGY_OPENAI ? "ended before [DONE]"
                                                               : "ended before message_stop"),
              "%s", r.err.reason);
    cr_assert_str_eq(r.text, "Hello from ");
}

BOTH(connection_closed_mid_body_is_an_error)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"truncated\",\"abrupt\":true}]");
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_NETWORK, "%s", r.err.reason);
}

Test(agent_llm, connection_refused_is_an_error)
{
    s_result_t r = {0};
    s_cfg = llm_fake_config(&s_fake, CFG_STRATEGY_OPENAI, NULL);
    llm_fake_stop(&s_fake);
    s_start(&r, s_history("anyone?"), NULL);
    s_run(&r, 10000);
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_NETWORK, "%s", r.err.reason);
    cr_assert_eq(r.err.http_status, 0);
}

/* --- what is sent ----------------------------------------------------------- */

static json_t *s_full_history(void)
{
    return json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s, s:[{s:s, s:s, s:{s:s}}]},"
                     " {s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:b}, {s:s, s:s}, {s:s, s:s}]",
                     "role", "system", "content", "Conversation note.", "role", "user", "content",
                     "List the files", "role", "assistant", "content", "", "tool_calls", "id",
                     "call_1", "name", "list_directory", "arguments", "path", ".", "role", "tool",
                     "tool_call_id", "call_1", "content", "a.c\nb.c", "role", "tool",
                     "tool_call_id", "call_2", "content", "denied", "name", "x", "is_error", 1,
                     "role", "assistant", "content", "There are two files.", "role", "user",
                     "content", "Now read a.c");
}

static json_t *s_tools(void)
{
    return json_pack("[{s:s, s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}]", "name", "read_file",
                     "description", "Read a file", "input_schema", "type", "object", "properties",
                     "path", "type", "string", "required", "path");
}

static json_t *s_sent_body(size_t i)
{
    json_t *reqs = llm_fake_requests(&s_fake);
    json_t *body = json_incref(json_object_get(json_array_get(reqs, i), "body"));
    cr_assert(json_is_object(body), "request %zu not recorded", i);
    json_decref(reqs);
    return body;
}

#define JS(obj, key) json_string_value(json_object_get((obj), (key)))

Test(agent_llm, openai_request_carries_history_tools_and_stream)
{
    s_result_t r = {0};
    s_cfg = llm_fake_config(&s_fake, CFG_STRATEGY_OPENAI,
                            "system_prompt = Be brief.\nmax_tokens = 77\ntemperature = 0.5\n");
    s_start(&r, s_full_history(), s_tools());
    s_run(&r, 10000);
    cr_assert(r.done, "%s", r.err.reason);
    json_t *reqs = llm_fake_requests(&s_fake);
    json_t *req = json_array_get(reqs, 0);
    cr_assert_str_eq(JS(req, "path"), "/v1/chat/completions");
    json_t *hdr = json_object_get(req, "headers");
    cr_assert_str_eq(JS(hdr, "authorization"), "Bearer sk-test-secret");
    cr_assert_str_eq(JS(hdr, "content-type"), "application/json");
    json_t *b = json_object_get(req, "body");
    cr_assert(json_is_true(json_object_get(b, "stream")));
    cr_assert(json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage")));
    cr_assert_str_eq(JS(b, "model"), "fake-model");
    cr_assert_eq(json_integer_value(json_object_get(b, "max_tokens")), 77);
    cr_assert_float_eq(json_real_value(json_object_get(b, "temperature")), 0.5, 1e-9);
    json_t *m = json_object_get(b, "messages");
    cr_assert_eq(json_array_size(m), 8);
    cr_assert_str_eq(JS(json_array_get(m, 0), "role"), "system");
    cr_assert_str_eq(JS(json_array_get(m, 0), "content"), "Be brief.");
    cr_assert_str_eq(JS(json_array_get(m, 1), "content"), "Conversation note.");
    cr_assert_str_eq(JS(json_array_get(m, 2), "content"), "List the files");
    json_t *call = json_array_get(json_object_get(json_array_get(m, 3), "tool_calls"), 0);
    cr_assert(json_is_null(json_object_get(json_array_get(m, 3), "content")));
    cr_assert_str_eq(JS(call, "id"), "call_1");
    cr_assert_str_eq(JS(call, "type"), "function");
    cr_assert_str_eq(JS(json_object_get(call, "function"), "name"), "list_directory");
    cr_assert_str_eq(JS(json_object_get(call, "function"), "arguments"), "{\"path\":\".\"}");
    cr_assert_str_eq(JS(json_array_get(m, 4), "role"), "tool");
    cr_assert_str_eq(JS(json_array_get(m, 4), "tool_call_id"), "call_1");
    cr_assert_str_eq(JS(json_array_get(m, 4), "content"), "a.c\nb.c");
    cr_assert_str_eq(JS(json_array_get(m, 5), "content"), "Error: denied");
    cr_assert_str_eq(JS(json_array_get(m, 6), "content"), "There are two files.");
    cr_assert_str_eq(JS(json_array_get(m, 7), "content"), "Now read a.c");
    json_t *tool = json_array_get(json_object_get(b, "tools"), 0);
    cr_assert_str_eq(JS(tool, "type"), "function");
    cr_assert_str_eq(JS(json_object_get(tool, "function"), "name"), "read_file");
    cr_assert_str_eq(JS(json_object_get(tool, "function"), "description"), "Read a file");
    cr_assert(json_is_object(json_object_get(json_object_get(tool, "function"), "parameters")));
    json_decref(reqs);
}

Test(agent_llm, anthropic_request_carries_history_tools_and_stream)
{
    s_result_t r = {0};
    s_cfg = llm_fake_config(&s_fake, CFG_STRATEGY_ANTHROPIC, "system_prompt = Be brief.\n");
    s_start(&r, s_full_history(), s_tools());
    s_run(&r, 10000);
    cr_assert(r.done, "%s", r.err.reason);
    json_t *reqs = llm_fake_requests(&s_fake);
    json_t *req = json_array_get(reqs, 0);
    cr_assert_str_eq(JS(req, "path"), "/v1/messages");
    json_t *hdr = json_object_get(req, "headers");
    cr_assert_str_eq(JS(hdr, "x-api-key"), "sk-test-secret");
    cr_assert_str_eq(JS(hdr, "anthropic-version"), "2023-06-01");
    json_t *b = json_object_get(req, "body");
    cr_assert(json_is_true(json_object_get(b, "stream")));
    cr_assert_eq(json_integer_value(json_object_get(b, "max_tokens")), 4096);
    cr_assert_str_eq(JS(b, "system"), "Be brief.\n\nConversation note.");
    json_t *m = json_object_get(b, "messages");
    cr_assert_eq(json_array_size(m), 5, "user, assistant, user(results), assistant, user");
    const char *roles[] = {"user", "assistant", "user", "assistant", "user"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(JS(json_array_get(m, i), "role"), roles[i]);
    }
    json_t *use = json_array_get(json_object_get(json_array_get(m, 1), "content"), 0);
    cr_assert_str_eq(JS(use, "type"), "tool_use");
    cr_assert_str_eq(JS(use, "id"), "call_1");
    cr_assert_str_eq(JS(use, "name"), "list_directory");
    cr_assert_str_eq(JS(json_object_get(use, "input"), "path"), ".");
    json_t *results = json_object_get(json_array_get(m, 2), "content");
    cr_assert_eq(json_array_size(results), 2, "both results in one user message");
    cr_assert_str_eq(JS(json_array_get(results, 0), "type"), "tool_result");
    cr_assert_str_eq(JS(json_array_get(results, 0), "tool_use_id"), "call_1");
    cr_assert_str_eq(JS(json_array_get(results, 0), "content"), "a.c\nb.c");
    cr_assert_null(json_object_get(json_array_get(results, 0), "is_error"));
    cr_assert(json_is_true(json_object_get(json_array_get(results, 1), "is_error")));
    json_t *last = json_array_get(json_object_get(json_array_get(m, 4), "content"), 0);
    cr_assert_str_eq(JS(last, "text"), "Now read a.c");
    json_t *tool = json_array_get(json_object_get(b, "tools"), 0);
    cr_assert_str_eq(JS(tool, "name"), "read_file");
    cr_assert(json_is_object(json_object_get(tool, "input_schema")));
    json_decref(reqs);
}

BOTH(provider_error_inside_the_stream)
{
    s_result_t r = {0};
    s_call(&r, kind, NULL, "[{\"kind\":\"stream_error\",\"message\":\"Overloaded right now\"}]");
    cr_assert(r.failed);
    cr_assert_eq(r.err.kind, AGENT_LLM_ERR_PROVIDER, "%s", r.err.reason);
    cr_assert(strstr(r.err.reason, "Overloaded right now"), "%s", r.err.reason);
    cr_assert_eq(r.err.http_status, 200);
}

/* --- an agent loop: turn 2 starts from inside turn 1's on_done ------------- */

typedef struct {
    s_result_t r1;   /* turn 1 (first member: the shared callbacks cast arg to it) */
    s_result_t r2;   /* turn 2 */
    json_t *history; /* the conversation so far */
} s_turns_t;

static void s_turn1_done(void *arg, const char *stop, const agent_llm_usage_t *usage)
{
    s_turns_t *t = arg;
    s_on_done(&t->r1, stop, usage);
    cr_assert_eq(t->r1.ntools, 1);
    json_array_append_new(t->history,
                          json_pack("{s:s, s:s, s:[{s:s, s:s, s:O}]}", "role", "assistant",
                                    "content", t->r1.text, "tool_calls", "id", t->r1.tool_id[0],
                                    "name", t->r1.tool_name[0], "arguments", t->r1.tool_args[0]));
    json_array_append_new(t->history, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                                                t->r1.tool_id[0], "content", "int main;"));
    s_start(&t->r2, json_incref(t->history), NULL);
}

static void s_turn1_error(void *arg, const agent_llm_error_t *err)
{
    s_turns_t *t = arg;
    s_on_error(&t->r1, err);
    t->r2.failed = true; /* ends the loop */
}

BOTH(agent_loop_sends_the_full_history_each_turn)
{
    s_turns_t t = {.history = s_history("Read a.c")};
    s_cfg = llm_fake_config(&s_fake, kind, NULL);
    llm_fake_script(&s_fake, "[{\"kind\":\"tool_call\",\"name\":\"read_file\","
                             "\"text\":\"Reading.\",\"arguments\":{\"path\":\"a.c\"}},"
                             "{\"kind\":\"text\",\"text\":\"It declares main.\"}]");
    agent_llm_callbacks_t cb = {s_on_text, s_on_tool_call, s_turn1_done, s_turn1_error};
    agent_llm_params_t p = {.strategy = cfg_file_strategy(s_cfg, "s"), .messages = t.history};
    t.r1.req = agent_llm_start(s_http, &p, &cb, &t, NULL);
    cr_assert_not_null(t.r1.req);
    s_run(&t.r2, 20000);
    cr_assert(t.r1.done, "turn 1: %s", t.r1.err.reason);
    cr_assert(t.r2.done, "turn 2: %s", t.r2.err.reason);
    cr_assert_str_eq(t.r2.text, "It declares main.");

    json_t *b1 = s_sent_body(0), *b2 = s_sent_body(1);
    json_t *m1 = json_object_get(b1, "messages"), *m2 = json_object_get(b2, "messages");
    cr_assert_eq(json_array_size(m1), 1);
    cr_assert_eq(json_array_size(m2), 3, "user, assistant tool call, tool result");
    char *dump = json_dumps(m2, JSON_COMPACT);
    cr_assert(strstr(dump, t.r1.tool_id[0]), "the call id is sent back: %s", dump);
    cr_assert(strstr(dump, "int main;"), "the tool result is sent: %s", dump);
    cr_assert(strstr(dump, "Reading."), "the assistant text is sent: %s", dump);
    cr_assert(strstr(dump, "Read a.c"), "the first user message is sent: %s", dump);
    free(dump);
    json_decref(b1);
    json_decref(b2);
    json_decref(t.history);
    s_result_free(&t.r1);
}

/* --- cancellation ------------------------------------------------------------ */

static void s_run_for(int ms)
{
    s_result_t idle = {0};
    s_run(&idle, ms);
    s_deadline_hit = false;
}

BOTH(cancel_from_inside_on_text)
{
    s_result_t r = {.cancel_after_text = 1};
    s_cfg = llm_fake_config(&s_fake, kind, NULL);
    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    s_start(&r, s_history("hi"), NULL);
    s_run(&r, 10000);
    cr_assert_null(r.req);
    cr_assert_eq(r.text_calls, 1);
    s_run_for(300);
    cr_assert_not(r.done || r.failed, "no callback after cancel");
    cr_assert_eq(r.text_calls, 1);
    cr_assert_eq(agent_http_active(s_http), 0);
}

static int s_cancel_timer(zloop_t *loop, int timer_id, void *arg)
{
    agent_llm_cancel((agent_llm_request_t **)arg);
    return 0;
}

BOTH(cancel_from_the_loop_mid_stream)
{
    s_result_t r = {0};
    s_cfg = llm_fake_config(&s_fake, kind, NULL);
    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    s_start(&r, s_history("hi"), NULL);
    zloop_timer(s_loop, 300, 1, s_cancel_timer, &r.req);
    s_run_for(800);
    cr_assert_null(r.req);
    cr_assert_str_eq(r.text, "Hello from ", "the stream was running");
    cr_assert_not(r.done || r.failed, "no callback after cancel");
    cr_assert_eq(agent_http_active(s_http), 0);
    agent_llm_cancel(&r.req);
    agent_llm_cancel(NULL);
}
