/*  sse_report — the end of a sse_clients run: latencies from the recorded
    timestamps (post → completion, commit → each listener's message.created),
    the every-event check, gateway memory per listener, one JSON line on stdout
    and optional CDF files. Single-threaded. */
#include "bench/sse_clients.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool sc_client_complete(const sc_t *sc, const sc_client_t *c)
{
    int64_t want = sc->convs[c->conv].last_event_id;
    return c->ready && c->state == SC_C_STREAM && c->gaps == 0 && want >= 0 && c->max_id == want;
}

typedef struct {
    bc_samples_t completed; /* POST written → message.completed (probe listener) */
    bc_samples_t fanout;    /* 202 received → message.created at each listener (≥ 0) */
    bc_samples_t from_send; /* POST written → message.created at each listener */
    size_t complete;        /* listeners with every event */
    size_t gaps;            /* listeners with a seq gap */
    uint64_t events;        /* stored events received, all listeners */
    uint64_t deltas;        /* deltas received, all listeners */
    size_t unmatched;       /* message.created without a post of ours */
} s_stats_t;

static void s_listener(const sc_t *sc, const sc_client_t *c, s_stats_t *st)
{
    const sc_conv_t *v = &sc->convs[c->conv];
    st->complete += sc_client_complete(sc, c);
    st->gaps += c->gaps > 0;
    st->events += c->events;
    st->deltas += c->deltas;
    for (uint32_t k = 0; k < c->ncreated; k++) {
        if (k >= v->nposts) {
            st->unmatched++;
            continue;
        }
        const sc_post_t *p = &sc->posts[v->posts[k]];
        if (p->ack_us > 0) {
            int64_t d = c->created_us[k] - p->ack_us;
            bc_samples_add(&st->fanout, d > 0 ? d : 0);
        }
        bc_samples_add(&st->from_send, c->created_us[k] - p->sent_us);
    }
}

static void s_collect(const sc_t *sc, s_stats_t *st)
{
    for (size_t i = 0; i < sc->nposts; i++) {
        const sc_post_t *p = &sc->posts[i];
        if (p->status == 202 && p->done_us > 0) {
            bc_samples_add(&st->completed, p->done_us - p->sent_us);
        }
    }
    for (size_t i = 0; i < sc->nclients; i++) {
        if (sc->clients[i].ready) {
            s_listener(sc, &sc->clients[i], st);
        }
    }
}

static void s_cdf(bc_samples_t *s, const char *prefix, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s.%s.cdf", prefix, name);
    if (bc_samples_write_cdf(s, path, 2000) < 0) {
        perror(path);
    }
}

/* PREFIX.completed.ts: "<seconds since the first post> <POST → completed ms>" per
   answered post, in sending order (a stall and a build-up look different here). */
static void s_time_series(const sc_t *sc, const char *prefix)
{
    char path[1024];
    snprintf(path, sizeof path, "%s.completed.ts", prefix);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    for (size_t i = 0; i < sc->nposts; i++) {
        const sc_post_t *p = &sc->posts[i];
        if (p->status == 202 && p->done_us > 0) {
            fprintf(f, "%.4f %.3f\n", (double)(p->sent_us - sc->t_post_start) / 1e6,
                    (double)(p->done_us - p->sent_us) / 1e3);
        }
    }
    fclose(f);
}

static double s_kb_per_client(long before, long after, size_t n)
{
    return before > 0 && after > 0 && n > 0 ? (double)(after - before) / (double)n : -1;
}

/* The counts of one process (or the sum of several) that the JSON line reports. */
typedef struct {
    uint64_t clients, ready, connect_errors, closed, convs, posts, acked, post_errors, late_posts;
    uint64_t complete, gaps, events, deltas, unmatched;
    uint64_t nsamples[3]; /* completed, fanout, from_send: values that follow (--procs) */
    int64_t t_start, t_connected, t_post_start, t_post_end;
} s_part_t;

static void s_part_of(const sc_t *sc, const s_stats_t *st, s_part_t *p)
{
    *p = (s_part_t){.clients = sc->nclients,
                    .ready = sc->ready,
                    .connect_errors = sc->connect_errors,
                    .closed = sc->closed,
                    .convs = sc->nconvs,
                    .posts = sc->nposts,
                    .acked = sc->acked,
                    .post_errors = sc->post_errors,
                    .late_posts = sc->late_posts,
                    .complete = st->complete,
                    .gaps = st->gaps,
                    .events = st->events,
                    .deltas = st->deltas,
                    .unmatched = st->unmatched,
                    .nsamples = {st->completed.n, st->fanout.n, st->from_send.n},
                    .t_start = sc->t_start,
                    .t_connected = sc->t_connected,
                    .t_post_start = sc->t_post_start,
                    .t_post_end = sc->t_post_end};
}

