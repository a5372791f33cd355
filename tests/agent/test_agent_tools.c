/*  test_agent_tools — the built-in tools on a real directory tree: happy
    paths, caps, and the escape matrix on every tool that takes a path
    (`..`, absolute paths, symlinks out, /proc/self/root, NUL bytes, 10 KB
    paths), each checked to leave everything outside the tree untouched. */
#include "node/agent/agent_tool_internal.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_base[PATH_MAX];     /* mkdtemp dir holding everything */
static char g_root[PATH_MAX];     /* base/tree: the worktree */
static char g_sentinel[PATH_MAX]; /* base/sentinel.txt: must never change */

/* out = a + "/" + b, checked. */
static void s_join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    cr_assert(n > 0 && n < PATH_MAX);
}

static void s_write(const char *dir, const char *name, const char *content, size_t len)
{
    char path[PATH_MAX];
    s_join(path, dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
}

static void s_link(const char *target, const char *name)
{
    char path[PATH_MAX];
    s_join(path, g_root, name);
    cr_assert_eq(symlink(target, path), 0, "symlink %s", name);
}

static void setup(void)
{
    strcpy(g_base, "/tmp/bicky-tools-XXXXXX");
    cr_assert_not_null(mkdtemp(g_base));
    s_join(g_root, g_base, "tree");
    s_join(g_sentinel, g_base, "sentinel.txt");
    char path[PATH_MAX];
    cr_assert_eq(mkdir(g_root, 0755), 0);
    s_join(path, g_base, "tree2");
    cr_assert_eq(mkdir(path, 0755), 0);
    s_write(path, "secret.txt", "SECRET\n", 7);
    s_write(g_base, "sentinel.txt", "SENTINEL\n", 9);
    s_write(g_root, "hello.txt", "line1\nline2\nline3\n", 18);
    s_join(path, g_root, "sub");
    cr_assert_eq(mkdir(path, 0755), 0);
    s_write(path, "a.txt", "alpha\nbeta\n", 11);
    s_link("/etc", "etc_link");
    s_link("..", "up");
    s_link(g_sentinel, "outlink");
    s_join(path, g_base, "created_by_escape.txt");
    s_link(path, "dangling");
    s_link("/proc/self/root", "proc_link");
    s_link("hello.txt", "inlink");
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_base, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(agent_tools, .init = setup, .fini = teardown, .timeout = 20);

/* Runs tool with args (taken) on g_root. */
static int s_run_with(
    const char *tool, json_t *args, const agent_tool_limits_t *limits, json_t **res, char **err)
{
    int rc = agent_tool_run(g_root, tool, args, limits, res, err);
    json_decref(args);
    cr_assert(rc == 0 ? (*res != NULL && *err == NULL) : (*res == NULL && *err != NULL));
    return rc;
}

static int s_run(const char *tool, json_t *args, json_t **res, char **err)
{
    return s_run_with(tool, args, NULL, res, err);
}

static json_t *s_ok(const char *tool, json_t *args)
{
    json_t *res = NULL;
    char *err = NULL;
    int rc = s_run(tool, args, &res, &err);
    cr_assert_eq(rc, 0, "%s failed: %s", tool, err ? err : "");
    return res;
}

static char *s_fail(const char *tool, json_t *args)
{
    json_t *res = NULL;
    char *err = NULL;
    cr_assert_eq(s_run(tool, args, &res, &err), -1, "%s should have failed", tool);
    return err;
}

/* Reads a whole small file; NULL when missing. */
static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Everything outside the tree is as setup left it. */
static void s_assert_outside_untouched(void)
{
    char *s = s_slurp(g_sentinel);
    cr_assert_str_eq(s, "SENTINEL\n");
    free(s);
    char path[PATH_MAX];
    s_join(path, g_base, "tree2/secret.txt");
    s = s_slurp(path);
    cr_assert_str_eq(s, "SECRET\n");
    free(s);
    DIR *d = opendir(g_base);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            cr_assert(!strcmp(de->d_name, "tree") || !strcmp(de->d_name, "tree2") ||
                          !strcmp(de->d_name, "sentinel.txt"),
                      "unexpected %s outside the tree", de->d_name);
            n++;
        }
    }
    closedir(d);
    cr_assert_eq(n, 3);
    s_join(path, g_base, "tree2");
    d = opendir(path);
    n = 0;
    while ((de = readdir(d)) != NULL) {
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    }
    closedir(d);
    cr_assert_eq(n, 1, "nothing new in tree2");
}

