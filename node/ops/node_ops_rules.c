/*  node_ops_rules — standing permission rules written from the API, and the
    revert of what they record. rule.create and rule.delete each change the
    rule and append its team event (permission_rule.created /
    permission_rule.deleted: conversation_id and seq null, action.rule the
    whole rule, reversible) in one statement, then publish the event on the
    team's stream. event.revert_team undoes such an event in one statement:
    the row of the event is locked, the rule is deleted (a creation) or
    re-created with its id (a deletion), event.reverted is appended and the
    original's reverted_by set; a refusal writes nothing. Team-wide (any
    node); every statement is scoped by team_id. Loop thread only. */
#define LOG_MODULE "node_rules"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_args.h"
#include "node/ops/node_ops.h"
#include "node/perm/node_perm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

#define Q_RULE_CREATE "node_rule_create"
#define Q_RULE_DELETE "node_rule_delete"
#define Q_TEAM_REVERT "node_team_revert"

/* The team event of a rule change, from CTE x (the rule's row): $2 team, src source. */
#define S_RULE_EVENT(type, x, src)                                                                 \
    "e AS (INSERT INTO events AS e (team_id, conversation_id, seq, type, source, action, "         \
    "reversible) SELECT $2::uuid, NULL, NULL, '" type "', " src "::jsonb, jsonb_build_object("     \
    "'rule', " NODE_RULE_JSON(x) "), true FROM " x                                                 \
                                 " RETURNING e.id, " NODE_EVT_JSON("e") "::text AS j)"

/* $1 event $2 team $3 source. The event's row is locked (a concurrent revert waits, then
   sees reverted_by set); ok is it when it can be reverted; del / ins undo a creation /
   deletion (nothing when the rule is gone / there again); rv and mk record the revert
   only when one of them changed a row. */
#define S_OLD "(ok.action->'rule'->>"
#define S_TEAM_REVERT                                                                              \
    "WITH ev AS (SELECT id, type, action, reversible, reverted_by IS NOT NULL AS done FROM "       \
    "events WHERE id = $1::bigint AND team_id = $2::uuid AND conversation_id IS NULL FOR "         \
    "UPDATE), ok AS (SELECT * FROM ev WHERE reversible AND NOT done AND type IN "                  \
    "('permission_rule.created', 'permission_rule.deleted')), "                                    \
    "del AS (DELETE FROM permission_rules p USING ok WHERE ok.type = "                             \
    "'permission_rule.created' AND p.id = " S_OLD "'id')::uuid AND p.team_id = $2::uuid "          \
    "RETURNING p.id), "                                                                            \
    "ins AS (INSERT INTO permission_rules (id, team_id, scope, conversation_id, tool_pattern, "    \
    "decision, created_at) SELECT " S_OLD "'id')::uuid, $2::uuid, " S_OLD "'scope'), " S_OLD       \
    "'conversation_id')::uuid, " S_OLD "'tool_pattern'), " S_OLD "'decision'), " S_OLD             \
    "'created_at')::timestamptz FROM ok WHERE ok.type = 'permission_rule.deleted' AND (" S_OLD     \
    "'conversation_id') IS NULL OR EXISTS (SELECT 1 FROM conversations c WHERE c.id = " S_OLD      \
    "'conversation_id')::uuid AND c.team_id = $2::uuid)) ON CONFLICT (id) DO NOTHING RETURNING "   \
    "id), "                                                                                        \
    "rv AS (INSERT INTO events AS e (team_id, conversation_id, seq, type, source, action) "        \
    "SELECT $2::uuid, NULL, NULL, 'event.reverted', $3::jsonb, jsonb_build_object('reverts', "     \
    "ok.id, 'type', ok.type, 'changes', jsonb_build_object('rule', CASE WHEN ok.type = "           \
    "'permission_rule.deleted' THEN ok.action->'rule' END)) FROM ok WHERE EXISTS (SELECT 1 FROM "  \
    "del) OR EXISTS (SELECT 1 FROM ins) RETURNING e.id, " NODE_EVT_JSON(                           \
        "e") "::text AS j), "                                                                      \
             "mk AS (UPDATE events SET reverted_by = rv.id FROM rv WHERE events.id = $1::bigint) " \
             "SELECT ev.type, ev.reversible, ev.done, rv.id, rv.j FROM ev LEFT JOIN rv ON true"

