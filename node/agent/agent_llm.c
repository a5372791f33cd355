/*  agent_llm — one streaming model call: builds the request through the
    provider table, runs it on agent_http, feeds the body to the SSE parser
    (or keeps it as the error body for a non-2xx status), and at the end of
    the transfer decides between on_done (with the assembled tool calls) and
    on_error. Callbacks are bracketed by `depth` so that a cancel from inside
    one only marks the request and the code that called it frees it.
    Loop thread only. */
#define LOG_MODULE "agent_llm"
#include "node/agent/agent_llm_internal.h"

#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECT_TIMEOUT_MS 10000 /* bound on connecting, within timeout_s */

static void s_free(agent_llm_request_t *self)
{
    agent_sse_destroy(&self->sse);
    free(self->errbody);
    for (size_t i = 0; i < self->ntools; i++) {
        free(self->tools[i].id);
        free(self->tools[i].name);
        free(self->tools[i].args);
        json_decref(self->tools[i].input);
    }
    free(self->tools);
    free(self);
}

const char *agent_llm_err_kind_name(agent_llm_err_kind_t kind)
{
    switch (kind) {
        case AGENT_LLM_ERR_REQUEST:
            return "request";
        case AGENT_LLM_ERR_HTTP:
            return "http";
        case AGENT_LLM_ERR_TIMEOUT:
            return "timeout";
        case AGENT_LLM_ERR_NETWORK:
            return "network";
        case AGENT_LLM_ERR_PROTOCOL:
            return "protocol";
        case AGENT_LLM_ERR_PROVIDER:
            return "provider";
    }
    return "unknown";
}

static void
s_error_vset(agent_llm_error_t *err, agent_llm_err_kind_t kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
s_error_vset(agent_llm_error_t *err, agent_llm_err_kind_t kind, const char *fmt, va_list ap)
{
    err->kind = kind;
    vsnprintf(err->reason, sizeof err->reason, fmt, ap);
    /* Provider text ends up in events and logs: keep it on one line. */
    for (char *c = err->reason; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = ' ';
        }
    }
}

void agent_llm_error_set(agent_llm_error_t *err, agent_llm_err_kind_t kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_error_vset(err, kind, fmt, ap);
    va_end(ap);
}

int agent_llm_fail(agent_llm_request_t *self, agent_llm_err_kind_t kind, const char *fmt, ...)
{
    if (!self->failed) {
        self->failed = true;
        va_list ap;
        va_start(ap, fmt);
        s_error_vset(&self->err, kind, fmt, ap);
        va_end(ap);
        self->err.http_status = self->status;
    }
    return -1;
}

json_t *agent_llm_parse_chunk(agent_llm_request_t *self, const char *data, size_t len)
{
    json_error_t jerr;
    json_t *chunk = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!chunk) {
        agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "malformed JSON in the %s stream: %s",
                       self->prov->name, jerr.text);
        return NULL;
    }
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "%s stream chunk is not a JSON object",
                       self->prov->name);
        return NULL;
    }
    return chunk;
}

int agent_llm_emit_text(agent_llm_request_t *self, const char *text, size_t len)
{
    if (len == 0 || !self->cb.on_text) {
        return 0;
    }
    self->depth++;
    self->cb.on_text(self->arg, text, len);
    self->depth--;
    return self->cancelled ? -1 : 0;
}

agent_llm_tool_t *agent_llm_tool(agent_llm_request_t *self, int index, bool create)
{
    for (size_t i = 0; i < self->ntools; i++) {
        if (self->tools[i].index == index) {
            return &self->tools[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (self->ntools >= AGENT_LLM_MAX_TOOL_CALLS) {
        agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "more than %d tool calls in one response",
                       AGENT_LLM_MAX_TOOL_CALLS);
        return NULL;
    }
    agent_llm_tool_t *tools = realloc(self->tools, (self->ntools + 1) * sizeof *tools);
    if (!tools) {
        agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "out of memory");
        return NULL;
    }
    self->tools = tools;
    agent_llm_tool_t *t = &self->tools[self->ntools++];
    memset(t, 0, sizeof *t);
    t->index = index;
    return t;
}

int agent_llm_tool_set(agent_llm_request_t *self, char **field, const char *value)
{
    if (*field || !value || !value[0]) {
        return 0;
    }
    if (strlen(value) > 256) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "tool call id or name too long");
    }
    if (!(*field = strdup(value))) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "out of memory");
    }
    return 0;
}

