/*  test_agent_guard — children die with their node: the argv put before a
    program; the real bicky-exec passes its program's status on, kills what
    the program left (even in another session) when it exits, and kills the
    whole tree when the process that started it is SIGKILLed from a worker
    thread's tool call (the bash tool as the node runs it); the startup sweep
    kills a live leftover shim with its tree, and leaves alone a process
    whose pid file does not match (not a shim, another start time); the disk
    quota (--limits disk, --disk-dir) refuses to start over it and kills a
    program (and what it started) that writes many small files past it. */
#include "node/agent/agent_guard.h"
#include "node/agent/agent_tools.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char g_dir[PATH_MAX];  /* scratch dir */
static char g_pids[PATH_MAX]; /* the guard's pid dir */
static char g_shim[PATH_MAX]; /* build/bin/bicky-exec */

static void setup(void)
{
    strcpy(g_dir, "/tmp/bicky-guard-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    snprintf(g_pids, sizeof g_pids, "%s/pids/node-n1", g_dir);
    snprintf(g_shim, sizeof g_shim, "%s/bicky-exec", BICKY_BIN_DIR);
    cr_assert_eq(access(g_shim, X_OK), 0, "%s is built before the tests", g_shim);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(agent_guard, .init = setup, .fini = teardown, .timeout = 60);

static unsigned long long s_start_of(pid_t pid)
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
    char state = '?';
    unsigned long long start = 0;
    if (!paren ||
        sscanf(paren + 1,
               " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
               "%*d %*d %llu",
               &state, &start) != 2 ||
        state == 'Z') {
        return 0;
    }
    return start;
}

static bool s_alive(pid_t pid)
{
    return s_start_of(pid) != 0;
}

/* Waits up to 10 s for pid to be gone (or a zombie). */
static bool s_gone_within(pid_t pid)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500; i++) {
        if (!s_alive(pid)) {
            return true;
        }
        nanosleep(&pause, NULL);
    }
    return false;
}

/* Reads the pids a script wrote to file (one per line), waiting up to 10 s for want. */
static int s_read_pids(const char *file, pid_t *out, int want)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(file, "re");
        int n = 0, p;
        while (f && n < want && fscanf(f, "%d", &p) == 1) {
            out[n++] = p;
        }
        if (f) {
            fclose(f);
        }
        if (n == want) {
            return n;
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}

static pid_t s_spawn(char *const *argv)
{
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
    return pid;
}

Test(agent_guard, argv_is_prefixed_only_with_a_shim)
{
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, g_shim, g_pids), 0);
    cr_assert_eq(access(g_pids, W_OK), 0, "the pid dir is created");
    char *argv[] = {"/bin/echo", "hi", NULL};
    char *out[16];
    char *const *run = agent_guard_argv(&g, argv, out, 16);
    char want[16];
    snprintf(want, sizeof want, "%d", (int)getpid());
    cr_assert_str_eq(run[0], g.shim);
    cr_assert_str_eq(run[1], "--parent");
    cr_assert_str_eq(run[2], want);
    cr_assert_str_eq(run[3], "--pid-dir");
    cr_assert_str_eq(run[4], g_pids);
    cr_assert_str_eq(run[5], "--");
    cr_assert_str_eq(run[6], "/bin/echo");
    cr_assert_str_eq(run[7], "hi");
    cr_assert_null(run[8]);
    cr_assert_null(agent_guard_argv(&g, argv, out, 8), "too small");
    cr_assert_eq(agent_guard_argv(NULL, argv, out, 16), argv);
    agent_guard_t none;
    cr_assert_eq(agent_guard_init(&none, "/nonexistent/bicky-exec", NULL), 0);
    cr_assert_str_eq(none.shim, "", "a missing shim means unguarded");
    cr_assert_eq(agent_guard_argv(&none, argv, out, 16), argv);
}

Test(agent_guard, the_shim_passes_the_status_on_and_kills_what_is_left)
{
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, g_shim, g_pids), 0);
    char script[PATH_MAX * 2 + 200], file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/left", g_dir);
    snprintf(script, sizeof script, "setsid sleep 1000 & echo $! > %s; exit 7", file);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    char *out[16];
    int status;
    pid_t pid = s_spawn(agent_guard_argv(&g, argv, out, 16));
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %d", status);
    pid_t left;
    cr_assert_eq(s_read_pids(file, &left, 1), 1);
    cr_assert(s_gone_within(left), "the sleep in its own session was killed");
    cr_assert_eq(agent_guard_sweep(&g), 0, "the shim removed its pid file");
}

