/*  proc_stat — reading /proc/<pid>/stat. See proc_stat.h. */
#include "common/proc_stat.h"

#include <stdio.h>
#include <string.h>

int proc_stat_read(pid_t pid, proc_stat_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    char *paren = strrchr(buf, ')'); /* the command name may hold spaces and parens */
    int ppid;
    if (!paren || sscanf(paren + 1,
                         " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                         "%*d %*d %llu",
                         &out->state, &ppid, &out->start) != 3) {
        return -1;
    }
    out->pid = pid;
    out->ppid = ppid;
    return 0;
}
