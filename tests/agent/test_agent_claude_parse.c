/*  test_agent_claude_parse — the result line as on_done reads it
    (agent_claude_result_read). The line parser itself is covered through the
    fake CLI in test_agent_claude.c and by tests/fuzz/fuzz_claude_parse. */
#include "node/agent/agent_claude_internal.h"

#include <criterion/criterion.h>

Test(agent_claude_parse, result_line_fields, .timeout = 5)
{
    json_t *r = json_loads("{\"type\":\"result\",\"subtype\":\"success\",\"result\":\"Done.\","
                           "\"session_id\":\"s1\",\"num_turns\":2,\"total_cost_usd\":0.5,"
                           "\"usage\":{\"input_tokens\":120,\"output_tokens\":40.0},"
                           "\"errors\":[\"x\"]}",
                           0, NULL);
    cr_assert_not_null(r);
    agent_claude_result_t res;
    agent_claude_result_read(r, 3, &res);
    cr_assert_str_eq(res.text, "Done.");
    cr_assert_str_eq(res.session_id, "s1");
    cr_assert_str_eq(res.stop_reason, "");
    cr_assert_eq(res.num_turns, 2);
    cr_assert_eq(res.input_tokens, 120);
    cr_assert_eq(res.output_tokens, 40);
    cr_assert_eq(res.exit_status, 3);
    cr_assert_not_null(res.errors);
    cr_assert_null(res.permission_denials);
    json_decref(r);
}

/* Found by tests/fuzz/fuzz_claude_parse: a count given as a huge real was
   converted to long, which is undefined (UBSan: "1e+300 is outside the range
   of representable values of type 'long'"). Now it reads as 0. */
Test(agent_claude_parse, huge_real_counts_read_as_zero, .timeout = 5)
{
    json_t *r = json_loads("{\"type\":\"result\",\"num_turns\":-1e300,"
                           "\"usage\":{\"input_tokens\":1e300,\"output_tokens\":9.3e18,"
                           "\"cache_read_input_tokens\":-9.2e18}}",
                           0, NULL);
    cr_assert_not_null(r);
    agent_claude_result_t res;
    agent_claude_result_read(r, 0, &res);
    cr_assert_eq(res.input_tokens, 0);
    cr_assert_eq(res.output_tokens, 0);
    cr_assert_eq(res.num_turns, 0);
    cr_assert_eq(res.cache_read_tokens, (long)-9.2e18);
    json_decref(r);
}
