/*  node_perm — the permission flow, the same for every strategy. Each tool
    call of a model call is decided by the standing rules (conversation
    rules before team rules; the most specific pattern wins; deny on a tie)
    or becomes a durable request: a tool_permissions row and a
    permission.requested event in the write that closes the model call, the
    conversation waiting_for_permission while any request is pending. A
    decision (the API, an expiry, or the turn ending) updates the row in the
    conversation's actor with a permission.decided event, and then the call
    runs (tool.started) or its refusal becomes the tool's result. Loop thread
    only; the matching functions are pure. */
#define LOG_MODULE "node_perm"
#include "node/perm/node_perm.h"
#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* ---- rules (pure) ------------------------------------------------------------------------ */

bool node_perm_pattern_valid(const char *pattern)
{
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 0 || n > 200) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)pattern[i];
        bool star = ch == '*' && i == n - 1;
        if (!star && !isalnum(ch) && !strchr("_.:-", ch)) {
            return false;
        }
    }
    return true;
}

int node_perm_match(const char *pattern, const char *tool)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*') {
        return strncmp(pattern, tool, n - 1) == 0 ? (int)n : -1;
    }
    return strcmp(pattern, tool) == 0 ? 10000 : -1;
}

int node_perm_decide(const json_t *rules, const char *name, char rule_id[40])
{
    int best = -1, decision = 0;
    size_t i;
    const json_t *r;
    rule_id[0] = '\0';
    json_array_foreach(rules, i, r)
    {
        const char *pattern = json_string_value(json_object_get(r, "tool_pattern"));
        const char *scope = json_string_value(json_object_get(r, "scope"));
        const char *dec = json_string_value(json_object_get(r, "decision"));
        const char *id = json_string_value(json_object_get(r, "id"));
        int spec = pattern && dec && id ? node_perm_match(pattern, name) : -1;
        if (spec < 0) {
            continue;
        }
        /* Conversation rules outrank every team rule. */
        spec += scope && strcmp(scope, "conversation") == 0 ? 100000 : 0;
        int d = strcmp(dec, "deny") == 0 ? -1 : 1;
        if (spec > best || (spec == best && d < 0)) {
            best = spec;
            decision = d;
            snprintf(rule_id, 40, "%s", id);
        }
    }
    return decision;
}

/* ---- deciding a step's calls -------------------------------------------------------------- */

static void s_apply_rules(node_run_t *run, const json_t *rules)
{
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (!agent_tool_known(c->name) || !cfg_strategy_has_tool(run->strategy, c->name)) {
            c->state = NODE_CALL_DENY;
            node_tools_set_result(c, "Error: this tool is not available", true);
            continue;
        }
        if (c->invalid) {
            c->state = NODE_CALL_DENY;
            node_tools_set_result(c, "Error: the arguments contain a NUL character", true);
            continue;
        }
        int d = node_perm_decide(rules, c->name, c->rule_id);
        c->state = d > 0 ? NODE_CALL_ALLOW : d < 0 ? NODE_CALL_DENY : NODE_CALL_ASK;
        if (d < 0) {
            node_tools_set_result(c, "Permission denied by a standing rule", true);
        }
    }
}

static void s_rules_loaded(node_run_t *run, const json_t *rules)
{
    if (run->phase != NODE_RUN_RULES) {
        return;
    }
    if (!rules) {
        node_run_fail(run, "cannot read the permission rules");
        return;
    }
    s_apply_rules(run, rules);
    run->phase = NODE_RUN_STEP;
    node_run_pump(run);
}

void node_perm_load_rules(node_run_t *run)
{
    if (node_perm_read_rules(run, s_rules_loaded) < 0) {
        node_run_fail(run, "cannot read the permission rules");
    }
}

/* ---- the step write ----------------------------------------------------------------------- */

static char *s_text(json_t *j)
{
    char *text = j ? node_json_text(j) : NULL;
    json_decref(j);
    return text;
}

