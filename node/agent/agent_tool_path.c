/*  agent_tool_path — confinement of tool paths to the worktree. Resolution
    (realpath plus a separator-aware prefix check) decides what a path names;
    opening then walks down from the root with O_NOFOLLOW at every component,
    so nothing that changed in between can lead outside. Any thread. */
#include "node/agent/agent_tool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* True when path is root itself or below root + "/": "/w/tree2" is not
   inside "/w/tree". Both are real paths without a trailing slash. */
static bool s_inside(const char *root, const char *path)
{
    size_t n = strlen(root);
    if (strncmp(path, root, n) != 0) {
        return false;
    }
    return path[n] == '\0' || path[n] == '/';
}

static const char *s_errno_why(int err)
{
    switch (err) {
        case ENOENT:
            return "no such file or directory";
        case ENOTDIR:
            return "a component of the path is not a directory";
        case ENAMETOOLONG:
            return "path is too long";
        case ELOOP:
            return "too many levels of symbolic links";
        case EACCES:
            return "permission denied";
        default:
            return "cannot resolve the path";
    }
}

/* Appends the components of tail (relative, possibly with "." and empty
   components) to out, refusing "..": nothing below a missing directory can
   be a symlink, so only ".." could lead elsewhere. */
static int s_append_missing(char out[PATH_MAX], const char *tail, const char **why)
{
    size_t used = strlen(out);
    const char *p = tail;
    while (*p) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            *why = "path is outside the worktree";
            return -1;
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (len > NAME_MAX || used + 1 + len >= PATH_MAX) {
                *why = "path is too long";
                return -1;
            }
            out[used++] = '/';
            memcpy(out + used, p, len);
            used += len;
            out[used] = '\0';
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* For a target that does not resolve: finds the deepest ancestor of joined
   that does, checks it is inside root_real, and appends the rest. tail_start
   is the offset of the user's part in joined. Returns 0 with out set, -1 with
   *why set. */
static int s_resolve_missing(
    const char *root_real, char *joined, size_t tail_start, char out[PATH_MAX], const char **why)
{
    size_t cut = strlen(joined);
    while (true) {
        while (cut > tail_start && joined[cut - 1] != '/') {
            cut--;
        }
        if (cut <= tail_start) {
            /* Only the root itself is left, and it resolves. */
            cut = tail_start;
            break;
        }
        joined[cut - 1] = '\0';
        char *base = realpath(joined, out);
        joined[cut - 1] = '/';
        if (base) {
            break;
        }
        if (errno != ENOENT) {
            *why = s_errno_why(errno);
            return -1;
        }
        cut--;
    }
    if (cut == tail_start) {
        strcpy(out, root_real);
    }
    if (!s_inside(root_real, out)) {
        *why = "path is outside the worktree";
        return -1;
    }
    return s_append_missing(out, joined + cut, why);
}

int agent_path_resolve(
    const char *root, const char *user_path, bool for_create, char out[PATH_MAX], const char **why)
{
    *why = NULL;
    if (!user_path || user_path[0] == '\0') {
        *why = "path is empty";
        return -1;
    }
    if (strnlen(user_path, AGENT_TOOL_MAX_USER_PATH + 1) > AGENT_TOOL_MAX_USER_PATH) {
        *why = "path is too long";
        return -1;
    }
    if (user_path[0] == '/') {
        *why = "absolute paths are not allowed: give a path relative to the worktree";
        return -1;
    }
    char root_real[PATH_MAX];
    if (!root || !realpath(root, root_real) || strcmp(root_real, "/") == 0) {
        *why = "the worktree is not available";
        return -1;
    }
    char joined[PATH_MAX];
    int n = snprintf(joined, sizeof joined, "%s/%s", root_real, user_path);
    if (n < 0 || (size_t)n >= sizeof joined) {
        *why = "path is too long";
        return -1;
    }
    if (realpath(joined, out)) {
        if (!s_inside(root_real, out)) {
            *why = "path is outside the worktree";
            return -1;
        }
        return 0;
    }
    int err = errno;
    if (err != ENOENT) {
        *why = s_errno_why(err);
        return -1;
    }
    /* Decide "outside" before "missing" either way, so that a refused path
       never tells whether something exists outside the worktree. */
    if (s_resolve_missing(root_real, joined, strlen(root_real) + 1, out, why) != 0) {
        return -1;
    }
    if (!for_create) {
        *why = "no such file or directory";
        return -1;
    }
    return 0;
}

const char *agent_path_rel(const char *root_real, const char *resolved)
{
    size_t n = strlen(root_real);
    const char *rel = resolved + n;
    while (*rel == '/') {
        rel++;
    }
    return *rel ? rel : ".";
}

/* Opens (or with mkdirs creates then opens) directory comp below dirfd,
   never following a symlink. */
static int s_open_dir_at(int dirfd, const char *comp, bool mkdirs)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dirfd, comp, flags);
    if (fd < 0 && errno == ENOENT && mkdirs) {
        if (mkdirat(dirfd, comp, 0755) != 0 && errno != EEXIST) {
            return -1;
        }
        fd = openat(dirfd, comp, flags);
    }
    return fd;
}

int agent_path_open_parent(const char *root_real,
                           const char *resolved,
                           bool mkdirs,
                           char name[NAME_MAX + 1])
{
    if (!s_inside(root_real, resolved)) {
        errno = EPERM;
        return -1;
    }
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", agent_path_rel(root_real, resolved));
    int fd = open(root_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *comp = rel;
    char *slash;
    while (fd >= 0 && (slash = strchr(comp, '/')) != NULL) {
        *slash = '\0';
        int next = s_open_dir_at(fd, comp, mkdirs);
        int err = errno;
        close(fd);
        errno = err;
        fd = next;
        comp = slash + 1;
    }
    if (fd < 0) {
        return -1;
    }
    if (strlen(comp) > NAME_MAX) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(name, comp);
    return fd;
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0 when
   the bytes there are not one (overlong forms and surrogates included). */
static size_t s_utf8_seq(const unsigned char *s, size_t avail)
{
    size_t len;
    if (s[0] >= 0x01 && s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
    } else {
        return 0;
    }
    if (len > avail) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)) {
        return 0;
    }
    return len;
}

json_t *agent_json_text(const char *buf, size_t len)
{
    /* Each bad byte becomes 3 bytes (U+FFFD). */
    char *clean = malloc(len * 3 + 1);
    if (!clean) {
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)buf;
    size_t used = 0;
    for (size_t i = 0; i < len;) {
        size_t seq = s_utf8_seq(s + i, len - i);
        if (seq == 0) {
            memcpy(clean + used, "\xEF\xBF\xBD", 3);
            used += 3;
            i++;
            continue;
        }
        memcpy(clean + used, s + i, seq);
        used += seq;
        i += seq;
    }
    json_t *str = json_stringn_nocheck(clean, used);
    free(clean);
    return str;
}
