/*  node_ops_revert — event.revert: the compensating write of a reversible
    event, run in the conversation's actor so it is ordered with every other
    write of the conversation. The event, the later changes of the same
    conversation and the worktree a revert would restore are read first, with
    the actor pinned (nothing else writes the conversation meanwhile); then one
    write set restores the values, appends event.reverted and marks the
    original's reverted_by. Reversible today (docs/api.md):
      conversation.updated  → the fields it changed get their previous values
                              (metadata: each patched key its previous value,
                              or removed when it had none);
      conversation.archived → the conversation is idle again.
    Loop thread only. */
#define LOG_MODULE "node_revert"
#include "common/log.h"
#include "common/util.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

#define S_LATER_MAX 1000 /* later change events examined; more: refused as changed */

#define Q_EVT_GET   "node_evt_get"
#define Q_REV_EVENT "node_rev_event"
#define Q_REV_LATER "node_rev_later"
#define Q_REV_CONV  "node_rev_conv"
#define Q_REV_MARK  "node_rev_mark"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 event $2 conv $3 team: type, action, reversible, reverted, and whether the
       worktree its previous values name is still there (NULL when they name none). */
    {Q_REV_EVENT, 3,
     "SELECT e.type, e.action::text, e.reversible, e.reverted_by IS NOT NULL, (SELECT "
     "w.removed_at IS NULL FROM worktrees w WHERE w.id = (e.action->'previous'->>'worktree_id')"
     "::uuid AND w.team_id = e.team_id) FROM events e WHERE e.id = $1::bigint AND "
     "e.conversation_id = $2::uuid AND e.team_id = $3::uuid"},
    /* $1 conv $2 team $3 event: the changes after it (patches and other reverts). */
    {Q_REV_LATER, 3,
     "SELECT l.type, l.action::text FROM events l WHERE l.conversation_id = $1::uuid AND "
     "l.team_id = $2::uuid AND l.type IN ('conversation.updated', 'event.reverted') AND l.seq > "
     "(SELECT e.seq FROM events e WHERE e.id = $3::bigint AND e.conversation_id = $1::uuid) "
     "ORDER BY l.seq LIMIT 1001"},
    /* $1 conv $2 team; each field restored when its flag is set: $3/$4 title, $5 metadata
       keys to remove (JSON array), $6 metadata to set, $7/$8 strategy, $9/$10 worktree,
       $11/$12 on_busy. */
    {Q_REV_CONV, 12,
     "UPDATE conversations SET title = CASE WHEN $3::bool THEN $4::text ELSE title END, "
     "metadata = (metadata - ARRAY(SELECT jsonb_array_elements_text(coalesce($5::jsonb, "
     "'[]'::jsonb)))) || coalesce($6::jsonb, '{}'::jsonb), strategy = CASE WHEN $7::bool THEN "
     "$8::text ELSE strategy END, worktree_id = CASE WHEN $9::bool THEN $10::uuid ELSE "
     "worktree_id END, on_busy = CASE WHEN $11::bool THEN $12::text ELSE on_busy END WHERE id = "
     "$1::uuid AND team_id = $2::uuid"},
    /* $1 event $2 team $3 conv $4 seq of the event.reverted inserted before it. */
    {Q_REV_MARK, 4,
     "UPDATE events SET reverted_by = (SELECT r.id FROM events r WHERE r.conversation_id = "
     "$3::uuid AND r.seq = $4::bigint) WHERE id = $1::bigint AND team_id = $2::uuid AND "
     "reverted_by IS NULL"},
};

int node_ops_revert_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- the read ---------------------------------------------------------------------------- */

typedef struct {
    node_t *node;        /* borrowed */
    node_actor_t *actor; /* pinned (NODE_AF_IDEM) while the reads run */
    node_req_t *req;     /* the revert */
    bool found;          /* the event is this conversation's */
    char *type;          /* its type */
    json_t *action;      /* its action */
    bool reversible;     /* its flag */
    bool reverted;       /* reverted_by is set */
    int wt_there;        /* previous worktree: 1 there, 0 removed, -1 none named */
    json_t *later;       /* array of [type, action] after it */
    bool failed;         /* a read failed */
} s_rev_t;

static void s_free(s_rev_t *r)
{
    free(r->type);
    json_decref(r->action);
    json_decref(r->later);
    node_req_destroy(&r->req);
    free(r);
}

static void s_on_event(void *arg, db_status_t status, const db_result_t *res)
{
    s_rev_t *r = arg;
    if (status != DB_OK) {
        r->failed = true;
        return;
    }
    if (db_result_rows(res) < 1) {
        return;
    }
    const char *type = db_result_value(res, 0, 0), *action = db_result_value(res, 0, 1);
    const char *rev = db_result_value(res, 0, 2), *done = db_result_value(res, 0, 3);
    const char *wt = db_result_value(res, 0, 4);
    r->found = true;
    r->type = type ? strdup(type) : NULL;
    r->action = action ? json_loads(action, 0, NULL) : NULL;
    r->reversible = rev && rev[0] == 't';
    r->reverted = done && done[0] == 't';
    r->wt_there = wt ? wt[0] == 't' : -1;
    r->failed = !r->type || !r->action;
}

