/*  agent_claude internals shared by agent_claude.c (runner, lifecycle,
    kill and reap), agent_claude_spawn.c (argv, environment, posix_spawn),
    agent_claude_io.c (pipes) and agent_claude_parse.c (output lines →
    callbacks). Loop thread only. */
#ifndef BICKY_AGENT_CLAUDE_INTERNAL_H
#define BICKY_AGENT_CLAUDE_INTERNAL_H

#include "node/agent/agent_claude.h"

#include <stdint.h>

#define AGENT_CLAUDE_ERR_TAIL  2048 /* last stderr bytes kept for an error reason */
#define AGENT_CLAUDE_MAX_PROCS 256  /* descendants remembered for a forced stop */

/* A descendant of the CLI, identified by pid and start time. */
typedef struct {
    pid_t pid;                /* process id */
    unsigned long long start; /* start time (clock ticks since boot) */
} agent_claude_proc_t;

struct agent_claude_t {
    zloop_t *loop;            /* borrowed */
    agent_relay_t *relay;     /* borrowed; NULL = no relay */
    int tick_id;              /* the runner's timer, -1 when none */
    uint64_t gen;             /* tick count: a dead run is freed on a later tick */
    agent_claude_run_t *runs; /* every run not yet freed, newest first */
};

struct agent_claude_run_t {
    agent_claude_t *owner;                 /* the runner */
    agent_claude_run_t *prev, *next;       /* in owner->runs */
    agent_claude_callbacks_t cb;           /* copied at start */
    void *arg;                             /* callback argument */
    char token[AGENT_RELAY_TOKEN_LEN + 1]; /* the run's relay token; "" once revoked */
    pid_t pid;                             /* the CLI, leader of its own process group */
    int pidfd;                             /* readable at exit; -1 when closed or unavailable */
    int in_fd, out_fd, err_fd;             /* our pipe ends; -1 when closed */
    bool in_polled;                        /* a POLLOUT poller is registered for in_fd */
    bool close_in_after_flush;             /* close stdin once the queue is written */
    char *q;                               /* bytes waiting for stdin */
    size_t q_len, q_off, q_cap;            /* queue length, written prefix, capacity */
    char *line;                            /* stdout bytes not yet split into lines */
    size_t line_len, line_cap;             /* their length and capacity */
    size_t line_scan;                      /* bytes of line already searched for '\n' */
    size_t max_line;                       /* bound on one line */
    char err_tail[AGENT_CLAUDE_ERR_TAIL];  /* last stderr bytes (ring, not NUL-terminated) */
    size_t err_total;                      /* stderr bytes seen */
    json_t *pending;    /* request_id → tool input of open permission requests */
    json_t *result;     /* the result line, kept for on_done */
    bool init_seen;     /* on_init delivered */
    bool finished;      /* terminal callback delivered or cancelled */
    bool exited;        /* reaped */
    int exit_status;    /* exit code or 128 + signal */
    long disk_mb;       /* the disk quota bicky-exec enforces (MiB; 0 = none) */
    bool terminating;   /* stopping: interrupt asked, signals follow */
    bool sigterm_sent;  /* SIGTERM sent to the group and descendants */
    bool killed;        /* SIGKILL sent */
    int64_t term_at_ms; /* when SIGTERM follows the interrupt */
    int64_t kill_at_ms; /* when SIGKILL follows SIGTERM */
    agent_claude_proc_t procs[AGENT_CLAUDE_MAX_PROCS]; /* descendants seen while stopping */
    size_t nprocs;                                     /* entries in procs */
    int64_t deadline_ms;                               /* Bicky's timeout (mono ms); 0 = none */
    int64_t exit_by_ms; /* result seen: SIGTERM if still running then */
    bool dead;          /* reaped and finished: free on a later tick */
    uint64_t dead_gen;  /* owner->gen when it died */
};

