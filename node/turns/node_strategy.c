/*  node_strategy — the strategy interface behind node_turn.c and the
    node-wide agent state. A turn start carries one extra statement (the
    conversation's strategy and worktree path, read in the same transaction),
    so echo starts at once and the other strategies know where their tools
    run. A non-echo turn is a node_run_t: owned by the actor's turn state,
    referenced by its async work (database reads, pool jobs), so that a
    callback arriving after the turn ended finds it dead and only drops its
    reference. Loop thread only. */
#define LOG_MODULE "node_strategy"
#include "common/log.h"
#include "common/util.h"
#include "node/agent/agent_worktree.h"
#include "node/ops/node_ops.h"
#include "node/turns/node_turns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_REPLY_MAX (4u * 1024 * 1024) /* bytes of one assistant message's text */

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* The only global (STYLE §4): the strategies config, read-only after start. */
static const cfg_file_t *s_config;

void node_strategy_config_set(const cfg_file_t *cfg)
{
    s_config = cfg;
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

/* ---- node-wide state --------------------------------------------------------------------- */

/* mkdir -p for an absolute path (startup only: the loop has not started yet). */
static int s_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int s_dirs(node_agents_t *self, const node_cfg_t *cfg)
{
    const char *wd = cfg->work_dir && *cfg->work_dir ? cfg->work_dir : "./var/work";
    char abs[PATH_MAX];
    if (wd[0] == '/') {
        snprintf(abs, sizeof abs, "%s", wd);
    } else if (!getcwd(abs, sizeof abs) || strlen(abs) + strlen(wd) + 2 > sizeof abs) {
        return -1;
    } else {
        strcat(abs, "/");
        strcat(abs, wd);
    }
    if (s_mkdirs(abs) < 0 || !realpath(abs, self->work_dir)) {
        LOG_E("cannot create the work dir path=%s error=\"%s\"", abs, strerror(errno));
        return -1;
    }
    snprintf(self->conv_dir, sizeof self->conv_dir, "%.*s/conversations", PATH_MAX - 20,
             self->work_dir);
    snprintf(self->wt_dir, sizeof self->wt_dir, "%.*s/worktrees", PATH_MAX - 20, self->work_dir);
    if (s_mkdirs(self->conv_dir) < 0 || s_mkdirs(self->wt_dir) < 0) {
        LOG_E("cannot create dirs under work_dir=%s", self->work_dir);
        return -1;
    }
    if (cfg->repo && *cfg->repo && !realpath(cfg->repo, self->repo)) {
        LOG_E("--repo is not a directory path=%s error=\"%s\"", cfg->repo, strerror(errno));
        return -1;
    }
    /* Every node of the cluster names the same repository: one lock key for all. */
    self->wt_lock_key = (int64_t)(util_hash64(self->repo, strlen(self->repo)) >> 1);
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    node_agents_t *self = arg;
    int64_t now = util_wall_ms();
    for (node_run_t *r = self->runs; r; r = r->next) {
        node_perm_tick(r, now);
    }
    node_wt_tick(self);
    if (self->any_timeout && util_mono_ms() >= self->next_sweep_ms) {
        self->next_sweep_ms = util_mono_ms() + NODE_EXPIRE_SWEEP_S * 1000;
        node_perm_sweep(self);
    }
    return 0;
}

node_agents_t *node_agents_new(node_t *node)
{
    node_agents_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->node = node;
    self->timer = -1;
    self->cfg = node->cfg->strategies;
    char err[256];
    if (!self->cfg) {
        self->own_cfg = cfg_file_load(NULL, err, sizeof err);
        self->cfg = self->own_cfg;
    }
    node_strategy_config_set(self->cfg);
    for (size_t i = 0; self->cfg && i < cfg_file_count(self->cfg); i++) {
        self->any_timeout |= cfg_file_at(self->cfg, i)->permission_timeout_s > 0;
    }
    agent_tool_limits_default(&self->limits);
    long workers = node->cfg->tool_workers > 0 ? node->cfg->tool_workers : 4;
    if (!self->cfg || s_dirs(self, node->cfg) < 0) {
        node_agents_destroy(&self);
        return NULL;
    }
    /* libgit2 is reference counted: one init per node, before the pool's workers. */
    self->git_init = agent_worktree_global_init() == 0;
    if (!self->git_init) {
        LOG_E("cannot initialise libgit2");
        node_agents_destroy(&self);
        return NULL;
    }
    self->pool = agent_pool_new(node->loop, (int)workers, 256);
    self->http = agent_http_new(node->loop);
    self->claude = agent_claude_new(node->loop);
    node_claude_mcp_init(self);
    self->timer = zloop_timer(node->loop, NODE_AGENT_TICK_MS, 0, s_on_tick, self);
    if (!self->pool || !self->http || !self->claude || self->timer < 0 || node_wt_init(self) < 0) {
        node_agents_destroy(&self);
        return NULL;
    }
    return self;
}

void node_agents_destroy(node_agents_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_agents_t *self = *self_p;
    /* Model calls stop without callbacks; pool jobs finish (or are dropped) and
       their completions find their runs dead. */
    for (node_run_t *r = self->runs; r; r = r->next) {
        agent_llm_cancel(&r->req);
        node_claude_stop(r);
    }
    agent_http_destroy(&self->http);
    agent_claude_destroy(&self->claude);
    node_wt_destroy(self);
    agent_pool_destroy(&self->pool);
    if (self->git_init) {
        agent_worktree_global_shutdown();
    }
    if (self->timer >= 0 && self->node->loop) {
        zloop_timer_end(self->node->loop, self->timer);
    }
    if (s_config == self->cfg) {
        node_strategy_config_set(NULL);
    }
    cfg_file_destroy(&self->own_cfg);
    free(self);
    *self_p = NULL;
}

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 conv $2 team: the turn's strategy and its worktree's path (a removed worktree's
       too: its tools then fail instead of running somewhere else). */
    {NODE_Q_TURN_CTX, 2,
     "SELECT c.strategy, w.path, c.worktree_id, c.metadata->'claude_code'->>'session_id' "
     "FROM conversations c LEFT JOIN worktrees w ON w.id = c.worktree_id AND w.team_id = "
     "c.team_id WHERE c.id = $1::uuid AND c.team_id = $2::uuid"},
};

