/*  agent_claude_procs — the CLI runs its Bash tool in a new session (setsid),
    so killing the CLI's process group does not reach a running tool. When a
    run must be stopped by force, the CLI's live descendants are found in
    /proc (by parent pid, while the CLI still holds them) and remembered
    with their start times; signals then go to each remembered process (and
    the group it leads) only while its start time still matches, so a
    recycled pid is never hit. Reads /proc (in memory, a few hundred small
    files): only on the termination path, never per line. Loop thread. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_SCAN 65536 /* processes examined in one /proc scan */

typedef struct {
    pid_t pid, ppid, pgrp;    /* from /proc/<pid>/stat */
    unsigned long long start; /* start time in clock ticks since boot */
} s_stat_t;

/* Reads /proc/<pid>/stat. Returns 0, or -1 when the process is gone. */
static int s_read_stat(pid_t pid, s_stat_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')'); /* the command name may hold spaces and parens */
    int ppid, pgrp;
    if (!paren || sscanf(paren + 1,
                         " %*c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                         "%*d %*d %llu",
                         &ppid, &pgrp, &out->start) != 3) {
        return -1;
    }
    out->pid = pid;
    out->ppid = ppid;
    out->pgrp = pgrp;
    return 0;
}

/* Every process on the machine (bounded); caller frees. */
static s_stat_t *s_scan(size_t *count)
{
    DIR *d = opendir("/proc");
    size_t n = 0, cap = 256;
    s_stat_t *all = d ? malloc(cap * sizeof *all) : NULL;
    struct dirent *e;
    while (all && n < S_MAX_SCAN && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        if (n == cap) {
            s_stat_t *grown = realloc(all, 2 * cap * sizeof *all);
            if (!grown) {
                break;
            }
            all = grown;
            cap *= 2;
        }
        if (s_read_stat((pid_t)atoi(e->d_name), &all[n]) == 0) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    *count = n;
    return all;
}

static bool s_known(const agent_claude_run_t *run, pid_t pid)
{
    for (size_t i = 0; i < run->nprocs; i++) {
        if (run->procs[i].pid == pid) {
            return true;
        }
    }
    return pid == run->pid;
}

static void s_remember(agent_claude_run_t *run, const s_stat_t *st)
{
    if (run->nprocs >= AGENT_CLAUDE_MAX_PROCS || s_known(run, st->pid)) {
        return;
    }
    run->procs[run->nprocs].pid = st->pid;
    run->procs[run->nprocs].start = st->start;
    run->nprocs++;
}

void agent_claude_procs_collect(agent_claude_run_t *run)
{
    if (run->exited) {
        return; /* the tree is gone: its orphans now belong to init */
    }
    size_t n = 0;
    s_stat_t *all = s_scan(&n);
    if (!all) {
        LOG_W("cannot scan /proc for the descendants of pid=%d", (int)run->pid);
        return;
    }
    /* Grow the set of descendants until it stops growing (one pass per
       generation of the tree; bounded by the number of processes). */
    for (bool grew = true; grew;) {
        grew = false;
        size_t before = run->nprocs;
        for (size_t i = 0; i < n; i++) {
            if (s_known(run, all[i].ppid) && all[i].pid != getpid()) {
                s_remember(run, &all[i]);
            }
        }
        grew = run->nprocs > before;
    }
    free(all);
}

void agent_claude_procs_signal(agent_claude_run_t *run, int sig)
{
    pid_t self_group = getpgrp();
    for (size_t i = 0; i < run->nprocs; i++) {
        s_stat_t st;
        if (s_read_stat(run->procs[i].pid, &st) < 0 || st.start != run->procs[i].start) {
            continue; /* gone, or the pid now belongs to someone else */
        }
        if (st.pgrp == st.pid && st.pgrp != self_group) {
            kill(-st.pgrp, sig);
        }
        if (kill(st.pid, sig) < 0 && errno != ESRCH) {
            LOG_W("kill pid=%d sig=%d: %s", (int)st.pid, sig, strerror(errno));
        }
    }
}
