/*  node_turn — turns of a conversation, one at a time: what a write does to
    them (end the running turn as completed/failed/cancelled, start the next
    one from the posted message or the queue, enqueue), the writes the actor
    owes by itself (a turn's end, a start after the strategy's back-off), and
    applying a committed plan. A turn's assistant message is inserted with
    status "streaming" when the turn starts, so message seqs follow the order
    in which the owner accepted things. Loop thread only. */
#define LOG_MODULE "node_turn"
#include "common/log.h"
#include "common/util.h"
#include "node/turns/node_turns.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct node_pending_t {
    node_pending_t *next; /* younger entry */
    uint8_t user_id[16];  /* the queued user message */
    char *content;        /* its content (owned) */
};

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

node_turns_t *node_turns_get(node_actor_t *actor)
{
    if (!actor->turns) {
        actor->turns = calloc(1, sizeof *actor->turns);
        if (actor->turns) {
            actor->turns->heap_idx = -1;
            actor->turns->fail_at = SIZE_MAX;
        }
    }
    return actor->turns;
}

static void s_queue_clear(node_turns_t *t)
{
    while (t->head) {
        node_pending_t *p = t->head;
        t->head = p->next;
        free(p->content);
        free(p);
    }
    t->tail = NULL;
    t->nqueued = 0;
}

void node_turns_free(node_turns_t *turns)
{
    if (turns) {
        node_run_release(turns->run);
        s_queue_clear(turns);
        free(turns->reply);
        free(turns);
    }
}

void node_turns_release(node_t *node, node_actor_t *actor)
{
    node_actors_turn_mark(node->actors, actor, false);
    if (actor->turns) {
        node_sched_cancel(node->sched, actor);
        node_turns_free(actor->turns);
        actor->turns = NULL;
    }
}

/* Frees the turn state once it holds nothing. */
static void s_maybe_free(node_t *node, node_actor_t *a)
{
    node_turns_t *t = a->turns;
    if (t && !t->running && !t->backoff && !t->start_ready && !t->head) {
        node_turns_release(node, a);
    }
}

bool node_turn_running(const node_actor_t *actor)
{
    return actor->turns && actor->turns->running;
}

uint32_t node_turn_queued(const node_actor_t *actor)
{
    return actor->turns ? actor->turns->nqueued : 0;
}

/* A new turn may start now (after a write ending the running turn with end). */
static bool s_can_start(const node_t *node, const node_actor_t *a, int end)
{
    const node_turns_t *t = a->turns;
    bool running_after = t && t->running && end == NODE_END_NONE;
    bool backoff = t && (t->backoff || end == NODE_END_FAILED);
    return !running_after && !backoff && !node->stopping && !(a->flags & NODE_AF_DOOMED) &&
           a->status != NODE_ST_ARCHIVED;
}

bool node_turn_posted_starts(const node_t *node, const node_actor_t *actor, int end)
{
    return s_can_start(node, actor, end) && node_turn_queued(actor) == 0;
}

int node_turn_status_after(const node_actor_t *actor, const node_plan_t *plan)
{
    bool running = node_turn_running(actor) && plan->end == NODE_END_NONE;
    if (plan->start || running) {
        return running && node_run_waiting(actor) ? NODE_ST_WAITING : NODE_ST_PROCESSING;
    }
    if (plan->end == NODE_END_FAILED) {
        return NODE_ST_ERROR;
    }
    return node_turn_queued(actor) + (plan->enqueue ? 1 : 0) > 0 ? NODE_ST_QUEUED : NODE_ST_IDLE;
}

/* ---- statements -------------------------------------------------------------------------- */

/* Adds a start for user message user_id (from the queue: its status goes to completed). */
static void s_add_start(node_t *node, node_ws_t *ws, const uint8_t user_id[16], bool from_queue)
{
    node_actor_t *a = ws->actor;
    node_plan_t *p = &ws->plan;
    if (from_queue) {
        s_uuid_t uid, conv, team;
        util_uuid_format(user_id, uid);
        util_uuid_format(a->conv_id, conv);
        util_uuid_format(a->team_id, team);
        const char *params[] = {uid, conv, team};
        node_ws_add(ws, NODE_Q_MSG_START, NODE_SK_PLAIN, 3, params);
    }
    util_uuid_generate(p->asst_id);
    s_uuid_t uid, aid;
    util_uuid_format(user_id, uid);
    /* The model is known (and merged in) when the message completes. */
    char meta[80];
    snprintf(meta, sizeof meta, "{\"user_message_id\":\"%s\"}", uid);
    node_ws_message(ws, p->asst_id, "assistant", "", "streaming", meta);
    util_uuid_format(p->asst_id, aid);
    char action[128];
    snprintf(action, sizeof action, "{\"user_message_id\":\"%s\",\"message_id\":\"%s\"}", uid, aid);
    node_ws_event(ws, "turn.started", NODE_ACTOR_SOURCE, action, NULL, false);
    node->agents->strategy->add_start(ws);
    p->start = true;
    p->start_from_queue = from_queue;
}

