/*  node_recover — recovery on activation. A conversation whose stored status
    is "processing" or "queued" when an actor is activated for it was left
    mid-turn by its previous owner (killed, or lost its database connection):
    nobody streams its "streaming" assistant message and nobody will start its
    "pending" user messages. The new actor reads those rows (staying LOADING,
    so requests wait in its mailbox), then, in one write set: marks each
    streaming assistant message "error" (metadata reason "node_lost") with
    message.failed and turn.failed {reason: "node_lost"}, and starts the oldest
    pending user message as a new turn; the others stay queued and run in
    order. A turn lost between two model calls (tools running, the next call
    not started) has no streaming message: its latest turn.started with no
    end after it gets the turn.failed. A message acknowledged with 202 right
    before a crash thus gets its reply. A lost turn whose strategy can resume
    it (resume_lost: claude-code, from its checkpointed transcript) is handed
    to the strategy instead, and nothing is written here. Loop thread only. */
#define LOG_MODULE "node_recover"
#include "common/log.h"
#include "common/util.h"
#include "node/turns/node_turns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_REASON  "node_lost"
#define S_MESSAGE "the node running this turn was lost"

/* Streaming assistant messages (with the user message that started their turn)
   and pending user messages, oldest first. $1 conv $2 team $3 limit. */
static const char s_sql[] =
    "SELECT m.id, m.role, m.content, (SELECT e.action->>'user_message_id' FROM events e WHERE "
    "e.conversation_id = m.conversation_id AND e.team_id = m.team_id AND e.type = "
    "'turn.started' AND e.action->>'message_id' = m.id::text ORDER BY e.seq DESC LIMIT 1) FROM "
    "messages m WHERE m.conversation_id = $1::uuid AND m.team_id = $2::uuid AND ((m.role = "
    "'assistant' AND m.status = 'streaming') OR (m.role = 'user' AND m.status = 'pending')) "
    "ORDER BY m.seq LIMIT $3::int";

/* The latest turn.started, when no turn end follows it: (its message_id,
   user_message_id). $1 conv $2 team. */
static const char s_open_sql[] =
    "WITH t AS (SELECT seq, action FROM events WHERE conversation_id = $1::uuid AND team_id = "
    "$2::uuid AND type = 'turn.started' ORDER BY seq DESC LIMIT 1) SELECT t.action->>'message_id', "
    "t.action->>'user_message_id' FROM t WHERE NOT EXISTS (SELECT 1 FROM events f WHERE "
    "f.conversation_id = $1::uuid AND f.seq > t.seq AND f.type IN ('turn.completed', "
    "'turn.failed', 'turn.cancelled'))";

/* The conversation's strategy. $1 conv $2 team. */
static const char s_strategy_sql[] =
    "SELECT strategy FROM conversations WHERE id = $1::uuid AND team_id = $2::uuid";

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef struct {
    uint8_t id[16];   /* message id */
    bool assistant;   /* a streaming assistant message (else a pending user message) */
    char *content;    /* stored content (owned) */
    char user_id[37]; /* assistant: user message of its turn ("" unknown) */
} s_row_t;

typedef struct {
    node_t *node;                         /* borrowed */
    node_actor_t *actor;                  /* pinned (LOADING) while the read runs */
    s_row_t *rows;                        /* rows read, oldest first */
    size_t n;                             /* rows used */
    bool oom;                             /* a row could not be kept */
    bool open;                            /* a turn was started and never ended */
    char open_msg[37];                    /* its turn.started's message_id ("" unknown) */
    char open_user[37];                   /* its user_message_id ("" unknown) */
    char strategy[CFG_FILE_MAX_NAME + 1]; /* the conversation's strategy ("" unknown) */
} s_ctx_t;

static void s_ctx_free(s_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n; i++) {
        free(ctx->rows[i].content);
    }
    free(ctx->rows);
    free(ctx);
}

bool node_recover_needed(const node_actor_t *actor)
{
    return actor->state == NODE_ACTOR_READY &&
           (actor->status == NODE_ST_PROCESSING || actor->status == NODE_ST_QUEUED);
}

