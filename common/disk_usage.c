/*  disk_usage — the st_blocks sum of a directory tree (see disk_usage.h). */
#include "common/disk_usage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    dev_t dev;         /* the root's filesystem */
    long long stop_at; /* stop once sum passes it; 0 = never */
    long long sum;     /* bytes so far */
    int too_deep;      /* a directory below DISK_USAGE_MAX_DEPTH was seen */
} s_walk_t;

static void s_count(s_walk_t *w, const struct stat *st)
{
    long long bytes = (long long)st->st_blocks * 512;
    w->sum += bytes > DISK_USAGE_MIN_ENTRY ? bytes : DISK_USAGE_MIN_ENTRY;
}

static int s_done(const s_walk_t *w)
{
    return (w->stop_at > 0 && w->sum > w->stop_at) || w->too_deep;
}

/* Walks the directory open on fd (taken over: closed here), depth levels down. */
static void s_walk(s_walk_t *w, int fd, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while (!s_done(w) && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != w->dev) {
            continue; /* gone meanwhile, or another filesystem mounted here */
        }
        s_count(w, &st);
        if (!S_ISDIR(st.st_mode)) {
            continue;
        }
        if (depth + 1 > DISK_USAGE_MAX_DEPTH) {
            w->too_deep = 1;
            break;
        }
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            s_walk(w, sub, depth + 1);
        }
    }
    closedir(d);
}

long long disk_usage(const char *dir, long long stop_at)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    s_walk_t w = {.dev = st.st_dev, .stop_at = stop_at > 0 ? stop_at : 0};
    s_count(&w, &st);
    s_walk(&w, fd, 0);
    if (w.too_deep && w.stop_at > 0 && w.sum <= w.stop_at) {
        return w.stop_at + 1;
    }
    return w.sum;
}