static void s_print(const sc_t *sc, const s_part_t *p, s_stats_t *st)
{
    char jc[256], jf[256], js[256];
    bc_samples_json(&st->completed, jc, sizeof jc);
    bc_samples_json(&st->fanout, jf, sizeof jf);
    bc_samples_json(&st->from_send, js, sizeof js);
    double post_s = (double)(p->t_post_end - p->t_post_start) / 1e6;
    long peak = sc->rss_end > sc->rss_connected ? sc->rss_end : sc->rss_connected;
    printf("SSE_JSON {\"clients\":%llu,\"ready\":%llu,\"connect_errors\":%llu,\"closed\":%llu,"
           "\"connect_s\":%.2f,\"convs\":%llu,\"posts\":%llu,\"acked\":%llu,\"post_errors\":%llu,"
           "\"late_posts\":%llu,\"rate_target\":%ld,\"rate_actual\":%.1f,"
           "\"completed_ms\":%s,\"fanout_ms\":%s,\"fanout_from_send_ms\":%s,"
           "\"complete_clients\":%llu,\"gap_clients\":%llu,\"events\":%llu,\"deltas\":%llu,"
           "\"unmatched\":%llu,\"gw_rss_kb\":{\"start\":%ld,\"connected\":%ld,\"end\":%ld},"
           "\"gw_kb_per_client\":%.2f,\"gw_kb_per_client_idle\":%.2f,\"procs\":%ld}\n",
           (unsigned long long)p->clients, (unsigned long long)p->ready,
           (unsigned long long)p->connect_errors, (unsigned long long)p->closed,
           (double)(p->t_connected - p->t_start) / 1e6, (unsigned long long)p->convs,
           (unsigned long long)p->posts, (unsigned long long)p->acked,
           (unsigned long long)p->post_errors, (unsigned long long)p->late_posts, sc->o.rate,
           post_s > 0 ? (double)p->posts / post_s : 0.0, jc, jf, js,
           (unsigned long long)p->complete, (unsigned long long)p->gaps,
           (unsigned long long)p->events, (unsigned long long)p->deltas,
           (unsigned long long)p->unmatched, sc->rss_start, sc->rss_connected, sc->rss_end,
           s_kb_per_client(sc->rss_start, peak, p->ready),
           s_kb_per_client(sc->rss_start, sc->rss_connected, p->ready),
           sc->o.procs > 1 ? sc->o.procs : 1);
    fflush(stdout);
    if (sc->o.samples) {
        s_cdf(&st->completed, sc->o.samples, "completed");
        s_cdf(&st->fanout, sc->o.samples, "fanout");
        s_cdf(&st->from_send, sc->o.samples, "fromsend");
    }
}

static void s_stats_free(s_stats_t *st)
{
    bc_samples_free(&st->completed);
    bc_samples_free(&st->fanout);
    bc_samples_free(&st->from_send);
}

void sc_report(sc_t *sc)
{
    s_stats_t st;
    memset(&st, 0, sizeof st);
    s_collect(sc, &st);
    s_part_t p;
    s_part_of(sc, &st, &p);
    s_print(sc, &p, &st);
    if (sc->o.samples) {
        s_time_series(sc, sc->o.samples);
    }
    s_stats_free(&st);
}

/* ---- --procs: children send, the parent merges ------------------------------- */

/* Writes (wr) or reads len bytes of data on fd, across short transfers. -1 on error/EOF. */
static int s_io_all(int fd, void *data, size_t len, bool wr)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_write_all(int fd, const void *data, size_t len)
{
    return s_io_all(fd, (void *)data, len, true);
}

static int s_read_all(int fd, void *data, size_t len)
{
    return s_io_all(fd, data, len, false);
}

int sc_report_send(sc_t *sc, int fd)
{
    s_stats_t st;
    memset(&st, 0, sizeof st);
    s_collect(sc, &st);
    s_part_t p;
    s_part_of(sc, &st, &p);
    int rc = s_write_all(fd, &p, sizeof p);
    bc_samples_t *all[3] = {&st.completed, &st.fanout, &st.from_send};
    for (int k = 0; k < 3 && rc == 0; k++) {
        rc = all[k]->n ? s_write_all(fd, all[k]->v, all[k]->n * sizeof *all[k]->v) : 0;
    }
    s_stats_free(&st);
    return rc;
}

static void s_part_add(s_part_t *t, const s_part_t *p, bool first)
{
    uint64_t *dst = &t->clients, *src = (uint64_t *)&p->clients;
    for (size_t k = 0; k < offsetof(s_part_t, nsamples) / sizeof(uint64_t); k++) {
        dst[k] += src[k];
    }
    t->t_start = first || p->t_start < t->t_start ? p->t_start : t->t_start;
    t->t_connected = first || p->t_connected > t->t_connected ? p->t_connected : t->t_connected;
    t->t_post_start =
        first || p->t_post_start < t->t_post_start ? p->t_post_start : t->t_post_start;
    t->t_post_end = first || p->t_post_end > t->t_post_end ? p->t_post_end : t->t_post_end;
}

int sc_report_merge(sc_t *sc, const int *fds, long n)
{
    s_stats_t st;
    memset(&st, 0, sizeof st);
    s_part_t tot;
    memset(&tot, 0, sizeof tot);
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        s_part_t p;
        rc = s_read_all(fds[i], &p, sizeof p);
        bc_samples_t *all[3] = {&st.completed, &st.fanout, &st.from_send};
        for (int k = 0; k < 3 && rc == 0; k++) {
            int64_t *v = p.nsamples[k] ? malloc(p.nsamples[k] * sizeof *v) : NULL;
            rc = p.nsamples[k] && (!v || s_read_all(fds[i], v, p.nsamples[k] * sizeof *v) < 0) ? -1
                                                                                               : 0;
            for (uint64_t j = 0; j < p.nsamples[k] && rc == 0; j++) {
                rc = bc_samples_add(all[k], v[j]);
            }
            free(v);
        }
        if (rc == 0) {
            s_part_add(&tot, &p, i == 0);
        }
    }
    if (rc == 0) {
        s_print(sc, &tot, &st);
    }
    s_stats_free(&st);
    return rc;
}
