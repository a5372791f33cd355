/*  test_gw_sse_buf — SSE framing and the bounded client buffer (gw_sse_buf). */
#include "gateway/gateway_internal.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gw_sse_buf, .timeout = 10);

Test(gw_sse_buf, stored_event_frame)
{
    size_t len;
    char *f = gw_sse_frame(42, "message.created", "{\"id\":42,\"type\":\"message.created\"}", &len);
    cr_assert_str_eq(f, "id: 42\nevent: message.created\n"
                        "data: {\"id\":42,\"type\":\"message.created\"}\n\n");
    cr_assert_eq(len, strlen(f));
    free(f);
}

Test(gw_sse_buf, delta_has_no_id_and_one_data_line)
{
    size_t len;
    char *f = gw_sse_frame(0, "message.delta", "{\"text\":\"a\\nb\",\n \"index\": 1}\r\n", &len);
    cr_assert_str_eq(f, "event: message.delta\ndata: {\"text\":\"a\\nb\",  \"index\": 1}  \n\n");
    cr_assert_null(strstr(f, "id:"));
    free(f);
    f = gw_sse_frame(7, "bad\ntype", NULL, &len);
    cr_assert_str_eq(f, "id: 7\nevent: bad type\ndata: \n\n");
    free(f);
}

Test(gw_sse_buf, keepalive_is_a_comment)
{
    size_t len;
    const char *ka = gw_sse_keepalive(&len);
    cr_assert_eq(len, strlen(ka));
    cr_assert_str_eq(ka, ": keep-alive\n\n");
}

Test(gw_sse_buf, buffer_is_bounded)
{
    gw_sse_buf_t b;
    gw_sse_buf_init(&b, 100, 1000);
    char chunk[40];
    memset(chunk, 'x', sizeof chunk);
    cr_assert_eq(gw_sse_buf_append(&b, chunk, 40), 0);
    cr_assert_eq(gw_sse_buf_append(&b, chunk, 40), 0);
    cr_assert_eq(gw_sse_buf_append(&b, chunk, 40), -1, "would pass the bound");
    cr_assert_eq(b.len, 80);
    char out[256];
    cr_assert_eq(gw_sse_buf_read(&b, out, 50), 50);
    cr_assert_eq(gw_sse_buf_append(&b, chunk, 40), 0, "room again after a read");
    cr_assert_eq(b.len, 70);
    cr_assert_eq(gw_sse_buf_read(&b, out, sizeof out), 70);
    cr_assert_eq(gw_sse_buf_read(&b, out, sizeof out), 0);
    gw_sse_buf_free(&b);
    cr_assert_null(b.data);
}

Test(gw_sse_buf, lone_big_frame_fits_an_empty_buffer_only)
{
    gw_sse_buf_t b;
    gw_sse_buf_init(&b, 64, 1000);
    char big[300];
    memset(big, 'y', sizeof big);
    cr_assert_eq(gw_sse_buf_append(&b, big, 10), 0);
    cr_assert_eq(gw_sse_buf_append(&b, big, sizeof big), -1);
    char out[512];
    cr_assert_eq(gw_sse_buf_read(&b, out, sizeof out), 10);
    cr_assert_eq(gw_sse_buf_append(&b, big, sizeof big), 0);
    cr_assert_eq(gw_sse_buf_append(&b, big, 1), -1);
    cr_assert_eq(gw_sse_buf_read(&b, out, sizeof out), sizeof big);
    cr_assert_eq(memcmp(out, big, sizeof big), 0);
    cr_assert_eq(b.cap, 0, "memory of the oversized frame is released");
    gw_sse_buf_free(&b);
}

Test(gw_sse_buf, a_frame_over_the_cap_is_refused_even_alone)
{
    gw_sse_buf_t b;
    gw_sse_buf_init(&b, 64, 256);
    char big[300];
    memset(big, 'z', sizeof big);
    cr_assert_eq(gw_sse_buf_append(&b, big, 257), GW_SSE_TOO_BIG, "empty buffer, over the cap");
    cr_assert_eq(b.cap, 0, "nothing was allocated for it");
    cr_assert_null(b.data);
    cr_assert_eq(gw_sse_buf_append(&b, big, 256), 0, "at the cap, alone: fits");
    cr_assert_eq(gw_sse_buf_append(&b, big, 257), GW_SSE_TOO_BIG, "the cap wins over -1");
    cr_assert_eq(b.len, 256);
    gw_sse_buf_free(&b);
}

Test(gw_sse_buf, order_is_kept_across_compaction)
{
    gw_sse_buf_t b;
    gw_sse_buf_init(&b, 16, 1000);
    char out[64];
    size_t got = 0;
    char expect[64], all[64];
    for (int i = 0; i < 40; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        cr_assert_eq(gw_sse_buf_append(&b, &c, 1), 0);
        if (i % 3 == 2) {
            size_t n = gw_sse_buf_read(&b, out, 2);
            memcpy(all + got, out, n);
            got += n;
        }
    }
    got += gw_sse_buf_read(&b, all + got, sizeof all - got);
    cr_assert_eq(got, 40);
    cr_assert_eq(memcmp(all, expect, 40), 0);
    gw_sse_buf_free(&b);
}

Test(gw_sse_buf, seq_gap_rule_of_resumed_streams)
{
    /* A seq sent: only the next one goes. */
    cr_assert_not(gw_seq_gap(5, 4, 40, true, false));
    cr_assert(gw_seq_gap(6, 4, 40, true, false));
    cr_assert_not(gw_seq_gap(3, 4, 40, true, false), "a repeat is dropped by id, not here");
    /* A resume from 0: seq 1 first. */
    cr_assert_not(gw_seq_gap(1, 0, 0, true, false));
    cr_assert(gw_seq_gap(2, 0, 0, true, false));
    /* A resume from a later id, nothing replayed: ask the store, once. */
    cr_assert(gw_seq_gap(1, 0, 9, true, false));
    cr_assert(gw_seq_gap(7, 0, 9, true, false));
    cr_assert_not(gw_seq_gap(7, 0, 9, true, true));
    cr_assert_not(gw_seq_gap(2, 0, 0, true, true));
    /* No resume (live only), or an event without seq: taken as it comes. */
    cr_assert_not(gw_seq_gap(7, 0, 0, false, false));
    cr_assert_not(gw_seq_gap(0, 4, 40, true, false));
}
