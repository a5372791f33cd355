/*  claude_cli — test helpers for the claude-code strategy: find the real CLI
    ($BICKY_CLAUDE, else `claude` on PATH; tests skip when neither exists),
    scratch directories (HOME and cwd per test, removed at the end), a
    recorder of agent_claude callbacks with a permission policy, and a loop
    driver. The fake model is tests/fixtures/fake_llm.py (llm_fake.h) on a
    port from 7600–7649 unless BICKY_FAKE_LLM_PORTS says otherwise.
    Header-only: included by one test file each. */
#ifndef BICKY_TESTS_CLAUDE_CLI_H
#define BICKY_TESTS_CLAUDE_CLI_H

#include "common/util.h"
#include "llm_fake.h"
#include "node/agent/agent_claude.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CC_MAX 8 /* tools / permissions recorded per run */

/* The CLI to test, or NULL when there is none. */
static inline const char *cc_find_cli(void)
{
    static char found[PATH_MAX];
    const char *env = getenv("BICKY_CLAUDE");
    if (env && *env) {
        return access(env, X_OK) == 0 ? env : NULL;
    }
    const char *path = getenv("PATH");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path ? path : "");
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/claude", dir);
        if (access(found, X_OK) == 0) {
            return found;
        }
    }
    return NULL;
}

/* Declares var = the CLI, or runs cleanup (Criterion skips .fini for a
   skipped test) and skips the test. */
#define CC_REQUIRE_CLI(var, cleanup)                                                               \
    const char *var = cc_find_cli();                                                               \
    if (!var) {                                                                                    \
        cleanup();                                                                                 \
        cr_skip_test("claude CLI not found: set BICKY_CLAUDE or put claude on PATH "               \
                     "(tests/lib/install_claude.sh installs it)");                                 \
    }

/* bicky-mcp-permission next to the test binaries ($BICKY_MCP_PERMISSION overrides). */
static inline const char *cc_mcp_binary(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("BICKY_MCP_PERMISSION");
    if (env && *env) {
        return access(env, X_OK) == 0 ? env : NULL;
    }
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        return NULL;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) {
        return NULL;
    }
    *slash = '\0';
    snprintf(path, sizeof path, "%s/../bin/bicky-mcp-permission", exe);
    return access(path, X_OK) == 0 ? path : NULL;
}

