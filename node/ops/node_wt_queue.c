/*  node_wt_queue — worktree creates and removals, serialised: each node runs
    them one at a time from a bounded queue, and around each one holds the
    Postgres advisory lock of the repository (pg_try_advisory_lock on the
    node's own connection, so waiting never blocks the loop: a refused lock
    is retried on the next tick until the request's deadline), so no two git
    operations on the repository run at once anywhere in the cluster. The
    git work runs on the agent pool; its record (the worktrees row and a
    worktree.created / worktree.removed team event) is one transaction; a
    create whose record fails is undone. Loop thread, except the s_*_work
    functions (pool workers). */
#define LOG_MODULE "node_wt"
#include "common/log.h"
#include "common/util.h"
#include "node/agent/agent_worktree.h"
#include "node/ops/node_ops.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_QUEUE_MAX 64   /* worktree creates/removals waiting per node */
#define S_LOCK_WAIT 8000 /* ms a create/removal waits for the repository lock */

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef enum { OP_CREATE, OP_DELETE } s_kind_t;
typedef enum { ST_QUEUED, ST_LOCKING, ST_LOCK_WAIT, ST_GIT, ST_RECORD } s_stage_t;

/* A create or a removal. */
struct node_wt_op_t {
    struct node_wt_op_t *next;         /* queue */
    node_agents_t *agents;             /* owner */
    node_req_t *req;                   /* answered at the end */
    s_kind_t kind;                     /* what */
    s_stage_t stage;                   /* where it is */
    int64_t deadline_ms;               /* mono: give up waiting for the lock */
    s_uuid_t id;                       /* worktree id */
    s_uuid_t team;                     /* caller's team */
    char branch[AGENT_BRANCH_MAX + 1]; /* create: new branch */
    char base[AGENT_WT_REF_MAX + 1];   /* create: base ref ("" = HEAD) */
    bool force;                        /* delete: even with changes */
    agent_wt_status_t st;              /* worker: outcome */
    agent_worktree_info_t info;        /* worker: the worktree */
    char err[256];                     /* worker: message */
    char *row;                         /* delete: the stored row (JSON) */
};
typedef node_wt_op_t s_op_t;

typedef struct node_wtq_t {
    s_op_t *head, *tail; /* head is the running op */
    size_t n;            /* ops queued (running one included) */
    bool lock_held;      /* we hold the repository lock */
    int timer;           /* retries a lock another node holds (NODE_AGENT_TICK_MS), -1 none */
} node_wtq_t;

static void s_next(node_agents_t *ag);

static void s_op_free(s_op_t *op)
{
    node_req_destroy(&op->req);
    free(op->row);
    free(op);
}

/* ---- the queue --------------------------------------------------------------------------- */

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    node_wt_tick(arg);
    return 0;
}

int node_wt_init(node_agents_t *ag)
{
    ag->wtq = calloc(1, sizeof *ag->wtq);
    if (!ag->wtq) {
        return -1;
    }
    ag->wtq->timer = zloop_timer(ag->node->loop, NODE_AGENT_TICK_MS, 0, s_on_tick, ag);
    return ag->wtq->timer < 0 ? -1 : 0;
}

void node_wt_destroy(node_agents_t *ag)
{
    node_wtq_t *q = ag->wtq;
    if (!q) {
        return;
    }
    /* Every op is refused; one on the pool finishes in agent_pool_destroy and
       is freed there (the database work ended with the connection). */
    for (s_op_t *op = q->head, *next; op; op = next) {
        next = op->next;
        node_reply_busy(ag->node, &op->req, "node is stopping");
        if (op->stage == ST_GIT) {
            op->agents = NULL;
        } else {
            s_op_free(op);
        }
    }
    if (q->timer >= 0) {
        zloop_timer_end(ag->node->loop, q->timer);
    }
    free(q);
    ag->wtq = NULL;
}

/* Finishes the head op (answered already) and starts the next. */
static void s_pop(node_agents_t *ag, bool unlock)
{
    node_wtq_t *q = ag->wtq;
    s_op_t *op = q->head;
    q->head = op->next;
    q->tail = q->head ? q->tail : NULL;
    q->n--;
    s_op_free(op);
    node_t *node = ag->node;
    if (unlock && q->lock_held && !node->closing) {
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)ag->wt_lock_key);
        const char *params[] = {key};
        db_batch_t *b = db_batch_new(node->db, false);
        if (b && db_batch_add(b, NODE_Q_WT_UNLOCK, NULL, 1, params, NULL, NULL) == 0) {
            db_batch_submit(&b, NULL, NULL);
        }
        db_batch_destroy(&b);
    }
    q->lock_held = false;
    s_next(ag);
}