int node_agents_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return node_perm_sql_prepare(db) < 0 || node_wt_sql_prepare(db) < 0 ||
                   node_ops_perm_sql_prepare(db) < 0 || node_claude_sql_prepare(db) < 0
               ? -1
               : 0;
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
    node_claude_stop(run);
    node_run_clear_calls(run);
    json_decref(run->history);
    free(run->content);
    free(run->root);
    free(run->error);
    free(run);
}

void node_strategy_release(node_run_t *run)
{
    if (!run || !run->actor) {
        return;
    }
    agent_llm_cancel(&run->req);
    node_claude_stop(run);
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
    node_claude_cancel(run);
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

bool node_strategy_waiting(const node_actor_t *actor)
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

int node_ws_event_perm(node_ws_t *ws,
                       const char *type,
                       const char *source,
                       const char *action,
                       const uint8_t perm_id[16])
{
    node_actor_t *a = ws->actor;
    s_uuid_t conv, team, pid;
    char seq[24];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    util_uuid_format(perm_id, pid);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)++a->last_evt_seq);
    const char *params[] = {team, conv, seq, type, source, action, pid};
    return node_ws_add(ws, NODE_Q_EVT_PERM, NODE_SK_EVENT, 7, params);
}

/* ---- turn hooks -------------------------------------------------------------------------- */

void node_strategy_add_start(node_ws_t *ws)
{
    s_uuid_t conv, team;
    util_uuid_format(ws->actor->conv_id, conv);
    util_uuid_format(ws->actor->team_id, team);
    const char *params[] = {conv, team};
    int i = node_ws_add(ws, NODE_Q_TURN_CTX, NODE_SK_PLAIN, 2, params);
    ws->plan.ws = ws;
    ws->plan.strat_ctx = i >= 0 ? i + 1 : 0;
}

void node_strategy_begin(node_t *node, node_actor_t *a, node_plan_t *plan, const char *content)
{
    const char *name = NULL;
    if (plan->ws && plan->strat_ctx > 0 && node_ws_rows(plan->ws, plan->strat_ctx - 1) > 0) {
        name = node_ws_value(plan->ws, plan->strat_ctx - 1, 0);
    }
    const cfg_strategy_t *s = name ? node_strategy_lookup(name) : NULL;
    if (s && s->kind == CFG_STRATEGY_ECHO) {
        node_echo_begin(node, a, content);
        return;
    }
    /* Other strategies, or no context in the plan: the run reads the context itself. */
    node_run_t *run = node_run_new(node, a, s);
    if (!run) {
        LOG_E("out of memory: turn fails");
        a->turns->running = true;
        a->turns->end_ready = NODE_END_FAILED;
        return;
    }
    if (name && !s) {
        char why[160];
        snprintf(why, sizeof why, "strategy '%.64s' is not configured on this node", name);
        run->phase = NODE_RUN_ENDING;
        run->error = strdup(why);
        a->turns->end_ready = NODE_END_FAILED;
        return;
    }
    if (s && s->kind == CFG_STRATEGY_CLAUDE_CODE) {
        node_ws_t *ws = plan->ws;
        int i = plan->strat_ctx - 1;
        node_claude_begin(run, content, node_ws_value(ws, i, 1), node_ws_value(ws, i, 3));
        return;
    }
    node_llm_begin(run, content);
}

