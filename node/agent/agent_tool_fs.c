/*  agent_tool_fs — read_file, write_file and list_directory. Every path goes
    through agent_arg_path (resolution and the inside-root check) and every
    open through agent_path_open_parent (O_NOFOLLOW walk from the root).
    Blocking file I/O: worker threads only. */
#include "node/agent/agent_tool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes examined for a NUL byte to call a file binary. */
#define AGENT_BINARY_PROBE 8192

/* Opens resolved (inside ctx->root_real) without following a symlink at any
   component. Returns an fd or -1 with the failure reported to the model. */
static int s_open_confined(agent_tool_ctx_t *ctx, const char *resolved, int flags)
{
    char name[NAME_MAX + 1];
    int dirfd = agent_path_open_parent(ctx->root_real, resolved, false, name);
    int fd = dirfd < 0 ? -1 : openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    int err = errno;
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (fd < 0) {
        return agent_tool_fail(ctx, "cannot open %s: %s", agent_path_rel(ctx->root_real, resolved),
                               err == ELOOP ? "symbolic link refused" : strerror(err));
    }
    return fd;
}

/* The slice of a file read_file returns. */
typedef struct {
    char *buf;          /* bytes returned */
    size_t len;         /* used bytes of buf */
    size_t cap;         /* read_max_bytes */
    int64_t line;       /* current line number (1-based) */
    int64_t offset;     /* first line wanted */
    int64_t limit;      /* lines wanted */
    int64_t lines;      /* lines copied (a last partial line counts) */
    bool truncated;     /* more bytes follow what was returned */
    bool at_line_start; /* the last copied byte ended a line */
} agent_slice_t;

/* Feeds n bytes; returns false once the slice is full. */
static bool s_slice_feed(agent_slice_t *s, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s->line < s->offset) {
            s->line += data[i] == '\n';
            continue;
        }
        if (s->lines >= s->limit || s->len >= s->cap) {
            s->truncated = true;
            return false;
        }
        s->buf[s->len++] = data[i];
        s->at_line_start = data[i] == '\n';
        if (s->at_line_start) {
            s->lines++;
            s->line++;
        }
    }
    return true;
}

static int s_read_slice(agent_tool_ctx_t *ctx, int fd, agent_slice_t *s)
{
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return agent_tool_fail(ctx, "read failed: %s", strerror(errno));
        }
        if (!s_slice_feed(s, chunk, (size_t)n)) {
            break;
        }
    }
    if (s->len > 0 && !s->at_line_start) {
        s->lines++;
    }
    return 0;
}

static bool s_is_binary(int fd)
{
    char probe[AGENT_BINARY_PROBE];
    ssize_t n = pread(fd, probe, sizeof probe, 0);
    return n > 0 && memchr(probe, '\0', (size_t)n) != NULL;
}

static int s_check_regular(agent_tool_ctx_t *ctx, int fd, const char *rel, struct stat *st)
{
    if (fstat(fd, st) != 0) {
        return agent_tool_fail(ctx, "cannot stat %s: %s", rel, strerror(errno));
    }
    if (S_ISDIR(st->st_mode)) {
        return agent_tool_fail(ctx, "%s is a directory (use list_directory)", rel);
    }
    if (!S_ISREG(st->st_mode)) {
        return agent_tool_fail(ctx, "%s is not a regular file", rel);
    }
    if (s_is_binary(fd)) {
        return agent_tool_fail(ctx, "%s is a binary file", rel);
    }
    return 0;
}

