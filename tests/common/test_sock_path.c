/*  test_sock_path — a unix socket path that always fits sockaddr_un
    (common/sock_path.c): a short path is used as it is; a long one becomes the same
    file name in a fresh private directory under /tmp (mode 0700, this user's),
    where a socket really binds, and sock_path_remove deletes the socket and the
    directory; a file name too long even there is ENAMETOOLONG. */
#include "common/sock_path.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

TestSuite(sock_path, .timeout = 10);

/* A path of len bytes ending in "/name". */
static void s_long(char *out, size_t len, const char *name)
{
    size_t tail = strlen(name) + 1;
    snprintf(out, len + 1, "/%0*d/%s", (int)(len - tail - 1), 0, name);
    cr_assert_eq(strlen(out), len);
}

Test(sock_path, a_short_path_is_used_as_it_is)
{
    sock_path_t sp;
    cr_assert_eq(sock_path_make(&sp, "/run/x/relay-n1.sock", 0), 0);
    cr_assert_str_eq(sp.path, "/run/x/relay-n1.sock");
    cr_assert_str_empty(sp.dir);
    char want[200];
    s_long(want, SOCK_PATH_MAX - 1, "relay-n1.sock"); /* 107 bytes: the longest that fits */
    cr_assert_eq(sock_path_make(&sp, want, 0), 0);
    cr_assert_str_eq(sp.path, want);
    cr_assert_str_empty(sp.dir);
    s_long(want, 100, "perm-n1-1.ipc"); /* a smaller limit (libzmq's ipc) */
    cr_assert_eq(sock_path_make(&sp, want, 101), 0);
    cr_assert_str_eq(sp.path, want);
}

Test(sock_path, a_long_path_moves_to_a_private_directory)
{
    char want[300];
    s_long(want, SOCK_PATH_MAX, "relay-n1.sock"); /* one byte too long */
    sock_path_t sp;
    cr_assert_eq(sock_path_make(&sp, want, 0), 0);
    cr_assert_lt(strlen(sp.path), SOCK_PATH_MAX);
    cr_assert_eq(strncmp(sp.dir, "/tmp/bicky-", 11), 0, "%s", sp.dir);
    char expect[SOCK_PATH_MAX + 32];
    snprintf(expect, sizeof expect, "%s/relay-n1.sock", sp.dir);
    cr_assert_str_eq(sp.path, expect);
    struct stat st;
    cr_assert_eq(lstat(sp.dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0700, "mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_uid, getuid());
    /* A socket binds there; remove takes the socket and the directory. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sp.path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
    close(fd);
    char dir[sizeof sp.dir];
    snprintf(dir, sizeof dir, "%s", sp.dir);
    sock_path_remove(&sp);
    cr_assert_str_empty(sp.path);
    cr_assert_str_empty(sp.dir);
    cr_assert_neq(access(dir, F_OK), 0, "%s is left", dir);
    sock_path_remove(&sp); /* twice is fine */
    /* Two calls get two directories. */
    sock_path_t a1, a2;
    cr_assert_eq(sock_path_make(&a1, want, 0), 0);
    cr_assert_eq(sock_path_make(&a2, want, 0), 0);
    cr_assert_str_neq(a1.dir, a2.dir);
    sock_path_remove(&a1);
    sock_path_remove(&a2);
}

Test(sock_path, a_name_too_long_even_there_is_refused)
{
    char want[400], name[120];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    s_long(want, 300, name);
    sock_path_t sp;
    errno = 0;
    cr_assert_eq(sock_path_make(&sp, want, 0), -1);
    cr_assert_eq(errno, ENAMETOOLONG);
    cr_assert_str_empty(sp.path);
    cr_assert_str_empty(sp.dir);
    s_long(want, 101, "perm-n1-1234567.ipc"); /* one byte over a limit of 101 */
    cr_assert_eq(sock_path_make(&sp, want, 101), 0);
    cr_assert_lt(strlen(sp.path), 101);
    sock_path_remove(&sp);
}