int agent_llm_tool_append(agent_llm_request_t *self,
                          agent_llm_tool_t *t,
                          const char *frag,
                          size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (t->args_len + len > AGENT_LLM_MAX_TOOL_ARGS) {
        return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL,
                              "tool call arguments longer than %d bytes", AGENT_LLM_MAX_TOOL_ARGS);
    }
    if (t->args_len + len + 1 > t->args_cap) {
        size_t cap = t->args_cap ? t->args_cap : 256;
        while (cap < t->args_len + len + 1) {
            cap *= 2;
        }
        char *args = realloc(t->args, cap);
        if (!args) {
            return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "out of memory");
        }
        t->args = args;
        t->args_cap = cap;
    }
    memcpy(t->args + t->args_len, frag, len);
    t->args_len += len;
    t->args[t->args_len] = '\0';
    return 0;
}

void agent_llm_set_stop(agent_llm_request_t *self, const char *reason)
{
    if (reason && reason[0]) {
        snprintf(self->stop_reason, sizeof self->stop_reason, "%s", reason);
    }
}

/* --- end of a transfer ---------------------------------------------------- */

static void s_http_error(agent_llm_request_t *self)
{
    const char *msg = NULL;
    json_t *body = self->errbody ? json_loadb(self->errbody, self->errbody_len, 0, NULL) : NULL;
    json_t *e = json_object_get(body, "error");
    if (json_is_object(e)) {
        msg = json_string_value(json_object_get(e, "message"));
    } else if (json_is_string(e)) {
        msg = json_string_value(e);
    }
    if (!msg) {
        msg = json_string_value(json_object_get(body, "message"));
    }
    if (msg) {
        agent_llm_fail(self, AGENT_LLM_ERR_HTTP, "HTTP %ld: %.400s", self->status, msg);
    } else if (self->errbody_len) {
        agent_llm_fail(self, AGENT_LLM_ERR_HTTP, "HTTP %ld: %.*s", self->status,
                       (int)(self->errbody_len > 200 ? 200 : self->errbody_len), self->errbody);
    } else {
        agent_llm_fail(self, AGENT_LLM_ERR_HTTP, "HTTP %ld with an empty body", self->status);
    }
    json_decref(body);
}

static int s_cmp_tool(const void *a, const void *b)
{
    const agent_llm_tool_t *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

/* Parses every call's arguments; fails the whole response on a bad one so a
   caller never sees half of a set of tool calls. */
static int s_parse_args(agent_llm_request_t *self, json_t **args)
{
    for (size_t i = 0; i < self->ntools; i++) {
        agent_llm_tool_t *t = &self->tools[i];
        if (!t->name) {
            return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "tool call %zu has no name", i);
        }
        if (t->args_len == 0) {
            args[i] = t->input ? json_incref(t->input) : json_object();
        } else {
            args[i] = json_loadb(t->args, t->args_len, 0, NULL);
        }
        if (!json_is_object(args[i])) {
            return agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL,
                                  "arguments of tool call '%.64s' are not a JSON object", t->name);
        }
    }
    return 0;
}

static void s_deliver(agent_llm_request_t *self)
{
    json_t *args[AGENT_LLM_MAX_TOOL_CALLS] = {NULL};
    if (self->ntools > 1) {
        qsort(self->tools, self->ntools, sizeof *self->tools, s_cmp_tool);
    }
    if (s_parse_args(self, args) == 0) {
        if (!self->stop_reason[0]) {
            agent_llm_set_stop(self, self->ntools ? "tool_use" : "end_turn");
        }
        self->depth++;
        for (size_t i = 0; i < self->ntools && !self->cancelled; i++) {
            char id[32];
            snprintf(id, sizeof id, "call_%zu", i);
            agent_llm_tool_t *t = &self->tools[i];
            if (self->cb.on_tool_call) {
                self->cb.on_tool_call(self->arg, t->id ? t->id : id, t->name, args[i]);
            }
        }
        if (!self->cancelled && self->cb.on_done) {
            self->cb.on_done(self->arg, self->stop_reason, &self->usage);
        }
        self->depth--;
    }
    for (size_t i = 0; i < self->ntools; i++) {
        json_decref(args[i]);
    }
}