int agent_tool_read_file(agent_tool_ctx_t *ctx)
{
    char path[PATH_MAX];
    agent_slice_t s = {.cap = ctx->limits->read_max_bytes, .line = 1, .at_line_start = true};
    if (agent_arg_path(ctx, "path", NULL, false, path) != 0 ||
        agent_arg_int(ctx, "offset", 1, 1, INT64_MAX, &s.offset) != 0 ||
        agent_arg_int(ctx, "limit", (int64_t)ctx->limits->read_max_lines, 1,
                      (int64_t)ctx->limits->read_max_lines, &s.limit) != 0) {
        return -1;
    }
    const char *rel = agent_path_rel(ctx->root_real, path);
    int fd = s_open_confined(ctx, path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        return -1;
    }
    struct stat st;
    int rc = s_check_regular(ctx, fd, rel, &st);
    s.buf = rc == 0 ? malloc(s.cap ? s.cap : 1) : NULL;
    if (rc == 0 && !s.buf) {
        rc = agent_tool_fail(ctx, "out of memory");
    }
    if (rc == 0) {
        rc = s_read_slice(ctx, fd, &s);
    }
    close(fd);
    if (rc == 0) {
        *ctx->result = json_pack("{s:s, s:o, s:I, s:I, s:I, s:b}", "path", rel, "content",
                                 agent_json_text(s.buf, s.len), "offset", (json_int_t)s.offset,
                                 "lines", (json_int_t)s.lines, "size", (json_int_t)st.st_size,
                                 "truncated", s.truncated);
    }
    free(s.buf);
    return rc;
}

/* Refuses writes into .git (a worktree's .git names its git directory, and
   hooks there would run outside any confinement). */
static bool s_touches_git(const char *rel)
{
    const char *p = rel;
    while (*p) {
        const char *end = strchrnul(p, '/');
        if (end - p == 4 && strncasecmp(p, ".git", 4) == 0) {
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

/* Writes content to a fresh temporary file in dirfd and renames it over
   name: an existing file is replaced, never written through, so a hard link
   to a file outside the tree cannot be used to change that file. */
static int s_replace_at(int dirfd, const char *name, const char *content, size_t len, mode_t mode)
{
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        rnd = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&rnd;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".bicky-write-%016llx", (unsigned long long)rnd);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, content + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        done += (size_t)n;
    }
    int err = done == len ? 0 : errno ? errno : EIO;
    if (err == 0 && fchmod(fd, mode) != 0) {
        err = errno;
    }
    if (close(fd) != 0 && err == 0) {
        err = errno;
    }
    if (err == 0 && renameat(dirfd, tmp, dirfd, name) != 0) {
        err = errno;
    }
    if (err != 0) {
        unlinkat(dirfd, tmp, 0);
        errno = err;
        return -1;
    }
    return 0;
}

/* Decides how name in dirfd may be written: sets *mode and *created, or
   reports why not. */
static int s_write_target(agent_tool_ctx_t *ctx,
                          int dirfd,
                          const char *name,
                          const char *rel,
                          mode_t *mode,
                          bool *created)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
            return agent_tool_fail(ctx, "cannot write %s: %s", rel, strerror(errno));
        }
        *mode = 0644;
        *created = true;
        return 0;
    }
    if (S_ISLNK(st.st_mode)) {
        return agent_tool_fail(ctx, "cannot write %s: symbolic link refused", rel);
    }
    if (!S_ISREG(st.st_mode)) {
        return agent_tool_fail(ctx, "cannot write %s: not a regular file", rel);
    }
    *mode = st.st_mode & 07777;
    *created = false;
    return 0;
}

