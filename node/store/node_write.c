/*  node_write — building an actor's write set: message and event inserts
    with the next per-conversation seqs (assigned here, in order, by the one
    actor that owns the conversation), the closing conversation update, the
    idempotency record, the claim of a conversation the set creates (its
    ownership guard is added by the group commit), handing the set to the
    group commit, and publishing a committed set's events. Loop thread only. */
#define LOG_MODULE "node_write"
#include "common/log.h"
#include "common/util.h"
#include "node/store/node_store.h"
#include "node/store/node_ws_stmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* The write set's time, as Postgres prints a timestamptz (and reads it back): the rows
   a set inserts share it, and the node renders their JSON without asking Postgres.
   Milliseconds, the precision API.md shows, so stored and shown times are equal. */
const char *node_ws_ts(node_ws_t *ws)
{
    if (!ws->ts[0]) {
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        size_t n = strftime(ws->ts, sizeof ws->ts, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(ws->ts + n, sizeof ws->ts - n, ".%03ld+00", now.tv_nsec / 1000000);
    }
    return ws->ts;
}

/* Index of this set's insert stmt (a message or conversation insert) of row id, or -1. */
static int s_insert_of(const node_ws_t *ws, const char *stmt, const char *id)
{
    for (size_t i = 0; i < ws->n; i++) {
        if (strcmp(node_ws_name(ws, (int)i), stmt) == 0 &&
            strcmp(node_ws_param(ws, (int)i, 0), id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The JSON of the conversation inserted by statement stmt (NODE_Q_CONV_INSERT): its
   parameters with the insert's defaults, as the row reads right after the insert. */
static void s_render_conv(const node_ws_t *ws, int stmt, node_buf_t *b)
{
    const char *p[10];
    for (int i = 0; i < 10; i++) {
        p[i] = node_ws_param(ws, stmt, i);
    }
    node_conv_fields_t c = {.id = p[0],
                            .source = p[2] ? p[2] : "api",
                            .type = p[3] ? p[3] : "chat",
                            .title = p[4],
                            .strategy = p[5] ? p[5] : "echo",
                            .worktree_id = p[6],
                            .status = "idle",
                            .on_busy = p[7] ? p[7] : "enqueue",
                            .metadata = p[8] ? p[8] : "{}",
                            .last_event_id_null = true,
                            .created_at = p[9],
                            .updated_at = p[9],
                            .own = true};
    node_render_conv(b, &c);
}

void node_ws_render_msg(const node_ws_t *ws, int stmt, const char *metadata, node_buf_t *b)
{
    /* The parameter is the node's own compact text (jansson); stored text is Postgres'. */
    const char *meta = metadata ? metadata : node_ws_param(ws, stmt, 7);
    node_msg_fields_t m = {
        .id = node_ws_param(ws, stmt, 0),
        .conversation_id = node_ws_param(ws, stmt, 1),
        .seq = node_parse_ll(node_ws_param(ws, stmt, 3), 0, 0, INT64_MAX),
        .role = node_ws_param(ws, stmt, 4),
        .content = node_ws_param(ws, stmt, 5),
        .status = node_ws_param(ws, stmt, 6),
        .metadata = meta ? meta : "{}",
        .created_at = node_ws_param(ws, stmt, 8),
        .updated_at = node_ws_param(ws, stmt, 8),
        .own = !metadata,
    };
    node_render_msg(b, &m);
}

int node_ws_message(node_ws_t *ws,
                    const uint8_t id[16],
                    const char *role,
                    const char *content,
                    const char *status,
                    const char *metadata)
{
    node_actor_t *a = ws->actor;
    s_uuid_t mid, conv, team;
    char seq[24];
    util_uuid_format(id, mid);
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)++a->last_msg_seq);
    const char *params[] = {mid, conv, team, seq, role, content, status, metadata, node_ws_ts(ws)};
    return node_ws_add(ws, NODE_Q_MSG_INSERT, NODE_SK_SEQ, 9, params);
}

int node_ws_event_rev(node_ws_t *ws, const char *type, const char *source, const char *action)
{
    node_actor_t *a = ws->actor;
    s_uuid_t conv, team;
    char seq[24];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)++a->last_evt_seq);
    const char *params[] = {team, conv, seq, type, source, action, node_ws_ts(ws)};
    return node_ws_add(ws, NODE_Q_EVT_REV, NODE_SK_EVENT, 7, params);
}

int node_ws_event(node_ws_t *ws,
                  const char *type,
                  const char *source,
                  const char *action,
                  const uint8_t *msg_id,
                  bool with_conv)
{
    node_actor_t *a = ws->actor;
    s_uuid_t conv, team, mid;
    char seq[24];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)++a->last_evt_seq);
    const char *params[] = {team, conv, seq, type, source, action, node_ws_ts(ws), NULL};
    if (!msg_id && !with_conv) {
        return node_ws_add(ws, NODE_Q_EVT, NODE_SK_EVENT, 7, params);
    }
    /* Embedded: a row this set inserts is rendered here; one stored earlier is read and
       rendered by Postgres. */
    int row = -1;
    if (msg_id) {
        util_uuid_format(msg_id, mid);
        row = s_insert_of(ws, NODE_Q_MSG_INSERT, mid);
    } else {
        row = s_insert_of(ws, NODE_Q_CONV_INSERT, conv);
    }
    if (row < 0) {
        params[6] = mid;
        return msg_id ? node_ws_add(ws, NODE_Q_EVT_MSG_DB, NODE_SK_EVENT, 7, params)
                      : node_ws_add(ws, NODE_Q_EVT_CONV, NODE_SK_EVENT, 6, params);
    }
    node_buf_t b;
    node_buf_init(&b);
    node_buf_str(&b, msg_id ? "{\"message\":" : "{\"conversation\":");
    if (msg_id) {
        node_ws_render_msg(ws, row, NULL, &b);
    } else {
        s_render_conv(ws, row, &b);
    }
    node_buf_str(&b, "}");
    if (b.oom) {
        node_buf_free(&b);
        ws->oom = true;
        return -1;
    }
    params[6] = b.data;
    params[7] = node_ws_ts(ws);
    int rc = node_ws_add(ws, NODE_Q_EVT_EMBED, NODE_SK_EVENT, 8, params);
    node_buf_free(&b);
    return rc;
}

