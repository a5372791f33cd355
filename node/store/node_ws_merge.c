/*  node_ws_merge — sends message inserts, event inserts and touches as one multi-row
    statement each (NODE_Q_MSG_MULTI, NODE_Q_EVT_MULTI, NODE_Q_TOUCH_MULTI) instead of
    one statement per row.
    - Within a write set (node_ws_merge): a run of consecutive inserts (a post and its
      whole echo turn are 2 messages and 4 events) goes as one message insert and one
      event insert, in the place of the run; every other statement keeps its place.
    - Across the write sets of a group (node_group_merge): the sets whose inserts are
      one run followed by their touch send their inserts and touches together, after
      every set's statements before the run and before every set's statements after
      the touch. Write sets of a group are of different conversations, so only each
      set's own order matters. A failure of such a statement cannot be attributed to one
      set: the group is then re-run one set per transaction (node_commit.c).
    Within a run the messages go before the events; an event's JSON never depends on a
    message row there (the node renders it). Rows keep their order (WITH ORDINALITY),
    so a conversation's event ids follow its seqs. Loop thread only. */
#define LOG_MODULE "node_merge"
#include "common/log.h"
#include "node/store/node_ws_stmt.h"

#include <stdlib.h>
#include <string.h>

typedef enum { S_MSG, S_EVT, S_TOUCH, S_NONE } s_kind_t;

static s_kind_t s_kind(const node_stmt_t *s)
{
    if (strcmp(s->name, NODE_Q_MSG_INSERT) == 0) {
        return S_MSG;
    }
    if (strcmp(s->name, NODE_Q_EVT) == 0 || strcmp(s->name, NODE_Q_EVT_EMBED) == 0) {
        return S_EVT;
    }
    return S_NONE;
}

