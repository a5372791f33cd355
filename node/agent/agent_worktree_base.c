/*  agent_worktree_base — the base of a team's new branch. The repository is
    shared, so a team's base is looked up by name in its own namespace (or
    is the repository's HEAD), and a commit id must be reachable from there:
    another team's branches and commits answer "not found", as if they did
    not exist. Blocking: agent_pool workers only. */
#include "node/agent/agent_worktree_internal.h"

#include <stdlib.h>
#include <string.h>

/* The commit a reference points to (peeled), or -1. */
static int s_ref_commit(git_repository *repo, const char *refname, git_commit **out)
{
    git_reference *ref = NULL;
    git_object *obj = NULL;
    int rc = git_reference_lookup(&ref, repo, refname);
    if (rc == 0) {
        rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
    }
    git_reference_free(ref);
    *out = rc == 0 ? (git_commit *)obj : NULL;
    return rc == 0 ? 0 : -1;
}

/* True when base names HEAD's branch, which every team shares (not a team's). */
static bool s_is_head_branch(git_repository *repo, const char *base)
{
    git_reference *head = NULL;
    bool same = false;
    if (git_repository_head(&head, repo) == 0 && git_reference_is_branch(head)) {
        const char *name = git_reference_shorthand(head);
        same = strcmp(name, base) == 0 && strncmp(name, AGENT_TEAM_NS, strlen(AGENT_TEAM_NS)) != 0;
    }
    git_reference_free(head);
    return same;
}

/* Collects HEAD and the team's branch tips into tips (at most cap). */
static size_t s_team_tips(git_repository *repo, const char *team, git_oid *tips, size_t cap)
{
    size_t n = 0;
    git_oid oid;
    if (git_reference_name_to_id(&oid, repo, "HEAD") == 0) {
        tips[n++] = oid;
    }
    char glob[AGENT_TEAM_NS_MAX + 16];
    snprintf(glob, sizeof glob, "refs/heads/" AGENT_TEAM_NS "%s/*", team);
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    if (git_reference_iterator_glob_new(&it, repo, glob) != 0) {
        return n;
    }
    while (n < cap && git_reference_next(&ref, it) == 0) {
        git_object *obj = NULL;
        if (git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) == 0) {
            tips[n++] = *git_object_id(obj);
        }
        git_object_free(obj);
        git_reference_free(ref);
    }
    git_reference_iterator_free(it);
    return n;
}

/* A full commit id, if reachable from HEAD or one of the team's branches. */
static int
s_reachable_commit(git_repository *repo, const char *team, const char *hex, git_commit **out)
{
    git_oid oid;
    *out = NULL;
    if (strlen(hex) != AGENT_WT_OID_HEXLEN || git_oid_fromstr(&oid, hex) != 0 ||
        git_commit_lookup(out, repo, &oid) != 0) {
        return -1;
    }
    git_oid *tips = calloc(AGENT_WT_TEAM_REFS_MAX + 1, sizeof *tips);
    size_t n = tips ? s_team_tips(repo, team, tips, AGENT_WT_TEAM_REFS_MAX + 1) : 0;
    bool ok = false;
    for (size_t i = 0; i < n && !ok; i++) {
        ok = git_oid_equal(&tips[i], &oid);
    }
    ok = ok || (n > 0 && git_graph_reachable_from_any(repo, &oid, tips, n) == 1);
    free(tips);
    if (!ok) {
        git_commit_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

agent_wt_status_t agent_wt_team_base(
    git_repository *repo, const char *team, const char *base, git_commit **out, const char **why)
{
    *out = NULL;
    if (!base || base[0] == '\0' || strcmp(base, "HEAD") == 0) {
        *why = "the repository has no HEAD commit";
        return s_ref_commit(repo, "HEAD", out) == 0 ? AGENT_WT_OK : AGENT_WT_NOT_FOUND;
    }
    if (!agent_branch_valid(base, NULL, 0)) {
        *why = "base must be HEAD, one of the team's branches or a full commit id";
        return AGENT_WT_INVALID;
    }
    char refname[AGENT_TEAM_NS_MAX + AGENT_BRANCH_MAX + 16] = "refs/heads/";
    size_t pre = strlen(refname);
    if (agent_branch_to_repo(team, base, refname + pre, sizeof refname - pre) == 0 &&
        s_ref_commit(repo, refname, out) == 0) {
        return AGENT_WT_OK;
    }
    if (s_is_head_branch(repo, base) && s_ref_commit(repo, "HEAD", out) == 0) {
        return AGENT_WT_OK;
    }
    if (s_reachable_commit(repo, team, base, out) == 0) {
        return AGENT_WT_OK;
    }
    *why = "base ref not found";
    return AGENT_WT_NOT_FOUND;
}
