/*  node_handoff — what a node does with the actors of conversations a new ring
    gives to another node (a node joined, left, died, or this one is draining):
    requests waiting in their mailboxes are answered MOVED (the gateway retries
    on the new owner, whose claim waits for ours to be released); idle actors
    are freed at once, which deletes their claims; an actor with a commit in
    flight is freed when it returns, one with a running turn once the turn's
    end is stored (no new turn starts on a doomed actor). Progress is logged
    every second until no such actor is left, then "hand-off done … in N ms"
    (within 100 ms). Loop thread only. */
#define LOG_MODULE "node_handoff"
#include "common/log.h"
#include "common/util.h"
#include "node/placement/node_placement.h"

#include <stdlib.h>

#define S_CHECK_MS    100  /* hand-off completion check period */
#define S_PROGRESS_MS 1000 /* hand-off progress log period */

static bool s_not_ours(node_actor_t *a, void *arg)
{
    return node_ring_owner(arg, a->conv_id) != NODE_OWNER_SELF;
}

static bool s_doomed(node_actor_t *a, void *arg)
{
    return (a->flags & NODE_AF_DOOMED) != 0;
}

static int s_on_progress(zloop_t *loop, int timer_id, void *arg)
{
    node_t *node = arg;
    node_handoff_t *h = node_fence_handoff(node);
    size_t n = node_actors_count(node->actors);
    node_actor_t **all = n ? malloc(n * sizeof *all) : NULL;
    size_t busy = all ? node_actors_select(node->actors, s_doomed, NULL, all, n) : 0;
    free(all);
    int64_t ms = util_mono_ms() - h->since_ms;
    if (busy > 0 && !node->stopping) {
        if (ms / S_PROGRESS_MS != (ms - S_CHECK_MS) / S_PROGRESS_MS) {
            LOG_N("hand-off: %zu actors still finishing (commit or turn) after %lld ms", busy,
                  (long long)ms);
        }
        return 0;
    }
    LOG_N("hand-off done: %zu actors released in %lld ms, resident=%zu", h->released, (long long)ms,
          n);
    zloop_timer_end(loop, timer_id);
    h->timer = -1;
    return 0;
}

/* Gives one actor up: its waiting requests go to the new owner. True when freed now. */
static bool s_give_up(node_t *node, node_actor_t *a)
{
    for (node_req_t *r; (r = node_mbox_pop(a));) {
        node_reply_moved(node, &r);
    }
    a->flags |= NODE_AF_DOOMED;
    if (node_actor_quiescent(a)) {
        node_fence_drop(node, a, "conversation moved");
        return true;
    }
    return false;
}

void node_handoff_rehome(node_t *node)
{
    size_t n = node_actors_count(node->actors);
    node_actor_t **moved = n ? malloc(n * sizeof *moved) : NULL;
    if (!moved) {
        return;
    }
    n = node_actors_select(node->actors, s_not_ours, node, moved, n);
    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
        freed += s_give_up(node, moved[i]);
    }
    free(moved);
    if (n == 0) {
        return;
    }
    node_handoff_t *h = node_fence_handoff(node);
    LOG_N("ring change: %zu actors are not ours any more: %zu released, %zu finishing first", n,
          freed, n - freed);
    if (!h) {
        return;
    }
    if (h->timer < 0) {
        h->since_ms = util_mono_ms();
        h->released = 0;
        h->timer = zloop_timer(node->loop, S_CHECK_MS, 0, s_on_progress, node);
    }
    h->released += n;
}
