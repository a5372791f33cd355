/*  sse_report — the end of a sse_clients run: latencies from the recorded
    timestamps (post → completion, commit → each listener's message.created),
    the every-event check, gateway memory per listener, one JSON line on stdout
    and optional CDF files. Single-threaded. */
#include "bench/sse_clients.h"

#include <stdio.h>
#include <string.h>

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

void sc_report(sc_t *sc)
{
    s_stats_t st;
    memset(&st, 0, sizeof st);
    s_collect(sc, &st);
    char jc[256], jf[256], js[256];
    bc_samples_json(&st.completed, jc, sizeof jc);
    bc_samples_json(&st.fanout, jf, sizeof jf);
    bc_samples_json(&st.from_send, js, sizeof js);
    double post_s = (double)(sc->t_post_end - sc->t_post_start) / 1e6;
    long peak = sc->rss_end > sc->rss_connected ? sc->rss_end : sc->rss_connected;
    printf("SSE_JSON {\"clients\":%zu,\"ready\":%zu,\"connect_errors\":%zu,\"closed\":%zu,"
           "\"connect_s\":%.2f,\"convs\":%zu,\"posts\":%zu,\"acked\":%zu,\"post_errors\":%zu,"
           "\"late_posts\":%zu,\"rate_target\":%ld,\"rate_actual\":%.1f,"
           "\"completed_ms\":%s,\"fanout_ms\":%s,\"fanout_from_send_ms\":%s,"
           "\"complete_clients\":%zu,\"gap_clients\":%zu,\"events\":%llu,\"deltas\":%llu,"
           "\"unmatched\":%zu,\"gw_rss_kb\":{\"start\":%ld,\"connected\":%ld,\"end\":%ld},"
           "\"gw_kb_per_client\":%.2f,\"gw_kb_per_client_idle\":%.2f}\n",
           sc->nclients, sc->ready, sc->connect_errors, sc->closed,
           (double)(sc->t_connected - sc->t_start) / 1e6, sc->nconvs, sc->nposts, sc->acked,
           sc->post_errors, sc->late_posts, sc->o.rate,
           post_s > 0 ? (double)sc->nposts / post_s : 0.0, jc, jf, js, st.complete, st.gaps,
           (unsigned long long)st.events, (unsigned long long)st.deltas, st.unmatched,
           sc->rss_start, sc->rss_connected, sc->rss_end,
           s_kb_per_client(sc->rss_start, peak, sc->ready),
           s_kb_per_client(sc->rss_start, sc->rss_connected, sc->ready));
    fflush(stdout);
    if (sc->o.samples) {
        s_cdf(&st.completed, sc->o.samples, "completed");
        s_cdf(&st.fanout, sc->o.samples, "fanout");
        s_cdf(&st.from_send, sc->o.samples, "fromsend");
        s_time_series(sc, sc->o.samples);
    }
    bc_samples_free(&st.completed);
    bc_samples_free(&st.fanout);
    bc_samples_free(&st.from_send);
}
