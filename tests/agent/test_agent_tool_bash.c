/*  test_agent_tool_bash — the bash tool: cwd and environment, the timeout
    killing the whole process group (background children too), the group
    killed when bash exits, output caps and clean-up of invalid UTF-8. */
#include "node/agent/agent_tools.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_root[PATH_MAX]; /* mkdtemp dir: the worktree */

static void setup(void)
{
    strcpy(g_root, "/tmp/bicky-bash-XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(agent_tool_bash, .init = setup, .fini = teardown, .timeout = 20);

/* Runs bash with args (taken) and limits (NULL: defaults). */
static int s_run_with(json_t *args, const agent_tool_limits_t *limits, json_t **res, char **err)
{
    *res = NULL;
    *err = NULL;
    int rc = agent_tool_run(g_root, "bash", args, limits, res, err);
    json_decref(args);
    cr_assert(rc == 0 ? (*res != NULL && *err == NULL) : (*res == NULL && *err != NULL));
    return rc;
}

static json_t *s_ok(const char *tool, json_t *args)
{
    json_t *res;
    char *err;
    cr_assert_eq(s_run_with(args, NULL, &res, &err), 0, "bash failed: %s", err ? err : "");
    return res;
}

static char *s_fail(const char *tool, json_t *args)
{
    json_t *res;
    char *err;
    cr_assert_eq(s_run_with(args, NULL, &res, &err), -1, "bash should have failed");
    return err;
}

Test(agent_tool_bash, bash_runs_in_the_root_with_a_minimal_environment)
{
    char root_real[PATH_MAX], expect[PATH_MAX + 64];
    cr_assert_not_null(realpath(g_root, root_real));
    json_t *res = s_ok("bash", json_pack("{s:s}", "command",
                                         "pwd; echo \"$HOME\"; env | wc -l; cat; echo err >&2; "
                                         "exit 3"));
    cr_assert_gt(snprintf(expect, sizeof expect, "%s\n%s\n", root_real, root_real), 0);
    /* env lists PATH HOME PWD LANG TERM (bash may add SHLVL and _): allow 5-7. */
    const char *out = json_string_value(json_object_get(res, "stdout"));
    cr_assert_eq(strncmp(out, expect, strlen(expect)), 0, "%s", out);
    int lines = atoi(out + strlen(root_real) * 2 + 2);
    cr_assert(lines >= 5 && lines <= 7, "env has %d lines", lines);
    cr_assert_str_eq(json_string_value(json_object_get(res, "stderr")), "err\n");
    cr_assert_eq(json_integer_value(json_object_get(res, "exit_code")), 3);
    cr_assert(json_is_false(json_object_get(res, "timed_out")));
    json_decref(res);
}

static bool s_pid_gone(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return true;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *state = strrchr(buf, ')');
    return state && (state[2] == 'Z' || state[2] == 'X');
}

Test(agent_tool_bash, bash_timeout_kills_the_whole_group)
{
    json_t *res = s_ok("bash", json_pack("{s:s, s:i}", "command", "sleep 100 & echo $!; sleep 100",
                                         "timeout_s", 1));
    cr_assert(json_is_true(json_object_get(res, "timed_out")));
    cr_assert(json_is_null(json_object_get(res, "exit_code")));
    cr_assert_eq(json_integer_value(json_object_get(res, "signal")), SIGKILL);
    cr_assert_lt(json_integer_value(json_object_get(res, "duration_ms")), 4000);
    pid_t bg = atoi(json_string_value(json_object_get(res, "stdout")));
    cr_assert_gt(bg, 0);
    usleep(100 * 1000);
    cr_assert(s_pid_gone(bg), "background sleep %d survived", (int)bg);
    json_decref(res);
    /* Without a timeout: the group is killed when bash exits. */
    res = s_ok("bash", json_pack("{s:s}", "command", "sleep 100 & echo $!"));
    cr_assert(json_is_false(json_object_get(res, "timed_out")));
    cr_assert_lt(json_integer_value(json_object_get(res, "duration_ms")), 3000);
    bg = atoi(json_string_value(json_object_get(res, "stdout")));
    usleep(100 * 1000);
    cr_assert(s_pid_gone(bg), "background sleep %d survived", (int)bg);
    json_decref(res);
}

Test(agent_tool_bash, bash_output_is_capped_and_made_valid_text)
{
    agent_tool_limits_t lim;
    agent_tool_limits_default(&lim);
    lim.bash_max_output = 1000;
    json_t *res = NULL;
    char *err = NULL;
    cr_assert_eq(
        s_run_with(json_pack("{s:s}", "command", "head -c 1000000 /dev/zero"), &lim, &res, &err),
        0);
    cr_assert_eq(json_string_length(json_object_get(res, "stdout")), 3000, "NULs become U+FFFD");
    cr_assert(json_is_true(json_object_get(res, "stdout_truncated")));
    cr_assert_eq(json_integer_value(json_object_get(res, "exit_code")), 0);
    json_decref(res);
    res = s_ok("bash", json_pack("{s:s}", "command", "printf 'a\\377b'"));
    cr_assert_str_eq(json_string_value(json_object_get(res, "stdout")), "a\xEF\xBF\xBD"
                                                                        "b");
    json_decref(res);
    free(s_fail("bash", json_pack("{s:s}", "command", "")));
    free(s_fail("bash", json_pack("{s:s%}", "command", "echo a\0rm", (size_t)9)));
    free(s_fail("bash", json_pack("{s:s, s:i}", "command", "true", "timeout_s", 100000)));
}

Test(agent_tool_bash, inherits_no_descriptors)
{
    int leak = open("/dev/null", O_RDONLY); /* not close-on-exec on purpose */
    cr_assert_geq(leak, 3);
    json_t *res = s_ok("bash", json_pack("{s:s}", "command", "ls /proc/self/fd | wc -l"));
    /* 0, 1, 2 and the directory ls itself is reading. */
    cr_assert_str_eq(json_string_value(json_object_get(res, "stdout")), "4\n");
    json_decref(res);
    close(leak);
}
