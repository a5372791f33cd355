/*  agent_tool_bash — runs `/bin/bash -c <command>`, the one place where model
    input becomes a command. posix_spawn (vfork semantics, safe in a threaded
    process) starts it in its own process group, cwd = the worktree, stdin
    /dev/null, no inherited descriptors, a minimal environment and default
    signal dispositions; the group is killed at the timeout and once bash
    exits, so nothing it started outlives the call. With a guard
    (agent_guard.h) bash runs under bicky-exec, which sets the resource limits,
    kills what bash left outside its group and dies with the worker thread (the
    pool's workers live as long as the node); with the node's sandbox
    (agent_sandbox.h) bash runs in bwrap, whose PID namespace takes everything
    with it. With a disk quota (rlimits.disk_mb) the call is refused when the
    worktree is already over it, and bicky-exec kills the whole command once the
    worktree passes it (the result says so). limits->cancel kills it early (a
    turn that ended). Worker threads only. */
#include "common/disk_usage.h"
#include "common/util.h"
#include "node/agent/agent_tool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long output may still drain after bash exited and its group was killed. */
#define AGENT_BASH_DRAIN_MS 500

/* One captured stream. */
typedef struct {
    int fd;       /* read end of the pipe, -1 at EOF */
    char *buf;    /* first cap bytes */
    size_t len;   /* bytes kept */
    size_t cap;   /* bash_max_output */
    size_t total; /* bytes the command wrote */
} agent_stream_t;

/* The running command. */
typedef struct {
    pid_t pid;                 /* bash, also the process group id */
    agent_stream_t out;        /* stdout */
    agent_stream_t err;        /* stderr */
    int status;                /* wait status once exited */
    bool exited;               /* bash has been reaped */
    bool timed_out;            /* the timeout killed the group */
    bool cancelled;            /* *cancel killed the group */
    bool disk_over;            /* bicky-exec stopped it: the worktree passed its disk quota */
    const atomic_bool *cancel; /* limits->cancel */
    int64_t started_ms;        /* monotonic start */
} agent_bash_t;

/* Builds the spawn attributes: a new process group, an empty signal mask
   (workers block every signal) and default dispositions. */
static void s_spawn_attr(posix_spawnattr_t *attr)
{
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_init(attr);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                       POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(attr, 0);
    posix_spawnattr_setsigmask(attr, &empty);
    posix_spawnattr_setsigdefault(attr, &all);
}

/* The program to start: bash, in the sandbox when the node has one and the strategy
   did not opt out, through bicky-exec with the resource limits. *boxed and *guarded
   are allocated here (the caller frees them); NULL with a message on refusal. */
static char *const *s_program(agent_tool_ctx_t *ctx,
                              char *const *argv,
                              char ***boxed,
                              char ***guarded,
                              char lim[AGENT_SANDBOX_LIMITS])
{
    const agent_tool_limits_t *l = ctx->limits;
    char *const *prog = argv;
    if (l->sandbox && l->sandbox->enabled && !l->sandbox_off) {
        if (!l->sandbox->bwrap[0]) {
            agent_tool_fail(ctx, "the sandbox is required but bwrap is not installed on this "
                                 "node (install bubblewrap); the command was not run");
            return NULL;
        }
        if (!l->guard || !l->guard->shim[0]) {
            agent_tool_fail(ctx, "the sandbox needs bicky-exec, which this node lacks; the "
                                 "command was not run");
            return NULL;
        }
        agent_sandbox_spec_t spec = {.bwrap = l->sandbox->bwrap,
                                     .rw = {ctx->root_real},
                                     .network = l->network,
                                     .tmp_mb = l->rlimits.tmp_mb};
        if (!(*boxed = agent_sandbox_argv(&spec, argv))) {
            agent_tool_fail(ctx, "cannot build the sandbox");
            return NULL;
        }
        prog = *boxed;
    }
    size_t n = 0;
    while (prog[n]) {
        n++;
    }
    *guarded = calloc(n + AGENT_GUARD_EXTRA_ARG + 1, sizeof **guarded);
    if (!*guarded) {
        agent_tool_fail(ctx, "out of memory");
        return NULL;
    }
    agent_sandbox_limits_format(&l->rlimits, lim, AGENT_SANDBOX_LIMITS);
    agent_guard_opts_t opts = {.limits = lim};
    if (l->rlimits.disk_mb > 0) {
        opts.disk_dirs[0] = ctx->root_real; /* the one writable directory on disk */
    }
    return agent_guard_argv_opts(l->guard, &opts, prog, *guarded, n + AGENT_GUARD_EXTRA_ARG + 1);
}