static void s_on_later(void *arg, db_status_t status, const db_result_t *res)
{
    s_rev_t *r = arg;
    r->later = status == DB_OK ? json_array() : NULL;
    for (int i = 0; r->later && i < db_result_rows(res); i++) {
        const char *action = db_result_value(res, i, 1);
        json_array_append_new(r->later, json_pack("[s?, o?]", db_result_value(res, i, 0),
                                                  action ? json_loads(action, 0, NULL) : NULL));
    }
    r->failed = r->failed || !r->later;
}

/* ---- what a revert restores ------------------------------------------------------------- */

/* The field of prev that a later change (action of type) also changed, or NULL. Written
   into field (e.g. "title", "metadata.k"). */
static const char *s_conflict(
    const json_t *prev, const json_t *changes_meta, const json_t *action, char *field, size_t cap)
{
    const json_t *changes = json_object_get(action, "changes");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)prev, key, v)
    {
        if (strcmp(key, "metadata") != 0) {
            if (json_object_get(changes, key)) {
                snprintf(field, cap, "%s", key);
                return field;
            }
            continue;
        }
        /* metadata: per key, the ones the original patched. */
        const json_t *later_meta = json_object_get(changes, "metadata");
        const json_t *removed = json_object_get(action, "removed_metadata");
        const char *mk;
        const json_t *mv;
        json_object_foreach((json_t *)changes_meta, mk, mv)
        {
            bool hit = json_object_get(later_meta, mk) != NULL;
            size_t i;
            const json_t *rk;
            json_array_foreach(removed, i, rk)
            {
                hit = hit || (json_is_string(rk) && strcmp(json_string_value(rk), mk) == 0);
            }
            if (hit) {
                snprintf(field, cap, "metadata.%s", mk);
                return field;
            }
        }
    }
    return NULL;
}

/* Adds the restoring update of a conversation.updated (prev: its previous values,
   meta: the metadata it patched) and records in restored / removed what it sets. */
static void s_add_restore(
    node_ws_t *ws, const json_t *prev, const json_t *meta, json_t *restored, json_t *removed)
{
    s_uuid_t conv, team;
    util_uuid_format(ws->actor->conv_id, conv);
    util_uuid_format(ws->actor->team_id, team);
    const json_t *prev_meta = json_object_get(prev, "metadata");
    json_t *set = json_object();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v)
    {
        const json_t *old = json_object_get(prev_meta, k);
        if (old) {
            json_object_set(set, k, (json_t *)old);
        } else {
            json_array_append_new(removed, json_string(k));
        }
    }
    if (meta) {
        json_object_set(restored, "metadata", set);
    }
    const char *fields[] = {"title", "strategy", "worktree_id", "on_busy"};
    const char *flag[4], *value[4];
    for (int i = 0; i < 4; i++) {
        const json_t *p = json_object_get(prev, fields[i]);
        flag[i] = p ? "true" : "false";
        value[i] = json_string_value(p);
        if (p) {
            json_object_set(restored, fields[i], (json_t *)p);
        }
    }
    char *removed_text = node_json_text(removed), *set_text = node_json_text(set);
    const char *params[] = {conv,    team,     flag[0], value[0], removed_text, set_text,
                            flag[1], value[1], flag[2], value[2], flag[3],      value[3]};
    if (!removed_text || !set_text) {
        ws->oom = true;
    } else {
        node_ws_add(ws, Q_REV_CONV, NODE_SK_PLAIN, 12, params);
    }
    free(removed_text);
    free(set_text);
    json_decref(set);
}