/* Parameter index of seq (inserts) for matching result rows; -1 for touches. */
static int s_seq_param(const node_merged_t *m)
{
    return m->kind == S_MSG ? 3 : m->kind == S_EVT ? 2 : -1;
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

/* Parameter p of member s for array k of merged statement m (NULL = SQL NULL). */
static const char *s_param(const node_merged_t *m, const node_stmt_t *s, int k)
{
    if (m->kind == S_EVT) {
        /* team conv seq type source action embed time: only NODE_Q_EVT_EMBED (8 params)
           has the embedded row; the time is always the last parameter. */
        if (k == 6) {
            return s->nparams == 8 ? s->params[6] : NULL;
        }
        return k == 7 ? s->params[s->nparams - 1] : s->params[k];
    }
    return k < s->nparams ? s->params[k] : NULL; /* messages: 9, touches: 7, in order */
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

/* A merged statement name of the n members (takes members); NULL on OOM. */
static node_merged_t *s_merged_new(s_kind_t kind, node_stmt_t **members, int n, int at)
{
    node_merged_t *m = calloc(1, sizeof *m);
    int nparams = kind == S_MSG ? 9 : kind == S_EVT ? 8 : 7;
    if (!m || !(m->params = calloc((size_t)nparams, sizeof *m->params))) {
        free(m);
        free(members);
        return NULL;
    }
    m->kind = kind;
    m->name = kind == S_MSG   ? NODE_Q_MSG_MULTI
              : kind == S_EVT ? NODE_Q_EVT_MULTI
                              : NODE_Q_TOUCH_MULTI;
    m->members = members;
    m->n = n;
    m->at = at;
    m->nparams = nparams;
    for (int k = 0; k < nparams; k++) {
        node_buf_t b;
        node_buf_init(&b);
        node_buf_str(&b, "{");
        for (int i = 0; i < n; i++) {
            s_elem(&b, s_param(m, members[i], k));
        }
        node_buf_str(&b, "}");
        if (b.oom) {
            node_buf_free(&b);
            s_merged_free(m);
            return NULL;
        }
        m->params[k] = b.data;
    }
    return m;
}

/* Appends to *tail the merged statement of the stmts of kind in [from, to) of ws when
   there are at least min of them. false on OOM. */
static bool s_collect(node_ws_t *const *sets,
                      size_t nsets,
                      const size_t *from,
                      const size_t *to,
                      s_kind_t kind,
                      int min,
                      int at,
                      node_merged_t ***tail)
{
    size_t cap = 0;
    for (size_t w = 0; w < nsets; w++) {
        cap += to[w] - from[w];
    }
    node_stmt_t **members = malloc((cap ? cap : 1) * sizeof *members);
    if (!members) {
        return false;
    }
    int n = 0;
    for (size_t w = 0; w < nsets; w++) {
        for (size_t i = from[w]; i < to[w]; i++) {
            node_stmt_t *s = &sets[w]->stmts[i];
            bool touch = kind == S_TOUCH && (int)i == sets[w]->touch_stmt;
            if (touch || (kind != S_TOUCH && s_kind(s) == kind)) {
                members[n++] = s;
            }
        }
    }
    if (n < min) {
        free(members);
        return true;
    }
    node_merged_t *m = s_merged_new(kind, members, n, at);
    if (!m) {
        return false;
    }
    m->group = nsets > 1 || kind == S_TOUCH;
    **tail = m;
    *tail = &m->next;
    return true;
}

void node_ws_merge(node_ws_t *ws)
{
    node_merged_t **tail = &ws->merged;
    bool ok = true;
    for (size_t i = 0; i < ws->n && ok;) {
        if (s_kind(&ws->stmts[i]) == S_NONE) {
            i++;
            continue;
        }
        size_t end = i;
        while (end < ws->n && s_kind(&ws->stmts[end]) != S_NONE) {
            end++;
        }
        ok = s_collect(&ws, 1, &i, &end, S_MSG, 2, (int)i, &tail) &&
             s_collect(&ws, 1, &i, &end, S_EVT, 2, (int)i, &tail);
        i = end;
    }
    if (!ok) {
        node_merged_free_list(&ws->merged);
        return;
    }
    for (node_merged_t *m = ws->merged; m; m = m->next) {
        for (int i = 0; i < m->n; i++) {
            m->members[i]->merged = true;
        }
    }
}

void node_merged_free_list(node_merged_t **list_p)
{
    while (*list_p) {
        node_merged_t *m = *list_p;
        *list_p = m->next;
        for (int i = 0; !m->group && i < m->n; i++) {
            m->members[i]->merged = false;
        }
        s_merged_free(m);
    }
}

bool node_ws_groupable(const node_ws_t *ws, size_t *run, size_t *touch)
{
    size_t i = 0;
    while (i < ws->n && s_kind(&ws->stmts[i]) == S_NONE) {
        if (ws->stmts[i].kind == NODE_SK_EVENT) {
            return false; /* an event the merged touch could not see in order */
        }
        i++;
    }
    size_t end = i;
    while (end < ws->n && s_kind(&ws->stmts[end]) != S_NONE) {
        end++;
    }
    if (i == end || ws->touch_stmt != (int)end ||
        strcmp(ws->stmts[end].name, NODE_Q_CONV_TOUCH_LITE) != 0) {
        return false;
    }
    for (size_t k = end + 1; k < ws->n; k++) {
        if (s_kind(&ws->stmts[k]) != S_NONE || ws->stmts[k].kind == NODE_SK_EVENT) {
            return false;
        }
    }
    *run = i;
    *touch = end;
    return true;
}

node_merged_t *node_group_merge(node_ws_t *const *sets, size_t n)
{
    size_t *from = malloc((n ? n : 1) * sizeof *from);
    size_t *to = malloc((n ? n : 1) * sizeof *to);
    node_merged_t *list = NULL, **tail = &list;
    bool ok = from && to;
    for (size_t w = 0; ok && w < n; w++) {
        ok = node_ws_groupable(sets[w], &from[w], &to[w]);
    }
    ok = ok && s_collect(sets, n, from, to, S_MSG, 1, -1, &tail) &&
         s_collect(sets, n, from, to, S_EVT, 1, -1, &tail);
    for (size_t w = 0; ok && w < n; w++) {
        to[w]++; /* the touch */
    }
    ok = ok && s_collect(sets, n, from, to, S_TOUCH, 1, -1, &tail);
    free(from);
    free(to);
    if (!ok) {
        node_merged_free_list(&list);
    }
    return list;
}

/* The member of m that row r of res (conversation, then seq for inserts) stands for. */
static node_stmt_t *s_member(node_merged_t *m, const db_result_t *res, int r)
{
    const char *conv = db_result_value(res, r, 0);
    int sp = s_seq_param(m);
    const char *seq = sp >= 0 ? db_result_value(res, r, 1) : NULL;
    int cp = m->kind == S_TOUCH ? 0 : 1; /* the conversation parameter */
    /* Rows come back in the members' order: try that one first. */
    for (int k = 0; k < m->n; k++) {
        node_stmt_t *s = m->members[(r + k) % m->n];
        if (conv && s->params[cp] && strcmp(s->params[cp], conv) == 0 &&
            (sp < 0 || (seq && s->params[sp] && strcmp(s->params[sp], seq) == 0))) {
            return s;
        }
    }
    return NULL;
}

void node_merged_result(void *arg, db_status_t status, const db_result_t *res)
{
    node_merged_t *m = arg;
    for (int i = 0; i < m->n; i++) {
        node_stmt_clear_result(m->members[i]);
    }
    if (status == DB_ERR_QUERY && !m->group) {
        node_stmt_t *s = m->members[0];
        s->status = 1;
        if (s->ws->failed < 0) {
            s->ws->failed = (int)(s - s->ws->stmts);
        }
        return;
    }
    if (status != DB_OK || !res) {
        return; /* a group's failure: not attributed, the sets are re-run one by one */
    }
    int skip = s_seq_param(m) >= 0 ? 2 : 1; /* conversation (and seq) lead each row */
    int cols = db_result_cols(res);
    for (int r = 0; r < db_result_rows(res); r++) {
        node_stmt_t *s = s_member(m, res, r);
        if (!s) {
            LOG_W("%s returned a row for no member: conversation=%s", m->name,
                  db_result_value(res, r, 0));
            continue;
        }
        s->rows = 1;
        for (int c = skip; c < cols && c - skip < STMT_COLS_MAX; c++) {
            const char *v = db_result_value(res, r, c);
            s->cols[c - skip] = v ? strdup(v) : NULL;
        }
    }
}