/* Finishes the model call's assistant message (text, usage, tool calls). */
static void s_add_finish(node_ws_t *ws, node_run_t *run)
{
    node_turns_t *t = run->actor->turns;
    s_uuid_t aid, conv, team, uid;
    util_uuid_format(t->asst_id, aid);
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    util_uuid_format(t->user_id, uid);
    json_t *calls = json_array();
    for (size_t i = 0; i < run->ncalls; i++) {
        json_array_append_new(calls,
                              json_pack("{s:s, s:s, s:O}", "id", run->calls[i].id, "name",
                                        run->calls[i].name, "arguments", run->calls[i].args));
    }
    char *meta =
        s_text(json_pack("{s:s?, s:s, s:s, s:{s:I, s:I}, s:s, s:o}", "model", run->strategy->model,
                         "strategy", run->strategy_name, "user_message_id", uid, "usage",
                         "input_tokens", (json_int_t)run->step_usage.input_tokens, "output_tokens",
                         (json_int_t)run->step_usage.output_tokens, "stop_reason", run->stop_reason,
                         "tool_calls", calls));
    const char *params[] = {aid, conv, t->reply ? t->reply : "", "completed", meta, team};
    if (!meta) {
        ws->oom = true;
    } else {
        node_ws_add(ws, NODE_Q_MSG_FINISH, NODE_SK_PLAIN, 6, params);
    }
    free(meta);
    node_ws_event(ws, "message.completed", run->source, NULL, t->asst_id, false);
}

/* A permission request row and its permission.requested event. */
void node_perm_add_request(node_ws_t *ws, node_run_t *run, node_call_t *c)
{
    node_actor_t *a = run->actor;
    s_uuid_t pid, team, conv, aid;
    char expires[32];
    util_uuid_generate(c->perm_id);
    c->has_perm = true;
    util_uuid_format(c->perm_id, pid);
    util_uuid_format(a->team_id, team);
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->turns->asst_id, aid);
    long timeout = run->strategy->permission_timeout_s;
    c->expires_ms = timeout > 0 ? util_wall_ms() + timeout * 1000 : 0;
    util_time_format(c->expires_ms, expires);
    char *args = node_json_text(c->args);
    char *desc = agent_tool_describe(c->name, c->args);
    const char *params[] = {pid,
                            team,
                            conv,
                            aid,
                            c->name,
                            c->id,
                            args,
                            desc ? desc : c->name,
                            timeout > 0 ? expires : NULL};
    if (!args) {
        ws->oom = true;
    } else {
        node_ws_add(ws, NODE_Q_PERM_INSERT, NODE_SK_PLAIN, 9, params);
    }
    free(args);
    free(desc);
    node_ws_event_perm(ws, "permission.requested", run->source, NULL, c->perm_id);
}

/* permission.decided for a call a rule decided (no request row). */
void node_perm_add_rule_event(node_ws_t *ws, node_run_t *run, const node_call_t *c)
{
    char *action = s_text(json_pack("{s:n, s:s, s:s, s:s, s:s, s:s}", "request", "tool_call_id",
                                    c->id, "tool_name", c->name, "status",
                                    c->state == NODE_CALL_ALLOW ? "approved" : "denied",
                                    "decided_by", "rule", "rule_id", c->rule_id));
    if (!action) {
        ws->oom = true;
    }
    node_ws_event(ws, "permission.decided", run->source, action, NULL, false);
    free(action);
}

bool node_perm_step_write(node_t *node, node_run_t *run)
{
    node_actor_t *a = run->actor;
    node_ws_t *ws = node_ws_new(a, NULL);
    if (!ws) {
        return false;
    }
    s_add_finish(ws, run);
    bool asked = false;
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state == NODE_CALL_ASK) {
            node_perm_add_request(ws, run, c);
            asked = true;
        } else if (c->state == NODE_CALL_ALLOW) {
            node_perm_add_rule_event(ws, run, c);
            node_tools_add_started(ws, run, i);
        } else if (c->state == NODE_CALL_DENY) {
            if (c->rule_id[0]) {
                node_perm_add_rule_event(ws, run, c);
            }
            node_tools_add_result(ws, run, i);
        }
    }
    node_ws_touch(ws, asked ? NODE_ST_WAITING : NODE_ST_PROCESSING);
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_STEP;
    ws->plan.strat_arg = -1;
    node_ws_finish(node, &ws);
    return (a->flags & NODE_AF_COMMITTING) != 0;
}

