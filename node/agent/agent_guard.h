/*  agent_guard — children that die with their node. The claude CLI and the
    bash tool are started through bicky-exec (tools/bicky_exec), which dies
    with the thread that started it (PR_SET_PDEATHSIG), takes its program's
    whole process tree with it and records itself in a pid file per child;
    at startup a node kills what a previous incarnation left there. See
    docs/node.md ("Children"). agent_guard_init and agent_guard_sweep block
    (startup, before the loop runs); agent_guard_argv is pure, any thread. */
#ifndef BICKY_AGENT_GUARD_H
#define BICKY_AGENT_GUARD_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define AGENT_GUARD_SHIM      "bicky-exec"
#define AGENT_GUARD_DISK_DIRS 2  /* --disk-dir trees one child is measured on */
#define AGENT_GUARD_EXTRA_ARG 12 /* argv entries agent_guard_argv puts before the program */

typedef struct {
    char shim[PATH_MAX];    /* absolute path of bicky-exec; "" = children start unguarded */
    char pid_dir[PATH_MAX]; /* where bicky-exec writes <pid> files; "" = none */
    char parent[16];        /* getpid() of the node, as --parent */
} agent_guard_t;

/* What bicky-exec applies to one child; strings are borrowed. */
typedef struct {
    const char *limits; /* --limits (agent_sandbox_limits_format); NULL or "" = none */
    const char *disk_dirs[AGENT_GUARD_DISK_DIRS]; /* --disk-dir each (absolute), NULL = end:
                                                     the trees disk=B bounds together */
} agent_guard_opts_t;

/* Fills g: shim is the bicky-exec to use (NULL or "" = the one next to
   /proc/self/exe); a shim that is not executable is logged (warning) and
   leaves g->shim empty. pid_dir (may be NULL) is created (mode 0700, parents
   too). Returns 0, or -1 when pid_dir cannot be created (logged). */
int agent_guard_init(agent_guard_t *g, const char *shim, const char *pid_dir);

/* The argv to spawn: argv itself when g is NULL or has no shim, else
   bicky-exec --parent PID [--pid-dir DIR] -- argv…. out has room for cap
   pointers (argc + AGENT_GUARD_EXTRA_ARG + 1 is enough); the strings are
   borrowed from g and argv. Returns out (or argv), NULL when cap is too small. */
char *const *agent_guard_argv(const agent_guard_t *g, char *const *argv, char **out, size_t cap);

/* The same with `--limits limits` for bicky-exec (agent_sandbox_limits_format; NULL
   or "" = none): the resource limits the program gets before exec. */
char *const *agent_guard_argv_limits(
    const agent_guard_t *g, const char *limits, char *const *argv, char **out, size_t cap);

/* The same with every option of o (NULL = none): --limits, then --disk-dir for each
   tree (bicky-exec refuses to start and kills its program when they pass disk=B). */
char *const *agent_guard_argv_opts(
    const agent_guard_t *g, const agent_guard_opts_t *o, char *const *argv, char **out, size_t cap);

/* Kills what a previous process left: every pid file in g->pid_dir whose
   process is a live bicky-exec with the recorded start time and boot id, and
   whose recorded parent (pid and start time) is gone, is stopped with its
   whole tree (SIGSTOP, then SIGKILL, waited for up to 5 s); stale files are
   removed. Never signals a process that does not match its file, nor the
   child of a live process (its file stays). Returns the number of leftover shims killed, -1 when
   pid_dir cannot be read. Blocking: startup only. */
int agent_guard_sweep(const agent_guard_t *g);

#endif
