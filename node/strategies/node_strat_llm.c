/*  node_strat_llm — the openai and anthropic strategies: the tool-calling
    loop of one turn. The turn's context (strategy, worktree) and the
    conversation's history are read from Postgres when the turn starts
    (bounded: NODE_HISTORY_ROWS messages, NODE_HISTORY_BYTES of content);
    then each model call streams its text as message.delta, and its tool
    calls go through the permission flow (node_perm.c) and the tools
    (node_tools.c) before the next call, up to max_turns calls. Every model
    call has its own assistant message; tool results are messages of role
    "tool"; all of them carry metadata.user_message_id, so a later history
    groups them under their user message. Loop thread only. */
#define LOG_MODULE "node_llm"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* A read of the turn's context and history. */
typedef struct {
    node_run_t *run; /* referenced */
    char *strategy;  /* the conversation's strategy (owned) */
    char *wt_path;   /* its worktree's path (owned), NULL none */
    char *session;   /* claude-code: metadata.claude_code.session_id (owned) */
    bool ctx_found;  /* the conversation row was read */
    json_t *rows;    /* message rows, oldest first */
} s_load_t;

static void s_call(node_run_t *run);

/* ---- history ----------------------------------------------------------------------------- */

typedef struct {
    const char *user_id; /* the group's user message */
    json_t *items;       /* its assistant/tool/system rows, in order */
} s_group_t;

/* The tool calls of an assistant row that have a result row in the group. */
static json_t *s_answered_calls(const json_t *row, const json_t *items)
{
    json_t *calls = json_object_get(json_object_get(row, "metadata"), "tool_calls");
    json_t *out = json_array();
    size_t i, j;
    json_t *c, *it;
    json_array_foreach(calls, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        bool answered = false;
        json_array_foreach(items, j, it)
        {
            const char *tid =
                json_string_value(json_object_get(json_object_get(it, "metadata"), "tool_call_id"));
            answered |= id && tid &&
                        strcmp(json_string_value(json_object_get(it, "role")), "tool") == 0 &&
                        strcmp(tid, id) == 0;
        }
        const json_t *args = json_object_get(c, "arguments");
        if (answered && json_string_value(json_object_get(c, "name"))) {
            json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "id", id, "name",
                                                 json_object_get(c, "name"), "arguments",
                                                 json_is_object(args) ? args : json_object()));
        }
    }
    return out;
}

/* Appends one group (user message + its turn) to out. */
static void s_emit_group(json_t *out, const s_group_t *g, const json_t *user, const char *skip)
{
    json_array_append_new(
        out, json_pack("{s:s, s:O}", "role", "user", "content", json_object_get(user, "content")));
    json_t *called = json_object(); /* ids of emitted calls */
    size_t i;
    json_t *row;
    json_array_foreach(g->items, i, row)
    {
        const char *role = json_string_value(json_object_get(row, "role"));
        const char *content = json_string_value(json_object_get(row, "content"));
        const json_t *meta = json_object_get(row, "metadata");
        const char *id = json_string_value(json_object_get(row, "id"));
        if (strcmp(role, "assistant") == 0) {
            const char *st = json_string_value(json_object_get(row, "status"));
            if ((skip && id && strcmp(id, skip) == 0) || (st && strcmp(st, "streaming") == 0)) {
                continue;
            }
            json_t *calls = s_answered_calls(row, g->items);
            if (!json_array_size(calls) && !(content && *content)) {
                json_decref(calls);
                continue;
            }
            json_t *m =
                json_pack("{s:s, s:s}", "role", "assistant", "content", content ? content : "");
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c)
            {
                json_object_set_new(called, json_string_value(json_object_get(c, "id")),
                                    json_true());
            }
            json_object_set_new(m, "tool_calls", calls);
            json_array_append_new(out, m);
        } else if (strcmp(role, "tool") == 0) {
            const char *tid = json_string_value(json_object_get(meta, "tool_call_id"));
            if (tid && json_object_get(called, tid)) {
                json_array_append_new(
                    out, json_pack("{s:s, s:s, s:s, s:b}", "role", "tool", "tool_call_id", tid,
                                   "content", content ? content : "", "is_error",
                                   json_is_true(json_object_get(meta, "is_error"))));
                json_object_del(called, tid);
            }
        } else if (strcmp(role, "system") == 0 && content) {
            json_array_append_new(out,
                                  json_pack("{s:s, s:s}", "role", "system", "content", content));
        }
    }
    json_decref(called);
}

