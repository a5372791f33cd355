/*  node_tools — built-in tool calls of a turn on the agent pool, confined to
    the turn's root (its worktree, or the conversation's own directory under
    the node's work dir, created on first use). A call runs only after its
    tool.started is stored; its result comes back on the loop, is stored as a
    message of role "tool" with tool.completed, and becomes the model's
    tool result. A cancelled turn does not wait for a running tool: it sets
    the run's tools_stop, which kills a running bash with its sandbox (other
    tools finish on their worker, bounded by their own limits), and the result
    is dropped. The work function runs on a pool worker; everything else on the
    loop thread. */
#define LOG_MODULE "node_tools"
#include "common/log.h"
#include "common/util.h"
#include "node/turns/node_turns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

/* One tool call on the pool. The worker touches only the fields it owns. */
typedef struct {
    node_run_t *run;            /* referenced (loop thread only) */
    size_t idx;                 /* call index */
    char *call_id;              /* the call's id, to match on completion */
    char *root;                 /* tools root (copy) */
    bool make_root;             /* create root first */
    char *name;                 /* tool */
    json_t *args;               /* arguments (deep copy: the worker's alone) */
    agent_tool_limits_t limits; /* caps */
    char *result;               /* worker: result or error text */
    bool is_error;              /* worker: result is an error */
    long duration_ms;           /* worker: run time */
} s_job_t;

void node_tools_set_result(node_call_t *c, const char *text, bool is_error)
{
    free(c->result);
    size_t n = text ? strlen(text) : 0;
    if (n > NODE_TOOL_RESULT_MAX) {
        /* Cut on a UTF-8 boundary. */
        n = NODE_TOOL_RESULT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    c->result = strndup(text ? text : "", n);
    c->is_error = is_error;
}

/* ---- the pool job ------------------------------------------------------------------------ */

static int s_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            int rc = mkdir(path, 0700);
            *p = '/';
            if (rc < 0 && errno != EEXIST) {
                return -1;
            }
        }
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Worker thread: runs the tool. */
static void s_work(void *arg)
{
    s_job_t *j = arg;
    int64_t t0 = util_mono_ms();
    json_t *result = NULL;
    char *error = NULL;
    if (j->make_root && s_mkdirs(j->root) < 0) {
        j->result = strdup("Error: the working directory cannot be created");
        j->is_error = true;
    } else if (agent_tool_run(j->root, j->name, j->args, &j->limits, &result, &error) == 0) {
        j->result = json_dumps(result, JSON_COMPACT);
        j->is_error = false;
    } else {
        j->result = error;
        error = NULL;
        j->is_error = true;
    }
    json_decref(result);
    free(error);
    j->duration_ms = (long)(util_mono_ms() - t0);
}

static void s_job_free(s_job_t *j)
{
    free(j->call_id);
    free(j->root);
    free(j->name);
    json_decref(j->args);
    free(j->result);
    free(j);
}

/* Loop thread: the result, unless the turn went away meanwhile. */
static void s_done(void *arg, bool cancelled)
{
    s_job_t *j = arg;
    node_run_t *run = j->run;
    node_call_t *c = run->actor && j->idx < run->ncalls ? &run->calls[j->idx] : NULL;
    if (c && c->state == NODE_CALL_RUNNING && strcmp(c->id, j->call_id) == 0) {
        node_tools_set_result(c,
                              cancelled   ? "Error: the tool was not run (node stopping)"
                              : j->result ? j->result
                                          : "Error: out of memory",
                              cancelled || j->is_error || !j->result);
        c->duration_ms = j->duration_ms;
        c->ran = true;
        c->state = NODE_CALL_FINISHED;
        node_run_pump(run);
    }
    node_run_unref(run);
    s_job_free(j);
}

