/*  node_json — small helpers for the node's JSON: a growable reply buffer,
    validated argument readers (never trusting the gateway) and number parsing.
    Loop thread only (no shared state). */
#include "node/core/node_core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void node_buf_init(node_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

/* Room for n more bytes and the NUL; false (b->oom set) when it cannot be had. */
static bool s_reserve(node_buf_t *b, size_t n)
{
    if (b->oom) {
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *data = realloc(b->data, cap);
        if (!data) {
            b->oom = true;
            return false;
        }
        b->data = data;
        b->cap = cap;
    }
    return true;
}

void node_buf_add(node_buf_t *b, const char *s, size_t n)
{
    if (!s_reserve(b, n)) {
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void node_buf_str(node_buf_t *b, const char *s)
{
    node_buf_add(b, s, strlen(s));
}

void node_buf_json_str(node_buf_t *b, const char *s)
{
    json_t *j = json_string(s);
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!text) {
        b->oom = true;
    } else {
        node_buf_str(b, text);
    }
    free(text);
    json_decref(j);
}

static bool s_json_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* End of the JSON string starting at p (on its opening quote): past its closing quote,
   or at the NUL of a cut text. strcspn: long contents are crossed many bytes at once. */
static const char *s_string_end(const char *p)
{
    for (p++;; p += 2) {
        p += strcspn(p, "\"\\");
        if (*p != '\\' || !p[1]) {
            return *p ? p + 1 : p;
        }
    }
}

void node_buf_json(node_buf_t *b, const char *json)
{
    if (!json) {
        node_buf_add(b, "null", 4);
        return;
    }
    /* Text Postgres printed (rows read back, JSON built in SQL): one reservation,
       strings crossed whole, and a copy of each run between two pieces of whitespace. */
    if (!s_reserve(b, strlen(json))) {
        return;
    }
    char *o = b->data + b->len;
    const char *run = json, *p = json;
    while (*p) {
        if (*p == '"') {
            p = s_string_end(p);
        } else if (s_json_space(*p)) {
            memcpy(o, run, (size_t)(p - run));
            o += p - run;
            while (s_json_space(*p)) {
                p++;
            }
            run = p;
        } else {
            p++;
        }
    }
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    *o = '\0';
    b->len = (size_t)(o - b->data);
}

void node_buf_free(node_buf_t *b)
{
    free(b->data);
    node_buf_init(b);
}

int node_arg_str(const json_t *obj, const char *key, size_t minlen, size_t maxlen, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    /* Lengths are characters of valid UTF-8, counted as the op table counts them
       (proto_utf8_len); a NUL (Postgres text cannot hold one) is refused too. */
    int64_t n = proto_utf8_len(json_string_value(v), json_string_length(v));
    if (n < 0 || (uint64_t)n < minlen || (uint64_t)n > maxlen) {
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int node_arg_int(const json_t *obj, const char *key, long long min, long long max, long long *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    long long n;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        /* Query-string values may arrive as text. */
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno || end == s || *end) {
            return -1;
        }
    } else {
        return -1;
    }
    if (n < min || n > max) {
        return -1;
    }
    *out = n;
    return 1;
}

int node_arg_object(const json_t *obj, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        return -1;
    }
    *out = v;
    return 1;
}

int node_arg_limit(const json_t *args, long long *out)
{
    *out = PROTO_LIST_DEFAULT;
    return node_arg_int(args, "limit", 1, PROTO_LIST_MAX, out) < 0 ? -1 : 0;
}

char *node_json_text(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

long long node_parse_ll(const char *text, long long dflt, long long min, long long max)
{
    if (!text) {
        return dflt;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text || *end) {
        return dflt;
    }
    return n < min ? min : n > max ? max : n;
}

void node_reply_list(node_t *node, node_req_t **req_p, const node_buf_t *rows, const char *cursor)
{
    node_buf_t out;
    node_buf_init(&out);
    node_buf_str(&out, "{\"data\":[");
    node_buf_add(&out, rows->data ? rows->data : "", rows->len);
    node_buf_str(&out, "],\"next_cursor\":");
    char *encoded = cursor ? node_cursor_encode(cursor) : NULL;
    if (encoded) {
        node_buf_json_str(&out, encoded);
    } else {
        node_buf_str(&out, "null");
    }
    node_buf_str(&out, "}");
    free(encoded);
    if (out.oom) {
        node_reply_busy(node, req_p, "out of memory");
    } else {
        node_reply(node, req_p, 200, out.data, 0);
    }
    node_buf_free(&out);
}
