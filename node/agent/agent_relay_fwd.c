/*  agent_relay_fwd — one relayed request's upstream call: libcurl (a multi
    handle of its own, driven on the request's libmicrohttpd thread) sends the
    client's request with the run's real key in place of the token, and the
    answer goes back as it arrives: curl's writes fill a small buffer that
    libmicrohttpd's content reader drains (curl is paused while it is full),
    so an SSE stream is never held whole. While it waits, the thread also
    watches the client's socket: a client that goes away, a token that dies
    or a relay that stops ends the upstream call at once. */
#define LOG_MODULE "agent_relay"
#include "common/log.h"
#include "node/agent/agent_relay_internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Headers that belong to one hop, or that the relay sets itself. */
static const char *const s_hop[] = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "expect",
    "x-api-key",
    "authorization",
    "accept-encoding",
    "content-encoding",
    "cookie",
    "set-cookie",
    "proxy-authenticate",
    NULL,
};

static bool s_is_hop(const char *name, size_t len)
{
    for (size_t i = 0; s_hop[i]; i++) {
        if (strlen(s_hop[i]) == len && strncasecmp(s_hop[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

static void s_add_line(struct curl_slist **list, const char *name, size_t nlen, const char *value)
{
    char *line = NULL;
    if (asprintf(&line, "%.*s: %s", (int)nlen, name, value) < 0) {
        return;
    }
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (l) {
        *list = l;
    }
}

static enum MHD_Result
s_copy_header(void *cls, enum MHD_ValueKind kind, const char *name, const char *value)
{
    agent_relay_req_t *r = cls;
    if (name && value && !s_is_hop(name, strlen(name))) {
        s_add_line(&r->req_hdrs, name, strlen(name), value);
    }
    return MHD_YES;
}

/* The upstream's head: a status line starts a new head (after a 1xx), the
   blank line ends it, other lines are kept unless they belong to the hop. */
static size_t s_on_header(char *data, size_t size, size_t n, void *arg)
{
    agent_relay_req_t *r = arg;
    size_t len = size * n, end = len;
    while (end && (data[end - 1] == '\r' || data[end - 1] == '\n')) {
        end--;
    }
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        curl_slist_free_all(r->resp_hdrs);
        r->resp_hdrs = NULL;
        return len;
    }
    if (end == 0) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            r->status = code;
            r->head_done = true;
        }
        return len;
    }
    const char *colon = memchr(data, ':', end);
    if (colon && !s_is_hop(data, (size_t)(colon - data)) && !r->head_done) {
        const char *v = colon + 1;
        while (v < data + end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        char value[4096];
        snprintf(value, sizeof value, "%.*s", (int)(data + end - v), v);
        s_add_line(&r->resp_hdrs, data, (size_t)(colon - data), value);
    }
    return len;
}

static size_t s_on_write(char *data, size_t size, size_t n, void *arg)
{
    agent_relay_req_t *r = arg;
    size_t len = size * n;
    if (r->buf_len - r->buf_off >= AGENT_RELAY_HIGH_MARK) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (r->buf_off) {
        memmove(r->buf, r->buf + r->buf_off, r->buf_len - r->buf_off);
        r->buf_len -= r->buf_off;
        r->buf_off = 0;
    }
    if (r->buf_len + len > r->buf_cap) {
        size_t cap = r->buf_cap ? r->buf_cap : AGENT_RELAY_BLOCK;
        while (cap < r->buf_len + len) {
            cap *= 2;
        }
        char *b = realloc(r->buf, cap);
        if (!b) {
            return 0; /* curl fails the transfer */
        }
        r->buf = b;
        r->buf_cap = cap;
    }
    memcpy(r->buf + r->buf_len, data, len);
    r->buf_len += len;
    return len;
}

static void s_collect(agent_relay_req_t *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg == CURLMSG_DONE) {
            r->done = true;
            r->result = m->data.result;
        }
    }
    if (r->done && !r->head_done && r->result == CURLE_OK) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        r->head_done = r->status >= 100;
    }
}

/* True when the client closed its socket (or it broke). Bytes it sent
   meanwhile (a pipelined request) only stop the watching. */
