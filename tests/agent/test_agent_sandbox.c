/*  test_agent_sandbox — the bwrap argv builder, the limits string, the node-wide
    choice, and the real thing: the bash tool in bwrap under bicky-exec with its
    limits (files, processes, CPU, memory, the worktree's disk quota), the node's
    /proc, other directories and the network out of sight, and nothing left on the
    host after exit, timeout or cancel (setsid included). Needs bwrap (skipped
    without it) and root or unprivileged user namespaces. */
#include "node/agent/agent_sandbox.h"
#include "node/agent/agent_tools.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_root[PATH_MAX];  /* mkdtemp dir: the worktree (realpath) */
static char g_other[PATH_MAX]; /* another conversation's worktree */
static char g_shim[PATH_MAX];  /* build/bin/bicky-exec */
static agent_guard_t g_guard;
static agent_sandbox_t g_sb;

static void setup(void)
{
    char a[] = "/tmp/bicky-sb-XXXXXX", b[] = "/tmp/bicky-sb-other-XXXXXX";
    cr_assert_not_null(mkdtemp(a));
    cr_assert_not_null(mkdtemp(b));
    cr_assert_not_null(realpath(a, g_root));
    cr_assert_not_null(realpath(b, g_other));
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof secret, "%s/secret", g_other);
    FILE *f = fopen(secret, "w");
    cr_assert_not_null(f);
    fputs("other-team-secret\n", f);
    fclose(f);
    snprintf(g_shim, sizeof g_shim, "%s/bicky-exec", BICKY_BIN_DIR);
    cr_assert_eq(agent_guard_init(&g_guard, g_shim, NULL), 0);
    cr_assert_eq(agent_sandbox_init(&g_sb, AGENT_SANDBOX_AUTO, NULL), 0);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    nftw(g_other, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(agent_sandbox, .init = setup, .fini = teardown, .timeout = 60);

static bool s_has(char **argv, const char *a, const char *b, const char *c)
{
    for (size_t i = 0; argv[i]; i++) {
        if (!strcmp(argv[i], a) && (!b || (argv[i + 1] && !strcmp(argv[i + 1], b))) &&
            (!c || (argv[i + 1] && argv[i + 2] && !strcmp(argv[i + 2], c)))) {
            return true;
        }
    }
    return false;
}

Test(agent_sandbox, argv_wraps_the_program_in_bwrap)
{
    agent_sandbox_spec_t spec = {
        .bwrap = "/usr/bin/bwrap", .rw = {"/w/wt", "/w/home"}, .ro = {"/opt/cli"}};
    char *prog[] = {"/bin/bash", "-c", "echo hi", NULL};
    char **argv = agent_sandbox_argv(&spec, prog);
    cr_assert_not_null(argv);
    cr_assert_str_eq(argv[0], "/usr/bin/bwrap");
    const char *flags[] = {"--unshare-pid",
                           "--unshare-ipc",
                           "--unshare-uts",
                           "--unshare-net",
                           "--die-with-parent",
                           "--new-session",
                           NULL};
    for (size_t i = 0; flags[i]; i++) {
        cr_assert(s_has(argv, flags[i], NULL, NULL), "%s", flags[i]);
    }
    cr_assert(s_has(argv, "--cap-drop", "ALL", NULL));
    cr_assert(s_has(argv, "--ro-bind", "/usr", "/usr"));
    cr_assert(s_has(argv, "--proc", "/proc", NULL));
    cr_assert(s_has(argv, "--dev", "/dev", NULL));
    cr_assert(s_has(argv, "--tmpfs", "/tmp", NULL));
    cr_assert(s_has(argv, "--bind", "/w/wt", "/w/wt"));
    cr_assert(s_has(argv, "--bind", "/w/home", "/w/home"));
    cr_assert(s_has(argv, "--ro-bind", "/opt/cli", "/opt/cli"));
    cr_assert(s_has(argv, "--chdir", "/w/wt", NULL), "cwd defaults to the first rw path");
    cr_assert(s_has(argv, "--ro-bind-try", "/etc/passwd", "/etc/passwd"));
    cr_assert(!s_has(argv, "--ro-bind-try", "/etc/shadow", NULL), "no secrets of /etc");
    cr_assert(!s_has(argv, "--ro-bind", "/", "/"), "never the whole host");
    size_t n = 0;
    while (argv[n]) {
        n++;
    }
    cr_assert_str_eq(argv[n - 4], "--");
    cr_assert_str_eq(argv[n - 3], "/bin/bash");
    cr_assert_str_eq(argv[n - 1], "echo hi", "the command stays one argv entry");
    struct stat st;
    if (lstat("/bin", &st) == 0 && S_ISLNK(st.st_mode)) {
        cr_assert(s_has(argv, "--symlink", "usr/bin", "/bin"), "merged /usr is mirrored");
    }
    agent_sandbox_argv_free(&argv);
    cr_assert_null(argv);
    agent_sandbox_argv_free(&argv);

    argv = agent_sandbox_argv(&spec, prog);
    cr_assert(!s_has(argv, "--size", NULL, NULL), "tmp_mb 0: the kernel's default");
    agent_sandbox_argv_free(&argv);
    spec.tmp_mb = 3;
    argv = agent_sandbox_argv(&spec, prog);
    const char *sized[] = {"/dev/shm", "/tmp", "/var/tmp", NULL};
    for (size_t i = 0; sized[i]; i++) {
        bool found = false;
        for (size_t k = 0; argv[k] && argv[k + 1] && argv[k + 2] && argv[k + 3]; k++) {
            found = found || (!strcmp(argv[k], "--size") && !strcmp(argv[k + 1], "3145728") &&
                              !strcmp(argv[k + 2], "--tmpfs") && !strcmp(argv[k + 3], sized[i]));
        }
        cr_assert(found, "%s is a sized tmpfs", sized[i]);
    }
    cr_assert(s_has(argv, "--remount-ro", "/dev", NULL), "/dev itself is read-only");
    agent_sandbox_argv_free(&argv);

    spec.network = true;
    spec.chdir = "/w/wt/sub";
    argv = agent_sandbox_argv(&spec, prog);
    cr_assert(!s_has(argv, "--unshare-net", NULL, NULL), "tool_network keeps the network");
    cr_assert(s_has(argv, "--chdir", "/w/wt/sub", NULL));
    agent_sandbox_argv_free(&argv);
}

Test(agent_sandbox, argv_refuses_a_bad_spec)
{
    char *prog[] = {"/bin/true", NULL};
    agent_sandbox_spec_t rel = {.bwrap = "/usr/bin/bwrap", .rw = {"w/wt"}};
    agent_sandbox_spec_t none = {.bwrap = "/usr/bin/bwrap"};
    agent_sandbox_spec_t nobw = {.rw = {"/w"}};
    agent_sandbox_spec_t ro = {.bwrap = "/usr/bin/bwrap", .rw = {"/w"}, .ro = {"opt"}};
    cr_assert_null(agent_sandbox_argv(&rel, prog));
    cr_assert_null(agent_sandbox_argv(&none, prog));
    cr_assert_null(agent_sandbox_argv(&nobw, prog));
    cr_assert_null(agent_sandbox_argv(&ro, prog));
    char *empty[] = {NULL};
    agent_sandbox_spec_t ok = {.bwrap = "/usr/bin/bwrap", .rw = {"/w"}};
    cr_assert_null(agent_sandbox_argv(&ok, empty));
    cr_assert_null(agent_sandbox_argv(NULL, prog));
}

Test(agent_sandbox, limits_format_for_bicky_exec)
{
    agent_sandbox_limits_t l;
    agent_sandbox_limits_default(&l);
    cr_assert_eq(l.cpu_s, 600);
    cr_assert_eq(l.memory_mb, 8192);
    cr_assert_eq(l.processes, 256);
    cr_assert_eq(l.file_mb, 1024);
    cr_assert_eq(l.open_files, 1024);
    cr_assert_eq(l.tmp_mb, 512);
    cr_assert_eq(l.disk_mb, 4096);
    char buf[AGENT_SANDBOX_LIMITS];
    l = (agent_sandbox_limits_t){
        .cpu_s = 5, .memory_mb = 64, .processes = 20, .file_mb = 1, .open_files = 100};
    cr_assert_str_eq(agent_sandbox_limits_format(&l, buf, sizeof buf),
                     "cpu=5,as=67108864,nproc=20,fsize=1048576,nofile=100");
    l.disk_mb = 3;
    cr_assert_str_eq(agent_sandbox_limits_format(&l, buf, sizeof buf),
                     "cpu=5,as=67108864,nproc=20,fsize=1048576,nofile=100,disk=3145728");
}

Test(agent_sandbox, init_follows_the_mode)
{
    agent_sandbox_t sb;
    agent_sandbox_init(&sb, AGENT_SANDBOX_OFF, NULL);
    cr_assert(!sb.enabled, "off is off");
    agent_sandbox_init(&sb, AGENT_SANDBOX_AUTO, "/nonexistent/bwrap");
    cr_assert(!sb.enabled, "auto without bwrap is off");
    cr_assert_str_eq(sb.bwrap, "");
    agent_sandbox_init(&sb, AGENT_SANDBOX_ON, "/nonexistent/bwrap");
    cr_assert(sb.enabled, "on without bwrap stays required");
    cr_assert_str_eq(sb.bwrap, "");
}

/* ---- the bash tool in the sandbox ------------------------------------------------------ */

static void s_need_bwrap(void)
{
    if (!g_sb.enabled) {
        cr_skip_test("bwrap is not installed");
    }
}

static void s_limits(agent_tool_limits_t *l)
{
    agent_tool_limits_default(l);
    l->guard = &g_guard;
    l->sandbox = &g_sb;
}

/* Runs command in the sandbox; returns the result (caller decrefs). */
static json_t *s_bash(const agent_tool_limits_t *l, const char *command, int timeout_s)
{
    json_t *args = json_pack("{s:s, s:i}", "command", command, "timeout_s", timeout_s);
    json_t *res = NULL;
    char *err = NULL;
    int rc = agent_tool_run(g_root, "bash", args, l, &res, &err);
    json_decref(args);
    cr_assert_eq(rc, 0, "bash failed: %s", err ? err : "");
    return res;
}

static const char *s_out(json_t *res, const char *stream)
{
    return json_string_value(json_object_get(res, stream));
}

/* True when some process on the host has cmdline argv[1] == word (a sleep marker). */
static bool s_host_has(const char *word)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (d && !found && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        char path[300], buf[256];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "re");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) {
            fclose(f);
        }
        buf[n] = '\0';
        size_t first = strlen(buf);
        found = first + 1 < n && strcmp(buf + first + 1, word) == 0;
    }
    if (d) {
        closedir(d);
    }
    return found;
}