/* Index of the group of user_id, or -1. */
static int s_group_of(const s_group_t *g, size_t n, const char *user_id)
{
    for (size_t i = 0; user_id && i < n; i++) {
        if (strcmp(g[i].user_id, user_id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

json_t *
node_llm_history(const json_t *rows, const char *current, const char *skip_asst, bool *has_current)
{
    size_t n = json_array_size(rows), ng = 0;
    s_group_t *g = calloc(n + 1, sizeof *g);
    json_t *users = json_array(), *out = json_array();
    *has_current = false;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *role = json_string_value(json_object_get(row, "role"));
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *st = json_string_value(json_object_get(row, "status"));
        if (!g || !role || !id || !st || !json_is_string(json_object_get(row, "content"))) {
            continue;
        }
        if (strcmp(role, "user") == 0) {
            bool cur = current && strcmp(id, current) == 0;
            if (cur || strcmp(st, "completed") == 0) {
                g[ng].user_id = id;
                g[ng++].items = json_array();
                json_array_append(users, row);
                *has_current |= cur;
            }
            continue;
        }
        const char *uid =
            json_string_value(json_object_get(json_object_get(row, "metadata"), "user_message_id"));
        int k = uid ? s_group_of(g, ng, uid) : (int)ng - 1;
        if (k >= 0) {
            json_array_append(g[k].items, row);
        }
    }
    for (i = 0; i < ng; i++) {
        s_emit_group(out, &g[i], json_array_get(users, i), skip_asst);
        json_decref(g[i].items);
    }
    free(g);
    json_decref(users);
    return out;
}

void node_llm_append_results(node_run_t *run)
{
    for (size_t i = 0; i < run->ncalls; i++) {
        const node_call_t *c = &run->calls[i];
        json_array_append_new(run->history,
                              json_pack("{s:s, s:s, s:s, s:b}", "role", "tool", "tool_call_id",
                                        c->id, "content", c->result ? c->result : "", "is_error",
                                        c->is_error));
    }
}

/* ---- the turn's context and history ------------------------------------------------------ */

static void s_on_ctx(void *arg, db_status_t status, const db_result_t *res)
{
    s_load_t *l = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        const char *s = db_result_value(res, 0, 0), *p = db_result_value(res, 0, 1);
        l->ctx_found = true;
        const char *sid = db_result_value(res, 0, 3);
        l->strategy = s ? strdup(s) : NULL;
        l->wt_path = p ? strdup(p) : NULL;
        l->session = sid ? strdup(sid) : NULL;
    }
}

static void s_on_rows(void *arg, db_status_t status, const db_result_t *res)
{
    s_load_t *l = arg;
    const char *text = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    l->rows = text ? json_loads(text, 0, NULL) : NULL;
}

/* The tools root: the worktree, else the conversation's own dir under the work dir. */
int node_llm_set_root(node_run_t *run, const char *wt_path)
{
    free(run->root);
    run->root_make = !wt_path;
    if (wt_path) {
        run->root = strdup(wt_path);
    } else {
        s_uuid_t conv;
        util_uuid_format(run->actor->conv_id, conv);
        size_t n = strlen(run->agents->conv_dir) + sizeof conv + 2;
        run->root = malloc(n);
        if (run->root) {
            snprintf(run->root, n, "%s/%s", run->agents->conv_dir, conv);
        }
    }
    return run->root ? 0 : -1;
}

/* The context says echo (the turn started without it): run echo instead. */
static void s_fallback_echo(node_run_t *run)
{
    node_actor_t *a = run->actor;
    node_t *node = node_run_node(run);
    char *content = run->content;
    run->content = NULL;
    node_run_release(run);
    node_echo_begin(node, a, content ? content : "");
    free(content);
}

/* Applies a completed load; returns -1 with why set when the turn must fail. */
static int s_loaded(node_run_t *run, s_load_t *l, const char **why)
{
    if (!l->ctx_found || !json_is_array(l->rows)) {
        *why = "the conversation's history cannot be read";
        return -1;
    }
    if (!run->strategy) {
        run->strategy = l->strategy ? node_strategy_lookup(l->strategy) : NULL;
        snprintf(run->strategy_name, sizeof run->strategy_name, "%s",
                 l->strategy ? l->strategy : "");
    }
    if (!run->strategy) {
        *why = "the conversation's strategy is not configured on this node";
        return -1;
    }
    cfg_strategy_kind_t kind = run->strategy->kind;
    if (kind != CFG_STRATEGY_OPENAI && kind != CFG_STRATEGY_ANTHROPIC) {
        *why = "this node cannot run the conversation's strategy kind";
        return -1;
    }
    s_uuid_t uid;
    util_uuid_format(run->actor->turns->user_id, uid);
    bool has_current = false;
    json_decref(run->history);
    run->history = node_llm_history(l->rows, uid, NULL, &has_current);
    if (!has_current) {
        json_array_append_new(run->history, json_pack("{s:s, s:s}", "role", "user", "content",
                                                      run->content ? run->content : ""));
    }
    if (node_llm_set_root(run, l->wt_path) < 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

static void s_on_loaded(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_load_t *l = arg;
    node_run_t *run = l->run;
    const char *why = "database unavailable";
    if (run->actor && run->phase == NODE_RUN_LOADING) {
        if (status == DB_OK && l->ctx_found && l->strategy && !run->strategy) {
            const cfg_strategy_t *s = node_strategy_lookup(l->strategy);
            if (s && s->kind == CFG_STRATEGY_ECHO) {
                s_fallback_echo(run);
                goto out;
            }
        }
        const cfg_strategy_t *s = run->strategy ? run->strategy
                                  : l->strategy ? node_strategy_lookup(l->strategy)
                                                : NULL;
        if (status == DB_OK && l->ctx_found && s && s->kind == CFG_STRATEGY_CLAUDE_CODE) {
            run->strategy = s;
            snprintf(run->strategy_name, sizeof run->strategy_name, "%s", s->name);
            node_claude_begin(run, run->content, l->wt_path, l->session);
        } else if (status != DB_OK || s_loaded(run, l, &why) < 0) {
            node_run_fail(run, why);
        } else {
            s_call(run);
        }
    }
out:
    free(l->strategy);
    free(l->wt_path);
    free(l->session);
    json_decref(l->rows);
    node_run_unref(run);
    free(l);
}

void node_llm_begin(node_run_t *run, const char *content)
{
    node_t *node = node_run_node(run);
    node_actor_t *a = run->actor;
    run->phase = NODE_RUN_LOADING;
    run->content = strdup(content);
    s_uuid_t conv, team;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    char rows[16], bytes[24];
    snprintf(rows, sizeof rows, "%d", NODE_HISTORY_ROWS);
    snprintf(bytes, sizeof bytes, "%d", NODE_HISTORY_BYTES);
    const char *p_ctx[] = {conv, team};
    const char *p_hist[] = {conv, team, rows, bytes};
    s_load_t *l = calloc(1, sizeof *l);
    db_batch_t *b = l && run->content && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_TURN_CTX, NULL, 2, p_ctx, s_on_ctx, l) < 0 ||
        db_batch_add(b, NODE_Q_HISTORY, NULL, 4, p_hist, s_on_rows, l) < 0) {
        db_batch_destroy(&b);
        free(l);
        node_run_fail(run, "cannot read the conversation's history");
        return;
    }
    l->run = run;
    node_run_ref(run);
    db_batch_submit(&b, s_on_loaded, l);
}

/* ---- model calls ------------------------------------------------------------------------- */

static void s_on_text(void *arg, const char *text, size_t len)
{
    node_run_delta(arg, text, len);
}

/* Postgres stores no NUL character (text, jsonb): one in a string of v becomes
   U+FFFD, in place. Returns true when there was one. */
static bool s_scrub(json_t *v)
{
    bool found = false;
    if (json_is_string(v)) {
        const char *str = json_string_value(v);
        size_t n = json_string_length(v), nul = n - strlen(str);
        if (nul == 0) {
            return false;
        }
        char *out = malloc(n + 2 * n + 1), *o = out;
        for (size_t i = 0; out && i < n; i++) {
            if (str[i]) {
                *o++ = str[i];
            } else {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
            }
        }
        if (out) {
            json_string_setn(v, out, (size_t)(o - out));
        }
        free(out);
        return true;
    }
    const char *key;
    json_t *item;
    size_t i;
    json_object_foreach(v, key, item)
    {
        found |= s_scrub(item);
    }
    json_array_foreach(v, i, item)
    {
        found |= s_scrub(item);
    }
    return found;
}

static void s_on_tool_call(void *arg, const char *id, const char *name, json_t *args)
{
    node_run_t *run = arg;
    node_call_t *calls = realloc(run->calls, (run->ncalls + 1) * sizeof *calls);
    if (!calls) {
        return;
    }
    run->calls = calls;
    node_call_t *c = &calls[run->ncalls];
    memset(c, 0, sizeof *c);
    c->id = strdup(id);
    c->name = strdup(name);
    c->args = json_is_object(args) ? json_deep_copy(args) : json_object();
    if (c->id && c->name && c->args) {
        /* Refused before anyone is asked: the call cannot be stored as the model sent it. */
        c->invalid = s_scrub(c->args);
        run->ncalls++;
    } else {
        free(c->id);
        free(c->name);
        json_decref(c->args);
    }
}

/* The assistant turn as the history's provider-neutral entry. */
static json_t *s_assistant_entry(const node_run_t *run, const char *text)
{
    json_t *calls = json_array();
    for (size_t i = 0; i < run->ncalls; i++) {
        const node_call_t *c = &run->calls[i];
        json_array_append_new(calls, json_pack("{s:s, s:s, s:O}", "id", c->id, "name", c->name,
                                               "arguments", c->args));
    }
    return json_pack("{s:s, s:s, s:o}", "role", "assistant", "content", text ? text : "",
                     "tool_calls", calls);
}

static void s_on_done(void *arg, const char *stop_reason, const agent_llm_usage_t *usage)
{
    node_run_t *run = arg;
    node_turns_t *t = run->actor->turns;
    run->req = NULL;
    run->step_usage = *usage;
    run->usage.input_tokens += usage->input_tokens;
    run->usage.output_tokens += usage->output_tokens;
    snprintf(run->stop_reason, sizeof run->stop_reason, "%s", stop_reason ? stop_reason : "");
    if (run->ncalls == 0 || run->model_calls >= run->strategy->max_turns) {
        run->max_turns = run->ncalls > 0;
        run->phase = NODE_RUN_ENDING;
        t->end_ready = NODE_END_COMPLETED;
        node_run_pump(run);
        return;
    }
    json_array_append_new(run->history, s_assistant_entry(run, t->reply));
    run->phase = NODE_RUN_RULES;
    node_perm_load_rules(run);
}

static void s_on_error(void *arg, const agent_llm_error_t *err)
{
    node_run_t *run = arg;
    run->req = NULL;
    LOG_N("model call failed strategy=%s kind=%s status=%ld", run->strategy_name,
          agent_llm_err_kind_name(err->kind), err->http_status);
    node_run_fail(run, err->reason[0] ? err->reason : agent_llm_err_kind_name(err->kind));
}

/* The strategy's tools, as agent_tools_schema gives them, or NULL for none. */
static json_t *s_tools(const cfg_strategy_t *s)
{
    if (!s->tools_count) {
        return NULL;
    }
    json_t *all = agent_tools_schema(), *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t)
    {
        if (cfg_strategy_has_tool(s, json_string_value(json_object_get(t, "name")))) {
            json_array_append(out, t);
        }
    }
    json_decref(all);
    return out;
}

static void s_call(node_run_t *run)
{
    static const agent_llm_callbacks_t cb = {s_on_text, s_on_tool_call, s_on_done, s_on_error};
    node_run_clear_calls(run);
    memset(&run->step_usage, 0, sizeof run->step_usage);
    run->stop_reason[0] = '\0';
    run->model_calls++;
    run->phase = NODE_RUN_STREAMING;
    json_t *tools = s_tools(run->strategy);
    agent_llm_params_t params = {.strategy = run->strategy,
                                 .api_key = cfg_strategy_api_key(run->strategy),
                                 .messages = run->history,
                                 .tools = tools};
    agent_llm_error_t err = {0};
    run->req = agent_llm_start(run->agents->http, &params, &cb, run, &err);
    json_decref(tools);
    if (!run->req) {
        node_run_fail(run, err.reason[0] ? err.reason : "the model call could not start");
    }
}

/* ---- the next model call ----------------------------------------------------------------- */

bool node_llm_next_write(node_t *node, node_run_t *run)
{
    node_actor_t *a = run->actor;
    node_ws_t *ws = node_ws_new(a, NULL);
    if (!ws) {
        return false;
    }
    util_uuid_generate(run->next_id);
    s_uuid_t uid;
    util_uuid_format(a->turns->user_id, uid);
    json_t *m = json_pack("{s:s, s:s}", "user_message_id", uid, "strategy", run->strategy_name);
    char *meta = m ? node_json_text(m) : NULL;
    json_decref(m);
    if (!meta) {
        ws->oom = true;
    }
    node_ws_message(ws, run->next_id, "assistant", "", "streaming", meta);
    node_ws_event(ws, "message.created", run->source, NULL, run->next_id, false);
    free(meta);
    node_ws_touch(ws, NODE_ST_PROCESSING);
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_NEXT;
    ws->plan.strat_arg = -1;
    node_ws_finish(node, &ws);
    return (a->flags & NODE_AF_COMMITTING) != 0;
}

void node_llm_next_committed(node_run_t *run)
{
    node_turns_t *t = run->actor->turns;
    memcpy(t->asst_id, run->next_id, 16);
    free(t->reply);
    t->reply = NULL;
    t->pos = 0;
    t->index = 0;
    node_llm_append_results(run);
    s_call(run);
}
