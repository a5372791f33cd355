/*  node_strat_claude — the claude-code strategy: one run of the Claude Code
    CLI (agent_claude) per turn, in the conversation's worktree (or its own
    directory under the work dir) with a HOME of its own under
    <work dir>/claude/<conversation>. Its text streams as message.delta; its
    tool_use / tool_result lines become tool.started / tool.completed (and
    tool messages); its permission prompts (--permission-prompt-tool stdio,
    or permission.ask from bicky-mcp-permission: node_claude_ask.c) go
    through the same durable flow as the other strategies (rules, then a
    tool_permissions row and permission.requested), and the decision, when
    it comes, is the CLI's answer. Directories and the session's files are
    node_claude_session.c; a turn left waiting by a dead node is resumed by
    node_claude_resume.c. Loop thread only. */
#define LOG_MODULE "node_claude"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* A tool line of the CLI, owed to the event log. */
typedef struct s_evt_t {
    struct s_evt_t *next; /* younger */
    bool done;            /* tool_result (else tool_use) */
    char *id;             /* tool_use id */
    char *name;           /* tool */
    json_t *input;        /* tool_use input (owned) */
    char *content;        /* tool_result text */
    bool is_error;        /* tool_result is an error */
} s_evt_t;

static void s_evt_free(s_evt_t *e)
{
    free(e->id);
    free(e->name);
    json_decref(e->input);
    free(e->content);
    free(e);
}

void node_claude_cancel(node_run_t *run)
{
    if (run->cc) {
        agent_claude_cancel(&run->cc->proc);
    }
}

void node_claude_stop(node_run_t *run)
{
    node_cc_t *cc = run->cc;
    if (!cc) {
        return;
    }
    agent_claude_cancel(&cc->proc);
    while (cc->head) {
        s_evt_t *e = cc->head;
        cc->head = e->next;
        s_evt_free(e);
    }
    json_decref(cc->names);
    json_decref(cc->grants);
    free(cc->followup);
    free(cc->task);
    free(cc->bundle);
    free(cc->ckpt);
    free(cc);
    run->cc = NULL;
}

/* ---- the CLI's callbacks ------------------------------------------------------------------- */

static void s_evt_push(node_run_t *run, s_evt_t *e)
{
    node_cc_t *cc = run->cc;
    if (cc->tail) {
        cc->tail->next = e;
    } else {
        cc->head = e;
    }
    cc->tail = e;
    node_run_pump(run);
}

static void s_on_init(void *arg, const char *session_id)
{
    node_run_t *run = arg;
    if (agent_claude_session_id_valid(session_id)) {
        snprintf(run->cc->session, sizeof run->cc->session, "%s", session_id);
    }
}

static void s_on_message_start(void *arg)
{
    node_run_t *run = arg;
    run->cc->call_start = true;
    /* The CLI sends a model call only once the steps before it are in its transcript. */
    node_claude_step(run);
}

/* The CLI runs its own agent loop, and the turn has one assistant message: the text
   of a model call after an earlier one with text (a tool call's comment, then the
   answer) is set apart by a blank line, in the deltas as in the stored content. */
static void s_on_text(void *arg, const char *text, size_t len)
{
    node_run_t *run = arg;
    node_turns_t *t = run->actor->turns;
    bool apart = run->cc->call_start && t && t->reply && t->reply[0];
    run->cc->call_start = false;
    char *joined = apart ? malloc(len + 3) : NULL;
    if (!joined) {
        node_run_delta(run, text, len);
        return;
    }
    memcpy(joined, "\n\n", 2);
    memcpy(joined + 2, text, len);
    joined[len + 2] = '\0';
    node_run_delta(run, joined, len + 2);
    free(joined);
}

static void s_on_tool_started(void *arg, const char *id, const char *name, json_t *input)
{
    node_run_t *run = arg;
    s_evt_t *e = calloc(1, sizeof *e);
    if (!e || !(e->id = strdup(id)) || !(e->name = strdup(name))) {
        if (e) {
            s_evt_free(e);
        }
        return;
    }
    e->input = json_is_object(input) ? json_deep_copy(input) : json_object();
    json_object_set_new(run->cc->names, id, json_string(name));
    s_evt_push(run, e);
}

