/*  sse_clients — SSE load generator for bench/run (P3 and P7). Holds --clients
    text/event-stream connections (spread over --sources 127.x addresses, each
    address with its own ephemeral port range) on --convs fresh conversations,
    posts --rate messages/s for --duration-s on keep-alive connections, and
    measures, on one monotonic clock:
      completed: POST written → that message's reply `message.completed` seen on
                 SSE by the conversation's first listener (P3);
      fanout:    202 received (the node answers right after COMMIT) → each
                 listener's `message.created` (P7), and POST written → same.
    It checks that every listener received every stored event of its
    conversation (seq 1, 2, 3… without gap, up to the conversation's
    last_event_id read afterwards), and samples the gateway's RSS. With --ws
    the listeners are WebSockets joined to their conversation's Phoenix topic
    (ws_conn.c; P10) instead of SSE streams, measured the same way. One JSON
    line "SSE_JSON {...}" on stdout; CDF files for gnuplot with --samples.
    Single-threaded, one epoll. */
#include "bench/sse_clients.h"
#include "common/cfg.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "--convs FILE [options]   (BICKY_URL, BICKY_TOKEN from the environment)\n\n"                   \
    "SSE listeners + timed posts against a Bicky gateway on 127.0.0.0/8; see docs/performance.md."