/* The escape matrix: every entry must be refused by every path tool. */
static const char *const s_escapes[] = {
    "../sentinel.txt",
    "sub/../../sentinel.txt",
    "../tree2/secret.txt",
    "../tree2",
    "..",
    "/etc/passwd",
    "/proc/self/root/etc/passwd",
    "etc_link/passwd",
    "etc_link",
    "up/sentinel.txt",
    "up/tree2/secret.txt",
    "up",
    "outlink",
    "proc_link/etc/passwd",
    "proc_link",
    "../created_by_escape.txt",
    "up/created_by_escape.txt",
    "etc_link/bicky_escape",
    "newdir/../../created_by_escape.txt",
};

/* Builds the args of tool naming path (len bytes, may hold NUL). */
static json_t *s_args_for(const char *tool, const char *path, size_t len)
{
    json_t *args = json_object();
    json_object_set_new(args, "path", json_stringn(path, len));
    if (strcmp(tool, "write_file") == 0) {
        json_object_set_new(args, "content", json_string("PWNED\n"));
    } else if (strcmp(tool, "grep") == 0) {
        json_object_set_new(args, "pattern", json_string("."));
    }
    return args;
}

static void s_escape_matrix(const char *tool)
{
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof s_escapes / sizeof s_escapes[0]; i++) {
        free(s_fail(tool, s_args_for(tool, s_escapes[i], strlen(s_escapes[i]))));
    }
    /* Absolute paths to the sentinel, direct and through /proc/self/root. */
    free(s_fail(tool, s_args_for(tool, g_sentinel, strlen(g_sentinel))));
    snprintf(path, sizeof path, "/proc/self/root%s", g_sentinel);
    free(s_fail(tool, s_args_for(tool, path, strlen(path))));
    snprintf(path, sizeof path, "proc_link%s", g_sentinel);
    free(s_fail(tool, s_args_for(tool, path, strlen(path))));
    /* An embedded NUL: "hello.txt\0/../../sentinel.txt". */
    static const char nul_path[] = "hello.txt\0/../../sentinel.txt";
    char *err = s_fail(tool, s_args_for(tool, nul_path, sizeof nul_path - 1));
    cr_assert_not_null(strstr(err, "NUL"), "%s", err);
    free(err);
    /* A 10 KB path. */
    char *longp = malloc(10241);
    for (int i = 0; i < 10240; i++) {
        longp[i] = i % 2 ? '/' : 'a';
    }
    longp[10240] = '\0';
    err = s_fail(tool, s_args_for(tool, longp, 10240));
    cr_assert_not_null(strstr(err, "too long"), "%s", err);
    free(err);
    free(longp);
    s_assert_outside_untouched();
}

Test(agent_tools, read_file_escape_matrix_refused)
{
    s_escape_matrix("read_file");
}

Test(agent_tools, write_file_escape_matrix_refused)
{
    s_escape_matrix("write_file");
    /* A dangling symlink to a new file outside: refused, nothing created. */
    free(s_fail("write_file", s_args_for("write_file", "dangling", 8)));
    free(s_fail("write_file", s_args_for("write_file", "dangling/x", 10)));
    s_assert_outside_untouched();
}

Test(agent_tools, list_directory_escape_matrix_refused)
{
    s_escape_matrix("list_directory");
}

Test(agent_tools, grep_escape_matrix_refused)
{
    s_escape_matrix("grep");
}

Test(agent_tools, resolve_is_separator_aware)
{
    char out[PATH_MAX], root_real[PATH_MAX];
    const char *why;
    cr_assert_not_null(realpath(g_root, root_real));
    cr_assert_eq(agent_path_resolve(g_root, "../tree2/secret.txt", false, out, &why), -1);
    cr_assert_str_eq(why, "path is outside the worktree");
    cr_assert_eq(agent_path_resolve(g_root, "sub/a.txt", false, out, &why), 0);
    cr_assert_eq(strncmp(out, root_real, strlen(root_real)), 0);
    cr_assert_eq(agent_path_resolve(g_root, ".", false, out, &why), 0);
    cr_assert_str_eq(out, root_real);
    cr_assert_eq(agent_path_resolve(g_root, "inlink", false, out, &why), 0, "symlink inside ok");
    cr_assert_str_eq(agent_path_rel(root_real, out), "hello.txt");
    cr_assert_eq(agent_path_resolve(g_root, "new/./dir//f.txt", true, out, &why), 0);
    cr_assert_str_eq(agent_path_rel(root_real, out), "new/dir/f.txt");
    cr_assert_eq(agent_path_resolve(g_root, "new/f.txt", false, out, &why), -1);
    cr_assert_str_eq(why, "no such file or directory");
    cr_assert_eq(agent_path_resolve(g_root, "", false, out, &why), -1);
    cr_assert_eq(agent_path_resolve("/", "etc/passwd", false, out, &why), -1, "root / refused");
}

