/*  gw_head — sizes up a request head before libmicrohttpd sees it (pure).
    libmicrohttpd 0.9.75 answers a head that does not fit its per-connection
    pool with a fixed HTML 431/414; gw_accept peeks at every head with this
    scanner and answers the API's JSON error itself when it is too large, so
    what reaches libmicrohttpd always fits. Any thread; no state. */
#include "gateway/gateway_internal.h"

#include <string.h>
#include <strings.h>

/* Weight of one header field or query argument: what libmicrohttpd 0.9.75
   allocates for its record in the pool (struct MHD_HTTP_Header, 56 bytes,
   rounded up to 16). A cookie costs its own record and a copy of the
   Cookie value. */
#define S_FIELD_COST 64

/* Counts the query arguments of target[0, len): the '&'-separated parts
   after the first '?', 0 when there is no query. */
static size_t s_query_args(const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);
    if (!q) {
        return 0;
    }
    size_t n = 1;
    for (const char *p = q + 1; p < target + len; p++) {
        n += *p == '&';
    }
    return n;
}

/* Adds the weight of header line [p, end) (no line ending) to *weight. */
static void s_field_weight(const char *p, const char *end, size_t *weight)
{
    *weight += S_FIELD_COST;
    static const char cookie[] = "cookie:";
    size_t n = (size_t)(end - p);
    if (n >= sizeof cookie - 1 && strncasecmp(p, cookie, sizeof cookie - 1) == 0) {
        *weight += n; /* the copy libmicrohttpd parses cookies from */
        for (const char *c = p; c < end; c++) {
            *weight += *c == ';' ? S_FIELD_COST : 0;
        }
        *weight += S_FIELD_COST;
    }
}

/* Scans the request line [buf, buf + len): 414 when its target is over
   GW_HEAD_MAX_TARGET, GW_HEAD_OK when it is complete (*line_end set past its
   LF), GW_HEAD_MORE when more bytes are needed. */
static gw_head_verdict_t s_request_line(const char *buf, size_t len, size_t *line_end)
{
    const char *lf = memchr(buf, '\n', len);
    size_t line = lf ? (size_t)(lf - buf) : len;
    const char *sp = memchr(buf, ' ', line);
    if (sp) {
        const char *start = sp + 1;
        const char *sp2 = memchr(start, ' ', (size_t)(buf + line - start));
        size_t target = (size_t)((sp2 ? sp2 : buf + line) - start);
        if (!sp2 && lf && target > 0 && start[target - 1] == '\r') {
            target--; /* HTTP/0.9 style line: no version */
        }
        if (target > GW_HEAD_MAX_TARGET) {
            return GW_HEAD_URI_TOO_LONG;
        }
    } else if (line > GW_HEAD_MAX_TARGET) {
        return GW_HEAD_URI_TOO_LONG; /* no target yet, but past any method */
    }
    if (!lf) {
        return GW_HEAD_MORE;
    }
    *line_end = line + 1;
    return GW_HEAD_OK;
}

gw_head_verdict_t gw_head_scan(const char *buf, size_t len)
{
    /* Empty lines before the request line are skipped (RFC 9112 2.2). */
    size_t skip = 0;
    while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n')) {
        skip++;
    }
    const char *head = buf + skip;
    size_t n = len - skip;
    size_t line_end = 0;
    gw_head_verdict_t v = s_request_line(head, n, &line_end);
    if (v != GW_HEAD_OK) {
        return v;
    }
    const char *sp = memchr(head, ' ', line_end);
    size_t weight =
        sp ? s_query_args(sp + 1, line_end - (size_t)(sp + 1 - head)) * S_FIELD_COST : 0;
    /* Header lines, up to the empty line that ends the head. */
    size_t pos = line_end;
    while (pos < n) {
        const char *lf = memchr(head + pos, '\n', n - pos);
        if (!lf) {
            break;
        }
        size_t end = (size_t)(lf - head);
        size_t text_end = end > pos && head[end - 1] == '\r' ? end - 1 : end;
        if (text_end == pos) {
            size_t total = skip + end + 1;
            return total > GW_HEAD_MAX || total + weight > GW_HEAD_BUDGET ? GW_HEAD_TOO_LARGE
                                                                          : GW_HEAD_OK;
        }
        s_field_weight(head + pos, head + text_end, &weight);
        pos = end + 1;
    }
    if (len > GW_HEAD_MAX || len + weight > GW_HEAD_BUDGET) {
        return GW_HEAD_TOO_LARGE;
    }
    return GW_HEAD_MORE;
}
