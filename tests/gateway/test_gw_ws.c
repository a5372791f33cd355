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
