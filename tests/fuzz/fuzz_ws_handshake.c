/*  fuzz_ws_handshake — the header checks of a WebSocket upgrade
    (gw_ws_handshake_check, what GET /socket/websocket runs before it answers
    101): byte 0 says which of the five values are absent, the rest holds
    Upgrade, Connection, Sec-WebSocket-Version, Sec-WebSocket-Key and ?vsn=,
    one per line. */
#include "gateway/gw_ws.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    char *text = strndup((const char *)data + 1, size - 1);
    const char *v[5] = {NULL, NULL, NULL, NULL, NULL};
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    for (size_t i = 0; i < 5 && line; i++, line = strtok_r(NULL, "\n", &save)) {
        v[i] = data[0] & (1u << i) ? NULL : line;
    }
    gw_ws_handshake_t h = {
        .upgrade = v[0], .connection = v[1], .version = v[2], .key = v[3], .vsn = v[4]};
    gw_error_t err;
    memset(&err, 0, sizeof err);
    if (gw_ws_handshake_check(&h, &err) == 0) {
        FUZZ_CHECK(h.upgrade && h.connection && strcmp(h.version, "13") == 0);
        FUZZ_CHECK(strlen(h.key) == 24 && (!h.vsn || strcmp(h.vsn, "2.0.0") == 0));
    } else {
        FUZZ_CHECK(err.status == 400 && err.message[0]);
        char *body = gw_error_body(&err);
        FUZZ_CHECK(body);
        free(body);
    }
    free(text);
    return 0;
}
