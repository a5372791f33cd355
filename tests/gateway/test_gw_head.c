/*  test_gw_head — the request head scanner (gw_head_scan) that gw_accept
    runs on the bytes it peeks at: complete heads within the limits, heads
    still arriving, targets over 2048 bytes (414) whether or not the request
    line is complete, heads over 3584 bytes or over the pool budget (431),
    bare LF line endings, empty lines before the request line, and garbage. */
#include "gateway/gateway_internal.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gw_head, .timeout = 10);

/* A head "GET <target> HTTP/1.1\r\nHost: x\r\n" + one X-Pad header of pad
   bytes + "\r\n" (when end); caller frees. */
static char *s_head(size_t target, size_t pad, bool end)
{
    size_t cap = target + pad + 128;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "GET /");
    memset(buf + n, 'a', target - 1);
    n += target - 1;
    n += (size_t)snprintf(buf + n, cap - n, " HTTP/1.1\r\nHost: x\r\n");
    if (pad) {
        n += (size_t)snprintf(buf + n, cap - n, "X-Pad: ");
        memset(buf + n, 'p', pad);
        n += pad;
        n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    }
    if (end) {
        n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    }
    buf[n] = 0;
    return buf;
}

static gw_head_verdict_t s_scan(const char *text)
{
    return gw_head_scan(text, strlen(text));
}

Test(gw_head, complete_and_incomplete)
{
    cr_assert_eq(s_scan("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), GW_HEAD_OK);
    cr_assert_eq(s_scan("GET /health HTTP/1.1\nHost: x\n\n"), GW_HEAD_OK);
    cr_assert_eq(s_scan("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), GW_HEAD_OK);
    /* Body bytes after the head do not count. */
    cr_assert_eq(s_scan("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), GW_HEAD_OK);
    cr_assert_eq(s_scan(""), GW_HEAD_MORE);
    cr_assert_eq(s_scan("G"), GW_HEAD_MORE);
    cr_assert_eq(s_scan("GET /health HTTP/1.1\r\n"), GW_HEAD_MORE);
    cr_assert_eq(s_scan("GET /health HTTP/1.1\r\nHost: x\r\n"), GW_HEAD_MORE);
    cr_assert_eq(s_scan("GET /health HTTP/1.1\r\nHost: x\r\n\r"), GW_HEAD_MORE);
}

Test(gw_head, target_limit)
{
    char *ok = s_head(GW_HEAD_MAX_TARGET, 0, true);
    char *over = s_head(GW_HEAD_MAX_TARGET + 1, 0, true);
    cr_assert_eq(s_scan(ok), GW_HEAD_OK);
    cr_assert_eq(s_scan(over), GW_HEAD_URI_TOO_LONG);
    /* Known as soon as the target alone is past the limit. */
    cr_assert_eq(gw_head_scan(over, 4 + GW_HEAD_MAX_TARGET), GW_HEAD_MORE);
    cr_assert_eq(gw_head_scan(over, 4 + GW_HEAD_MAX_TARGET + 1), GW_HEAD_URI_TOO_LONG);
    free(ok);
    free(over);
    /* No space at all: a line this long cannot hold a short target. */
    char junk[GW_HEAD_MAX_TARGET + 2];
    memset(junk, 'z', sizeof junk);
    cr_assert_eq(gw_head_scan(junk, sizeof junk), GW_HEAD_URI_TOO_LONG);
}

Test(gw_head, head_limit)
{
    /* "GET /a HTTP/1.1\r\n" (17) + "Host: x\r\n" (9) + "X-Pad: " + pad + "\r\n"
       (9 + pad) + "\r\n" (2) = 37 + pad bytes, 2 fields (128 more): the byte
       limit binds. */
    size_t pad = GW_HEAD_MAX - 37;
    char *fits = s_head(2, pad, true);
    char *over = s_head(2, pad + 1, true);
    cr_assert_eq(strlen(fits), 37 + pad);
    cr_assert_eq(s_scan(fits), GW_HEAD_OK);
    cr_assert_eq(s_scan(over), GW_HEAD_TOO_LARGE);
    free(fits);
    free(over);
    /* With 4 more fields the budget binds: 3584 bytes weigh 3584 + 6 × 64. */
    char six[GW_HEAD_MAX + 64];
    size_t n =
        (size_t)snprintf(six, sizeof six, "GET /a HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n");
    size_t fill = GW_HEAD_BUDGET - 6 * 64 - n - 15; /* "Host: x" CRLF "X:", CRLF CRLF */
    n += (size_t)snprintf(six + n, sizeof six - n, "Host: x\r\nX:");
    memset(six + n, 'q', fill);
    n += fill;
    n += (size_t)snprintf(six + n, sizeof six - n, "\r\n\r\n");
    cr_assert_eq(n + 6 * 64, GW_HEAD_BUDGET);
    cr_assert_eq(gw_head_scan(six, n), GW_HEAD_OK);
    six[n - 4] = 'q'; /* one byte more: the CRLF moves right */
    memcpy(six + n - 3, "\r\n\r\n", 4);
    cr_assert_eq(gw_head_scan(six, n + 1), GW_HEAD_TOO_LARGE);
    /* Past the byte limit with nothing but bytes, complete or not. */
    char *big = s_head(2, GW_HEAD_MAX, false);
    cr_assert_eq(s_scan(big), GW_HEAD_TOO_LARGE);
    cr_assert_eq(gw_head_scan(big, GW_HEAD_MAX + 1), GW_HEAD_TOO_LARGE);
    free(big);
}

Test(gw_head, many_fields_weigh)
{
    /* 60 tiny headers: 60 × ~8 bytes, but 60 × 64 of libmicrohttpd's pool. */
    char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 60; i++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X%02d: 1\r\n", i);
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    cr_assert_lt(n, 1024);
    cr_assert_eq(gw_head_scan(buf, n), GW_HEAD_TOO_LARGE);
    /* Query arguments weigh the same. */
    char q[2048];
    n = (size_t)snprintf(q, sizeof q, "GET /?a");
    for (int i = 0; i < 60; i++) {
        n += (size_t)snprintf(q + n, sizeof q - n, "&a");
    }
    n += (size_t)snprintf(q + n, sizeof q - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(gw_head_scan(q, n), GW_HEAD_TOO_LARGE);
    cr_assert_eq(s_scan("GET /?a=1&b=2 HTTP/1.1\r\nHost: x\r\n\r\n"), GW_HEAD_OK);
    /* A Cookie header is copied and split by libmicrohttpd. */
    char c[4096];
    memset(c, 0, sizeof c);
    n = (size_t)snprintf(c, sizeof c, "GET / HTTP/1.1\r\nCookie: ");
    memset(c + n, 'c', 1900);
    n += 1900;
    n += (size_t)snprintf(c + n, sizeof c - n, "\r\n\r\n");
    cr_assert_eq(gw_head_scan(c, n), GW_HEAD_TOO_LARGE);
}

Test(gw_head, garbage)
{
    static const char bin[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (char)0xfc, 0x03};
    cr_assert_eq(gw_head_scan(bin, sizeof bin), GW_HEAD_MORE);
    cr_assert_eq(s_scan("\n\n\n"), GW_HEAD_MORE);
    cr_assert_eq(s_scan("hello\r\n\r\n"), GW_HEAD_OK); /* libmicrohttpd answers 400 */
}
