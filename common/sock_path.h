/*  sock_path — a path for a unix socket that always fits sockaddr_un: the one asked
    for when it is short enough, else the same file name in a private directory that
    mkdtemp makes under /tmp (mode 0700: only this user may enter it), removed with
    the socket by sock_path_remove. For the sockets a node keeps in its --work-dir
    (the model relay's, its permission servers'), whose paths grow with the work dir:
    a sandboxed claude CLI must reach them whatever the work dir's length. Blocking
    file calls; the owner's thread, at start and stop. */
#ifndef BICKY_SOCK_PATH_H
#define BICKY_SOCK_PATH_H

#include <stddef.h>

#define SOCK_PATH_MAX 108 /* bytes of sockaddr_un.sun_path, NUL included */
#define SOCK_PATH_TMP "/tmp/bicky-XXXXXX"

typedef struct {
    char path[SOCK_PATH_MAX];       /* where to bind; "" = none */
    char dir[sizeof SOCK_PATH_TMP]; /* the private directory made for it; "" = none */
} sock_path_t;

/* Fills out (caller-owned) for want (an absolute path, borrowed): want itself when
   strlen(want) < limit, else SOCK_PATH_TMP made by mkdtemp plus the last component of
   want. limit is at most SOCK_PATH_MAX (0 = SOCK_PATH_MAX). Returns 0 (out->dir says
   whether a directory was made), or -1 with errno (ENAMETOOLONG when even the file
   name is too long, else mkdtemp's) and out cleared. */
int sock_path_make(sock_path_t *out, const char *want, size_t limit);

/* Unlinks sp->path when it is a socket, removes sp->dir when one was made, and clears
   both. Accepts a cleared sp. */
void sock_path_remove(sock_path_t *sp);

#endif