void node_strategy_end_json(const node_actor_t *a, node_end_t how, char **meta, char **action)
{
    const node_turns_t *t = a->turns;
    const node_run_t *run = t->run;
    s_uuid_t uid, aid;
    util_uuid_format(t->user_id, uid);
    util_uuid_format(t->asst_id, aid);
    const cfg_strategy_t *s = run->strategy;
    json_t *m = json_pack("{s:s?, s:s, s:s}", "model", s ? s->model : NULL, "strategy",
                          run->strategy_name, "user_message_id", uid);
    json_t *act = json_pack("{s:s, s:s, s:i}", "message_id", aid, "user_message_id", uid,
                            "model_calls", run->model_calls);
    if (!m || !act) {
        json_decref(m);
        json_decref(act);
        *meta = *action = NULL;
        return;
    }
    json_object_set_new(m, "usage",
                        json_pack("{s:I, s:I}", "input_tokens",
                                  (json_int_t)run->step_usage.input_tokens, "output_tokens",
                                  (json_int_t)run->step_usage.output_tokens));
    json_object_set_new(act, "usage",
                        json_pack("{s:I, s:I}", "input_tokens", (json_int_t)run->usage.input_tokens,
                                  "output_tokens", (json_int_t)run->usage.output_tokens));
    if (run->stop_reason[0]) {
        json_object_set_new(m, "stop_reason", json_string(run->stop_reason));
    }
    if (run->max_turns) {
        /* The last model call asked for tools past max_turns: recorded, not run. */
        json_t *calls = json_array();
        for (size_t i = 0; i < run->ncalls; i++) {
            json_array_append_new(calls,
                                  json_pack("{s:s, s:s, s:O}", "id", run->calls[i].id, "name",
                                            run->calls[i].name, "arguments", run->calls[i].args));
        }
        json_object_set_new(m, "tool_calls", calls);
        json_object_set_new(m, "stop_reason", json_string("max_turns"));
        json_object_set_new(act, "stop_reason", json_string("max_turns"));
    }
    if (how == NODE_END_FAILED) {
        const char *why = run->error ? run->error : "the strategy failed";
        json_object_set_new(m, "error", json_string(why));
        json_object_set_new(act, "error", json_string(why));
    }
    *meta = node_json_text(m);
    *action = node_json_text(act);
    json_decref(m);
    json_decref(act);
}

int node_strategy_add_end(node_t *node, node_ws_t *ws, node_end_t how)
{
    node_run_t *run = ws->actor->turns ? ws->actor->turns->run : NULL;
    if (!run) {
        return 0;
    }
    /* What is stored must be what was sent: no delta after this point. */
    agent_llm_cancel(&run->req);
    if (node_claude_add_end(ws, run, how) < 0) {
        return -1;
    }
    return node_perm_add_end(ws, run, how);
}

bool node_strategy_pending_write(node_t *node, node_actor_t *a)
{
    node_turns_t *t = a->turns;
    if (!t) {
        if (a->status == NODE_ST_WAITING && a->state == NODE_ACTOR_READY && !node->stopping &&
            !(a->flags & NODE_AF_DOOMED) && node->agents) {
            node_perm_recover(node, a);
            return (a->flags & (NODE_AF_IDEM | NODE_AF_COMMITTING)) != 0;
        }
        return false;
    }
    node_run_t *run = t->run;
    if (!run || !t->running || t->end_ready != NODE_END_NONE) {
        return false;
    }
    switch (run->phase) {
        case NODE_RUN_STEP:
            return node_perm_step_write(node, run);
        case NODE_RUN_TOOLS:
            return node_perm_expire_write(node, run) || node_tools_done_write(node, run);
        case NODE_RUN_NEXT:
            return node_llm_next_write(node, run);
        case NODE_RUN_CLAUDE:
            return node_perm_expire_write(node, run) || node_claude_pending_write(node, run);
        default:
            return false;
    }
}

void node_strategy_committed(node_t *node, node_actor_t *a, node_plan_t *plan)
{
    node_run_t *run = a->turns ? a->turns->run : NULL;
    int32_t i = plan->strat_arg;
    switch (plan->strat_op) {
        case NODE_SOP_DECIDE:
            node_perm_decide_committed(node, a, plan);
            return;
        case NODE_SOP_STEP:
            if (run) {
                node_perm_step_committed(run);
            }
            break;
        case NODE_SOP_CLAUDE:
            if (run) {
                node_claude_committed(run);
            }
            return;
        case NODE_SOP_EXPIRE:
            if (run && run->cc && i >= 0) {
                node_claude_answer(run, (size_t)i, false, NULL,
                                   "Permission denied: the request expired");
            }
            /* fall through */
        case NODE_SOP_TOOL_DONE:
        case NODE_SOP_RECOVER:
            if (run && i >= 0 && (size_t)i < run->ncalls) {
                run->calls[i].state = NODE_CALL_DONE;
                run->calls[i].expired = false;
            }
            break;
        case NODE_SOP_NEXT:
            if (run) {
                node_llm_next_committed(run);
            }
            return;
        default:
            return;
    }
    if (run && run->phase == NODE_RUN_TOOLS) {
        node_tools_all_done(run);
    }
}
