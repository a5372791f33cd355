/*  agent_tool_grep — POSIX extended regular expression search below a path
    of the worktree. The walk opens every directory with O_NOFOLLOW relative
    to its parent, never follows symlinks, skips .git and binary files, and
    stops at the result, file, size and time caps. Worker threads only. */
#include "common/util.h"
#include "node/agent/agent_tool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AGENT_GREP_MAX_PATTERN 1024   /* longest pattern */
#define AGENT_GREP_MAX_DEPTH   64     /* directories deep */
#define AGENT_GREP_MAX_DIRENTS 100000 /* names read from one directory */
#define AGENT_GREP_PROBE       8192   /* bytes checked for NUL (binary) */

/* State of one grep call. */
typedef struct {
    const agent_tool_limits_t *limits; /* caps */
    regex_t re;                        /* the compiled pattern */
    json_t *matches;                   /* array of {path, line, text} */
    size_t max_results;                /* the call's result cap */
    size_t files_searched;             /* text files read */
    size_t files_skipped;              /* binary, too large or unreadable */
    int64_t deadline_ms;               /* monotonic end of the time budget */
    bool truncated;                    /* stopped at max_results */
    bool stopped;                      /* stopped at the file or time cap */
} agent_grep_t;

static bool s_done(agent_grep_t *g)
{
    if (!g->stopped && util_mono_ms() > g->deadline_ms) {
        g->stopped = true;
    }
    return g->truncated || g->stopped;
}

static int s_add_match(agent_grep_t *g, const char *rel, int64_t line, const char *text)
{
    if (json_array_size(g->matches) >= g->max_results) {
        g->truncated = true;
        return -1;
    }
    size_t len = strlen(text);
    if (len > g->limits->grep_max_line) {
        len = g->limits->grep_max_line;
    }
    json_t *m = json_pack("{s:o, s:I, s:o}", "path", agent_json_text(rel, strlen(rel)), "line",
                          (json_int_t)line, "text", agent_json_text(text, len));
    return json_array_append_new(g->matches, m);
}

/* Matches every line of buf (len bytes, NUL-terminated at len, writable). */
static void s_grep_buffer(agent_grep_t *g, const char *rel, char *buf, size_t len)
{
    int64_t line = 1;
    char *p = buf;
    while (p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        if (nl) {
            *nl = '\0';
        }
        if (regexec(&g->re, p, 0, NULL, 0) == 0 && s_add_match(g, rel, line, p) != 0) {
            return;
        }
        if (!nl || ((line & 1023) == 0 && s_done(g))) {
            return;
        }
        p = nl + 1;
        line++;
    }
}

/* Reads the whole of fd (size bytes) into a new NUL-terminated buffer. */
static char *s_slurp(int fd, size_t size, size_t *len)
{
    char *buf = malloc(size + 1);
    size_t used = 0;
    while (buf && used < size) {
        ssize_t n = read(fd, buf + used, size - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    if (buf) {
        buf[used] = '\0';
        *len = used;
    }
    return buf;
}

static void s_grep_file(agent_grep_t *g, int dirfd, const char *name, const char *rel)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > g->limits->grep_max_file_bytes) {
        g->files_skipped++;
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    if (g->files_searched + g->files_skipped >= g->limits->grep_max_files) {
        g->stopped = true;
        close(fd);
        return;
    }
    size_t len = 0;
    char *buf = s_slurp(fd, (size_t)st.st_size, &len);
    close(fd);
    if (!buf || memchr(buf, '\0', len < AGENT_GREP_PROBE ? len : AGENT_GREP_PROBE)) {
        g->files_skipped++;
        free(buf);
        return;
    }
    g->files_searched++;
    s_grep_buffer(g, rel, buf, len);
    free(buf);
}

static int s_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the names of directory fd (taking fd) sorted, without "." "..". */
static char **s_sorted_names(int fd, size_t *n)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return NULL;
    }
    size_t cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *de;
    *n = 0;
    while (names && *n < AGENT_GREP_MAX_DIRENTS && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (*n == cap) {
            cap *= 2;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                break;
            }
            names = grown;
        }
        if ((names[*n] = strdup(de->d_name)) == NULL) {
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (names) {
        qsort(names, *n, sizeof *names, s_name_cmp);
    }
    return names;
}

static void s_grep_dir(agent_grep_t *g, int fd, char rel[PATH_MAX], int depth);

