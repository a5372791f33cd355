/*  agent_worktree — libgit2 side of the worktrees: create (branch + worktree
    add), get, list, remove (status check + prune). Every call opens its own
    git_repository, so calls on different workers share nothing; names are
    validated before they reach libgit2 and no git command line is ever built.
    Blocking: agent_pool workers only. */
#define LOG_MODULE "agent_worktree"
#include "common/log.h"
#include "node/agent/agent_worktree_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Resources of one operation, released by s_op_end. */
typedef struct {
    git_repository *repo;                                       /* the main repository */
    git_worktree *wt;                                           /* the worktree at hand */
    git_commit *base;                                           /* create: the base commit */
    git_reference *branch;                                      /* create: the new branch */
    char repo_branch[AGENT_TEAM_NS_MAX + AGENT_BRANCH_MAX + 1]; /* create: its name in git */
    char *err;      /* caller's message buffer (may be NULL) */
    size_t err_len; /* its size */
} agent_wt_op_t;

int agent_worktree_global_init(void)
{
    if (git_libgit2_init() < 0) {
        return -1;
    }
    /* The repository may be owned by another uid than the node (DEPS.md §8). */
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0) < 0 ? -1 : 0;
}

void agent_worktree_global_shutdown(void)
{
    git_libgit2_shutdown();
}

/* Writes the message (plus libgit2's last error, if any) and returns status. */
static agent_wt_status_t s_fail(agent_wt_op_t *op, agent_wt_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static agent_wt_status_t s_fail(agent_wt_op_t *op, agent_wt_status_t status, const char *fmt, ...)
{
    if (op->err && op->err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(op->err, op->err_len, fmt, ap);
        va_end(ap);
    }
    if (status == AGENT_WT_ERROR) {
        const git_error *e = git_error_last();
        LOG_W("git failure: %s", e && e->message ? e->message : "unknown");
    }
    return status;
}

static agent_wt_status_t
s_op_begin(agent_wt_op_t *op, const char *repo_path, char *err, size_t err_len)
{
    *op = (agent_wt_op_t){.err = err, .err_len = err_len};
    if (err && err_len > 0) {
        err[0] = '\0';
    }
    git_libgit2_init();
    if (!repo_path ||
        git_repository_open_ext(&op->repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        return s_fail(op, AGENT_WT_ERROR, "cannot open the repository");
    }
    return AGENT_WT_OK;
}

static void s_op_end(agent_wt_op_t *op)
{
    git_reference_free(op->branch);
    git_commit_free(op->base);
    git_worktree_free(op->wt);
    git_repository_free(op->repo);
    *op = (agent_wt_op_t){0};
    git_libgit2_shutdown();
}

/* Copies src into dst (cap bytes); returns false when it had to be cut. */
static bool s_copy(char *dst, size_t cap, const char *src)
{
    src = src ? src : "";
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return src[n] == '\0';
}

/* True when repo has a worktree named id. */
static bool s_has_worktree(git_repository *repo, const char *id)
{
    git_strarray names = {0};
    bool found = false;
    if (git_worktree_list(&names, repo) == 0) {
        for (size_t i = 0; i < names.count && !found; i++) {
            found = strcmp(names.strings[i], id) == 0;
        }
    }
    git_strarray_dispose(&names);
    return found;
}

/* Reads the head and branch of worktree id from its HEAD file in the main
   repository's git dir, which survives the worktree's directory. (libgit2
   1.5's git_repository_head_for_worktree crashed here; this needs no
   worktree repository at all.) */
static void s_fill_head(git_repository *repo, const char *id, agent_worktree_info_t *out)
{
    char path[PATH_MAX], buf[512];
    const char *common = git_repository_commondir(repo);
    int n = snprintf(path, sizeof path, "%sworktrees/%s/HEAD", common ? common : "", id);
    FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "re") : NULL;
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    git_oid oid;
    if (strncmp(buf, "ref: ", 5) == 0) {
        const char *refname = buf + 5;
        if (strncmp(refname, "refs/heads/", 11) == 0) {
            s_copy(out->branch, sizeof out->branch, refname + 11);
        }
        if (git_reference_name_to_id(&oid, repo, refname) == 0) {
            git_oid_tostr(out->head, sizeof out->head, &oid);
        }
    } else if (strlen(buf) == AGENT_WT_OID_HEXLEN && git_oid_fromstr(&oid, buf) == 0) {
        git_oid_tostr(out->head, sizeof out->head, &oid);
    }
}

static void s_fill_info(git_repository *repo, git_worktree *wt, agent_worktree_info_t *out)
{
    memset(out, 0, sizeof *out);
    s_copy(out->id, sizeof out->id, git_worktree_name(wt));
    s_copy(out->path, sizeof out->path, git_worktree_path(wt));
    out->active = git_worktree_validate(wt) == 0 && agent_worktree_active(out->path);
    s_fill_head(repo, out->id, out);
}

/* Looks worktree id up into op->wt. */
static agent_wt_status_t s_lookup(agent_wt_op_t *op, const char *id)
{
    if (!agent_worktree_id_valid(id)) {
        return s_fail(op, AGENT_WT_INVALID, "invalid worktree id");
    }
    if (!s_has_worktree(op->repo, id) || git_worktree_lookup(&op->wt, op->repo, id) != 0) {
        return s_fail(op, AGENT_WT_NOT_FOUND, "no such worktree");
    }
    return AGENT_WT_OK;
}

static agent_wt_status_t s_check_spec(agent_wt_op_t *op, const agent_worktree_spec_t *spec)
{
    char why[128];
    if (!agent_worktree_id_valid(spec->id)) {
        return s_fail(op, AGENT_WT_INVALID, "invalid worktree id");
    }
    if (!agent_branch_valid(spec->branch, why, sizeof why)) {
        return s_fail(op, AGENT_WT_INVALID, "%s", why);
    }
    const char *base = spec->base_ref;
    if (base && (strnlen(base, AGENT_WT_REF_MAX + 1) > AGENT_WT_REF_MAX || base[0] == '-')) {
        return s_fail(op, AGENT_WT_INVALID, "invalid base ref");
    }
    for (const char *p = base; p && *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return s_fail(op, AGENT_WT_INVALID, "invalid base ref");
        }
    }
    if (!spec->worktrees_dir || spec->worktrees_dir[0] != '/') {
        return s_fail(op, AGENT_WT_ERROR, "the worktrees directory is not configured");
    }
    return AGENT_WT_OK;
}

