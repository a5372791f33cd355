/*  node_observe — the runs of a conversation's observers (issue 15). When a turn of the
    responder has ended (its end committed), the attachments and the latest messages are
    read; each observer whose trigger is due runs: echo answers at once, openai and
    anthropic make one model call (agent_llm, no tools) with the observer's prompt and the
    conversation as text, bounded by its timeout_s. Its outcome is owed to the
    conversation's actor, which writes it as its next write when it is free (ordered with
    the responder's writes, never inside one): observer.completed (or observer.failed) with
    source {"kind":"actor","name":…}, with config.message a message of role observer, with
    config.patch the title/metadata the reply gives (conversation.updated). Nothing here
    blocks or fails a turn of the responder. Bounded: NODE_OBS_RUNS_MAX runs per node, one
    per observer of a conversation (a trigger while it runs is skipped). Loop thread only. */
#define LOG_MODULE "node_observe"
#include "common/log.h"
#include "common/util.h"
#include "node/runtime/node_runtime.h"
#include "node/store/node_store.h"
#include "node/strategies/node_strategies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

#define S_HISTORY   20          /* latest messages an observer reads */
#define S_CONTENT   4000        /* characters of each message it reads */
#define S_TEXT_MAX  (16 * 1024) /* bytes of an observer's reply kept */
#define S_TIMEOUT_S 60          /* a run's bound without config.timeout_s */
#define S_KEEP_MS   30000       /* an outcome its actor could not take by then: dropped */
#define S_PROMPT                                                                                   \
    "You observe a conversation between a user and an assistant. Comment on it briefly."

#define Q_OBS_LOAD  "node_obs_load"
#define Q_OBS_HIST  "node_obs_hist"
#define Q_OBS_PATCH "node_obs_patch"

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmts[] = {
    /* $1 conv $2 team: each observer, and whether its trigger is due after the turn that
       just ended: after_turn always; every_n_turns when the ended turns are a multiple of
       n; on_event_types when the turn (since its turn.started) stored one of the types. */
    {Q_OBS_LOAD, 2,
     "WITH t AS (SELECT count(*) FILTER (WHERE type IN ('turn.completed', 'turn.failed')) AS "
     "ended, max(seq) FILTER (WHERE type = 'turn.started') AS started FROM events WHERE "
     "conversation_id = $1::uuid AND team_id = $2::uuid) SELECT a.name, a.strategy, "
     "a.config::text FROM actor_attachments a, t WHERE a.conversation_id = $1::uuid AND "
     "a.team_id = $2::uuid AND CASE a.trigger->>'type' WHEN 'after_turn' THEN true WHEN "
     "'every_n_turns' THEN t.ended > 0 AND t.ended % greatest((a.trigger->>'n')::int, 1) = 0 "
     "WHEN 'on_event_types' THEN EXISTS (SELECT 1 FROM events e WHERE e.conversation_id = "
     "$1::uuid AND e.seq >= coalesce(t.started, 0) AND e.type = ANY (string_to_array("
     "a.trigger->>'types', ','))) ELSE false END ORDER BY a.created_at, a.name"},
    /* $1 conv $2 team: the latest messages, newest first. */
    {Q_OBS_HIST, 2,
     "SELECT role, left(content, 4000) FROM messages WHERE conversation_id = $1::uuid AND "
     "team_id = $2::uuid AND status = 'completed' ORDER BY seq DESC LIMIT 20"},
    /* $1 conv $2 team $3 set title $4 title $5 metadata to merge. */
    {Q_OBS_PATCH, 5,
     "UPDATE conversations SET title = CASE WHEN $3::bool THEN $4::text ELSE title END, "
     "metadata = metadata || coalesce($5::jsonb, '{}'::jsonb) WHERE id = $1::uuid AND "
     "team_id = $2::uuid"},
};

int node_observe_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- runs -------------------------------------------------------------------------------- */