static inline int cc_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void cc_rm_rf(const char *dir)
{
    nftw(dir, cc_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A scratch root with home/, home2/, wd/ and wd2/ below it. */
typedef struct {
    char root[64], home[PATH_MAX], home2[PATH_MAX], wd[PATH_MAX], wd2[PATH_MAX];
} cc_dirs_t;

static inline void cc_dirs_make(cc_dirs_t *d)
{
    snprintf(d->root, sizeof d->root, "/tmp/bicky-cc-XXXXXX");
    cr_assert_not_null(mkdtemp(d->root));
    snprintf(d->home, sizeof d->home, "%s/home", d->root);
    snprintf(d->home2, sizeof d->home2, "%s/home2", d->root);
    snprintf(d->wd, sizeof d->wd, "%s/wd", d->root);
    snprintf(d->wd2, sizeof d->wd2, "%s/wd2", d->root);
    cr_assert_eq(mkdir(d->home, 0700), 0);
    cr_assert_eq(mkdir(d->home2, 0700), 0);
    cr_assert_eq(mkdir(d->wd, 0700), 0);
    cr_assert_eq(mkdir(d->wd2, 0700), 0);
}

/* What a run reported. */
typedef struct {
    agent_claude_run_t *run;        /* while running */
    zloop_t *loop;                  /* for deferred replies */
    const char *policy;             /* on_permission: "allow", "deny", "cancel", NULL = keep open */
    int cancel_after_allow_ms;      /* > 0: cancel this long after allowing */
    char session[80];               /* on_init */
    int inits;                      /* on_init calls */
    char text[16384];               /* text deltas joined */
    int text_calls;                 /* on_text calls */
    int message_starts;             /* on_message_start calls */
    int started, completed, perms;  /* counts */
    char tool_name[CC_MAX][32];     /* on_tool_started names */
    char tool_content[CC_MAX][256]; /* on_tool_completed contents */
    bool tool_error[CC_MAX];        /* their is_error */
    char perm_id[CC_MAX][160];      /* permission request ids */
    char perm_tool[CC_MAX][32];     /* their tool names */
    char perm_command[CC_MAX][256]; /* their input.command */
    bool done, failed, cancelled;   /* how it ended */
    char reason[AGENT_CLAUDE_REASON_MAX];                  /* on_error */
    char res_text[1024], res_session[80], res_subtype[64]; /* on_done */
    bool res_is_error;                                     /* on_done */
    long in_tok, out_tok, turns;                           /* on_done */
    double cost;                                           /* on_done */
    int exit_status;                                       /* on_done */
    size_t denials;                                        /* on_done */
    int after_end;                                         /* callbacks after the end */
} cc_rec_t;

static inline void cc_on_init(void *arg, const char *session_id)
{
    cc_rec_t *r = arg;
    snprintf(r->session, sizeof r->session, "%s", session_id);
    r->inits++;
}

static inline void cc_on_text(void *arg, const char *text, size_t len)
{
    cc_rec_t *r = arg;
    cr_assert_eq(strlen(text), len);
    strncat(r->text, text, sizeof r->text - strlen(r->text) - 1);
    r->text_calls++;
}

static inline void cc_on_message_start(void *arg)
{
    cc_rec_t *r = arg;
    r->message_starts++;
}

static inline void cc_on_tool_started(void *arg, const char *id, const char *name, json_t *input)
{
    cc_rec_t *r = arg;
    cr_assert(json_is_object(input));
    cr_assert_gt(strlen(id), 0);
    if (r->started < CC_MAX) {
        snprintf(r->tool_name[r->started], 32, "%s", name);
    }
    r->started++;
}

static inline void cc_on_tool_completed(void *arg, const char *id, const char *content, bool err)
{
    cc_rec_t *r = arg;
    if (r->completed < CC_MAX) {
        snprintf(r->tool_content[r->completed], 256, "%s", content);
        r->tool_error[r->completed] = err;
    }
    r->completed++;
}

static inline int cc_on_cancel_timer(zloop_t *loop, int timer_id, void *arg)
{
    cc_rec_t *r = arg;
    if (r->run) {
        agent_claude_cancel(&r->run);
        r->cancelled = true;
    }
    return 0;
}

/* Answers the oldest open permission on a later loop turn, as the node will. */
static inline int cc_on_reply_timer(zloop_t *loop, int timer_id, void *arg)
{
    cc_rec_t *r = arg;
    const char *id = r->perm_id[r->perms - 1];
    if (!r->run) {
        return 0;
    }
    bool allow = strcmp(r->policy, "allow") == 0;
    cr_assert_eq(agent_claude_permission_reply(r->run, id, allow, NULL, allow ? NULL : "nope"), 0);
    cr_assert_eq(agent_claude_permission_reply(r->run, id, allow, NULL, NULL), -1,
                 "a request is answered once");
    if (allow && r->cancel_after_allow_ms > 0) {
        zloop_timer(loop, (size_t)r->cancel_after_allow_ms, 1, cc_on_cancel_timer, r);
    }
    return 0;
}

static inline void cc_on_permission(void *arg, const agent_claude_perm_t *req)
{
    cc_rec_t *r = arg;
    cr_assert_lt(r->perms, CC_MAX);
    snprintf(r->perm_id[r->perms], 160, "%s", req->request_id);
    snprintf(r->perm_tool[r->perms], 32, "%s", req->tool_name);
    const char *cmd = json_string_value(json_object_get(req->input, "command"));
    snprintf(r->perm_command[r->perms], 256, "%s", cmd ? cmd : "");
    r->perms++;
    if (r->policy && strcmp(r->policy, "cancel") == 0) {
        agent_claude_cancel(&r->run);
        r->cancelled = true;
    } else if (r->policy) {
        zloop_timer(r->loop, 20, 1, cc_on_reply_timer, r);
    }
}

static inline void cc_on_done(void *arg, const agent_claude_result_t *res)
{
    cc_rec_t *r = arg;
    r->after_end += r->done || r->failed || r->cancelled;
    r->done = true;
    r->run = NULL;
    snprintf(r->res_text, sizeof r->res_text, "%s", res->text);
    snprintf(r->res_session, sizeof r->res_session, "%s", res->session_id);
    snprintf(r->res_subtype, sizeof r->res_subtype, "%s", res->subtype);
    r->res_is_error = res->is_error;
    r->in_tok = res->input_tokens;
    r->out_tok = res->output_tokens;
    r->turns = res->num_turns;
    r->cost = res->total_cost_usd;
    r->exit_status = res->exit_status;
    r->denials = res->permission_denials ? json_array_size(res->permission_denials) : 0;
}

static inline void cc_on_error(void *arg, const char *reason)
{
    cc_rec_t *r = arg;
    r->after_end += r->done || r->failed || r->cancelled;
    r->failed = true;
    r->run = NULL;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static const agent_claude_callbacks_t cc_callbacks = {
    cc_on_init,       cc_on_text, cc_on_tool_started, cc_on_tool_completed,
    cc_on_permission, cc_on_done, cc_on_error,        cc_on_message_start,
};

/* Loop driver: runs until stop(arg) or max_ms. */
typedef struct {
    bool (*stop)(void *arg);
    void *arg;
    bool deadline_hit;
} cc_drive_t;

static inline int cc_on_drive_tick(zloop_t *loop, int timer_id, void *arg)
{
    cc_drive_t *d = arg;
    return d->stop(d->arg) ? -1 : 0;
}

static inline int cc_on_drive_deadline(zloop_t *loop, int timer_id, void *arg)
{
    cc_drive_t *d = arg;
    d->deadline_hit = true;
    return -1;
}

/* Returns the elapsed ms; fails the test when max_ms passed first. */
static inline int64_t cc_drive(zloop_t *loop, bool (*stop)(void *), void *arg, int max_ms)
{
    cc_drive_t d = {stop, arg, false};
    int64_t t0 = util_mono_ms();
    int tick = zloop_timer(loop, 5, 0, cc_on_drive_tick, &d);
    int deadline = zloop_timer(loop, (size_t)max_ms, 1, cc_on_drive_deadline, &d);
    zloop_start(loop);
    zloop_timer_end(loop, tick);
    zloop_timer_end(loop, deadline);
    cr_assert_not(d.deadline_hit, "nothing happened within %d ms", max_ms);
    return util_mono_ms() - t0;
}

static inline bool cc_rec_ended(void *arg)
{
    cc_rec_t *r = arg;
    return r->done || r->failed || (r->cancelled && !r->run);
}

/* True while some process's command line contains marker (zombies excluded). */
static inline bool cc_process_with(const char *marker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (d && !found && (e = readdir(d))) {
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) {
            fclose(f);
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = buf[i] ? buf[i] : ' ';
        }
        buf[n] = '\0';
        found = n > 0 && strstr(buf, marker) && !strstr(buf, "cc_process_with");
    }
    if (d) {
        closedir(d);
    }
    return found;
}

#endif