/* Checks that nothing named by spec exists yet (branch, worktree, directory).
   With a team, only the team's namespace is looked at: another team's branch
   of the same name is no conflict, and its existence is never revealed. */
static agent_wt_status_t
s_check_free(agent_wt_op_t *op, const agent_worktree_spec_t *spec, const char *path)
{
    char refname[sizeof op->repo_branch + 16];
    int valid = 0;
    if (agent_branch_to_repo(spec->team, spec->branch, op->repo_branch, sizeof op->repo_branch) <
        0) {
        return s_fail(op, AGENT_WT_INVALID, "invalid team or branch name");
    }
    snprintf(refname, sizeof refname, "refs/heads/%s", op->repo_branch);
    if (git_reference_name_is_valid(&valid, refname) != 0 || !valid) {
        return s_fail(op, AGENT_WT_INVALID, "invalid branch name");
    }
    git_reference *existing = NULL;
    if (git_branch_lookup(&existing, op->repo, op->repo_branch, GIT_BRANCH_LOCAL) == 0) {
        git_reference_free(existing);
        return s_fail(op, AGENT_WT_CONFLICT, "branch already exists");
    }
    struct stat st;
    if (s_has_worktree(op->repo, spec->id) || lstat(path, &st) == 0) {
        return s_fail(op, AGENT_WT_CONFLICT, "worktree already exists");
    }
    return AGENT_WT_OK;
}

static agent_wt_status_t s_resolve_base(agent_wt_op_t *op, const char *team, const char *base_ref)
{
    git_object *obj = NULL;
    git_object *peeled = NULL;
    if (team && team[0]) {
        const char *why = "base ref not found";
        agent_wt_status_t st = agent_wt_team_base(op->repo, team, base_ref, &op->base, &why);
        return st == AGENT_WT_OK ? st : s_fail(op, st, "%s", why);
    }
    int rc = git_revparse_single(&obj, op->repo, base_ref);
    if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH) {
        return s_fail(op, AGENT_WT_NOT_FOUND, "base ref not found");
    }
    if (rc != 0) {
        return s_fail(op, AGENT_WT_INVALID, "invalid base ref");
    }
    rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
    git_object_free(obj);
    if (rc != 0) {
        return s_fail(op, AGENT_WT_INVALID, "base ref is not a commit");
    }
    op->base = (git_commit *)peeled;
    return AGENT_WT_OK;
}