static void s_on_tool_completed(void *arg, const char *id, const char *content, bool is_error)
{
    node_run_t *run = arg;
    const char *name = json_string_value(json_object_get(run->cc->names, id));
    s_evt_t *e = calloc(1, sizeof *e);
    if (!e || !(e->id = strdup(id)) || !(e->name = strdup(name ? name : "")) ||
        !(e->content = strdup(content ? content : ""))) {
        if (e) {
            s_evt_free(e);
        }
        return;
    }
    e->done = true;
    e->is_error = is_error;
    s_evt_push(run, e);
    node_claude_step(run);
}

/* Decides the calls the CLI asked about since the last rules read. */
static void s_decide_new(node_run_t *run, const json_t *rules)
{
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state != NODE_CALL_NEW) {
            continue;
        }
        int d = rules ? node_perm_decide(rules, c->name, c->rule_id) : 0;
        c->owed = true;
        c->state = d > 0 ? NODE_CALL_ALLOW : d < 0 ? NODE_CALL_DENY : NODE_CALL_ASK;
        if (d != 0) {
            node_claude_answer(run, i, d > 0, NULL, "Permission denied by a standing rule");
        }
    }
}

static void s_rules_loaded(node_run_t *run, const json_t *rules)
{
    if (!run->cc) {
        return;
    }
    run->cc->rules_busy = false;
    s_decide_new(run, rules); /* without the rules (NULL), a human decides */
    node_run_pump(run);
}

static void s_rules_read(node_run_t *run)
{
    if (run->cc->rules_busy) {
        return; /* the read in flight decides the new calls too */
    }
    if (node_perm_read_rules(run, s_rules_loaded) < 0) {
        s_decide_new(run, NULL);
        node_run_pump(run);
        return;
    }
    run->cc->rules_busy = true;
}

int node_claude_add_call(node_run_t *run,
                         const char *tool_use_id,
                         const char *tool_name,
                         const json_t *input,
                         const char *cli_request,
                         node_req_t *ask)
{
    node_call_t *calls = realloc(run->calls, (run->ncalls + 1) * sizeof *calls);
    if (!calls) {
        return -1;
    }
    run->calls = calls;
    node_call_t *c = &calls[run->ncalls];
    memset(c, 0, sizeof *c);
    s_uuid_t fresh;
    uint8_t raw[16];
    util_uuid_generate(raw);
    util_uuid_format(raw, fresh);
    c->id = strdup(tool_use_id && *tool_use_id ? tool_use_id : cli_request ? cli_request : fresh);
    c->name = strdup(tool_name);
    c->cli_request = cli_request ? strdup(cli_request) : NULL;
    c->args = json_is_object(input) ? json_deep_copy(input) : json_object();
    c->state = NODE_CALL_NEW;
    if (!c->id || !c->name || (cli_request && !c->cli_request) || !c->args) {
        free(c->id);
        free(c->name);
        free(c->cli_request);
        json_decref(c->args);
        return -1;
    }
    c->ask = ask;
    run->ncalls++;
    if (node_claude_granted(run, run->ncalls - 1)) {
        return (int)run->ncalls - 1;
    }
    s_rules_read(run);
    return (int)run->ncalls - 1;
}

static void s_on_permission(void *arg, const agent_claude_perm_t *req)
{
    node_run_t *run = arg;
    if (node_claude_add_call(run, req->tool_use_id, req->tool_name, req->input, req->request_id,
                             NULL) < 0) {
        agent_claude_permission_reply(run->cc->proc, req->request_id, false, NULL, "out of memory");
    }
}