/* agent_claude_spawn.c: starts the CLI for params with pipes and pidfd set
   in run (pid, in_fd, out_fd, err_fd, pidfd). Returns 0, or -1 with err. */
int agent_claude_spawn(agent_claude_run_t *run,
                       const agent_claude_params_t *params,
                       char *err,
                       size_t errlen);
/* agent_claude_box.c */
/* When params run in the sandbox (enabled, not opted out, bwrap and bicky-exec
   there): whether the CLI can be given the relay-only network, i.e. the relay has a
   unix socket (params->relay_unix), bicky-fwd lies next to bicky-exec and a channel
   mcp endpoint is an ipc:/// socket file. 0 when it can (or the sandbox does not
   apply), else -1 with the cause and its fix in err (logged): the CLI must not run. */
int agent_claude_box_check(const agent_claude_params_t *params, char *err, size_t errlen);
/* argv (argv[0] resolved) wrapped in the CLI's sandbox: cwd and HOME writable, the
   install read-only, no network of its own: bicky-fwd, in the sandbox, is the way to
   the relay and nothing else is reachable. A new argv (agent_sandbox_argv_free); NULL
   on a bad spec, OOM, or when agent_claude_box_check fails (never a fallback to the
   node's network). */
char **agent_claude_box(const agent_claude_params_t *params, char **argv);

/* The stream-json user line for params (without '\n'); caller frees. NULL
   with err when neither prompt nor a content array is given. */
char *agent_claude_user_line(const agent_claude_params_t *params, char *err, size_t errlen);

/* agent_claude_io.c */
/* Registers the pollers of a freshly spawned run. Returns 0 or -1. */
int agent_claude_io_attach(agent_claude_run_t *run);
/* Queues one line (a '\n' is added) for stdin and starts writing. Returns 0,
   or -1 when stdin is closed or the queue would exceed its bound. */
int agent_claude_io_send(agent_claude_run_t *run, const char *line);
/* Closes stdin once everything queued is written. */
void agent_claude_io_close_stdin(agent_claude_run_t *run);
/* Reads whatever stdout and stderr hold right now (the process exited) and
   closes them; complete lines are processed. */
void agent_claude_io_drain(agent_claude_run_t *run);
/* Closes stdin, stdout and stderr (ending their pollers first). */
void agent_claude_io_close_pipes(agent_claude_run_t *run);
/* Closes the pidfd (ending its poller first). */
void agent_claude_io_close_pidfd(agent_claude_run_t *run);
/* The stderr tail as a one-line string (control characters replaced). */
void agent_claude_io_err_tail(const agent_claude_run_t *run, char *out, size_t outlen);

/* agent_claude_parse.c: one stdout line → callbacks. Returns 0, or -1 with
   a reason in err when the line is malformed (the caller fails the run). */
int agent_claude_parse_line(
    agent_claude_run_t *run, const char *line, size_t len, char *err, size_t errlen);
/* The result line r as on_done's struct (pointers borrowed from r, which
   must outlive res). Numbers that are absent or not numbers read as 0. */
void agent_claude_result_read(const json_t *r, int exit_status, agent_claude_result_t *res);

/* agent_claude_procs.c */
/* Remembers the CLI's live descendants (it runs tools in their own sessions). */
void agent_claude_procs_collect(agent_claude_run_t *run);
/* Sends sig to each remembered descendant still alive (and the group it leads). */
void agent_claude_procs_signal(agent_claude_run_t *run, int sig);

/* agent_claude.c */
/* Fails the run: on_error(reason) unless finished; the process is stopped. */
void agent_claude_fail(agent_claude_run_t *run, const char *reason);
/* Records the result line (json_incref'd), closes stdin and arms the exit wait. */
void agent_claude_on_result(agent_claude_run_t *run, json_t *result);
/* Reaps the process if it exited (WNOHANG) and completes the run. */
void agent_claude_reap(agent_claude_run_t *run);

#endif
