/*  node_claude_resume — a claude-code turn waiting for a permission survives
    its node. The CLI died with the node, but the session's transcript did
    not (on this node's disk, else the copy in Postgres), and the session id
    is stored with every write of the turn. When the actor is reactivated
    waiting (node_perm_recover.c), the pending requests wait again without a
    CLI. Each decision, when stored, is kept here; once nothing is pending,
    the session is resumed (--resume) with a follow-up user message telling
    the model what was decided. An approved call is pre-granted: when the
    resumed CLI asks for the same tool with the same input, it is allowed at
    once (once per approval); anything else goes through the usual flow. A
    denied call is told with its reason, and the model goes on without it.
    A turn that was running when its node was lost is resumed the same way
    from its checkpoint, with a follow-up saying so (node_claude_resume_lost).
    Loop thread only. */
#define LOG_MODULE "node_claude"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FOLLOWUP_MAX (64 * 1024) /* bytes of the follow-up message */
#define S_SCAN_MAX     65536       /* processes examined for orphans */

static const char s_intro[] =
    "[Bicky] The session was interrupted while tool calls waited for permission (the node "
    "running it restarted), so those calls did not run. They have been decided since:";

/* True when process pid (ours) is a CLI run of session (--resume/--session-id it). */
static bool s_runs_session(const char *pid, const char *session)
{
    char path[64], buf[16384];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    if (stat(path, &st) < 0 || st.st_uid != geteuid()) {
        return false;
    }
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    const char *prev = "";
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        bool flag = strcmp(prev, "--resume") == 0 || strcmp(prev, "--session-id") == 0;
        if (flag && strcmp(buf + i, session) == 0) {
            return true;
        }
        prev = buf + i;
    }
    return false;
}

/* The CLI of the session outlived its node (SIGKILL): it may still wait for an answer
   (channel mcp) or go on with a failed prompt (stdio). Its process group goes now, so
   the resumed session is the only one writing the transcript. Reads /proc (memory). */
static void s_kill_orphans(const char *session)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int seen = 0;
    while (d && (e = readdir(d)) && seen++ < S_SCAN_MAX) {
        if (!isdigit((unsigned char)e->d_name[0]) || !s_runs_session(e->d_name, session)) {
            continue;
        }
        pid_t pid = (pid_t)atoi(e->d_name);
        LOG_N("killing the CLI left by the previous node pid=%d session=%s", (int)pid, session);
        if (getpgid(pid) == pid) {
            kill(-pid, SIGKILL);
        }
        kill(pid, SIGKILL);
    }
    if (d) {
        closedir(d);
    }
}

const char *node_claude_restore(node_run_t *run,
                                const json_t *perms,
                                const char *wt_path,
                                const char *session,
                                const char *task)
{
    if (!session || !agent_claude_session_id_valid(session)) {
        return "the claude-code run was lost with its node (no session to resume)";
    }
    size_t n = json_array_size(perms), i;
    const json_t *p;
    run->calls = n ? calloc(n, sizeof *run->calls) : NULL;
    json_array_foreach(perms, i, p)
    {
        const char *pid = json_string_value(json_object_get(p, "id"));
        const char *st = json_string_value(json_object_get(p, "status"));
        const char *tuid = json_string_value(json_object_get(p, "tool_use_id"));
        const char *name = json_string_value(json_object_get(p, "tool_name"));
        const json_t *args = json_object_get(p, "arguments");
        node_call_t *c = run->calls ? &run->calls[run->ncalls] : NULL;
        if (!c || !pid || !st || !name || strcmp(st, "pending") != 0 ||
            util_uuid_parse(pid, c->perm_id) < 0) {
            continue;
        }
        c->id = strdup(tuid ? tuid : pid);
        c->name = strdup(name);
        c->args = json_is_object(args) ? json_deep_copy(args) : json_object();
        c->state = NODE_CALL_PENDING;
        c->has_perm = true;
        c->expires_ms = (int64_t)json_integer_value(json_object_get(p, "expires_ms"));
        run->ncalls++;
        if (!c->id || !c->name || !c->args) {
            return "out of memory";
        }
    }
    if (!run->ncalls) {
        return "the claude-code run was lost with its node";
    }
    s_kill_orphans(session);
    if (node_claude_setup(run, wt_path, session) < 0) {
        return NULL; /* the run already failed */
    }
    if (task && !(run->cc->task = strdup(task))) {
        return "out of memory";
    }
    LOG_N("claude-code turn waits again after reactivation session=%s pending=%zu", session,
          run->ncalls);
    return NULL;
}

static const char s_lost[] =
    "[Bicky] The session was interrupted because the node running it was lost, and it has "
    "been resumed from its last completed step. Whatever came after that step was lost with "
    "the node: a reply being written, and any tool call still running (it did not complete; "
    "if it is still needed, make it again: it asks for permission as usual). Continue the "
    "task.";