Test(agent_tools, walk_refuses_a_symlink_swapped_in_after_resolution)
{
    char out[PATH_MAX], root_real[PATH_MAX], name[NAME_MAX + 1], path[PATH_MAX];
    const char *why;
    cr_assert_not_null(realpath(g_root, root_real));
    cr_assert_eq(agent_path_resolve(g_root, "sub/a.txt", false, out, &why), 0);
    /* Swap sub for a symlink to the outside between resolve and open. */
    char sub[PATH_MAX + 8];
    s_join(sub, g_root, "sub");
    s_join(path, g_root, "sub_moved");
    cr_assert_eq(rename(sub, path), 0);
    cr_assert_eq(symlink(g_base, sub), 0);
    int fd = agent_path_open_parent(root_real, out, false, name);
    int err = errno;
    cr_assert_eq(fd, -1);
    cr_assert(err == ELOOP || err == ENOTDIR, "errno %d", err);
    cr_assert_eq(agent_path_open_parent(root_real, out, true, name), -1);
    s_assert_outside_untouched();
}

Test(agent_tools, read_file_reads_lines_and_caps)
{
    json_t *res = s_ok("read_file", json_pack("{s:s}", "path", "hello.txt"));
    cr_assert_str_eq(json_string_value(json_object_get(res, "content")), "line1\nline2\nline3\n");
    cr_assert_eq(json_integer_value(json_object_get(res, "lines")), 3);
    cr_assert(json_is_false(json_object_get(res, "truncated")));
    json_decref(res);
    res = s_ok("read_file",
               json_pack("{s:s, s:i, s:i}", "path", "hello.txt", "offset", 2, "limit", 1));
    cr_assert_str_eq(json_string_value(json_object_get(res, "content")), "line2\n");
    cr_assert(json_is_true(json_object_get(res, "truncated")));
    json_decref(res);
    res = s_ok("read_file", json_pack("{s:s}", "path", "inlink"));
    cr_assert_str_eq(json_string_value(json_object_get(res, "path")), "hello.txt");
    json_decref(res);
    agent_tool_limits_t lim;
    agent_tool_limits_default(&lim);
    lim.read_max_bytes = 8;
    json_t *out = NULL;
    char *err = NULL;
    cr_assert_eq(s_run_with("read_file", json_pack("{s:s}", "path", "hello.txt"), &lim, &out, &err),
                 0);
    cr_assert_str_eq(json_string_value(json_object_get(out, "content")), "line1\nli");
    cr_assert(json_is_true(json_object_get(out, "truncated")));
    json_decref(out);
}

Test(agent_tools, read_file_refuses_binary_dirs_and_missing)
{
    s_write(g_root, "bin.dat", "ab\0cd", 5);
    char *err = s_fail("read_file", json_pack("{s:s}", "path", "bin.dat"));
    cr_assert_not_null(strstr(err, "binary"), "%s", err);
    free(err);
    free(s_fail("read_file", json_pack("{s:s}", "path", "sub")));
    err = s_fail("read_file", json_pack("{s:s}", "path", "missing.txt"));
    cr_assert_not_null(strstr(err, "no such file"), "%s", err);
    free(err);
    /* A FIFO would block a plain open: refused at once instead. */
    char fifo[PATH_MAX];
    s_join(fifo, g_root, "fifo");
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    err = s_fail("read_file", json_pack("{s:s}", "path", "fifo"));
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
    free(err);
    json_decref(s_ok("grep", json_pack("{s:s}", "pattern", "x")));
    free(s_fail("read_file", json_pack("{s:i}", "path", 3)));
    free(s_fail("read_file", json_pack("{s:s, s:i}", "path", "hello.txt", "offset", 0)));
    s_write(g_root, "bad.txt", "ok \xff\xfe end\n", 10);
    json_t *res = s_ok("read_file", json_pack("{s:s}", "path", "bad.txt"));
    cr_assert_str_eq(json_string_value(json_object_get(res, "content")),
                     "ok \xEF\xBF\xBD\xEF\xBF\xBD end\n");
    json_decref(res);
}