void node_perm_step_committed(node_run_t *run)
{
    run->phase = NODE_RUN_TOOLS;
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state == NODE_CALL_ASK) {
            c->state = NODE_CALL_PENDING;
        } else if (c->state == NODE_CALL_DENY) {
            c->state = NODE_CALL_DONE;
        } else if (c->state == NODE_CALL_ALLOW) {
            c->state = NODE_CALL_RUNNING;
            node_tools_run(run, i);
        }
    }
}

int node_perm_call_of(const node_run_t *run, const uint8_t perm_id[16])
{
    for (size_t i = 0; run && i < run->ncalls; i++) {
        const node_call_t *c = &run->calls[i];
        if (c->has_perm && c->state == NODE_CALL_PENDING && memcmp(c->perm_id, perm_id, 16) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- decisions ----------------------------------------------------------------------------- */

/* The row update of a decision (returns the request JSON in column 0) and its
   permission.decided event. Returns the update's statement index. */
static int s_add_decided(node_ws_t *ws,
                         const uint8_t perm_id[16],
                         const char *status,
                         const char *reason,
                         const char *updated_input,
                         const char *action)
{
    node_actor_t *a = ws->actor;
    s_uuid_t pid, team, conv;
    util_uuid_format(perm_id, pid);
    util_uuid_format(a->team_id, team);
    util_uuid_format(a->conv_id, conv);
    const char *params[] = {pid, team, conv, status, reason, updated_input};
    int i = node_ws_add(ws, NODE_Q_PERM_DECIDE, NODE_SK_PLAIN, 6, params);
    const node_run_t *run = a->turns ? a->turns->run : NULL;
    char src[112];
    if (run) {
        snprintf(src, sizeof src, "%s", run->source);
    } else {
        snprintf(src, sizeof src, "{\"kind\":\"system\",\"id\":\"permissions\"}");
    }
    node_ws_event_perm(ws, "permission.decided", src, action, perm_id);
    return i;
}

/* Pending calls other than skip. */
static int s_pending_except(const node_run_t *run, int skip)
{
    int n = 0;
    for (size_t i = 0; run && i < run->ncalls; i++) {
        n += run->calls[i].state == NODE_CALL_PENDING && (int)i != skip;
    }
    return n;
}

/* The remembered rule of an approval. */
static void s_add_remember(node_ws_t *ws, const node_decision_t *d)
{
    s_uuid_t rid, team, conv;
    uint8_t raw[16];
    util_uuid_generate(raw);
    util_uuid_format(raw, rid);
    util_uuid_format(ws->actor->team_id, team);
    util_uuid_format(ws->actor->conv_id, conv);
    bool team_scope = strcmp(d->remember, "team") == 0;
    const char *params[] = {rid, team, team_scope ? "team" : "conversation",
                            team_scope ? NULL : conv, d->tool_name};
    node_ws_add(ws, NODE_Q_RULE_REMEMBER, NODE_SK_PLAIN, 5, params);
}

void node_perm_decide_write(node_t *node,
                            node_actor_t *a,
                            node_req_t *req,
                            const node_decision_t *d)
{
    node_run_t *run = a->turns ? a->turns->run : NULL;
    int idx = node_perm_call_of(run, d->perm_id);
    node_ws_t *ws = node_ws_new(a, req);
    if (!ws) {
        node_reply_busy(node, &req, "out of memory");
        return;
    }
    const char *reason = d->approve ? NULL : d->reason ? d->reason : "denied by the user";
    char *updated = d->approve && d->updated_input ? node_json_text(d->updated_input) : NULL;
    char *action = s_text(json_pack("{s:s, s:s?}", "decided_by", "user", "remember",
                                    d->approve ? d->remember : NULL));
    ws->msg_stmt =
        s_add_decided(ws, d->perm_id, d->approve ? "approved" : "denied", reason, updated, action);
    if (d->approve && d->remember) {
        s_add_remember(ws, d);
    }
    if (idx >= 0 && !run->cc) {
        node_call_t *c = &run->calls[idx];
        if (d->approve) {
            if (d->updated_input) {
                json_decref(c->args);
                c->args = json_deep_copy(d->updated_input);
            }
            node_tools_add_started(ws, run, (size_t)idx);
        } else {
            char text[1200];
            snprintf(text, sizeof text, "Permission denied: %s", reason);
            node_tools_set_result(c, text, true);
            node_tools_add_result(ws, run, (size_t)idx);
        }
    }
    if (!action || (d->approve && d->updated_input && !updated)) {
        ws->oom = true;
    }
    free(updated);
    free(action);
    bool live = run && (run->phase == NODE_RUN_TOOLS || run->phase == NODE_RUN_CLAUDE);
    int status = live ? (s_pending_except(run, idx) ? NODE_ST_WAITING : NODE_ST_PROCESSING) : -1;
    node_ws_touch(ws, status);
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_DECIDE;
    ws->plan.strat_arg = idx >= 0 ? idx * 2 + (d->approve ? 1 : 0) : -1;
    node_ws_finish(node, &ws);
}

void node_perm_decide_committed(node_t *node, node_actor_t *a, node_plan_t *plan)
{
    node_ws_t *ws = plan->ws;
    const char *body = ws ? node_ws_value(ws, ws->msg_stmt, 0) : NULL;
    if (ws && ws->req && body) {
        node_reply_pg(node, &ws->req, 200, body);
    } else if (ws && ws->req) {
        node_reply(node, &ws->req, 503, "{}", 0);
    }
    node_run_t *run = a->turns ? a->turns->run : NULL;
    int idx = plan->strat_arg >= 0 ? plan->strat_arg / 2 : -1;
    if (!run || idx < 0 || (size_t)idx >= run->ncalls ||
        run->calls[idx].state != NODE_CALL_PENDING) {
        return;
    }
    if (run->cc) {
        /* claude-code: the CLI runs (or refuses) the tool itself. */
        json_t *req = body ? json_loads(body, 0, NULL) : NULL;
        const char *reason = json_string_value(json_object_get(req, "reason"));
        char msg[1100];
        snprintf(msg, sizeof msg, "Permission denied: %s", reason ? reason : "denied");
        run->impl->decided(run, (size_t)idx, plan->strat_arg % 2,
                           json_object_get(req, "updated_input"), msg);
        json_decref(req);
        run->calls[idx].state = NODE_CALL_DONE;
        return;
    }
    if (plan->strat_arg % 2) {
        run->calls[idx].state = NODE_CALL_RUNNING;
        node_tools_run(run, (size_t)idx);
    } else {
        run->calls[idx].state = NODE_CALL_DONE;
    }
    node_tools_all_done(run);
}

/* ---- expiry and the turn's end -------------------------------------------------------------- */

void node_perm_tick(node_run_t *run, int64_t now_wall_ms)
{
    bool due = false;
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state == NODE_CALL_PENDING && c->expires_ms > 0 && c->expires_ms <= now_wall_ms &&
            !c->expired) {
            c->expired = true;
            due = true;
        }
    }
    if (due) {
        node_run_pump(run);
    }
}

bool node_perm_expire_write(node_t *node, node_run_t *run)
{
    size_t i = 0;
    while (i < run->ncalls &&
           !(run->calls[i].expired && run->calls[i].state == NODE_CALL_PENDING)) {
        i++;
    }
    if (i == run->ncalls) {
        return false;
    }
    node_ws_t *ws = node_ws_new(run->actor, NULL);
    if (!ws) {
        return false;
    }
    node_call_t *c = &run->calls[i];
    s_add_decided(ws, c->perm_id, "expired", "expired", NULL, "{\"decided_by\":\"expiry\"}");
    node_tools_set_result(c, "Permission denied: the request expired", true);
    if (!run->cc) {
        node_tools_add_result(ws, run, i);
    }
    node_ws_touch(ws, s_pending_except(run, (int)i) ? NODE_ST_WAITING : NODE_ST_PROCESSING);
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_EXPIRE;
    ws->plan.strat_arg = (int32_t)i;
    node_ws_finish(node, &ws);
    return (run->actor->flags & NODE_AF_COMMITTING) != 0;
}

int node_perm_add_end(node_ws_t *ws, node_run_t *run, node_end_t how)
{
    const char *reason = how == NODE_END_CANCELLED ? "turn cancelled" : "turn ended";
    for (size_t i = 0; i < run->ncalls; i++) {
        node_call_t *c = &run->calls[i];
        if (c->state == NODE_CALL_PENDING) {
            s_add_decided(ws, c->perm_id, "denied", reason, NULL, "{\"decided_by\":\"system\"}");
        }
    }
    return ws->oom ? -1 : 0;
}

/* ---- statements ------------------------------------------------------------------------------ */

#define EVT_COLS     "INSERT INTO events AS e (team_id, conversation_id, seq, type, source, action) "
#define TS_CURSOR(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 id $2 team $3 conv $4 message $5 tool $6 tool_use_id $7 args $8 description
       $9 expires_at */
    {NODE_Q_PERM_INSERT, 9,
     "INSERT INTO tool_permissions (id, team_id, conversation_id, message_id, tool_name, "
     "tool_use_id, arguments, description, expires_at) VALUES ($1::uuid, $2::uuid, $3::uuid, "
     "$4::uuid, $5::text, $6::text, $7::jsonb, $8::text, $9::timestamptz)"},
    /* Decides a pending request; fails (division by zero) when it is not pending, so a
       decision is never written twice. $4 status $5 reason $6 updated_input */
    {NODE_Q_PERM_DECIDE, 6,
     "WITH u AS (UPDATE tool_permissions AS p SET status = $4::text, reason = $5::text, "
     "updated_input = $6::jsonb, decided_at = now() WHERE p.id = $1::uuid AND p.team_id = "
     "$2::uuid AND p.conversation_id = $3::uuid AND p.status = 'pending' RETURNING p.*) SELECT "
     "(SELECT " NODE_PERM_JSON("u") "::text FROM u), 1 / (SELECT count(*)::int FROM u)"},
    /* $1 team $2 conv $3 seq $4 type $5 source $6 action $7 request embedded as
       action.request */
    {NODE_Q_EVT_PERM, 7,
     EVT_COLS "SELECT $1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, coalesce($6::jsonb, "
              "'{}'::jsonb) || jsonb_build_object('request', " NODE_PERM_JSON(
                  "p") ") FROM tool_permissions p WHERE p.id = $7::uuid AND p.team_id = $1::uuid "
                       "RETURNING e.id, " NODE_EVT_JSON("e") "::text"},
    /* $1 team $2 conv */
    {NODE_Q_RULES, 2,
     "SELECT coalesce(json_agg(json_build_object('id', r.id, 'scope', r.scope, 'tool_pattern', "
     "r.tool_pattern, 'decision', r.decision) ORDER BY r.created_at), '[]'::json)::text FROM "
     "(SELECT * FROM permission_rules WHERE team_id = $1::uuid AND (scope = 'team' OR "
     "conversation_id = $2::uuid) ORDER BY created_at LIMIT 1000) r"},
    /* $1 id $2 team $3 scope $4 conv $5 pattern: an allow rule unless the same exists */
    {NODE_Q_RULE_REMEMBER, 5,
     "INSERT INTO permission_rules (id, team_id, scope, conversation_id, tool_pattern, decision) "
     "SELECT $1::uuid, $2::uuid, $3::text, $4::uuid, $5::text, 'allow' WHERE NOT EXISTS (SELECT "
     "1 FROM permission_rules WHERE team_id = $2::uuid AND scope = $3::text AND conversation_id "
     "IS NOT DISTINCT FROM $4::uuid AND tool_pattern = $5::text AND decision = 'allow')"},
    /* $1 conv $2 team $3 rows $4 bytes: the newest messages within both bounds */
    {NODE_Q_HISTORY, 4,
     "SELECT coalesce(json_agg(json_build_object('id', s.id, 'role', s.role, 'content', "
     "s.content, 'status', s.status, 'metadata', s.metadata) ORDER BY s.seq), '[]'::json)::text "
     "FROM (SELECT m.id, m.role, m.content, m.status, m.metadata, m.seq, "
     "sum(octet_length(m.content)) OVER (ORDER BY m.seq DESC) AS acc FROM messages m WHERE "
     "m.conversation_id = $1::uuid AND m.team_id = $2::uuid ORDER BY m.seq DESC LIMIT $3::int) s "
     "WHERE s.acc <= $4::bigint"},
    /* $1 id $2 team $3 conv: a request as the decision sees it */
    {NODE_Q_PERM_ROW, 3,
     "SELECT " NODE_PERM_JSON("p") "::text, p.status, p.reason, p.updated_input::text, "
                                   "p.tool_name FROM tool_permissions p WHERE p.id = $1::uuid AND "
                                   "p.team_id = $2::uuid AND p.conversation_id = $3::uuid"},
    /* $1 id $2 team */
    {NODE_Q_PERM_GET, 2,
     "SELECT " NODE_PERM_JSON("p") "::text, p.conversation_id FROM tool_permissions p WHERE p.id "
                                   "= $1::uuid AND p.team_id = $2::uuid"},
    /* $1 team $2 status $3 conv $4 cursor ts $5 cursor id $6 limit */
    {NODE_Q_PERM_LIST, 6,
     "SELECT " NODE_PERM_JSON("p") "::text, " TS_CURSOR(
         "p.created_at") " || '|' || p.id FROM tool_permissions p WHERE p.team_id = $1::uuid AND "
                         "($2::text IS NULL OR p.status = $2::text) AND ($3::uuid IS NULL OR "
                         "p.conversation_id = $3::uuid) AND ($4::timestamptz IS NULL OR "
                         "(p.created_at, p.id) < ($4::timestamptz, $5::uuid)) ORDER BY "
                         "p.created_at DESC, p.id DESC LIMIT $6::int"},
    /* Recovery: the last assistant message and its requests. $1 conv $2 team */
    {NODE_Q_RECOVER_MSG, 2,
     "SELECT m.id, m.content, m.metadata::text FROM messages m WHERE m.conversation_id = "
     "$1::uuid AND m.team_id = $2::uuid AND m.role = 'assistant' ORDER BY m.seq DESC LIMIT 1"},
    {NODE_Q_PERM_TURN, 2,
     "SELECT p.id, p.status, p.tool_use_id, (extract(epoch FROM p.expires_at) * 1000)::bigint, "
     "p.tool_name, p.arguments::text FROM tool_permissions p WHERE p.conversation_id = $1::uuid "
     "AND p.team_id = $2::uuid AND "
     "p.message_id = (SELECT m.id FROM messages m WHERE m.conversation_id = $1::uuid AND "
     "m.team_id = $2::uuid AND m.role = 'assistant' ORDER BY m.seq DESC LIMIT 1)"},
    /* $1 conv $2 team $3 limit: user messages waiting for their turn */
    {NODE_Q_PENDING_MSG, 3,
     "SELECT m.id, m.content FROM messages m WHERE m.conversation_id = $1::uuid AND m.team_id = "
     "$2::uuid AND m.role = 'user' AND m.status = 'pending' ORDER BY m.seq LIMIT $3::int"},
    /* Conversations with requests past their expiry. */
    {NODE_Q_PERM_SWEEP, 0,
     "SELECT DISTINCT conversation_id, team_id FROM tool_permissions WHERE status = 'pending' "
     "AND expires_at < now() LIMIT 200"},
};

int node_perm_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
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
