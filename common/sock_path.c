/*  sock_path — a unix socket path that fits sockaddr_un (see sock_path.h). */
#include "common/sock_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sock_path_make(sock_path_t *out, const char *want, size_t limit)
{
    memset(out, 0, sizeof *out);
    limit = limit && limit < SOCK_PATH_MAX ? limit : SOCK_PATH_MAX;
    size_t len = strlen(want);
    if (len < limit) {
        memcpy(out->path, want, len + 1);
        return 0;
    }
    const char *slash = strrchr(want, '/');
    const char *name = slash ? slash + 1 : want;
    if (!*name || strlen(SOCK_PATH_TMP) + 1 + strlen(name) >= limit) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* A fresh directory of a random name, 0700: no other user can enter it, and no
       fixed name in /tmp can be taken over before us. */
    snprintf(out->dir, sizeof out->dir, "%s", SOCK_PATH_TMP);
    if (!mkdtemp(out->dir)) {
        int e = errno;
        memset(out, 0, sizeof *out);
        errno = e;
        return -1;
    }
    snprintf(out->path, sizeof out->path, "%s/%s", out->dir, name);
    return 0;
}

void sock_path_remove(sock_path_t *sp)
{
    struct stat st;
    if (sp->path[0] && lstat(sp->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(sp->path);
    }
    if (sp->dir[0]) {
        rmdir(sp->dir);
    }
    memset(sp, 0, sizeof *sp);
}
