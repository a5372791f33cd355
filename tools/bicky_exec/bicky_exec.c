/*  bicky-exec — the shim a node starts its children through (the claude CLI,
    the bash tool), so that they die with the node, kill -9 included.

    bicky-exec --parent PID [--pid-dir DIR] [--limits LIST] [--disk-dir DIR]...
               -- PROGRAM [ARG...]

    It asks the kernel for BICKY_EXEC_PDEATH_SIG when the thread that started
    it exits (PR_SET_PDEATHSIG), then checks that its parent is still PID (a
    node that died before that would never send it). It becomes a child
    subreaper, records itself in DIR/<pid> (pid, start time, boot id: what a
    restarted node needs to find it and never mistake another process for it),
    forks PROGRAM (which dies with the shim: PDEATHSIG SIGKILL) and waits. When
    PROGRAM exits, or the parent dies, it kills every descendant left
    (orphans are reparented to it), removes its pid file and exits with
    PROGRAM's status (re-raising its signal). SIGTERM, SIGINT, SIGHUP and
    SIGQUIT are passed on to PROGRAM. Single-threaded; stdio goes to PROGRAM
    only (the shim keeps no copy of the pipes, so EOF still means PROGRAM).
    --limits sets resource limits in PROGRAM before exec (cpu=S, as=B, nproc=N,
    fsize=B, nofile=N); with nproc the shim also counts PROGRAM's tree every 50 ms
    when it runs as root (the kernel does not enforce RLIMIT_NPROC for uid 0) and
    kills it all past N. With disk=B it measures the --disk-dir trees (their
    st_blocks sum, common/disk_usage.h): over B at start it runs nothing, and while
    PROGRAM runs it measures again every S_DISK_MS (more when a walk is slow) and
    kills it all once they pass B; both exit DISK_USAGE_EXIT. */
#include "common/disk_usage.h"
#include "common/proc_stat.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_KILL_ROUNDS 2000 /* rounds of killing descendants (one generation each, 5 ms apart) */
#define S_TREE_MS     50   /* how often a root shim counts the tree under --limits nproc */
#define S_TREE_MAX    4096 /* processes one count walks at most */
#define S_DISK_MS     200  /* how often the --disk-dir trees are measured, at least */
#define S_DISK_SLOW   4    /* and never more often than this many times a walk's length */
#define S_DISK_DIRS   4    /* --disk-dir options */
#define S_USAGE                                                                                    \
    "usage: bicky-exec --parent PID [--pid-dir DIR] [--limits LIST] [--disk-dir DIR]...\n"         \
    "                  -- PROGRAM [ARG...]\n\n"                                                    \
    "Runs PROGRAM so that it dies with PID (the bicky-node that starts it), kill -9\n"             \
    "included: PR_SET_PDEATHSIG, a child subreaper that kills every descendant left\n"             \
    "when PROGRAM exits or PID dies, and a pid file DIR/<pid> (pid, start time, boot\n"            \
    "id, PID and its start time) by which a restarted node finds and kills what a\n"               \
    "previous one left (never the children of a process still alive).\n"                           \
    "--limits cpu=S,as=BYTES,nproc=N,fsize=BYTES,nofile=N,disk=BYTES (any subset) sets\n"          \
    "those resource limits in PROGRAM before exec; as root, where the kernel ignores\n"            \
    "RLIMIT_NPROC, the shim kills PROGRAM's whole tree once it holds more than N.\n"               \
    "disk=BYTES bounds what the --disk-dir trees take on disk together: over it at\n"              \
    "start PROGRAM is not run, and past it while PROGRAM runs everything is killed\n"              \
    "(exit status 122 for both).\n"                                                                \
    "Exits with PROGRAM's status; 127 when it cannot be run, 2 on a bad command line.\n"

/* The signal the kernel sends when the parent dies: one nobody else sends. */
static int s_pdeath_sig(void)
{
    return SIGRTMIN + 4;
}