static void s_on_done(void *arg, const agent_claude_result_t *res)
{
    node_run_t *run = arg;
    node_cc_t *cc = run->cc;
    cc->proc = NULL;
    run->step_usage.input_tokens = run->usage.input_tokens = res->input_tokens;
    run->step_usage.output_tokens = run->usage.output_tokens = res->output_tokens;
    run->model_calls = (int)res->num_turns;
    snprintf(run->stop_reason, sizeof run->stop_reason, "%s",
             res->stop_reason[0] ? res->stop_reason : res->subtype);
    if (agent_claude_session_id_valid(res->session_id)) {
        snprintf(cc->session, sizeof cc->session, "%s", res->session_id);
    }
    node_turns_t *t = run->actor->turns;
    if (!(t->reply && *t->reply) && res->text && *res->text) {
        node_run_delta(run, res->text, strlen(res->text));
    }
    if (res->is_error) {
        const char *why = json_string_value(json_array_get(res->errors, 0));
        char reason[400];
        snprintf(reason, sizeof reason, "claude: %s%s%s", res->subtype, why ? ": " : "",
                 why ? why : "");
        node_run_fail(run, reason);
        return;
    }
    if (!cc->session[0]) {
        run->phase = NODE_RUN_ENDING;
        t->end_ready = NODE_END_COMPLETED;
        node_run_pump(run);
        return;
    }
    node_claude_export(run);
}

static void s_on_error(void *arg, const char *reason)
{
    node_run_t *run = arg;
    run->cc->proc = NULL;
    char why[AGENT_CLAUDE_REASON_MAX + 16];
    snprintf(why, sizeof why, "claude: %s", reason);
    node_run_fail(run, why);
}

/* ---- starting ------------------------------------------------------------------------------ */

void node_claude_start(node_run_t *run)
{
    static const agent_claude_callbacks_t cb = {.on_init = s_on_init,
                                                .on_text = s_on_text,
                                                .on_tool_started = s_on_tool_started,
                                                .on_tool_completed = s_on_tool_completed,
                                                .on_permission = s_on_permission,
                                                .on_done = s_on_done,
                                                .on_error = s_on_error,
                                                .on_message_start = s_on_message_start};
    const cfg_strategy_t *s = run->strategy;
    node_cc_t *cc = run->cc;
    const char *tools[CFG_FILE_MAX_TOOLS + 1];
    for (size_t i = 0; i < s->tools_count && i < CFG_FILE_MAX_TOOLS; i++) {
        tools[i] = s->tools[i];
    }
    tools[s->tools_count < CFG_FILE_MAX_TOOLS ? s->tools_count : CFG_FILE_MAX_TOOLS] = NULL;
    s_uuid_t fresh;
    if (!cc->resume) {
        uint8_t raw[16];
        util_uuid_generate(raw);
        util_uuid_format(raw, fresh);
        snprintf(cc->session, sizeof cc->session, "%s", fresh);
    }
    agent_claude_params_t p = {.command = s->command ? s->command : "claude",
                               .cwd = run->root,
                               .home = cc->home,
                               .prompt = run->content ? run->content : "",
                               .model = s->model,
                               .system_prompt = s->system_prompt,
                               .tools = s->tools_count ? tools : NULL,
                               .max_turns = s->max_turns,
                               .timeout_s = s->timeout_s,
                               .resume_session_id = cc->resume ? cc->session : NULL,
                               .session_id = cc->resume ? NULL : cc->session,
                               .base_url = s->base_url,
                               .api_key = cfg_strategy_api_key(s),
                               .guard = &run->agents->guard,
                               .sandbox = &run->agents->sandbox,
                               .sandbox_off = !s->sandbox,
                               .rlimits = {.cpu_s = s->sandbox_cpu_s,
                                           .memory_mb = s->sandbox_memory_mb,
                                           .processes = s->sandbox_processes,
                                           .file_mb = s->sandbox_file_mb,
                                           .open_files = s->sandbox_open_files,
                                           .tmp_mb = s->sandbox_tmp_mb,
                                           .disk_mb = s->sandbox_disk_mb}};
    s_uuid_t conv;
    util_uuid_format(run->actor->conv_id, conv);
    if (s->permission_channel == CFG_PERM_MCP) {
        p.permission_channel = AGENT_CLAUDE_PERM_MCP;
        p.mcp = (agent_claude_mcp_t){.command = run->agents->mcp_bin,
                                     .endpoint = node_run_node(run)->local_ep[0]
                                                     ? node_run_node(run)->local_ep
                                                     : node_run_node(run)->router_local,
                                     .conversation_id = conv,
                                     .timeout_s = s->timeout_s};
    }
    char err[512] = "";
    cc->proc = agent_claude_start(run->agents->claude, &p, &cb, run, err, sizeof err);
    if (!cc->proc) {
        char why[560];
        snprintf(why, sizeof why, "claude: %s", err[0] ? err : "the CLI could not start");
        node_run_fail(run, why);
    }
}