#define S_RULE_CREATE                                                                              \
    "WITH r AS (INSERT INTO permission_rules (id, team_id, scope, conversation_id, "               \
    "tool_pattern, decision) SELECT $1::uuid, $2::uuid, $3::text, $4::uuid, $5::text, $6::text "   \
    "WHERE $4::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations WHERE id = $4::uuid AND "       \
    "team_id = $2::uuid) RETURNING *), " S_RULE_EVENT(                                             \
        "permission_rule.created", "r",                                                            \
        "$7") " SELECT " NODE_RULE_JSON("r") "::text, e.id, e.j FROM r, e"

#define S_RULE_DELETE                                                                              \
    "WITH d AS (DELETE FROM permission_rules WHERE id = $1::uuid AND team_id = $2::uuid "          \
    "RETURNING *), " S_RULE_EVENT("permission_rule.deleted", "d", "$3") " SELECT e.id, e.j FROM e"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 id $2 team $3 scope $4 conv $5 pattern $6 decision $7 source: the rule and its
       event; a conversation rule needs the team's conversation (no row otherwise: 404). */
    {Q_RULE_CREATE, 7, S_RULE_CREATE},
    /* $1 id $2 team $3 source: the event (no row: 404). */
    {Q_RULE_DELETE, 3, S_RULE_DELETE},
    /* The event (type, reversible, reverted) and, when reverted now, event.reverted. */
    {Q_TEAM_REVERT, 3, S_TEAM_REVERT},
};

int node_ops_rules_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- one statement, its event published --------------------------------------------------- */

typedef enum { S_CREATE, S_DELETE, S_REVERT } s_kind_t;

typedef struct {
    node_t *node;    /* borrowed */
    node_req_t *req; /* answered at the end */
    s_kind_t kind;   /* which statement */
    uint8_t team[16];
    bool row;        /* a row came back */
    char *rule;      /* create: the rule's JSON */
    char *type;      /* revert: the event's type */
    bool reversible; /* revert: its flag */
    bool done;       /* revert: already reverted */
    uint64_t evt_id; /* the event appended (0: none) */
    char *evt;       /* its JSON */
} s_op_t;

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_on_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_op_t *o = arg;
    if (status != DB_OK || db_result_rows(res) < 1) {
        return;
    }
    o->row = true;
    int c = 0;
    if (o->kind == S_CREATE) {
        o->rule = s_dup(db_result_value(res, 0, c++));
    } else if (o->kind == S_REVERT) {
        const char *rev = db_result_value(res, 0, 1), *done = db_result_value(res, 0, 2);
        o->type = s_dup(db_result_value(res, 0, 0));
        o->reversible = rev && rev[0] == 't';
        o->done = done && done[0] == 't';
        c = 3;
    }
    const char *id = db_result_value(res, 0, c), *evt = db_result_value(res, 0, c + 1);
    o->evt_id = id ? strtoull(id, NULL, 10) : 0;
    o->evt = o->evt_id ? s_dup(evt) : NULL;
}

/* The 409 of a revert that did not happen (the event is there, o->row). */
static void s_revert_refused(s_op_t *o)
{
    bool rule_type = o->type && strncmp(o->type, "permission_rule.", 16) == 0;
    if (!o->reversible || !rule_type) {
        node_reply_error(o->node, &o->req, 409, "not_reversible",
                         "this team event is not reversible (docs/api.md#reverting-events)");
    } else if (o->done) {
        node_reply_error(o->node, &o->req, 409, "already_reverted",
                         "this event was already reverted");
    } else if (strcmp(o->type, "permission_rule.created") == 0) {
        node_reply_error(o->node, &o->req, 409, "changed_since",
                         "rule: the rule was deleted since");
    } else {
        node_reply_error(o->node, &o->req, 409, "changed_since",
                         "rule: the rule exists again, or its conversation was deleted");
    }
}

