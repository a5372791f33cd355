/*  agent_sse — incremental text/event-stream parser. Bytes are scanned for
    line ends; a partial line waits in `line` (bounded by max_line) until its
    end arrives. Complete lines update the pending event, and a blank line
    dispatches it. Loop thread of the owner only. */
#include "node/agent/agent_sse.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_EVENT_NAME 128 /* longer event names are an error */

struct agent_sse_t {
    size_t max_line;                  /* bound on one line */
    size_t max_event;                 /* bound on one event's data */
    agent_sse_event_fn *fn;           /* event callback */
    void *arg;                        /* its argument */
    char *line;                       /* partial line (no terminator) */
    size_t line_len, line_cap;        /* its length and allocation */
    char *data;                       /* data of the pending event */
    size_t data_len, data_cap;        /* its length and allocation */
    bool has_data;                    /* at least one data line was seen */
    char event[S_MAX_EVENT_NAME + 1]; /* event name of the pending event */
    bool pending;                     /* any field of an undispatched event seen */
    bool after_cr;                    /* last byte was CR: skip one LF that follows */
    bool bom_checked;                 /* the optional leading BOM was handled */
    char error[96];                   /* why the parser failed; "" while healthy */
};

agent_sse_t *agent_sse_new(size_t max_line, size_t max_event, agent_sse_event_fn *fn, void *arg)
{
    agent_sse_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->max_line = max_line ? max_line : AGENT_SSE_DEFAULT_MAX_LINE;
    self->max_event = max_event ? max_event : AGENT_SSE_DEFAULT_MAX_EVENT;
    self->fn = fn;
    self->arg = arg;
    return self;
}

void agent_sse_destroy(agent_sse_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->line);
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

static int s_fail(agent_sse_t *self, const char *what, size_t bound)
{
    if (bound) {
        snprintf(self->error, sizeof self->error, "%s longer than %zu bytes", what, bound);
    } else {
        snprintf(self->error, sizeof self->error, "%s", what);
    }
    return -1;
}

/* Grows *buf to hold need bytes plus a NUL; doubles to keep appends linear. */
static int s_reserve(char **buf, size_t *cap, size_t need)
{
    if (need + 1 <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need + 1) {
        ncap *= 2;
    }
    char *nbuf = realloc(*buf, ncap);
    if (!nbuf) {
        return -1;
    }
    *buf = nbuf;
    *cap = ncap;
    return 0;
}

static void s_reset_event(agent_sse_t *self)
{
    self->data_len = 0;
    self->has_data = false;
    self->event[0] = '\0';
    self->pending = false;
}

static int s_dispatch(agent_sse_t *self)
{
    if (!self->has_data) {
        /* The spec drops an event without data lines (e.g. only "event:"). */
        s_reset_event(self);
        return 0;
    }
    if (s_reserve(&self->data, &self->data_cap, self->data_len) != 0) {
        return s_fail(self, "out of memory", 0);
    }
    self->data[self->data_len] = '\0';
    const char *name = self->event[0] ? self->event : "message";
    int rc = self->fn ? self->fn(self->arg, name, self->data, self->data_len) : 0;
    s_reset_event(self);
    return rc == 0 ? 0 : s_fail(self, "stopped by callback", 0);
}

static int s_add_data(agent_sse_t *self, const char *value, size_t len)
{
    size_t need = self->data_len + (self->has_data ? 1 : 0) + len;
    if (need > self->max_event) {
        return s_fail(self, "event data", self->max_event);
    }
    if (s_reserve(&self->data, &self->data_cap, need) != 0) {
        return s_fail(self, "out of memory", 0);
    }
    if (self->has_data) {
        self->data[self->data_len++] = '\n';
    }
    memcpy(self->data + self->data_len, value, len);
    self->data_len += len;
    self->has_data = true;
    return 0;
}

/* One complete line without its terminator. */
static int s_line(agent_sse_t *self, const char *line, size_t len)
{
    if (!self->bom_checked) {
        /* One leading byte order mark is ignored (it is part of the first line). */
        self->bom_checked = true;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            len -= 3;
        }
    }
    if (len == 0) {
        return s_dispatch(self);
    }
    if (line[0] == ':') {
        return 0;
    }
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }
    self->pending = true;
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        return s_add_data(self, value, value_len);
    }
    if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        if (value_len > S_MAX_EVENT_NAME) {
            return s_fail(self, "event name", S_MAX_EVENT_NAME);
        }
        memcpy(self->event, value, value_len);
        self->event[value_len] = '\0';
    }
    /* "id", "retry" and unknown fields are ignored, as the spec says. */
    return 0;
}

static int s_append_line(agent_sse_t *self, const char *data, size_t len)
{
    if (self->line_len + len > self->max_line) {
        return s_fail(self, "line", self->max_line);
    }
    if (s_reserve(&self->line, &self->line_cap, self->line_len + len) != 0) {
        return s_fail(self, "out of memory", 0);
    }
    memcpy(self->line + self->line_len, data, len);
    self->line_len += len;
    return 0;
}

/* Ends the current line: the buffered prefix plus data[0..len). */
static int s_end_line(agent_sse_t *self, const char *data, size_t len)
{
    if (self->line_len == 0) {
        if (len > self->max_line) {
            return s_fail(self, "line", self->max_line);
        }
        return s_line(self, data, len);
    }
    if (s_append_line(self, data, len) != 0) {
        return -1;
    }
    size_t total = self->line_len;
    self->line_len = 0;
    return s_line(self, self->line, total);
}

int agent_sse_feed(agent_sse_t *self, const char *data, size_t len)
{
    if (self->error[0]) {
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c != '\r' && c != '\n') {
            self->after_cr = false;
            continue;
        }
        /* An LF right after a CR (maybe at the end of the previous chunk)
           completes that CRLF: the CR already ended the line. */
        bool skip = c == '\n' && self->after_cr;
        self->after_cr = c == '\r';
        if (!skip && s_end_line(self, data + start, i - start) != 0) {
            return -1;
        }
        start = i + 1;
    }
    return start < len ? s_append_line(self, data + start, len - start) : 0;
}

int agent_sse_pending(const agent_sse_t *self)
{
    return self->line_len > 0 || self->pending;
}

const char *agent_sse_error(const agent_sse_t *self)
{
    return self->error[0] ? self->error : NULL;
}
