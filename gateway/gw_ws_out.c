/*  gw_ws_out — a WebSocket's unsent output: the server's frames (never
    masked, so their headers can be read back), in a buffer allocated when
    the socket cannot take a frame at once and freed as soon as it drains.
    It knows where the frame already begun on the wire ends, so that a close
    can drop the frames queued behind it. Pure functions over their
    arguments; any thread (the gateway uses them on its loop thread). */
#include "gateway/gw_ws.h"

#include <stdlib.h>
#include <string.h>

#define S_START 1024 /* first allocation: most frames are a few hundred bytes */

size_t gw_ws_text_head(uint8_t head[GW_WS_HEAD_MAX], size_t len)
{
    head[0] = 0x81; /* FIN, text */
    if (len < 126) {
        head[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        head[1] = 126;
        head[2] = (uint8_t)(len >> 8);
        head[3] = (uint8_t)len;
        return 4;
    }
    head[1] = 127;
    for (int i = 0; i < 8; i++) {
        head[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    return 10;
}

/* The whole size of the unmasked frame starting at p (avail bytes there);
   avail when its header is cut short (it cannot be: frames are appended
   whole before any is consumed). */
static size_t s_frame_size(const uint8_t *p, size_t avail)
{
    if (avail < 2) {
        return avail;
    }
    uint64_t n = p[1] & 0x7f;
    size_t head = 2;
    if (n >= 126) {
        size_t ext = n == 126 ? 2 : 8;
        if (avail < 2 + ext) {
            return avail;
        }
        n = 0;
        for (size_t i = 0; i < ext; i++) {
            n = n << 8 | p[2 + i];
        }
        head += ext;
    }
    return head + (size_t)n;
}

void gw_ws_out_free(gw_ws_out_t *out)
{
    free(out->data);
    memset(out, 0, sizeof *out);
}

int gw_ws_out_append(gw_ws_out_t *out, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (out->off + out->len + len > out->cap) {
        if (out->len && out->off) {
            memmove(out->data, out->data + out->off, out->len);
        }
        out->off = 0;
        if (out->len + len > out->cap) {
            size_t need = out->len + len;
            size_t cap = out->cap ? out->cap * 2 : S_START;
            while (cap < need) {
                cap *= 2;
            }
            char *grown = realloc(out->data, cap);
            if (!grown) {
                return -1;
            }
            out->data = grown;
            out->cap = cap;
        }
    }
    memcpy(out->data + out->off + out->len, data, len);
    out->len += len;
    return 0;
}

int gw_ws_out_text(gw_ws_out_t *out, const char *text, size_t len, size_t sent)
{
    uint8_t head[GW_WS_HEAD_MAX];
    size_t hl = gw_ws_text_head(head, len);
    size_t before = out->len;
    if (gw_ws_out_append(out, head, hl) != 0 || gw_ws_out_append(out, text, len) != 0) {
        out->len = before; /* no half frame left behind */
        if (!out->len) {
            gw_ws_out_free(out);
        }
        return -1;
    }
    gw_ws_out_consume(out, sent);
    return 0;
}

void gw_ws_out_consume(gw_ws_out_t *out, size_t n)
{
    n = n < out->len ? n : out->len;
    if (n > out->begun) {
        /* Past the begun frame: walk the headers to the frame now begun. */
        const uint8_t *p = (const uint8_t *)out->data + out->off;
        size_t pos = out->begun;
        while (pos < n) {
            pos += s_frame_size(p + pos, out->len - pos);
        }
        out->begun = pos - n;
    } else {
        out->begun -= n;
    }
    out->off += n;
    out->len -= n;
    if (out->len == 0) {
        /* Drained: an idle socket holds no buffer (docs/performance.md, P10). */
        gw_ws_out_free(out);
    }
}

void gw_ws_out_keep_begun(gw_ws_out_t *out)
{
    out->len = out->begun < out->len ? out->begun : out->len;
    if (out->len == 0) {
        gw_ws_out_free(out);
    }
}