typedef struct s_run_t s_run_t;
struct s_run_t {
    s_run_t *next;                         /* the node's runs */
    node_observers_t *owner;               /* the list it is on */
    uint8_t conv[16], team[16];            /* its conversation */
    char name[NODE_OBSERVER_NAME_MAX + 1]; /* the observer */
    const cfg_strategy_t *strategy;        /* borrowed from the config */
    json_t *config;                        /* its config (owned) */
    agent_llm_request_t *req;              /* model call in flight, or NULL */
    node_buf_t text;                       /* its reply so far */
    int64_t deadline_ms;                   /* mono ms: fails (timeout) when not done by then */
    int64_t done_ms;                       /* mono ms it ended, 0 while it runs */
    bool failed;                           /* ended with reason */
    char reason[AGENT_LLM_REASON_MAX];     /* why it failed */
};

struct node_observers_t {
    node_t *node;  /* owner */
    s_run_t *head; /* runs, newest first */
    size_t n;      /* runs listed */
    size_t owed;   /* of them, ended: a write is owed */
};

node_observers_t *node_observers_new(node_t *node)
{
    node_observers_t *self = calloc(1, sizeof *self);
    if (self) {
        self->node = node;
    }
    return self;
}

static void s_run_free(s_run_t *r)
{
    agent_llm_cancel(&r->req);
    json_decref(r->config);
    node_buf_free(&r->text);
    free(r);
}

static void s_unlink(node_observers_t *self, s_run_t *r)
{
    for (s_run_t **p = &self->head; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            self->n--;
            self->owed -= r->done_ms ? 1 : 0;
            return;
        }
    }
}

void node_observers_destroy(node_observers_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_observers_t *self = *self_p;
    while (self->head) {
        s_run_t *r = self->head;
        self->head = r->next;
        s_run_free(r);
    }
    free(self);
    *self_p = NULL;
}

/* Has the actor of conv take the outcomes owed to it: activated if need be, else pumped
   (it takes them when it is free). May free any run. */
static void s_wake(node_t *node, const uint8_t conv[16], const uint8_t team[16])
{
    node_actor_t *a = node_actors_find(node->actors, conv);
    if (!a) {
        node_actor_warm(node, team, conv, UINT32_MAX);
    } else if (a->state == NODE_ACTOR_READY) {
        node_actor_pump(node, a);
    }
}

/* The run ended: its write is owed to the conversation's actor. With wake, the actor is
   woken (r may be freed by then). */
static void s_end_ex(s_run_t *r, const char *reason, bool wake)
{
    node_observers_t *self = r->owner;
    r->done_ms = util_mono_ms();
    self->owed++;
    if (reason) {
        r->failed = true;
        snprintf(r->reason, sizeof r->reason, "%s", reason);
    }
    if (wake) {
        uint8_t conv[16], team[16];
        memcpy(conv, r->conv, 16);
        memcpy(team, r->team, 16);
        s_wake(self->node, conv, team);
    }
}

static void s_end(s_run_t *r, const char *reason)
{
    s_end_ex(r, reason, true);
}

static void s_on_text(void *arg, const char *text, size_t len)
{
    s_run_t *r = arg;
    if (r->text.len + len <= S_TEXT_MAX) {
        node_buf_add(&r->text, text, len);
    }
}

static void s_on_done(void *arg, const char *stop_reason, const agent_llm_usage_t *usage)
{
    (void)stop_reason;
    (void)usage;
    s_run_t *r = arg;
    r->req = NULL;
    s_end(r, r->text.oom ? "out of memory" : NULL);
}

static void s_on_error(void *arg, const agent_llm_error_t *err)
{
    s_run_t *r = arg;
    r->req = NULL;
    s_end(r, err->reason[0] ? err->reason : "the model call failed");
}

/* Starts r: echo answers at once, the HTTP strategies make their model call. */
static void s_start(s_run_t *r, const char *transcript, int nmsgs)
{
    if (r->strategy->kind == CFG_STRATEGY_ECHO) {
        char head[96];
        snprintf(head, sizeof head, "%s saw %d messages: ", r->name, nmsgs);
        node_buf_str(&r->text, head);
        node_buf_add(&r->text, transcript, strnlen(transcript, 200));
        s_end(r, r->text.oom ? "out of memory" : NULL);
        return;
    }
    if (r->strategy->kind == CFG_STRATEGY_CLAUDE_CODE) {
        s_end(r, "observers run echo, openai or anthropic strategies");
        return;
    }
    static const agent_llm_callbacks_t cb = {s_on_text, NULL, s_on_done, s_on_error};
    const char *prompt = json_string_value(json_object_get(r->config, "prompt"));
    json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                             prompt ? prompt : S_PROMPT, "role", "user", "content", transcript);
    agent_llm_params_t params = {
        .strategy = r->strategy, .api_key = cfg_strategy_api_key(r->strategy), .messages = msgs};
    agent_llm_error_t err = {0};
    r->req = msgs ? agent_llm_start(r->owner->node->agents->http, &params, &cb, r, &err) : NULL;
    json_decref(msgs);
    if (!r->req) {
        s_end(r, err.reason[0] ? err.reason : "the model call could not start");
    }
}

