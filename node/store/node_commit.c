/*  node_commit — group commit. Actors describe their writes as write sets
    (ordered prepared statements with copied parameters); every write set
    submitted during one loop turn joins the open group, which a zero-delay
    timer sends at the end of the turn as ONE transactional db_batch. When a
    group fails on a statement, the write set owning that statement alone is
    failed and the others are sent again as a new group; when the failure
    cannot be attributed (e.g. COMMIT), each write set is re-run in its own
    transaction. So one bad request never fails its neighbours.
    Each write set is preceded, in the same transaction, by its ownership guard
    (node_fence.c; a group's guards go as one statement, whose failure is not
    attributed): a write set whose guard fails is answered MOVED and its
    actor dropped, like any failed write set it never fails its neighbours.
    Loop thread only. */
#define LOG_MODULE "node_commit"
#include "common/log.h"
#include "common/util.h"
#include "node/store/node_store.h"
#include "node/store/node_ws_stmt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define S_FENCE_FAILED INT_MAX /* ws->failed: the ownership guard (sent first) failed */
/* Groups sent and not completed at most. Postgres runs one connection's transactions one
   after the other, so more in flight would not run sooner: the write sets of later loop
   turns wait in the open group instead and commit together (one WAL flush, one commit
   for many). Two, not one, so that Postgres has the next group queued while the node
   handles the previous one's results. */
#define S_INFLIGHT_MAX 2

typedef struct s_group_t {
    node_commit_t *commit; /* owner */
    node_ws_t *head;       /* write sets, in submission order */
    node_ws_t *tail;
    size_t n;              /* write sets */
    node_merged_t *merged; /* statements merged across its write sets (while sent) */
    int64_t sent_us;       /* mono µs it was sent (metrics) */
} s_group_t;

static void s_group_free(s_group_t *g)
{
    if (g) {
        node_merged_free_list(&g->merged);
        free(g);
    }
}

struct node_commit_t {
    node_t *node;              /* borrowed */
    node_ws_done_fn *done;     /* outcome callback */
    s_group_t *open;           /* group collecting this loop turn's writes, or NULL */
    int flush_timer;           /* zero-delay timer sending the open group, -1 none */
    size_t in_flight;          /* groups sent and not completed */
    const node_guard_t *guard; /* ownership guard (borrowed), or NULL */
};

int node_commit_add_own(node_commit_t *self, node_ws_t *ws)
{
    return self->guard ? self->guard->add_own(self->node, ws) : 0;
}

/* ---- write sets -------------------------------------------------------------------------- */

node_ws_t *node_ws_new(node_actor_t *actor, node_req_t *req)
{
    node_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws) {
        return NULL;
    }
    ws->actor = actor;
    ws->req = req;
    ws->failed = ws->msg_stmt = ws->touch_stmt = ws->idem_stmt = ws->live_at = -1;
    ws->saved_msg_seq = actor->last_msg_seq;
    ws->saved_evt_seq = actor->last_evt_seq;
    ws->saved_state = actor->state;
    return ws;
}

void node_stmt_clear_result(node_stmt_t *s)
{
    for (int c = 0; c < STMT_COLS_MAX; c++) {
        free(s->cols[c]);
        s->cols[c] = NULL;
    }
    s->rows = -1;
    s->status = 0;
}

void node_ws_destroy(node_ws_t **ws_p)
{
    if (!ws_p || !*ws_p) {
        return;
    }
    node_ws_t *ws = *ws_p;
    for (size_t i = 0; i < ws->n; i++) {
        node_stmt_t *s = &ws->stmts[i];
        for (int p = 0; p < s->nparams; p++) {
            free(s->params[p]);
        }
        free(s->params);
        node_stmt_clear_result(s);
    }
    node_merged_free_list(&ws->merged);
    free(ws->stmts);
    free(ws->plan.content);
    free(ws->plan.whole_reply);
    node_req_destroy(&ws->req);
    free(ws);
    *ws_p = NULL;
}

static int s_copy_params(node_stmt_t *s, int nparams, const char *const *params)
{
    s->params = calloc((size_t)(nparams ? nparams : 1), sizeof *s->params);
    if (!s->params) {
        return -1;
    }
    s->nparams = nparams;
    for (int p = 0; p < nparams; p++) {
        if (params[p] && !(s->params[p] = strdup(params[p]))) {
            return -1;
        }
    }
    return 0;
}