void node_claude_answer(node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg)
{
    node_call_t *c = i < run->ncalls ? &run->calls[i] : NULL;
    if (c && node_claude_decided_offline(run, i, allow, input, msg)) {
        return;
    }
    if (c && c->ask && run->cc && run->cc->proc) {
        node_claude_ask_reply(run, c, allow, input, msg);
        return;
    }
    if (!run->cc || !run->cc->proc || !c || !c->cli_request) {
        return;
    }
    if (agent_claude_permission_reply(run->cc->proc, c->cli_request, allow,
                                      json_is_object(input) ? input : NULL, msg) < 0) {
        LOG_I("permission answer not delivered (the CLI moved on) tool=%s", c->name);
    }
}

/* ---- writes ---------------------------------------------------------------------------------- */

static char *s_text(json_t *j)
{
    char *text = j ? node_json_text(j) : NULL;
    json_decref(j);
    return text;
}

/* tool.started, or the tool message and tool.completed, of a CLI line. */
static void s_add_evt(node_ws_t *ws, node_run_t *run, const s_evt_t *e)
{
    char *action = NULL;
    if (!e->done) {
        action = s_text(json_pack("{s:s, s:s, s:O}", "tool_call_id", e->id, "tool_name", e->name,
                                  "arguments", e->input));
        node_ws_event(ws, "tool.started", run->source, action, NULL, false);
        ws->oom |= !action;
        free(action);
        return;
    }
    uint8_t mid[16];
    s_uuid_t m, uid;
    util_uuid_generate(mid);
    util_uuid_format(mid, m);
    util_uuid_format(run->actor->turns->user_id, uid);
    char *meta = s_text(json_pack("{s:s, s:s, s:b, s:s}", "tool_call_id", e->id, "tool_name",
                                  e->name, "is_error", e->is_error, "user_message_id", uid));
    node_ws_message(ws, mid, "tool", e->content, "completed", meta);
    action = s_text(json_pack("{s:s, s:s, s:b, s:s}", "tool_call_id", e->id, "tool_name", e->name,
                              "is_error", e->is_error, "message_id", m));
    node_ws_event(ws, "tool.completed", run->source, action, NULL, false);
    ws->oom |= !meta || !action;
    free(meta);
    free(action);
}

bool node_claude_pending_write(node_t *node, node_run_t *run)
{
    node_cc_t *cc = run->cc;
    bool owed = cc && (cc->head || cc->ckpt);
    for (size_t i = 0; cc && i < run->ncalls && !owed; i++) {
        owed = run->calls[i].owed;
    }
    if (!owed) {
        return false;
    }
    node_ws_t *ws = node_ws_new(run->actor, NULL);
    if (!ws) {
        return false;
    }
    bool waiting = false;
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->owed && c->state == NODE_CALL_ASK) {
            node_perm_add_request(ws, run, c);
        } else if (c->owed) {
            node_perm_add_rule_event(ws, run, c);
            c->state = NODE_CALL_DONE;
        }
        c->owed = false;
        waiting |= c->state == NODE_CALL_ASK || c->state == NODE_CALL_PENDING;
    }
    while (cc->head) {
        s_evt_t *e = cc->head;
        cc->head = e->next;
        s_add_evt(ws, run, e);
        s_evt_free(e);
    }
    cc->tail = NULL;
    if (cc->session[0]) {
        node_claude_add_session(ws, run); /* a restart resumes this session */
    }
    node_claude_add_checkpoint(ws, run); /* a move resumes from this step */
    node_ws_touch(ws, waiting ? NODE_ST_WAITING : NODE_ST_PROCESSING);
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_CLAUDE;
    ws->plan.strat_arg = -1;
    node_ws_finish(node, &ws);
    return (run->actor->flags & NODE_AF_COMMITTING) != 0;
}

void node_claude_committed(node_run_t *run)
{
    if (run->cc && run->cc->ckpt_sent) {
        run->cc->ckpt_sent = run->cc->ckpt_busy = false;
    }
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state == NODE_CALL_ASK && !c->owed) {
            c->state = NODE_CALL_PENDING;
        }
    }
}
