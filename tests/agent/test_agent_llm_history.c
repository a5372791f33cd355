/*  test_agent_llm_history — validation of the provider-neutral history and
    tools (agent_llm_check), and agent_llm_start refusing what it cannot send
    before anything goes on the wire. */
#include "node/agent/agent_llm.h"

#include <criterion/criterion.h>
#include <string.h>

typedef struct {
    const char *messages; /* JSON */
    const char *tools;    /* JSON or NULL */
    const char *want;     /* NULL when valid, else a substring of the error */
} s_case_t;

static const s_case_t s_cases[] = {
    {"[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL},
    {"[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"hi\"},"
     "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\",\"arguments\":{}}]},"
     "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\",\"is_error\":false},"
     "{\"role\":\"assistant\",\"content\":null}]",
     "[{\"name\":\"bash\",\"description\":\"run\",\"input_schema\":{\"type\":\"object\"}},"
     "{\"name\":\"grep\",\"parameters\":{}},{\"name\":\"todo_write\"}]",
     NULL},
    {"[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[{\"id\":\"c\",\"name\":\"n\"}]}]",
     "null", NULL},
    {"[]", NULL, "messages must be a non-empty array"},
    {"{}", NULL, "messages must be a non-empty array"},
    {"[3]", NULL, "messages[0] is not an object"},
    {"[{\"content\":\"x\"}]", NULL, "messages[0].role"},
    {"[{\"role\":\"robot\",\"content\":\"x\"}]", NULL, "messages[0].role"},
    {"[{\"role\":\"user\"}]", NULL, "messages[0].content must be a string"},
    {"[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]", NULL, "messages[0].content"},
    {"[{\"role\":\"tool\",\"content\":\"x\"}]", NULL, "messages[0].tool_call_id"},
    {"[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":\"\"}]", NULL, "tool_call_id"},
    {"[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":\"c\",\"is_error\":1}]", NULL,
     "messages[0].is_error must be a boolean"},
    {"[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]", NULL,
     "only assistant messages have tool_calls"},
    {"[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":{}}]", NULL,
     "messages[0].tool_calls is not an array"},
    {"[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c\"}]}]", NULL,
     "messages[0].tool_calls[0] needs a string id and name"},
    {"[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c\",\"name\":\"n\","
     "\"arguments\":\"{}\"}]}]",
     NULL, "messages[0].tool_calls[0].arguments is not an object"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{}", "tools is not an array"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "[{\"name\":3}]", "tools[0] needs a string name"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "[{\"name\":\"a\",\"input_schema\":[]}]",
     "tools[0]: description must be a string"},
};

Test(agent_llm_history, table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        json_t *m = json_loads(c->messages, JSON_DECODE_ANY, NULL);
        json_t *t = c->tools ? json_loads(c->tools, JSON_DECODE_ANY, NULL) : NULL;
        cr_assert_not_null(m, "case %zu: bad test JSON", i);
        char err[256] = "";
        int rc = agent_llm_check(m, t, err, sizeof err);
        if (c->want) {
            cr_assert_eq(rc, -1, "case %zu accepted", i);
            cr_assert(strstr(err, c->want), "case %zu: got \"%s\", want \"%s\"", i, err, c->want);
        } else {
            cr_assert_eq(rc, 0, "case %zu: %s", i, err);
        }
        json_decref(m);
        json_decref(t);
    }
}

Test(agent_llm_history, start_refuses_before_sending)
{
    char text[] = "[strategy.o]\nkind = openai\nbase_url = http://127.0.0.1:7499/v1\nmodel = m\n";
    cfg_file_t *cfg = cfg_file_load_string(text, "t.ini", NULL, 0);
    cfg_file_t *echo = cfg_file_load(NULL, NULL, 0);
    cr_assert(cfg && echo);
    zloop_t *loop = zloop_new();
    agent_http_t *http = agent_http_new(loop);
    agent_llm_callbacks_t cb = {0};
    agent_llm_error_t err;
    json_t *bad = json_pack("[{s:s}]", "role", "user");
    json_t *good = json_pack("[{s:s, s:s}]", "role", "user", "content", "x");

    agent_llm_params_t p = {.strategy = cfg_file_strategy(cfg, "o"), .messages = bad};
    cr_assert_null(agent_llm_start(http, &p, &cb, NULL, &err));
    cr_assert_eq(err.kind, AGENT_LLM_ERR_REQUEST);
    cr_assert_str_eq(err.reason, "messages[0].content must be a string");
    cr_assert_str_eq(agent_llm_err_kind_name(err.kind), "request");

    p = (agent_llm_params_t){.strategy = cfg_file_default_strategy(echo), .messages = good};
    cr_assert_null(agent_llm_start(http, &p, &cb, NULL, &err));
    cr_assert(strstr(err.reason, "not an HTTP model strategy"), "%s", err.reason);

    p = (agent_llm_params_t){.strategy = cfg_file_strategy(cfg, "o"),
                             .messages = good,
                             .api_key = "sk-bad\r\nX-Injected: 1"};
    cr_assert_null(agent_llm_start(http, &p, &cb, NULL, &err));
    cr_assert(strstr(err.reason, "control characters"), "%s", err.reason);
    cr_assert_null(strstr(err.reason, "sk-bad"), "the key never appears in a message");
    cr_assert_eq(agent_http_active(http), 0, "nothing was sent");

    json_decref(bad);
    json_decref(good);
    agent_http_destroy(&http);
    zloop_destroy(&loop);
    cfg_file_destroy(&cfg);
    cfg_file_destroy(&echo);
}
