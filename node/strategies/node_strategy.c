/*  node_strategy — the strategies behind the turn engine's interface
    (node_turns.h node_strategy_if_t): echo (node_echo.c), openai and anthropic
    (node_strat_llm.c) and claude-code (node_strat_claude.c), and the node-wide agent
    state they share (pool, HTTP client, CLI runner, work dir, repository). A turn start
    carries one extra statement (the conversation's strategy and worktree path, read in
    the same transaction), so echo starts at once and the other strategies know where
    their tools run. Loop thread only. */
#define LOG_MODULE "node_strategy"
#include "common/log.h"
#include "common/util.h"
#include "node/agent/agent_worktree.h"
#include "node/strategies/node_strategies.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

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

/* Children die with the node (bicky-exec); what a previous incarnation of this node left
   is killed now, before any turn resumes. */
static int s_guard(node_agents_t *self, const node_cfg_t *cfg)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/pids/node-%s", PATH_MAX - 100, self->work_dir, cfg->id);
    if (agent_guard_init(&self->guard, cfg->exec_bin, dir) < 0) {
        return -1;
    }
    return agent_guard_sweep(&self->guard) < 0 ? -1 : 0;
}

/* The model relay, when some strategy runs the Claude Code CLI: the CLI gets
   the relay's URL and a token per run, never a provider key. */
static int s_relay(node_agents_t *self, const node_cfg_t *cfg)
{
    bool any = false;
    for (size_t i = 0; i < cfg_file_count(self->cfg); i++) {
        any |= cfg_file_at(self->cfg, i)->kind == CFG_STRATEGY_CLAUDE_CODE;
    }
    if (!any) {
        return 0;
    }
    /* Its unix socket is what a sandboxed CLI reaches (through bicky-fwd): the CLI's
       sandbox has no network of its own. */
    char sock[PATH_MAX];
    snprintf(sock, sizeof sock, "%.*s/pids/relay-%s.sock", PATH_MAX - 100, self->work_dir, cfg->id);
    self->relay = agent_relay_new(
        &(agent_relay_cfg_t){.port = (int)cfg->model_relay_port, .unix_path = sock});
    return self->relay ? 0 : -1;
}

/* A sandboxed claude CLI has no network but the relay's unix socket, which it reaches
   through bicky-fwd; without either its turns fail (agent_claude_box_check), never
   falling back to the node's network. Said once at start, per strategy. */
static void s_claude_net(node_agents_t *self)
{
    char fwd[PATH_MAX];
    bool fwd_ok = agent_claude_fwd_path(&self->guard, fwd) == 0 || !self->guard.shim[0];
    bool sock_ok = self->relay && agent_relay_unix_path(self->relay)[0];
    for (size_t i = 0; self->sandbox.enabled && i < cfg_file_count(self->cfg); i++) {
        const cfg_strategy_t *s = cfg_file_at(self->cfg, i);
        if (s->kind != CFG_STRATEGY_CLAUDE_CODE || !s->sandbox) {
            continue;
        }
        if (!fwd_ok) {
            LOG_E("strategy=%s: its turns will fail: the claude CLI's sandbox reaches the model "
                  "relay only through bicky-fwd, which is missing next to bicky-exec path=%s",
                  s->name, fwd);
        }
        if (!sock_ok) {
            LOG_E("strategy=%s: its turns will fail: the claude CLI's sandbox reaches only the "
                  "model relay's unix socket, and the relay has none (see above)",
                  s->name);
        }
    }
}

/* Tools and the CLI run in bwrap unless --sandbox off; a strategy that opts out
   (sandbox = false) is named loudly, once, at start. */
