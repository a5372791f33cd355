/*  http_once — sends one request per conversation id of a file, as fast as
    --conns keep-alive connections allow (closed loop), and reports the rate,
    the statuses and the latency. wrk always runs for its whole -d duration;
    this tool ends when the list does. Modes:
      cancel    POST /api/conversations/:id/cancel (activates the actor; 409 when idle)
      messages  POST /api/conversations/:id/messages {"content": --content}
      get       GET  /api/conversations/:id
    One JSON line "HTTP_JSON {...}" on stdout. Single-threaded, one epoll; only
    127.0.0.0/8 targets are accepted. */
#include "bench/bc.h"
#include "common/cfg.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "--ids FILE [--mode cancel|messages|get] [--conns N] [--max-s S]   (BICKY_URL, "               \
    "BICKY_TOKEN)\n\n"                                                                             \
    "One request per id, closed loop over N keep-alive connections; see docs/performance.md."

typedef struct {
    int fd;          /* socket, -1 when down */
    bool connecting; /* waiting for the connect to finish */
    size_t item;     /* id being requested, SIZE_MAX when none */
    int64_t sent_us; /* when it was written */
    bc_http_t http;  /* response parser */
} s_conn_t;

typedef struct {
    const char *url, *token, *ids_file, *mode, *content; /* options */
    long conns;                                          /* connections */
    long max_s;                                          /* stop sending after this, 0 = never */
    struct sockaddr_in dst;                              /* gateway */
    char host[64];                                       /* Host header */
    char (*ids)[37];                                     /* ids */
    size_t nids, next, done;                             /* count, next to send, answered */
    size_t cut;                                          /* ids left unsent at --max-s */
    long statuses[600];                                  /* answers by status */
    long errors;                                         /* connections lost mid-request */
    bc_samples_t lat;                                    /* latency per answer, µs */
    int ep;                                              /* epoll fd */
    s_conn_t *c;                                         /* connections */
} s_run_t;

static int s_load(s_run_t *r)
{
    if (bc_load_uuids(r->ids_file, &r->ids, &r->nids) < 0) {
        return -1;
    }
    return 0;
}

static int s_request(s_run_t *r, size_t item, char *out, size_t cap)
{
    const char *id = r->ids[item];
    if (strcmp(r->mode, "get") == 0) {
        return snprintf(out, cap,
                        "GET /api/conversations/%s HTTP/1.1\r\nHost: %s\r\n"
                        "Authorization: Bearer %s\r\n\r\n",
                        id, r->host, r->token);
    }
    char body[512] = "";
    if (strcmp(r->mode, "messages") == 0) {
        snprintf(body, sizeof body, "{\"content\":\"%s\"}", r->content);
    }
    return snprintf(out, cap,
                    "POST /api/conversations/%s/%s HTTP/1.1\r\nHost: %s\r\n"
                    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    id, r->mode, r->host, r->token, strlen(body), body);
}

static void s_open(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    c->fd = bc_tcp_connect(&r->dst, NULL, true);
    c->connecting = c->fd >= 0;
    if (c->fd >= 0) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
        epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
}