static void s_on_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_op_t *o = arg;
    node_t *node = o->node;
    bool evt_ok = o->evt_id && o->evt;
    if (status != DB_OK) {
        LOG_I("op failed op=%s error=\"%s\"", o->req->op->spec->name, error ? error : "");
        node_reply_busy(node, &o->req, "database unavailable");
    } else if (!o->row && o->kind == S_REVERT) {
        node_reply_error(node, &o->req, 404, "not_found", "event not found");
    } else if (!o->row) {
        node_reply_error(node, &o->req, 404, "not_found",
                         o->kind == S_CREATE ? "conversation not found" : "rule not found");
    } else if (o->kind == S_REVERT && !evt_ok) {
        s_revert_refused(o);
    } else if (!evt_ok || (o->kind == S_CREATE && !o->rule)) {
        node_reply_busy(node, &o->req, "out of memory");
    } else {
        static const uint8_t zero[16] = {0};
        static const char *const types[] = {"permission_rule.created", "permission_rule.deleted",
                                            "event.reverted"};
        node_event_out_t ev = {.id = o->evt_id, .type = types[o->kind], .body = o->evt};
        node_publish(node, o->team, zero, &ev);
        if (o->kind == S_CREATE) {
            node_reply_pg(node, &o->req, 201, o->rule);
        } else if (o->kind == S_DELETE) {
            node_reply(node, &o->req, 204, "", 0);
        } else {
            node_reply_pg(node, &o->req, 201, o->evt);
        }
    }
    free(o->rule);
    free(o->type);
    free(o->evt);
    node_req_destroy(&o->req);
    free(o);
}

static void s_run(node_t *node,
                  node_req_t *req,
                  s_kind_t kind,
                  const char *stmt,
                  int n,
                  const char *const *params)
{
    s_op_t *o = calloc(1, sizeof *o);
    db_batch_t *b = o && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, stmt, NULL, n, params, s_on_row, o) < 0) {
        db_batch_destroy(&b);
        free(o);
        node_reply_busy(node, &req, node->closing ? "node stopping" : "out of memory");
        return;
    }
    o->node = node;
    o->req = req;
    o->kind = kind;
    memcpy(o->team, req->team_id, sizeof o->team);
    db_batch_submit(&b, s_on_done, o);
}

/* The source of a change made through the API: the team's user. */
static void s_source(const node_req_t *req, char out[96])
{
    s_uuid_t team;
    util_uuid_format(req->team_id, team);
    snprintf(out, 96, "{\"kind\":\"user\",\"id\":\"%s\"}", team);
}

/* A checked UUID argument into out (text); 0 absent or null, 1 present. */
static int s_uuid_arg(const json_t *args, const char *key, s_uuid_t out)
{
    const char *s = node_args_str(args, key);
    uint8_t raw[16];
    if (!s || util_uuid_parse(s, raw) < 0) {
        return 0;
    }
    util_uuid_format(raw, out);
    return 1;
}

/* ---- ops ---------------------------------------------------------------------------------- */

void node_op_rule_create(node_t *node, node_req_t *req)
{
    /* Dispatch checked the shape (rule.create's row: scope, conversation_id only and
       always with scope conversation, decision); the pattern's syntax is ours. */
    const char *scope = node_args_str(req->args, "scope");
    const char *pattern = node_args_str(req->args, "tool_pattern");
    const char *decision = node_args_str(req->args, "decision");
    s_uuid_t conv, team, rid;
    char src[96];
    bool conv_scope = s_uuid_arg(req->args, "conversation_id", conv) == 1;
    if (!node_perm_pattern_valid(pattern)) {
        node_reply_invalid(node, &req, "tool_pattern",
                           "tool_pattern must be a tool name, a name prefix followed by '*', or "
                           "'*' (letters, digits, '_', '.', ':', '-')");
        return;
    }
    uint8_t raw[16];
    util_uuid_generate(raw);
    util_uuid_format(raw, rid);
    util_uuid_format(req->team_id, team);
    s_source(req, src);
    const char *params[] = {rid, team, scope, conv_scope ? conv : NULL, pattern, decision, src};
    s_run(node, req, S_CREATE, Q_RULE_CREATE, 7, params);
}

void node_op_rule_delete(node_t *node, node_req_t *req)
{
    s_uuid_t id, team;
    char src[96];
    s_uuid_arg(req->args, "id", id);
    util_uuid_format(req->team_id, team);
    s_source(req, src);
    const char *params[] = {id, team, src};
    s_run(node, req, S_DELETE, Q_RULE_DELETE, 3, params);
}

void node_op_event_revert_team(node_t *node, node_req_t *req)
{
    char id[24], src[96];
    s_uuid_t team;
    snprintf(id, sizeof id, "%lld",
             (long long)json_integer_value(json_object_get(req->args, "id")));
    util_uuid_format(req->team_id, team);
    s_source(req, src);
    const char *params[] = {id, team, src};
    s_run(node, req, S_REVERT, Q_TEAM_REVERT, 3, params);
}