int node_ws_add(
    node_ws_t *ws, const char *stmt, node_stmt_kind_t kind, int nparams, const char *const *params)
{
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 8;
        node_stmt_t *stmts = realloc(ws->stmts, cap * sizeof *stmts);
        if (!stmts) {
            ws->oom = true;
            return -1;
        }
        ws->stmts = stmts;
        ws->cap = cap;
    }
    node_stmt_t *s = &ws->stmts[ws->n];
    memset(s, 0, sizeof *s);
    s->ws = ws;
    s->name = stmt;
    s->kind = (uint8_t)kind;
    s->rows = -1;
    /* Counted before copying so that destroy frees a half-copied statement. */
    ws->n++;
    if (s_copy_params(s, nparams, params) < 0) {
        ws->oom = true;
        return -1;
    }
    return (int)ws->n - 1;
}

const char *node_ws_value(const node_ws_t *ws, int stmt, int col)
{
    if (stmt < 0 || (size_t)stmt >= ws->n || col < 0 || col >= STMT_COLS_MAX) {
        return NULL;
    }
    return ws->stmts[stmt].cols[col];
}

int node_ws_find(const node_ws_t *ws, const char *stmt)
{
    for (size_t i = 0; i < ws->n; i++) {
        if (strcmp(ws->stmts[i].name, stmt) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *node_ws_param(const node_ws_t *ws, int stmt, int p)
{
    if (stmt < 0 || (size_t)stmt >= ws->n || p < 0 || p >= ws->stmts[stmt].nparams) {
        return NULL;
    }
    return ws->stmts[stmt].params[p];
}

int node_ws_rows(const node_ws_t *ws, int stmt)
{
    if (stmt < 0 || (size_t)stmt >= ws->n) {
        return -1;
    }
    return ws->stmts[stmt].rows;
}

const char *node_ws_name(const node_ws_t *ws, int stmt)
{
    return stmt >= 0 && (size_t)stmt < ws->n ? ws->stmts[stmt].name : NULL;
}

/* ---- statement and group callbacks ------------------------------------------------------- */

static void s_on_stmt(void *arg, db_status_t status, const db_result_t *res)
{
    node_stmt_t *s = arg;
    node_stmt_clear_result(s);
    if (status == DB_ERR_QUERY) {
        s->status = 1;
        if (s->ws->failed < 0) {
            s->ws->failed = (int)(s - s->ws->stmts);
        }
        return;
    }
    if (status != DB_OK || !res) {
        return;
    }
    s->rows = db_result_rows(res);
    int cols = db_result_cols(res);
    for (int c = 0; c < cols && c < STMT_COLS_MAX && s->rows > 0; c++) {
        const char *v = db_result_value(res, 0, c);
        s->cols[c] = v ? strdup(v) : NULL;
    }
}

/* The guard's result: a failure marks the write set (its statements are then aborted). */
static void s_on_fence(void *arg, db_status_t status, const db_result_t *res)
{
    node_ws_t *ws = arg;
    if (status == DB_ERR_QUERY && ws->failed < 0) {
        ws->failed = S_FENCE_FAILED;
    }
}

static node_ws_outcome_t s_classify(node_ws_t *ws, const char *sqlstate)
{
    if (ws->failed == S_FENCE_FAILED) {
        /* 22012 is the guard's "not ours"; anything else (a timeout...) is a plain 503. */
        return sqlstate && strcmp(sqlstate, "22012") == 0 ? NODE_WS_STALE : NODE_WS_FAILED;
    }
    bool unique = sqlstate && strcmp(sqlstate, "23505") == 0;
    const node_stmt_t *s = ws->failed >= 0 ? &ws->stmts[ws->failed] : NULL;
    if (!s) {
        return NODE_WS_FAILED;
    }
    switch (s->kind) {
        case NODE_SK_EVENT:
        case NODE_SK_SEQ:
            return unique ? NODE_WS_STALE : NODE_WS_FAILED;
        case NODE_SK_IDEM:
            return unique ? NODE_WS_IDEM : NODE_WS_FAILED;
        case NODE_SK_CONV:
            if (unique) {
                return NODE_WS_EXISTS;
            }
            break;
        case NODE_SK_WORKTREE:
            ws->field = "worktree_id";
            return NODE_WS_FIELD;
        default:
            break;
    }
    /* Data exceptions (22xxx) and constraint violations (23xxx) refuse a value. */
    if (sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0)) {
        return NODE_WS_FIELD;
    }
    return NODE_WS_FAILED;
}

static void s_group_send(node_commit_t *self, s_group_t *g);

static s_group_t *s_group_new(node_commit_t *self)
{
    s_group_t *g = calloc(1, sizeof *g);
    if (g) {
        g->commit = self;
    }
    return g;
}

static void s_group_push(s_group_t *g, node_ws_t *ws)
{
    ws->next = NULL;
    ws->failed = -1;
    if (g->tail) {
        g->tail->next = ws;
    } else {
        g->head = ws;
    }
    g->tail = ws;
    g->n++;
}

static node_ws_t *s_group_pop(s_group_t *g)
{
    node_ws_t *ws = g->head;
    if (ws) {
        g->head = ws->next;
        if (!g->head) {
            g->tail = NULL;
        }
        g->n--;
        ws->next = NULL;
    }
    return ws;
}

static void s_finish(node_commit_t *self, node_ws_t *ws, node_ws_outcome_t outcome)
{
    if (outcome == NODE_WS_OK) {
        if (self->guard) {
            self->guard->committed(self->node, ws);
        }
    } else if (outcome == NODE_WS_STALE && ws->failed == S_FENCE_FAILED && self->guard) {
        /* Answers MOVED now; the STALE outcome then drops the actor. */
        self->guard->lost(self->node, ws);
    }
    self->done(self->node, ws, outcome);
}

/* Re-sends the write sets of g that did not cause the failure. */
static void s_group_retry(node_commit_t *self, s_group_t *g, const char *sqlstate)
{
    node_ws_t *culprit = NULL;
    for (node_ws_t *ws = g->head; ws && !culprit; ws = ws->next) {
        culprit = ws->failed >= 0 ? ws : NULL;
    }
    node_ws_t *ws;
    s_group_t *rest = NULL;
    while ((ws = s_group_pop(g))) {
        if (ws == culprit) {
            s_finish(self, ws, s_classify(ws, sqlstate));
            continue;
        }
        /* Unattributed failure: each write set alone; otherwise one group of the rest. */
        if (!rest || !culprit) {
            if (rest) {
                s_group_send(self, rest);
            }
            rest = s_group_new(self);
        }
        if (!rest) {
            s_finish(self, ws, NODE_WS_FAILED);
            continue;
        }
        s_group_push(rest, ws);
    }
    if (rest) {
        s_group_send(self, rest);
    }
}

static void s_on_group(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_group_t *g = arg;
    node_commit_t *self = g->commit;
    self->in_flight--;
    if (self->node->metrics) {
        metrics_hist_observe(&self->node->metrics->commit_us, util_mono_us() - g->sent_us);
    }
    if (status != DB_OK) {
        LOG_I("group failed writes=%zu status=%d sqlstate=%s error=\"%s\"", g->n, (int)status,
              sqlstate ? sqlstate : "", error ? error : "");
    }
    node_ws_t *ws;
    if (status == DB_OK || status == DB_ERR_CONN || g->n == 1) {
        while ((ws = s_group_pop(g))) {
            node_ws_outcome_t o = status == DB_OK         ? NODE_WS_OK
                                  : status == DB_ERR_CONN ? NODE_WS_CONN
                                                          : s_classify(ws, sqlstate);
            s_finish(self, ws, o);
        }
    } else {
        s_group_retry(self, g, sqlstate);
    }
    s_group_free(g);
    /* What accumulated while the pipeline was full goes now, as one group. */
    if (self->open && self->flush_timer < 0 && self->in_flight < S_INFLIGHT_MAX) {
        node_commit_flush(self);
    }
}

/* Adds statements [from, to) of ws (its own merged inserts in their place). */
static bool s_add_stmts(db_batch_t *batch, node_ws_t *ws, size_t from, size_t to)
{
    bool ok = true;
    node_merged_t *m = ws->merged;
    for (size_t i = from; i < to && ok; i++) {
        for (; m && m->at <= (int)i && ok; m = m->next) {
            ok = m->at < (int)from ||
                 db_batch_add(batch, m->name, NULL, m->nparams, (const char *const *)m->params,
                              node_merged_result, m) == 0;
        }
        node_stmt_t *s = &ws->stmts[i];
        if (ok && !s->merged) {
            ok = db_batch_add(batch, s->name, NULL, s->nparams, (const char *const *)s->params,
                              s_on_stmt, s) == 0;
        }
    }
    return ok;
}

/* The group's write sets in one transaction: the guards first (one statement for
   several); then the sets whose inserts and touch can go with the others'
   (node_ws_merge.c): their statements before the inserts, the merged inserts and
   touches, their statements after the touch; then the other sets whole. */
static bool s_group_add(node_commit_t *self, db_batch_t *batch, s_group_t *g)
{
    node_t *node = self->node;
    bool ok = true;
    node_ws_t **sets = g->n > 1 ? malloc(g->n * sizeof *sets) : NULL;
    size_t *runs = g->n > 1 ? malloc(2 * g->n * sizeof *runs) : NULL;
    size_t ns = 0;
    ok = !self->guard || self->guard->add_guards(node, batch, g->head, s_on_fence) == 0;
    for (node_ws_t *ws = g->head; ws && ok; ws = ws->next) {
        ws->grouped = false;
        if (sets && runs && node_ws_groupable(ws, &runs[2 * ns], &runs[2 * ns + 1])) {
            sets[ns++] = ws;
        }
    }
    g->merged = ns > 1 ? node_group_merge(sets, ns) : NULL;
    ns = g->merged ? ns : 0;
    for (size_t w = 0; w < ns && ok; w++) {
        sets[w]->grouped = true;
        ok = s_add_stmts(batch, sets[w], 0, runs[2 * w]);
    }
    for (node_merged_t *m = g->merged; m && ok; m = m->next) {
        ok = db_batch_add(batch, m->name, NULL, m->nparams, (const char *const *)m->params,
                          node_merged_result, m) == 0;
    }
    for (size_t w = 0; w < ns && ok; w++) {
        ok = s_add_stmts(batch, sets[w], runs[2 * w + 1] + 1, sets[w]->n);
    }
    for (node_ws_t *ws = g->head; ws && ok; ws = ws->next) {
        if (!ws->grouped) {
            if (!ws->merged) {
                node_ws_merge(ws); /* its own inserts merged, only when sent on its own */
            }
            ok = s_add_stmts(batch, ws, 0, ws->n);
        }
    }
    free(sets);
    free(runs);
    return ok;
}

static void s_group_send(node_commit_t *self, s_group_t *g)
{
    node_t *node = self->node;
    /* Claims released earlier in this loop turn are deleted before this group's claims. */
    if (self->guard) {
        self->guard->flush(node);
    }
    db_batch_t *batch = node->closing ? NULL : db_batch_new(node->db, true);
    if (!batch || !s_group_add(self, batch, g)) {
        db_batch_destroy(&batch);
        node_ws_t *ws;
        while ((ws = s_group_pop(g))) {
            s_finish(self, ws, NODE_WS_CONN);
        }
        s_group_free(g);
        return;
    }
    self->in_flight++;
    g->sent_us = util_mono_us();
    if (node->metrics) {
        metrics_hist_observe(&node->metrics->group_size, (int64_t)g->n);
        for (node_ws_t *ws = g->head; ws; ws = ws->next) {
            metrics_hist_observe(&node->metrics->queue_us, g->sent_us - ws->plan.submitted_us);
        }
    }
    db_batch_submit(&batch, s_on_group, g);
}

/* ---- the commit object ------------------------------------------------------------------- */

node_commit_t *node_commit_new(node_t *node, node_ws_done_fn *done, const node_guard_t *guard)
{
    node_commit_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->node = node;
    self->done = done;
    self->guard = guard;
    self->flush_timer = -1;
    return self;
}

void node_commit_destroy(node_commit_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_commit_t *self = *self_p;
    if (self->flush_timer >= 0) {
        zloop_timer_end(self->node->loop, self->flush_timer);
    }
    if (self->open) {
        node_ws_t *ws;
        while ((ws = s_group_pop(self->open))) {
            s_finish(self, ws, NODE_WS_CONN);
        }
        s_group_free(self->open);
    }
    free(self);
    *self_p = NULL;
}

void node_commit_flush(node_commit_t *self)
{
    if (self->flush_timer >= 0) {
        zloop_timer_end(self->node->loop, self->flush_timer);
        self->flush_timer = -1;
    }
    s_group_t *g = self->open;
    self->open = NULL;
    if (g) {
        s_group_send(self, g);
    }
}

static int s_on_flush(zloop_t *loop, int timer_id, void *arg)
{
    node_commit_t *self = arg;
    if (self->flush_timer == timer_id) {
        self->flush_timer = -1;
        if (self->in_flight < S_INFLIGHT_MAX) {
            node_commit_flush(self);
        } /* else the open group goes when a group in flight completes (s_on_group) */
    }
    return 0;
}

void node_commit_submit(node_commit_t *self, node_ws_t **ws_p)
{
    node_ws_t *ws = *ws_p;
    *ws_p = NULL;
    ws->plan.submitted_us = util_mono_us();
    if (ws->touch_stmt >= 0 && ws->reply_kind != NODE_REPLY_CONV) {
        ws->stmts[ws->touch_stmt].name = NODE_Q_CONV_TOUCH_LITE; /* its JSON is not needed */
    }
    if (!self->open && !(self->open = s_group_new(self))) {
        s_finish(self, ws, NODE_WS_FAILED);
        return;
    }
    s_group_push(self->open, ws);
    if (self->flush_timer < 0) {
        /* A zero-delay timer fires after this loop turn's readers: the end of the turn. */
        self->flush_timer = zloop_timer(self->node->loop, 0, 1, s_on_flush, self);
        if (self->flush_timer < 0) {
            node_commit_flush(self);
        }
    }
}

bool node_commit_idle(const node_commit_t *self)
{
    return !self->open && self->in_flight == 0;
}
