/*  reg_ctl_import_http — `bickyctl import --follow`'s HTTP side: plain GETs
    of the old server's routes into a bounded buffer, and its SSE stream
    (GET /stream) read line by line through a bounded line buffer, calling
    back per event. libcurl easy handles, blocking (the CLI has no loop); a
    signal's stop flag aborts a transfer from the progress callback. */
#include "registry/reg_ctl_import.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECT_S   10  /* seconds to connect */
#define S_GET_S       120 /* seconds for one GET */
#define S_STREAM_IDLE 90  /* seconds without a byte (keep-alives count) before a stream is dead */

struct imp_http_t {
    char *base;                   /* base URL without a trailing / */
    struct curl_slist *headers;   /* Authorization, Accept */
    volatile sig_atomic_t *stop;  /* set by the signal handler */
    char errbuf[CURL_ERROR_SIZE]; /* curl's last message */
};

typedef struct {
    char *buf;    /* body bytes, NUL-terminated */
    size_t len;   /* used */
    size_t cap;   /* allocated */
    bool too_big; /* the body passed IMP_RECORD_MAX */
} s_body_t;

/* The SSE parser of one stream. */
typedef struct {
    imp_sse_fn *fn;    /* callback */
    void *arg;         /* its argument */
    bool opened;       /* fn was called with NULL */
    bool failed;       /* fn returned -1 */
    char *line;        /* the current line (IMP_SSE_LINE_MAX + 1 bytes) */
    size_t len;        /* used */
    bool overlong;     /* the current line passed the limit: dropped */
    char *data;        /* the event's data lines, joined by \n */
    size_t dlen;       /* used */
    long long dropped; /* overlong lines or events dropped */
} s_sse_t;

imp_http_t *imp_http_new(const char *base, const char *token, volatile sig_atomic_t *stop)
{
    imp_http_t *self = calloc(1, sizeof *self);
    if (!self || !(self->base = strdup(base))) {
        free(self);
        return NULL;
    }
    size_t n = strlen(self->base);
    while (n > 0 && self->base[n - 1] == '/') {
        self->base[--n] = 0;
    }
    self->stop = stop;
    self->headers = curl_slist_append(NULL, "Accept: application/json, text/event-stream");
    if (token && *token) {
        size_t len = strlen(token) + 32;
        char *h = malloc(len);
        if (h) {
            snprintf(h, len, "Authorization: Bearer %s", token);
            struct curl_slist *more = curl_slist_append(self->headers, h);
            self->headers = more ? more : self->headers;
            free(h);
        }
    }
    return self;
}

void imp_http_destroy(imp_http_t **self_p)
{
    if (self_p && *self_p) {
        imp_http_t *self = *self_p;
        curl_slist_free_all(self->headers);
        free(self->base);
        free(self);
        *self_p = NULL;
    }
}

static int s_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    const imp_http_t *self = arg;
    return *self->stop ? 1 : 0;
}

/* An easy handle for base + path (path starts with /), or NULL. */
static CURL *s_handle(imp_http_t *self, const char *path)
{
    size_t len = strlen(self->base) + strlen(path) + 1;
    char *url = malloc(len);
    CURL *h = url ? curl_easy_init() : NULL;
    if (h) {
        snprintf(url, len, "%s%s", self->base, path);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, self->headers);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)S_CONNECT_S);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, self);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, self->errbuf);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        self->errbuf[0] = 0;
    }
    free(url);
    return h;
}

static void s_curl_err(imp_http_t *self, CURLcode rc, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", self->errbuf[0] ? self->errbuf : curl_easy_strerror(rc));
}

/* ---- GET ---------------------------------------------------------------------------------- */

static size_t s_body_write(char *p, size_t size, size_t n, void *arg)
{
    s_body_t *b = arg;
    size_t len = size * n;
    if (b->len + len + 1 > (size_t)IMP_RECORD_MAX) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        char *grown = realloc(b->buf, cap);
        if (!grown) {
            return 0;
        }
        b->buf = grown;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = 0;
    return len;
}

int imp_http_get(imp_http_t *self, const char *path, char **body, char *err, size_t errlen)
{
    s_body_t b = {0};
    CURL *h = s_handle(self, path);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)S_GET_S);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        *body = b.buf ? b.buf : strdup("");
        b.buf = NULL;
    } else if (b.too_big) {
        snprintf(err, errlen, "GET %s: the answer is longer than %ld bytes", path, IMP_RECORD_MAX);
    } else {
        s_curl_err(self, rc, err, errlen);
    }
    free(b.buf);
    curl_easy_cleanup(h);
    return (int)status;
}

/* ---- the SSE stream ----------------------------------------------------------------------- */

/* Handles one complete line of the stream (without its end of line). */
static void s_sse_line(s_sse_t *s)
{
    if (s->len == 0) { /* a blank line ends the event */
        if (s->dlen > 0 && !s->failed) {
            s->data[s->dlen] = 0;
            s->failed = s->fn(s->arg, s->data) < 0;
        }
        s->dlen = 0;
        return;
    }
    if (s->len < 5 || memcmp(s->line, "data:", 5) != 0) {
        return; /* comments (keep-alives), id:, event:, retry: */
    }
    size_t skip = s->len > 5 && s->line[5] == ' ' ? 6 : 5, n = s->len - skip;
    if (s->dlen + n + 1 > IMP_SSE_LINE_MAX) {
        s->dropped++;
        return;
    }
    if (s->dlen > 0) {
        s->data[s->dlen++] = '\n';
    }
    memcpy(s->data + s->dlen, s->line + skip, n);
    s->dlen += n;
}

static size_t s_sse_write(char *p, size_t size, size_t n, void *arg)
{
    s_sse_t *s = arg;
    size_t len = size * n;
    if (!s->opened) {
        s->opened = true;
        s->failed = s->fn(s->arg, NULL) < 0;
    }
    for (size_t i = 0; i < len && !s->failed; i++) {
        char c = p[i];
        if (c == '\n') {
            if (s->overlong) {
                s->dropped++;
            } else {
                s->len -= s->len > 0 && s->line[s->len - 1] == '\r';
                s_sse_line(s);
            }
            s->len = 0;
            s->overlong = false;
        } else if (s->len < IMP_SSE_LINE_MAX) {
            s->line[s->len++] = c;
        } else {
            s->overlong = true;
        }
    }
    return s->failed ? 0 : len;
}

int imp_http_stream(
    imp_http_t *self, const char *path, imp_sse_fn *fn, void *arg, char *err, size_t errlen)
{
    s_sse_t s = {.fn = fn, .arg = arg};
    s.line = malloc(IMP_SSE_LINE_MAX + 1);
    s.data = malloc(IMP_SSE_LINE_MAX + 1);
    CURL *h = s.line && s.data ? s_handle(self, path) : NULL;
    if (!h) {
        free(s.line);
        free(s.data);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_sse_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)S_STREAM_IDLE);
    CURLcode rc = curl_easy_perform(h);
    int out = 0;
    if (*self->stop || s.failed) {
        out = 1;
    } else if (rc == CURLE_OK) {
        snprintf(err, errlen, "the server closed the stream");
    } else {
        s_curl_err(self, rc, err, errlen);
        out = s.opened ? 0 : -1;
    }
    if (s.dropped > 0 && out != 1) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used, " (%lld line(s) over %d bytes dropped)", s.dropped,
                 IMP_SSE_LINE_MAX);
    }
    curl_easy_cleanup(h);
    free(s.line);
    free(s.data);
    return out;
}
