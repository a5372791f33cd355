/*  test_gw_phx — the Phoenix Channels v2 decoder (gw_phx_decode) that every
    WebSocket text message goes through first: the messages the phoenix
    client sends, and the malformed ones the socket is closed with 1007 for;
    and a channel's resume against the fake node of gw_fake.h, where events
    are published before the subscription counts. The protocol itself
    (joins, pushes, replies) is tested end to end by cluster/test_gw_ws;
    tests/fuzz/fuzz_phx fuzzes the decoder. */
#include "gateway/gw_ws.h"
#include "tests/fixtures/gw_fake.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* ---- a channel's resume, with the fake node ------------------------------- */

/* Opens a WebSocket to t's gateway with the fake's good token; -1 on failure. */
static int s_ws_open(gwt_t *t)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->cfg.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        return -1;
    }
    const char *head =
        "GET /socket/websocket?vsn=2.0.0&token=" FAKE_GOOD_TOKEN " HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    char buf[1024];
    size_t n = 0;
    if (write(fd, head, strlen(head)) != (ssize_t)strlen(head)) {
        return -1;
    }
    /* One byte at a time up to the blank line: the frames after it stay unread. */
    while (n < sizeof buf - 1 && (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1 || read(fd, buf + n, 1) != 1) {
            return -1;
        }
        n++;
    }
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 101", 12) == 0, "%s", buf);
    return fd;
}

/* Sends text as one masked text frame (under 126 bytes). */
static void s_ws_text(int fd, const char *text)
{
    size_t len = strlen(text);
    cr_assert_lt(len, 126);
    uint8_t f[140] = {0x81, (uint8_t)(0x80 | len), 1, 2, 3, 4};
    for (size_t i = 0; i < len; i++) {
        f[6 + i] = (uint8_t)text[i] ^ f[2 + i % 4];
    }
    cr_assert_eq(write(fd, f, 6 + len), (ssize_t)(6 + len));
}

/* Reads for ms and returns the text frames' payloads, one a line. */
static char *s_ws_read(int fd, int ms)
{
    static uint8_t in[65536];
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r;
    while (n < sizeof in && poll(&p, 1, ms) == 1 && (r = read(fd, in + n, sizeof in - n)) > 0) {
        n += (size_t)r;
    }
    char *out = calloc(1, n + 1);
    size_t o = 0;
    for (size_t i = 0; i + 2 <= n;) {
        size_t len = in[i + 1] & 0x7F, h = 2;
        if (len == 126) {
            len = (size_t)in[i + 2] << 8 | in[i + 3];
            h = 4;
        }
        cr_assert_neq(in[i + 1] & 0x7F, 127, "no frame here is that big");
        if (i + h + len > n) {
            break;
        }
        if ((in[i] & 0x0F) == 1) {
            memcpy(out + o, in + i + h, len);
            o += len;
            out[o++] = '\n';
        }
        i += h + len;
    }
    out[o ? o - 1 : 0] = '\0';
    return out;
}

/* The ids of the message.created pushes in text, in order. */
static size_t s_created_ids(const char *text, long *ids, size_t cap)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "\"message.created\",{\"id\":")) && n < cap; p++) {
        ids[n++] = atol(p + strlen("\"message.created\",{\"id\":"));
    }
    return n;
}

static void s_join_with_gap(const char *gap_cmd, long from, long first, long last)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    zstr_send(t.fake, gap_cmd);
    char *ok = zstr_recv(t.fake);
    zstr_free(&ok);
    int fd = s_ws_open(&t);
    cr_assert_geq(fd, 0);
    char join[120];
    snprintf(join, sizeof join,
             "[\"1\",\"1\",\"conversation:44444444-4444-4444-8444-444444444444\",\"phx_join\","
             "{\"last_event_id\":%ld}]",
             from);
    s_ws_text(fd, join);
    char *text = s_ws_read(fd, 1500);
    cr_assert(strstr(text, "\"phx_reply\",{\"status\":\"ok\""), "%s", text);
    long ids[16];
    size_t n = s_created_ids(text, ids, 16);
    cr_assert_eq(n, (size_t)(last - first + 1), "expected ids %ld..%ld once each:\n%s", first, last,
                 text);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ids[i], first + (long)i, "position %zu:\n%s", i, text);
    }
    free(text);
    close(fd);
    gwt_stop(&t);
}

Test(gw_phx, a_missed_event_is_caught_up_from_the_store, .timeout = 30)
{
    s_join_with_gap("GAP", 2, 3, 7);
}

Test(gw_phx, a_missed_first_event_is_caught_up_from_the_store, .timeout = 30)
{
    s_join_with_gap("GAP0", 0, 1, 2);
}

Test(gw_phx, a_resume_with_nothing_to_replay_checks_its_first_event, .timeout = 30)
{
    s_join_with_gap("GAP", 5, 6, 7);
}