/* True when observer name of conv runs (or its write is owed) already. */
static bool s_running(const node_observers_t *self, const uint8_t conv[16], const char *name)
{
    for (const s_run_t *r = self->head; r; r = r->next) {
        if (memcmp(r->conv, conv, 16) == 0 && strcmp(r->name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* One due observer as read. */
typedef struct {
    char name[NODE_OBSERVER_NAME_MAX + 1]; /* its name */
    char strategy[CFG_FILE_MAX_NAME + 1];  /* its strategy */
    char *config;                          /* its config (JSON text, owned) */
} s_due_t;

/* A new run of observer d of conv (listed), or NULL when skipped. */
static s_run_t *
s_run_new(node_observers_t *self, const uint8_t conv[16], const uint8_t team[16], const s_due_t *d)
{
    const char *name = d->name, *config = d->config;
    const cfg_strategy_t *s = node_strategy_lookup(d->strategy);
    if (!name[0] || s_running(self, conv, name)) {
        return NULL; /* one run per observer: this trigger is skipped */
    }
    if (self->n >= NODE_OBS_RUNS_MAX) {
        LOG_W("observer run skipped: %zu runs on this node (limit) name=%s", self->n, name);
        return NULL;
    }
    s_run_t *r = calloc(1, sizeof *r);
    json_t *cfg = config ? json_loads(config, 0, NULL) : NULL;
    if (!r || !json_is_object(cfg)) {
        free(r);
        json_decref(cfg);
        return NULL;
    }
    node_buf_init(&r->text);
    r->owner = self;
    memcpy(r->conv, conv, 16);
    memcpy(r->team, team, 16);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->config = cfg;
    r->strategy = s;
    json_int_t t = json_integer_value(json_object_get(cfg, "timeout_s"));
    r->deadline_ms = util_mono_ms() + (t > 0 ? t : S_TIMEOUT_S) * 1000;
    r->next = self->head;
    self->head = r;
    self->n++;
    return r;
}

/* ---- the trigger ------------------------------------------------------------------------- */

typedef struct {
    node_observers_t *obs;           /* the node's */
    uint8_t conv[16], team[16];      /* the conversation */
    s_due_t due[NODE_OBSERVERS_MAX]; /* due observers */
    int ndue;                        /* entries in due */
    node_buf_t transcript;           /* latest messages, "role: content" oldest first */
    int nmsgs;                       /* how many */
    bool failed;                     /* a read failed */
} s_trig_t;

static void s_on_load(void *arg, db_status_t status, const db_result_t *res)
{
    s_trig_t *t = arg;
    t->failed = t->failed || status != DB_OK;
    for (int i = 0; status == DB_OK && i < db_result_rows(res) && t->ndue < NODE_OBSERVERS_MAX;
         i++) {
        s_due_t *d = &t->due[t->ndue];
        const char *name = db_result_value(res, i, 0), *strategy = db_result_value(res, i, 1);
        const char *config = db_result_value(res, i, 2);
        if (!name || !strategy || !config || strlen(name) > NODE_OBSERVER_NAME_MAX ||
            strlen(strategy) > CFG_FILE_MAX_NAME) {
            continue;
        }
        snprintf(d->name, sizeof d->name, "%s", name);
        snprintf(d->strategy, sizeof d->strategy, "%s", strategy);
        d->config = strdup(config);
        t->ndue += d->config ? 1 : 0;
    }
}

/* The conversation as the observer reads it: "role: content" paragraphs, oldest first. */
static void s_on_hist(void *arg, db_status_t status, const db_result_t *res)
{
    s_trig_t *t = arg;
    t->failed = t->failed || status != DB_OK;
    t->nmsgs = status == DB_OK ? db_result_rows(res) : 0;
    for (int i = t->nmsgs - 1; i >= 0; i--) {
        node_buf_str(&t->transcript, db_result_value(res, i, 0));
        node_buf_str(&t->transcript, ": ");
        node_buf_str(&t->transcript, db_result_value(res, i, 1));
        node_buf_str(&t->transcript, "\n\n");
    }
    node_buf_str(&t->transcript, "");
    t->failed = t->failed || t->transcript.oom;
}

static void s_on_read(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    (void)error;
    (void)sqlstate;
    s_trig_t *t = arg;
    node_observers_t *self = t->obs;
    bool ok = status == DB_OK && !t->failed;
    if (!ok) {
        LOG_W("observers not run: their read failed");
    }
    for (int i = 0; i < t->ndue; i++) {
        s_run_t *r = ok ? s_run_new(self, t->conv, t->team, &t->due[i]) : NULL;
        if (r && !r->strategy) {
            s_end(r, "the observer's strategy is not configured on this node");
        } else if (r) {
            s_start(r, t->transcript.data ? t->transcript.data : "", t->nmsgs);
        }
        free(t->due[i].config);
    }
    node_buf_free(&t->transcript);
    free(t);
}

void node_observe_turn_ended(node_t *node, node_actor_t *a)
{
    node_observers_t *self = node->agents ? node->agents->observers : NULL;
    /* Conversations without observers (most) cost no read. */
    if (!self || !(a->flags & NODE_AF_OBSERVED) || node->closing || node->stopping ||
        (a->flags & NODE_AF_DOOMED)) {
        return;
    }
    s_uuid_t conv, team;
    util_uuid_format(a->conv_id, conv);
    util_uuid_format(a->team_id, team);
    const char *params[] = {conv, team};
    s_trig_t *t = calloc(1, sizeof *t);
    db_batch_t *b = t ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, Q_OBS_LOAD, NULL, 2, params, s_on_load, t) < 0 ||
        db_batch_add(b, Q_OBS_HIST, NULL, 2, params, s_on_hist, t) < 0) {
        db_batch_destroy(&b);
        free(t);
        return;
    }
    t->obs = self;
    node_buf_init(&t->transcript);
    memcpy(t->conv, a->conv_id, 16);
    memcpy(t->team, a->team_id, 16);
    db_batch_submit(&b, s_on_read, t);
}

/* ---- the outcome's write ----------------------------------------------------------------- */

/* Adds the conversation patch a summarizer's reply gives (JSON object, optionally inside
   other text: from its first '{' to its last '}'), with its conversation.updated. Returns
   NULL, or why nothing was patched. */
static const char *s_add_patch(node_ws_t *ws, const char *text, const char *src)
{
    const char *open = strchr(text, '{'), *close = strrchr(text, '}');
    json_t *obj =
        open && close > open ? json_loadb(open, (size_t)(close - open + 1), 0, NULL) : NULL;
    const json_t *title = json_object_get(obj, "title"), *meta = json_object_get(obj, "metadata");
    bool has_title = json_is_string(title) && json_string_length(title) <= 1000;
    bool has_meta = json_is_object(meta);
    if (!has_title && !has_meta) {
        json_decref(obj);
        return "the reply has no JSON object with a title or metadata";
    }
    json_t *changes = json_object();
    if (has_title) {
        json_object_set(changes, "title", (json_t *)title);
    }
    if (has_meta) {
        json_object_set(changes, "metadata", (json_t *)meta);
    }
    json_t *action = json_pack("{s:o}", "changes", changes);
    char *meta_text = has_meta ? node_json_text(meta) : NULL, *act = node_json_text(action);
    s_uuid_t conv, team;
    util_uuid_format(ws->actor->conv_id, conv);
    util_uuid_format(ws->actor->team_id, team);
    const char *p[] = {conv, team, has_title ? "true" : "false",
                       has_title ? json_string_value(title) : NULL, meta_text};
    if (!act || (has_meta && !meta_text)) {
        ws->oom = true;
    } else {
        node_ws_add(ws, Q_OBS_PATCH, NODE_SK_PLAIN, 5, p);
        ws->oom = ws->oom || node_ws_event(ws, "conversation.updated", src, act, NULL, false) < 0;
    }
    free(meta_text);
    free(act);
    json_decref(action);
    json_decref(obj);
    return NULL;
}

/* Builds r's write on its actor a and submits it; false when it could not. */
static bool s_write(node_t *node, node_actor_t *a, s_run_t *r)
{
    node_ws_t *ws = node_ws_new(a, NULL);
    if (!ws) {
        return false;
    }
    char src[96];
    snprintf(src, sizeof src, "{\"kind\":\"actor\",\"name\":\"%s\"}", r->name);
    json_t *action = json_pack("{s:s}", "actor", r->name);
    const char *type = "observer.failed";
    uint8_t msg_id[16];
    bool with_msg = false;
    if (r->failed) {
        json_object_set_new(action, "reason", json_string(r->reason));
    } else {
        type = "observer.completed";
        const char *text = r->text.data ? r->text.data : "";
        json_object_set_new(action, "text", json_string(text));
        if (json_is_true(json_object_get(r->config, "message"))) {
            char meta[96];
            snprintf(meta, sizeof meta, "{\"actor\":\"%s\"}", r->name);
            util_uuid_generate(msg_id);
            with_msg = node_ws_message(ws, msg_id, "observer", text, "completed", meta) >= 0;
            ws->oom = ws->oom || !with_msg;
        }
        const char *why =
            json_is_true(json_object_get(r->config, "patch")) ? s_add_patch(ws, text, src) : NULL;
        if (why) {
            json_object_set_new(action, "patch_error", json_string(why));
        }
    }
    char *act = action ? node_json_text(action) : NULL;
    ws->oom =
        ws->oom || !act || node_ws_event(ws, type, src, act, with_msg ? msg_id : NULL, false) < 0;
    free(act);
    json_decref(action);
    node_ws_touch(ws, -1);
    ws->reply_kind = NODE_REPLY_NONE;
    node_ws_finish(node, &ws);
    return true;
}

bool node_observe_pending_write(node_t *node, node_actor_t *a)
{
    node_observers_t *self = node->agents ? node->agents->observers : NULL;
    if (!self || !self->owed || a->state != NODE_ACTOR_READY) {
        return false;
    }
    for (s_run_t *r = self->head; r; r = r->next) {
        if (!r->done_ms || memcmp(r->conv, a->conv_id, 16) != 0) {
            continue;
        }
        s_unlink(self, r);
        bool ours = !node->stopping && !node->closing && !(a->flags & NODE_AF_DOOMED);
        bool written = ours && s_write(node, a, r);
        if (!written) {
            LOG_W("observer outcome dropped: its conversation is not written here name=%s",
                  r->name);
        }
        s_run_free(r);
        return written;
    }
    return false;
}

void node_observe_tick(node_observers_t *self)
{
    int64_t now = util_mono_ms();
    s_run_t *r = self ? self->head : NULL;
    uint8_t wake[NODE_OBS_RUNS_MAX][2][16]; /* conversations to wake once the list is walked */
    size_t nwake = 0;
    while (r) {
        s_run_t *next = r->next;
        if (!r->done_ms && now >= r->deadline_ms) {
            agent_llm_cancel(&r->req);
            char why[96];
            json_int_t t = json_integer_value(json_object_get(r->config, "timeout_s"));
            snprintf(why, sizeof why, "timed out after %lld s",
                     (long long)(t > 0 ? t : S_TIMEOUT_S));
            s_end_ex(r, why, false);
            if (nwake < NODE_OBS_RUNS_MAX) {
                memcpy(wake[nwake][0], r->conv, 16);
                memcpy(wake[nwake++][1], r->team, 16);
            }
        } else if (r->done_ms && now - r->done_ms >= S_KEEP_MS) {
            LOG_W("observer outcome dropped: its conversation did not take it name=%s", r->name);
            s_unlink(self, r);
            s_run_free(r);
        }
        r = next;
    }
    for (size_t i = 0; i < nwake; i++) {
        s_wake(self->node, wake[i][0], wake[i][1]);
    }
}
