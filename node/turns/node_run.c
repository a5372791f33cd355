/*  node_run — a turn of a model-driven strategy (openai, anthropic, claude-code) is a
    node_run_t: owned by the actor's turn state, referenced by its async work
    (database reads, pool jobs, model calls), so that a callback arriving after the turn
    ended finds it dead and only drops its reference. Also the strategies config of the
    process. Loop thread only. */
#define LOG_MODULE "node_run"
#include "common/log.h"
#include "common/util.h"
#include "node/turns/node_turns.h"

#include <stdlib.h>
#include <string.h>

#define S_REPLY_MAX (4u * 1024 * 1024) /* bytes of one assistant message's text */

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* The only global (STYLE §4): the strategies config, read-only after start. */
static const cfg_file_t *s_config;

void node_strategy_config_set(const cfg_file_t *cfg)
{
    s_config = cfg;
}

const cfg_file_t *node_strategy_config(void)
{
    return s_config;
}

const cfg_strategy_t *node_strategy_lookup(const char *name)
{
    if (!s_config) {
        return NULL;
    }
    return cfg_file_strategy(s_config, name);
}

const char *node_strategy_default_name(void)
{
    const cfg_strategy_t *s = s_config ? cfg_file_default_strategy(s_config) : NULL;
    return s ? s->name : "echo";
}

/* ---- runs -------------------------------------------------------------------------------- */

node_run_t *node_run_new(node_t *node, node_actor_t *actor, const cfg_strategy_t *s)
{
    node_agents_t *ag = node->agents;
    node_turns_t *t = actor->turns;
    node_run_t *run = ag && t ? calloc(1, sizeof *run) : NULL;
    if (!run) {
        return NULL;
    }
    run->agents = ag;
    run->actor = actor;
    run->refs = 1;
    run->strategy = s;
    run->impl = ag->strategy;
    snprintf(run->strategy_name, sizeof run->strategy_name, "%s", s ? s->name : "");
    json_t *src = json_pack("{s:s, s:s}", "kind", "actor", "id", s ? s->name : "strategy");
    char *text = src ? node_json_text(src) : NULL;
    snprintf(run->source, sizeof run->source, "%s",
             text ? text : "{\"kind\":\"actor\",\"id\":\"strategy\"}");
    free(text);
    json_decref(src);
    run->next = ag->runs;
    if (ag->runs) {
        ag->runs->prev = run;
    }
    ag->runs = run;
    t->run = run;
    t->running = true;
    t->end_ready = NODE_END_NONE;
    return run;
}

void node_run_clear_calls(node_run_t *run)
{
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        free(c->id);
        free(c->name);
        json_decref(c->args);
        free(c->result);
        free(c->cli_request);
        node_req_destroy(&c->ask);
    }
    free(run->calls);
    run->calls = NULL;
    run->ncalls = 0;
}

void node_run_ref(node_run_t *run)
{
    run->refs++;
}

void node_run_unref(node_run_t *run)
{
    if (--run->refs > 0) {
        return;
    }
    run->impl->stop(run);
    node_run_clear_calls(run);
    json_decref(run->history);
    free(run->content);
    free(run->root);
    free(run->error);
    free(run);
}

void node_run_release(node_run_t *run)
{
    if (!run || !run->actor) {
        return;
    }
    agent_llm_cancel(&run->req);
    atomic_store(&run->tools_stop, true); /* a running bash tool is killed, sandbox and all */
    run->impl->stop(run);
    node_agents_t *ag = run->agents;
    if (run->prev) {
        run->prev->next = run->next;
    } else if (ag->runs == run) {
        ag->runs = run->next;
    }
    if (run->next) {
        run->next->prev = run->prev;
    }
    run->prev = run->next = NULL;
    if (run->actor->turns && run->actor->turns->run == run) {
        run->actor->turns->run = NULL;
    }
    run->actor = NULL;
    node_run_unref(run);
}

node_t *node_run_node(const node_run_t *run)
{
    return run->agents->node;
}

void node_run_pump(node_run_t *run)
{
    if (run->actor) {
        node_actor_t *a = run->actor;
        node_actors_touch(run->agents->node->actors, a, util_mono_ms());
        node_actor_pump(run->agents->node, a);
    }
}

void node_run_fail(node_run_t *run, const char *reason)
{
    if (!run->actor || !run->actor->turns || run->phase == NODE_RUN_ENDING) {
        return;
    }
    LOG_I("turn failed strategy=%s reason=\"%s\"", run->strategy_name, reason);
    free(run->error);
    run->error = strdup(reason);
    agent_llm_cancel(&run->req);
    atomic_store(&run->tools_stop, true);
    run->impl->cancel(run);
    run->phase = NODE_RUN_ENDING;
    run->actor->turns->end_ready = NODE_END_FAILED;
    node_run_pump(run);
}

int node_run_status(const node_run_t *run)
{
    for (size_t i = 0; i < run->ncalls; i++) {
        if (run->calls[i].state == NODE_CALL_PENDING) {
            return NODE_ST_WAITING;
        }
    }
    return NODE_ST_PROCESSING;
}

bool node_run_waiting(const node_actor_t *actor)
{
    const node_turns_t *t = actor->turns;
    return t && t->run && t->running && node_run_status(t->run) == NODE_ST_WAITING;
}

void node_run_delta(node_run_t *run, const char *text, size_t len)
{
    node_actor_t *a = run->actor;
    node_turns_t *t = a ? a->turns : NULL;
    if (!t || !len) {
        return;
    }
    size_t have = t->reply ? strlen(t->reply) : 0;
    /* Room for every NUL becoming U+FFFD (Postgres text holds no NUL). */
    char *grown = have + 3 * len <= S_REPLY_MAX ? realloc(t->reply, have + 3 * len + 1) : NULL;
    if (!grown) {
        node_run_fail(run, "the model's answer is too large");
        return;
    }
    char *o = grown + have;
    for (size_t i = 0; i < len; i++) {
        if (text[i]) {
            *o++ = text[i];
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    *o = '\0';
    text = grown + have;
    len = (size_t)(o - text);
    t->reply = grown;
    t->pos = have + len;
    s_uuid_t mid, conv;
    util_uuid_format(t->asst_id, mid);
    util_uuid_format(a->conv_id, conv);
    json_t *j = json_pack("{s:s, s:s, s:I, s:s%}", "conversation_id", conv, "message_id", mid,
                          "index", (json_int_t)t->index++, "text", text, len);
    char *body = j ? node_json_text(j) : NULL;
    if (body) {
        node_event_out_t ev = {.type = "message.delta", .body = body};
        node_publish(run->agents->node, a->team_id, a->conv_id, &ev);
    }
    free(body);
    json_decref(j);
}
