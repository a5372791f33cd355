/*  agent_worktree_internal — shared by agent_worktree.c and
    agent_worktree_base.c only: the team-confined base resolution, which
    needs libgit2 types the public header does not show. Pool workers only. */
#ifndef BICKY_AGENT_WORKTREE_INTERNAL_H
#define BICKY_AGENT_WORKTREE_INTERNAL_H

#include "node/agent/agent_worktree.h"

#include <git2.h>

#define AGENT_WT_TEAM_REFS_MAX 4096 /* team branches looked at for reachability, at most */

/* Resolves base for team (see agent_worktree_create): "" or "HEAD", the
   name of HEAD's branch, a branch of the team's namespace, or a full commit
   id reachable from HEAD or a team branch. On AGENT_WT_OK *out is a new
   commit (caller frees); otherwise *why says why. Never uses revparse, so no
   `:/text` search, reflog or abbreviated id reaches another team's commits.
   Blocking. */
agent_wt_status_t agent_wt_team_base(
    git_repository *repo, const char *team, const char *base, git_commit **out, const char **why);

#endif