static bool s_client_gone(agent_relay_req_t *r)
{
    char c;
    ssize_t k = recv(r->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k > 0) {
        r->client_fd = -1;
        return false;
    }
    return k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Runs curl, then, unless ready(r), waits up to AGENT_RELAY_POLL_MS for the
   upstream or the client. Returns -1 when the request must end now: the
   client went away, the token died or the relay stops. */
static int s_step(agent_relay_req_t *r, bool (*ready)(const agent_relay_req_t *))
{
    int running = 0;
    if (r->paused && r->buf_len == r->buf_off) {
        r->paused = false;
        curl_easy_pause(r->easy, CURLPAUSE_CONT); /* may write at once */
    }
    curl_multi_perform(r->multi, &running);
    s_collect(r);
    if (ready(r)) {
        return 0;
    }
    if (!agent_relay_grant_live(r->relay, r->grant_id)) {
        return -1;
    }
    struct curl_waitfd w = {.fd = r->client_fd, .events = CURL_WAIT_POLLIN, .revents = 0};
    bool watch = r->client_fd >= 0;
    int nfds = 0;
    if (curl_multi_poll(r->multi, watch ? &w : NULL, watch ? 1 : 0, AGENT_RELAY_POLL_MS, &nfds) !=
        CURLM_OK) {
        return -1;
    }
    return watch && (w.revents & CURL_WAIT_POLLIN) && s_client_gone(r) ? -1 : 0;
}

static bool s_head_ready(const agent_relay_req_t *r)
{
    return r->head_done || r->done;
}

static bool s_output_ready(const agent_relay_req_t *r)
{
    return r->buf_len > r->buf_off || r->done;
}

static int s_setup(agent_relay_req_t *r, bool post)
{
    if (asprintf(&r->url, "%s%s", r->upstream, r->uri) < 0) {
        r->url = NULL;
        return -1;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, s_copy_header, r);
    if (r->key) {
        const char *name = r->auth == AGENT_RELAY_AUTH_BEARER ? "Authorization" : "x-api-key";
        char value[8192];
        snprintf(value, sizeof value, "%s%s", r->auth == AGENT_RELAY_AUTH_BEARER ? "Bearer " : "",
                 r->key);
        s_add_line(&r->req_hdrs, name, strlen(name), value);
        OPENSSL_cleanse(value, sizeof value);
    }
    s_add_line(&r->req_hdrs, "Expect", 6, ""); /* no 100-continue round trip */
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->req_hdrs);
    if (post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)AGENT_RELAY_CONNECT_S);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    return curl_multi_add_handle(r->multi, e) == CURLM_OK ? 0 : -1;
}

int agent_relay_fwd_start(agent_relay_req_t *r)
{
    r->multi = curl_multi_init();
    r->easy = curl_easy_init();
    if (!r->multi || !r->easy || s_setup(r, r->post) < 0) {
        snprintf(r->errbuf, sizeof r->errbuf, "cannot set up the upstream call");
        r->done = true;
        r->result = CURLE_OUT_OF_MEMORY;
        return 0;
    }
    while (!s_head_ready(r)) {
        if (s_step(r, s_head_ready) < 0) {
            return -1;
        }
    }
    return 0;
}

ssize_t agent_relay_fwd_read(void *cls, uint64_t pos, char *out, size_t max)
{
    agent_relay_req_t *r = cls;
    if (!agent_relay_grant_live(r->relay, r->grant_id)) {
        atomic_fetch_add(&r->relay->n_cut, 1);
        LOG_I("relay stream cut: the run token died");
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    while (!s_output_ready(r)) {
        if (s_step(r, s_output_ready) < 0) {
            atomic_fetch_add(&r->relay->n_cut, 1);
            LOG_I("relay stream cut: the client went away or the token died");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (r->buf_len > r->buf_off) {
        size_t n = r->buf_len - r->buf_off < max ? r->buf_len - r->buf_off : max;
        memcpy(out, r->buf + r->buf_off, n);
        r->buf_off += n;
        if (r->buf_off == r->buf_len) {
            r->buf_off = r->buf_len = 0;
        }
        return (ssize_t)n;
    }
    if (r->result != CURLE_OK) {
        atomic_fetch_add(&r->relay->n_cut, 1);
        LOG_N("relay stream cut by the upstream: %s",
              r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

void agent_relay_fwd_close(agent_relay_req_t *r)
{
    if (r->multi && r->easy) {
        curl_multi_remove_handle(r->multi, r->easy);
    }
    if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    if (r->multi) {
        curl_multi_cleanup(r->multi);
    }
    r->easy = NULL;
    r->multi = NULL;
    for (struct curl_slist *h = r->req_hdrs; h; h = h->next) {
        OPENSSL_cleanse(h->data, strlen(h->data)); /* one of them holds the key */
    }
    curl_slist_free_all(r->req_hdrs);
    curl_slist_free_all(r->resp_hdrs);
    r->req_hdrs = r->resp_hdrs = NULL;
    free(r->url);
    free(r->buf);
    r->url = NULL;
    r->buf = NULL;
}