/* Waits up to 3 s for the marker to disappear from the host. */
static bool s_host_clear(const char *word)
{
    for (int i = 0; i < 300; i++) {
        if (!s_host_has(word)) {
            return true;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

Test(agent_sandbox, the_node_and_other_trees_are_out_of_sight)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    setenv("BICKY_SB_MARKER", "marker-8f2d", 1);
    char cmd[6 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "cat /proc/%d/environ /proc/%d/cmdline; grep -l marker-8f2d /proc/*/environ; "
             "ls /proc | grep -c '^[0-9]'; ls %s; cat %s/secret; ln -s %s/secret link; cat link; "
             "ls /etc/shadow; echo x > /usr/x; touch %s/pwn; touch /tmp/inside && echo tmp-ok; "
             "echo mine > mine; hostname; id -u",
             (int)getpid(), (int)getpid(), g_other, g_other, g_other, g_other);
    json_t *res = s_bash(&l, cmd, 30);
    const char *out = s_out(res, "stdout"), *err = s_out(res, "stderr");
    cr_assert_null(strstr(out, "marker-8f2d"), "%s", out);
    cr_assert_null(strstr(out, "other-team-secret"), "%s", out);
    cr_assert_not_null(strstr(out, "tmp-ok"), "a private /tmp: %s", out);
    cr_assert_not_null(strstr(out, "sandbox\n"), "own hostname: %s", out);
    int procs = atoi(out);
    cr_assert(procs >= 1 && procs <= 6, "only the sandbox's processes: %d (%s)", procs, out);
    cr_assert_not_null(strstr(err, "No such file"), "%s", err);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/pwn", g_other);
    cr_assert_neq(access(path, F_OK), 0, "nothing written into the other tree");
    cr_assert_neq(access("/usr/x", F_OK), 0, "nothing written into /usr");
    snprintf(path, sizeof path, "%s/mine", g_root);
    cr_assert_eq(access(path, F_OK), 0, "the worktree is writable");
    json_decref(res);
}

static int s_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

Test(agent_sandbox, no_network_unless_the_strategy_asks)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    int port, fd = s_listener(&port);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "echo hi > /dev/tcp/127.0.0.1/%d && echo connected", port);
    json_t *res = s_bash(&l, cmd, 30);
    cr_assert_null(strstr(s_out(res, "stdout"), "connected"), "no network by default");
    json_decref(res);
    l.network = true;
    res = s_bash(&l, cmd, 30);
    cr_assert_not_null(strstr(s_out(res, "stdout"), "connected"), "tool_network = true");
    json_decref(res);
    close(fd);
}