static void s_classify(agent_llm_request_t *self, const agent_http_result_t *res)
{
    if (self->failed) {
        return;
    }
    if (self->status >= 300 || (self->status && self->status < 200)) {
        s_http_error(self);
    } else if (res->timed_out) {
        agent_llm_fail(self, AGENT_LLM_ERR_TIMEOUT, "timeout: %s", res->error);
    } else if (res->curl_code != 0) {
        agent_llm_fail(self, AGENT_LLM_ERR_NETWORK, "network error: %s", res->error);
    } else if (!self->finished) {
        agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "the %s stream ended before %s",
                       self->prov->name, self->prov->end_marker);
    }
}

static void s_on_http_done(void *arg, const agent_http_result_t *res)
{
    agent_llm_request_t *self = arg;
    self->xfer = NULL; /* agent_http frees it after this returns */
    if (res->status) {
        self->status = res->status;
    }
    s_classify(self, res);
    if (!self->failed) {
        s_deliver(self);
    }
    if (self->failed && !self->cancelled) {
        LOG_I("model call failed kind=%s status=%ld reason=\"%s\"",
              agent_llm_err_kind_name(self->err.kind), self->status, self->err.reason);
        if (self->cb.on_error) {
            self->depth++;
            self->cb.on_error(self->arg, &self->err);
            self->depth--;
        }
    }
    s_free(self);
}

static int s_keep_error_body(agent_llm_request_t *self, const char *data, size_t len)
{
    size_t room = AGENT_LLM_MAX_ERROR_BODY - self->errbody_len;
    size_t n = len < room ? len : room;
    if (n == 0) {
        return 0; /* keep reading, drop the rest */
    }
    char *body = realloc(self->errbody, self->errbody_len + n + 1);
    if (!body) {
        return agent_llm_fail(self, AGENT_LLM_ERR_HTTP, "HTTP %ld (out of memory)", self->status);
    }
    memcpy(body + self->errbody_len, data, n);
    self->errbody = body;
    self->errbody_len += n;
    self->errbody[self->errbody_len] = '\0';
    return 0;
}

static int s_on_data(void *arg, long status, const char *data, size_t len)
{
    agent_llm_request_t *self = arg;
    int rc = 0;
    self->status = status;
    if (status < 200 || status >= 300) {
        rc = s_keep_error_body(self, data, len);
    } else if (agent_sse_feed(self->sse, data, len) != 0) {
        rc = self->cancelled ? -1
                             : agent_llm_fail(self, AGENT_LLM_ERR_PROTOCOL, "bad %s stream: %s",
                                              self->prov->name, agent_sse_error(self->sse));
    }
    if (self->cancelled) {
        agent_http_cancel(self->http, &self->xfer);
        s_free(self);
        return -1;
    }
    return rc;
}

static int s_on_sse_event(void *arg, const char *event, const char *data, size_t len)
{
    agent_llm_request_t *self = arg;
    if (self->failed) {
        return -1;
    }
    return self->prov->on_event(self, event, data, len);
}

/* --- start and cancel ------------------------------------------------------ */

static const agent_llm_provider_t *s_provider(const cfg_strategy_t *s)
{
    switch (s->kind) {
        case CFG_STRATEGY_OPENAI:
            return &agent_llm_openai;
        case CFG_STRATEGY_ANTHROPIC:
            return &agent_llm_anthropic;
        default:
            return NULL;
    }
}

