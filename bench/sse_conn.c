/*  sse_conn — the connections of the SSE load generator on one epoll:
    listeners (GET /api/conversations/:id/events?after=0 as text/event-stream,
    parsed line by line: id, event type, the event's seq, arrival times of
    message.created and message.completed) and posters (keep-alive POSTs of
    messages, GETs of a conversation's last_event_id). Single-threaded. */
#include "bench/sse_clients.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void s_ep(sc_t *sc, int op, int fd, uint32_t events, int tag, size_t i)
{
    struct epoll_event ev = {.events = events, .data.u64 = ((uint64_t)tag << 32) | i};
    epoll_ctl(sc->ep, op, fd, &ev);
}

/* ---- listeners --------------------------------------------------------------------------- */

static void s_client_close(sc_t *sc, sc_client_t *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    if (c->state != SC_C_CLOSED) {
        if (!c->ready) {
            sc->connecting--;
        }
        c->state = SC_C_CLOSED;
        sc->closed++;
    }
}

void sc_client_start(sc_t *sc, size_t i)
{
    sc_client_t *c = &sc->clients[i];
    const struct in_addr *src = sc->nsrc > 0 ? &sc->src[i % (size_t)sc->nsrc] : NULL;
    sc->connecting++;
    c->state = SC_C_CONNECTING;
    c->fd = bc_tcp_connect(&sc->dst, src, false);
    if (c->fd < 0) {
        sc->connect_errors++;
        s_client_close(sc, c);
        return;
    }
    bc_http_reset(&c->http);
    s_ep(sc, EPOLL_CTL_ADD, c->fd, EPOLLOUT, SC_TAG_CLIENT, i);
}

static void s_client_send(sc_t *sc, size_t i, sc_client_t *c)
{
    char req[768];
    int n = sc->o.ws ? sc_ws_request(sc, c, req, sizeof req)
                     : snprintf(req, sizeof req,
                                "GET /api/conversations/%s/events?after=0 HTTP/1.1\r\nHost: %s\r\n"
                                "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
                                sc->convs[c->conv].id, sc->host, sc->o.token);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || n <= 0 || (size_t)n >= sizeof req || bc_write_all(c->fd, req, (size_t)n) < 0) {
        sc->connect_errors++;
        s_client_close(sc, c);
        return;
    }
    c->state = SC_C_STREAM;
    s_ep(sc, EPOLL_CTL_MOD, c->fd, EPOLLIN, SC_TAG_CLIENT, i);
}

/* The value of the first "seq" key in the (truncated) data line, or 0. Stored
   events replayed from Postgres arrive as compact jsonb text, live ones as
   json_build_object text ("seq" : 1): accept both. */
static int64_t s_seq(const char *data)
{
    const char *p = strstr(data, "\"seq\"");
    if (!p) {
        return 0;
    }
    p += 5;
    p += strspn(p, " ");
    return *p == ':' ? strtoll(p + 1, NULL, 10) : 0;
}

static void s_created(sc_client_t *c, int64_t now)
{
    if (c->ncreated == c->cap_created) {
        uint32_t cap = c->cap_created ? c->cap_created * 2 : 4;
        int64_t *n = realloc(c->created_us, cap * sizeof *n);
        if (!n) {
            return;
        }
        c->created_us = n;
        c->cap_created = cap;
    }
    c->created_us[c->ncreated++] = now;
}

static void s_completed(sc_t *sc, sc_client_t *c, int64_t now)
{
    sc_conv_t *v = &sc->convs[c->conv];
    if (c->probe && v->ndone < v->nposts) {
        sc->posts[v->posts[v->ndone++]].done_us = now;
    }
}

/* An empty line (or a WebSocket push) ends an event: check its seq, record
   the times we measure. */
void sc_client_event(sc_t *sc, sc_client_t *c)
{
    int64_t now = bc_now_us();
    if (c->ev_id > 0) {
        c->events++;
        int64_t want = c->last_seq + 1;
        if (c->ev_seq != want) {
            static int s_told;
            if (s_told++ < 20) {
                fprintf(stderr, "sse_clients: conversation %u: seq %lld after %lld (id %lld)\n",
                        (unsigned)c->conv, (long long)c->ev_seq, (long long)c->last_seq,
                        (long long)c->ev_id);
            }
            c->gaps++;
        }
        c->last_seq = c->ev_seq;
        c->max_id = c->ev_id > c->max_id ? c->ev_id : c->max_id;
    }
    if (c->ev_kind == SC_K_CREATED) {
        s_created(c, now);
    } else if (c->ev_kind == SC_K_COMPLETED) {
        s_completed(sc, c, now);
    } else if (c->ev_kind == SC_K_DELTA) {
        c->deltas++;
    }
    c->ev_id = c->ev_seq = 0;
    c->ev_kind = SC_K_OTHER;
}

