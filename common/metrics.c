/*  metrics — Prometheus histograms, their text rendering, and the GET /metrics
    endpoint on its own thread. See metrics.h. */
#define LOG_MODULE "metrics"
#include "common/metrics.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const int64_t metrics_bounds_us[] = {50,     100,     250,     500,     1000,    2500,
                                     5000,   10000,   25000,   50000,   100000,  250000,
                                     500000, 1000000, 2500000, 5000000, 10000000};
const size_t metrics_nbounds_us = sizeof metrics_bounds_us / sizeof metrics_bounds_us[0];
const int64_t metrics_bounds_size[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
const size_t metrics_nbounds_size = sizeof metrics_bounds_size / sizeof metrics_bounds_size[0];

int metrics_hist_init(metrics_hist_t *h, const int64_t *bounds, size_t nbounds, double scale)
{
    if (nbounds == 0 || nbounds > METRICS_MAX_BUCKETS) {
        return -1;
    }
    for (size_t i = 1; i < nbounds; i++) {
        if (bounds[i] <= bounds[i - 1]) {
            return -1;
        }
    }
    h->bounds = bounds;
    h->nbounds = nbounds;
    h->scale = scale;
    for (size_t i = 0; i <= METRICS_MAX_BUCKETS; i++) {
        atomic_init(&h->buckets[i], 0);
    }
    atomic_init(&h->count, 0);
    atomic_init(&h->sum, 0);
    return 0;
}

/* Single writer: a relaxed load and store instead of a locked add. */
static void s_bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

void metrics_hist_observe(metrics_hist_t *h, int64_t value)
{
    if (value < 0) {
        value = 0;
    }
    size_t lo = 0, hi = h->nbounds; /* first bound >= value; nbounds = +Inf */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bounds[mid] < value) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    s_bump(&h->buckets[lo], 1);
    s_bump(&h->sum, (uint64_t)value);
    s_bump(&h->count, 1);
}

uint64_t metrics_hist_count(const metrics_hist_t *h)
{
    return atomic_load_explicit(&h->count, memory_order_relaxed);
}

void metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_hist_render(FILE *f, const char *name, const char *labels, const metrics_hist_t *h)
{
    const char *sep = labels && *labels ? "," : "";
    labels = labels ? labels : "";
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds) {
            fprintf(f, "%s_bucket{%s%sle=\"%.6g\"} %llu\n", name, labels, sep,
                    (double)h->bounds[i] * h->scale, (unsigned long long)cum);
        } else {
            fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                    (unsigned long long)cum);
        }
    }
    /* _count is the +Inf bucket, so the two always agree in one scrape. */
    double sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * h->scale;
    const char *open = *labels ? "{" : "";
    const char *close = *labels ? "}" : "";
    fprintf(f, "%s_sum%s%s%s %.9g\n", name, open, labels, close, sum);
    fprintf(f, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

/* ---- GET /metrics --------------------------------------------------------------------- */

struct metrics_http_t {
    struct MHD_Daemon *mhd;
    metrics_render_fn *render;
    void *arg;
    int port;
};

static enum MHD_Result s_answer(struct MHD_Connection *conn,
                                unsigned status,
                                char *body,
                                size_t len,
                                enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                          : "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_access(void *cls,
                                struct MHD_Connection *conn,
                                const char *url,
                                const char *method,
                                const char *version,
                                const char *upload,
                                size_t *upload_size,
                                void **req_cls)
{
    static int first_call_marker;
    metrics_http_t *self = cls;
    if (*req_cls == NULL) { /* first call: headers only (DEPS.md, MHD trap 1) */
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_size) { /* a body is read and ignored */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char text[] = "method not allowed\n";
        return s_answer(conn, 405, text, sizeof text - 1, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0) {
        static char text[] = "not found: only GET /metrics is served here\n";
        return s_answer(conn, 404, text, sizeof text - 1, MHD_RESPMEM_PERSISTENT);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        return MHD_NO;
    }
    self->render(f, self->arg);
    if (fclose(f) != 0) {
        free(text);
        return MHD_NO;
    }
    return s_answer(conn, 200, text, len, MHD_RESPMEM_MUST_FREE);
}

static int s_parse_bind(const char *bind, struct sockaddr_storage *addr, bool *v6)
{
    char host[64];
    const char *colon = strrchr(bind, ':');
    if (!colon || colon == bind) {
        return -1;
    }
    size_t hlen = (size_t)(colon - bind);
    const char *h = bind;
    if (bind[0] == '[') { /* [v6]:port */
        if (hlen < 3 || bind[hlen - 1] != ']') {
            return -1;
        }
        h = bind + 1;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        return -1;
    }
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = false;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return 0;
    }
    return -1;
}

metrics_http_t *metrics_http_start(const char *bind, metrics_render_fn *render, void *arg)
{
    struct sockaddr_storage addr;
    bool v6 = false;
    if (!bind || s_parse_bind(bind, &addr, &v6) < 0) {
        LOG_E("invalid metrics address '%s' (HOST:PORT with a numeric IPv4 or [IPv6] host)",
              bind ? bind : "");
        return NULL;
    }
    metrics_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->render = render;
    self->arg = arg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0);
    uint16_t port = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                             : ((struct sockaddr_in *)&addr)->sin_port);
    self->mhd =
        MHD_start_daemon(flags, port, NULL, NULL, s_access, self, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (!self->mhd) {
        LOG_E("cannot listen for metrics on %s", bind);
        free(self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    LOG_N("serving GET /metrics bind=%s port=%d", bind, self->port);
    return self;
}

int metrics_http_port(const metrics_http_t *self)
{
    return self->port;
}

void metrics_http_stop(metrics_http_t **self_p)
{
    if (self_p && *self_p) {
        MHD_stop_daemon((*self_p)->mhd);
        free(*self_p);
        *self_p = NULL;
    }
}
