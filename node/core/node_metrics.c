/*  node_metrics — the node's latency histograms: group commit time, group size,
    queue wait before a write set's group is sent, and turn latency per strategy.
    Observed on the loop thread, rendered by the metrics endpoint's thread. */
#include "node/core/node_core.h"

#include <stdlib.h>
#include <string.h>

node_metrics_t *node_metrics_new(void)
{
    node_metrics_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    metrics_hist_init(&self->commit_us, metrics_bounds_us, metrics_nbounds_us, 1e-6);
    metrics_hist_init(&self->group_size, metrics_bounds_size, metrics_nbounds_size, 1);
    metrics_hist_init(&self->queue_us, metrics_bounds_us, metrics_nbounds_us, 1e-6);
    for (size_t i = 0; i <= NODE_METRICS_STRATEGIES; i++) {
        metrics_hist_init(&self->turn_us[i], metrics_bounds_us, metrics_nbounds_us, 1e-6);
    }
    atomic_init(&self->nstrategies, 0);
    return self;
}

void node_metrics_destroy(node_metrics_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void node_metrics_turn(node_metrics_t *self, const char *strategy, int64_t us)
{
    if (!self) {
        return;
    }
    strategy = !strategy ? "echo" : *strategy ? strategy : "unknown";
    size_t n = atomic_load_explicit(&self->nstrategies, memory_order_relaxed);
    size_t i = 0;
    while (i < n && strcmp(self->strategy[i], strategy) != 0) {
        i++;
    }
    if (i == n && n < NODE_METRICS_STRATEGIES && strlen(strategy) < sizeof self->strategy[0]) {
        /* A new name: written before the count that makes it visible to the renderer. */
        strcpy(self->strategy[n], strategy);
        atomic_store_explicit(&self->nstrategies, n + 1, memory_order_release);
    } else if (i == n) {
        i = NODE_METRICS_STRATEGIES; /* other */
    }
    metrics_hist_observe(&self->turn_us[i], us);
}

/* Label text strategy="name", with the characters Prometheus escapes escaped. */
static void s_label(char *out, size_t cap, const char *name)
{
    size_t o = (size_t)snprintf(out, cap, "strategy=\"");
    for (const char *p = name; *p && o + 4 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

void node_metrics_render(FILE *f, void *arg)
{
    node_metrics_t *self = arg;
    metrics_family(f, "bicky_node_commit_seconds", "histogram",
                   "Group commit transactions, from sending to their result.");
    metrics_hist_render(f, "bicky_node_commit_seconds", NULL, &self->commit_us);
    metrics_family(f, "bicky_node_commit_group_size", "histogram",
                   "Write sets per group commit transaction.");
    metrics_hist_render(f, "bicky_node_commit_group_size", NULL, &self->group_size);
    metrics_family(f, "bicky_node_queue_wait_seconds", "histogram",
                   "Time a write set waits for its group to be sent.");
    metrics_hist_render(f, "bicky_node_queue_wait_seconds", NULL, &self->queue_us);
    metrics_family(f, "bicky_node_turn_seconds", "histogram",
                   "Turns from their start being committed to their end being committed.");
    size_t n = atomic_load_explicit(&self->nstrategies, memory_order_acquire);
    char label[160];
    for (size_t i = 0; i < n; i++) {
        s_label(label, sizeof label, self->strategy[i]);
        metrics_hist_render(f, "bicky_node_turn_seconds", label, &self->turn_us[i]);
    }
    if (metrics_hist_count(&self->turn_us[NODE_METRICS_STRATEGIES]) > 0) {
        metrics_hist_render(f, "bicky_node_turn_seconds", "strategy=\"other\"",
                            &self->turn_us[NODE_METRICS_STRATEGIES]);
    }
}
