/*  agent_claude — the runner and the life of a run: start, permission
    replies, cancel, Bicky's timeout, SIGTERM → SIGKILL of the process group,
    reaping (pidfd poller, or WNOHANG from the tick), completion. A run's
    memory is freed only on a tick after it died, so a stale zloop pollset
    entry or an ended timer can never reach freed memory. Loop thread only. */
#define LOG_MODULE "agent_claude"
#include "common/disk_usage.h"
#include "common/log.h"
#include "common/util.h"
#include "node/agent/agent_claude_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_DESTROY_WAIT_MS 5000 /* agent_claude_destroy: longest wait for a killed group */

/* The run's model calls end with it: its relay token dies. */
static void s_revoke(agent_claude_run_t *run)
{
    if (run->token[0]) {
        agent_relay_revoke(run->owner->relay, run->token);
        memset(run->token, 0, sizeof run->token);
    }
}

static void s_run_free(agent_claude_run_t *run)
{
    agent_claude_t *owner = run->owner;
    s_revoke(run);
    if (run->prev) {
        run->prev->next = run->next;
    } else {
        owner->runs = run->next;
    }
    if (run->next) {
        run->next->prev = run->prev;
    }
    agent_claude_io_close_pipes(run);
    agent_claude_io_close_pidfd(run);
    json_decref(run->pending);
    json_decref(run->result);
    free(run->q);
    free(run->line);
    free(run);
}

/* Signals the whole group; after the leader was reaped this only reaches
   leftovers (ESRCH when there are none). */
static void s_signal_group(agent_claude_run_t *run, int sig)
{
    if (run->pid > 0 && kill(-run->pid, sig) < 0 && errno != ESRCH) {
        LOG_W("kill group=%d sig=%d: %s", (int)run->pid, sig, strerror(errno));
    }
}

/* SIGTERM to the group and to the descendants found now; SIGKILL follows. */
static void s_escalate(agent_claude_run_t *run)
{
    if (run->exited || run->sigterm_sent) {
        return;
    }
    run->sigterm_sent = true;
    run->kill_at_ms = util_mono_ms() + AGENT_CLAUDE_KILL_GRACE_MS;
    agent_claude_procs_collect(run);
    agent_claude_procs_signal(run, SIGTERM);
    s_signal_group(run, SIGTERM);
}

static void s_kill(agent_claude_run_t *run)
{
    run->killed = true;
    agent_claude_procs_collect(run);
    agent_claude_procs_signal(run, SIGKILL);
    s_signal_group(run, SIGKILL);
}

/* Stops a live CLI: first politely (an interrupt control_request, which
   makes the CLI stop its running tool, then EOF), then by signals. */
static void s_terminate(agent_claude_run_t *run)
{
    if (run->exited || run->terminating) {
        return;
    }
    run->terminating = true;
    run->term_at_ms = util_mono_ms() + AGENT_CLAUDE_INTERRUPT_MS;
    char line[160];
    snprintf(line, sizeof line,
             "{\"type\":\"control_request\",\"request_id\":\"bicky-interrupt-%d\","
             "\"request\":{\"subtype\":\"interrupt\"}}",
             (int)run->pid);
    if (agent_claude_io_send(run, line) < 0) {
        s_escalate(run);
    }
    agent_claude_io_close_stdin(run);
}

static void s_mark_dead(agent_claude_run_t *run)
{
    if (run->exited && run->finished && !run->dead) {
        agent_claude_io_close_pipes(run);
        run->dead = true;
        run->dead_gen = run->owner->gen;
    }
}

void agent_claude_fail(agent_claude_run_t *run, const char *reason)
{
    if (run->finished) {
        return;
    }
    LOG_N("claude run failed pid=%d reason=\"%s\"", (int)run->pid, reason);
    run->finished = true; /* output is read and dropped from now on */
    s_revoke(run);
    s_terminate(run);
    s_mark_dead(run);
    if (run->cb.on_error) {
        run->cb.on_error(run->arg, reason);
    }
}

void agent_claude_on_result(agent_claude_run_t *run, json_t *result)
{
    json_decref(run->result);
    run->result = json_incref(result);
    /* One user line per run: once its result is out, EOF on stdin lets the
       CLI exit (closing it earlier would break a pending permission prompt). */
    agent_claude_io_close_stdin(run);
    run->exit_by_ms = util_mono_ms() + AGENT_CLAUDE_EXIT_WAIT_MS;
}

static void s_deliver_done(agent_claude_run_t *run)
{
    agent_claude_result_t res;
    agent_claude_result_read(run->result, run->exit_status, &res);
    if (run->cb.on_done) {
        run->cb.on_done(run->arg, &res);
    }
}