Test(agent_tools, write_file_creates_replaces_and_caps)
{
    json_t *res =
        s_ok("write_file", json_pack("{s:s, s:s}", "path", "new/deep/f.txt", "content", "hello\n"));
    cr_assert(json_is_true(json_object_get(res, "created")));
    json_decref(res);
    char path[PATH_MAX];
    s_join(path, g_root, "new/deep/f.txt");
    char *s = s_slurp(path);
    cr_assert_str_eq(s, "hello\n");
    free(s);
    chmod(path, 0600);
    res = s_ok("write_file", json_pack("{s:s, s:s}", "path", "new/deep/f.txt", "content", "v2"));
    cr_assert(json_is_false(json_object_get(res, "created")));
    json_decref(res);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode kept");
    /* Writing through a symlink inside the tree writes its target. */
    json_decref(s_ok("write_file", json_pack("{s:s, s:s}", "path", "inlink", "content", "x\n")));
    s_join(path, g_root, "hello.txt");
    s = s_slurp(path);
    cr_assert_str_eq(s, "x\n");
    free(s);
    agent_tool_limits_t lim;
    agent_tool_limits_default(&lim);
    lim.write_max_bytes = 4;
    json_t *out = NULL;
    char *err = NULL;
    cr_assert_eq(s_run_with("write_file",
                            json_pack("{s:s, s:s}", "path", "big", "content", "12345"), &lim, &out,
                            &err),
                 -1);
    free(err);
    free(s_fail("write_file", json_pack("{s:s, s:s}", "path", ".git/config", "content", "x")));
    free(s_fail("write_file", json_pack("{s:s, s:s}", "path", ".", "content", "x")));
    free(s_fail("write_file", json_pack("{s:s, s:s}", "path", "sub", "content", "x")));
    free(s_fail("write_file", json_pack("{s:s}", "path", "nocontent")));
}

Test(agent_tools, write_file_replaces_a_hard_link_instead_of_writing_through)
{
    char hard[PATH_MAX];
    s_join(hard, g_root, "hard");
    cr_assert_eq(link(g_sentinel, hard), 0);
    json_decref(s_ok("write_file", json_pack("{s:s, s:s}", "path", "hard", "content", "PWNED")));
    char *s = s_slurp(hard);
    cr_assert_str_eq(s, "PWNED");
    free(s);
    s_assert_outside_untouched();
}

Test(agent_tools, list_directory_lists_sorted_and_caps)
{
    json_t *res = s_ok("list_directory", json_object());
    json_t *entries = json_object_get(res, "entries");
    cr_assert_eq(json_array_size(entries), 8);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(entries, 0), "name")),
                     "dangling");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "type"));
        if (strcmp(name, "hello.txt") == 0) {
            cr_assert_str_eq(type, "file");
            cr_assert_eq(json_integer_value(json_object_get(e, "size")), 18);
        } else if (strcmp(name, "sub") == 0) {
            cr_assert_str_eq(type, "dir");
        } else {
            cr_assert_str_eq(type, "symlink", "%s", name);
        }
    }
    json_decref(res);
    res = s_ok("list_directory", json_pack("{s:s}", "path", "sub"));
    cr_assert_eq(json_array_size(json_object_get(res, "entries")), 1);
    json_decref(res);
    agent_tool_limits_t lim;
    agent_tool_limits_default(&lim);
    lim.list_max_entries = 2;
    json_t *out = NULL;
    char *err = NULL;
    cr_assert_eq(s_run_with("list_directory", json_object(), &lim, &out, &err), 0);
    cr_assert_eq(json_array_size(json_object_get(out, "entries")), 2);
    cr_assert_eq(json_integer_value(json_object_get(out, "total")), 8);
    cr_assert(json_is_true(json_object_get(out, "truncated")));
    json_decref(out);
    free(s_fail("list_directory", json_pack("{s:s}", "path", "hello.txt")));
}