static void s_sse_line(sc_t *sc, sc_client_t *c)
{
    const char *l = c->line;
    if (c->line_len == 0) {
        sc_client_event(sc, c);
    } else if (l[0] == ':') {
        if (!c->ready && strstr(l, "connected")) {
            c->ready = true;
            sc->ready++;
            sc->connecting--;
        }
    } else if (strncmp(l, "id: ", 4) == 0) {
        c->ev_id = strtoll(l + 4, NULL, 10);
    } else if (strncmp(l, "event: ", 7) == 0) {
        const char *t = l + 7;
        c->ev_kind = strcmp(t, "message.created") == 0     ? SC_K_CREATED
                     : strcmp(t, "message.completed") == 0 ? SC_K_COMPLETED
                     : strcmp(t, "message.delta") == 0     ? SC_K_DELTA
                                                           : SC_K_OTHER;
    } else if (strncmp(l, "data: ", 6) == 0) {
        c->ev_seq = s_seq(l + 6);
    }
}

static void s_sse_body(void *arg, const char *p, size_t n)
{
    sc_client_t *c = ((void **)arg)[1];
    sc_t *sc = ((void **)arg)[0];
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') {
                c->line_len--;
            }
            c->line[c->line_len] = 0;
            s_sse_line(sc, c);
            c->line_len = 0;
        } else if (c->line_len < SC_LINE - 1) {
            c->line[c->line_len++] = p[i];
        }
    }
}

void sc_client_io(sc_t *sc, size_t i, uint32_t events)
{
    sc_client_t *c = &sc->clients[i];
    if (c->state == SC_C_CONNECTING) {
        s_client_send(sc, i, c);
        return;
    }
    char *buf = sc->rbuf;
    ssize_t r = recv(c->fd, buf, SC_RBUF, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r <= 0) {
        s_client_close(sc, c);
        return;
    }
    if (sc->o.ws) {
        if (sc_ws_feed(sc, c, buf, (size_t)r) < 0) {
            if (!c->ready) {
                sc->connect_errors++;
            }
            s_client_close(sc, c);
        }
        return;
    }
    void *arg[2] = {sc, c};
    bool done = false;
    ssize_t used = bc_http_feed(&c->http, buf, (size_t)r, s_sse_body, arg, &done);
    if (used < 0 || done || (c->http.status != 0 && c->http.status != 200)) {
        if (!c->ready) {
            sc->connect_errors++;
        }
        s_client_close(sc, c);
    }
}

/* ---- posters ----------------------------------------------------------------------------- */

void sc_poster_start(sc_t *sc, size_t i)
{
    sc_poster_t *p = &sc->posters[i];
    p->post = p->get_conv = SC_NONE;
    p->fd = bc_tcp_connect(&sc->dst, NULL, true);
    if (p->fd < 0) {
        p->state = SC_P_DOWN;
        return;
    }
    p->state = SC_P_CONNECTING;
    s_ep(sc, EPOLL_CTL_ADD, p->fd, EPOLLOUT, SC_TAG_POSTER, i);
}

/* The request in flight failed: the post counts as lost; a GET is retried later. */
static void s_poster_down(sc_t *sc, sc_poster_t *p)
{
    if (p->post != SC_NONE) {
        sc->posts[p->post].status = -1;
        sc->post_errors++;
    }
    if (p->get_conv != SC_NONE) {
        sc->convs[p->get_conv].last_event_id = -2; /* ask again */
        sc->gets_left--;
    }
    if (p->fd >= 0) {
        close(p->fd);
    }
    p->fd = -1;
    p->state = SC_P_DOWN;
    p->post = p->get_conv = SC_NONE;
}

static void s_poster_body(void *arg, const char *data, size_t n)
{
    sc_poster_t *p = arg;
    size_t room = SC_BODY - 1 - p->body_len;
    n = n < room ? n : room;
    memcpy(p->body + p->body_len, data, n);
    p->body_len += n;
    p->body[p->body_len] = 0;
}