/* Start time of pid (clock ticks since boot), 0 when unknown. */
static unsigned long long s_start_time(pid_t pid)
{
    proc_stat_t p;
    return proc_stat_read(pid, &p) == 0 ? p.start : 0;
}

static void s_boot_id(char out[64])
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    out[0] = '\0';
    if (f) {
        if (!fgets(out, 64, f)) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

/* Writes DIR/<pid> atomically (a temporary name, then rename): this process and its
   parent, each with its start time, and the boot id. */
static int s_pid_file(const char *dir, pid_t parent, char *path, size_t pathlen)
{
    char tmp[4096], boot[64];
    pid_t me = getpid();
    s_boot_id(boot);
    snprintf(path, pathlen, "%s/%d", dir, (int)me);
    snprintf(tmp, sizeof tmp, "%s/.%d.tmp", dir, (int)me);
    FILE *f = fopen(tmp, "we");
    if (!f) {
        return -1;
    }
    fprintf(f, "bicky-exec %d %llu %s %d %llu\n", (int)me, s_start_time(me), boot, (int)parent,
            s_start_time(parent));
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Parent pid of pid from /proc/<pid>/stat; -1 when gone. */
static pid_t s_ppid(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    int ppid = -1;
    if (!paren || sscanf(paren + 1, " %*c %d", &ppid) != 1) {
        return -1;
    }
    return (pid_t)ppid;
}

/* Without CONFIG_PROC_CHILDREN: every process whose parent we are. */
static int s_children_scan(pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && n < cap && (e = readdir(d))) {
        if (isdigit((unsigned char)e->d_name[0]) && s_ppid((pid_t)atoi(e->d_name)) == getpid()) {
            out[n++] = (pid_t)atoi(e->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

/* Our children's pids from /proc/self/task/<pid>/children (single-threaded:
   the task is the process). Returns the count (at most cap). */
static int s_children(pid_t *out, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "re");
    if (!f) {
        return s_children_scan(out, cap);
    }
    int n = 0, pid;
    while (n < cap && fscanf(f, "%d", &pid) == 1) {
        out[n++] = pid;
    }
    fclose(f);
    return n;
}

static void s_reap(pid_t main_pid, int *main_status, int *main_done)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == main_pid) {
            *main_status = status;
            *main_done = 1;
        }
    }
}

/* SIGKILLs every descendant: the direct children each round (their orphans
   become ours), until none is left. Children are ours to signal: the pid is
   not reused before we reap it. */
static void s_kill_all(pid_t main_pid, int *main_status, int *main_done)
{
    pid_t kids[1024];
    struct timespec pause = {0, 5 * 1000 * 1000};
    for (int round = 0; round < S_KILL_ROUNDS; round++) {
        int n = s_children(kids, 1024);
        for (int i = 0; i < n; i++) {
            kill(kids[i], SIGKILL);
        }
        s_reap(main_pid, main_status, main_done);
        if (n == 0 && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) {
            return;
        }
        nanosleep(&pause, NULL);
    }
}

static void s_exit_like(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        sigset_t set;
        signal(sig, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* --limits: the resource limits PROGRAM gets (0 = not set). */
typedef struct {
    rlim_t cpu, as, nproc, fsize, nofile;
    long long disk; /* not an rlimit: bytes the --disk-dir trees may take */
} s_limits_t;

/* Parses "cpu=S,as=B,nproc=N,fsize=B,nofile=N" (any subset, each value > 0). */
static int s_parse_limits(const char *text, s_limits_t *l)
{
    rlim_t disk = 0;
    const struct {
        const char *name;
        rlim_t *field;
    } keys[] = {{"cpu", &l->cpu},     {"as", &l->as},         {"nproc", &l->nproc},
                {"fsize", &l->fsize}, {"nofile", &l->nofile}, {"disk", &disk}};
    const char *p = text;
    while (*p) {
        size_t klen = strcspn(p, "=,");
        char *end = NULL;
        if (p[klen] != '=') {
            return -1;
        }
        unsigned long long v = strtoull(p + klen + 1, &end, 10);
        if (end == p + klen + 1 || (*end && *end != ',') || v == 0) {
            return -1;
        }
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] &&
               (strlen(keys[i].name) != klen || strncmp(keys[i].name, p, klen) != 0)) {
            i++;
        }
        if (i == sizeof keys / sizeof keys[0]) {
            return -1;
        }
        *keys[i].field = (rlim_t)v;
        p = *end ? end + 1 : end;
    }
    l->disk = disk > (rlim_t)(1LL << 60) ? 1LL << 60 : (long long)disk;
    return 0;
}

/* Lowers one limit (soft and hard, so PROGRAM cannot raise it again). */
static int s_limit(int resource, rlim_t v)
{
    struct rlimit r = {v, v};
    return v ? setrlimit(resource, &r) : 0;
}

static int s_apply_limits(const s_limits_t *l)
{
    return s_limit(RLIMIT_CPU, l->cpu) | s_limit(RLIMIT_AS, l->as) |
           s_limit(RLIMIT_NPROC, l->nproc) | s_limit(RLIMIT_FSIZE, l->fsize) |
           s_limit(RLIMIT_NOFILE, l->nofile);
}

/* In the forked child: die with the shim, take the limits, then become PROGRAM. */
static void s_run_program(pid_t shim, const sigset_t *old, char **argv, const s_limits_t *l)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != shim) {
        _exit(127);
    }
    if (s_apply_limits(l) != 0) {
        fprintf(stderr, "bicky-exec: cannot set the limits: %s\n", strerror(errno));
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, old, NULL);
    execvp(argv[0], argv);
    fprintf(stderr, "bicky-exec: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Processes in the tree under root (root included), counted up to cap + 1. Reads
   each one's /proc/<pid>/task/<pid>/children (children of other threads are not
   seen: a bound, not an inventory). */
