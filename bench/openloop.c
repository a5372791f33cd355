/*  openloop — posts user messages to existing conversations at a fixed
    arrival rate (open loop: a request is due at start + n / rate whatever
    the answers do), or, with --rate 0, back to back on --conns keep-alive
    connections (closed loop, to find the rate the cluster sustains). Each
    arrival takes an idle connection or opens one (up to --max-conns; past
    it the arrival is logged as not sent), from the --sources addresses in
    turn (the gateway bounds connections per client address). Latency runs from the arrival's
    due time, so a late send counts against the cluster, not for it.
    After the load, --probe-s seconds of probes: one post at a time every
    --probe-ms on its own connection (recovery). Every request is one line
    of --log: "phase due_ms status retry_after latency_us content"
    (phase L load, P probe; status 0 = transport error, 1 = not sent;
    retry_after -1 = none). One line "OPENLOOP_JSON {...}" on stdout.
    Single-threaded, one epoll; only 127.0.0.0/8 targets are accepted. */
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
    "--ids FILE --log FILE [--rate R] [--seconds S] [--conns N] [--max-conns N] [--tag T]\n"       \
    "    [--sources A,B..] [--probe-s S] [--probe-ms MS] [--drain-s S]   (BICKY_URL, "             \
    "BICKY_TOKEN)\n\n"                                                                             \
    "Open-loop (or, --rate 0, closed-loop) posts to existing conversations; see "                  \
    "tests/overload/run."

#define S_IDLE_NONE SIZE_MAX
/* A connection idle this long is closed before it is used again: the
   gateway cuts a keep-alive connection with no request within its
   --request-deadline-ms (30 s), and a request written as it does so is lost
   with no answer (the race every HTTP client has; clients keep their idle
   limit below the server's). */
#define S_IDLE_REUSE_US (20 * 1000000LL)

/* Why a request got no answer (status 0), counted in the report. */
enum { S_LOST_CONNECT, S_LOST_WRITE, S_LOST_RESET, S_LOST_EOF, S_LOST_PARSE };
static const char *s_lost_names[] = {"connect", "write", "reset", "eof", "parse"};

typedef struct {
    int fd;          /* socket, -1 when closed */
    bool connecting; /* connect in progress; the request goes out when it ends */
    bool busy;       /* a request is out */
    bool probe;      /* carries the probe (phase P) */
    uint64_t n;      /* request number (content "<tag>-<n>") */
    int64_t due_us;  /* when the request was due */
    int64_t idle_us; /* since when it is idle */
    bc_http_t http;  /* response parser */
} s_conn_t;

typedef struct {
    const char *url, *token, *ids_file, *log_file, *tag; /* options */
    const char *sources;                                 /* --sources list */
    struct in_addr src[64];                              /* source addresses, round robin */
    int nsrc;                                            /* their count (0: the kernel's) */
    uint64_t connects;                                   /* connections opened */
    long rate, seconds, conns, max_conns;                /* load */
    long probe_s, probe_ms, drain_s;                     /* after it */
    struct sockaddr_in dst;                              /* gateway */
    char host[64];                                       /* Host header */
    char (*ids)[37];                                     /* conversation ids */
    size_t nids;                                         /* their count */
    FILE *log;                                           /* one line per request */
    int ep;                                              /* epoll fd */
    s_conn_t *c;                                         /* max_conns + 1 slots (last: probe) */
    size_t *idle;                                        /* stack of idle slots */
    size_t nidle;                                        /* entries of idle */
    size_t fresh;                                        /* slots never used: fresh.. */
    uint64_t next_n;                                     /* next request number */
    int64_t t0;                                          /* start (µs, monotonic) */
    uint64_t due, sent, unsent, answered, errors;        /* counters of the load phase */
    long statuses[600];                                  /* load answers by status */
    int64_t max_lag_us;                                  /* latest send after its due time */
    uint64_t inflight;                                   /* load requests out */
    uint64_t lost[5];                                    /* transport errors by S_LOST_* */
    bool probe_out;                                      /* a probe is out */
} s_run_t;

static int s_load_ids(s_run_t *r)
{
    if (bc_load_uuids(r->ids_file, &r->ids, &r->nids) < 0) {
        return -1;
    }
    return r->nids > 0 ? 0 : -1;
}