Test(agent_sandbox, file_size_cpu_and_memory_limits)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    l.rlimits.file_mb = 1;
    json_t *res = s_bash(&l, "head -c 5000000 /dev/zero > big; echo rc=$?", 30);
    cr_assert_not_null(strstr(s_out(res, "stdout"), "rc=1"), "%s", s_out(res, "stdout"));
    json_decref(res);
    char big[PATH_MAX + 8];
    snprintf(big, sizeof big, "%s/big", g_root);
    struct stat st;
    cr_assert_eq(stat(big, &st), 0);
    cr_assert_leq(st.st_size, 1 << 20, "the file stopped at the limit: %lld",
                  (long long)st.st_size);
    s_limits(&l);
    l.rlimits.cpu_s = 1;
    res = s_bash(&l, "while :; do :; done", 30);
    cr_assert(json_is_false(json_object_get(res, "timed_out")), "the CPU limit ends it first");
    cr_assert_lt(json_integer_value(json_object_get(res, "duration_ms")), 15000);
    json_decref(res);
    s_limits(&l);
    l.rlimits.memory_mb = 64;
    res = s_bash(&l, "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived", 30);
    cr_assert_null(strstr(s_out(res, "stdout"), "survived"), "64 MiB of address space");
    cr_assert_not_null(strstr(s_out(res, "stderr"), "cannot allocate"), "%s", s_out(res, "stderr"));
    json_decref(res);
}

