/*  node_ws_merge — sends a write set's message inserts, and its event inserts, as
    one multi-row INSERT each (NODE_Q_MSG_MULTI, NODE_Q_EVT_MULTI) instead of one
    statement per row: a posted message and its folded echo turn are 2 messages
    and 4 events. Only runs of consecutive inserts are merged, so every other
    statement keeps its place (the guard before, the closing touch after: the
    touch reads the events sequence's currval). Within a run the messages go
    before the events; an event's JSON never depends on a message row there
    (the node renders it). Event rows keep their order, so their ids do too.
    Loop thread only. */
#define LOG_MODULE "node_merge"
#include "common/log.h"
#include "node/node_ws_stmt.h"

#include <stdlib.h>
#include <string.h>

/* Parameter index of seq in each mergeable statement, or -1. */
static int s_seq_param(const char *name)
{
    if (strcmp(name, NODE_Q_MSG_INSERT) == 0) {
        return 3;
    }
    if (strcmp(name, NODE_Q_EVT) == 0 || strcmp(name, NODE_Q_EVT_EMBED) == 0) {
        return 2;
    }
    return -1;
}

static bool s_is_msg(const node_stmt_t *s)
{
    return strcmp(s->name, NODE_Q_MSG_INSERT) == 0;
}

/* Appends v (NULL = NULL) as the next element of the array literal in b. */
static void s_elem(node_buf_t *b, const char *v)
{
    node_buf_str(b, b->len > 1 ? "," : "");
    if (!v) {
        node_buf_str(b, "NULL");
        return;
    }
    node_buf_str(b, "\"");
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, "\"\\");
        node_buf_add(b, p, n);
        p += n;
        if (*p) {
            char esc[2] = {'\\', *p++};
            node_buf_add(b, esc, 2);
        }
    }
    node_buf_str(b, "\"");
}