void node_tools_run(node_run_t *run, size_t i)
{
    node_call_t *c = &run->calls[i];
    s_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->run = run;
        j->idx = i;
        j->call_id = strdup(c->id);
        j->root = run->root ? strdup(run->root) : NULL;
        j->make_root = run->root_make;
        j->name = strdup(c->name);
        j->args = json_deep_copy(c->args);
        j->limits = run->agents->limits;
        const cfg_strategy_t *s = run->strategy;
        if (s) {
            j->limits.sandbox_off = !s->sandbox;
            j->limits.network = s->tool_network;
            j->limits.rlimits = (agent_sandbox_limits_t){.cpu_s = s->sandbox_cpu_s,
                                                         .memory_mb = s->sandbox_memory_mb,
                                                         .processes = s->sandbox_processes,
                                                         .file_mb = s->sandbox_file_mb,
                                                         .open_files = s->sandbox_open_files,
                                                         .tmp_mb = s->sandbox_tmp_mb,
                                                         .disk_mb = s->sandbox_disk_mb};
        }
        j->limits.cancel = &run->tools_stop; /* the job holds a reference on run */
    }
    if (!j || !j->call_id || !j->root || !j->name || !j->args ||
        agent_pool_submit(run->agents->pool, s_work, s_done, j) < 0) {
        if (j) {
            s_job_free(j);
        }
        node_tools_set_result(c, "Error: the tool could not be started (the node is busy)", true);
        c->ran = true;
        c->state = NODE_CALL_FINISHED;
        return;
    }
    node_run_ref(run);
}

/* ---- writes ------------------------------------------------------------------------------ */

static char *s_text(json_t *j)
{
    char *text = j ? node_json_text(j) : NULL;
    json_decref(j);
    return text;
}

int node_tools_add_started(node_ws_t *ws, node_run_t *run, size_t i)
{
    const node_call_t *c = &run->calls[i];
    s_uuid_t pid;
    util_uuid_format(c->perm_id, pid);
    char *action =
        s_text(json_pack("{s:s, s:s, s:O, s:s?}", "tool_call_id", c->id, "tool_name", c->name,
                         "arguments", c->args, "permission_id", c->has_perm ? pid : NULL));
    if (!action) {
        ws->oom = true;
        return -1;
    }
    int rc = node_ws_event(ws, "tool.started", run->source, action, NULL, false);
    free(action);
    return rc;
}

int node_tools_add_result(node_ws_t *ws, node_run_t *run, size_t i)
{
    const node_call_t *c = &run->calls[i];
    s_uuid_t uid, pid;
    uint8_t mid[16];
    util_uuid_generate(mid);
    util_uuid_format(run->actor->turns->user_id, uid);
    util_uuid_format(c->perm_id, pid);
    char *meta =
        s_text(json_pack("{s:s, s:s, s:b, s:s, s:s?, s:I}", "tool_call_id", c->id, "tool_name",
                         c->name, "is_error", c->is_error, "user_message_id", uid, "permission_id",
                         c->has_perm ? pid : NULL, "duration_ms", (json_int_t)c->duration_ms));
    if (!meta) {
        ws->oom = true;
        return -1;
    }
    int rc = node_ws_message(ws, mid, "tool", c->result ? c->result : "", "completed", meta);
    free(meta);
    if (rc < 0 || !c->ran) {
        return rc;
    }
    s_uuid_t m;
    util_uuid_format(mid, m);
    json_t *act = json_pack("{s:s, s:s, s:b, s:s, s:I}", "tool_call_id", c->id, "tool_name",
                            c->name, "is_error", c->is_error, "message_id", m, "duration_ms",
                            (json_int_t)c->duration_ms);
    if (act && strcmp(c->name, "todo_write") == 0 && !c->is_error && c->result) {
        /* The todo list lives in the event log (docs/tools.md). */
        json_object_set_new(act, "result", json_loads(c->result, 0, NULL));
    }
    char *action = s_text(act);
    if (!action) {
        ws->oom = true;
        return -1;
    }
    rc = node_ws_event(ws, "tool.completed", run->source, action, NULL, false);
    free(action);
    return rc;
}

bool node_tools_done_write(node_t *node, node_run_t *run)
{
    size_t i = 0;
    while (i < run->ncalls && run->calls[i].state != NODE_CALL_FINISHED) {
        i++;
    }
    if (i == run->ncalls) {
        return false;
    }
    node_ws_t *ws = node_ws_new(run->actor, NULL);
    if (!ws) {
        return false;
    }
    node_tools_add_result(ws, run, i);
    node_ws_touch(ws, node_run_status(run));
    ws->plan.ws = ws;
    ws->plan.strat_op = NODE_SOP_TOOL_DONE;
    ws->plan.strat_arg = (int32_t)i;
    node_ws_finish(node, &ws);
    return (run->actor->flags & NODE_AF_COMMITTING) != 0;
}

bool node_tools_all_done(node_run_t *run)
{
    if (run->phase != NODE_RUN_TOOLS) {
        return false;
    }
    for (size_t i = 0; i < run->ncalls; i++) {
        if (run->calls[i].state != NODE_CALL_DONE) {
            return false;
        }
    }
    run->phase = NODE_RUN_NEXT;
    return true;
}
