/*  test_node_cursor — opaque list cursors: round trips, and table-driven
    rejection of malformed cursors (client input). */
#include "node/ops/node_ops.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(node_cursor, conversation_round_trip)
{
    const char *text = "2026-11-27T10:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f";
    char *c = node_cursor_encode(text);
    cr_assert_not_null(c);
    for (const char *p = c; *p; p++) {
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p),
                  "not base64url: %c", *p);
    }
    char ts[40], id[37];
    cr_assert_eq(node_cursor_decode_conv(c, ts, id), 0);
    cr_assert_str_eq(ts, "2026-11-27T10:30:00.123456Z");
    cr_assert_str_eq(id, "0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f");
    free(c);
}

Test(node_cursor, number_round_trip)
{
    long long values[] = {0, 1, 42, 1000000, 999999999999LL};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *c = node_cursor_encode_num(values[i]);
        long long out = -1;
        cr_assert_eq(node_cursor_decode_num(c, &out), 0);
        cr_assert_eq(out, values[i]);
        free(c);
    }
}

Test(node_cursor, all_lengths_round_trip)
{
    char text[40];
    for (size_t n = 1; n < sizeof text; n++) {
        memset(text, '7', n);
        text[n] = 0;
        char *c = node_cursor_encode(text);
        long long out = -1;
        if (n <= 18) {
            cr_assert_eq(node_cursor_decode_num(c, &out), 0, "length %zu", n);
        } else {
            cr_assert_eq(node_cursor_decode_num(c, &out), -1, "length %zu", n);
        }
        free(c);
    }
}

static char *s_enc(const char *text)
{
    return node_cursor_encode(text);
}

Test(node_cursor, rejects_malformed_conversation_cursors)
{
    const char *bad_texts[] = {
        "",
        "no-bar",
        "2026-11-27T10:30:00.123456Z",
        "2026-11-27T10:30:00.123456Z|",
        "2026-11-27T10:30:00.123456Z|not-a-uuid",
        "2026-11-27 10:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
        "2026-13-27T10:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
        "2026-11-27T25:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
        "2026-11-27T10:30:00.123Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
        "x026-11-27T10:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
        "2026-11-27T10:30:00.123456Z|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f|x",
        "'; DROP TABLE conversations; --|0b7e6f4c-1d2a-4c3b-9f8e-7a6b5c4d3e2f",
    };
    char ts[40], id[37];
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        char *c = s_enc(bad_texts[i]);
        cr_assert_eq(node_cursor_decode_conv(c, ts, id), -1, "accepted: %s", bad_texts[i]);
        free(c);
    }
    const char *bad_raw[] = {"", "A", "!!!!", "abc=", "a b", "Zm9v\n", "%%%%", "a+b/", NULL};
    for (size_t i = 0; bad_raw[i]; i++) {
        cr_assert_eq(node_cursor_decode_conv(bad_raw[i], ts, id), -1, "accepted raw: %s",
                     bad_raw[i]);
    }
    cr_assert_eq(node_cursor_decode_conv(NULL, ts, id), -1);
    /* Longer than anything we issue. */
    char big[400];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_assert_eq(node_cursor_decode_conv(big, ts, id), -1);
}

Test(node_cursor, rejects_malformed_number_cursors)
{
    const char *bad_texts[] = {"", "-1", "1.5", "12a", " 1", "1234567890123456789", "0x10"};
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        char *c = s_enc(bad_texts[i]);
        long long out;
        cr_assert_eq(node_cursor_decode_num(c, &out), -1, "accepted: '%s'", bad_texts[i]);
        free(c);
    }
    long long out;
    cr_assert_eq(node_cursor_decode_num("@@", &out), -1);
    /* An embedded NUL (base64 of "1\0" ) is refused. */
    cr_assert_eq(node_cursor_decode_num("MQA", &out), -1);
}