int node_ws_touch(node_ws_t *ws, int status)
{
    node_actor_t *a = ws->actor;
    s_uuid_t conv, team;
    char msg_seq[24], evt_seq[24], added[24];
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    snprintf(msg_seq, sizeof msg_seq, "%llu", (unsigned long long)a->last_msg_seq);
    snprintf(evt_seq, sizeof evt_seq, "%llu", (unsigned long long)a->last_evt_seq);
    snprintf(added, sizeof added, "%llu",
             (unsigned long long)(a->last_msg_seq - ws->saved_msg_seq));
    const char *params[] = {conv,
                            team,
                            msg_seq,
                            evt_seq,
                            added,
                            status < 0 ? NULL : node_status_name(status),
                            a->last_evt_seq != ws->saved_evt_seq ? "true" : "false"};
    ws->touch_stmt = node_ws_add(ws, NODE_Q_CONV_TOUCH, NODE_SK_PLAIN, 7, params);
    return ws->touch_stmt;
}

void node_user_source(const node_actor_t *actor, char out[96])
{
    s_uuid_t team;
    util_uuid_format(actor->team_id, team);
    snprintf(out, 96, "{\"kind\":\"user\",\"id\":\"%s\"}", team);
}

void node_ws_abort(
    node_t *node, node_ws_t **ws_p, int status, const char *code, const char *message)
{
    node_ws_t *ws = *ws_p;
    ws->actor->last_msg_seq = ws->saved_msg_seq;
    ws->actor->last_evt_seq = ws->saved_evt_seq;
    if (ws->plan.end != NODE_END_NONE || ws->plan.start) {
        /* The running turn was paused for this write: its state is now unknown. */
        ws->actor->flags |= NODE_AF_RELOAD;
    }
    if (!code) {
        node_reply_field(node, &ws->req, message);
    } else {
        node_reply_error(node, &ws->req, status, code, message);
    }
    node_ws_destroy(ws_p);
}

/* The idempotency record: its response is computed by Postgres from the rows just
   written, so the first answer and every replay are the same text. */
static int s_add_idem(node_ws_t *ws, const char *key, const char *hash)
{
    node_actor_t *a = ws->actor;
    s_uuid_t team, id;
    char status[8];
    util_uuid_format(a->team_id, team);
    snprintf(status, sizeof status, "%d", ws->reply_status);
    const char *del[] = {team, key};
    if (node_ws_add(ws, NODE_Q_IDEM_DEL, NODE_SK_PLAIN, 2, del) < 0) {
        return -1;
    }
    const char *created = NULL;
    if (json_object_get(ws->req->args, "create")) {
        created = ws->plan.created ? "true" : "false";
    }
    const char *params[] = {team, key, hash, status, id, created};
    if (ws->reply_kind == NODE_REPLY_CONV) {
        util_uuid_format(a->conv_id, id);
        ws->idem_stmt = node_ws_add(ws, NODE_Q_IDEM_CONV, NODE_SK_IDEM, 5, params);
    } else if (ws->reply_kind == NODE_REPLY_MSG) {
        util_uuid_format(ws->plan.user_id, id);
        ws->idem_stmt = node_ws_add(ws, NODE_Q_IDEM_MSG, NODE_SK_IDEM, 6, params);
    } else {
        params[4] = ws->reply_status == 204 ? "" : "{}";
        ws->idem_stmt = node_ws_add(ws, NODE_Q_IDEM_TEXT, NODE_SK_IDEM, 5, params);
    }
    return ws->idem_stmt;
}