Test(agent_sandbox, tmpfs_cannot_eat_the_hosts_memory)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    l.rlimits.tmp_mb = 4;
    /* Many files, each under the file size limit: only the tmpfs size stops them. */
    json_t *res =
        s_bash(&l,
               "for d in /tmp /var/tmp /dev/shm; do for i in 1 2 3; do "
               "head -c 3000000 /dev/zero > $d/f$i 2>/dev/null; done; "
               "echo \"[$d] $(du -sk $d | cut -f1)\"; done; "
               "echo x > /dev/planted && echo planted; echo y > /dev/null && echo null-ok",
               30);
    const char *out = s_out(res, "stdout");
    const char *dirs[] = {"[/tmp] ", "[/var/tmp] ", "[/dev/shm] ", NULL};
    for (size_t i = 0; dirs[i]; i++) {
        const char *at = strstr(out, dirs[i]);
        long kib = at ? strtol(at + strlen(dirs[i]), NULL, 10) : -1;
        cr_assert(kib > 3000 && kib <= 4200, "%s holds %ld KiB: %s", dirs[i], kib, out);
    }
    cr_assert_null(strstr(out, "planted"), "/dev is read-only: %s", out);
    cr_assert_not_null(strstr(out, "null-ok"), "its devices still work: %s", out);
    json_decref(res);
}

/* Runs a tool expected to be refused; returns its error (caller frees). */
static char *s_refused(const agent_tool_limits_t *l, const char *tool, json_t *args)
{
    json_t *res = NULL;
    char *err = NULL;
    cr_assert_eq(agent_tool_run(g_root, tool, args, l, &res, &err), -1, "%s ran", tool);
    cr_assert_null(res);
    json_decref(args);
    return err;
}

Test(agent_sandbox, the_disk_quota_kills_many_small_files_then_refuses)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    l.rlimits.disk_mb = 2;
    /* Each file is far below sandbox_file_mb: only the quota on the worktree stops it. */
    json_t *res =
        s_bash(&l, "i=0; while :; do i=$((i+1)); echo 123456789 > f$i || exit 3; done", 60);
    cr_assert(json_is_false(json_object_get(res, "timed_out")), "the quota ended it");
    cr_assert(json_is_true(json_object_get(res, "disk_quota_exceeded")));
    cr_assert_eq(json_integer_value(json_object_get(res, "signal")), 9);
    cr_assert_not_null(strstr(s_out(res, "stderr"), "disk quota of 2 MiB (sandbox_disk_mb)"), "%s",
                       s_out(res, "stderr"));
    json_decref(res);
    char *err = s_refused(&l, "bash", json_pack("{s:s}", "command", "touch ran"));
    cr_assert_not_null(strstr(err, "disk quota"), "%s", err);
    cr_assert_not_null(strstr(err, "the command was not run"), "%s", err);
    free(err);
    char ran[PATH_MAX + 8];
    snprintf(ran, sizeof ran, "%s/ran", g_root);
    cr_assert_neq(access(ran, F_OK), 0, "refused: not run");
    err = s_refused(&l, "write_file", json_pack("{s:s, s:s}", "path", "w", "content", "x"));
    cr_assert_not_null(strstr(err, "the file was not written"), "%s", err);
    free(err);
    /* Emptied (on the host), the worktree takes files again up to the quota. */
    nftw(g_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(mkdir(g_root, 0700), 0);
    res = s_bash(&l, "for i in $(seq 1 100); do echo x > g$i; done; echo wrote", 60);
    cr_assert_str_eq(s_out(res, "stdout"), "wrote\n");
    cr_assert_null(json_object_get(res, "disk_quota_exceeded"));
    json_decref(res);
    size_t n = 1000 * 1024; /* 1.4 MiB with the 100 files, 2.4 with a second one */
    char *content = malloc(n + 1);
    cr_assert_not_null(content);
    memset(content, 'a', n);
    content[n] = '\0';
    json_t *args = json_pack("{s:s, s:s}", "path", "a", "content", content);
    char *e = NULL;
    cr_assert_eq(agent_tool_run(g_root, "write_file", args, &l, &res, &e), 0, "%s", e ? e : "");
    json_decref(res);
    json_decref(args);
    err = s_refused(&l, "write_file", json_pack("{s:s, s:s}", "path", "b", "content", content));
    cr_assert_not_null(strstr(err, "this write would pass it"), "%s", err);
    free(err);
    free(content);
}

