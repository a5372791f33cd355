/*  metrics — Prometheus histograms and their text rendering, and a small HTTP
    endpoint that serves a process's metrics (GET /metrics) from its own thread.

    A histogram has fixed bucket bounds in integer units (microseconds for
    durations, items for sizes) and a scale that turns a unit into the base
    unit of its name (1e-6 for seconds, 1 for counts). One thread observes
    (the owner's loop); any thread may render at any time: the counters are
    atomics written by their single writer, so a scrape never stops the loop
    and never sees a torn value (a scrape may see a bucket one observation
    ahead of _count, which Prometheus tolerates). */
#ifndef BICKY_METRICS_H
#define BICKY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define METRICS_MAX_BUCKETS 24

typedef struct {
    const int64_t *bounds; /* upper bounds in units, ascending (borrowed, static) */
    size_t nbounds;        /* 1..METRICS_MAX_BUCKETS */
    double scale;          /* unit → rendered value (1e-6: µs as seconds) */
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    _Atomic uint64_t count;                            /* observations */
    _Atomic uint64_t sum;                              /* sum of the observed units */
} metrics_hist_t;

/* Bucket bounds every Bicky duration histogram uses, in microseconds: 50 µs to 10 s. */
extern const int64_t metrics_bounds_us[];
extern const size_t metrics_nbounds_us;
/* Bucket bounds for sizes (items per group): 1 to 1024. */
extern const int64_t metrics_bounds_size[];
extern const size_t metrics_nbounds_size;

/* Sets h empty with these bounds (borrowed: static storage) and scale. -1 when
   nbounds is 0 or above METRICS_MAX_BUCKETS or the bounds are not ascending. */
int metrics_hist_init(metrics_hist_t *h, const int64_t *bounds, size_t nbounds, double scale);
/* Records one observation of value units (negative counts as 0). Single writer. */
void metrics_hist_observe(metrics_hist_t *h, int64_t value);
/* Observations so far. Any thread. */
uint64_t metrics_hist_count(const metrics_hist_t *h);

/* Writes "# HELP name help" and "# TYPE name type" (type: "histogram", "gauge", "counter"). */
void metrics_family(FILE *f, const char *name, const char *type, const char *help);
/* Writes h's series name_bucket{labels,le="…"} (cumulative, +Inf last), name_sum{labels}
   and name_count{labels}. labels is the text inside the braces without them, e.g.
   strategy="echo", or NULL/"" for none. Any thread. */
void metrics_hist_render(FILE *f, const char *name, const char *labels, const metrics_hist_t *h);

/* The HTTP endpoint: GET /metrics answers 200 text/plain; version=0.0.4 with what
   render writes; every other path 404, other methods 405. It runs its own thread
   (libmicrohttpd internal polling), so render is called on that thread. */
typedef void(metrics_render_fn)(FILE *f, void *arg);
typedef struct metrics_http_t metrics_http_t;

/* Starts serving on bind ("HOST:PORT", an IPv4 address or "[v6]"; PORT 0 picks a
   free port, see metrics_http_port). NULL (logged) on a bad address or a bind failure. */
metrics_http_t *metrics_http_start(const char *bind, metrics_render_fn *render, void *arg);
/* The port it listens on. */
int metrics_http_port(const metrics_http_t *self);
/* Stops the thread and frees; nulls *self_p; accepts NULL. */
void metrics_http_stop(metrics_http_t **self_p);

#endif