/* Visits entry name of directory dirfd; rel is the entry's path below the root. */
static void
s_grep_entry(agent_grep_t *g, int dirfd, const char *name, char rel[PATH_MAX], int depth)
{
    struct stat st;
    if (strcmp(name, ".git") == 0 || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return;
    }
    if (S_ISREG(st.st_mode)) {
        s_grep_file(g, dirfd, name, rel);
    } else if (S_ISDIR(st.st_mode) && depth < AGENT_GREP_MAX_DEPTH) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            s_grep_dir(g, fd, rel, depth + 1);
        }
    }
}

/* Searches directory fd (taken) whose path below the root is rel ("" for
   the root); rel is extended in place and restored. */
static void s_grep_dir(agent_grep_t *g, int fd, char rel[PATH_MAX], int depth)
{
    int walk_fd = dup(fd);
    size_t n = 0;
    char **names = s_sorted_names(fd, &n);
    size_t base = strlen(rel);
    for (size_t i = 0; names && walk_fd >= 0 && i < n && !s_done(g); i++) {
        int w = snprintf(rel + base, PATH_MAX - base, "%s%s", base ? "/" : "", names[i]);
        if (w > 0 && (size_t)w < PATH_MAX - base) {
            s_grep_entry(g, walk_fd, names[i], rel, depth);
        }
        rel[base] = '\0';
    }
    for (size_t i = 0; names && i < n; i++) {
        free(names[i]);
    }
    free(names);
    if (walk_fd >= 0) {
        close(walk_fd);
    }
}

static int s_grep_compile(agent_tool_ctx_t *ctx, agent_grep_t *g)
{
    const char *pattern;
    size_t len;
    if (agent_arg_string(ctx, "pattern", true, &pattern, &len) != 0) {
        return -1;
    }
    if (len == 0 || len > AGENT_GREP_MAX_PATTERN) {
        return agent_tool_fail(ctx, "pattern must be 1 to %d bytes", AGENT_GREP_MAX_PATTERN);
    }
    json_t *icase = json_object_get(ctx->args, "ignore_case");
    if (icase && !json_is_boolean(icase) && !json_is_null(icase)) {
        return agent_tool_fail(ctx, "argument \"ignore_case\" must be a boolean");
    }
    int flags = REG_EXTENDED | REG_NEWLINE | (json_is_true(icase) ? REG_ICASE : 0);
    int rc = regcomp(&g->re, pattern, flags);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &g->re, msg, sizeof msg);
        return agent_tool_fail(ctx, "invalid pattern: %s", msg);
    }
    return 0;
}

/* Searches the start path: a directory is walked, a file is searched. */
static int s_grep_start(agent_tool_ctx_t *ctx, agent_grep_t *g, const char *path)
{
    char name[NAME_MAX + 1];
    char rel[PATH_MAX];
    const char *start = agent_path_rel(ctx->root_real, path);
    snprintf(rel, sizeof rel, "%s", strcmp(start, ".") == 0 ? "" : start);
    int dirfd = agent_path_open_parent(ctx->root_real, path, false, name);
    struct stat st;
    if (dirfd < 0 || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        int err = errno;
        if (dirfd >= 0) {
            close(dirfd);
        }
        return agent_tool_fail(ctx, "cannot search %s: %s", start, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            s_grep_dir(g, fd, rel, 0);
        }
    } else if (S_ISREG(st.st_mode)) {
        s_grep_file(g, dirfd, name, rel);
    }
    close(dirfd);
    return 0;
}

int agent_tool_grep(agent_tool_ctx_t *ctx)
{
    agent_grep_t g = {.limits = ctx->limits};
    char path[PATH_MAX];
    int64_t max;
    if (agent_arg_path(ctx, "path", ".", false, path) != 0 ||
        agent_arg_int(ctx, "max_results", (int64_t)ctx->limits->grep_max_results, 1,
                      (int64_t)ctx->limits->grep_max_results, &max) != 0 ||
        s_grep_compile(ctx, &g) != 0) {
        return -1;
    }
    g.max_results = (size_t)max;
    g.deadline_ms = util_mono_ms() + (int64_t)ctx->limits->grep_timeout_s * 1000;
    g.matches = json_array();
    int rc = g.matches ? s_grep_start(ctx, &g, path) : agent_tool_fail(ctx, "out of memory");
    regfree(&g.re);
    if (rc != 0) {
        json_decref(g.matches);
        return -1;
    }
    *ctx->result = json_pack("{s:o, s:I, s:b, s:I, s:I, s:b}", "matches", g.matches, "count",
                             (json_int_t)json_array_size(g.matches), "truncated", g.truncated,
                             "files_searched", (json_int_t)g.files_searched, "files_skipped",
                             (json_int_t)g.files_skipped, "stopped_early", g.stopped);
    return 0;
}