/* The process was reaped and its output drained: deliver the end. */
static void s_complete(agent_claude_run_t *run)
{
    if (run->finished) {
        s_mark_dead(run);
        return;
    }
    if (!run->result) {
        char tail[512], reason[AGENT_CLAUDE_REASON_MAX];
        agent_claude_io_err_tail(run, tail, sizeof tail);
        if (run->disk_mb > 0 && run->exit_status == DISK_USAGE_EXIT) {
            /* bicky-exec refused to start it or killed the whole sandbox. */
            snprintf(reason, sizeof reason,
                     "disk quota: the working directory and the CLI's HOME passed their disk "
                     "quota of %ld MiB (sandbox_disk_mb); the CLI was stopped (or not "
                     "started)%s%s",
                     run->disk_mb, tail[0] ? ": " : "", tail);
        } else {
            snprintf(reason, sizeof reason, "claude exited with status %d without a result%s%s",
                     run->exit_status, tail[0] ? ": " : "", tail);
        }
        agent_claude_fail(run, reason);
        return;
    }
    run->finished = true;
    s_revoke(run);
    s_mark_dead(run);
    LOG_I("claude run done pid=%d status=%d", (int)run->pid, run->exit_status);
    s_deliver_done(run);
}

void agent_claude_reap(agent_claude_run_t *run)
{
    if (run->exited) {
        return;
    }
    int status = 0;
    pid_t r = waitpid(run->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) {
        return;
    }
    run->exited = true;
    if (r < 0) {
        run->exit_status = -1; /* ECHILD: someone else reaped it (SIGCHLD ignored?) */
    } else {
        run->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
                                             : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    agent_claude_io_close_pidfd(run);
    /* A run leaves nothing behind: leftovers in its group go too, and so do
       the descendants remembered while it was being stopped. */
    s_signal_group(run, SIGKILL);
    agent_claude_procs_signal(run, SIGKILL);
    if (!run->finished) {
        agent_claude_io_drain(run);
    }
    s_complete(run);
}

static void s_tick_run(agent_claude_run_t *run, int64_t now)
{
    if (run->exited) {
        return;
    }
    if (run->pidfd < 0) {
        agent_claude_reap(run);
        if (run->exited) {
            return;
        }
    }
    if (run->deadline_ms && now >= run->deadline_ms && !run->finished) {
        agent_claude_fail(run, "timeout");
    }
    if (run->result && !run->sigterm_sent && now >= run->exit_by_ms) {
        LOG_W("claude did not exit after its result pid=%d", (int)run->pid);
        s_escalate(run);
    }
    if (run->terminating && !run->sigterm_sent && now >= run->term_at_ms) {
        LOG_I("claude ignored the interrupt pid=%d: SIGTERM", (int)run->pid);
        s_escalate(run);
    }
    if (run->sigterm_sent && !run->killed && now >= run->kill_at_ms) {
        LOG_W("claude survived SIGTERM pid=%d: SIGKILL", (int)run->pid);
        s_kill(run);
    }
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    agent_claude_t *self = arg;
    self->gen++;
    agent_claude_run_t *run = self->runs, *next;
    for (; run; run = next) {
        next = run->next;
        if (run->dead && run->dead_gen < self->gen) {
            s_run_free(run);
        }
    }
    /* Callbacks below may start runs (added at the head, seen next tick) or
       cancel runs (marked only): nothing is freed during this walk. */
    int64_t now = util_mono_ms();
    for (run = self->runs; run; run = run->next) {
        s_tick_run(run, now);
    }
    return 0;
}

agent_claude_t *agent_claude_new(zloop_t *loop, agent_relay_t *relay)
{
    agent_claude_t *self = calloc(1, sizeof *self);
    if (!self) {
        LOG_E("out of memory");
        return NULL;
    }
    self->loop = loop;
    self->relay = relay;
    self->tick_id = zloop_timer(loop, AGENT_CLAUDE_TICK_MS, 0, s_on_tick, self);
    if (self->tick_id < 0) {
        LOG_E("cannot add the claude runner's timer");
        free(self);
        return NULL;
    }
    return self;
}

/* Waits (bounded) for a SIGKILLed group leader. Shutdown only. */
static void s_reap_blocking(agent_claude_run_t *run)
{
    int64_t until = util_mono_ms() + S_DESTROY_WAIT_MS;
    while (!run->exited && util_mono_ms() < until) {
        int status;
        pid_t r = waitpid(run->pid, &status, WNOHANG);
        if (r != 0 && !(r < 0 && errno == EINTR)) {
            run->exited = true;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!run->exited) {
        LOG_E("claude pid=%d did not die after SIGKILL", (int)run->pid);
    }
}

void agent_claude_destroy(agent_claude_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    agent_claude_t *self = *self_p;
    for (agent_claude_run_t *run = self->runs; run; run = run->next) {
        run->finished = true;
        s_revoke(run);
        if (!run->exited) {
            s_kill(run);
        }
    }
    while (self->runs) {
        agent_claude_run_t *run = self->runs;
        if (!run->exited) {
            s_reap_blocking(run);
        }
        s_run_free(run);
    }
    zloop_timer_end(self->loop, self->tick_id);
    free(self);
    *self_p = NULL;
}

static agent_claude_run_t *s_run_new(agent_claude_t *self, const agent_claude_params_t *p)
{
    agent_claude_run_t *run = calloc(1, sizeof *run);
    if (!run || !(run->pending = json_object())) {
        free(run);
        return NULL;
    }
    run->owner = self;
    run->in_fd = run->out_fd = run->err_fd = run->pidfd = -1;
    run->max_line = p->max_line ? p->max_line : AGENT_CLAUDE_MAX_LINE;
    if (p->timeout_s > 0) {
        run->deadline_ms = util_mono_ms() + p->timeout_s * 1000;
    }
    run->next = self->runs;
    if (self->runs) {
        self->runs->prev = run;
    }
    self->runs = run;
    return run;
}

/* The CLI gets the relay and a token of the run's own in p; the real URL
   and key stay in params and in the relay. */
static int s_relay_params(agent_claude_t *self,
                          agent_claude_run_t *run,
                          agent_claude_params_t *p,
                          char *err,
                          size_t errlen)
{
    if (!self->relay) {
        if (p->api_key && *p->api_key) {
            snprintf(err, errlen, "an API key needs the model relay (it never goes to the CLI)");
            return -1;
        }
        return 0;
    }
    if (agent_relay_grant(self->relay, p->base_url, p->api_key, AGENT_RELAY_AUTH_X_API_KEY,
                          run->token) < 0) {
        snprintf(err, errlen, "cannot make a model relay token (bad base_url?)");
        return -1;
    }
    p->base_url = agent_relay_url(self->relay);
    p->api_key = run->token;
    p->relay_unix = agent_relay_unix_path(self->relay);
    return 0;
}

agent_claude_run_t *agent_claude_start(agent_claude_t *self,
                                       const agent_claude_params_t *params,
                                       const agent_claude_callbacks_t *cb,
                                       void *arg,
                                       char *err,
                                       size_t errlen)
{
    char *line = agent_claude_user_line(params, err, errlen);
    if (!line) {
        return NULL;
    }
    agent_claude_run_t *run = s_run_new(self, params);
    if (!run) {
        snprintf(err, errlen, "out of memory");
        free(line);
        return NULL;
    }
    agent_claude_params_t p = *params;
    if (s_relay_params(self, run, &p, err, errlen) < 0 ||
        agent_claude_spawn(run, &p, err, errlen) < 0) {
        run->exited = run->finished = true; /* nothing to reap */
        s_run_free(run);
        free(line);
        return NULL;
    }
    if (cb) {
        run->cb = *cb;
    }
    run->arg = arg;
    if (agent_claude_io_attach(run) < 0 || agent_claude_io_send(run, line) < 0) {
        snprintf(err, errlen, "cannot attach the claude pipes to the loop");
        run->finished = true; /* no callbacks: the caller gets NULL */
        agent_claude_io_close_pipes(run);
        s_escalate(run);
        free(line);
        return NULL;
    }
    free(line);
    return run;
}

int agent_claude_permission_reply(agent_claude_run_t *run,
                                  const char *request_id,
                                  bool allow,
                                  const json_t *updated_input,
                                  const char *deny_message)
{
    json_t *asked = request_id ? json_object_get(run->pending, request_id) : NULL;
    if (run->finished || !asked) {
        return -1;
    }
    json_t *decision =
        allow ? json_pack("{s:s, s:O}", "behavior", "allow", "updatedInput",
                          json_is_object(updated_input) ? updated_input : asked)
              : json_pack("{s:s, s:s}", "behavior", "deny", "message",
                          deny_message && *deny_message ? deny_message : "Denied by Bicky");
    json_t *line =
        decision ? json_pack("{s:s, s:{s:s, s:s, s:o}}", "type", "control_response", "response",
                             "subtype", "success", "request_id", request_id, "response", decision)
                 : NULL;
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    int rc = text ? agent_claude_io_send(run, text) : -1;
    free(text);
    json_decref(line);
    if (rc == 0) {
        json_object_del(run->pending, request_id);
    }
    return rc;
}

void agent_claude_cancel(agent_claude_run_t **run_p)
{
    if (!run_p || !*run_p) {
        return;
    }
    agent_claude_run_t *run = *run_p;
    *run_p = NULL;
    if (run->finished) {
        return;
    }
    LOG_I("claude run cancelled pid=%d", (int)run->pid);
    run->finished = true; /* output is read and dropped from now on */
    s_revoke(run);
    if (!run->result) {
        s_terminate(run); /* with a result, the CLI is already on its way out */
    }
    s_mark_dead(run);
}

pid_t agent_claude_pid(const agent_claude_run_t *run)
{
    return run->pid;
}

size_t agent_claude_active(const agent_claude_t *self)
{
    size_t n = 0;
    for (const agent_claude_run_t *run = self->runs; run; run = run->next) {
        n += !run->exited;
    }
    return n;
}