/* Builds and submits the revert's write set. Takes r->req. */
static void s_write(node_t *node, node_actor_t *a, s_rev_t *r, long long id)
{
    json_t *restored = json_object(), *removed = json_array();
    json_t *action = json_pack("{s:I, s:s}", "reverts", (json_int_t)id, "type", r->type);
    node_ws_t *ws = restored && removed && action ? node_ws_new(a, r->req) : NULL;
    if (!ws) { /* r->req stays r's: the caller answers it */
        json_decref(restored);
        json_decref(removed);
        json_decref(action);
        return;
    }
    r->req = NULL;
    int status = -1;
    if (strcmp(r->type, "conversation.updated") == 0) {
        const json_t *changes = json_object_get(r->action, "changes");
        s_add_restore(ws, json_object_get(r->action, "previous"),
                      json_object_get(changes, "metadata"), restored, removed);
        json_object_set(action, "changes", restored);
        if (json_array_size(removed) > 0) {
            json_object_set(action, "removed_metadata", removed);
        }
    } else { /* conversation.archived */
        json_object_set_new(action, "changes", json_pack("{s:s}", "status", "idle"));
        status = NODE_ST_IDLE;
    }
    char src[96];
    node_user_source(a, src);
    char *text = node_json_text(action);
    ws->msg_stmt = text ? node_ws_event(ws, "event.reverted", src, text, NULL, false) : -1;
    /* After the event it names (a statement between the inserts and the touch also keeps
       the set from being merged with others, so this order is the order sent). */
    s_uuid_t team, conv;
    char ev[24], seq[24];
    util_uuid_format(a->team_id, team);
    util_uuid_format(a->conv_id, conv);
    snprintf(ev, sizeof ev, "%lld", id);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)a->last_evt_seq);
    const char *mark[] = {ev, team, conv, seq};
    node_ws_add(ws, Q_REV_MARK, NODE_SK_PLAIN, 4, mark);
    ws->oom = ws->oom || !text || ws->msg_stmt < 0;
    free(text);
    json_decref(action);
    json_decref(restored);
    json_decref(removed);
    node_ws_touch(ws, status);
    ws->reply_kind = NODE_REPLY_EVENT;
    ws->reply_status = 201;
    node_ws_finish(node, &ws);
}

/* Answers r's request with its refusal, or writes the revert. */
static void s_decide(node_t *node, node_actor_t *a, s_rev_t *r)
{
    long long id = (long long)json_integer_value(json_object_get(r->req->args, "id"));
    char why[192], field[96];
    if (!r->found) {
        node_reply_error(node, &r->req, 404, "not_found", "event not found");
        return;
    }
    bool known = strcmp(r->type, "conversation.updated") == 0 ||
                 strcmp(r->type, "conversation.archived") == 0;
    if (!r->reversible || !known) {
        snprintf(why, sizeof why, "%s events are not reversible", r->type);
        node_reply_error(node, &r->req, 409, "not_reversible", why);
        return;
    }
    if (r->reverted) {
        node_reply_error(node, &r->req, 409, "already_reverted", "event was already reverted");
        return;
    }
    if (strcmp(r->type, "conversation.archived") == 0 && a->status != NODE_ST_ARCHIVED) {
        node_reply_error(node, &r->req, 409, "changed_since",
                         "the conversation is no longer archived (field: status)");
        return;
    }
    const json_t *prev = json_object_get(r->action, "previous");
    const json_t *meta = json_object_get(json_object_get(r->action, "changes"), "metadata");
    size_t i;
    const json_t *later;
    bool over = json_array_size(r->later) > S_LATER_MAX;
    json_array_foreach(r->later, i, later)
    {
        if (over || s_conflict(prev, meta, json_array_get(later, 1), field, sizeof field)) {
            snprintf(why, sizeof why, "%s was changed by a later event",
                     over ? "the conversation" : field);
            node_reply_error(node, &r->req, 409, "changed_since", why);
            return;
        }
    }
    if (r->wt_there == 0) {
        node_reply_error(node, &r->req, 409, "changed_since",
                         "the previous worktree was removed (field: worktree_id)");
        return;
    }
    if (node->stopping || (a->flags & NODE_AF_DOOMED)) {
        node_reply_busy(node, &r->req, "conversation moved");
        return;
    }
    node_req_t *req = r->req;
    s_write(node, a, r, id);
    if (r->req == req) { /* out of memory before the write set took it */
        node_reply_busy(node, &r->req, "out of memory");
    }
}

static void s_on_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_rev_t *r = arg;
    node_t *node = r->node;
    node_actor_t *a = r->actor;
    a->flags &= (uint8_t)~NODE_AF_IDEM;
    if (status != DB_OK || r->failed) {
        node_reply_busy(node, &r->req, "database unavailable");
    } else {
        s_decide(node, a, r);
    }
    s_free(r);
    node_actor_pump(node, a);
}

void node_op_event_revert(node_t *node, node_actor_t *a, node_req_t *req)
{
    if (a->state != NODE_ACTOR_READY) {
        node_reply_error(node, &req, 404, "not_found", "event not found");
        return;
    }
    char ev[24];
    s_uuid_t conv, team;
    snprintf(ev, sizeof ev, "%lld",
             (long long)json_integer_value(json_object_get(req->args, "id")));
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *one[] = {ev, conv, team}, *later[] = {conv, team, ev};
    s_rev_t *r = calloc(1, sizeof *r);
    db_batch_t *b = r && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, Q_REV_EVENT, NULL, 3, one, s_on_event, r) < 0 ||
        db_batch_add(b, Q_REV_LATER, NULL, 3, later, s_on_later, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        node_reply_busy(node, &req, "database unavailable");
        return;
    }
    r->node = node;
    r->actor = a;
    r->req = req;
    a->flags |= NODE_AF_IDEM;
    db_batch_submit(&b, s_on_read, r);
}