static void s_fail(node_agents_t *ag, int status, const char *code, const char *msg)
{
    s_op_t *op = ag->wtq->head;
    node_reply_error(ag->node, &op->req, status, code, msg);
    s_pop(ag, true);
}

/* ---- recording ---------------------------------------------------------------------------- */

/* The API's Worktree object from the worker's info and the stored created_at. */
static char *s_wt_json(const agent_worktree_info_t *info, const char *id, const char *created)
{
    json_t *j = agent_worktree_info_json(info);
    if (!j) {
        return NULL;
    }
    json_object_set_new(j, "id", json_string(id));
    json_object_set_new(j, "created_at", created ? json_string(created) : json_null());
    char *text = node_json_text(j);
    json_decref(j);
    return text;
}

typedef struct {
    s_op_t *op;      /* the head op */
    char *created;   /* created_at of the inserted row */
    uint64_t evt_id; /* stored event */
    char *evt_json;  /* its JSON */
    bool conflict;   /* a unique violation (branch recorded for the team) */
} s_rec_t;

static void s_on_insert(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        const char *c = db_result_value(res, 0, 0);
        r->created = c ? strdup(c) : NULL;
    }
}

static void s_on_event(void *arg, db_status_t status, const db_result_t *res)
{
    s_rec_t *r = arg;
    if (status == DB_OK && db_result_rows(res) > 0) {
        r->evt_id = (uint64_t)node_parse_ll(db_result_value(res, 0, 0), 0, 0, INT64_MAX);
        const char *j = db_result_value(res, 0, 1);
        node_buf_t b;
        node_buf_init(&b);
        node_buf_json(&b, j); /* Postgres' JSON: compacted, as every event the node sends */
        if (j && !b.oom) {
            r->evt_json = b.data; /* taken */
        } else {
            node_buf_free(&b);
        }
    }
}

/* Undoes a git create whose record could not be stored (worker). */
static void s_undo_work(void *arg)
{
    s_op_t *op = arg;
    agent_worktree_remove(op->agents->repo, op->id, true, NULL, 0);
}

static void s_undo_done(void *arg, bool cancelled)
{
    free(arg);
}

static void s_undo(node_agents_t *ag, const s_op_t *op)
{
    s_op_t *copy = malloc(sizeof *copy);
    if (copy) {
        *copy = *op;
        copy->req = NULL;
        copy->row = NULL;
        if (agent_pool_submit(ag->pool, s_undo_work, s_undo_done, copy) < 0) {
            free(copy);
        }
    }
}

static void s_on_recorded(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_rec_t *r = arg;
    s_op_t *op = r->op;
    node_agents_t *ag = op->agents;
    if (!ag) {
        free(r->created);
        free(r->evt_json);
        free(r);
        return;
    }
    node_t *node = ag->node;
    uint8_t team[16], zero[16] = {0};
    util_uuid_parse(op->team, team);
    if (status != DB_OK) {
        bool dup = sqlstate && strcmp(sqlstate, "23505") == 0;
        if (op->kind == OP_CREATE) {
            s_undo(ag, op);
        }
        LOG_W("worktree record failed id=%s error=\"%s\"", op->id, error ? error : "");
        s_fail(ag, dup ? 409 : 503, dup ? "conflict" : "unavailable",
               dup ? "a worktree with this branch exists" : "database unavailable");
    } else {
        if (r->evt_json) {
            node_event_out_t ev = {.id = r->evt_id,
                                   .type = op->kind == OP_CREATE ? "worktree.created"
                                                                 : "worktree.removed",
                                   .body = r->evt_json};
            node_publish(node, team, zero, &ev);
        }
        char *body = op->kind == OP_CREATE ? s_wt_json(&op->info, op->id, r->created) : NULL;
        if (op->kind == OP_CREATE) {
            node_reply(node, &op->req, body ? 201 : 503, body ? body : "{}", 0);
        } else {
            node_reply(node, &op->req, 204, "", 0);
        }
        free(body);
        s_pop(ag, true);
    }
    free(r->created);
    free(r->evt_json);
    free(r);
}

