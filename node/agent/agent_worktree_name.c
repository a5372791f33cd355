/*  agent_worktree_name — the pure parts of agent_worktree: branch name and id
    validation (git check-ref-format --branch rules, checked byte by byte,
    before any name reaches libgit2), the HTTP mapping and the JSON form.
    No I/O; any thread. */
#include "node/agent/agent_worktree.h"

#include <stdio.h>
#include <string.h>

/* Why name is not a valid branch name, or NULL when it is. */
static const char *s_branch_problem(const char *name)
{
    if (!name || name[0] == '\0') {
        return "branch name is empty";
    }
    size_t len = strnlen(name, AGENT_BRANCH_MAX + 1);
    if (len > AGENT_BRANCH_MAX) {
        return "branch name is too long";
    }
    if (name[0] == '-') {
        return "branch name must not start with '-'";
    }
    if (strcmp(name, "@") == 0 || strcmp(name, "HEAD") == 0) {
        return "branch name is reserved";
    }
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            return "branch name must not contain control characters";
        }
        if (strchr(" ~^:?*[\\", c)) {
            return "branch name must not contain spaces or any of ~ ^ : ? * [ \\";
        }
        if ((c == '.' && p[1] == '.') || (c == '@' && p[1] == '{')) {
            return "branch name must not contain '..' or '@{'";
        }
    }
    for (const char *p = name;;) {
        const char *end = strchrnul(p, '/');
        size_t clen = (size_t)(end - p);
        if (clen == 0) {
            return "branch name must not have a leading, trailing or double '/'";
        }
        if (p[0] == '.') {
            return "no part of a branch name may start with '.'";
        }
        if (clen >= 5 && memcmp(end - 5, ".lock", 5) == 0) {
            return "no part of a branch name may end with '.lock'";
        }
        if (*end == '\0') {
            break;
        }
        p = end + 1;
    }
    if (name[len - 1] == '.') {
        return "branch name must not end with '.'";
    }
    return NULL;
}

bool agent_branch_valid(const char *name, char *why, size_t why_len)
{
    const char *problem = s_branch_problem(name);
    if (problem && why && why_len > 0) {
        snprintf(why, why_len, "%s", problem);
    }
    return problem == NULL;
}

int agent_branch_to_repo(const char *team, const char *name, char *out, size_t out_len)
{
    if (!team || team[0] == '\0') {
        int n = snprintf(out, out_len, "%s", name ? name : "");
        return n >= 0 && (size_t)n < out_len ? 0 : -1;
    }
    if (!agent_worktree_id_valid(team)) {
        return -1;
    }
    int n = snprintf(out, out_len, AGENT_TEAM_NS "%s/%s", team, name ? name : "");
    return n >= 0 && (size_t)n < out_len ? 0 : -1;
}

const char *agent_branch_from_repo(const char *team, const char *repo_branch)
{
    size_t ns = strlen(AGENT_TEAM_NS);
    if (!team || !repo_branch || !agent_worktree_id_valid(team) ||
        strncmp(repo_branch, AGENT_TEAM_NS, ns) != 0) {
        return NULL;
    }
    size_t tlen = strlen(team);
    const char *rest = repo_branch + ns;
    if (strncmp(rest, team, tlen) != 0 || rest[tlen] != '/' || rest[tlen + 1] == '\0') {
        return NULL;
    }
    return rest + tlen + 1;
}

bool agent_worktree_id_valid(const char *id)
{
    if (!id || id[0] == '\0' || id[0] == '-') {
        return false;
    }
    size_t len = strnlen(id, AGENT_WT_ID_MAX + 1);
    if (len > AGENT_WT_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int agent_worktree_http_status(agent_wt_status_t status)
{
    switch (status) {
        case AGENT_WT_OK:
            return 200;
        case AGENT_WT_INVALID:
            return 400;
        case AGENT_WT_CONFLICT:
        case AGENT_WT_DIRTY:
            return 409;
        case AGENT_WT_NOT_FOUND:
            return 404;
        case AGENT_WT_ERROR:
        default:
            return 503;
    }
}

json_t *agent_worktree_info_json(const agent_worktree_info_t *info)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s}", "id", info->id, "branch", info->branch,
                     "path", info->path, "base_ref", info->base_ref[0] ? info->base_ref : NULL,
                     "head", info->head[0] ? info->head : NULL, "status",
                     info->active ? "active" : "inactive");
}