static void s_on_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_ctx_t *ctx = arg;
    int rows = status == DB_OK ? db_result_rows(res) : 0;
    ctx->rows = rows > 0 ? calloc((size_t)rows, sizeof *ctx->rows) : NULL;
    ctx->oom = rows > 0 && !ctx->rows;
    for (int i = 0; ctx->rows && i < rows; i++) {
        s_row_t *r = &ctx->rows[ctx->n];
        const char *content = db_result_value(res, i, 2);
        const char *uid = db_result_value(res, i, 3);
        if (util_uuid_parse(db_result_value(res, i, 0), r->id) < 0) {
            continue;
        }
        const char *role = db_result_value(res, i, 1);
        r->assistant = role && strcmp(role, "assistant") == 0;
        r->content = strdup(content ? content : "");
        ctx->oom = ctx->oom || !r->content;
        snprintf(r->user_id, sizeof r->user_id, "%s", uid ? uid : "");
        ctx->n++;
    }
}

static void s_on_open(void *arg, db_status_t status, const db_result_t *res)
{
    s_ctx_t *ctx = arg;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    const char *mid = db_result_value(res, 0, 0);
    const char *uid = db_result_value(res, 0, 1);
    ctx->open = true;
    snprintf(ctx->open_msg, sizeof ctx->open_msg, "%s", mid ? mid : "");
    snprintf(ctx->open_user, sizeof ctx->open_user, "%s", uid ? uid : "");
}

static void s_on_strategy(void *arg, db_status_t status, const db_result_t *res)
{
    s_ctx_t *ctx = arg;
    const char *name =
        status == DB_OK && db_result_rows(res) > 0 ? db_result_value(res, 0, 0) : NULL;
    snprintf(ctx->strategy, sizeof ctx->strategy, "%s", name ? name : "");
}

/* One turn was lost with a streaming message: its strategy may take it over (claude-code
   resumes it from its checkpoint). True when it did; nothing is written here then. */
static bool s_hand_over(node_t *node, node_actor_t *a, const s_ctx_t *ctx)
{
    size_t lost = 0;
    for (size_t i = 0; i < ctx->n; i++) {
        lost += ctx->rows[i].assistant;
    }
    const node_strategy_if_t *s = node->agents ? node->agents->strategy : NULL;
    if (lost != 1 || !ctx->strategy[0] || !s || !s->resume_lost ||
        !s->resume_lost(node, a, ctx->strategy)) {
        return false;
    }
    LOG_N("recovering conversation: the lost turn goes to its strategy strategy=%s", ctx->strategy);
    return true;
}

/* Puts the pending user messages in the actor's turn queue, oldest first. */
static void s_queue_pending(node_t *node, node_actor_t *a, s_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->rows[i].assistant) {
            continue;
        }
        node_plan_t plan;
        memset(&plan, 0, sizeof plan);
        plan.enqueue = true;
        memcpy(plan.user_id, ctx->rows[i].id, 16);
        plan.content = ctx->rows[i].content;
        ctx->rows[i].content = NULL;
        node_turn_apply(node, a, &plan);
        free(plan.content); /* still ours when the queue could not take it */
    }
}

/* Adds turn.failed {message_id?, user_message_id?, reason, error} and, with a
   message (r), that message failed first: its row and message.failed. */
static void s_add_failed_turn(
    node_t *node, node_ws_t *ws, const s_row_t *r, const char *msg_id, const char *user_id)
{
    node_actor_t *a = ws->actor;
    s_uuid_t aid, conv, team;
    if (r) {
        util_uuid_format(r->id, aid);
        msg_id = aid;
        util_uuid_format(a->conv_id, conv);
        util_uuid_format(a->team_id, team);
        const char *meta = "{\"error\":\"" S_MESSAGE "\",\"reason\":\"" S_REASON "\"}";
        const char *params[] = {aid, conv, r->content ? r->content : "", "error", meta, team};
        node_ws_add(ws, NODE_Q_MSG_FINISH, NODE_SK_PLAIN, 6, params);
    }
    json_t *j =
        json_pack("{s:s?, s:s?, s:s, s:s}", "message_id", msg_id && msg_id[0] ? msg_id : NULL,
                  "user_message_id", user_id && user_id[0] ? user_id : NULL, "reason", S_REASON,
                  "error", S_MESSAGE);
    char *action = j ? node_json_text(j) : NULL;
    json_decref(j);
    /* The recovering node speaks as the system. */
    j = json_pack("{s:s, s:s}", "kind", "system", "id", node->cfg->id);
    char *source = j ? node_json_text(j) : NULL;
    json_decref(j);
    ws->oom = ws->oom || !action || !source;
    if (r) {
        node_ws_event(ws, "message.failed", source ? source : "{}", NULL, r->id, false);
    }
    node_ws_event(ws, "turn.failed", source ? source : "{}", action, NULL, false);
    free(action);
    free(source);
}

