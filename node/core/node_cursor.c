/*  node_cursor — opaque list cursors: base64url (no padding) of a short text,
    "created_at|uuid" for conversations (keyset on (created_at, id)) or a
    decimal number for messages and events. Decoding validates everything:
    a cursor is client input. Pure functions; any thread. */
#include "common/util.h"
#include "node/core/node_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_TEXT_MAX 96 /* longest decoded text accepted */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *node_cursor_encode(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n / 3 * 4 + 5);
    if (!out) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)text;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        out[k++] = s_b64[(v >> 18) & 63];
        out[k++] = s_b64[(v >> 12) & 63];
        if (i + 1 < n) {
            out[k++] = s_b64[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[k++] = s_b64[v & 63];
        }
    }
    out[k] = 0;
    return out;
}

static int s_b64_value(char c)
{
    const char *p = c ? strchr(s_b64, c) : NULL;
    return p ? (int)(p - s_b64) : -1;
}

/* Decodes base64url into out (NUL-terminated, at most cap-1 bytes). -1 if malformed. */
static int s_decode(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 == 1 || n / 4 * 3 + 3 > cap - 1) {
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        size_t chunk = n - i < 4 ? n - i : 4;
        for (size_t j = 0; j < 4; j++) {
            int d = j < chunk ? s_b64_value(in[i + j]) : 0;
            if (d < 0) {
                return -1;
            }
            v = v << 6 | (uint32_t)d;
        }
        out[k++] = (char)(v >> 16);
        if (chunk > 2) {
            out[k++] = (char)(v >> 8 & 0xff);
        }
        if (chunk > 3) {
            out[k++] = (char)(v & 0xff);
        }
    }
    out[k] = 0;
    return strlen(out) == k ? 0 : -1;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" exactly: digits where digits belong. */
static bool s_valid_ts(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (strlen(ts) != sizeof shape - 1) {
        return false;
    }
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'd' ? (ts[i] >= '0' && ts[i] <= '9') : ts[i] == shape[i];
        if (!ok) {
            return false;
        }
    }
    int mon = (ts[5] - '0') * 10 + (ts[6] - '0');
    int day = (ts[8] - '0') * 10 + (ts[9] - '0');
    int hour = (ts[11] - '0') * 10 + (ts[12] - '0');
    int min = (ts[14] - '0') * 10 + (ts[15] - '0');
    int sec = (ts[17] - '0') * 10 + (ts[18] - '0');
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour < 24 && min < 60 && sec < 60;
}

int node_cursor_decode_conv(const char *cursor, char ts[40], char id[37])
{
    char text[CURSOR_TEXT_MAX];
    if (!cursor || s_decode(cursor, text, sizeof text) < 0) {
        return -1;
    }
    char *bar = strchr(text, '|');
    if (!bar) {
        return -1;
    }
    *bar = 0;
    uint8_t raw[16];
    if (!s_valid_ts(text) || util_uuid_parse(bar + 1, raw) < 0) {
        return -1;
    }
    snprintf(ts, 40, "%s", text);
    util_uuid_format(raw, id);
    return 0;
}

int node_cursor_decode_num(const char *cursor, long long *out)
{
    char text[CURSOR_TEXT_MAX];
    if (!cursor || s_decode(cursor, text, sizeof text) < 0) {
        return -1;
    }
    size_t n = strlen(text);
    if (n == 0 || n > 18) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
    }
    *out = strtoll(text, NULL, 10);
    return 0;
}

char *node_cursor_encode_num(long long n)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", n);
    return node_cursor_encode(text);
}