static void s_poster_done(sc_t *sc, sc_poster_t *p)
{
    if (p->post != SC_NONE) {
        sc_post_t *post = &sc->posts[p->post];
        post->status = (int16_t)p->http.status;
        if (p->http.status == 202) {
            post->ack_us = bc_now_us();
            sc->acked++;
        } else {
            sc->post_errors++;
        }
    } else if (p->get_conv != SC_NONE) {
        sc_conv_t *v = &sc->convs[p->get_conv];
        const char *k = strstr(p->body, "\"last_event_id\"");
        v->last_event_id = -2;
        if (p->http.status == 200 && k) {
            k = strchr(k + 15, ':');
            v->last_event_id = k ? strtoll(k + 1, NULL, 10) : -2; /* null → 0 */
        }
        sc->gets_left--;
    }
    p->post = p->get_conv = SC_NONE;
    p->state = SC_P_IDLE;
}

void sc_poster_io(sc_t *sc, size_t i, uint32_t events)
{
    sc_poster_t *p = &sc->posters[i];
    if (p->state == SC_P_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            s_poster_down(sc, p);
            return;
        }
        p->state = SC_P_IDLE;
        s_ep(sc, EPOLL_CTL_MOD, p->fd, EPOLLIN, SC_TAG_POSTER, i);
        return;
    }
    char buf[8192];
    ssize_t r = recv(p->fd, buf, sizeof buf, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r <= 0 || p->state != SC_P_BUSY) {
        s_poster_down(sc, p); /* closed, or bytes nobody asked for */
        return;
    }
    bool done = false;
    if (bc_http_feed(&p->http, buf, (size_t)r, s_poster_body, p, &done) < 0) {
        s_poster_down(sc, p);
    } else if (done) {
        s_poster_done(sc, p);
    }
}

static sc_poster_t *s_idle_poster(sc_t *sc)
{
    for (size_t k = 0; k < sc->nposters; k++) {
        sc_poster_t *p = &sc->posters[k];
        if (p->state == SC_P_IDLE) {
            return p;
        }
        if (p->state == SC_P_DOWN) {
            sc_poster_start(sc, k); /* reconnect; usable once writable */
        }
    }
    return NULL;
}

static int s_send(sc_t *sc, sc_poster_t *p, const char *req, size_t n)
{
    bc_http_reset(&p->http);
    p->body_len = 0;
    p->body[0] = 0;
    if (bc_write_all(p->fd, req, n) < 0) {
        s_poster_down(sc, p);
        return -1;
    }
    p->state = SC_P_BUSY;
    return 0;
}

static int s_add_post(sc_t *sc, uint32_t conv)
{
    sc_conv_t *v = &sc->convs[conv];
    if (sc->nposts == sc->cap_posts) {
        size_t cap = sc->cap_posts ? sc->cap_posts * 2 : 4096;
        sc_post_t *n = realloc(sc->posts, cap * sizeof *n);
        if (!n) {
            return -1;
        }
        sc->posts = n;
        sc->cap_posts = cap;
    }
    if (v->nposts == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        uint32_t *n = realloc(v->posts, cap * sizeof *n);
        if (!n) {
            return -1;
        }
        v->posts = n;
        v->cap = cap;
    }
    v->posts[v->nposts++] = (uint32_t)sc->nposts;
    sc->posts[sc->nposts] = (sc_post_t){.conv = conv, .sent_us = bc_now_us()};
    return (int)sc->nposts++;
}

int sc_post(sc_t *sc, uint32_t conv)
{
    sc_poster_t *p = s_idle_poster(sc);
    if (!p) {
        return -1;
    }
    char body[512], req[1024];
    int bl = snprintf(body, sizeof body, "{\"content\":\"%s\"}", sc->o.content);
    int n = snprintf(req, sizeof req,
                     "POST /api/conversations/%s/messages HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     sc->convs[conv].id, sc->host, sc->o.token, bl, body);
    if (bl <= 0 || (size_t)bl >= sizeof body || n <= 0 || (size_t)n >= sizeof req) {
        return -1;
    }
    int idx = s_add_post(sc, conv);
    if (idx < 0) {
        return -1;
    }
    p->post = (uint32_t)idx;
    sc->posts[idx].sent_us = bc_now_us();
    s_send(sc, p, req, (size_t)n); /* a failure counts as a lost post */
    return 0;
}

int sc_get_conv(sc_t *sc, uint32_t conv)
{
    sc_poster_t *p = s_idle_poster(sc);
    if (!p) {
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/conversations/%s HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     sc->convs[conv].id, sc->host, sc->o.token);
    if (n <= 0 || (size_t)n >= sizeof req) {
        return -1;
    }
    p->get_conv = conv;
    sc->convs[conv].last_event_id = -1;
    sc->gets_left++;
    s_send(sc, p, req, (size_t)n); /* a failure is handled by s_poster_down */
    return 0;
}
