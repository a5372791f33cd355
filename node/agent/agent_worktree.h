/*  agent_worktree — git worktrees of the configured repository through
    libgit2 (never the git command line): create a branch and its worktree,
    list, inspect, remove (prune). Every function except agent_branch_valid
    and agent_worktree_id_valid blocks on the filesystem: call them on an
    agent_pool worker. Thread-safe: each call opens its own repository. */
#ifndef BICKY_AGENT_WORKTREE_H
#define BICKY_AGENT_WORKTREE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define AGENT_BRANCH_MAX    200     /* longest branch name, in bytes */
#define AGENT_WT_ID_MAX     64      /* longest worktree id */
#define AGENT_WT_REF_MAX    256     /* longest base ref */
#define AGENT_WT_OID_HEXLEN 40      /* a SHA-1 commit id in hex */
#define AGENT_TEAM_NS       "team/" /* a team's branches live under refs/heads/team/<team id>/ */
#define AGENT_TEAM_NS_MAX   (5 + AGENT_WT_ID_MAX + 1) /* longest "team/<team id>/" prefix */

/* Outcome of a worktree operation; agent_worktree_http_status maps it. */
typedef enum {
    AGENT_WT_OK = 0,         /* done */
    AGENT_WT_INVALID = -1,   /* bad id, branch name or base ref (400) */
    AGENT_WT_CONFLICT = -2,  /* branch, worktree or directory exists (409) */
    AGENT_WT_NOT_FOUND = -3, /* no such worktree or base ref (404) */
    AGENT_WT_DIRTY = -4,     /* uncommitted changes and no force (409) */
    AGENT_WT_ERROR = -5      /* repository or filesystem failure (503) */
} agent_wt_status_t;

/* What to create. All strings borrowed. */
typedef struct {
    const char *repo_path;     /* the configured repository (BICKY_REPO) */
    const char *worktrees_dir; /* parent of the worktree directories (created if missing) */
    const char *id;            /* worktree id: directory name and libgit2 name */
    const char *branch;        /* new branch, validated by agent_branch_valid */
    const char *base_ref;      /* commit-ish to branch from; NULL or "" for HEAD */
    const char *team;          /* team id: branch and base live in its namespace (NULL: none) */
} agent_worktree_spec_t;

/* A worktree as libgit2 sees it. */
typedef struct {
    char id[AGENT_WT_ID_MAX + 1];                          /* libgit2 worktree name */
    char branch[AGENT_TEAM_NS_MAX + AGENT_BRANCH_MAX + 1]; /* checked-out branch ("" when
                                                               detached; create: the team's name) */
    char path[PATH_MAX];                                   /* working directory */
    char base_ref[AGENT_WT_REF_MAX + 1]; /* base asked for at create ("" otherwise) */
    char head[AGENT_WT_OID_HEXLEN + 1];  /* HEAD commit ("" when unknown) */
    bool active;                         /* the directory exists and is a valid worktree */
} agent_worktree_info_t;

/* Initialises libgit2 for the process and turns its owner check off
   (DEPS.md §8: the repository may belong to another uid). Call once from
   main before any worker starts; pairs with agent_worktree_global_shutdown.
   Returns 0 or -1. */
int agent_worktree_global_init(void);
void agent_worktree_global_shutdown(void);

/* True when name is a valid new branch name: the rules of
   `git check-ref-format --branch` (no space, control character, DEL, `~^:?*[\`,
   `..`, `@{`, `//`; no leading `-` or `/`; no trailing `/`, `.` or `.lock`;
   no component starting with `.` or ending with `.lock`), and also not `@`
   or `HEAD`, and at most AGENT_BRANCH_MAX bytes. On false, why (may be NULL)
   receives the reason. Pure; any thread. */
bool agent_branch_valid(const char *name, char *why, size_t why_len);

/* Writes the repository's name of a team's branch, AGENT_TEAM_NS "<team>/<name>", into out
   (name itself when team is NULL or ""). Returns 0, or -1 when team is not a valid id
   (agent_worktree_id_valid) or out is too small. Pure; any thread. */
int agent_branch_to_repo(const char *team, const char *name, char *out, size_t out_len);

/* The team's name of a repository branch (repo_branch without its AGENT_TEAM_NS "<team>/"
   prefix), or NULL when the branch is not in team's namespace. Returns a pointer into
   repo_branch (borrowed). Pure; any thread. */
const char *agent_branch_from_repo(const char *team, const char *repo_branch);

/* True when id is 1..AGENT_WT_ID_MAX characters of [A-Za-z0-9_-] (a UUID
   fits): it becomes a directory name. Pure; any thread. */
bool agent_worktree_id_valid(const char *id);

/* Creates branch spec->branch at spec->base_ref and a worktree named
   spec->id checking it out in worktrees_dir/id. With spec->team, the branch is
   made in the team's namespace (agent_branch_to_repo) and the base must be HEAD
   or "" (the repository's HEAD), the name of HEAD's branch, one of the team's
   branches, or a full commit id reachable from one of those; anything else is
   AGENT_WT_NOT_FOUND (another team's branches and commits are invisible), or
   AGENT_WT_INVALID when it is no branch name at all (`a~1`, `HEAD:x`). Refuses an existing branch,
   worktree name or directory (AGENT_WT_CONFLICT) without changing anything;
   a failure after the branch was made deletes it again. Fills *out. err
   (may be NULL) receives a message. Blocking. */
agent_wt_status_t agent_worktree_create(const agent_worktree_spec_t *spec,
                                        agent_worktree_info_t *out,
                                        char *err,
                                        size_t err_len);

/* Fills *out for worktree id of repo_path; an inactive worktree (directory
   gone) still reports its path and, when libgit2 can read it, its head.
   Blocking. */
agent_wt_status_t agent_worktree_get(
    const char *repo_path, const char *id, agent_worktree_info_t *out, char *err, size_t err_len);

/* Lists the worktrees of repo_path into a new array *out of *count items
   (caller frees *out; NULL when there are none). Blocking. */
agent_wt_status_t
agent_worktree_list(const char *repo_path, agent_worktree_info_t **out, size_t *count);

/* Removes worktree id: refuses uncommitted changes or untracked files
   without force (AGENT_WT_DIRTY), then prunes it, deleting its directory. A
   worktree whose directory vanished is pruned too. The branch stays. */
agent_wt_status_t
agent_worktree_remove(const char *repo_path, const char *id, bool force, char *err, size_t err_len);

/* True when path is an existing directory that opens as a git repository
   (a worktree whose directory vanished is inactive). Blocking. */
bool agent_worktree_active(const char *path);

/* Writes the hex HEAD commit of the repository or worktree at path into out
   and its branch short name into branch (may be NULL; "" when detached).
   Returns 0 or -1. Blocking. */
int agent_worktree_head(const char *path,
                        char out[AGENT_WT_OID_HEXLEN + 1],
                        char *branch,
                        size_t branch_len);

/* The HTTP status of a result: 200, 400, 409, 404, 409, 503. */
int agent_worktree_http_status(agent_wt_status_t status);

/* API.md's Worktree resource without created_at (the node adds it from its
   row): {"id","branch","path","base_ref","head","status"}. Returns a new
   object (caller decrefs). */
json_t *agent_worktree_info_json(const agent_worktree_info_t *info);

#endif
