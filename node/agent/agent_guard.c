/*  agent_guard — children that die with their node (see agent_guard.h). */
#define LOG_MODULE "agent_guard"
#include "node/agent/agent_guard.h"
#include "common/log.h"
#include "common/proc_stat.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_TREE_MAX 4096 /* processes of one leftover tree we stop and kill */
#define S_SCAN_MAX 65536
#define S_WAIT_MS  5000 /* how long the sweep waits for a killed tree to be gone */
#define S_POLL_MS  10
#define S_FILE_MAX 256 /* a pid file is one short line */
#define S_BOOT_ID  64

/* True while pid is the process that started at start and is not a zombie. */
static bool s_same_alive(pid_t pid, unsigned long long start)
{
    proc_stat_t p;
    return proc_stat_read(pid, &p) == 0 && p.start == start && p.state != 'Z' && p.state != 'X';
}

static void s_boot_id(char out[S_BOOT_ID])
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    out[0] = '\0';
    if (f) {
        if (!fgets(out, S_BOOT_ID, f)) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

/* True when /proc/<pid>/cmdline's first argument is a bicky-exec. */
static bool s_is_shim(pid_t pid)
{
    char path[64], buf[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    const char *slash = strrchr(buf, '/');
    return n > 0 && strcmp(slash ? slash + 1 : buf, AGENT_GUARD_SHIM) == 0;
}

static int s_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static void s_find_shim(agent_guard_t *g, const char *shim)
{
    char exe[PATH_MAX];
    if (shim && *shim) {
        if (!realpath(shim, g->shim)) {
            snprintf(g->shim, sizeof g->shim, "%s", shim);
        }
    } else {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
        if (slash) {
            *slash = '\0';
            snprintf(g->shim, sizeof g->shim, "%.*s/" AGENT_GUARD_SHIM, PATH_MAX - 32, exe);
        }
    }
    if (!g->shim[0] || access(g->shim, X_OK) != 0) {
        LOG_W("%s not found or not executable path=%s: the claude CLI and the bash tool will "
              "not die with this node",
              AGENT_GUARD_SHIM, g->shim);
        g->shim[0] = '\0';
    }
}

int agent_guard_init(agent_guard_t *g, const char *shim, const char *pid_dir)
{
    memset(g, 0, sizeof *g);
    snprintf(g->parent, sizeof g->parent, "%d", (int)getpid());
    s_find_shim(g, shim);
    if (pid_dir && *pid_dir) {
        if (strlen(pid_dir) >= sizeof g->pid_dir || s_mkdirs(pid_dir) < 0) {
            LOG_E("cannot create the children's pid directory path=%s error=\"%s\"", pid_dir,
                  strerror(errno));
            return -1;
        }
        snprintf(g->pid_dir, sizeof g->pid_dir, "%s", pid_dir);
    }
    return 0;
}

char *const *agent_guard_argv(const agent_guard_t *g, char *const *argv, char **out, size_t cap)
{
    return agent_guard_argv_limits(g, NULL, argv, out, cap);
}

char *const *agent_guard_argv_limits(
    const agent_guard_t *g, const char *limits, char *const *argv, char **out, size_t cap)
{
    agent_guard_opts_t o = {.limits = limits};
    return agent_guard_argv_opts(g, &o, argv, out, cap);
}

char *const *agent_guard_argv_opts(
    const agent_guard_t *g, const agent_guard_opts_t *o, char *const *argv, char **out, size_t cap)
{
    const char *limits = o ? o->limits : NULL;
    if (!g || !g->shim[0]) {
        return argv;
    }
    size_t argc = 0;
    while (argv[argc]) {
        argc++;
    }
    if (cap < argc + AGENT_GUARD_EXTRA_ARG + 1) {
        return NULL;
    }
    size_t n = 0;
    out[n++] = (char *)g->shim;
    out[n++] = "--parent";
    out[n++] = (char *)g->parent;
    if (g->pid_dir[0]) {
        out[n++] = "--pid-dir";
        out[n++] = (char *)g->pid_dir;
    }
    if (limits && *limits) {
        out[n++] = "--limits";
        out[n++] = (char *)limits;
    }
    for (size_t i = 0; o && i < AGENT_GUARD_DISK_DIRS && o->disk_dirs[i]; i++) {
        out[n++] = "--disk-dir";
        out[n++] = (char *)o->disk_dirs[i];
    }
    out[n++] = "--";
    for (size_t i = 0; i <= argc; i++) {
        out[n++] = argv[i];
    }
    return out;
}

/* Adds every process whose parent is in tree[0..*n) to the tree and stops it.
   Returns how many were added. */
static size_t s_grow(proc_stat_t *tree, size_t *n)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t added = 0, seen = 0;
    while (d && *n < S_TREE_MAX && seen++ < S_SCAN_MAX && (e = readdir(d))) {
        proc_stat_t p;
        if (!isdigit((unsigned char)e->d_name[0]) ||
            proc_stat_read((pid_t)atoi(e->d_name), &p) < 0 || p.pid == getpid()) {
            continue;
        }
        bool parent_in = false, known = false;
        for (size_t i = 0; i < *n; i++) {
            parent_in |= tree[i].pid == p.ppid;
            known |= tree[i].pid == p.pid;
        }
        if (parent_in && !known) {
            kill(p.pid, SIGSTOP);
            tree[(*n)++] = p;
            added++;
        }
    }
    if (d) {
        closedir(d);
    }
    return added;
}

/* Stops root (a verified leftover shim) and its whole tree, then kills them
   all and waits until they are gone. Each pid is signalled only while its
   start time matches. Returns the tree's size. */
static size_t s_kill_tree(pid_t root, unsigned long long start)
{
    proc_stat_t *tree = calloc(S_TREE_MAX, sizeof *tree);
    if (!tree) {
        kill(root, SIGKILL);
        return 1;
    }
    tree[0] = (proc_stat_t){.pid = root, .start = start};
    size_t n = 1;
    kill(root, SIGSTOP);
    /* Stopped processes cannot fork: grow until a pass finds nobody new. */
    for (int pass = 0; pass < 64 && s_grow(tree, &n) > 0; pass++) {
    }
    for (size_t i = 0; i < n; i++) {
        if (s_same_alive(tree[i].pid, tree[i].start)) {
            kill(tree[i].pid, SIGKILL);
        }
    }
    struct timespec pause = {0, S_POLL_MS * 1000 * 1000};
    for (int waited = 0; waited < S_WAIT_MS; waited += S_POLL_MS) {
        size_t alive = 0;
        for (size_t i = 0; i < n; i++) {
            alive += s_same_alive(tree[i].pid, tree[i].start);
        }
        if (alive == 0) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    free(tree);
    return n;
}

/* Reads one pid file; 0 when it names a live leftover shim (pid, start set): a live
   bicky-exec with the recorded start time, on this boot, whose recorded parent is gone
   (a shim of a live process, e.g. another node sharing the directory, is no leftover;
   1 then, and its file stays). -1 for a stale file. */
static int s_leftover(const char *path, pid_t *pid, unsigned long long *start, const char *boot)
{
    char buf[S_FILE_MAX], rec_boot[S_BOOT_ID];
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    int p = 0, parent = 0;
    unsigned long long parent_start = 0;
    if (sscanf(buf, AGENT_GUARD_SHIM " %d %llu %63s %d %llu", &p, start, rec_boot, &parent,
               &parent_start) != 5 ||
        p <= 0 || strcmp(rec_boot, boot) != 0) {
        return -1;
    }
    *pid = (pid_t)p;
    if (!s_same_alive(*pid, *start) || !s_is_shim(*pid)) {
        return -1;
    }
    return parent > 0 && s_same_alive((pid_t)parent, parent_start) ? 1 : 0;
}

int agent_guard_sweep(const agent_guard_t *g)
{
    if (!g->pid_dir[0]) {
        return 0;
    }
    DIR *d = opendir(g->pid_dir);
    if (!d) {
        LOG_E("cannot read the children's pid directory path=%s error=\"%s\"", g->pid_dir,
              strerror(errno));
        return -1;
    }
    char boot[S_BOOT_ID], path[PATH_MAX + 300];
    s_boot_id(boot);
    int killed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", g->pid_dir, e->d_name);
        pid_t pid = 0;
        unsigned long long start = 0;
        int rc = s_leftover(path, &pid, &start, boot);
        if (rc > 0) {
            LOG_I("left alone: the child of a live process shim_pid=%d", (int)pid);
            continue;
        }
        if (rc == 0 && pid != getpid() && (e->d_name[0] == '.' || atoi(e->d_name) == (int)pid)) {
            size_t n = s_kill_tree(pid, start);
            LOG_N("killed a child left by a previous node shim_pid=%d processes=%zu", (int)pid, n);
            killed++;
        }
        unlink(path);
    }
    closedir(d);
    return killed;
}