Test(agent_sandbox, a_fork_bomb_is_bounded_and_leaves_nothing)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    l.rlimits.processes = 32;
    char word[32], cmd[256];
    snprintf(word, sizeof word, "7777.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "for i in $(seq 500); do sleep %s & done; wait", word);
    json_t *res = s_bash(&l, cmd, 30);
    cr_assert(json_is_false(json_object_get(res, "timed_out")), "stopped by the process cap");
    cr_assert_lt(json_integer_value(json_object_get(res, "duration_ms")), 20000);
    json_decref(res);
    cr_assert(s_host_clear(word), "no sleep left on the host");
}

Test(agent_sandbox, setsid_does_not_outlive_exit_or_timeout)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    char word[32], cmd[256];
    snprintf(word, sizeof word, "7778.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "setsid sleep %s > /dev/null 2>&1 & echo started", word);
    json_t *res = s_bash(&l, cmd, 30);
    cr_assert_str_eq(s_out(res, "stdout"), "started\n");
    json_decref(res);
    cr_assert(s_host_clear(word), "the escaped sleep died with the sandbox");
    snprintf(cmd, sizeof cmd, "setsid sleep %s & sleep 100", word);
    res = s_bash(&l, cmd, 1);
    cr_assert(json_is_true(json_object_get(res, "timed_out")));
    json_decref(res);
    cr_assert(s_host_clear(word), "the timeout killed the whole sandbox");
}

typedef struct {
    agent_tool_limits_t *l;
    const char *cmd;
    json_t *res;
} s_call_t;

static void *s_thread(void *arg)
{
    s_call_t *c = arg;
    c->res = s_bash(c->l, c->cmd, 300);
    return NULL;
}

Test(agent_sandbox, cancel_kills_the_whole_sandbox)
{
    s_need_bwrap();
    agent_tool_limits_t l;
    s_limits(&l);
    atomic_bool stop = false;
    l.cancel = &stop;
    char word[32], cmd[256], started[PATH_MAX + 16];
    snprintf(word, sizeof word, "7779.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "setsid sleep %s & touch started; sleep 300", word);
    snprintf(started, sizeof started, "%s/started", g_root);
    s_call_t c = {.l = &l, .cmd = cmd};
    pthread_t t;
    pthread_create(&t, NULL, s_thread, &c);
    for (int i = 0; i < 1000 && access(started, F_OK) != 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(access(started, F_OK), 0, "the command started");
    for (int i = 0; i < 300 && !s_host_has(word); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(s_host_has(word), "the escaped sleep runs (seen from the host)");
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    cr_assert_lt(json_integer_value(json_object_get(c.res, "duration_ms")), 20000);
    json_decref(c.res);
    cr_assert(s_host_clear(word), "nothing left after cancel");
}

Test(agent_sandbox, required_without_bwrap_fails_the_call)
{
    agent_tool_limits_t l;
    s_limits(&l);
    agent_sandbox_t missing = {.enabled = true, .bwrap = ""};
    l.sandbox = &missing;
    json_t *args = json_pack("{s:s}", "command", "touch ran");
    json_t *res = NULL;
    char *err = NULL;
    cr_assert_eq(agent_tool_run(g_root, "bash", args, &l, &res, &err), -1);
    cr_assert_not_null(strstr(err, "bwrap"), "%s", err);
    char ran[PATH_MAX + 8];
    snprintf(ran, sizeof ran, "%s/ran", g_root);
    cr_assert_neq(access(ran, F_OK), 0, "no silent fallback");
    free(err);
    json_decref(args);
}