/* bicky-exec --limits disk=1 MiB --disk-dir DIR -- /bin/sh -c script; returns its
   wait status. */
static int s_run_disk(const char *dir, const char *script)
{
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, g_shim, g_pids), 0);
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    char *out[24];
    agent_guard_opts_t o = {.limits = "disk=1048576", .disk_dirs = {dir}};
    char *const *run = agent_guard_argv_opts(&g, &o, argv, out, 24);
    cr_assert_not_null(run);
    int status;
    pid_t pid = s_spawn(run);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

Test(agent_guard, the_disk_quota_refuses_a_full_tree_and_kills_a_growing_one)
{
    char wt[PATH_MAX + 8], big[PATH_MAX + 16], ran[PATH_MAX + 16], left[PATH_MAX + 16];
    char script[PATH_MAX * 3 + 200];
    snprintf(wt, sizeof wt, "%s/wt", g_dir);
    snprintf(big, sizeof big, "%s/big", wt);
    snprintf(ran, sizeof ran, "%s/ran", g_dir);
    snprintf(left, sizeof left, "%s/left", g_dir);
    cr_assert_eq(mkdir(wt, 0755), 0);
    snprintf(script, sizeof script, "head -c 2000000 /dev/urandom > %s", big);
    cr_assert_eq(system(script), 0);
    snprintf(script, sizeof script, "touch %s", ran);
    int status = s_run_disk(wt, script);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 122, "over at start: %d", status);
    cr_assert_neq(access(ran, F_OK), 0, "the program was not run");
    cr_assert_eq(unlink(big), 0);
    /* Files of 10 bytes, far below any file size limit, until only the quota ends it. */
    snprintf(script, sizeof script,
             "setsid sleep 1000 & echo $! > %s; i=0; while :; do i=$((i+1)); "
             "echo 123456789 > %s/f$i; done",
             left, wt);
    status = s_run_disk(wt, script);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 122, "killed: %d", status);
    pid_t sleeper;
    cr_assert_eq(s_read_pids(left, &sleeper, 1), 1);
    cr_assert(s_gone_within(sleeper), "what it started went with it");
}

/* A process that runs the bash tool on a thread, as a node's worker does. */
static void *s_tool_thread(void *arg)
{
    agent_tool_limits_t limits;
    agent_tool_limits_default(&limits);
    limits.guard = arg;
    char cmd[PATH_MAX * 3 + 200];
    snprintf(cmd, sizeof cmd,
             "sleep 1000 & echo $! > %s/tree; setsid sleep 1000 & echo $! >> %s/tree; "
             "echo $$ >> %s/tree; wait",
             g_dir, g_dir, g_dir);
    json_t *res = NULL;
    char *err = NULL;
    agent_tool_run(g_dir, "bash", json_pack("{s:s}", "command", cmd), &limits, &res, &err);
    return NULL;
}

Test(agent_guard, a_sigkilled_node_takes_its_tool_with_it)
{
    pid_t node = fork();
    cr_assert_geq(node, 0);
    if (node == 0) {
        static agent_guard_t g;
        if (agent_guard_init(&g, g_shim, g_pids) < 0) {
            _exit(1);
        }
        pthread_t t;
        pthread_create(&t, NULL, s_tool_thread, &g);
        pause();
        _exit(0);
    }
    char file[PATH_MAX + 8];
    snprintf(file, sizeof file, "%s/tree", g_dir);
    pid_t tree[3];
    cr_assert_eq(s_read_pids(file, tree, 3), 3, "the tool started");
    for (int i = 0; i < 3; i++) {
        cr_assert(s_alive(tree[i]));
    }
    kill(node, SIGKILL);
    waitpid(node, NULL, 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(s_gone_within(tree[i]), "pid %d (%d of 3) died with the node", tree[i], i + 1);
    }
}

