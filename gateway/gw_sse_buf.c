/*  gw_sse_buf — Server-Sent Events framing, the bounded per-client output
    buffer and the seq rule of resumed streams. Pure functions over their arguments; any thread (the
   gateway uses them on its loop thread). */
#include "gateway/gateway_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char s_keepalive[] = ": keep-alive\n\n";

/* Copies src into dst with CR and LF turned into spaces: SSE fields end at
   a line break, and in JSON text raw line breaks are only whitespace. */
static size_t s_put_line(char *dst, const char *src)
{
    size_t n = 0;
    for (; src[n]; n++) {
        dst[n] = (src[n] == '\n' || src[n] == '\r') ? ' ' : src[n];
    }
    return n;
}

char *gw_sse_frame(uint64_t id, const char *type, const char *data, size_t *len)
{
    const char *t = type ? type : "message";
    const char *d = data ? data : "";
    size_t cap = strlen(t) + strlen(d) + 64;
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    size_t n = 0;
    if (id > 0) {
        n += (size_t)snprintf(out, cap, "id: %" PRIu64 "\n", id);
    }
    memcpy(out + n, "event: ", 7);
    n += 7;
    n += s_put_line(out + n, t);
    memcpy(out + n, "\ndata: ", 7);
    n += 7;
    n += s_put_line(out + n, d);
    memcpy(out + n, "\n\n", 3);
    n += 2;
    *len = n;
    return out;
}

const char *gw_sse_keepalive(size_t *len)
{
    *len = sizeof s_keepalive - 1;
    return s_keepalive;
}

void gw_sse_buf_init(gw_sse_buf_t *buf, size_t max, size_t frame_max)
{
    memset(buf, 0, sizeof *buf);
    buf->max = max;
    buf->frame_max = frame_max;
}

void gw_sse_buf_free(gw_sse_buf_t *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

int gw_sse_buf_append(gw_sse_buf_t *buf, const char *data, size_t len)
{
    if (len == 0) {
        return 0; /* an empty frame: an event the client's format skips */
    }
    if (len > buf->frame_max) {
        return GW_SSE_TOO_BIG; /* never grown for it: the caller closes the client */
    }
    if (buf->len > 0 && buf->len + len > buf->max) {
        return -1;
    }
    if (buf->off + buf->len + len > buf->cap) {
        /* Compact first; grow only when the unsent bytes need it. */
        if (buf->len) {
            memmove(buf->data, buf->data + buf->off, buf->len);
        }
        buf->off = 0;
        if (buf->len + len > buf->cap) {
            /* Grow geometrically from a small start: most clients only ever
               hold a few small frames, and a quiet SSE client should cost
               little (issue 6, P7). A lone frame over max (up to frame_max)
               gets its own size. */
            size_t need = buf->len + len;
            size_t cap = buf->cap ? buf->cap * 2 : GW_SSE_BUF_START;
            while (cap < need) {
                cap *= 2;
            }
            cap = cap > buf->max ? (need > buf->max ? need : buf->max) : cap;
            char *grown = realloc(buf->data, cap);
            if (!grown) {
                return -1;
            }
            buf->data = grown;
            buf->cap = cap;
        }
    }
    memcpy(buf->data + buf->off + buf->len, data, len);
    buf->len += len;
    return 0;
}

size_t gw_sse_buf_read(gw_sse_buf_t *buf, char *dst, size_t max)
{
    size_t n = buf->len < max ? buf->len : max;
    if (n == 0) {
        return 0;
    }
    memcpy(dst, buf->data + buf->off, n);
    buf->off += n;
    buf->len -= n;
    if (buf->len == 0) {
        /* Drained: give the memory back. An idle SSE client then holds no
           buffer between events and keep-alives (issue 6, P7). */
        free(buf->data);
        buf->data = NULL;
        buf->cap = 0;
        buf->off = 0;
    }
    return n;
}

bool gw_seq_gap(uint64_t seq, uint64_t last_seq, uint64_t last_id, bool resume, bool caught_up)
{
    if (!seq) {
        return false;
    }
    if (last_seq) {
        return seq > last_seq + 1;
    }
    return resume && !caught_up && (last_id == 0 ? seq > 1 : true);
}
