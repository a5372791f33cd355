/*  test_gw_phx — the Phoenix Channels v2 decoder (gw_phx_decode) that every
    WebSocket text message goes through first: the messages the phoenix
    client sends, and the malformed ones the socket is closed with 1007 for.
    The protocol itself (joins, pushes, replies) is tested end to end by
    cluster/test_gw_ws; tests/fuzz/fuzz_phx fuzzes the decoder. */
#include "gateway/gw_ws.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(gw_phx, .timeout = 10);

Test(gw_phx, decodes_what_the_phoenix_client_sends)
{
    const char *text = "[\"3\",\"7\",\"conversation:0b0e7d5e-8b1a-4c57-9d3b-2f6f1f8c9a10\","
                       "\"phx_join\",{\"last_event_id\":41}]";
    gw_phx_msg_t m;
    cr_assert_eq(gw_phx_decode(text, strlen(text), &m), 0);
    cr_assert_str_eq(json_string_value(m.join_ref), "3");
    cr_assert_str_eq(json_string_value(m.ref), "7");
    cr_assert_str_eq(m.topic, "conversation:0b0e7d5e-8b1a-4c57-9d3b-2f6f1f8c9a10");
    cr_assert_str_eq(m.event, "phx_join");
    cr_assert_eq(json_integer_value(json_object_get(m.payload, "last_event_id")), 41);
    json_decref(m.msg);

    text = "[null,null,\"phoenix\",\"heartbeat\",[]]";
    cr_assert_eq(gw_phx_decode(text, strlen(text), &m), 0);
    cr_assert(json_is_null(m.join_ref) && json_is_null(m.ref) && json_is_array(m.payload));
    json_decref(m.msg);
}

Test(gw_phx, refuses_what_is_not_a_v2_message)
{
    char long_topic[128];
    snprintf(long_topic, sizeof long_topic, "[null,\"1\",\"%080d\",\"x\",{}]", 0);
    const char *bad[] = {
        "",
        "{\"topic\":\"phoenix\"}",
        "[null,\"1\",\"phoenix\",\"heartbeat\"]",      /* four elements (v1 is an object) */
        "[null,\"1\",\"phoenix\",\"heartbeat\",{},1]", /* six */
        "[1,\"1\",\"phoenix\",\"heartbeat\",{}]",      /* join_ref a number */
        "[null,{},\"phoenix\",\"heartbeat\",{}]",      /* ref an object */
        "[null,\"1\",null,\"heartbeat\",{}]",          /* topic not a string */
        "[null,\"1\",\"phoenix\",7,{}]",               /* event not a string */
        "[null,\"1\",\"phoenix\",\"heartbeat\",{\"a\":1,\"a\":2}]", /* duplicate key */
        "[null,\"1\",\"phoenix\",\"heartbeat\",{}",                 /* truncated */
        long_topic,                                                 /* topic of 80 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_phx_msg_t m;
        cr_assert_eq(gw_phx_decode(bad[i], strlen(bad[i]), &m), -1, "case %zu: %s", i, bad[i]);
        cr_assert_null(m.msg, "case %zu", i);
    }
}