/* Writes a pid file for pid with the given start time. */
static void s_forge(const char *name, pid_t pid, unsigned long long start)
{
    char path[PATH_MAX + 64], boot[64] = "";
    FILE *b = fopen("/proc/sys/kernel/random/boot_id", "re");
    cr_assert_not_null(b);
    cr_assert_not_null(fgets(boot, sizeof boot, b));
    fclose(b);
    boot[strcspn(boot, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s", g_pids, name);
    FILE *f = fopen(path, "we");
    cr_assert_not_null(f);
    fprintf(f, "bicky-exec %d %llu %s 0 0\n", (int)pid, start, boot);
    fclose(f);
}

Test(agent_guard, the_sweep_kills_a_leftover_tree_and_nothing_else)
{
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, g_shim, g_pids), 0);
    /* A leftover: a live shim with a tree whose parent died while the shim could not
       act on it (stopped; the death signal stays pending). */
    char script[PATH_MAX * 2 + 200], file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/left", g_dir);
    snprintf(script, sizeof script,
             "setsid sleep 1000 & echo $! > %s; sleep 1000 & echo $! >> %s; wait", file, file);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    char *out[16];
    pid_t left[2], shim = 0;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t parent = fork();
    if (parent == 0) {
        agent_guard_t mine; /* --parent is this short-lived process */
        if (agent_guard_init(&mine, g_shim, g_pids) < 0) {
            _exit(1);
        }
        pid_t s = 0;
        posix_spawn(&s, g_shim, NULL, NULL, agent_guard_argv(&mine, argv, out, 16), environ);
        s_read_pids(file, left, 2);
        kill(s, SIGSTOP);
        if (write(fds[1], &s, sizeof s) != sizeof s) {
            _exit(1);
        }
        _exit(0);
    }
    cr_assert_eq(read(fds[0], &shim, sizeof shim), sizeof shim);
    close(fds[0]);
    close(fds[1]);
    cr_assert_eq(waitpid(parent, NULL, 0), parent);
    cr_assert_eq(s_read_pids(file, left, 2), 2);
    /* A shim whose parent (this test) lives: another node's child, never touched. */
    snprintf(script, sizeof script, "sleep 1000");
    char *argv3[] = {"/bin/sh", "-c", script, NULL};
    char *out3[16];
    pid_t alive_shim = s_spawn(agent_guard_argv(&g, argv3, out3, 16));
    char alive_file[PATH_MAX + 32];
    snprintf(alive_file, sizeof alive_file, "%s/%d", g_pids, (int)alive_shim);
    for (int i = 0; i < 500 && access(alive_file, F_OK) != 0; i++) {
        usleep(20 * 1000);
    }
    cr_assert_eq(access(alive_file, F_OK), 0);
    /* Decoys: a live process that is not a shim, and a live shim under a wrong start time. */
    char *sleep_argv[] = {"/bin/sleep", "1000", NULL};
    pid_t decoy = s_spawn(sleep_argv);
    cr_assert(s_start_of(decoy));
    s_forge("decoy", decoy, s_start_of(decoy));
    char *argv2[] = {"/bin/sh", "-c", script, NULL};
    agent_guard_t other; /* a shim recorded elsewhere */
    char other_dir[PATH_MAX + 16];
    snprintf(other_dir, sizeof other_dir, "%s/pids/node-n2", g_dir);
    cr_assert_eq(agent_guard_init(&other, g_shim, other_dir), 0);
    pid_t shim2 = s_spawn(agent_guard_argv(&other, argv2, out, 16));
    while (!s_start_of(shim2)) {
    }
    s_forge("restarted", shim2, s_start_of(shim2) + 1);

    cr_assert_eq(agent_guard_sweep(&g), 1, "one leftover");
    cr_assert(s_gone_within(shim), "the leftover shim");
    cr_assert(s_gone_within(left[0]), "its child in another session");
    cr_assert(s_gone_within(left[1]), "its child");
    cr_assert(s_alive(decoy), "not a shim: left alone");
    cr_assert(s_alive(shim2), "another start time: left alone");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/decoy", g_pids);
    cr_assert_neq(access(path, F_OK), 0, "stale files are removed");
    cr_assert(s_alive(alive_shim), "the child of a live process: left alone");
    cr_assert_eq(access(alive_file, F_OK), 0, "and its file stays");
    cr_assert_eq(agent_guard_sweep(&g), 0);
    kill(alive_shim, SIGTERM);
    waitpid(alive_shim, NULL, 0);
    kill(decoy, SIGKILL);
    kill(shim2, SIGTERM);
    waitpid(decoy, NULL, 0);
    waitpid(shim2, NULL, 0);
}