int agent_tool_write_file(agent_tool_ctx_t *ctx)
{
    char path[PATH_MAX];
    const char *content;
    size_t len;
    if (agent_arg_string(ctx, "content", true, &content, &len) != 0 ||
        agent_arg_path(ctx, "path", NULL, true, path) != 0) {
        return -1;
    }
    if (len > ctx->limits->write_max_bytes) {
        return agent_tool_fail(ctx, "content is %zu bytes; the limit is %zu", len,
                               ctx->limits->write_max_bytes);
    }
    const char *rel = agent_path_rel(ctx->root_real, path);
    if (strcmp(rel, ".") == 0 || s_touches_git(rel)) {
        return agent_tool_fail(ctx, "writing %s is not allowed", rel);
    }
    if (agent_tool_disk_check(ctx, (long long)len, "the file was not written") != 0) {
        return -1;
    }
    char name[NAME_MAX + 1];
    int dirfd = agent_path_open_parent(ctx->root_real, path, true, name);
    if (dirfd < 0) {
        return agent_tool_fail(ctx, "cannot create the directories of %s: %s", rel,
                               errno == ELOOP ? "symbolic link refused" : strerror(errno));
    }
    mode_t mode = 0644;
    bool created = false;
    int rc = s_write_target(ctx, dirfd, name, rel, &mode, &created);
    if (rc == 0 && s_replace_at(dirfd, name, content, len, mode) != 0) {
        rc = agent_tool_fail(ctx, "cannot write %s: %s", rel, strerror(errno));
    }
    close(dirfd);
    if (rc == 0) {
        *ctx->result = json_pack("{s:s, s:I, s:b}", "path", rel, "bytes_written", (json_int_t)len,
                                 "created", created);
    }
    return rc;
}

/* One directory entry of list_directory. */
typedef struct {
    char *name;       /* entry name (owned) */
    const char *type; /* "file", "dir", "symlink" or "other" */
    int64_t size;     /* bytes (regular files), else 0 */
} agent_dirent_t;

static int s_dirent_cmp(const void *a, const void *b)
{
    return strcmp(((const agent_dirent_t *)a)->name, ((const agent_dirent_t *)b)->name);
}

static void s_dirent_fill(int dirfd, agent_dirent_t *e)
{
    struct stat st;
    e->type = "other";
    e->size = 0;
    if (fstatat(dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return;
    }
    if (S_ISREG(st.st_mode)) {
        e->type = "file";
        e->size = (int64_t)st.st_size;
    } else if (S_ISDIR(st.st_mode)) {
        e->type = "dir";
    } else if (S_ISLNK(st.st_mode)) {
        e->type = "symlink";
    }
}

/* Reads up to max entries of d into a new array (*out, count *n); *total
   counts every entry. */
static int s_read_dir(DIR *d, size_t max, agent_dirent_t **out, size_t *n, size_t *total)
{
    agent_dirent_t *items = calloc(max ? max : 1, sizeof *items);
    if (!items) {
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (*n < max) {
            items[*n].name = strdup(de->d_name);
            if (!items[*n].name) {
                break;
            }
            s_dirent_fill(dirfd(d), &items[(*n)++]);
        }
        (*total)++;
    }
    *out = items;
    return 0;
}

static json_t *s_dir_json(agent_dirent_t *items, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *e =
            json_pack("{s:o, s:s}", "name", agent_json_text(items[i].name, strlen(items[i].name)),
                      "type", items[i].type);
        if (e && strcmp(items[i].type, "file") == 0) {
            json_object_set_new(e, "size", json_integer(items[i].size));
        }
        json_array_append_new(arr, e);
    }
    return arr;
}

int agent_tool_list_directory(agent_tool_ctx_t *ctx)
{
    char path[PATH_MAX];
    if (agent_arg_path(ctx, "path", ".", false, path) != 0) {
        return -1;
    }
    const char *rel = agent_path_rel(ctx->root_real, path);
    int fd = s_open_confined(ctx, path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return -1;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return agent_tool_fail(ctx, "cannot list %s: %s", rel, strerror(errno));
    }
    agent_dirent_t *items = NULL;
    size_t n = 0, total = 0;
    int rc = s_read_dir(d, ctx->limits->list_max_entries, &items, &n, &total);
    closedir(d);
    if (rc != 0) {
        return agent_tool_fail(ctx, "out of memory");
    }
    qsort(items, n, sizeof *items, s_dirent_cmp);
    *ctx->result = json_pack("{s:s, s:o, s:I, s:b}", "path", rel, "entries", s_dir_json(items, n),
                             "total", (json_int_t)total, "truncated", total > n);
    for (size_t i = 0; i < n; i++) {
        free(items[i].name);
    }
    free(items);
    return 0;
}
