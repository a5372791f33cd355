/*  test_agent_worktree — worktrees on a real repository made with libgit2 in
    a mkdtemp directory: create/get/list/remove, base refs, conflicts, dirty
    removal, a vanished directory, and the branch-name injection matrix
    (rejected, no ref and no directory created; the git CLI agrees). */
#include "node/agent/agent_worktree.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_base[256];      /* mkdtemp dir */
static char g_repo[PATH_MAX]; /* base/repo */
static char g_wts[PATH_MAX];  /* base/wt: worktrees_dir */
static git_oid g_first;       /* the first commit (HEAD after setup) */

static void s_join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    cr_assert(n > 0 && n < PATH_MAX);
}

static void s_write(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    s_join(path, dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(content, f);
    fclose(f);
}

/* Writes name in the repository's work tree and commits it on HEAD. */
static void s_commit(git_repository *repo, const char *name, const char *content, git_oid *out)
{
    git_index *index;
    git_oid tree_oid;
    git_tree *tree;
    git_signature *sig;
    git_commit *parent = NULL;
    git_reference *head = NULL;
    s_write(g_repo, name, content);
    cr_assert_eq(git_repository_index(&index, repo), 0);
    cr_assert_eq(git_index_add_bypath(index, name), 0);
    cr_assert_eq(git_index_write(index), 0);
    cr_assert_eq(git_index_write_tree(&tree_oid, index), 0);
    cr_assert_eq(git_tree_lookup(&tree, repo, &tree_oid), 0);
    cr_assert_eq(git_signature_new(&sig, "Test", "test@example.com", 1700000000, 0), 0);
    if (git_repository_head(&head, repo) == 0) {
        cr_assert_eq(git_commit_lookup(&parent, repo, git_reference_target(head)), 0);
    }
    const git_commit *parents[] = {parent};
    cr_assert_eq(git_commit_create(out, repo, "HEAD", sig, sig, NULL, "commit", tree,
                                   parent ? 1 : 0, parents),
                 0);
    git_commit_free(parent);
    git_reference_free(head);
    git_signature_free(sig);
    git_tree_free(tree);
    git_index_free(index);
}

static void setup(void)
{
    cr_assert_eq(agent_worktree_global_init(), 0);
    strcpy(g_base, "/tmp/bicky-wt-XXXXXX");
    cr_assert_not_null(mkdtemp(g_base));
    s_join(g_repo, g_base, "repo");
    s_join(g_wts, g_base, "wt");
    git_repository *repo;
    cr_assert_eq(git_repository_init(&repo, g_repo, 0), 0);
    s_commit(repo, "README", "hello\n", &g_first);
    git_repository_free(repo);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_base, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    agent_worktree_global_shutdown();
}

TestSuite(agent_worktree, .init = setup, .fini = teardown, .timeout = 30);

static agent_wt_status_t
s_create(const char *id, const char *branch, const char *base, agent_worktree_info_t *info)
{
    agent_worktree_spec_t spec = {
        .repo_path = g_repo, .worktrees_dir = g_wts, .id = id, .branch = branch, .base_ref = base};
    char err[256];
    return agent_worktree_create(&spec, info, err, sizeof err);
}

static size_t s_ref_count(void)
{
    git_repository *repo;
    git_strarray refs;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    cr_assert_eq(git_reference_list(&refs, repo), 0);
    size_t n = refs.count;
    git_strarray_dispose(&refs);
    git_repository_free(repo);
    return n;
}

/* Entries of the worktrees directory (0 when it does not exist). */
static int s_wt_entries(void)
{
    DIR *d = opendir(g_wts);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

Test(agent_worktree, create_get_and_head)
{
    agent_worktree_info_t info;
    cr_assert_eq(s_create("wt1", "feature/one", NULL, &info), AGENT_WT_OK);
    char hex[41], path[PATH_MAX], branch[64];
    git_oid_tostr(hex, sizeof hex, &g_first);
    s_join(path, g_wts, "wt1");
    cr_assert_str_eq(info.id, "wt1");
    cr_assert_str_eq(info.branch, "feature/one");
    cr_assert_str_eq(info.head, hex);
    cr_assert_str_eq(info.base_ref, "HEAD");
    cr_assert(info.active);
    char readme[PATH_MAX];
    s_join(readme, path, "README");
    cr_assert(s_exists(readme), "checked out");
    cr_assert(agent_worktree_active(info.path));
    char head[41];
    cr_assert_eq(agent_worktree_head(info.path, head, branch, sizeof branch), 0);
    cr_assert_str_eq(head, hex);
    cr_assert_str_eq(branch, "feature/one");
    agent_worktree_info_t got;
    cr_assert_eq(agent_worktree_get(g_repo, "wt1", &got, NULL, 0), AGENT_WT_OK);
    cr_assert_str_eq(got.branch, "feature/one");
    cr_assert_str_eq(got.head, hex);
    cr_assert(got.active);
    json_t *j = agent_worktree_info_json(&got);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "active");
    cr_assert_str_eq(json_string_value(json_object_get(j, "head")), hex);
    cr_assert(json_is_null(json_object_get(j, "base_ref")));
    json_decref(j);
    cr_assert_eq(agent_worktree_get(g_repo, "nope", &got, NULL, 0), AGENT_WT_NOT_FOUND);
    cr_assert_eq(agent_worktree_get(g_repo, "../x", &got, NULL, 0), AGENT_WT_INVALID);
    cr_assert_eq(agent_worktree_get("/nonexistent/repo", "wt1", &got, NULL, 0), AGENT_WT_ERROR);
}

Test(agent_worktree, create_from_a_base_ref)
{
    git_repository *repo;
    git_oid second;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    s_commit(repo, "NEWS", "news\n", &second);
    git_repository_free(repo);
    char first[41], second_hex[41];
    git_oid_tostr(first, sizeof first, &g_first);
    git_oid_tostr(second_hex, sizeof second_hex, &second);
    agent_worktree_info_t info;
    cr_assert_eq(s_create("old", "from-first", first, &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, first);
    cr_assert_eq(s_create("new", "from-head", "", &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, second_hex);
    cr_assert_eq(s_create("br", "from-branch", "from-first", &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, first);
    size_t refs = s_ref_count();
    cr_assert_eq(s_create("x1", "x1", "no-such-ref", &info), AGENT_WT_NOT_FOUND);
    cr_assert_eq(s_create("x2", "x2", "-x", &info), AGENT_WT_INVALID);
    cr_assert_eq(s_create("x3", "x3", "HEAD:README", &info), AGENT_WT_INVALID, "a blob");
    cr_assert_eq(s_ref_count(), refs);
    cr_assert_eq(s_wt_entries(), 3);
}

Test(agent_worktree, conflicts_change_nothing)
{
    agent_worktree_info_t info;
    cr_assert_eq(s_create("wt1", "topic", NULL, &info), AGENT_WT_OK);
    size_t refs = s_ref_count();
    cr_assert_eq(s_create("wt2", "topic", NULL, &info), AGENT_WT_CONFLICT, "branch exists");
    cr_assert_eq(s_create("wt3", "master", NULL, &info), AGENT_WT_CONFLICT);
    cr_assert_eq(s_create("wt1", "other", NULL, &info), AGENT_WT_CONFLICT, "id exists");
    char stray[PATH_MAX];
    s_join(stray, g_wts, "stray");
    cr_assert_eq(mkdir(stray, 0755), 0);
    cr_assert_eq(s_create("stray", "stray", NULL, &info), AGENT_WT_CONFLICT, "dir exists");
    cr_assert_eq(s_ref_count(), refs);
    cr_assert_eq(s_wt_entries(), 2);
    cr_assert_eq(agent_worktree_http_status(AGENT_WT_CONFLICT), 409);
}

Test(agent_worktree, list_and_remove_clean)
{
    agent_worktree_info_t info, *all = NULL;
    size_t n = 0;
    cr_assert_eq(agent_worktree_list(g_repo, &all, &n), AGENT_WT_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(all);
    cr_assert_eq(s_create("a", "a", NULL, &info), AGENT_WT_OK);
    cr_assert_eq(s_create("b", "b", NULL, &info), AGENT_WT_OK);
    cr_assert_eq(agent_worktree_list(g_repo, &all, &n), AGENT_WT_OK);
    cr_assert_eq(n, 2);
    cr_assert(all[0].active && all[1].active);
    free(all);
    cr_assert_eq(agent_worktree_remove(g_repo, "a", false, NULL, 0), AGENT_WT_OK);
    char path[PATH_MAX];
    s_join(path, g_wts, "a");
    cr_assert_not(s_exists(path), "directory deleted");
    cr_assert_eq(agent_worktree_get(g_repo, "a", &info, NULL, 0), AGENT_WT_NOT_FOUND);
    cr_assert_eq(agent_worktree_remove(g_repo, "a", false, NULL, 0), AGENT_WT_NOT_FOUND);
    cr_assert_eq(agent_worktree_remove(g_repo, "a/../b", true, NULL, 0), AGENT_WT_INVALID);
    cr_assert_eq(agent_worktree_list(g_repo, &all, &n), AGENT_WT_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(all[0].id, "b");
    free(all);
    git_repository *repo;
    git_reference *ref;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    cr_assert_eq(git_branch_lookup(&ref, repo, "a", GIT_BRANCH_LOCAL), 0, "the branch stays");
    git_reference_free(ref);
    git_repository_free(repo);
}

Test(agent_worktree, dirty_remove_needs_force)
{
    agent_worktree_info_t info;
    cr_assert_eq(s_create("d", "dirty", NULL, &info), AGENT_WT_OK);
    s_write(info.path, "untracked.txt", "x\n");
    char err[256] = "";
    cr_assert_eq(agent_worktree_remove(g_repo, "d", false, err, sizeof err), AGENT_WT_DIRTY);
    cr_assert_not_null(strstr(err, "uncommitted"));
    cr_assert(s_exists(info.path));
    char f[PATH_MAX];
    s_join(f, info.path, "untracked.txt");
    unlink(f);
    s_write(info.path, "README", "changed\n");
    cr_assert_eq(agent_worktree_remove(g_repo, "d", false, NULL, 0), AGENT_WT_DIRTY);
    cr_assert(s_exists(info.path));
    cr_assert_eq(agent_worktree_remove(g_repo, "d", true, NULL, 0), AGENT_WT_OK);
    cr_assert_not(s_exists(info.path));
    cr_assert_eq(agent_worktree_http_status(AGENT_WT_DIRTY), 409);
}

Test(agent_worktree, vanished_directory_is_inactive_and_prunable)
{
    agent_worktree_info_t info;
    cr_assert_eq(s_create("gone", "gone", NULL, &info), AGENT_WT_OK);
    char path[PATH_MAX];
    strcpy(path, info.path);
    nftw(path, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_not(agent_worktree_active(path));
    cr_assert_eq(agent_worktree_get(g_repo, "gone", &info, NULL, 0), AGENT_WT_OK);
    cr_assert_not(info.active);
    cr_assert_str_eq(info.path, path);
    cr_assert_str_eq(info.branch, "gone");
    cr_assert_eq(strlen(info.head), 40, "head still read from the git dir");
    json_t *j = agent_worktree_info_json(&info);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "inactive");
    json_decref(j);
    cr_assert_eq(agent_worktree_remove(g_repo, "gone", false, NULL, 0), AGENT_WT_OK);
    cr_assert_eq(agent_worktree_get(g_repo, "gone", &info, NULL, 0), AGENT_WT_NOT_FOUND);
}

/* Whether `git check-ref-format --branch name` accepts name (argv, no shell);
   -1 when git cannot be run. */
static int s_git_accepts(const char *name)
{
    char *argv[] = {"git", "check-ref-format", "--branch", (char *)name, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addchdir_np(&fa, g_repo);
    pid_t pid;
    int rc = posix_spawnp(&pid, "git", &fa, NULL, argv, NULL);
    posix_spawn_file_actions_destroy(&fa);
    int status;
    if (rc != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) == 127) {
        return -1;
    }
    return WEXITSTATUS(status) == 0;
}

Test(agent_worktree, branch_injection_matrix_rejected)
{
    static const char *const bad[] = {
        "a b",        "a..b",       "-rf",
        "x;rm -rf /", "a~1",        "a^",
        "a:b",        "a?",         "a*",
        "a[",         "a\\b",       "a@{1}",
        "x.lock",     "a\tb",       "a\nb",
        "a\x01z",     "a\x7f",      "../x",
        ".hidden",    "a//b",       "a/",
        "",           "/a",         "a.",
        "a/.b",       "a/b.lock/c", "$(touch pwned)",
        "`id` x",     "@",          "HEAD",
        "refs/../x",  "a/./b",      "@{-1}",
    };
    char big[10241];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    size_t refs = s_ref_count();
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        const char *name = i < sizeof bad / sizeof bad[0] ? bad[i] : big;
        char why[128] = "";
        cr_assert_not(agent_branch_valid(name, why, sizeof why), "accepted [%s]", name);
        cr_assert_neq(why[0], '\0');
        agent_worktree_info_t info;
        cr_assert_eq(s_create("inj", name, NULL, &info), AGENT_WT_INVALID, "[%s]", name);
        bool ours = strcmp(name, "@") == 0 || name == big;
        if (!ours) {
            cr_assert_neq(s_git_accepts(name), 1, "git accepts [%s]", name);
        }
    }
    cr_assert_eq(s_ref_count(), refs, "no ref created");
    cr_assert_eq(s_wt_entries(), 0, "no directory created");
    char pwned[PATH_MAX];
    s_join(pwned, g_repo, "pwned");
    cr_assert_not(s_exists(pwned));
    cr_assert_not(agent_branch_valid(NULL, NULL, 0));
}

Test(agent_worktree, valid_names_and_ids)
{
    static const char *const good[] = {"feature/x", "fix-123", "a.b", "user/foo_bar",
                                       "a@b",       "v1.2/x",  "a;b", "é"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert(agent_branch_valid(good[i], NULL, 0), "[%s]", good[i]);
        cr_assert_neq(s_git_accepts(good[i]), 0, "git rejects [%s]", good[i]);
    }
    cr_assert(agent_worktree_id_valid("0b6f3c2e-8d1a-4a57-9f7e-2b1c3d4e5f60"));
    cr_assert(agent_worktree_id_valid("wt_1"));
    static const char *const bad_ids[] = {"", "-x", "a/b", "../x", ".", "..", "a b", "a.b"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        cr_assert_not(agent_worktree_id_valid(bad_ids[i]), "[%s]", bad_ids[i]);
        agent_worktree_info_t info;
        cr_assert_eq(s_create(bad_ids[i], "ok-branch", NULL, &info), AGENT_WT_INVALID);
    }
    char long_id[100];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    cr_assert_not(agent_worktree_id_valid(long_id));
    cr_assert_eq(s_wt_entries(), 0);
    cr_assert_eq(agent_worktree_http_status(AGENT_WT_INVALID), 400);
    cr_assert_eq(agent_worktree_http_status(AGENT_WT_NOT_FOUND), 404);
    cr_assert_eq(agent_worktree_http_status(AGENT_WT_ERROR), 503);
}

static int s_chown_nobody(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return lchown(path, 65534, 65534);
}

Test(agent_worktree, repository_of_another_owner_is_usable)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to chown the repository");
    }
    cr_assert_eq(nftw(g_repo, s_chown_nobody, 16, FTW_PHYS), 0);
    agent_worktree_info_t info;
    cr_assert_eq(s_create("other", "other-owner", NULL, &info), AGENT_WT_OK);
    cr_assert(info.active);
    cr_assert_eq(agent_worktree_remove(g_repo, "other", false, NULL, 0), AGENT_WT_OK);
}

/* ---- team namespaces ------------------------------------------------------------------------ */

#define TEAM_A "11111111-1111-4111-8111-111111111111"
#define TEAM_B "22222222-2222-4222-8222-222222222222"

Test(agent_worktree, team_branch_names_map_both_ways)
{
    char out[AGENT_TEAM_NS_MAX + AGENT_BRANCH_MAX + 1];
    cr_assert_eq(agent_branch_to_repo(TEAM_A, "feature/x", out, sizeof out), 0);
    cr_assert_str_eq(out, "team/" TEAM_A "/feature/x");
    cr_assert_str_eq(agent_branch_from_repo(TEAM_A, out), "feature/x");
    cr_assert_null(agent_branch_from_repo(TEAM_B, out), "another team's branch is not ours");
    cr_assert_eq(agent_branch_to_repo(NULL, "plain", out, sizeof out), 0);
    cr_assert_str_eq(out, "plain");
    cr_assert_eq(agent_branch_to_repo("", "plain", out, sizeof out), 0);
    cr_assert_str_eq(out, "plain");
    cr_assert_eq(agent_branch_to_repo("../x", "a", out, sizeof out), -1, "a team is an id");
    cr_assert_eq(agent_branch_to_repo("a/b", "a", out, sizeof out), -1);
    cr_assert_eq(agent_branch_to_repo(TEAM_A, "feature/x", out, 20), -1, "too small");
    /* The longest branch fits with the longest team id. */
    char team[AGENT_WT_ID_MAX + 1], name[AGENT_BRANCH_MAX + 1];
    memset(team, 't', AGENT_WT_ID_MAX);
    team[AGENT_WT_ID_MAX] = '\0';
    memset(name, 'b', AGENT_BRANCH_MAX);
    name[AGENT_BRANCH_MAX] = '\0';
    cr_assert_eq(agent_branch_to_repo(team, name, out, sizeof out), 0);
    cr_assert_str_eq(agent_branch_from_repo(team, out), name);
    const char *not_ours[] = {"feature/x",
                              "team/" TEAM_A,
                              "team/" TEAM_A "/",
                              "team/" TEAM_A "x/a",
                              "teams/" TEAM_A "/a",
                              "team//a",
                              NULL};
    for (int i = 0; not_ours[i]; i++) {
        cr_assert_null(agent_branch_from_repo(TEAM_A, not_ours[i]), "%s", not_ours[i]);
    }
    cr_assert_null(agent_branch_from_repo(NULL, "team/x/a"));
}

static agent_wt_status_t s_team_create(const char *team,
                                       const char *id,
                                       const char *branch,
                                       const char *base,
                                       agent_worktree_info_t *info)
{
    agent_worktree_spec_t spec = {.repo_path = g_repo,
                                  .worktrees_dir = g_wts,
                                  .id = id,
                                  .branch = branch,
                                  .base_ref = base,
                                  .team = team};
    char err[256];
    return agent_worktree_create(&spec, info, err, sizeof err);
}

/* Commits the parent's tree again on refname (a new commit only that branch has). */
static void s_commit_on(const char *refname, char hex[41])
{
    git_repository *repo;
    git_reference *ref;
    git_commit *parent;
    git_tree *tree;
    git_signature *sig;
    git_oid oid;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    cr_assert_eq(git_reference_lookup(&ref, repo, refname), 0);
    cr_assert_eq(git_commit_lookup(&parent, repo, git_reference_target(ref)), 0);
    cr_assert_eq(git_commit_tree(&tree, parent), 0);
    cr_assert_eq(git_signature_new(&sig, "Test", "test@example.com", 1700000100, 0), 0);
    const git_commit *parents[] = {parent};
    cr_assert_eq(
        git_commit_create(&oid, repo, refname, sig, sig, NULL, "team work", tree, 1, parents), 0);
    git_oid_tostr(hex, 41, &oid);
    git_signature_free(sig);
    git_tree_free(tree);
    git_commit_free(parent);
    git_reference_free(ref);
    git_repository_free(repo);
}

static bool s_ref_exists(const char *refname)
{
    git_repository *repo;
    git_reference *ref = NULL;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    bool found = git_reference_lookup(&ref, repo, refname) == 0;
    git_reference_free(ref);
    git_repository_free(repo);
    return found;
}

Test(agent_worktree, teams_have_separate_branches_and_bases)
{
    agent_worktree_info_t info;
    char first[41], a_work[41];
    git_oid_tostr(first, sizeof first, &g_first);
    cr_assert_eq(s_team_create(TEAM_A, "a1", "feat", NULL, &info), AGENT_WT_OK);
    cr_assert_str_eq(info.branch, "feat", "the caller sees its own name");
    cr_assert(s_ref_exists("refs/heads/team/" TEAM_A "/feat"));
    cr_assert(!s_ref_exists("refs/heads/feat"));
    s_commit_on("refs/heads/team/" TEAM_A "/feat", a_work);
    /* Team B: the same name is free, and is its own branch at HEAD. */
    cr_assert_eq(s_team_create(TEAM_B, "b1", "feat", NULL, &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, first);
    cr_assert_eq(s_team_create(TEAM_A, "a2", "feat", NULL, &info), AGENT_WT_CONFLICT);
    /* B cannot reach A's work: by name, by A's full ref name, by commit id or prefix. */
    size_t refs = s_ref_count();
    cr_assert_eq(s_team_create(TEAM_B, "b2", "x1", "team/" TEAM_A "/feat", &info),
                 AGENT_WT_NOT_FOUND);
    cr_assert_eq(s_team_create(TEAM_B, "b3", "x2", a_work, &info), AGENT_WT_NOT_FOUND);
    char prefix[8];
    snprintf(prefix, sizeof prefix, "%.7s", a_work);
    cr_assert_eq(s_team_create(TEAM_B, "b4", "x3", prefix, &info), AGENT_WT_NOT_FOUND);
    cr_assert_eq(s_team_create(TEAM_B, "b5", "x4", ":/team work", &info), AGENT_WT_INVALID);
    cr_assert_eq(s_team_create(TEAM_B, "b6", "x5", "feat~1", &info), AGENT_WT_INVALID);
    cr_assert_eq(s_team_create(TEAM_B, "b7", "x6", "no-such", &info), AGENT_WT_NOT_FOUND);
    cr_assert_eq(s_ref_count(), refs, "no branch made by a refused create");
    /* B's "feat" is B's: a base by that name gives B's commit, not A's. */
    cr_assert_eq(s_team_create(TEAM_B, "b8", "from-feat", "feat", &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, first);
    /* A reaches its own work by name and by id; everyone reaches HEAD's branch. */
    cr_assert_eq(s_team_create(TEAM_A, "a3", "from-feat", "feat", &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, a_work);
    cr_assert_eq(s_team_create(TEAM_A, "a4", "from-id", a_work, &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, a_work);
    git_repository *repo;
    git_reference *head;
    cr_assert_eq(git_repository_open(&repo, g_repo), 0);
    cr_assert_eq(git_repository_head(&head, repo), 0);
    char head_branch[64];
    snprintf(head_branch, sizeof head_branch, "%s", git_reference_shorthand(head));
    git_reference_free(head);
    git_repository_free(repo);
    cr_assert_eq(s_team_create(TEAM_B, "b9", "from-main", head_branch, &info), AGENT_WT_OK);
    cr_assert_str_eq(info.head, first);
    cr_assert_eq(s_team_create(TEAM_B, "b10", "from-first", first, &info), AGENT_WT_OK);
    cr_assert_eq(s_team_create(TEAM_B, "b11", "from-head", "HEAD", &info), AGENT_WT_OK);
}
