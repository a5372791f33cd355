/*  node_ops_msg — msg.post, run inside the conversation's actor: stores the
    user message (and, with "create", the conversation in the same commit),
    applies on_busy (enqueue / reject / interrupt) and starts the turn when
    nothing runs. The 202 is sent only after the commit. Loop thread only. */
#define LOG_MODULE "node_ops_msg"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Refusals that need no write: 404, 409 (archived, reject while busy), 429 (queue full). */
static int s_refuse(node_t *node, node_actor_t *a, node_req_t **req_p, bool creating)
{
    if (a->state != NODE_ACTOR_READY && !creating) {
        node_reply_error(node, req_p, 404, "not_found", "conversation not found");
        return -1;
    }
    /* The team's running turns on this node (issue 12): a post that would start one
       more is refused before anything is written. */
    uint32_t turns = node_actors_team_turns(node->actors, a->team_id);
    if (turns >= (*req_p)->lim_turns &&
        (creating || node_turn_posted_starts(node, a, NODE_END_NONE))) {
        char why[128];
        snprintf(why, sizeof why, "this team has %u turns running on this node (its limit)", turns);
        node_reply_error(node, req_p, 429, "rate_limited", why);
        return -1;
    }
    if (creating) {
        return 0;
    }
    if (a->status == NODE_ST_ARCHIVED) {
        node_reply_error(node, req_p, 409, "conflict", "conversation is archived");
        return -1;
    }
    bool busy = node_turn_running(a) || node_turn_queued(a) > 0;
    if (busy && a->on_busy == NODE_BUSY_REJECT) {
        node_reply_error(node, req_p, 409, "conflict", "a turn is running (on_busy=reject)");
        return -1;
    }
    /* Queued turns keep their content in memory: bounded like the mailbox. */
    if (node_turn_queued(a) >= (uint32_t)node->cfg->mailbox_max) {
        node_reply_error(node, req_p, 429, "rate_limited", "too many queued messages");
        return -1;
    }
    return 0;
}

/* The user message and its event; the message starts a turn now or waits. */
static void s_add_post(node_t *node, node_ws_t *ws, const char *content, const json_t *meta)
{
    node_actor_t *a = ws->actor;
    char *meta_text = meta ? node_json_text(meta) : NULL;
    util_uuid_generate(ws->plan.user_id);
    bool starts = node_turn_posted_starts(node, a, ws->plan.end);
    ws->msg_stmt = node_ws_message(ws, ws->plan.user_id, "user", content,
                                   starts ? "completed" : "pending", meta_text);
    char src[96];
    node_user_source(a, src);
    node_ws_event(ws, "message.created", src, NULL, ws->plan.user_id, false);
    ws->plan.content = strdup(content);
    if ((meta && !meta_text) || !ws->plan.content) {
        ws->oom = true;
    }
    free(meta_text);
    node_turn_plan_next(node, ws, true);
}

void node_op_msg_post(node_t *node, node_actor_t *a, node_req_t *req)
{
    /* Dispatch checked the args (and "create") against the op table. */
    const json_t *create = json_object_get(req->args, "create");
    if (create && node_conv_check_create(create)) {
        node_reply_bad_strategy(node, &req);
        return;
    }
    bool creating = a->state != NODE_ACTOR_READY && create;
    if (s_refuse(node, a, &req, creating) < 0) {
        return;
    }
    node_ws_t *ws = node_ws_new(a, req);
    if (!ws) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    if (creating) {
        node_conv_add_create(node, ws, create);
    } else if (a->on_busy == NODE_BUSY_INTERRUPT && node_turn_running(a)) {
        node_turn_add_end(node, ws, NODE_END_CANCELLED);
    }
    s_add_post(node, ws, node_args_str(req->args, "content"),
               json_object_get(req->args, "metadata"));
    node_ws_touch(ws, node_turn_status_after(a, &ws->plan));
    ws->plan.created = creating;
    ws->reply_kind = NODE_REPLY_MSG;
    ws->reply_status = 202;
    node_ws_finish(node, &ws);
}
