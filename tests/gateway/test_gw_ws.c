/*  test_gw_ws — the WebSocket upgrade checks (gw_ws_handshake_check) that
    GET /socket/websocket makes before its 101: comma lists in Upgrade and
    Connection, the version, the key, ?vsn=. Framing and the socket's life are
    tested end to end by cluster/test_gw_ws; tests/fuzz/fuzz_ws_handshake
    fuzzes the checks. */
#include "gateway/gw_ws.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(gw_ws, .timeout = 10);

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

Test(gw_ws, handshake_checks)
{
    static const struct {
        gw_ws_handshake_t h;
        const char *error; /* start of the message, NULL: accepted */
    } cases[] = {
        {{"websocket", "Upgrade", "13", KEY, NULL}, NULL},
        {{"WebSocket, h2c", "keep-alive,  upgrade ", "13", KEY, "2.0.0"}, NULL},
        {{NULL, "Upgrade", "13", KEY, NULL}, "a WebSocket handshake needs"},
        {{"websockets", "Upgrade", "13", KEY, NULL}, "a WebSocket handshake needs"},
        {{"websocket", "keep-alive", "13", KEY, NULL}, "a WebSocket handshake needs"},
        {{"websocket", "Upgrade", NULL, KEY, NULL}, "Sec-WebSocket-Version must be 13"},
        {{"websocket", "Upgrade", "8", KEY, NULL}, "Sec-WebSocket-Version must be 13"},
        {{"websocket", "Upgrade", "13", NULL, NULL}, "Sec-WebSocket-Key must be"},
        {{"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ", NULL}, "Sec-WebSocket-Key"},
        {{"websocket", "Upgrade", "13", "!!!!!!!!!!!!!!!!!!!!!!!!", NULL}, "Sec-WebSocket-Key"},
        {{"websocket", "Upgrade", "13", KEY, "1.0.0"}, "vsn must be 2.0.0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_error_t err;
        memset(&err, 0, sizeof err);
        int rc = gw_ws_handshake_check(&cases[i].h, &err);
        if (!cases[i].error) {
            cr_expect_eq(rc, 0, "case %zu: %s", i, err.message);
            continue;
        }
        cr_expect_eq(rc, -1, "case %zu", i);
        cr_expect_eq(err.status, 400, "case %zu", i);
        cr_expect_str_eq(err.code, "invalid_field", "case %zu", i);
        cr_expect(strncmp(err.message, cases[i].error, strlen(cases[i].error)) == 0, "case %zu: %s",
                  i, err.message);
    }
}

/* The server's frame headers: the payload length in its shortest form. */
Test(gw_ws, text_head_lengths)
{
    static const struct {
        size_t len, head;
        uint8_t b1;
    } cases[] = {{0, 2, 0}, {125, 2, 125}, {126, 4, 126}, {65535, 4, 126}, {65536, 10, 127}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t h[GW_WS_HEAD_MAX];
        cr_expect_eq(gw_ws_text_head(h, cases[i].len), cases[i].head, "case %zu", i);
        cr_expect_eq(h[0], 0x81, "case %zu: FIN and text", i);
        cr_expect_eq(h[1], cases[i].b1, "case %zu: unmasked, length %zu", i, cases[i].len);
    }
    uint8_t h[GW_WS_HEAD_MAX];
    gw_ws_text_head(h, 300);
    cr_expect(h[2] == 1 && h[3] == 44, "300 in network order");
}

/* A socket's output buffer: allocated only for what the socket did not take,
   grown for a burst, freed as soon as it drains; a close keeps only the rest
   of the frame already begun on the wire. */
Test(gw_ws, out_buffer_grows_drains_and_keeps_the_begun_frame)
{
    gw_ws_out_t out = {0};
    char big[3000];
    memset(big, 'x', sizeof big);
    /* 10 bytes of a 302-byte frame (4 + 298) went out directly. */
    cr_assert_eq(gw_ws_out_text(&out, big, 298, 10), 0);
    cr_expect_eq(out.len, 292);
    cr_expect_eq(out.begun, 292, "the rest of the frame on the wire");
    /* A burst behind it: the buffer grows past its first 1 KiB. */
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(gw_ws_out_text(&out, big, sizeof big, 0), 0);
    }
    size_t whole = 2 + 2 + sizeof big; /* header 4 bytes, then the payload */
    cr_expect_eq(out.len, 292 + 20 * whole);
    cr_expect_geq(out.cap, out.len);
    cr_expect_eq(out.begun, 292, "queued frames are not begun");
    /* The socket takes the begun frame and 100 bytes of the next one. */
    gw_ws_out_consume(&out, 292 + 100);
    cr_expect_eq(out.begun, whole - 100);
    /* Across two more frames at once: the walk finds the boundary. */
    gw_ws_out_consume(&out, (whole - 100) + whole + 7);
    cr_expect_eq(out.begun, whole - 7);
    /* A close: the rest of the begun frame stays, the 17 queued ones go. */
    gw_ws_out_keep_begun(&out);
    cr_expect_eq(out.len, whole - 7);
    cr_expect_not_null(out.data);
    gw_ws_out_consume(&out, whole - 7);
    cr_expect_eq(out.len, 0);
    cr_expect_null(out.data, "a drained buffer is freed");
    cr_expect_eq(out.cap, 0);
    /* Re-grown for the next burst, from empty; raw frames (wslay's pong). */
    static const uint8_t pong[] = {0x8a, 0x02, 'h', 'i'};
    cr_assert_eq(gw_ws_out_append(&out, pong, sizeof pong), 0);
    cr_assert_eq(gw_ws_out_text(&out, "[]", 2, 0), 0);
    cr_expect_eq(out.len, sizeof pong + 4);
    cr_expect_eq(out.begun, 0);
    gw_ws_out_consume(&out, 5); /* the pong and one byte of the text frame */
    cr_expect_eq(out.begun, 3);
    gw_ws_out_keep_begun(&out);
    cr_expect_eq(out.len, 3);
    gw_ws_out_free(&out);
    cr_expect_null(out.data);
    gw_ws_out_keep_begun(&out); /* an empty buffer: nothing to do */
    cr_expect_eq(out.len, 0);
}