/* Asks the strategy to write the posted message's whole turn with it (the actor's
   stored strategy allows it). 1 added, 0 not, -1 on OOM. */
static int s_whole_turn(node_t *node, node_ws_t *ws)
{
    if (!(ws->actor->flags & NODE_AF_WHOLE) || !ws->plan.content || !node->agents) {
        return 0;
    }
    int r = node->agents->strategy->whole_turn(node, ws);
    if (r < 0) {
        ws->oom = true;
    }
    return r;
}

int node_turn_plan_next(node_t *node, node_ws_t *ws, bool posted)
{
    node_actor_t *a = ws->actor;
    node_plan_t *p = &ws->plan;
    if (!s_can_start(node, a, p->end)) {
        p->enqueue = posted;
    } else if (node_turn_queued(a) > 0) {
        s_add_start(node, ws, a->turns->head->user_id, true);
        p->enqueue = posted;
    } else if (posted && s_whole_turn(node, ws) != 0) {
        /* The strategy wrote the whole turn (or ran out of memory: ws->oom). */
    } else if (posted) {
        s_add_start(node, ws, p->user_id, false);
    }
    return ws->oom ? -1 : 0;
}

static const char *s_end_status(node_end_t how)
{
    return how == NODE_END_COMPLETED ? "completed" : how == NODE_END_FAILED ? "error" : "cancelled";
}

int node_turn_add_end(node_t *node, node_ws_t *ws, node_end_t how)
{
    node_actor_t *a = ws->actor;
    node_turns_t *t = a->turns;
    /* Pause streaming: what is stored must be what was sent. */
    node_sched_cancel(node->sched, a);
    if (node->agents->strategy->add_end(node, ws, how) < 0) {
        ws->oom = true;
    }
    char *meta = NULL, *action = NULL;
    node->agents->strategy->end_json(a, how, &meta, &action);
    const char *reply = t->reply ? t->reply : "";
    char *content = strndup(reply, how == NODE_END_COMPLETED ? strlen(reply) : t->pos);
    s_uuid_t aid, conv, team;
    util_uuid_format(t->asst_id, aid);
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {aid, conv, content, s_end_status(how), meta, team};
    if (!meta || !action || !content) {
        ws->oom = true;
    } else {
        node_ws_add(ws, NODE_Q_MSG_FINISH, NODE_SK_PLAIN, 6, params);
    }
    const char *src = t->run ? t->run->source : NODE_ACTOR_SOURCE;
    if (how == NODE_END_COMPLETED) {
        node_ws_event(ws, "message.completed", src, NULL, t->asst_id, false);
        node_ws_event(ws, "turn.completed", src, action, NULL, false);
    } else if (how == NODE_END_FAILED) {
        node_ws_event(ws, "message.failed", src, NULL, t->asst_id, false);
        node_ws_event(ws, "turn.failed", src, action, NULL, false);
    } else {
        node_ws_event(ws, "turn.cancelled", src, action, t->asst_id, false);
    }
    free(meta);
    free(action);
    free(content);
    ws->plan.end = (uint8_t)how;
    return ws->oom ? -1 : 0;
}

/* ---- applying a committed plan ----------------------------------------------------------- */

static void s_apply_end(node_t *node, node_actor_t *a, node_end_t how)
{
    node_turns_t *t = a->turns;
    node_sched_cancel(node->sched, a);
    if (t->started_us) {
        node_metrics_turn(node->metrics, t->run ? t->run->strategy_name : NULL,
                          util_mono_us() - t->started_us);
        t->started_us = 0;
    }
    node_run_release(t->run);
    free(t->reply);
    t->reply = NULL;
    t->running = false;
    node_actors_turn_mark(node->actors, a, false);
    t->end_ready = NODE_END_NONE;
    if (how == NODE_END_FAILED) {
        /* Restart the strategy with back-off; the conversation stays usable. */
        t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : NODE_BACKOFF_MIN_MS;
        t->backoff_ms = t->backoff_ms > NODE_BACKOFF_MAX_MS ? NODE_BACKOFF_MAX_MS : t->backoff_ms;
        t->backoff = true;
        if (node_sched_at(node->sched, a, util_mono_ms() + t->backoff_ms) < 0) {
            t->backoff = false;
            t->start_ready = true;
        }
    } else if (how == NODE_END_COMPLETED) {
        t->backoff_ms = 0;
    }
}

static void s_enqueue(node_actor_t *a, node_plan_t *p)
{
    node_turns_t *t = node_turns_get(a);
    node_pending_t *e = t ? calloc(1, sizeof *e) : NULL;
    if (!e) {
        LOG_E("out of memory: queued message will not be answered");
        return;
    }
    memcpy(e->user_id, p->user_id, 16);
    e->content = p->content;
    p->content = NULL;
    if (t->tail) {
        t->tail->next = e;
    } else {
        t->head = e;
    }
    t->tail = e;
    t->nqueued++;
}

