/*  bicky-fwd — the claude CLI's one way out of its sandbox. The sandbox has a
    network namespace of its own (no Postgres, no node socket, nothing of the host's
    network), and the CLI needs the node's model relay: bicky-fwd runs inside the
    sandbox, listens on 127.0.0.1:PORT there (the port the CLI's ANTHROPIC_BASE_URL
    names) and forwards every connection to the relay's unix socket, which the node
    binds into the sandbox; nothing else is reachable.

    bicky-fwd --listen PORT --to SOCKET -- PROGRAM [ARG...]

    It forks PROGRAM, passes SIGTERM, SIGINT, SIGHUP and SIGQUIT on to it, keeps no
    copy of its stdio (EOF still means PROGRAM) and exits with PROGRAM's status
    (re-raising its signal); 127 when it cannot listen or run PROGRAM, 2 on a bad
    command line. Single-threaded, one poll loop, at most S_PAIRS connections. Built
    from this file alone (it runs in the sandbox: libc only). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_PAIRS 64    /* connections forwarded at once (the CLI uses one or two) */
#define S_BUF   16384 /* bytes in flight per direction */
#define S_USAGE                                                                                    \
    "usage: bicky-fwd --listen PORT --to SOCKET -- PROGRAM [ARG...]\n\n"                           \
    "Runs PROGRAM and forwards every connection to 127.0.0.1:PORT to the unix socket\n"            \
    "SOCKET until PROGRAM exits; exits with PROGRAM's status.\n"

/* One forwarded connection: end 0 is the client (TCP), end 1 the relay (unix). */
typedef struct {
    int fd[2];          /* -1 = free slot */
    char buf[2][S_BUF]; /* buf[d]: read from fd[d], to be written to fd[1 - d] */
    size_t len[2];      /* bytes in buf[d] */
    size_t off[2];      /* bytes of buf[d] already written */
    bool eof[2];        /* fd[d] said EOF (its write side is shut once buf[d] drained) */
} s_pair_t;

static s_pair_t s_pairs[S_PAIRS];

static void s_close_pair(s_pair_t *p)
{
    for (int d = 0; d < 2; d++) {
        if (p->fd[d] >= 0) {
            close(p->fd[d]);
        }
        p->fd[d] = -1;
    }
}

static int s_relay_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static void s_accept(int lfd, const char *to)
{
    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        return;
    }
    for (int i = 0; i < S_PAIRS; i++) {
        if (s_pairs[i].fd[0] < 0) {
            int r = s_relay_connect(to);
            if (r < 0) {
                break;
            }
            memset(s_pairs[i].len, 0, sizeof s_pairs[i].len);
            memset(s_pairs[i].off, 0, sizeof s_pairs[i].off);
            memset(s_pairs[i].eof, 0, sizeof s_pairs[i].eof);
            s_pairs[i].fd[0] = c;
            s_pairs[i].fd[1] = r;
            return;
        }
    }
    close(c); /* full, or the relay is gone: the client sees the connection close */
}

/* Moves what poll said is ready on pair p (revents of fd[0] and fd[1]). */
static void s_pump(s_pair_t *p, const short rev[2])
{
    for (int d = 0; d < 2 && p->fd[0] >= 0; d++) {
        int from = p->fd[d], to = p->fd[1 - d];
        if (p->len[d] == 0 && !p->eof[d] && (rev[d] & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(from, p->buf[d], S_BUF);
            if (n > 0) {
                p->len[d] = (size_t)n;
                p->off[d] = 0;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                p->eof[d] = true;
                shutdown(to, SHUT_WR);
            }
        }
        if (p->len[d] > 0 && (rev[1 - d] & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = send(to, p->buf[d] + p->off[d], p->len[d] - p->off[d], MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                s_close_pair(p);
                return;
            }
            p->off[d] += n > 0 ? (size_t)n : 0;
            if (p->off[d] == p->len[d]) {
                p->len[d] = p->off[d] = 0;
            }
        }
    }
    if (p->fd[0] >= 0 && p->eof[0] && p->eof[1] && !p->len[0] && !p->len[1]) {
        s_close_pair(p);
    }
}

static int s_listen(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "bicky-fwd: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return -1;
    }
    return fd;
}

static void s_exit_like(int status)
{
    if (WIFSIGNALED(status)) {
        sigset_t set;
        signal(WTERMSIG(status), SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, WTERMSIG(status));
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(WTERMSIG(status));
        _exit(128 + WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* Makes fds 0-2 /dev/null, so that only PROGRAM holds the pipes. */
static void s_drop_stdio(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; null >= 0 && fd <= 2; fd++) {
        dup2(null, fd);
    }
    if (null > 2) {
        close(null);
    }
}

/* Polls the signals, the listener and every pair until PROGRAM (child) exits. */
static int s_loop(int sfd, int lfd, const char *to, pid_t child)
{
    struct pollfd fds[2 + 2 * S_PAIRS];
    for (;;) {
        int n = 0;
        fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < S_PAIRS; i++) {
            s_pair_t *p = &s_pairs[i];
            for (int d = 0; d < 2; d++) {
                short ev =
                    (p->len[d] == 0 && !p->eof[d] ? POLLIN : 0) | (p->len[1 - d] > 0 ? POLLOUT : 0);
                fds[n++] = (struct pollfd){.fd = p->fd[d], .events = ev}; /* -1 = ignored */
            }
        }
        if (poll(fds, (nfds_t)n, -1) < 0 && errno != EINTR) {
            return 127 << 8;
        }
        struct signalfd_siginfo si;
        if ((fds[0].revents & POLLIN) && read(sfd, &si, sizeof si) == sizeof si) {
            int status;
            if ((int)si.ssi_signo != SIGCHLD) {
                kill(child, (int)si.ssi_signo);
            } else if (waitpid(child, &status, WNOHANG) == child) {
                return status;
            }
        }
        if (fds[1].revents & POLLIN) {
            s_accept(lfd, to);
        }
        for (int i = 0; i < S_PAIRS; i++) {
            short rev[2] = {fds[2 + 2 * i].revents, fds[3 + 2 * i].revents};
            if (s_pairs[i].fd[0] >= 0 && (rev[0] || rev[1])) {
                s_pump(&s_pairs[i], rev);
            }
        }
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *to = NULL;
    int i = 1;
    for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (!strcmp(argv[i], "--listen")) {
            port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--to")) {
            to = argv[i + 1];
        } else {
            break;
        }
    }
    if (i + 1 >= argc || strcmp(argv[i], "--") != 0 || port <= 0 || port > 65535 || !to ||
        strlen(to) >= sizeof((struct sockaddr_un){0}.sun_path)) {
        fputs(S_USAGE, stderr);
        return 2;
    }
    for (int k = 0; k < S_PAIRS; k++) {
        s_pairs[k].fd[0] = s_pairs[k].fd[1] = -1;
    }
    sigset_t set, old;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
        sigaddset(&set, sigs[k]);
    }
    sigprocmask(SIG_BLOCK, &set, &old);
    int lfd = s_listen(port), sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (lfd < 0 || sfd < 0) {
        return 127;
    }
    pid_t child = fork();
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[i + 1], &argv[i + 1]);
        fprintf(stderr, "bicky-fwd: cannot run %s: %s\n", argv[i + 1], strerror(errno));
        _exit(127);
    }
    if (child < 0) {
        return 127;
    }
    prctl(PR_SET_DUMPABLE, 0); /* its sockets stay out of the sandbox's reach (/proc/<pid>/fd) */
    s_drop_stdio();
    s_exit_like(s_loop(sfd, lfd, to, child));
}