const char *
node_claude_resume_lost(node_run_t *run, const char *wt_path, const char *session, const char *task)
{
    if (!session || !agent_claude_session_id_valid(session)) {
        return "the claude-code run was lost with its node (no session to resume)";
    }
    s_kill_orphans(session);
    if (node_claude_setup(run, wt_path, session) < 0) {
        return NULL; /* the run already failed */
    }
    node_cc_t *cc = run->cc;
    free(run->content);
    run->content = strdup(s_lost);
    cc->followup = strdup(s_lost);
    cc->task = task ? strdup(task) : NULL;
    if (!run->content || !cc->followup || (task && !cc->task)) {
        return "out of memory";
    }
    /* This node's copy, if any, may be older than the checkpoint (another node ran the
       turn) or newer than its last completed step: the checkpoint is the one to resume. */
    cc->reimport = true;
    LOG_N("resuming the claude-code turn lost with its node session=%s", session);
    node_claude_prepare(run);
    return NULL;
}

/* Appends one decision to the follow-up message. -1 on OOM. */
static int
s_tell(node_cc_t *cc, const node_call_t *c, bool allow, const json_t *input, const char *msg)
{
    char *args = node_json_text(json_is_object(input) ? input : c->args);
    size_t have = cc->followup ? strlen(cc->followup) : 0;
    size_t room = (args ? strlen(args) : 0) + strlen(c->name) + (msg ? strlen(msg) : 0) + 300;
    char *grown = args && have + room < S_FOLLOWUP_MAX ? realloc(cc->followup, have + room) : NULL;
    if (!grown) {
        free(args);
        return -1;
    }
    if (!have) {
        have = (size_t)snprintf(grown, room, "%s", s_intro);
    }
    if (allow) {
        snprintf(grown + have, room,
                 "\n- APPROVED: %s with input %s. Make exactly this call again now; it will "
                 "run without asking.",
                 c->name, args);
    } else {
        snprintf(grown + have, room,
                 "\n- DENIED: %s with input %s (%s). It did not run: do not retry it, go on "
                 "without it.",
                 c->name, args, msg ? msg : "Permission denied");
    }
    cc->followup = grown;
    free(args);
    return 0;
}

bool node_claude_decided_offline(
    node_run_t *run, size_t i, bool allow, const json_t *input, const char *msg)
{
    node_cc_t *cc = run->cc;
    node_call_t *c = &run->calls[i];
    if (!cc || cc->proc || c->cli_request || c->ask || !c->has_perm) {
        return false;
    }
    if (s_tell(cc, c, allow, input, msg) < 0 ||
        (allow && !cc->grants && !(cc->grants = json_array()))) {
        node_run_fail(run, "out of memory");
        return true;
    }
    if (allow) {
        json_array_append_new(cc->grants, json_pack("{s:s, s:O}", "name", c->name, "input",
                                                    json_is_object(input) ? input : c->args));
    }
    for (size_t k = 0; k < run->ncalls; k++) {
        if (k != i && run->calls[k].state == NODE_CALL_PENDING) {
            return true; /* more decisions to wait for */
        }
    }
    strncat(cc->followup, "\nContinue the task.", 32);
    free(run->content);
    run->content = strdup(cc->followup);
    if (!run->content) {
        node_run_fail(run, "out of memory");
        return true;
    }
    LOG_N("resuming the claude-code session after the decisions session=%s", cc->session);
    node_claude_prepare(run);
    return true;
}

bool node_claude_granted(node_run_t *run, size_t i)
{
    node_cc_t *cc = run->cc;
    node_call_t *c = &run->calls[i];
    size_t k;
    json_t *g;
    json_array_foreach(cc ? cc->grants : NULL, k, g)
    {
        const char *name = json_string_value(json_object_get(g, "name"));
        if (name && strcmp(name, c->name) == 0 &&
            json_equal(json_object_get(g, "input"), c->args)) {
            LOG_I("approved before the restart: allowed tool=%s", c->name);
            c->state = NODE_CALL_DONE;
            node_claude_answer(run, i, true, json_object_get(g, "input"), NULL);
            json_array_remove(cc->grants, k);
            return true;
        }
    }
    return false;
}

void node_claude_session_lost(node_run_t *run)
{
    node_cc_t *cc = run->cc;
    if (!cc->followup || !cc->task) {
        return;
    }
    size_t n = strlen(cc->task) + strlen(cc->followup) + 64;
    char *both = malloc(n);
    if (both) {
        snprintf(both, n, "%s\n\n%s", cc->task, cc->followup);
        free(run->content);
        run->content = both;
    }
}