/* Makes dir (absolute) and its missing parents, mode 0755. */
static int s_mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = saved;
            if (saved == '\0') {
                return 0;
            }
        }
    }
}

/* Branch + worktree; on a failure after the branch exists, deletes it. */
static agent_wt_status_t
s_make(agent_wt_op_t *op, const agent_worktree_spec_t *spec, const char *path)
{
    if (s_mkdirs(spec->worktrees_dir) != 0) {
        return s_fail(op, AGENT_WT_ERROR, "cannot create the worktrees directory");
    }
    int rc = git_branch_create(&op->branch, op->repo, op->repo_branch, op->base, 0);
    if (rc == GIT_EEXISTS) {
        return s_fail(op, AGENT_WT_CONFLICT, "branch already exists");
    }
    if (rc != 0) {
        return s_fail(op, AGENT_WT_ERROR, "cannot create the branch");
    }
    git_worktree_add_options opts;
    git_worktree_add_options_init(&opts, GIT_WORKTREE_ADD_OPTIONS_VERSION);
    opts.ref = op->branch;
    if (git_worktree_add(&op->wt, op->repo, spec->id, path, &opts) != 0) {
        agent_wt_status_t st = s_fail(op, AGENT_WT_ERROR, "cannot add the worktree");
        git_branch_delete(op->branch);
        return st;
    }
    return AGENT_WT_OK;
}

agent_wt_status_t agent_worktree_create(const agent_worktree_spec_t *spec,
                                        agent_worktree_info_t *out,
                                        char *err,
                                        size_t err_len)
{
    memset(out, 0, sizeof *out);
    agent_wt_op_t op;
    char path[PATH_MAX] = "";
    const char *base = spec->base_ref && spec->base_ref[0] ? spec->base_ref : "HEAD";
    agent_wt_status_t st = s_op_begin(&op, spec->repo_path, err, err_len);
    if (st == AGENT_WT_OK) {
        st = s_check_spec(&op, spec);
    }
    if (st == AGENT_WT_OK &&
        snprintf(path, sizeof path, "%s/%s", spec->worktrees_dir, spec->id) >= (int)sizeof path) {
        st = s_fail(&op, AGENT_WT_INVALID, "worktree path is too long");
    }
    if (st == AGENT_WT_OK) {
        st = s_check_free(&op, spec, path);
    }
    if (st == AGENT_WT_OK) {
        st = s_resolve_base(&op, spec->team, base);
    }
    if (st == AGENT_WT_OK) {
        st = s_make(&op, spec, path);
    }
    if (st == AGENT_WT_OK) {
        s_fill_info(op.repo, op.wt, out);
        s_copy(out->branch, sizeof out->branch, spec->branch); /* the caller's name */
        s_copy(out->base_ref, sizeof out->base_ref, base);
        LOG_I("worktree created id=%s branch=%s head=%s", out->id, op.repo_branch, out->head);
    }
    s_op_end(&op);
    return st;
}

agent_wt_status_t agent_worktree_get(
    const char *repo_path, const char *id, agent_worktree_info_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    agent_wt_op_t op;
    agent_wt_status_t st = s_op_begin(&op, repo_path, err, err_len);
    if (st == AGENT_WT_OK) {
        st = s_lookup(&op, id);
    }
    if (st == AGENT_WT_OK) {
        s_fill_info(op.repo, op.wt, out);
    }
    s_op_end(&op);
    return st;
}

agent_wt_status_t
agent_worktree_list(const char *repo_path, agent_worktree_info_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    agent_wt_op_t op;
    git_strarray names = {0};
    agent_wt_status_t st = s_op_begin(&op, repo_path, NULL, 0);
    if (st == AGENT_WT_OK && git_worktree_list(&names, op.repo) != 0) {
        st = s_fail(&op, AGENT_WT_ERROR, "cannot list worktrees");
    }
    if (st == AGENT_WT_OK && names.count > 0) {
        *out = calloc(names.count, sizeof **out);
        st = *out ? st : AGENT_WT_ERROR;
    }
    for (size_t i = 0; st == AGENT_WT_OK && i < names.count; i++) {
        git_worktree *wt = NULL;
        if (git_worktree_lookup(&wt, op.repo, names.strings[i]) == 0) {
            s_fill_info(op.repo, wt, &(*out)[(*count)++]);
        }
        git_worktree_free(wt);
    }
    git_strarray_dispose(&names);
    s_op_end(&op);
    return st;
}