/* The recovery write: lost turns failed, the next pending message started. */
static void s_write(node_t *node, node_actor_t *a, s_ctx_t *ctx)
{
    if (s_hand_over(node, a, ctx)) {
        return;
    }
    s_queue_pending(node, a, ctx);
    node_ws_t *ws = node_ws_new(a, NULL);
    if (!ws) {
        a->flags |= NODE_AF_RELOAD;
        return;
    }
    size_t lost = 0;
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->rows[i].assistant) {
            const s_row_t *r = &ctx->rows[i];
            s_add_failed_turn(node, ws, r, NULL, r->user_id);
            lost++;
        }
    }
    if (lost == 0 && ctx->open) {
        /* Lost between two model calls: no message was streaming. */
        s_add_failed_turn(node, ws, NULL, ctx->open_msg, ctx->open_user);
        lost++;
    }
    node_turn_plan_next(node, ws, false);
    int status = node_turn_status_after(a, &ws->plan);
    if (status == NODE_ST_IDLE && lost > 0) {
        status = NODE_ST_ERROR; /* as after any failed turn; the conversation stays usable */
    }
    node_ws_touch(ws, status);
    LOG_N("recovering conversation: lost turns=%zu pending messages=%u", lost, node_turn_queued(a));
    node_ws_finish(node, &ws);
}

static void s_on_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_ctx_t *ctx = arg;
    node_t *node = ctx->node;
    node_actor_t *a = ctx->actor;
    (void)sqlstate;
    if (status != DB_OK || ctx->oom) {
        LOG_W("recovery read failed status=%d error=\"%s\"", (int)status, error ? error : "");
        s_ctx_free(ctx);
        a->state = NODE_ACTOR_ABSENT;
        node_actor_drop(node, a, "database unavailable");
        return;
    }
    a->state = NODE_ACTOR_READY;
    if (!node->stopping && !node->closing && !(a->flags & NODE_AF_DOOMED)) {
        s_write(node, a, ctx);
    }
    s_ctx_free(ctx);
    node_actor_pump(node, a);
}

void node_recover_start(node_t *node, node_actor_t *actor)
{
    s_uuid_t conv, team;
    char limit[24];
    util_uuid_format(actor->conv_id, conv);
    util_uuid_format(actor->team_id, team);
    /* Queued turns are bounded by --mailbox-max; a few lost turns on top. */
    snprintf(limit, sizeof limit, "%ld", node->cfg->mailbox_max + 16);
    const char *params[] = {conv, team, limit};
    s_ctx_t *ctx = calloc(1, sizeof *ctx);
    db_batch_t *b = ctx && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NULL, s_sql, 3, params, s_on_rows, ctx) < 0 ||
        db_batch_add(b, NULL, s_open_sql, 2, params, s_on_open, ctx) < 0 ||
        db_batch_add(b, NULL, s_strategy_sql, 2, params, s_on_strategy, ctx) < 0) {
        db_batch_destroy(&b);
        free(ctx);
        actor->state = NODE_ACTOR_ABSENT;
        node_actor_drop(node, actor, "cannot recover the conversation");
        return;
    }
    ctx->node = node;
    ctx->actor = actor;
    actor->state = NODE_ACTOR_LOADING;
    db_batch_submit(&b, s_on_read, ctx);
}
