/*  test_agent_claude_session — where the CLI keeps a session (the project
    slug matches the CLI's own function, long and non-ASCII paths included)
    and the export/import bundle: a round trip into another HOME and cwd,
    the size bound, and refusal of damaged or hostile bundles (traversal,
    another session's files, bad sizes, truncation at every point). The
    resume through the real CLI is in test_agent_claude. */
#include "tests/fixtures/claude_cli.h"

#include <criterion/criterion.h>
#include <sys/stat.h>

static cc_dirs_t s_dirs;

static void s_setup(void)
{
    cc_dirs_make(&s_dirs);
}

static void s_teardown(void)
{
    cc_rm_rf(s_dirs.root);
}

TestSuite(agent_claude_session, .init = s_setup, .fini = s_teardown, .timeout = 30);

Test(agent_claude_session, project_dir_matches_the_cli)
{
    char out[PATH_MAX], cwd[512];
    cr_assert_eq(agent_claude_project_dir("/h",
                                          "/nonexistent/tmp/wt/caf\xc3\xa9 \xf0\x9f\x98\x80/a.b_c",
                                          out, sizeof out),
                 0);
    cr_assert_str_eq(out, "/h/.claude/projects/-nonexistent-tmp-wt-caf-----a-b-c");
    /* Over 200 characters: cut, plus the CLI's Java-style hash in base 36
       (expected values computed with the CLI's own function under node). */
    snprintf(cwd, sizeof cwd, "/srv/bicky/worktrees/%0190d/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
             0);
    memset(strstr(cwd, "000"), 'x', 190);
    cr_assert_eq(agent_claude_project_dir("/h", cwd, out, sizeof out), 0);
    cr_assert_str_eq(strrchr(out, '-'), "-mksx1e");
    cr_assert_eq(strlen(strrchr(out, '/') + 1), 200 + 7);
    cr_assert_eq(agent_claude_session_path("/h", "/w", "abc-123", out, sizeof out), 0);
    cr_assert_str_eq(out, "/h/.claude/projects/-w/abc-123.jsonl");
    cr_assert_eq(agent_claude_session_path("/h", "/w", "../x", out, sizeof out), -1);
    cr_assert_eq(agent_claude_session_path("/h", "/w", "abc", out, 10), -1);
    cr_assert_not(agent_claude_session_id_valid(""));
    cr_assert_not(agent_claude_session_id_valid("a/b"));
}

static void s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(agent_claude_session, session_bundle_round_trip_and_validation)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], err[512];
    const char *sid = "0b7e7f4e-1111-4222-8333-944455556666";
    cr_assert_eq(agent_claude_project_dir(s_dirs.home, s_dirs.wd, dir, sizeof dir), 0);
    char *bundle = NULL;
    size_t len = 0;
    cr_assert_eq(
        agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 0, &bundle, &len, err, sizeof err),
        -1);
    cr_assert_not_null(strstr(err, "no transcript"), "%s", err);
    snprintf(path, sizeof path, "%s/.claude", s_dirs.home);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/.claude/projects", s_dirs.home);
    mkdir(path, 0700);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, sid);
    s_write_file(path, "{\"type\":\"user\"}\n");
    snprintf(path, sizeof path, "%s/%s", dir, sid);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/tool-results", dir, sid);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/tool-results/t1.txt", dir, sid);
    s_write_file(path, "big output\n");
    cr_assert_eq(
        agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 0, &bundle, &len, err, sizeof err),
        0, "%s", err);
    cr_assert_eq(agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 40, &(char *){NULL},
                                             &(size_t){0}, err, sizeof err),
                 -1, "bounded");
    cr_assert_eq(
        agent_claude_session_import(s_dirs.home2, s_dirs.wd2, sid, bundle, len, err, sizeof err), 0,
        "%s", err);
    cr_assert_eq(agent_claude_project_dir(s_dirs.home2, s_dirs.wd2, dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/%s/tool-results/t1.txt", dir, sid);
    cr_assert_eq(access(path, R_OK), 0);
    /* Damaged or hostile bundles are refused. */
    const char *bad[] = {
        "nope",
        "BICKY-CLAUDE-SESSION 1\nfile 3 ../x\nabc\nend\n",
        "BICKY-CLAUDE-SESSION 1\nfile 3 other.jsonl\nabc\nend\n",
        "BICKY-CLAUDE-SESSION 1\nfile 99 0b7e7f4e-1111-4222-8333-944455556666.jsonl\nabc\nend\n",
        "BICKY-CLAUDE-SESSION 1\nfile 3 0b7e7f4e-1111-4222-8333-944455556666.jsonl\nabc\n",
        "BICKY-CLAUDE-SESSION 1\nfile 1 0b7e7f4e-1111-4222-8333-944455556666/a/../../x\na\nend\n",
        "BICKY-CLAUDE-SESSION 1\nend\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(agent_claude_session_import(s_dirs.home2, s_dirs.wd2, sid, bad[i],
                                                 strlen(bad[i]), err, sizeof err),
                     -1, "bundle %zu accepted", i);
    }
    /* Truncating a good bundle anywhere is refused too. */
    for (size_t cut = 0; cut < len; cut += 7) {
        cr_assert_eq(agent_claude_session_import(s_dirs.home2, s_dirs.wd2, sid, bundle, cut, err,
                                                 sizeof err),
                     -1, "cut at %zu accepted", cut);
    }
    free(bundle);
}

/* A running turn is exported while the CLI appends to its transcript: a line being
   written (no newline yet) is left out of the bundle, whole lines are kept. */
Test(agent_claude_session, export_keeps_whole_transcript_lines)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], err[512];
    const char *sid = "0b7e7f4e-2222-4222-8333-944455556666";
    cr_assert_eq(agent_claude_project_dir(s_dirs.home, s_dirs.wd, dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/.claude", s_dirs.home);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/.claude/projects", s_dirs.home);
    mkdir(path, 0700);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, sid);
    s_write_file(path, "{\"type\":\"user\"}\n{\"type\":\"assistant\"}\n{\"type\":\"us");
    char *bundle = NULL;
    size_t len = 0;
    cr_assert_eq(
        agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 0, &bundle, &len, err, sizeof err),
        0, "%s", err);
    const char *want = "BICKY-CLAUDE-SESSION 1\n"
                       "file 37 0b7e7f4e-2222-4222-8333-944455556666.jsonl\n"
                       "{\"type\":\"user\"}\n{\"type\":\"assistant\"}\n\nend\n";
    cr_assert_eq(len, strlen(want));
    cr_assert_eq(memcmp(bundle, want, len), 0, "%.*s", (int)len, bundle);
    cr_assert_eq(
        agent_claude_session_import(s_dirs.home2, s_dirs.wd2, sid, bundle, len, err, sizeof err), 0,
        "%s", err);
    free(bundle);
    /* With no newline at all, the transcript is exported empty (nothing complete yet). */
    s_write_file(path, "{\"type\":\"us");
    cr_assert_eq(
        agent_claude_session_export(s_dirs.home, s_dirs.wd, sid, 0, &bundle, &len, err, sizeof err),
        0, "%s", err);
    cr_assert_not_null(
        strstr(bundle, "file 0 0b7e7f4e-2222-4222-8333-944455556666.jsonl\n\nend\n"));
    free(bundle);
}