static void s_record(node_agents_t *ag, s_op_t *op)
{
    node_t *node = ag->node;
    op->stage = ST_RECORD;
    s_rec_t *r = calloc(1, sizeof *r);
    char *action = NULL;
    if (op->kind == OP_CREATE) {
        char *wt = s_wt_json(&op->info, op->id, NULL);
        action = wt ? malloc(strlen(wt) + 16) : NULL;
        if (action) {
            sprintf(action, "{\"worktree\":%s}", wt);
        }
        free(wt);
    } else {
        action = malloc(strlen(op->row ? op->row : "null") + 16);
        if (action) {
            sprintf(action, "{\"worktree\":%s}", op->row ? op->row : "null");
        }
    }
    const char *src = "{\"kind\":\"user\",\"id\":\"worktrees\"}";
    const char *type = op->kind == OP_CREATE ? "worktree.created" : "worktree.removed";
    /* The base as the 201 shows it: the ref given, or "HEAD" when none was. */
    const char *p_ins[] = {op->id,
                           op->team,
                           op->info.branch,
                           op->info.path,
                           op->info.base_ref[0] ? op->info.base_ref : NULL,
                           op->info.head[0] ? op->info.head : NULL};
    const char *p_rm[] = {op->id, op->team};
    const char *p_evt[] = {op->team, type, src, action};
    db_batch_t *b = r && action && !node->closing ? db_batch_new(node->db, true) : NULL;
    bool ok = b && (op->kind == OP_CREATE
                        ? db_batch_add(b, NODE_Q_WT_INSERT, NULL, 6, p_ins, s_on_insert, r) == 0
                        : db_batch_add(b, NODE_Q_WT_REMOVE, NULL, 2, p_rm, NULL, NULL) == 0);
    if (!ok || db_batch_add(b, NODE_Q_WT_EVT, NULL, 4, p_evt, s_on_event, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        free(action);
        if (op->kind == OP_CREATE) {
            s_undo(ag, op);
        }
        s_fail(ag, 503, "unavailable", "database unavailable");
        return;
    }
    free(action);
    r->op = op;
    db_batch_submit(&b, s_on_recorded, r);
}

/* ---- git on the pool ---------------------------------------------------------------------- */

static void s_git_work(void *arg)
{
    s_op_t *op = arg;
    node_agents_t *ag = op->agents;
    if (op->kind == OP_CREATE) {
        agent_worktree_spec_t spec = {.repo_path = ag->repo,
                                      .worktrees_dir = ag->wt_dir,
                                      .id = op->id,
                                      .branch = op->branch,
                                      .base_ref = op->base,
                                      .team = op->team};
        op->st = agent_worktree_create(&spec, &op->info, op->err, sizeof op->err);
    } else {
        op->st = agent_worktree_remove(ag->repo, op->id, op->force, op->err, sizeof op->err);
    }
}

static void s_git_done(void *arg, bool cancelled)
{
    s_op_t *op = arg;
    node_agents_t *ag = op->agents;
    if (!ag) {
        /* The node stopped meanwhile: the queue is gone. */
        node_req_destroy(&op->req);
        s_op_free(op);
        return;
    }
    if (cancelled) {
        s_fail(ag, 503, "unavailable", "node is stopping");
        return;
    }
    bool gone = op->kind == OP_DELETE && op->st == AGENT_WT_NOT_FOUND;
    if (op->st != AGENT_WT_OK && !gone) {
        int http = agent_worktree_http_status(op->st);
        const char *field = op->kind == OP_CREATE && op->st == AGENT_WT_INVALID ? "base" : NULL;
        if (field) {
            node_reply_field(ag->node, &op->req, field);
            s_pop(ag, true);
            return;
        }
        s_fail(ag, http,
               http == 404   ? "not_found"
               : http == 409 ? "conflict"
                             : "unavailable",
               op->err[0] ? op->err : "worktree operation failed");
        return;
    }
    s_record(ag, op);
}

/* ---- the repository lock ------------------------------------------------------------------ */

static void s_on_lock_row(void *arg, db_status_t status, const db_result_t *res)
{
    bool *got = arg;
    const char *v = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    *got = v && strcmp(v, "t") == 0;
}

typedef struct {
    node_agents_t *ag; /* owner */
    bool got;          /* lock acquired */
    long long count;   /* create: the team's active worktrees (-1 unknown) */
} s_lock_t;

static void s_on_count_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_lock_t *l = arg;
    const char *v = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    l->count = v ? node_parse_ll(v, -1, 0, LLONG_MAX) : -1;
}