static int s_spawn(agent_tool_ctx_t *ctx, const char *command, agent_bash_t *b, int pipes[2][2])
{
    char env_home[PATH_MAX + 8], env_pwd[PATH_MAX + 8], lim[AGENT_SANDBOX_LIMITS];
    snprintf(env_home, sizeof env_home, "HOME=%s", ctx->root_real);
    snprintf(env_pwd, sizeof env_pwd, "PWD=%s", ctx->root_real);
    char *envp[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", env_home, env_pwd, "LANG=C.UTF-8", "TERM=dumb", NULL};
    char *argv[] = {"/bin/bash", "-c", (char *)command, NULL};
    char **boxed = NULL, **guarded = NULL;
    char *const *run = s_program(ctx, argv, &boxed, &guarded, lim);
    if (!run) {
        agent_sandbox_argv_free(&boxed);
        free(guarded);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipes[0][1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipes[1][1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawn_file_actions_addchdir_np(&fa, ctx->root_real);
    posix_spawnattr_t attr;
    s_spawn_attr(&attr);
    int rc = posix_spawn(&b->pid, run[0], &fa, &attr, run, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    agent_sandbox_argv_free(&boxed);
    free(guarded);
    if (rc != 0) {
        return agent_tool_fail(ctx, "cannot start /bin/bash: %s", strerror(rc));
    }
    return 0;
}

/* Reads what is available on s; keeps the first cap bytes, counts the rest. */
static void s_stream_read(agent_stream_t *s)
{
    char chunk[16384];
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    size_t keep = s->len < s->cap ? s->cap - s->len : 0;
    if (keep > (size_t)n) {
        keep = (size_t)n;
    }
    memcpy(s->buf + s->len, chunk, keep);
    s->len += keep;
    s->total += (size_t)n;
}

/* Reaps bash once it exited. The group is killed before the reap, while the
   zombie still holds the group id, so the id cannot have been reused. */
static void s_check_exit(agent_bash_t *b)
{
    siginfo_t info = {0};
    if (waitid(P_PID, (id_t)b->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
        return;
    }
    kill(-b->pid, SIGKILL);
    while (waitpid(b->pid, &b->status, 0) < 0 && errno == EINTR) {
    }
    b->exited = true;
}

/* Polls both pipes until bash exited and its output drained, killing the
   group at the deadline. */
static void s_supervise(agent_bash_t *b, int64_t timeout_ms)
{
    int64_t deadline = b->started_ms + timeout_ms;
    int64_t drain_until = 0;
    while (b->out.fd >= 0 || b->err.fd >= 0 || !b->exited) {
        int64_t now = util_mono_ms();
        if (!b->exited && now >= deadline && !b->timed_out) {
            kill(-b->pid, SIGKILL);
            b->timed_out = true;
        }
        if (!b->exited && !b->cancelled && b->cancel && atomic_load(b->cancel)) {
            kill(-b->pid, SIGKILL); /* the turn went: the sandbox goes with it */
            b->cancelled = true;
        }
        if (b->exited && drain_until == 0) {
            drain_until = now + AGENT_BASH_DRAIN_MS;
        }
        if (b->exited && now >= drain_until) {
            break; /* something outside the group holds the pipe: stop waiting */
        }
        struct pollfd fds[2] = {{.fd = b->out.fd, .events = POLLIN},
                                {.fd = b->err.fd, .events = POLLIN}};
        if (poll(fds, 2, 50) > 0) {
            if (fds[0].revents) {
                s_stream_read(&b->out);
            }
            if (fds[1].revents) {
                s_stream_read(&b->err);
            }
        }
        if (!b->exited) {
            s_check_exit(b);
        }
    }
}

static json_t *s_stream_json(const agent_stream_t *s)
{
    return agent_json_text(s->buf, s->len);
}

/* bicky-exec's DISK_USAGE_EXIT is only believed when the worktree really is over the
   quota (bash itself may exit 122). */
static bool s_disk_stopped(const agent_tool_ctx_t *ctx, const agent_bash_t *b)
{
    long long quota = (long long)ctx->limits->rlimits.disk_mb << 20;
    return quota > 0 && ctx->limits->guard && ctx->limits->guard->shim[0] && WIFEXITED(b->status) &&
           WEXITSTATUS(b->status) == DISK_USAGE_EXIT && disk_usage(ctx->root_real, quota) > quota;
}

/* The disk quota's note, after what the command wrote on stderr. */
static void s_disk_note(const agent_tool_ctx_t *ctx, agent_bash_t *b, json_t *res)
{
    char note[256];
    int n = snprintf(note, sizeof note,
                     "%s[bicky] killed: the worktree passed its disk quota of %ld MiB "
                     "(sandbox_disk_mb); it must shrink below the quota before tools may "
                     "write to it again\n",
                     b->err.len && b->err.buf[b->err.len - 1] != '\n' ? "\n" : "",
                     ctx->limits->rlimits.disk_mb);
    size_t len = b->err.len + (size_t)n;
    char *text = malloc(len);
    if (!text) {
        return;
    }
    memcpy(text, b->err.buf, b->err.len);
    memcpy(text + b->err.len, note, (size_t)n);
    json_object_set_new(res, "stderr", agent_json_text(text, len));
    free(text);
    json_object_set_new(res, "disk_quota_exceeded", json_true());
    json_object_set_new(res, "exit_code", json_null());
    json_object_set_new(res, "signal", json_integer(SIGKILL));
}

static json_t *s_bash_result(const agent_bash_t *b)
{
    json_t *res =
        json_pack("{s:o, s:o, s:b, s:b, s:b, s:I}", "stdout", s_stream_json(&b->out), "stderr",
                  s_stream_json(&b->err), "stdout_truncated", b->out.total > b->out.len,
                  "stderr_truncated", b->err.total > b->err.len, "timed_out", b->timed_out,
                  "duration_ms", (json_int_t)(util_mono_ms() - b->started_ms));
    if (!res) {
        return NULL;
    }
    if (WIFEXITED(b->status)) {
        json_object_set_new(res, "exit_code", json_integer(WEXITSTATUS(b->status)));
    } else {
        json_object_set_new(res, "exit_code", json_null());
        json_object_set_new(res, "signal", json_integer(WTERMSIG(b->status)));
    }
    return res;
}

static void s_close_pipes(int pipes[2][2])
{
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            if (pipes[i][j] >= 0) {
                close(pipes[i][j]);
                pipes[i][j] = -1;
            }
        }
    }
}

static int s_bash_args(agent_tool_ctx_t *ctx, const char **command, int64_t *timeout_s)
{
    const agent_tool_limits_t *l = ctx->limits;
    size_t len;
    if (agent_arg_string(ctx, "command", true, command, &len) != 0 ||
        agent_arg_int(ctx, "timeout_s", l->bash_timeout_s, 1, l->bash_max_timeout_s, timeout_s) !=
            0) {
        return -1;
    }
    if (len == 0 || len > l->bash_max_command) {
        return agent_tool_fail(ctx, "command must be 1 to %zu bytes", l->bash_max_command);
    }
    return 0;
}

int agent_tool_bash(agent_tool_ctx_t *ctx)
{
    const char *command;
    int64_t timeout_s;
    if (s_bash_args(ctx, &command, &timeout_s) != 0 ||
        agent_tool_disk_check(ctx, 0, "the command was not run") != 0) {
        return -1;
    }
    size_t cap = ctx->limits->bash_max_output;
    agent_bash_t b = {.cancel = ctx->limits->cancel,
                      .out = {.fd = -1, .cap = cap, .buf = malloc(cap + 1)},
                      .err = {.fd = -1, .cap = cap, .buf = malloc(cap + 1)}};
    int pipes[2][2] = {{-1, -1}, {-1, -1}};
    int rc = -1;
    if (!b.out.buf || !b.err.buf || pipe2(pipes[0], O_CLOEXEC) != 0 ||
        pipe2(pipes[1], O_CLOEXEC) != 0) {
        rc = agent_tool_fail(ctx, "cannot prepare the command: %s", strerror(errno));
    } else if (s_spawn(ctx, command, &b, pipes) == 0) {
        b.started_ms = util_mono_ms();
        b.out.fd = pipes[0][0];
        b.err.fd = pipes[1][0];
        pipes[0][0] = pipes[1][0] = -1;
        s_close_pipes(pipes); /* the child holds the write ends now */
        s_supervise(&b, timeout_s * 1000);
        *ctx->result = s_bash_result(&b);
        if (*ctx->result && s_disk_stopped(ctx, &b)) {
            s_disk_note(ctx, &b, *ctx->result);
        }
        rc = 0;
    }
    s_close_pipes(pipes);
    if (b.out.fd >= 0) {
        close(b.out.fd);
    }
    if (b.err.fd >= 0) {
        close(b.err.fd);
    }
    free(b.out.buf);
    free(b.err.buf);
    return rc;
}
