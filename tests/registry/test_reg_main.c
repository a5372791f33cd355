/*  test_reg_main — the built bicky-registry and bickyctl binaries as
    processes: --help and usage exit codes, the startup schema check, and a
    clean SIGTERM exit. Binaries from BICKY_BIN (else build/bin next to this
    test); skipped when neither exists. */
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

static rt_db_t s_db;

static void s_teardown(void)
{
    rt_db_drop(&s_db);
}

TestSuite(reg_main, .fini = s_teardown, .timeout = 60);

/* Runs "BIN/<cmd>" through sh with output captured in out; returns the exit code. */
static int s_sh(char *out, size_t cap, const char *fmt, ...)
{
    const char *bin = rt_bin_dir();
    if (!bin) {
        cr_skip_test("built binaries not found (set BICKY_BIN)");
    }
    char cmd[4096], args[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s/%s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int status = pclose(p);
    cr_assert(WIFEXITED(status), "%s did not exit normally", cmd);
    return WEXITSTATUS(status);
}

Test(reg_main, help_and_usage_exit_codes)
{
    char out[8192];
    cr_assert_eq(s_sh(out, sizeof out, "bicky-registry --help"), 0);
    cr_assert_not_null(strstr(out, "--dead-after-ms"));
    cr_assert_not_null(strstr(out, "BICKY_REGISTRY_PUB_BIND"));
    cr_assert_eq(s_sh(out, sizeof out, "bicky-registry --bogus"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bicky-registry --dead-after-ms -5 --database-url x"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl --help"), 0);
    cr_assert_not_null(strstr(out, "token create"));
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl token --help"), 0);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl token create --help"), 0);
    cr_assert_not_null(strstr(out, "--team"));
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl nodes --help"), 0);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl frobnicate"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl token"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl token frob"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl drain"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl drain a b"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl locate not-a-uuid"), 2);
    cr_assert_eq(s_sh(out, sizeof out, "bickyctl nodes --bogus"), 2);
}

Test(reg_main, registry_requires_a_database_url)
{
    char out[4096];
    unsetenv("BICKY_DATABASE_URL");
    cr_assert_eq(s_sh(out, sizeof out, "bicky-registry"), 2);
    cr_assert_not_null(strstr(out, "--database-url"), "%s", out);
}

Test(reg_main, registry_refuses_an_unmigrated_database)
{
    char out[4096], ep[64];
    rt_db_create(&s_db, false);
    setenv("BICKY_DATABASE_URL", s_db.conninfo, 1);
    setenv("BICKY_REGISTRY_BIND", tf_endpoint(ep, sizeof ep, "unmigrated"), 1);
    setenv("BICKY_REGISTRY_PUB_BIND", tf_endpoint(ep, sizeof ep, "unmigrated-pub"), 1);
    cr_assert_eq(s_sh(out, sizeof out, "bicky-registry"), 1);
    cr_assert_not_null(strstr(out, "database schema is at version 0, this binary needs"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "run `bickyctl migrate`"), "%s", out);
}

/* Starts bicky-registry as a child on ipc endpoints; returns its pid. */
static pid_t s_spawn(const char *router, const char *pub)
{
    const char *bin = rt_bin_dir();
    if (!bin) {
        cr_skip_test("built binaries not found (set BICKY_BIN)");
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/bicky-registry", bin);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(path, "bicky-registry", "--bind", router, "--pub-bind", pub, "--database-url",
              s_db.conninfo, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for pid up to ms; returns its wait status or -1 on timeout. */
static int s_wait(pid_t pid, int ms)
{
    for (int64_t end = util_mono_ms() + ms; util_mono_ms() < end; zclock_sleep(20)) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return status;
        }
    }
    return -1;
}

Test(reg_main, sigterm_exits_zero_within_five_seconds)
{
    rt_db_create(&s_db, true);
    char router[96], pub[96];
    snprintf(router, sizeof router, "ipc://@/bicky-reg-main-%d-r", (int)getpid());
    snprintf(pub, sizeof pub, "ipc://@/bicky-reg-main-%d-p", (int)getpid());
    pid_t pid = s_spawn(router, pub);
    zsock_t *d = rt_dealer(router);
    proto_msg_t ack;
    rt_register(d, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, "alive");
    proto_msg_reset(&ack);
    zsock_destroy(&d);
    int64_t t0 = util_mono_ms();
    kill(pid, SIGTERM);
    int status = s_wait(pid, 5000);
    if (status < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("bicky-registry did not exit within 5 s of SIGTERM");
    }
    cr_assert(WIFEXITED(status), "killed by a signal");
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_lt(util_mono_ms() - t0, 5000);
}