static void s_log(s_run_t *r, const s_conn_t *c, int status, int retry_after)
{
    int64_t lat = status == 1 ? 0 : bc_now_us() - c->due_us;
    fprintf(r->log, "%c %.3f %d %d %lld %s-%llu\n", c->probe ? 'P' : 'L',
            (double)(c->due_us - r->t0) / 1000.0, status, retry_after, (long long)lat, r->tag,
            (unsigned long long)c->n);
}

/* Writes c's request (post number c->n to a conversation chosen by it). */
static int s_write(s_run_t *r, s_conn_t *c)
{
    char body[128], req[1024];
    int blen =
        snprintf(body, sizeof body, "{\"content\":\"%s-%llu\"}", r->tag, (unsigned long long)c->n);
    int n = snprintf(req, sizeof req,
                     "POST /api/conversations/%s/messages HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     r->ids[c->n % r->nids], r->host, r->token, blen, body);
    bc_http_reset(&c->http);
    if (n <= 0 || (size_t)n >= sizeof req) {
        return -1;
    }
    if (!c->probe && bc_now_us() - c->due_us > r->max_lag_us) {
        r->max_lag_us = bc_now_us() - c->due_us;
    }
    return bc_write_all(c->fd, req, (size_t)n);
}

/* The request of c is over (answered, or lost with status 0). */
static void s_done(s_run_t *r, s_conn_t *c, int status, int retry_after)
{
    s_log(r, c, status, retry_after);
    c->busy = false;
    if (c->probe) {
        r->probe_out = false;
        return;
    }
    r->inflight--;
    r->answered++;
    r->statuses[status >= 0 && status < 600 ? status : 0]++;
    if (status == 0) {
        r->errors++;
    }
}

static void s_close(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    if (c->busy) {
        s_done(r, c, 0, -1);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = false;
}

static void s_make_idle(s_run_t *r, size_t i)
{
    if (!r->c[i].probe) {
        r->c[i].idle_us = bc_now_us();
        r->idle[r->nidle++] = i;
    }
}

/* Closes slot i; its request, if one is out, is lost for the reason why. An
   idle connection the server closed is on the idle stack already (it
   reopens on its next use); a busy one goes back to it. */
static void s_lose(s_run_t *r, size_t i, int why)
{
    bool was_busy = r->c[i].busy;
    if (was_busy && !r->c[i].probe) {
        r->lost[why]++;
    }
    s_close(r, i);
    if (was_busy) {
        s_make_idle(r, i);
    }
}

/* Sends request n (due at due_us) on slot i, opening its connection when closed. */
static void s_send_on(s_run_t *r, size_t i, uint64_t n, int64_t due_us)
{
    s_conn_t *c = &r->c[i];
    c->n = n;
    c->due_us = due_us;
    c->busy = true;
    if (c->fd < 0) {
        const struct in_addr *src = r->nsrc ? &r->src[r->connects % (uint64_t)r->nsrc] : NULL;
        r->connects++;
        c->fd = bc_tcp_connect(&r->dst, src, true);
        if (c->fd < 0) {
            s_lose(r, i, S_LOST_CONNECT);
            return;
        }
        c->connecting = true;
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
        epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
        return;
    }
    if (s_write(r, c) < 0) {
        s_lose(r, i, S_LOST_WRITE);
    }
}

/* A load arrival: an idle connection, a new one, or "not sent". */
static void s_arrival(s_run_t *r, int64_t due_us)
{
    uint64_t n = r->next_n++;
    r->due++;
    size_t i = S_IDLE_NONE;
    /* A slot once used is either busy or on the idle stack (closed ones too:
       they reconnect when taken), so the stack and the fresh slots are all. */
    if (r->nidle > 0) {
        i = r->idle[--r->nidle];
        if (r->c[i].fd >= 0 && !r->c[i].connecting && due_us - r->c[i].idle_us > S_IDLE_REUSE_US) {
            s_close(r, i); /* reopened by s_send_on */
        }
    } else if (r->fresh < (size_t)r->max_conns) {
        i = r->fresh++;
    }
    if (i == S_IDLE_NONE) {
        s_conn_t tmp = {.n = n, .due_us = due_us};
        r->unsent++;
        s_log(r, &tmp, 1, -1);
        return;
    }
    r->sent++;
    r->inflight++;
    s_send_on(r, i, n, due_us);
}

static void s_connected(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    c->connecting = false;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    if (err != 0 || epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        s_lose(r, i, S_LOST_CONNECT);
    } else if (s_write(r, c) < 0) {
        s_lose(r, i, S_LOST_WRITE);
    }
}

static void s_io(s_run_t *r, size_t i)
{
    s_conn_t *c = &r->c[i];
    if (c->connecting) {
        s_connected(r, i);
        return;
    }
    char buf[16384];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    bool done = false;
    if (n <= 0 || !c->busy) {
        s_lose(r, i, n < 0 ? S_LOST_RESET : S_LOST_EOF);
        return;
    }
    if (bc_http_feed(&c->http, buf, (size_t)n, NULL, NULL, &done) < 0) {
        s_lose(r, i, S_LOST_PARSE);
        return;
    }
    if (done) {
        bool close_it = c->http.close;
        s_done(r, c, c->http.status, c->http.retry_after);
        if (close_it) {
            s_close(r, i); /* Connection: close: the next request opens another */
        }
        s_make_idle(r, i);
    }
}

static void s_wait(s_run_t *r, int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(r->ep, evs, 512, timeout_ms);
    for (int k = 0; k < n; k++) {
        s_io(r, (size_t)evs[k].data.u64);
    }
}

/* Open loop: every arrival due by now is sent; then wait at most 1 ms. */
static void s_open_loop(s_run_t *r)
{
    uint64_t total = (uint64_t)r->rate * (uint64_t)r->seconds;
    while (r->due < total && !util_interrupted) {
        int64_t now = bc_now_us();
        while (r->due < total) {
            int64_t due_us = r->t0 + (int64_t)(r->due * 1000000 / (uint64_t)r->rate);
            if (due_us > now) {
                break;
            }
            s_arrival(r, due_us);
        }
        s_wait(r, 1);
    }
}

/* Closed loop: conns requests out at all times for the duration. */
static void s_closed_loop(s_run_t *r)
{
    int64_t end = r->t0 + r->seconds * 1000000;
    while (bc_now_us() < end && !util_interrupted) {
        while (r->inflight < (uint64_t)r->conns && bc_now_us() < end) {
            s_arrival(r, bc_now_us());
        }
        s_wait(r, 1);
    }
}

/* Probes, one at a time every probe_ms, while the load's answers drain. */
static void s_after(s_run_t *r)
{
    int64_t start = bc_now_us();
    int64_t probe_end = start + r->probe_s * 1000000;
    int64_t drain_end = start + r->drain_s * 1000000;
    int64_t next_probe = start;
    size_t pi = (size_t)r->max_conns;
    while (!util_interrupted) {
        int64_t now = bc_now_us();
        bool probing = now < probe_end;
        if (!probing && (r->inflight == 0 || now >= drain_end)) {
            break;
        }
        if (probing && !r->probe_out && now >= next_probe) {
            r->probe_out = true;
            s_send_on(r, pi, r->next_n++, now);
            next_probe = now + r->probe_ms * 1000;
        }
        s_wait(r, 1);
    }
}

static void s_report(s_run_t *r, double load_s, double total_s)
{
    char st[2048] = "", lost[256] = "";
    size_t len = 0, ll = 0;
    for (int k = 0; k < 5; k++) {
        ll += (size_t)snprintf(lost + ll, sizeof lost - ll, "%s\"%s\":%llu", k ? "," : "",
                               s_lost_names[k], (unsigned long long)r->lost[k]);
    }
    for (int s = 0; s < 600 && len < sizeof st - 32; s++) {
        if (r->statuses[s] > 0) {
            len += (size_t)snprintf(st + len, sizeof st - len, "%s\"%d\":%ld", len ? "," : "", s,
                                    r->statuses[s]);
        }
    }
    printf("OPENLOOP_JSON {\"rate\":%ld,\"conns\":%ld,\"load_s\":%.3f,\"total_s\":%.3f,"
           "\"due\":%llu,\"sent\":%llu,\"sent_rate\":%.1f,\"unsent\":%llu,\"answered\":%llu,"
           "\"unanswered\":%llu,\"transport_errors\":%llu,\"max_send_lag_ms\":%.3f,"
           "\"connections\":%zu,\"lost\":{%s},\"statuses\":{%s}}\n",
           r->rate, r->conns, load_s, total_s, (unsigned long long)r->due,
           (unsigned long long)r->sent, load_s > 0 ? (double)r->sent / load_s : 0.0,
           (unsigned long long)r->unsent, (unsigned long long)r->answered,
           (unsigned long long)r->inflight, (unsigned long long)r->errors,
           (double)r->max_lag_us / 1000.0, r->fresh, lost, st);
}

static int s_setup(s_run_t *r)
{
    size_t slots = (size_t)r->max_conns + 1;
    r->c = calloc(slots, sizeof *r->c);
    r->idle = calloc(slots, sizeof *r->idle);
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    r->log = fopen(r->log_file, "w");
    if (!r->c || !r->idle || r->ep < 0 || !r->log || s_load_ids(r) < 0) {
        return -1;
    }
    for (size_t i = 0; i < slots; i++) {
        r->c[i].fd = -1;
    }
    r->c[slots - 1].probe = true;
    bc_raise_nofile(r->max_conns + 64);
    return 0;
}

static void s_free(s_run_t *r)
{
    for (long i = 0; r->c && i <= r->max_conns; i++) {
        if (r->c[i].fd >= 0) {
            close(r->c[i].fd);
        }
    }
    if (r->ep >= 0) {
        close(r->ep);
    }
    if (r->log) {
        fclose(r->log);
    }
    free(r->c);
    free(r->idle);
    free(r->ids);
}

int main(int argc, char **argv)
{
    s_run_t r = {.tag = "ol",
                 .seconds = 10,
                 .conns = 32,
                 .max_conns = 2000,
                 .probe_ms = 100,
                 .drain_s = 30,
                 .ep = -1};
    const cfg_opt_t opts[] = {
        {"--url", "BICKY_URL", CFG_STR, &r.url, 0, 0, "gateway URL http://127.x.y.z:PORT"},
        {"--token", "BICKY_TOKEN", CFG_STR, &r.token, 0, 0, "bearer token"},
        {"--ids", NULL, CFG_STR, &r.ids_file, 0, 0, "file of conversation ids, one a line"},
        {"--log", NULL, CFG_STR, &r.log_file, 0, 0, "one line per request goes here"},
        {"--tag", NULL, CFG_STR, &r.tag, 0, 0, "content prefix: <tag>-<n>"},
        {"--sources", NULL, CFG_STR, &r.sources, 0, 0, "127.x.y.z,... connect from, in turn"},
        {"--rate", NULL, CFG_INT, &r.rate, 0, 1000000, "arrivals per second (0: closed loop)"},
        {"--seconds", NULL, CFG_INT, &r.seconds, 1, 86400, "seconds of load"},
        {"--conns", NULL, CFG_INT, &r.conns, 1, 10000, "closed loop: requests out at once"},
        {"--max-conns", NULL, CFG_INT, &r.max_conns, 1, 60000, "open loop: connections at most"},
        {"--probe-s", NULL, CFG_INT, &r.probe_s, 0, 3600, "seconds of probes after the load"},
        {"--probe-ms", NULL, CFG_INT, &r.probe_ms, 1, 60000, "a probe every this many ms"},
        {"--drain-s", NULL, CFG_INT, &r.drain_s, 0, 3600, "wait this long for late answers"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = cfg_parse("openloop", USAGE, opts, argc, argv, NULL, NULL);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    if (!r.ids_file || !r.log_file || !r.token || strpbrk(r.tag, "\"\\ ") ||
        bc_parse_url(r.url, &r.dst) < 0 || (r.rate == 0 && r.conns > r.max_conns) ||
        (r.sources && (r.nsrc = bc_parse_sources(r.sources, r.src, 64)) <= 0)) {
        fprintf(stderr, "openloop: needs --ids, --log, BICKY_URL (http://127.x.y.z:PORT) and "
                        "BICKY_TOKEN, a --tag without quotes or spaces, --conns <= --max-conns, "
                        "--sources of 127.x.y.z addresses\n");
        return 2;
    }
    snprintf(r.host, sizeof r.host, "%s", r.url + 7);
    util_signals_install();
    if (s_setup(&r) < 0) {
        fprintf(stderr, "openloop: cannot set up (ids file empty, log not writable, no memory)\n");
        s_free(&r);
        return 1;
    }
    r.t0 = bc_now_us();
    if (r.rate > 0) {
        s_open_loop(&r);
    } else {
        s_closed_loop(&r);
    }
    double load_s = (double)(bc_now_us() - r.t0) / 1e6;
    s_after(&r);
    s_report(&r, load_s, (double)(bc_now_us() - r.t0) / 1e6);
    s_free(&r);
    return 0;
}