/* True when the worktree has uncommitted changes or untracked files;
   an unreadable status counts as dirty. */
static bool s_is_dirty(git_worktree *wt)
{
    git_repository *wrepo = NULL;
    git_status_list *list = NULL;
    git_status_options opts;
    git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
    opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    bool dirty = true;
    if (git_repository_open_from_worktree(&wrepo, wt) == 0 &&
        git_status_list_new(&list, wrepo, &opts) == 0) {
        dirty = git_status_list_entrycount(list) > 0;
    }
    git_status_list_free(list);
    git_repository_free(wrepo);
    return dirty;
}

/* Pruning a valid worktree deletes its directory: make sure that directory
   is `<something>/<id>`, as we created it, before letting libgit2 do so. */
static bool s_path_is_ours(git_worktree *wt, const char *id)
{
    const char *path = git_worktree_path(wt);
    const char *slash = path ? strrchr(path, '/') : NULL;
    return path && path[0] == '/' && slash && slash != path && strcmp(slash + 1, id) == 0;
}

static agent_wt_status_t s_prune(agent_wt_op_t *op, const char *id, bool force)
{
    bool valid = git_worktree_validate(op->wt) == 0;
    if (valid && !force && s_is_dirty(op->wt)) {
        return s_fail(op, AGENT_WT_DIRTY, "worktree has uncommitted changes (use force)");
    }
    if (!force && git_worktree_is_locked(NULL, op->wt) > 0) {
        return s_fail(op, AGENT_WT_CONFLICT, "worktree is locked (use force)");
    }
    if (valid && !s_path_is_ours(op->wt, id)) {
        return s_fail(op, AGENT_WT_ERROR, "worktree path does not end in its id; not removing");
    }
    git_worktree_prune_options opts;
    git_worktree_prune_options_init(&opts, GIT_WORKTREE_PRUNE_OPTIONS_VERSION);
    opts.flags = (valid ? GIT_WORKTREE_PRUNE_VALID | GIT_WORKTREE_PRUNE_WORKING_TREE : 0) |
                 (force ? GIT_WORKTREE_PRUNE_LOCKED : 0);
    if (git_worktree_prune(op->wt, &opts) != 0) {
        return s_fail(op, AGENT_WT_ERROR, "cannot prune the worktree");
    }
    return AGENT_WT_OK;
}

agent_wt_status_t
agent_worktree_remove(const char *repo_path, const char *id, bool force, char *err, size_t err_len)
{
    agent_wt_op_t op;
    agent_wt_status_t st = s_op_begin(&op, repo_path, err, err_len);
    if (st == AGENT_WT_OK) {
        st = s_lookup(&op, id);
    }
    if (st == AGENT_WT_OK) {
        st = s_prune(&op, id, force);
    }
    if (st == AGENT_WT_OK) {
        LOG_I("worktree removed id=%s force=%d", id, (int)force);
    }
    s_op_end(&op);
    return st;
}

bool agent_worktree_active(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return false;
    }
    git_libgit2_init();
    git_repository *repo = NULL;
    bool ok = git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) == 0;
    git_repository_free(repo);
    git_libgit2_shutdown();
    return ok;
}

int agent_worktree_head(const char *path,
                        char out[AGENT_WT_OID_HEXLEN + 1],
                        char *branch,
                        size_t branch_len)
{
    out[0] = '\0';
    if (branch && branch_len > 0) {
        branch[0] = '\0';
    }
    git_libgit2_init();
    git_repository *repo = NULL;
    git_reference *head = NULL;
    int rc = -1;
    if (path && git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) == 0 &&
        git_repository_head(&head, repo) == 0 && git_reference_target(head)) {
        git_oid_tostr(out, AGENT_WT_OID_HEXLEN + 1, git_reference_target(head));
        if (branch && branch_len > 0 && git_reference_is_branch(head)) {
            s_copy(branch, branch_len, git_reference_shorthand(head));
        }
        rc = 0;
    }
    git_reference_free(head);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}