static int s_check_params(const agent_llm_params_t *p, agent_llm_error_t *err)
{
    char why[AGENT_LLM_REASON_MAX];
    const cfg_strategy_t *s = p->strategy;
    if (!s || !s_provider(s)) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST,
                            "strategy '%s' is not an HTTP model strategy", s ? s->name : "(none)");
        return -1;
    }
    if (!s->base_url || !s->model) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "strategy '%s' has no base_url or model",
                            s->name);
        return -1;
    }
    for (const char *c = p->api_key; c && *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST,
                                "the API key of strategy '%s' "
                                "contains control characters",
                                s->name);
            return -1;
        }
    }
    if (agent_llm_check(p->messages, p->tools, why, sizeof why) != 0) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "%s", why);
        return -1;
    }
    return 0;
}

static void s_free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lines[i]) {
            /* Auth lines carry the API key: do not leave it in freed memory. */
            explicit_bzero(lines[i], strlen(lines[i]));
            free(lines[i]);
            lines[i] = NULL;
        }
    }
}

/* Sends body to the provider. Returns 0 with self->xfer set, or -1. */
static int s_send(agent_llm_request_t *self,
                  const agent_llm_params_t *p,
                  const char *body,
                  agent_llm_error_t *err)
{
    const cfg_strategy_t *s = p->strategy;
    char *auth[4] = {NULL};
    char *url = NULL;
    int rc = -1;
    if (asprintf(&url, "%s%s", s->base_url, self->prov->path) < 0) {
        url = NULL;
    }
    if (!url || self->prov->auth_headers(p->api_key, auth) != 0) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "out of memory");
        goto out;
    }
    const char *headers[8] = {"Content-Type: application/json", "Accept: text/event-stream"};
    for (size_t i = 0; i < 3 && auth[i]; i++) {
        headers[2 + i] = auth[i];
    }
    long timeout_ms = s->timeout_s * 1000;
    agent_http_opts_t opts = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = timeout_ms < S_CONNECT_TIMEOUT_MS ? timeout_ms : S_CONNECT_TIMEOUT_MS,
        .stall_s = s->stall_timeout_s < s->timeout_s ? s->stall_timeout_s : s->timeout_s,
    };
    agent_http_callbacks_t cb = {.on_data = s_on_data, .on_done = s_on_http_done};
    self->xfer = agent_http_start(self->http, &opts, &cb, self);
    if (!self->xfer) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "cannot start the HTTP transfer to %s",
                            self->prov->name);
        goto out;
    }
    rc = 0;
out:
    s_free_lines(auth, 3);
    free(url);
    return rc;
}

agent_llm_request_t *agent_llm_start(agent_http_t *http,
                                     const agent_llm_params_t *params,
                                     const agent_llm_callbacks_t *cb,
                                     void *arg,
                                     agent_llm_error_t *err)
{
    assert(http && params && cb);
    agent_llm_error_t local;
    err = err ? err : &local;
    memset(err, 0, sizeof *err);
    if (s_check_params(params, err) != 0) {
        return NULL;
    }
    agent_llm_request_t *self = calloc(1, sizeof *self);
    if (!self) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "out of memory");
        return NULL;
    }
    self->http = http;
    self->prov = s_provider(params->strategy);
    self->cb = *cb;
    self->arg = arg;
    self->sse = agent_sse_new(AGENT_LLM_MAX_SSE_LINE, 0, s_on_sse_event, self);
    json_t *body = self->sse ? self->prov->build(params, err) : NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!self->sse || (body && !text)) {
        agent_llm_error_set(err, AGENT_LLM_ERR_REQUEST, "out of memory");
    }
    if (!text || s_send(self, params, text, err) != 0) {
        free(text);
        s_free(self);
        return NULL;
    }
    LOG_D("model call started provider=%s strategy=%s bytes=%zu", self->prov->name,
          params->strategy->name, strlen(text));
    free(text);
    return self;
}

void agent_llm_cancel(agent_llm_request_t **req_p)
{
    if (!req_p || !*req_p) {
        return;
    }
    agent_llm_request_t *self = *req_p;
    *req_p = NULL;
    if (self->depth > 0) {
        /* Inside one of its callbacks: the code that called it frees it. */
        self->cancelled = true;
        return;
    }
    agent_http_cancel(self->http, &self->xfer);
    s_free(self);
}
