/*  node_sched — wake-ups for actors (echo word delays, strategy back-off) in a
    binary min-heap with ONE zloop timer armed for the earliest due time. zloop
    scans its timer list on every iteration, so a timer per running turn would
    cost O(turns) per loop turn; and a timer argument must never be an actor
    (an ended zloop timer can still fire in the same pass), only the node.
    Each actor has at most one wake-up; its heap index lives in its turn state.
    Loop thread only. */
#define LOG_MODULE "node_sched"
#include "common/log.h"
#include "common/util.h"
#include "node/turns/node_turns.h"

#include <stdlib.h>

#define SCHED_BURST 4096 /* wake-ups handled per timer call (fairness) */

typedef struct {
    int64_t due;         /* mono ms */
    node_actor_t *actor; /* whose turns->heap_idx is this entry's index */
} s_entry_t;

struct node_sched_t {
    node_t *node;      /* borrowed */
    s_entry_t *heap;   /* min-heap on due */
    size_t n, cap;     /* entries used / allocated */
    int timer;         /* armed zloop timer, -1 none */
    int64_t armed_due; /* due time the timer was armed for */
};

node_sched_t *node_sched_new(node_t *node)
{
    node_sched_t *self = calloc(1, sizeof *self);
    if (self) {
        self->node = node;
        self->timer = -1;
    }
    return self;
}

void node_sched_destroy(node_sched_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_sched_t *self = *self_p;
    if (self->timer >= 0) {
        zloop_timer_end(self->node->loop, self->timer);
    }
    for (size_t i = 0; i < self->n; i++) {
        self->heap[i].actor->turns->heap_idx = -1;
    }
    free(self->heap);
    free(self);
    *self_p = NULL;
}

static void s_set(node_sched_t *self, size_t i, s_entry_t e)
{
    self->heap[i] = e;
    e.actor->turns->heap_idx = (int32_t)i;
}

static void s_up(node_sched_t *self, size_t i)
{
    s_entry_t e = self->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (self->heap[p].due <= e.due) {
            break;
        }
        s_set(self, i, self->heap[p]);
        i = p;
    }
    s_set(self, i, e);
}

static void s_down(node_sched_t *self, size_t i)
{
    s_entry_t e = self->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= self->n) {
            break;
        }
        if (c + 1 < self->n && self->heap[c + 1].due < self->heap[c].due) {
            c++;
        }
        if (self->heap[c].due >= e.due) {
            break;
        }
        s_set(self, i, self->heap[c]);
        i = c;
    }
    s_set(self, i, e);
}

static void s_remove_at(node_sched_t *self, size_t i)
{
    self->heap[i].actor->turns->heap_idx = -1;
    self->n--;
    if (i < self->n) {
        node_actor_t *moved = self->heap[self->n].actor;
        s_set(self, i, self->heap[self->n]);
        s_down(self, i);
        s_up(self, (size_t)moved->turns->heap_idx);
    }
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg);

/* Keeps one timer armed for the earliest wake-up. */
static void s_rearm(node_sched_t *self)
{
    if (self->n == 0) {
        return;
    }
    int64_t due = self->heap[0].due;
    if (self->timer >= 0 && self->armed_due <= due) {
        return;
    }
    if (self->timer >= 0) {
        zloop_timer_end(self->node->loop, self->timer);
    }
    int64_t delay = due - util_mono_ms();
    self->timer =
        zloop_timer(self->node->loop, (size_t)(delay > 0 ? delay : 0), 1, s_on_timer, self);
    self->armed_due = due;
    if (self->timer < 0) {
        LOG_E("cannot arm the scheduler timer");
    }
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    node_sched_t *self = arg;
    if (timer_id != self->timer) {
        return 0; /* ended earlier in this pass */
    }
    self->timer = -1;
    int64_t now = util_mono_ms();
    for (int k = 0; k < SCHED_BURST && self->n && self->heap[0].due <= now; k++) {
        node_actor_t *a = self->heap[0].actor;
        s_remove_at(self, 0);
        node_actor_wake(self->node, a);
    }
    s_rearm(self);
    return 0;
}

int node_sched_at(node_sched_t *self, node_actor_t *actor, int64_t due_ms)
{
    node_turns_t *t = actor->turns;
    if (t->heap_idx >= 0) {
        size_t i = (size_t)t->heap_idx;
        self->heap[i].due = due_ms;
        s_up(self, i);
        s_down(self, (size_t)t->heap_idx);
        s_rearm(self);
        return 0;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        s_entry_t *heap = realloc(self->heap, cap * sizeof *heap);
        if (!heap) {
            return -1;
        }
        self->heap = heap;
        self->cap = cap;
    }
    self->n++;
    s_set(self, self->n - 1, (s_entry_t){due_ms, actor});
    s_up(self, self->n - 1);
    s_rearm(self);
    return 0;
}

void node_sched_cancel(node_sched_t *self, node_actor_t *actor)
{
    node_turns_t *t = actor->turns;
    if (t && t->heap_idx >= 0) {
        s_remove_at(self, (size_t)t->heap_idx);
    }
}