void node_ws_finish(node_t *node, node_ws_t **ws_p)
{
    node_ws_t *ws = *ws_p;
    const char *key = NULL, *hash = NULL;
    bool keyed = ws->req && ws->req->op->spec->write &&
                 node_arg_str(ws->req->args, "idempotency_key", 1, 255, &key) == 1 &&
                 node_arg_str(ws->req->args, "request_hash", 1, 128, &hash) == 1;
    /* A conversation created by this write set is claimed in the same transaction. */
    bool own_failed = ws->plan.created && node_commit_add_own(node->commit, ws) < 0;
    if (ws->oom || own_failed || (keyed && s_add_idem(ws, key, hash) < 0)) {
        node_ws_abort(node, ws_p, 503, "unavailable", "out of memory");
        return;
    }
    ws->actor->flags |= NODE_AF_COMMITTING;
    node_commit_submit(node->commit, ws_p);
}

/* ---- publishing a committed set ---------------------------------------------------------- */

/* The JSON of event statement s, compact. NODE_Q_EVT and NODE_Q_EVT_EMBED are rendered
   by the node from their parameters, its own compact text (source, action, the JSON of
   an embedded row): nothing is read back or re-spaced on the message path, and a later
   read gives the same value (jsonb prints keys in its own order). The others are
   Postgres' JSON (column 1), compacted. NULL when there is none (or on OOM). */
static const char *s_event_body(const node_stmt_t *s, uint64_t id, node_buf_t *b)
{
    bool embed = strcmp(s->name, NODE_Q_EVT_EMBED) == 0;
    bool rev = strcmp(s->name, NODE_Q_EVT_REV) == 0;
    if (embed || rev || strcmp(s->name, NODE_Q_EVT) == 0) {
        node_evt_fields_t e = {.id = (long long)id,
                               .conversation_id = s->params[NODE_EVT_P_CONV],
                               .seq = node_parse_ll(s->params[NODE_EVT_P_SEQ], 0, 0, INT64_MAX),
                               .type = s->params[NODE_EVT_P_TYPE],
                               .source = s->params[NODE_EVT_P_SOURCE],
                               .action = s->params[NODE_EVT_P_ACTION] ? s->params[NODE_EVT_P_ACTION]
                                                                      : "{}",
                               .embed = embed ? s->params[NODE_EVT_P_EMBED] : NULL,
                               .reversible = rev,
                               .created_at = s->params[s->nparams - 1],
                               .own = true};
        node_render_evt(b, &e);
    } else if (s->cols[NODE_EVT_RET_JSON]) {
        node_buf_json(b, s->cols[NODE_EVT_RET_JSON]);
    }
    return b->oom ? NULL : b->data;
}

const char *node_ws_render_event(const node_ws_t *ws, int stmt, node_buf_t *b)
{
    const node_stmt_t *s = stmt >= 0 && (size_t)stmt < ws->n ? &ws->stmts[stmt] : NULL;
    if (!s || s->kind != NODE_SK_EVENT || !s->cols[NODE_EVT_RET_ID]) {
        return NULL;
    }
    return s_event_body(s, (uint64_t)node_parse_ll(s->cols[NODE_EVT_RET_ID], 0, 0, INT64_MAX), b);
}

uint64_t node_ws_publish(node_t *node, const node_ws_t *ws)
{
    uint64_t last = 0;
    for (size_t i = 0; i < ws->n; i++) {
        const node_stmt_t *s = &ws->stmts[i];
        if (s->kind != NODE_SK_EVENT || !s->cols[NODE_EVT_RET_ID]) {
            continue;
        }
        uint64_t id = (uint64_t)node_parse_ll(s->cols[NODE_EVT_RET_ID], 0, 0, INT64_MAX);
        node_buf_t b;
        node_buf_init(&b);
        node_event_out_t ev = {
            .id = id,
            .seq = (uint64_t)node_parse_ll(s->params[NODE_EVT_P_SEQ], 0, 0, INT64_MAX),
            .type = s->params[NODE_EVT_P_TYPE],
            .body = s_event_body(s, id, &b)};
        if (ev.body) {
            node_publish(node, ws->actor->team_id, ws->actor->conv_id, &ev);
        } else if (b.oom) {
            LOG_E("out of memory: event %llu not published", (unsigned long long)id);
        }
        node_buf_free(&b);
        last = id > last ? id : last;
        if (ws->live && (int)i == ws->live_at) {
            ws->live(node, ws);
        }
    }
    return last;
}
