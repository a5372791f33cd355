/*  ws_conn — the WebSocket listeners of the load generator (sse_clients
    --ws, P10): each connects to /socket/websocket?vsn=2.0.0 with its token in
    the Authorization header and, in the same packet, sends a Phoenix v2 join
    of its conversation with last_event_id 0 (so it gets the stored events
    from the first, as an SSE listener with ?after=0 does). The 101 head is
    skipped, then server frames are parsed incrementally; of each text frame
    the first SC_LINE bytes are kept, enough for [join_ref, ref, topic, event,
    {"id", "conversation_id", "seq"…. The join's ok reply makes the listener
    ready; each pushed event goes to the same accounting as an SSE event
    (sc_client_event). Heartbeats keep the sockets past the gateway's 60 s
    silence limit. Single-threaded. */
#include "bench/sse_clients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HB_US 20000000 /* heartbeat period per socket */

/* A masked client text frame of payload (< 126 bytes) into out; its length. */
static size_t s_frame(const char *payload, char *out)
{
    size_t n = strlen(payload);
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78}; /* the server unmasks any key */
    out[0] = (char)0x81;
    out[1] = (char)(0x80 | n);
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < n; i++) {
        out[6 + i] = (char)(payload[i] ^ key[i % 4]);
    }
    return n + 6;
}

int sc_ws_request(sc_t *sc, const sc_client_t *c, char *out, size_t cap)
{
    char join[128];
    int j = snprintf(join, sizeof join,
                     "[\"1\",\"1\",\"conversation:%s\",\"phx_join\",{\"last_event_id\":0}]",
                     sc->convs[c->conv].id);
    int n = snprintf(out, cap,
                     "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     sc->host, sc->o.token);
    if (j <= 0 || j >= 126 || n <= 0 || (size_t)n + (size_t)j + 6 >= cap) {
        return -1;
    }
    return n + (int)s_frame(join, out + n);
}

/* The number after key's colon in text, or 0. */
static int64_t s_num(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p) {
        return 0;
    }
    p += strlen(key);
    p += strspn(p, " ");
    return *p == ':' ? strtoll(p + 1, NULL, 10) : 0;
}

/* One text message (its first bytes in c->line). */
static void s_message(sc_t *sc, sc_client_t *c)
{
    const char *l = c->line;
    /* [join_ref,ref,"topic","event",payload: the refs and topic hold no comma. */
    const char *p = l;
    for (int k = 0; k < 3 && p; k++) {
        p = strchr(p + 1, ',');
    }
    if (!p || p[1] != '"') {
        return;
    }
    const char *ev = p + 2, *end = strchr(ev, '"');
    if (!end) {
        return;
    }
    size_t len = (size_t)(end - ev);
    if (len == 9 && strncmp(ev, "phx_reply", 9) == 0) {
        if (!c->ready && strncmp(l, "[\"1\",\"1\",", 9) == 0 && strstr(end, "\"ok\"")) {
            c->ready = true;
            sc->ready++;
            sc->connecting--;
        }
        return; /* heartbeat replies */
    }
    int kind = len == 15 && strncmp(ev, "message.created", len) == 0     ? SC_K_CREATED
               : len == 17 && strncmp(ev, "message.completed", len) == 0 ? SC_K_COMPLETED
               : len == 13 && strncmp(ev, "message.delta", len) == 0     ? SC_K_DELTA
                                                                         : SC_K_OTHER;
    c->ev_kind = (uint8_t)kind;
    c->ev_id = kind == SC_K_DELTA ? 0 : s_num(end, "\"id\"");
    c->ev_seq = kind == SC_K_DELTA ? 0 : s_num(end, "\"seq\"");
    sc_client_event(sc, c);
}

/* Frame header bytes needed once the first two are known (server frames are
   not masked). */
static size_t s_hdr_need(const uint8_t *h)
{
    size_t n = h[1] & 0x7F;
    return n == 126 ? 4 : n == 127 ? 10 : 2;
}

/* The 101 head: skipped up to its blank line; -1 when the status is not 101. */
static size_t s_head(sc_client_t *c, const char *p, size_t n, bool *bad)
{
    size_t i = 0;
    for (; i < n && c->ws_head < 4; i++) {
        if (c->line_len < SC_LINE - 1) {
            c->line[c->line_len++] = p[i];
            c->line[c->line_len] = 0;
        }
        static const char crlf[] = "\r\n\r\n";
        c->ws_head = p[i] == crlf[c->ws_head] ? c->ws_head + 1 : p[i] == '\r' ? 1 : 0;
    }
    if (c->ws_head == 4) {
        *bad = strncmp(c->line, "HTTP/1.1 101", 12) != 0;
        c->line_len = 0;
    }
    return i;
}

int sc_ws_feed(sc_t *sc, sc_client_t *c, const char *p, size_t n)
{
    bool bad = false;
    size_t i = c->ws_head < 4 ? s_head(c, p, n, &bad) : 0;
    if (bad) {
        return -1;
    }
    while (i < n) {
        if (c->ws_hdr_len < 2 || c->ws_hdr_len < s_hdr_need(c->ws_hdr)) {
            c->ws_hdr[c->ws_hdr_len++] = (uint8_t)p[i++];
            if (c->ws_hdr_len < 2 || c->ws_hdr_len < s_hdr_need(c->ws_hdr)) {
                continue;
            }
            const uint8_t *h = c->ws_hdr;
            uint64_t len = h[1] & 0x7F;
            if (len == 126) {
                len = ((uint64_t)h[2] << 8) | h[3];
            } else if (len == 127) {
                len = 0;
                for (int k = 2; k < 10; k++) {
                    len = (len << 8) | h[k];
                }
            }
            c->ws_left = len;
            c->line_len = 0;
        } else {
            size_t take = n - i < c->ws_left ? n - i : (size_t)c->ws_left;
            size_t keep = SC_LINE - 1 - c->line_len;
            keep = keep < take ? keep : take;
            memcpy(c->line + c->line_len, p + i, keep);
            c->line_len = (uint16_t)(c->line_len + keep);
            c->ws_left -= take;
            i += take;
        }
        if (c->ws_hdr_len >= 2 && c->ws_hdr_len == s_hdr_need(c->ws_hdr) && c->ws_left == 0) {
            uint8_t op = c->ws_hdr[0] & 0x0F;
            c->line[c->line_len] = 0;
            c->ws_hdr_len = 0;
            if (op == 8) {
                return -1; /* the server closed */
            }
            if (op == 1) {
                s_message(sc, c);
            }
        }
    }
    return 0;
}

void sc_ws_heartbeats(sc_t *sc)
{
    int64_t now = bc_now_us();
    if (now - sc->ws_hb_us < S_HB_US) {
        return;
    }
    sc->ws_hb_us = now;
    char hb[64];
    size_t n = s_frame("[null,\"h\",\"phoenix\",\"heartbeat\",{}]", hb);
    for (size_t i = 0; i < sc->nclients; i++) {
        if (sc->clients[i].fd >= 0 && sc->clients[i].ready) {
            bc_write_all(sc->clients[i].fd, hb, n);
        }
    }
}