static void s_apply_start(node_t *node, node_actor_t *a, node_plan_t *p)
{
    node_turns_t *t = node_turns_get(a);
    if (!t) {
        LOG_E("out of memory: turn not started");
        return;
    }
    char *content = NULL;
    if (p->start_from_queue && t->head) {
        node_pending_t *e = t->head;
        t->head = e->next;
        t->tail = t->head ? t->tail : NULL;
        t->nqueued--;
        memcpy(t->user_id, e->user_id, 16);
        content = e->content;
        free(e);
    } else {
        memcpy(t->user_id, p->user_id, 16);
        content = p->content;
        p->content = NULL;
    }
    memcpy(t->asst_id, p->asst_id, 16);
    t->start_ready = false;
    t->started_us = util_mono_us();
    a->turn_count++;
    node_actors_turn_mark(node->actors, a, true); /* the team's running turns (issue 12) */
    node->agents->strategy->begin(node, a, p, content ? content : "");
    free(content);
}

void node_turn_apply(node_t *node, node_actor_t *actor, node_plan_t *plan)
{
    if (plan->strat_op != 0) {
        node->agents->strategy->committed(node, actor, plan);
    }
    node_turns_t *t = actor->turns;
    if (plan->end != NODE_END_NONE && t) {
        s_apply_end(node, actor, plan->end);
    }
    bool ended =
        plan->whole_turn || plan->end == NODE_END_COMPLETED || plan->end == NODE_END_FAILED;
    if (ended && node->agents && node->agents->strategy->turn_ended) {
        node->agents->strategy->turn_ended(node, actor);
    }
    if (plan->clear_queue && t) {
        s_queue_clear(t);
        t->backoff = t->start_ready = false;
        node_sched_cancel(node->sched, actor);
    }
    if (plan->start && plan->start_from_queue) {
        s_apply_start(node, actor, plan);
    }
    if (plan->enqueue) {
        s_enqueue(actor, plan);
    }
    if (plan->start && !plan->start_from_queue) {
        s_apply_start(node, actor, plan);
    }
    if (plan->whole_turn) {
        actor->turn_count++; /* started and completed by this commit */
        node_metrics_turn(node->metrics, NULL, util_mono_us() - plan->submitted_us);
        if (actor->turns) {
            actor->turns->backoff_ms = 0;
        }
    }
    s_maybe_free(node, actor);
}

/* ---- writes the actor owes ----------------------------------------------------------------- */

static bool s_submit_internal(node_t *node, node_actor_t *a, node_end_t end)
{
    node_ws_t *ws = node_ws_new(a, NULL);
    if (!ws) {
        a->flags |= NODE_AF_RELOAD;
        return false;
    }
    if (end != NODE_END_NONE) {
        node_turn_add_end(node, ws, end);
    }
    node_turn_plan_next(node, ws, false);
    node_ws_touch(ws, node_turn_status_after(a, &ws->plan));
    node_ws_finish(node, &ws);
    return (a->flags & NODE_AF_COMMITTING) != 0;
}

bool node_turn_pending_write(node_t *node, node_actor_t *a)
{
    if (node->agents->strategy->pending_write(node, a)) {
        return true;
    }
    node_turns_t *t = a->turns;
    if (!t) {
        return false;
    }
    if (t->end_ready != NODE_END_NONE) {
        return s_submit_internal(node, a, (node_end_t)t->end_ready);
    }
    if (t->start_ready) {
        t->start_ready = false;
        if (!s_can_start(node, a, NODE_END_NONE) || !t->head) {
            s_maybe_free(node, a);
            return false;
        }
        return s_submit_internal(node, a, NODE_END_NONE);
    }
    if (!t->running && ((a->flags & NODE_AF_DOOMED) || node->stopping)) {
        /* Queued turns are not started on a conversation we are giving up. */
        node_turns_release(node, a);
        return false;
    }
    s_maybe_free(node, a);
    return false;
}

int node_turn_enqueue(node_actor_t *actor, const uint8_t user_id[16], const char *content)
{
    node_plan_t p;
    memset(&p, 0, sizeof p);
    memcpy(p.user_id, user_id, 16);
    p.content = strdup(content);
    if (!p.content) {
        return -1;
    }
    s_enqueue(actor, &p);
    free(p.content);
    return 0;
}

void node_actor_wake(node_t *node, node_actor_t *a)
{
    node_turns_t *t = a->turns;
    if (!t) {
        return;
    }
    if (t->running && !t->end_ready) {
        node->agents->strategy->step(node, a);
    } else if (t->backoff) {
        t->backoff = false;
        t->start_ready = true;
        node_actor_pump(node, a);
    }
}

void node_turn_strategy_known(node_t *node, node_actor_t *actor, const char *strategy)
{
    if (strategy && node->agents && node->agents->strategy->whole_turns(strategy)) {
        actor->flags |= NODE_AF_WHOLE;
    } else {
        actor->flags &= (uint8_t)~NODE_AF_WHOLE;
    }
}

const node_engine_t node_turn_engine = {
    .strategy_known = node_turn_strategy_known,
    .recover_needed = node_recover_needed,
    .recover_start = node_recover_start,
    .apply = node_turn_apply,
    .pending_write = node_turn_pending_write,
    .release = node_turns_release,
};