static void s_close(s_run_t *r, s_conn_t *c)
{
    if (c->item != SIZE_MAX) {
        r->errors++;
        r->done++;
        c->item = SIZE_MAX;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
}

/* Sends the next id on connection i, or leaves it idle when the list is done. */
static void s_next(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    if (r->next >= r->nids) {
        return;
    }
    char req[1024];
    size_t item = r->next++;
    int n = s_request(r, item, req, sizeof req);
    c->item = item;
    c->sent_us = bc_now_us();
    bc_http_reset(&c->http);
    if (n <= 0 || (size_t)n >= sizeof req || bc_write_all(c->fd, req, (size_t)n) < 0) {
        s_close(r, c);
    }
}

static void s_io(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        c->connecting = false;
        if (err != 0) {
            s_close(r, c);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
        s_next(r, i);
        return;
    }
    char buf[16384];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    bool done = false;
    if (n <= 0 || c->item == SIZE_MAX ||
        bc_http_feed(&c->http, buf, (size_t)n, NULL, NULL, &done) < 0) {
        s_close(r, c);
        return;
    }
    if (done) {
        int st = c->http.status;
        r->statuses[st >= 0 && st < 600 ? st : 0]++;
        bc_samples_add(&r->lat, bc_now_us() - c->sent_us);
        r->done++;
        c->item = SIZE_MAX;
        s_next(r, i);
    }
}

/* Runs until every id was answered (or lost), or nothing moved for 30 s. After
   --max-s no new request is sent: the list is cut where it got to. */
static void s_loop(s_run_t *r)
{
    struct epoll_event evs[512];
    size_t seen = 0;
    int64_t progress = bc_now_us();
    int64_t stop_at = r->max_s > 0 ? progress + r->max_s * 1000000 : INT64_MAX;
    while (r->done < r->nids && !util_interrupted && bc_now_us() - progress < 30000000) {
        if (bc_now_us() >= stop_at && r->next < r->nids) {
            r->cut = r->nids - r->next;
            r->nids = r->next; /* finish what is in flight */
        }
        for (size_t i = 0; i < (size_t)r->conns && r->next < r->nids; i++) {
            if (r->c[i].fd < 0) {
                s_open(r, i); /* lost connections come back for the rest of the list */
            }
        }
        int n = epoll_wait(r->ep, evs, 512, 100);
        for (int k = 0; k < n; k++) {
            s_io(r, (size_t)evs[k].data.u64);
        }
        if (r->done != seen) {
            seen = r->done;
            progress = bc_now_us();
        }
    }
}

static void s_report(s_run_t *r, double secs)
{
    char lat[256], st[2048] = "";
    size_t len = 0;
    bc_samples_json(&r->lat, lat, sizeof lat);
    for (int s = 0; s < 600 && len < sizeof st - 32; s++) {
        if (r->statuses[s] > 0) {
            len += (size_t)snprintf(st + len, sizeof st - len, "%s\"%d\":%ld", len ? "," : "", s,
                                    r->statuses[s]);
        }
    }
    printf("HTTP_JSON {\"mode\":\"%s\",\"requests\":%zu,\"conns\":%ld,\"duration_s\":%.3f,"
           "\"rate\":%.1f,\"statuses\":{%s},\"errors\":%ld,\"not_sent\":%zu,\"latency_ms\":%s}\n",
           r->mode, r->done, r->conns, secs, secs > 0 ? (double)r->done / secs : 0.0, st, r->errors,
           r->cut, lat);
}

static void s_free(s_run_t *r)
{
    for (long i = 0; r->c && i < r->conns; i++) {
        if (r->c[i].fd >= 0) {
            close(r->c[i].fd);
        }
    }
    if (r->ep >= 0) {
        close(r->ep);
    }
    free(r->c);
    free(r->ids);
    bc_samples_free(&r->lat);
}

int main(int argc, char **argv)
{
    s_run_t r = {.mode = "cancel", .content = "hello", .conns = 64};
    const cfg_opt_t opts[] = {
        {"--url", "BICKY_URL", CFG_STR, &r.url, 0, 0, "gateway URL http://127.x.y.z:PORT"},
        {"--token", "BICKY_TOKEN", CFG_STR, &r.token, 0, 0, "bearer token"},
        {"--ids", NULL, CFG_STR, &r.ids_file, 0, 0, "file of conversation ids, one a line"},
        {"--mode", NULL, CFG_STR, &r.mode, 0, 0, "cancel | messages | get"},
        {"--conns", NULL, CFG_INT, &r.conns, 1, 10000, "keep-alive connections"},
        {"--content", NULL, CFG_STR, &r.content, 0, 0, "message content (messages mode)"},
        {"--max-s", NULL, CFG_INT, &r.max_s, 0, 86400, "stop sending after this many seconds"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = cfg_parse("http_once", USAGE, opts, argc, argv, NULL, NULL);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    bool mode_ok = strcmp(r.mode, "cancel") == 0 || strcmp(r.mode, "messages") == 0 ||
                   strcmp(r.mode, "get") == 0;
    if (!r.ids_file || !r.token || !mode_ok || strpbrk(r.content, "\"\\") ||
        bc_parse_url(r.url, &r.dst) < 0) {
        fprintf(stderr, "http_once: needs --ids, BICKY_URL (http://127.x.y.z:PORT), BICKY_TOKEN "
                        "and a valid --mode (see --help)\n");
        return 2;
    }
    snprintf(r.host, sizeof r.host, "%s", r.url + 7);
    util_signals_install();
    r.c = calloc((size_t)r.conns, sizeof *r.c);
    for (long i = 0; r.c && i < r.conns; i++) {
        r.c[i].fd = -1;
        r.c[i].item = SIZE_MAX;
    }
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!r.c || r.ep < 0 || s_load(&r) < 0) {
        s_free(&r);
        return 1;
    }
    int64_t t0 = bc_now_us();
    s_loop(&r);
    s_report(&r, (double)(bc_now_us() - t0) / 1e6);
    rc = r.errors > 0 ? 1 : 0;
    s_free(&r);
    return rc;
}