/* The array literal of parameter p of the members (NULL on OOM). */
static char *s_array(const node_ws_t *ws, const int *members, int n, int p)
{
    node_buf_t b;
    node_buf_init(&b);
    node_buf_str(&b, "{");
    for (int i = 0; i < n; i++) {
        const node_stmt_t *s = &ws->stmts[members[i]];
        s_elem(&b, p < s->nparams ? s->params[p] : NULL);
    }
    node_buf_str(&b, "}");
    if (b.oom) {
        node_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void s_merged_free(node_merged_t *m)
{
    for (int p = 0; m->params && p < m->nparams; p++) {
        free(m->params[p]);
    }
    free(m->params);
    free(m->members);
    free(m);
}

/* Builds the merged statement of members (all messages or all events). */
static node_merged_t *s_merged_new(node_ws_t *ws, int at, const int *members, int n, bool msgs)
{
    node_merged_t *m = calloc(1, sizeof *m);
    if (!m || !(m->members = malloc((size_t)n * sizeof *m->members)) ||
        !(m->params = calloc(msgs ? 9 : 8, sizeof *m->params))) {
        if (m) {
            s_merged_free(m);
        }
        return NULL;
    }
    memcpy(m->members, members, (size_t)n * sizeof *members);
    m->n = n;
    m->ws = ws;
    m->at = at;
    m->nparams = msgs ? 9 : 8;
    m->name = msgs ? NODE_Q_MSG_MULTI : NODE_Q_EVT_MULTI;
    const node_stmt_t *s0 = &ws->stmts[members[0]];
    /* Messages: id conv team seq role content status metadata ts;
       events: team conv seq type source action [embed] ts (the last is the time). */
    static const int msg_arrays[] = {0, 3, 4, 5, 6, 7};
    static const int evt_arrays[] = {2, 3, 4, 5, 6};
    bool ok = (m->params[0] = strdup(s0->params[msgs ? 1 : 0])) &&
              (m->params[1] = strdup(s0->params[msgs ? 2 : 1])) &&
              (m->params[2] = strdup(s0->params[s0->nparams - 1]));
    for (int k = 0; ok && k < (msgs ? 6 : 5); k++) {
        int p = msgs ? msg_arrays[k] : evt_arrays[k];
        if (!msgs && p == 6) {
            /* The embedded row: only NODE_Q_EVT_EMBED has one (before its time). */
            node_buf_t b;
            node_buf_init(&b);
            node_buf_str(&b, "{");
            for (int i = 0; i < n; i++) {
                const node_stmt_t *s = &ws->stmts[members[i]];
                s_elem(&b, s->nparams == 8 ? s->params[6] : NULL);
            }
            node_buf_str(&b, "}");
            ok = !b.oom;
            m->params[3 + k] = ok ? b.data : NULL;
            if (!ok) {
                node_buf_free(&b);
            }
            continue;
        }
        ok = (m->params[3 + k] = s_array(ws, members, n, p)) != NULL;
    }
    if (!ok) {
        s_merged_free(m);
        return NULL;
    }
    return m;
}

/* Appends the merged statement of the members of kind msgs in [from, to) when there are
   two or more. false on OOM. */
static bool s_merge_run(node_ws_t *ws, size_t from, size_t to, bool msgs, node_merged_t ***tail)
{
    int *members = malloc((to - from) * sizeof *members);
    if (!members) {
        return false;
    }
    int n = 0;
    for (size_t i = from; i < to; i++) {
        if (s_is_msg(&ws->stmts[i]) == msgs) {
            members[n++] = (int)i;
        }
    }
    bool ok = true;
    if (n >= 2) {
        node_merged_t *m = s_merged_new(ws, (int)from, members, n, msgs);
        ok = m != NULL;
        if (m) {
            **tail = m;
            *tail = &m->next;
        }
    }
    free(members);
    return ok;
}

void node_ws_merge(node_ws_t *ws)
{
    node_merged_t **tail = &ws->merged;
    bool ok = true;
    for (size_t i = 0; i < ws->n && ok;) {
        if (s_seq_param(ws->stmts[i].name) < 0) {
            i++;
            continue;
        }
        size_t end = i;
        while (end < ws->n && s_seq_param(ws->stmts[end].name) >= 0) {
            end++;
        }
        ok = s_merge_run(ws, i, end, true, &tail) && s_merge_run(ws, i, end, false, &tail);
        i = end;
    }
    if (!ok) {
        node_ws_merge_free(ws);
        return;
    }
    for (node_merged_t *m = ws->merged; m; m = m->next) {
        for (int i = 0; i < m->n; i++) {
            ws->stmts[m->members[i]].merged = true;
        }
    }
}

void node_ws_merge_free(node_ws_t *ws)
{
    while (ws->merged) {
        node_merged_t *m = ws->merged;
        ws->merged = m->next;
        for (int i = 0; i < m->n; i++) {
            ws->stmts[m->members[i]].merged = false;
        }
        s_merged_free(m);
    }
}

/* The member whose seq parameter is seq, or NULL. */
static node_stmt_t *s_member(node_merged_t *m, const char *seq)
{
    for (int i = 0; i < m->n; i++) {
        node_stmt_t *s = &m->ws->stmts[m->members[i]];
        const char *p = s->params[s_seq_param(s->name)];
        if (seq && p && strcmp(p, seq) == 0) {
            return s;
        }
    }
    return NULL;
}

/* Every row (seq first, then the member's own columns) goes to the member with that seq,
   as its single-row result. */
void node_ws_merge_result(void *arg, db_status_t status, const db_result_t *res)
{
    node_merged_t *m = arg;
    node_ws_t *ws = m->ws;
    for (int i = 0; i < m->n; i++) {
        node_stmt_clear_result(&ws->stmts[m->members[i]]);
    }
    if (status == DB_ERR_QUERY) {
        ws->stmts[m->members[0]].status = 1;
        if (ws->failed < 0) {
            ws->failed = m->members[0];
        }
        return;
    }
    if (status != DB_OK || !res) {
        return;
    }
    int cols = db_result_cols(res);
    for (int r = 0; r < db_result_rows(res); r++) {
        node_stmt_t *s = s_member(m, db_result_value(res, r, 0));
        if (!s) {
            LOG_W("merged insert returned an unknown seq=%s", db_result_value(res, r, 0));
            continue;
        }
        s->rows = 1;
        for (int c = 1; c < cols && c - 1 < STMT_COLS_MAX; c++) {
            const char *v = db_result_value(res, r, c);
            s->cols[c - 1] = v ? strdup(v) : NULL;
        }
    }
}
