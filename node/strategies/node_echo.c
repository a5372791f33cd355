/*  node_echo — the "echo" strategy: the reply is "echo: <content>", streamed
    as one message.delta per word (published live, not stored), one word per
    delay_ms (a scheduler wake-up, never a sleep), or NODE_ECHO_BURST words
    per loop turn when the delay is 0. Test hook fail_every: every Nth turn of
    an actor fails half-way (turn.failed, assistant message status "error").
    Settings: node flags, overridden per conversation by metadata
    {"echo": {"delay_ms": N, "fail_every": K}}. Loop thread only. */
#define LOG_MODULE "node_echo"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

static bool s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

uint32_t node_echo_words(const char *text)
{
    uint32_t n = 0;
    for (const char *p = text; *p;) {
        while (*p && s_space(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        n++;
        while (*p && !s_space(*p)) {
            p++;
        }
    }
    return n;
}

static long s_delay(const node_t *node, const node_actor_t *a)
{
    return a->echo_delay_ms >= 0 ? a->echo_delay_ms : node->cfg->echo_delay_ms;
}

int node_echo_begin(node_t *node, node_actor_t *a, const char *content)
{
    node_turns_t *t = a->turns;
    size_t n = strlen(content);
    free(t->reply);
    t->reply = malloc(n + 7);
    if (!t->reply) {
        LOG_E("out of memory: turn fails");
        t->running = true;
        t->end_ready = NODE_END_FAILED;
        return -1;
    }
    memcpy(t->reply, "echo: ", 6);
    memcpy(t->reply + 6, content, n + 1);
    t->pos = 0;
    t->index = 0;
    t->input_tokens = node_echo_words(content);
    long every = a->echo_fail_every >= 0 ? a->echo_fail_every : node->cfg->echo_fail_every;
    t->fail_at = SIZE_MAX;
    if (every > 0 && a->turn_count % (uint32_t)every == 0) {
        t->fail_at = (node_echo_words(t->reply) + 1) / 2;
    }
    t->running = true;
    t->end_ready = NODE_END_NONE;
    if (node_sched_at(node->sched, a, util_mono_ms()) < 0) {
        t->end_ready = NODE_END_FAILED;
        return -1;
    }
    return 0;
}

/* Publishes the delta reply[from, to) of message asst_id as number index. */
static void s_delta(node_t *node,
                    node_actor_t *a,
                    const uint8_t asst_id[16],
                    const char *reply,
                    size_t from,
                    size_t to,
                    uint32_t index)
{
    char conv[UTIL_UUID_STR_LEN + 1], mid[UTIL_UUID_STR_LEN + 1], idx[24];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(asst_id, mid);
    snprintf(idx, sizeof idx, "%u", index);
    char *text = strndup(reply + from, to - from);
    node_buf_t b;
    node_buf_init(&b);
    node_buf_str(&b, "{\"conversation_id\":\"");
    node_buf_str(&b, conv);
    node_buf_str(&b, "\",\"message_id\":\"");
    node_buf_str(&b, mid);
    node_buf_str(&b, "\",\"index\":");
    node_buf_str(&b, idx);
    node_buf_str(&b, ",\"text\":");
    node_buf_json_str(&b, text ? text : "");
    node_buf_str(&b, "}");
    if (!b.oom && text) {
        node_event_out_t ev = {.type = "message.delta", .body = b.data};
        node_publish(node, a->team_id, a->conv_id, &ev);
    }
    node_buf_free(&b);
    free(text);
}

/* End of the delta starting at pos: the whitespace before a word and the word, so that
   deltas concatenate to the reply exactly. */
static size_t s_delta_end(const char *reply, size_t pos, size_t len)
{
    size_t end = pos;
    while (end < len && s_space(reply[end])) {
        end++;
    }
    while (end < len && !s_space(reply[end])) {
        end++;
    }
    return end;
}

void node_echo_deltas(node_t *node, node_actor_t *a, const uint8_t asst_id[16], const char *reply)
{
    size_t len = strlen(reply);
    uint32_t index = 0;
    for (size_t pos = 0; pos < len; index++) {
        size_t end = s_delta_end(reply, pos, len);
        s_delta(node, a, asst_id, reply, pos, end, index);
        pos = end;
    }
}

bool node_echo_is(const char *name)
{
    const cfg_strategy_t *s = node_strategy_lookup(name ? name : node_strategy_default_name());
    return s && s->kind == CFG_STRATEGY_ECHO;
}

void node_echo_step(node_t *node, node_actor_t *a)
{
    node_turns_t *t = a->turns;
    long delay = s_delay(node, a);
    int burst = delay > 0 ? 1 : NODE_ECHO_BURST;
    size_t len = strlen(t->reply);
    for (int k = 0; k < burst; k++) {
        if (t->pos >= len || t->index >= t->fail_at) {
            t->end_ready = t->pos >= len ? NODE_END_COMPLETED : NODE_END_FAILED;
            node_actors_touch(node->actors, a, util_mono_ms());
            node_actor_pump(node, a);
            return;
        }
        size_t end = s_delta_end(t->reply, t->pos, len);
        s_delta(node, a, t->asst_id, t->reply, t->pos, end, t->index);
        t->pos = end;
        t->index++;
    }
    node_sched_at(node->sched, a, util_mono_ms() + delay);
}

/* ---- whole turns ------------------------------------------------------------------------- */

/* A posted message to an echo conversation with no delay, whose reply fits one
   scheduler step and whose turn does not fail: the whole turn is written with the
   message, in one commit. The same rows, events and deltas as a streamed turn; the
   assistant message is never stored as "streaming". */
static bool s_whole_ok(const node_t *node, const node_ws_t *ws)
{
    const node_actor_t *a = ws->actor;
    if (!ws->plan.content) {
        return false;
    }
    long delay = a->echo_delay_ms >= 0 ? a->echo_delay_ms : node->cfg->echo_delay_ms;
    long every = a->echo_fail_every >= 0 ? a->echo_fail_every : node->cfg->echo_fail_every;
    if (delay != 0 || (every > 0 && (a->turn_count + 1) % (uint32_t)every == 0)) {
        return false;
    }
    return node_echo_words(ws->plan.content) + 1 <= NODE_ECHO_BURST;
}

/* The deltas of a whole turn, right after its turn.started is published. */
static void s_whole_live(node_t *node, const node_ws_t *ws)
{
    node_echo_deltas(node, ws->actor, ws->plan.asst_id, ws->plan.whole_reply);
}

int node_echo_whole_turn(node_t *node, node_ws_t *ws)
{
    if (!s_whole_ok(node, ws)) {
        return 0;
    }
    node_plan_t *p = &ws->plan;
    size_t n = strlen(p->content);
    p->whole_reply = malloc(n + 7);
    if (!p->whole_reply) {
        return -1;
    }
    memcpy(p->whole_reply, "echo: ", 6);
    memcpy(p->whole_reply + 6, p->content, n + 1);
    util_uuid_generate(p->asst_id);
    s_uuid_t uid, aid;
    util_uuid_format(p->user_id, uid);
    util_uuid_format(p->asst_id, aid);
    unsigned in = node_echo_words(p->content), out = node_echo_words(p->whole_reply);
    /* Fixed shapes of UUIDs and counts: formatted directly (jansson's pack and dump
       were ~5% of a node's time in P1). */
    char meta[192], started[128], done[192];
    snprintf(meta, sizeof meta,
             "{\"user_message_id\":\"%s\",\"model\":\"echo\",\"usage\":{\"input_tokens\":%u,"
             "\"output_tokens\":%u}}",
             uid, in, out);
    snprintf(started, sizeof started, "{\"user_message_id\":\"%s\",\"message_id\":\"%s\"}", uid,
             aid);
    snprintf(done, sizeof done,
             "{\"message_id\":\"%s\",\"user_message_id\":\"%s\",\"usage\":{\"input_tokens\":%u,"
             "\"output_tokens\":%u}}",
             aid, uid, in, out);
    node_ws_message(ws, p->asst_id, "assistant", p->whole_reply, "completed", meta);
    ws->live_at = node_ws_event(ws, "turn.started", NODE_ACTOR_SOURCE, started, NULL, false);
    ws->live = s_whole_live;
    node_ws_event(ws, "message.completed", NODE_ACTOR_SOURCE, NULL, p->asst_id, false);
    node_ws_event(ws, "turn.completed", NODE_ACTOR_SOURCE, done, NULL, false);
    p->whole_turn = true;
    return ws->oom ? -1 : 1;
}

/* ---- the end of a turn -------------------------------------------------------------------- */

static char *s_json(json_t *j)
{
    char *text = j ? node_json_text(j) : NULL;
    json_decref(j);
    return text;
}

void node_echo_end_json(const node_actor_t *a, node_end_t how, char **meta, char **action)
{
    const node_turns_t *t = a->turns;
    s_uuid_t uid, aid;
    util_uuid_format(t->user_id, uid);
    util_uuid_format(t->asst_id, aid);
    json_t *usage = json_pack("{s:I, s:I}", "input_tokens", (json_int_t)t->input_tokens,
                              "output_tokens", (json_int_t)t->index);
    char reason[96];
    snprintf(reason, sizeof reason, "echo: injected failure (fail_every)");
    if (how == NODE_END_FAILED) {
        *meta = s_json(json_pack("{s:s, s:s}", "model", "echo", "error", reason));
        *action = s_json(json_pack("{s:s, s:s, s:s}", "message_id", aid, "user_message_id", uid,
                                   "error", reason));
        json_decref(usage);
        return;
    }
    *meta = s_json(json_pack("{s:s, s:O}", "model", "echo", "usage", usage));
    *action = s_json(
        json_pack("{s:s, s:s, s:o}", "message_id", aid, "user_message_id", uid, "usage", usage));
}