static int s_options(sc_opts_t *o, int argc, char **argv)
{
    const cfg_opt_t opts[] = {
        {"--url", "BICKY_URL", CFG_STR, &o->url, 0, 0, "gateway URL http://127.x.y.z:PORT"},
        {"--token", "BICKY_TOKEN", CFG_STR, &o->token, 0, 0, "bearer token"},
        {"--convs", NULL, CFG_STR, &o->convs_file, 0, 0, "file of fresh conversation ids"},
        {"--nconvs", NULL, CFG_INT, &o->nconvs, 1, 10000000, "conversations used"},
        {"--clients", NULL, CFG_INT, &o->clients, 0, 1000000, "SSE listeners (≥ nconvs)"},
        {"--sources", NULL, CFG_STR, &o->sources, 0, 0, "comma list of 127.x source addresses"},
        {"--rate", NULL, CFG_INT, &o->rate, 1, 1000000, "posts per second"},
        {"--duration-s", NULL, CFG_INT, &o->duration_s, 0, 3600, "posting time"},
        {"--post-conns", NULL, CFG_INT, &o->post_conns, 1, 4096, "connections for posts"},
        {"--connect-parallel", NULL, CFG_INT, &o->connect_parallel, 1, 100000,
         "listeners connecting at once"},
        {"--connect-timeout-s", NULL, CFG_INT, &o->connect_timeout_s, 1, 3600,
         "wait this long for every listener"},
        {"--settle-s", NULL, CFG_INT, &o->settle_s, 1, 600, "wait this long for late events"},
        {"--content", NULL, CFG_STR, &o->content, 0, 0, "message content (plain ASCII)"},
        {"--gateway-pid", NULL, CFG_INT, &o->gateway_pid, 0, 1L << 30,
         "gateway pid for RSS (its worker processes are added)"},
        {"--procs", NULL, CFG_INT, &o->procs, 1, SC_PROCS,
         "processes sharing listeners, conversations and rate (each < its fd limit)"},
        {"--samples", NULL, CFG_STR, &o->samples, 0, 0, "write PREFIX.completed.cdf/.fanout.cdf"},
        {"--ws", NULL, CFG_BOOL, &o->ws, 0, 0,
         "listeners over WebSocket (Phoenix v2 join with last_event_id 0), not SSE"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = cfg_parse("sse_clients", USAGE, opts, argc, argv, NULL, NULL);
    if (rc != 0) {
        return rc;
    }
    if (!o->convs_file || !o->token || !o->url || strpbrk(o->content, "\"\\")) {
        fprintf(stderr, "sse_clients: --convs, BICKY_URL and BICKY_TOKEN are required; "
                        "--content must not contain quotes or backslashes\n");
        return -1;
    }
    return 0;
}

static int s_load_convs(sc_t *sc)
{
    FILE *f = fopen(sc->o.convs_file, "r");
    if (!f) {
        perror(sc->o.convs_file);
        return -1;
    }
    sc->convs = calloc((size_t)sc->o.nconvs, sizeof *sc->convs);
    char line[128];
    /* A --procs child keeps every procs-th conversation of the first nconvs. */
    long procs = sc->proc >= 0 ? sc->o.procs : 1, keep = sc->proc >= 0 ? sc->proc : 0;
    for (long ln = 0; sc->convs && ln < sc->o.nconvs && fgets(line, sizeof line, f);) {
        line[strcspn(line, "\r\n")] = 0;
        uint8_t id[16];
        if (util_uuid_parse(line, id) == 0 && ln++ % procs == keep) {
            util_uuid_format(id, sc->convs[sc->nconvs].id);
            sc->convs[sc->nconvs++].last_event_id = -3;
        }
    }
    fclose(f);
    if (sc->nconvs == 0) {
        fprintf(stderr, "sse_clients: no conversation ids in %s\n", sc->o.convs_file);
        return -1;
    }
    return 0;
}

static int s_setup(sc_t *sc)
{
    if (bc_parse_url(sc->o.url, &sc->dst) < 0) {
        fprintf(stderr, "sse_clients: --url must be http://127.x.y.z:PORT\n");
        return -1;
    }
    snprintf(sc->host, sizeof sc->host, "%s", sc->o.url + 7);
    sc->nsrc = sc->o.sources ? bc_parse_sources(sc->o.sources, sc->src, SC_MAX_SRC) : 0;
    if (sc->nsrc < 0) {
        fprintf(stderr, "sse_clients: --sources must be 127.x.y.z addresses\n");
        return -1;
    }
    if (s_load_convs(sc) < 0) {
        return -1;
    }
    sc->nclients = (size_t)sc->o.clients;
    sc->clients = calloc(sc->nclients + 1, sizeof *sc->clients);
    sc->nposters = (size_t)sc->o.post_conns;
    sc->posters = calloc(sc->nposters, sizeof *sc->posters);
    sc->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!sc->clients || !sc->posters || sc->ep < 0) {
        return -1;
    }
    for (size_t i = 0; i < sc->nclients; i++) {
        sc->clients[i].fd = -1;
        sc->clients[i].conv = (uint32_t)(i % sc->nconvs);
        sc->clients[i].probe = i < sc->nconvs;
    }
    long need = (long)(sc->nclients + sc->nposters) + 64;
    if (bc_raise_nofile(need) < need) {
        fprintf(stderr, "sse_clients: open file limit below %ld (ulimit -n)\n", need);
        return -1;
    }
    return 0;
}

/* One epoll round. */
static void s_poll(sc_t *sc, int timeout_ms)
{
    struct epoll_event evs[1024];
    if (sc->o.ws) {
        sc_ws_heartbeats(sc);
    }
    int n = epoll_wait(sc->ep, evs, 1024, timeout_ms);
    for (int k = 0; k < n; k++) {
        uint64_t tag = evs[k].data.u64 >> 32;
        size_t idx = (size_t)(evs[k].data.u64 & 0xffffffffu);
        if (tag == SC_TAG_CLIENT) {
            sc_client_io(sc, idx, evs[k].events);
        } else {
            sc_poster_io(sc, idx, evs[k].events);
        }
    }
}

static void s_wait_ms(sc_t *sc, int64_t ms)
{
    int64_t end = bc_now_us() + ms * 1000;
    while (bc_now_us() < end && !util_interrupted) {
        s_poll(sc, 5);
    }
}

static void s_connect_all(sc_t *sc)
{
    sc->rss_start = sc->o.gateway_pid ? bc_rss_tree_kb(sc->o.gateway_pid) : -1;
    sc->t_start = bc_now_us();
    int64_t deadline = sc->t_start + sc->o.connect_timeout_s * 1000000;
    while (sc->ready + sc->closed < sc->nclients && bc_now_us() < deadline && !util_interrupted) {
        while (sc->connecting < (size_t)sc->o.connect_parallel && sc->next_client < sc->nclients) {
            sc_client_start(sc, sc->next_client++);
        }
        s_poll(sc, 5);
    }
    sc->t_connected = bc_now_us();
    fprintf(stderr, "sse_clients: %zu/%zu listeners ready in %.1f s (%zu failed)\n", sc->ready,
            sc->nclients, (double)(sc->t_connected - sc->t_start) / 1e6, sc->closed);
    s_wait_ms(sc, 1000);
    sc->rss_connected = sc->o.gateway_pid ? bc_rss_tree_kb(sc->o.gateway_pid) : -1;
}

static void s_posters_up(sc_t *sc)
{
    for (size_t i = 0; i < sc->nposters; i++) {
        sc_poster_start(sc, i);
    }
    int64_t end = bc_now_us() + 2000000;
    size_t idle = 0;
    while (idle < sc->nposters && bc_now_us() < end) {
        s_poll(sc, 5);
        idle = 0;
        for (size_t i = 0; i < sc->nposters; i++) {
            idle += sc->posters[i].state == SC_P_IDLE;
        }
    }
}

static void s_post_phase(sc_t *sc)
{
    s_posters_up(sc);
    size_t total = (size_t)(sc->o.rate * sc->o.duration_s);
    size_t issued = 0;
    sc->t_post_start = bc_now_us();
    while (issued < total && !util_interrupted) {
        int64_t now = bc_now_us();
        size_t due = (size_t)((now - sc->t_post_start) * sc->o.rate / 1000000) + 1;
        due = due > total ? total : due;
        while (issued < due) {
            int64_t slot = sc->t_post_start + (int64_t)issued * 1000000 / sc->o.rate;
            if (sc_post(sc, sc->rr_conv) < 0) {
                break; /* every poster busy: the rest go out late */
            }
            sc->late_posts += now - slot > 1000;
            sc->rr_conv = (uint32_t)((sc->rr_conv + 1) % sc->nconvs);
            issued++;
        }
        s_poll(sc, 1);
    }
    sc->t_post_end = bc_now_us();
}

static bool s_all_done(const sc_t *sc)
{
    for (size_t i = 0; i < sc->nposts; i++) {
        if (sc->posts[i].status == 202 && sc->posts[i].done_us == 0) {
            return false;
        }
    }
    return true;
}

/* Waits for the answers and the completions, then reads every last_event_id. */
static void s_settle(sc_t *sc)
{
    int64_t end = bc_now_us() + sc->o.settle_s * 1000000;
    while (sc->acked + sc->post_errors < sc->nposts && bc_now_us() < end && !util_interrupted) {
        s_poll(sc, 5);
    }
    while (!s_all_done(sc) && bc_now_us() < end && !util_interrupted) {
        s_poll(sc, 5);
    }
    s_wait_ms(sc, 200); /* the turn.completed after the last message.completed */
    end = bc_now_us() + sc->o.settle_s * 1000000;
    for (int round = 0; round < 3 && !util_interrupted && bc_now_us() < end; round++) {
        for (size_t v = 0; v < sc->nconvs && bc_now_us() < end; v++) {
            while (sc->convs[v].last_event_id < -1 && sc_get_conv(sc, (uint32_t)v) < 0 &&
                   bc_now_us() < end) {
                s_poll(sc, 5);
            }
        }
        while (sc->gets_left > 0 && !util_interrupted) {
            s_poll(sc, 5);
        }
    }
}

static size_t s_count_complete(const sc_t *sc)
{
    size_t n = 0;
    for (size_t i = 0; i < sc->nclients; i++) {
        n += sc_client_complete(sc, &sc->clients[i]);
    }
    return n;
}

/* Waits until every live listener caught up with its conversation's last event. */
static void s_wait_listeners(sc_t *sc)
{
    int64_t end = bc_now_us() + sc->o.settle_s * 1000000;
    while (s_count_complete(sc) < sc->ready && bc_now_us() < end && !util_interrupted) {
        s_wait_ms(sc, 50);
    }
    sc->rss_end = sc->o.gateway_pid ? bc_rss_tree_kb(sc->o.gateway_pid) : -1;
}

/* Closes every socket and frees everything; nulls *sc_p. */
static void s_destroy(sc_t **sc_p)
{
    sc_t *sc = *sc_p;
    for (size_t i = 0; sc->clients && i < sc->nclients; i++) {
        if (sc->clients[i].fd >= 0) {
            close(sc->clients[i].fd);
        }
        free(sc->clients[i].created_us);
    }
    for (size_t i = 0; sc->posters && i < sc->nposters; i++) {
        if (sc->posters[i].fd >= 0) {
            close(sc->posters[i].fd);
        }
    }
    for (size_t v = 0; sc->convs && v < sc->nconvs; v++) {
        free(sc->convs[v].posts);
    }
    if (sc->ep >= 0) {
        close(sc->ep);
    }
    free(sc->clients);
    free(sc->posters);
    free(sc->convs);
    free(sc->posts);
    free(sc);
    *sc_p = NULL;
}

/* ---- --procs: children hold the listeners, the parent measures and merges ---- */

static void s_tell(int fd, char c)
{
    if (write(fd, &c, 1) != 1) {
        fprintf(stderr, "sse_clients: lost the parent\n");
    }
}

/* Child: keeps its connections served until the parent's byte c arrives. */
static int s_await(sc_t *sc, char c)
{
    while (!util_interrupted) {
        char got;
        ssize_t n = read(sc->ctl_down, &got, 1);
        if (n == 1 && got == c) {
            return 0;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return -1;
        }
        s_poll(sc, 5);
    }
    return -1;
}

/* Child k of --procs: its share of listeners, conversations, rate and posters. */
static int s_child(sc_t *sc, long k)
{
    sc_opts_t *o = &sc->o;
    long p = o->procs;
    sc->proc = k;
    o->clients = o->clients / p + (k < o->clients % p);
    o->rate = o->rate / p + (k < o->rate % p);
    o->rate = o->rate < 1 ? 1 : o->rate;
    o->post_conns = o->post_conns / p < 1 ? 1 : o->post_conns / p;
    o->connect_parallel = o->connect_parallel / p < 1 ? 1 : o->connect_parallel / p;
    o->gateway_pid = 0;
    o->samples = NULL;
    fcntl(sc->ctl_down, F_SETFL, O_NONBLOCK);
    if (s_setup(sc) < 0) {
        return 1;
    }
    s_connect_all(sc);
    s_tell(sc->ctl_up, 'C');
    if (s_await(sc, 'P') < 0) {
        return 1;
    }
    if (o->duration_s > 0) {
        s_post_phase(sc);
    }
    s_settle(sc);
    s_wait_listeners(sc);
    s_tell(sc->ctl_up, 'E');
    if (s_await(sc, 'R') < 0) {
        return 1;
    }
    return sc_report_send(sc, sc->ctl_up) < 0 ? 1 : 0;
}

/* Parent: one byte c from every child; -1 when one is gone. */
static int s_gather(const int *up, long n, char c)
{
    for (long i = 0; i < n; i++) {
        char got = 0;
        ssize_t r;
        do {
            r = read(up[i], &got, 1);
        } while (r < 0 && errno == EINTR && !util_interrupted);
        if (r != 1 || got != c) {
            fprintf(stderr, "sse_clients: child %ld ended early\n", i);
            return -1;
        }
    }
    return 0;
}

static int s_run_procs(sc_t *sc)
{
    long n = sc->o.procs, gw = sc->o.gateway_pid;
    int up[SC_PROCS], down[SC_PROCS];
    pid_t pids[SC_PROCS];
    sc->rss_start = gw ? bc_rss_tree_kb(gw) : -1;
    for (long k = 0; k < n; k++) {
        int u[2], d[2];
        if (pipe(u) != 0 || pipe(d) != 0) {
            return 1;
        }
        pids[k] = fork();
        if (pids[k] == 0) {
            for (long j = 0; j < k; j++) {
                close(up[j]);
                close(down[j]);
            }
            close(u[0]);
            close(d[1]);
            sc->ctl_up = u[1];
            sc->ctl_down = d[0];
            int rc = s_child(sc, k);
            s_destroy(&sc);
            _exit(rc);
        }
        close(u[1]);
        close(d[0]);
        up[k] = u[0];
        down[k] = d[1];
    }
    int rc = s_gather(up, n, 'C');
    sc->rss_connected = gw ? bc_rss_tree_kb(gw) : -1;
    for (long k = 0; k < n && rc == 0; k++) {
        s_tell(down[k], 'P');
    }
    rc = rc == 0 ? s_gather(up, n, 'E') : rc;
    sc->rss_end = gw ? bc_rss_tree_kb(gw) : -1;
    for (long k = 0; k < n && rc == 0; k++) {
        s_tell(down[k], 'R');
    }
    rc = rc == 0 ? sc_report_merge(sc, up, n) : rc;
    for (long k = 0; k < n; k++) {
        close(up[k]);
        close(down[k]); /* a child still waiting sees EOF and ends */
        int st = 0;
        waitpid(pids[k], &st, 0);
        rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? rc : -1;
    }
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    sc_t *sc = calloc(1, sizeof *sc);
    if (!sc) {
        return 1;
    }
    sc->o = (sc_opts_t){.nconvs = 1000,
                        .clients = 1000,
                        .rate = 100,
                        .duration_s = 10,
                        .post_conns = 32,
                        .connect_parallel = 1000,
                        .connect_timeout_s = 120,
                        .settle_s = 15,
                        .content = "hi",
                        .procs = 1};
    sc->proc = -1;
    sc->ctl_up = sc->ctl_down = -1;
    int rc = s_options(&sc->o, argc, argv);
    if (rc != 0) {
        free(sc);
        return rc > 0 ? 0 : 2;
    }
    util_signals_install();
    sc->ep = -1;
    if (sc->o.procs > 1) {
        rc = s_run_procs(sc);
        s_destroy(&sc);
        return rc;
    }
    if (s_setup(sc) < 0) {
        s_destroy(&sc);
        return 1;
    }
    s_connect_all(sc);
    if (sc->o.duration_s > 0) {
        s_post_phase(sc);
    }
    s_settle(sc);
    s_wait_listeners(sc);
    sc_report(sc);
    s_destroy(&sc);
    return 0;
}
