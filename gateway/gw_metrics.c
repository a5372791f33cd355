/*  gw_metrics — the gateway's counters and their Prometheus text rendering
    (GET /metrics). Loop thread only. */
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STATUS_SLOTS 16 /* distinct statuses kept per route; more fold into "other" */
#define S_MAX_ROUTES   64 /* route table bound (the table has fewer) */

typedef struct {
    int status;     /* HTTP status, 0 = free slot, -1 = other */
    uint64_t count; /* answers */
} s_slot_t;

static const char *s_outcomes[] = {"ok",          "timeout", "moved",
                                   "unavailable", "dropped", "overloaded"};
#define S_NOUTCOMES (sizeof s_outcomes / sizeof s_outcomes[0])

struct gw_metrics_t {
    int64_t started_ms;                              /* monotonic start */
    s_slot_t http[S_MAX_ROUTES + 1][S_STATUS_SLOTS]; /* per route (+ unmatched) */
    uint64_t upstream[S_NOUTCOMES];                  /* upstream outcomes */
    uint64_t sse_slow;                               /* slow SSE disconnects */
    uint64_t ws_slow;                                /* slow WebSocket closes */
};

gw_metrics_t *gw_metrics_new(void)
{
    gw_metrics_t *self = calloc(1, sizeof *self);
    if (self) {
        self->started_ms = util_mono_ms();
    }
    return self;
}

void gw_metrics_destroy(gw_metrics_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void gw_metrics_http(gw_metrics_t *self, const gw_route_t *route, int status)
{
    size_t idx = gw_route_index(route);
    if (idx > S_MAX_ROUTES) {
        idx = S_MAX_ROUTES;
    }
    s_slot_t *slots = self->http[idx];
    for (size_t i = 0; i < S_STATUS_SLOTS; i++) {
        if (slots[i].status == status || slots[i].status == 0) {
            slots[i].status = status;
            slots[i].count++;
            return;
        }
    }
    /* Table full: the last slot becomes "other". */
    slots[S_STATUS_SLOTS - 1].status = -1;
    slots[S_STATUS_SLOTS - 1].count++;
}

void gw_metrics_upstream(gw_metrics_t *self, const char *outcome)
{
    for (size_t i = 0; i < S_NOUTCOMES; i++) {
        if (strcmp(s_outcomes[i], outcome) == 0) {
            self->upstream[i]++;
            return;
        }
    }
}

void gw_metrics_sse_slow(gw_metrics_t *self)
{
    self->sse_slow++;
}

void gw_metrics_ws_slow(gw_metrics_t *self)
{
    self->ws_slow++;
}

static void s_gauge(FILE *f, const char *name, const char *help, double value)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.15g\n", name, help, name, name, value);
}

static void s_render_http(gw_metrics_t *self, FILE *f)
{
    size_t nroutes;
    const gw_route_t *routes = gw_routes(&nroutes);
    const char *name = "bicky_gateway_http_requests_total";
    fprintf(f, "# HELP %s HTTP answers by route pattern and status.\n# TYPE %s counter\n", name,
            name);
    for (size_t r = 0; r <= nroutes && r <= S_MAX_ROUTES; r++) {
        const char *label = r < nroutes ? routes[r].pattern : "unmatched";
        for (size_t i = 0; i < S_STATUS_SLOTS && self->http[r][i].status; i++) {
            char st[16];
            if (self->http[r][i].status < 0) {
                snprintf(st, sizeof st, "other");
            } else {
                snprintf(st, sizeof st, "%d", self->http[r][i].status);
            }
            fprintf(f, "%s{route=\"%s\",status=\"%s\"} %llu\n", name, label, st,
                    (unsigned long long)self->http[r][i].count);
        }
    }
}

static void s_render_upstream(gw_metrics_t *self, FILE *f)
{
    const char *name = "bicky_gateway_upstream_replies_total";
    fprintf(f, "# HELP %s Upstream calls by outcome.\n# TYPE %s counter\n", name, name);
    for (size_t i = 0; i < S_NOUTCOMES; i++) {
        fprintf(f, "%s{outcome=\"%s\"} %llu\n", name, s_outcomes[i],
                (unsigned long long)self->upstream[i]);
    }
    name = "bicky_gateway_sse_slow_disconnects_total";
    fprintf(f, "# HELP %s SSE clients disconnected for falling behind.\n# TYPE %s counter\n", name,
            name);
    fprintf(f, "%s %llu\n", name, (unsigned long long)self->sse_slow);
    name = "bicky_gateway_ws_slow_closes_total";
    fprintf(f, "# HELP %s WebSockets closed (1008) for output over their cap.\n# TYPE %s counter\n",
            name, name);
    fprintf(f, "%s %llu\n", name, (unsigned long long)self->ws_slow);
}

char *gw_metrics_render(gw_metrics_t *self, gw_server_t *srv)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        return NULL;
    }
    s_gauge(f, "bicky_gateway_uptime_seconds", "Seconds since the gateway started.",
            (double)((util_mono_ms() - self->started_ms) / 10) / 100.0);
    s_render_http(self, f);
    s_gauge(f, "bicky_gateway_live_nodes", "Alive nodes on the known ring.",
            (double)gw_upstream_live(srv->upstream));
    s_gauge(f, "bicky_gateway_ring_epoch", "Epoch of the known ring.",
            (double)gw_upstream_epoch(srv->upstream));
    s_gauge(f, "bicky_gateway_open_connections", "Open HTTP connections.",
            (double)gw_server_connections(srv));
    s_gauge(f, "bicky_gateway_sse_clients", "Connected SSE clients.",
            (double)zlistx_size(srv->sse));
    s_gauge(f, "bicky_gateway_sse_topics", "Event topics subscribed.",
            (double)gw_fanout_topics(srv->fanout));
    s_gauge(f, "bicky_gateway_upstream_pending", "Calls waiting for a node.",
            (double)gw_upstream_pending(srv->upstream));
    s_gauge(f, "bicky_gateway_auth_cache_entries", "Entries in the token cache.",
            (double)gw_auth_cache_size(srv->auth));
    s_render_upstream(self, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