Test(agent_tools, grep_finds_matches_and_skips_git_binary_and_symlinks)
{
    char git[PATH_MAX];
    s_join(git, g_root, ".git");
    cr_assert_eq(mkdir(git, 0755), 0);
    s_write(git, "config", "alpha in git\n", 13);
    s_write(g_root, "bin.dat", "alpha\0", 6);
    json_t *res = s_ok("grep", json_pack("{s:s}", "pattern", "alph[a]"));
    json_t *m = json_object_get(res, "matches");
    cr_assert_eq(json_array_size(m), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0), "path")), "sub/a.txt");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(m, 0), "line")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0), "text")), "alpha");
    cr_assert_geq(json_integer_value(json_object_get(res, "files_skipped")), 1);
    json_decref(res);
    /* Symlinks (up -> .., etc_link) are never followed. */
    res = s_ok("grep", json_pack("{s:s}", "pattern", "SENTINEL|SECRET|root:"));
    cr_assert_eq(json_array_size(json_object_get(res, "matches")), 0);
    json_decref(res);
    res = s_ok("grep", json_pack("{s:s, s:s, s:b}", "pattern", "BETA", "path", "sub/a.txt",
                                 "ignore_case", 1));
    cr_assert_eq(json_array_size(json_object_get(res, "matches")), 1);
    json_decref(res);
    res = s_ok("grep", json_pack("{s:s, s:i}", "pattern", "line", "max_results", 2));
    cr_assert_eq(json_array_size(json_object_get(res, "matches")), 2);
    cr_assert(json_is_true(json_object_get(res, "truncated")));
    json_decref(res);
    free(s_fail("grep", json_pack("{s:s}", "pattern", "a(")));
    free(s_fail("grep", json_pack("{s:s}", "pattern", "")));
}

Test(agent_tools, todo_write_normalises_and_validates)
{
    json_t *res = s_ok("todo_write", json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s}]}", "todos",
                                               "content", "a", "status", "completed", "extra",
                                               "dropped", "content", "b", "status", "in_progress"));
    json_t *todos = json_object_get(res, "todos");
    cr_assert_eq(json_array_size(todos), 2);
    cr_assert_null(json_object_get(json_array_get(todos, 0), "extra"));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "counts"), "completed")),
                 1);
    json_decref(res);
    free(s_fail("todo_write",
                json_pack("{s:[{s:s, s:s}]}", "todos", "content", "a", "status", "done")));
    free(s_fail("todo_write",
                json_pack("{s:[{s:s, s:s}]}", "todos", "content", "", "status", "pending")));
    free(s_fail("todo_write", json_pack("{s:s}", "todos", "x")));
}

Test(agent_tools, schema_describe_and_bad_calls)
{
    json_t *schema = agent_tools_schema();
    cr_assert_eq(json_array_size(schema), 6);
    size_t i;
    json_t *t;
    json_array_foreach(schema, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        cr_assert(agent_tool_known(name), "%s", name);
        cr_assert_not_null(json_string_value(json_object_get(t, "description")));
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(t, "input_schema"), "type")),
            "object");
    }
    json_decref(schema);
    json_t *args = json_pack("{s:s}", "command", "ls\n-la\x1b[31m");
    char *d = agent_tool_describe("bash", args);
    cr_assert_str_eq(d, "Run bash: ls -la [31m");
    free(d);
    json_decref(args);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    args = json_pack("{s:s, s:s}", "path", big, "content", "abc");
    d = agent_tool_describe("write_file", args);
    cr_assert_leq(strlen(d), 203);
    cr_assert_eq(strncmp(d, "Write file xxx", 14), 0);
    free(d);
    json_decref(args);
    d = agent_tool_describe("mystery", NULL);
    cr_assert_str_eq(d, "Call tool mystery");
    free(d);
    char *err = s_fail("nope", json_object());
    cr_assert_not_null(strstr(err, "unknown tool"));
    free(err);
    free(s_fail("read_file", json_string("hello.txt")));
    json_t *res = NULL;
    json_t *empty = json_object();
    cr_assert_eq(agent_tool_run("relative/root", "list_directory", empty, NULL, &res, &err), -1);
    free(err);
    cr_assert_eq(agent_tool_run("/", "list_directory", empty, NULL, &res, &err), -1);
    free(err);
    json_decref(empty);
}
