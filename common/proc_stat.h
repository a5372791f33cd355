/*  proc_stat — the fields of /proc/<pid>/stat that tell a process apart from
    a later one with the same pid (its start time) and its state and parent.
    Used by the node's children guard and by bicky-exec, which is built
    from this file alone (no other library). Any thread. */
#ifndef BICKY_PROC_STAT_H
#define BICKY_PROC_STAT_H

#include <sys/types.h>

typedef struct {
    pid_t pid, ppid;          /* from /proc/<pid>/stat */
    char state;               /* R S D Z T … */
    unsigned long long start; /* start time, clock ticks since boot (field 22) */
} proc_stat_t;

/* Reads pid's stat into out; -1 when there is no such process or it does not parse. */
int proc_stat_read(pid_t pid, proc_stat_t *out);

#endif