static void s_on_lock(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_lock_t *l = arg;
    node_agents_t *ag = l->ag;
    bool got = l->got;
    long long count = l->count;
    free(l);
    node_wtq_t *q = ag->node->closing ? NULL : ag->wtq;
    s_op_t *op = q ? q->head : NULL;
    if (!op || op->stage != ST_LOCKING) {
        return;
    }
    if (status != DB_OK) {
        s_fail(ag, 503, "unavailable", "database unavailable");
        return;
    }
    if (!got) {
        op->stage = ST_LOCK_WAIT; /* retried by node_wt_tick */
        return;
    }
    q->lock_held = true;
    /* Every create in the cluster holds the lock until its row is stored: the count is
       exact, and a create past the team's limit runs no git at all. */
    if (op->kind == OP_CREATE && (count < 0 || count >= (long long)op->req->lim_worktrees)) {
        char why[128];
        snprintf(why, sizeof why, "this team has %lld active worktrees (its limit): remove one",
                 count);
        s_fail(ag, count < 0 ? 503 : 409, count < 0 ? "unavailable" : "conflict",
               count < 0 ? "database unavailable" : why);
        return;
    }
    op->stage = ST_GIT;
    if (agent_pool_submit(ag->pool, s_git_work, s_git_done, op) < 0) {
        op->stage = ST_LOCKING;
        s_fail(ag, 503, "unavailable", "the node's worker pool is busy");
    }
}

static void s_try_lock(node_agents_t *ag)
{
    node_t *node = ag->node;
    s_op_t *op = ag->wtq->head;
    if (util_mono_ms() > op->deadline_ms) {
        s_fail(ag, 503, "unavailable", "the repository is busy (another node holds it)");
        return;
    }
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)ag->wt_lock_key);
    const char *params[] = {key};
    s_lock_t *l = calloc(1, sizeof *l);
    db_batch_t *b = l && !node->closing ? db_batch_new(node->db, false) : NULL;
    const char *team[] = {op->team};
    if (l) {
        l->count = -1;
    }
    if (!b || db_batch_add(b, NODE_Q_WT_LOCK, NULL, 1, params, s_on_lock_row, &l->got) < 0 ||
        (op->kind == OP_CREATE &&
         db_batch_add(b, NODE_Q_WT_COUNT, NULL, 1, team, s_on_count_row, l) < 0)) {
        db_batch_destroy(&b);
        free(l);
        s_fail(ag, 503, "unavailable", "database unavailable");
        return;
    }
    l->ag = ag;
    op->stage = ST_LOCKING;
    db_batch_submit(&b, s_on_lock, l);
}

static void s_next(node_agents_t *ag)
{
    node_wtq_t *q = ag->wtq;
    if (q->head && q->head->stage == ST_QUEUED) {
        s_try_lock(ag);
    }
}

void node_wt_tick(node_agents_t *ag)
{
    node_wtq_t *q = ag->wtq;
    if (q && q->head && q->head->stage == ST_LOCK_WAIT) {
        s_try_lock(ag);
    }
}

void node_wt_enqueue(node_t *node, node_req_t *req, node_wt_op_t *op)
{
    node_agents_t *ag = node->agents;
    node_wtq_t *q = ag->wtq;
    if (q->n >= S_QUEUE_MAX) {
        free(op);
        node_reply_busy(node, &req, "too many worktree operations waiting");
        return;
    }
    op->agents = ag;
    op->req = req;
    op->deadline_ms = util_mono_ms() + S_LOCK_WAIT;
    util_uuid_format(req->team_id, op->team);
    if (q->tail) {
        q->tail->next = op;
    } else {
        q->head = op;
    }
    q->tail = op;
    q->n++;
    s_next(ag);
}

node_wt_op_t *node_wt_op_create(const char *branch, const char *base)
{
    s_op_t *op = calloc(1, sizeof *op);
    if (op) {
        op->kind = OP_CREATE;
        uint8_t raw[16];
        util_uuid_generate(raw);
        util_uuid_format(raw, op->id);
        snprintf(op->branch, sizeof op->branch, "%s", branch);
        snprintf(op->base, sizeof op->base, "%s", base ? base : "");
    }
    return op;
}

node_wt_op_t *node_wt_op_delete(const char *id, bool force, const char *row)
{
    s_op_t *op = calloc(1, sizeof *op);
    if (op && !(op->row = strdup(row))) {
        free(op);
        return NULL;
    }
    if (op) {
        op->kind = OP_DELETE;
        op->force = force;
        snprintf(op->id, sizeof op->id, "%s", id);
    }
    return op;
}
