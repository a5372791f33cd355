/*  bench_actor — cost of activating, finding and passivating actors, without a
    database (issue 6, P5: activation ≤ 1 µs). Activation here is what the
    node does before the asynchronous load: allocate the actor, insert it in
    the hash table, append it to the LRU list. Also reports resident memory
    per actor. Build and run: see docs/node.md. Single thread. */
#include "common/util.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long s_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_actor [N]\n");
        return 2;
    }
    uint8_t(*ids)[16] = malloc((size_t)n * 16);
    uint8_t team[16];
    util_uuid_generate(team);
    for (long i = 0; i < n; i++) {
        util_uuid_generate(ids[i]);
    }
    node_actors_t *t = node_actors_new(NULL);
    long rss0 = s_rss_kb();
    int64_t t0 = util_mono_us();
    for (long i = 0; i < n; i++) {
        if (!node_actors_add(t, ids[i], team, i)) {
            fprintf(stderr, "add failed at %ld\n", i);
            return 1;
        }
    }
    int64_t t1 = util_mono_us();
    long rss1 = s_rss_kb();
    size_t found = 0;
    for (long i = 0; i < n; i++) {
        found += node_actors_find(t, ids[(i * 7919) % n]) != NULL;
    }
    int64_t t2 = util_mono_us();
    for (long i = 0; i < n; i++) {
        node_actors_remove(t, node_actors_oldest(t));
    }
    int64_t t3 = util_mono_us();
    printf("actors=%ld sizeof(node_actor_t)=%zu\n", n, sizeof(node_actor_t));
    printf("activate   %.3f us/actor (%.0f/s)\n", (double)(t1 - t0) / (double)n,
           (double)n * 1e6 / (double)(t1 - t0));
    printf("find       %.3f us/lookup (found %zu)\n", (double)(t2 - t1) / (double)n, found);
    printf("passivate  %.3f us/actor\n", (double)(t3 - t2) / (double)n);
    printf("resident   %.0f bytes/actor (RSS delta, table included)\n",
           (double)(rss1 - rss0) * 1024.0 / (double)n);
    node_actors_destroy(&t);
    free(ids);
    return 0;
}
