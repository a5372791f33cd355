/*  json_rec — jsmn's tokens, checked so that what is accepted is valid JSON
    that jansson reads the same way (common/json_rec.h). jsmn in strict mode
    checks escapes' syntax and that primitives are ASCII, but not what lies
    between tokens (a missing comma, a trailing one), UTF-8, control
    characters or numbers; so after it tokenizes, every byte of the record is
    either inside a token this file checked or in a gap between two tokens
    that must hold exactly the separator the grammar puts there. */
#include "common/json_rec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <jsmn.h>
#pragma GCC diagnostic pop

struct json_rec_t {
    jsmntok_t tok[JSON_REC_TOKENS];      /* the record's tokens */
    json_rec_field_t f[JSON_REC_FIELDS]; /* its members */
    int n;                               /* used */
    char *scratch;                       /* keys and texts, NUL-terminated */
    size_t used, cap;                    /* of scratch */
};

json_rec_t *json_rec_new(void)
{
    return calloc(1, sizeof(json_rec_t));
}

void json_rec_destroy(json_rec_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->scratch);
        free(*self_p);
        *self_p = NULL;
    }
}

int json_rec_count(const json_rec_t *self)
{
    return self->n;
}

const json_rec_field_t *json_rec_field(const json_rec_t *self, int i)
{
    return i >= 0 && i < self->n ? &self->f[i] : NULL;
}

const json_rec_field_t *json_rec_get(const json_rec_t *self, const char *key)
{
    for (int i = 0; i < self->n; i++) {
        if (strcmp(self->f[i].key, key) == 0) {
            return &self->f[i];
        }
    }
    return NULL;
}

/* ---- checks ------------------------------------------------------------------------------ */

static bool s_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* True when js[from, to) is whitespace around exactly sep (0: whitespace only). */
static bool s_gap(const char *js, int from, int to, char sep)
{
    if (from > to) {
        return false;
    }
    while (from < to && s_ws(js[from])) {
        from++;
    }
    if (sep) {
        if (from >= to || js[from] != sep) {
            return false;
        }
        from++;
        while (from < to && s_ws(js[from])) {
            from++;
        }
    }
    return from == to;
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* The code point of the \uXXXX at s (jsmn checked its four hex digits). */
static unsigned s_u(const char *s)
{
    return (unsigned)(s_hex(s[2]) << 12 | s_hex(s[3]) << 8 | s_hex(s[4]) << 4 | s_hex(s[5]));
}

/* Bytes of the UTF-8 sequence at s (n bytes left), 0 when invalid: overlong,
   a surrogate, past U+10FFFF or cut short (RFC 3629, as jansson checks). */
static int s_utf8(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len = c < 0x80                 ? 1
              : c >= 0xC2 && c <= 0xDF ? 2
              : c >= 0xE0 && c <= 0xEF ? 3
              : c >= 0xF0 && c <= 0xF4 ? 4
                                       : 0;
    if (len == 0 || (size_t)len > n) {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F)) {
        return 0;
    }
    return len;
}

/* True when the string s (n bytes between its quotes) is one jansson reads
   as this file does: valid UTF-8, no control character, no \u0000, no
   escaped surrogate. *esc tells whether it has escapes. */
static bool s_string_ok(const char *s, size_t n, bool *esc)
{
    *esc = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            *esc = true;
            if (s[i + 1] == 'u') {
                unsigned u = s_u(s + i);
                if (u == 0 || (u >= 0xD800 && u <= 0xDFFF)) {
                    return false;
                }
                i += 6;
            } else {
                i += 2;
            }
        } else if (c < 0x20) {
            return false;
        } else if (c < 0x80) {
            i++;
        } else {
            int len = s_utf8((const unsigned char *)s + i, n - i);
            if (len == 0) {
                return false;
            }
            i += (size_t)len;
        }
    }
    return true;
}

/* The primitive's type; -1 when this file declines it (reals, integers of
   more than 18 digits, -0, anything not JSON). */
static int s_prim(const char *s, size_t n, long long *value)
{
    if (n == 4 && memcmp(s, "true", 4) == 0) {
        return JSON_REC_TRUE;
    }
    if (n == 5 && memcmp(s, "false", 5) == 0) {
        return JSON_REC_FALSE;
    }
    if (n == 4 && memcmp(s, "null", 4) == 0) {
        return JSON_REC_NULL;
    }
    size_t i = s[0] == '-';
    size_t digits = n - i;
    if (digits < 1 || digits > 18 || (s[i] == '0' && (digits > 1 || i))) {
        return -1;
    }
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *value = s[0] == '-' ? -v : v;
    return JSON_REC_INT;
}

/* Where token t's text begins and ends (a string's quotes included). */
static int s_begin(const jsmntok_t *t)
{
    return t->type == JSMN_STRING ? t->start - 1 : t->start;
}

static int s_end(const jsmntok_t *t)
{
    return t->type == JSMN_STRING ? t->end + 1 : t->end;
}

static int s_value(const char *js, const jsmntok_t *t, int i, int nt);

/* Checks the object or array at token i and its members; the token after
   them, or -1. */
static int s_container(const char *js, const jsmntok_t *t, int i, int nt)
{
    bool obj = t[i].type == JSMN_OBJECT, esc;
    int pos = t[i].start + 1, j = i + 1;
    for (int k = 0; k < t[i].size; k++) {
        if (j >= nt || !s_gap(js, pos, s_begin(&t[j]), k ? ',' : 0)) {
            return -1;
        }
        if (obj) {
            if (t[j].type != JSMN_STRING || t[j].size != 1 ||
                !s_string_ok(js + t[j].start, (size_t)(t[j].end - t[j].start), &esc) || esc) {
                return -1;
            }
            pos = s_end(&t[j++]);
            if (j >= nt || !s_gap(js, pos, s_begin(&t[j]), ':')) {
                return -1;
            }
        }
        int next = s_value(js, t, j, nt);
        if (next < 0) {
            return -1;
        }
        /* The value's text ends where its token (its subtree's root) ends. */
        pos = s_end(&t[j]);
        j = next;
    }
    return s_gap(js, pos, t[i].end - 1, 0) ? j : -1;
}

