/*  bc_http — incremental HTTP/1.1 response parser for the bench clients: the
    status line, the two headers that frame a body (Content-Length,
    Transfer-Encoding: chunked), then the body, de-chunked, handed to a
    callback. Lines longer than BC_HTTP_LINE are truncated (the parser only
    needs short ones). Single-threaded; one bc_http_t per connection. */
#include "bench/bc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_STATUS,     /* reading the status line */
    S_HEADER,     /* reading header lines */
    S_BODY,       /* Content-Length body (left bytes) or until close (left < 0) */
    S_CHUNK_SIZE, /* reading a chunk-size line */
    S_CHUNK_DATA, /* reading chunk data (left bytes) */
    S_CHUNK_END,  /* expecting the CRLF after chunk data */
    S_TRAILER,    /* reading trailer lines after the last chunk */
    S_DONE        /* response complete */
};

void bc_http_reset(bc_http_t *h)
{
    memset(h, 0, sizeof *h);
    h->state = S_STATUS;
    h->retry_after = -1;
}

/* Appends c to the current line (truncating); returns true at the end of a line. */
static bool s_line_char(bc_http_t *h, char c)
{
    if (c == '\n') {
        if (h->line_len > 0 && h->line[h->line_len - 1] == '\r') {
            h->line_len--;
        }
        h->line[h->line_len] = 0;
        return true;
    }
    if (h->line_len < BC_HTTP_LINE - 1) {
        h->line[h->line_len++] = c;
    }
    return false;
}

static int s_status_line(bc_http_t *h)
{
    if (strncmp(h->line, "HTTP/1.", 7) != 0 || strlen(h->line) < 12) {
        return -1;
    }
    h->status = atoi(h->line + 9);
    return h->status >= 100 && h->status <= 599 ? 0 : -1;
}

static void s_header_line(bc_http_t *h)
{
    const char *colon = strchr(h->line, ':');
    if (!colon) {
        return;
    }
    size_t klen = (size_t)(colon - h->line);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (klen == 14 && strncasecmp(h->line, "content-length", 14) == 0) {
        h->left = strtoll(v, NULL, 10);
        h->have_length = true;
    } else if (klen == 17 && strncasecmp(h->line, "transfer-encoding", 17) == 0) {
        h->chunked = strcasestr(v, "chunked") != NULL;
    } else if (klen == 10 && strncasecmp(h->line, "connection", 10) == 0) {
        h->close = strcasestr(v, "close") != NULL;
    } else if (klen == 11 && strncasecmp(h->line, "retry-after", 11) == 0) {
        /* Delay-seconds only (what Bicky sends); an HTTP date reads as 0. */
        h->retry_after = (int)strtol(v, NULL, 10);
    }
}

/* The empty line after the headers: choose how the body is framed. */
static void s_headers_end(bc_http_t *h)
{
    if (h->chunked) {
        h->state = S_CHUNK_SIZE;
    } else if (h->have_length) {
        h->state = h->left > 0 ? S_BODY : S_DONE;
    } else if (h->status == 204 || h->status == 304) {
        h->state = S_DONE;
    } else {
        h->left = -1; /* until the connection closes */
        h->state = S_BODY;
    }
}

static int s_chunk_size(bc_http_t *h)
{
    if (!isxdigit((unsigned char)h->line[0])) {
        return -1;
    }
    h->left = strtoll(h->line, NULL, 16);
    if (h->left < 0) {
        return -1;
    }
    h->state = h->left == 0 ? S_TRAILER : S_CHUNK_DATA;
    return 0;
}

/* One complete line in a line-oriented state. */
static int s_line(bc_http_t *h)
{
    int rc = 0;
    switch (h->state) {
        case S_STATUS:
            rc = s_status_line(h);
            h->state = S_HEADER;
            break;
        case S_HEADER:
            if (h->line_len == 0) {
                s_headers_end(h);
            } else {
                s_header_line(h);
            }
            break;
        case S_CHUNK_SIZE:
            rc = s_chunk_size(h);
            break;
        case S_TRAILER:
            if (h->line_len == 0) {
                h->state = S_DONE;
            }
            break;
        default:
            rc = -1;
    }
    h->line_len = 0;
    return rc;
}

/* Body bytes of a Content-Length body or of a chunk; returns bytes consumed. */
static size_t s_body(bc_http_t *h, const char *p, size_t n, bc_body_fn *fn, void *arg)
{
    size_t take = h->left < 0 || (uint64_t)h->left > n ? n : (size_t)h->left;
    if (take > 0 && fn) {
        fn(arg, p, take);
    }
    if (h->left >= 0) {
        h->left -= (int64_t)take;
        if (h->left == 0) {
            h->state = h->state == S_BODY ? S_DONE : S_CHUNK_END;
        }
    }
    return take;
}

ssize_t bc_http_feed(bc_http_t *h, const char *p, size_t n, bc_body_fn *fn, void *arg, bool *done)
{
    size_t i = 0;
    *done = false;
    while (i < n && h->state != S_DONE) {
        if (h->state == S_BODY || h->state == S_CHUNK_DATA) {
            i += s_body(h, p + i, n - i, fn, arg);
            continue;
        }
        char c = p[i++];
        if (h->state == S_CHUNK_END) {
            if (c == '\n') {
                h->state = S_CHUNK_SIZE;
            } else if (c != '\r') {
                return -1;
            }
            continue;
        }
        if (s_line_char(h, c) && s_line(h) < 0) {
            return -1;
        }
    }
    *done = h->state == S_DONE;
    return (ssize_t)i;
}