static int s_tree_size(pid_t root, int cap)
{
    pid_t stack[S_TREE_MAX];
    int sp = 0, n = 0;
    stack[sp++] = root;
    while (sp > 0 && n <= cap) {
        pid_t p = stack[--sp];
        char path[64];
        n++;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)p, (int)p);
        FILE *f = fopen(path, "re");
        int pid;
        while (f && fscanf(f, "%d", &pid) == 1) {
            if (sp < S_TREE_MAX) {
                stack[sp++] = pid;
            } else {
                n++;
            }
        }
        if (f) {
            fclose(f);
        }
    }
    return n;
}

typedef struct {
    pid_t parent;                       /* --parent */
    const char *pid_dir;                /* --pid-dir or NULL */
    s_limits_t limits;                  /* --limits */
    const char *disk_dirs[S_DISK_DIRS]; /* --disk-dir, in order */
    int ndisk;                          /* entries in disk_dirs */
    char **argv;                        /* PROGRAM [ARG...] */
} s_args_t;

static int s_parse(int argc, char **argv, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(S_USAGE, stdout);
            exit(0);
        }
        if (i + 1 < argc && !strcmp(argv[i], "--parent")) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            a->parent = (end && *end == '\0' && v > 0 && v < (1L << 30)) ? (pid_t)v : 0;
        } else if (i + 1 < argc && !strcmp(argv[i], "--pid-dir")) {
            a->pid_dir = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--limits")) {
            if (s_parse_limits(argv[++i], &a->limits) != 0) {
                return -1;
            }
        } else if (i + 1 < argc && !strcmp(argv[i], "--disk-dir") && a->ndisk < S_DISK_DIRS &&
                   argv[i + 1][0] == '/') {
            a->disk_dirs[a->ndisk++] = argv[++i];
        } else {
            return -1;
        }
    }
    if (i + 1 >= argc || a->parent <= 0 || (a->limits.disk && !a->ndisk)) {
        return -1;
    }
    a->argv = &argv[i + 1];
    return 0;
}

static long long s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes the --disk-dir trees take together (one that cannot be opened counts 0); the
   walk stops once they are past the quota. */