/* Checks the value at token i; the token after its subtree, or -1. */
static int s_value(const char *js, const jsmntok_t *t, int i, int nt)
{
    bool esc;
    long long v;
    switch (t[i].type) {
        case JSMN_STRING:
            return t[i].size == 0 &&
                           s_string_ok(js + t[i].start, (size_t)(t[i].end - t[i].start), &esc)
                       ? i + 1
                       : -1;
        case JSMN_PRIMITIVE:
            return t[i].size == 0 &&
                           s_prim(js + t[i].start, (size_t)(t[i].end - t[i].start), &v) >= 0
                       ? i + 1
                       : -1;
        case JSMN_OBJECT:
        case JSMN_ARRAY:
            return s_container(js, t, i, nt);
        default:
            return -1;
    }
}

/* True when some object has a key twice (keys hold no escapes: their bytes compare). */
static bool s_repeated_key(const char *js, const jsmntok_t *t, int nt)
{
    for (int i = 1; i < nt; i++) {
        if (t[i].type != JSMN_STRING || t[i].size != 1) {
            continue;
        }
        int n = t[i].end - t[i].start;
        for (int j = i + 1; j < nt; j++) {
            if (t[j].type == JSMN_STRING && t[j].size == 1 && t[j].parent == t[i].parent &&
                t[j].end - t[j].start == n &&
                memcmp(js + t[i].start, js + t[j].start, (size_t)n) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* ---- members ----------------------------------------------------------------------------- */

/* Copies n bytes of s into the scratch, NUL-terminated; returns the copy. */
static char *s_copy(json_rec_t *self, const char *s, size_t n)
{
    char *out = self->scratch + self->used;
    memcpy(out, s, n);
    out[n] = 0;
    self->used += n + 1;
    return out;
}

/* Appends code point u as UTF-8 at out; bytes written. */
static size_t s_put_utf8(char *out, unsigned u)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | u >> 6);
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | u >> 12);
    out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
    out[2] = (char)(0x80 | (u & 0x3F));
    return 3;
}

/* Unescapes the checked string s (n bytes) into the scratch; returns it, its length in *len. */
static char *s_unescape(json_rec_t *self, const char *s, size_t n, size_t *len)
{
    const char *bs = memchr(s, '\\', n);
    if (!bs) {
        *len = n;
        return s_copy(self, s, n);
    }
    char *out = self->scratch + self->used, *o = out;
    size_t head = (size_t)(bs - s);
    memcpy(o, s, head);
    o += head;
    for (size_t i = head; i < n;) {
        if (s[i] != '\\') {
            *o++ = s[i++];
            continue;
        }
        char e = s[i + 1];
        if (e == 'u') {
            o += s_put_utf8(o, s_u(s + i));
            i += 6;
            continue;
        }
        *o++ = e == 'b'   ? '\b'
               : e == 'f' ? '\f'
               : e == 'n' ? '\n'
               : e == 'r' ? '\r'
               : e == 't' ? '\t'
                          : e;
        i += 2;
    }
    *o = 0;
    *len = (size_t)(o - out);
    self->used += *len + 1;
    return out;
}

int json_rec_parse(json_rec_t *self, const char *buf, size_t len)
{
    self->n = 0;
    self->used = 0;
    if (len >= INT32_MAX / 2) {
        return 0;
    }
    jsmn_parser p;
    jsmn_init(&p);
    int nt = jsmn_parse(&p, buf, len, self->tok, JSON_REC_TOKENS);
    const jsmntok_t *t = self->tok;
    if (nt < 1 || t[0].type != JSMN_OBJECT || t[0].size > JSON_REC_FIELDS ||
        !s_gap(buf, 0, t[0].start, 0) || !s_gap(buf, t[0].end, (int)len, 0) ||
        s_container(buf, t, 0, nt) != nt || s_repeated_key(buf, t, nt)) {
        return 0;
    }
    /* Every copy is at most its token's text plus a NUL (an escape never
       unescapes to more bytes than it takes). */
    if (self->cap < len + JSON_REC_TOKENS + 1) {
        char *grown = realloc(self->scratch, len + JSON_REC_TOKENS + 1);
        if (!grown) {
            return -1;
        }
        self->scratch = grown;
        self->cap = len + JSON_REC_TOKENS + 1;
    }
    int i = 1;
    for (int k = 0; k < t[0].size; k++) {
        json_rec_field_t *f = &self->f[k];
        const jsmntok_t *v = &t[i + 1];
        f->key = s_copy(self, buf + t[i].start, (size_t)(t[i].end - t[i].start));
        f->i = 0;
        size_t n = (size_t)(v->end - v->start);
        if (v->type == JSMN_STRING) {
            f->type = JSON_REC_STRING;
            f->text = s_unescape(self, buf + v->start, n, &f->len);
        } else {
            f->type = v->type == JSMN_OBJECT  ? JSON_REC_OBJECT
                      : v->type == JSMN_ARRAY ? JSON_REC_ARRAY
                                              : (json_rec_type_t)s_prim(buf + v->start, n, &f->i);
            f->text = s_copy(self, buf + v->start, n);
            f->len = n;
        }
        /* The next member's key: the first token past this value's text. */
        for (i += 2; i < nt && t[i].start < v->end; i++) {
        }
    }
    self->n = t[0].size;
    return 1;
}