static void s_sandbox(node_agents_t *self, const node_cfg_t *cfg)
{
    const char *m = cfg->sandbox ? cfg->sandbox : "auto";
    agent_sandbox_init(&self->sandbox,
                       !strcmp(m, "on")    ? AGENT_SANDBOX_ON
                       : !strcmp(m, "off") ? AGENT_SANDBOX_OFF
                                           : AGENT_SANDBOX_AUTO,
                       NULL);
    for (size_t i = 0; self->sandbox.enabled && i < cfg_file_count(self->cfg); i++) {
        const cfg_strategy_t *s = cfg_file_at(self->cfg, i);
        if (!s->sandbox && s->kind != CFG_STRATEGY_ECHO) {
            LOG_W("SANDBOX OFF for strategy=%s (sandbox = false): its tools run with the "
                  "node's rights and see the whole host",
                  s->name);
        }
    }
    self->limits.sandbox = &self->sandbox;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    node_agents_t *self = arg;
    int64_t now = util_wall_ms();
    for (node_run_t *r = self->runs; r; r = r->next) {
        node_perm_tick(r, now);
        node_claude_tick(r, util_mono_ms());
    }
    node_observe_tick(self->observers);
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
    self->strategy = &node_strategies;
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
    if (!self->cfg || s_dirs(self, node->cfg) < 0 || s_guard(self, node->cfg) < 0) {
        node_agents_destroy(&self);
        return NULL;
    }
    self->limits.guard = &self->guard;
    s_sandbox(self, node->cfg);
    /* libgit2 is reference counted: one init per node, before the pool's workers. */
    self->git_init = agent_worktree_global_init() == 0;
    if (!self->git_init) {
        LOG_E("cannot initialise libgit2");
        node_agents_destroy(&self);
        return NULL;
    }
    self->pool = agent_pool_new(node->loop, (int)workers, 256);
    self->http = agent_http_new(node->loop);
    int relay_rc = s_relay(self, node->cfg);
    if (relay_rc == 0) {
        s_claude_net(self);
    }
    self->claude = agent_claude_new(node->loop, self->relay);
    node_claude_mcp_init(self);
    self->observers = node_observers_new(node);
    self->timer = zloop_timer(node->loop, NODE_AGENT_TICK_MS, 0, s_on_tick, self);
    if (!self->pool || !self->http || relay_rc < 0 || !self->claude || self->timer < 0 ||
        !self->observers) {
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
    node_observers_destroy(&self->observers); /* their model calls, before the client */
    agent_http_destroy(&self->http);
    agent_claude_destroy(&self->claude);
    agent_relay_destroy(&self->relay); /* after the runs whose tokens it holds */
    agent_pool_destroy(&self->pool);
    if (self->git_init) {
        agent_worktree_global_shutdown();
    }
    if (self->timer >= 0 && self->node->loop) {
        zloop_timer_end(self->node->loop, self->timer);
    }
    if (node_strategy_config() == self->cfg) {
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
    return node_perm_sql_prepare(db) < 0 || node_claude_sql_prepare(db) < 0 ||
                   node_observe_sql_prepare(db) < 0
               ? -1
               : 0;
}

/* ---- turn hooks -------------------------------------------------------------------------- */

static void s_add_start(node_ws_t *ws)
{
    s_uuid_t conv, team;
    util_uuid_format(ws->actor->conv_id, conv);
    util_uuid_format(ws->actor->team_id, team);
    const char *params[] = {conv, team};
    int i = node_ws_add(ws, NODE_Q_TURN_CTX, NODE_SK_PLAIN, 2, params);
    ws->plan.ws = ws;
    ws->plan.strat_ctx = i >= 0 ? i + 1 : 0;
}

static void s_begin(node_t *node, node_actor_t *a, node_plan_t *plan, const char *content)
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

static void s_end_json(const node_actor_t *a, node_end_t how, char **meta, char **action)
{
    const node_turns_t *t = a->turns;
    const node_run_t *run = t->run;
    if (!run) {
        node_echo_end_json(a, how, meta, action);
        return;
    }
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
        if (run->lost) {
            json_object_set_new(m, "reason", json_string("node_lost"));
            json_object_set_new(act, "reason", json_string("node_lost"));
        }
    }
    *meta = node_json_text(m);
    *action = node_json_text(act);
    json_decref(m);
    json_decref(act);
}

static int s_add_end(node_t *node, node_ws_t *ws, node_end_t how)
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

static bool s_pending_write(node_t *node, node_actor_t *a)
{
    if (node_observe_pending_write(node, a)) {
        return true;
    }
    node_turns_t *t = a->turns;
    if (!t) {
        if (a->status == NODE_ST_WAITING && a->state == NODE_ACTOR_READY && !node->stopping &&
            !(a->flags & NODE_AF_DOOMED) && node->agents) {
            node_perm_recover(node, a, false);
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

static void s_committed(node_t *node, node_actor_t *a, node_plan_t *plan)
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

/* A run that fails: its CLI stops (the claude state stays for the end write). */
static void s_cancel(node_run_t *run)
{
    node_claude_cancel(run);
}

/* A run that goes: its CLI stops and the claude state is freed. */
static void s_stop(node_run_t *run)
{
    node_claude_stop(run);
}

/* A permission request of call i was decided: a claude-code CLI waiting for it is
   answered (the HTTP strategies run or refuse the tool themselves). */
static void s_decided(node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg)
{
    if (run->cc) {
        node_claude_answer(run, i, allow, input, msg);
    }
}

/* A claude-code turn lost with its node is read back and resumed from its checkpoint
   (node_perm_recover.c, node_claude_resume.c); other strategies' turns fail. */
static bool s_resume_lost(node_t *node, node_actor_t *a, const char *strategy)
{
    const cfg_strategy_t *s = node_strategy_lookup(strategy);
    if (!s || s->kind != CFG_STRATEGY_CLAUDE_CODE || !node->agents) {
        return false;
    }
    node_perm_recover(node, a, true);
    return true;
}

const node_strategy_if_t node_strategies = {
    .whole_turns = node_echo_is,
    .whole_turn = node_echo_whole_turn,
    .add_start = s_add_start,
    .begin = s_begin,
    .step = node_echo_step,
    .end_json = s_end_json,
    .add_end = s_add_end,
    .pending_write = s_pending_write,
    .committed = s_committed,
    .cancel = s_cancel,
    .stop = s_stop,
    .decided = s_decided,
    .turn_ended = node_observe_turn_ended,
    .resume_lost = s_resume_lost,
};