static long long s_disk_used(const s_args_t *a)
{
    long long sum = 0;
    for (int i = 0; i < a->ndisk && sum <= a->limits.disk; i++) {
        long long left = a->limits.disk - sum;
        long long n = disk_usage(a->disk_dirs[i], left > 0 ? left : 1);
        sum += n > 0 ? n : 0;
    }
    return sum;
}

/* True when the trees are over the quota. Measures only once *next_ms is reached, and
   sets the next time: S_DISK_MS on, or S_DISK_SLOW times as long as the walk took (a
   huge tree costs the host at most about a fifth of a core). */
static int s_disk_over(const s_args_t *a, long long *next_ms)
{
    long long now = s_mono_ms();
    if (now < *next_ms) {
        return 0;
    }
    int over = s_disk_used(a) > a->limits.disk;
    long long took = s_mono_ms() - now;
    *next_ms = now + took + (took * S_DISK_SLOW > S_DISK_MS ? took * S_DISK_SLOW : S_DISK_MS);
    return over;
}

/* Makes fds 0-2 /dev/null in the shim, so that only PROGRAM holds the pipes. */
static void s_drop_stdio(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; null >= 0 && fd <= 2; fd++) {
        dup2(null, fd);
    }
    if (null > 2) {
        close(null);
    }
}

int main(int argc, char **argv)
{
    s_args_t a;
    if (s_parse(argc, argv, &a) < 0) {
        fputs(S_USAGE, stderr);
        return 2;
    }
    sigset_t set, old;
    sigemptyset(&set);
    int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) {
        sigaddset(&set, fwd[i]);
    }
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, s_pdeath_sig());
    sigprocmask(SIG_BLOCK, &set, &old);
    if (prctl(PR_SET_PDEATHSIG, s_pdeath_sig()) != 0 || getppid() != a.parent) {
        return 127; /* the parent is gone already: run nothing */
    }
    long long used = a.limits.disk ? s_disk_used(&a) : 0;
    if (used > a.limits.disk) {
        fprintf(stderr,
                "bicky-exec: the sandbox's directories take %lld MiB, over their disk quota "
                "of %lld MiB: %s was not run\n",
                (used + (1 << 20) - 1) >> 20, a.limits.disk >> 20, a.argv[0]);
        return DISK_USAGE_EXIT;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    char path[4096] = "";
    if (a.pid_dir && s_pid_file(a.pid_dir, a.parent, path, sizeof path) < 0) {
        fprintf(stderr, "bicky-exec: cannot write a pid file in %s: %s\n", a.pid_dir,
                strerror(errno));
        path[0] = '\0';
    }
    pid_t shim = getpid(), child = fork();
    if (child == 0) {
        s_run_program(shim, &old, a.argv, &a.limits);
    }
    int status = 127 << 8, done = child < 0;
    if (child > 0) {
        s_drop_stdio();
    }
    /* The kernel counts RLIMIT_NPROC for every uid but 0: as root the shim counts. */
    int cap = a.limits.nproc && geteuid() == 0 ? (int)a.limits.nproc : 0;
    struct timespec tick = {0, S_TREE_MS * 1000 * 1000};
    long long next_disk = s_mono_ms() + S_DISK_MS;
    int over_disk = 0;
    while (!done) {
        siginfo_t si;
        int sig = cap || a.limits.disk ? sigtimedwait(&set, &si, &tick) : sigwaitinfo(&set, &si);
        if (sig < 0 && cap && child > 0 && s_tree_size(child, cap) > cap) {
            break; /* too many processes: everything goes */
        }
        if (a.limits.disk && child > 0 && s_disk_over(&a, &next_disk)) {
            over_disk = 1; /* the trees passed the quota: everything goes */
            break;
        }
        if (sig == SIGCHLD) {
            s_reap(child, &status, &done);
        } else if (sig == s_pdeath_sig()) {
            break; /* the node died: everything goes */
        } else if (sig > 0) {
            kill(child, sig);
        }
    }
    s_kill_all(child > 0 && !done ? child : -1, &status, &done);
    if (path[0]) {
        unlink(path);
    }
    if (over_disk) {
        _exit(DISK_USAGE_EXIT);
    }
    s_exit_like(status);
}
