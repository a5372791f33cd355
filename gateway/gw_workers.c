/*  gw_workers — nginx-style worker processes for bicky-gateway (--workers N > 1).
    The parent forks N workers before any ZMQ context or MHD daemon exists;
    each binds the same address with SO_REUSEPORT (the kernel spreads new
    connections over them) and runs the normal gateway loop on its own
    registry link, node sockets and subscriptions: the gateway is stateless,
    so nothing is shared. The parent only supervises: it restarts a worker that
    dies (back-off doubling from S_BACKOFF_MS), stops every worker on SIGTERM or
    SIGINT, and gives up (exit 1) when a worker keeps failing right after start.
    Single-threaded parent; no event loop. */
#define LOG_MODULE "gw_workers"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_WORKERS_MAX  64   /* --workers upper bound (cfg table) */
#define S_START_MS     2000 /* a worker that dies sooner failed at start */
#define S_START_FAILS  5    /* consecutive start failures before giving up */
#define S_BACKOFF_MS   100  /* first restart delay, doubled per start failure */
#define S_BACKOFF_MAX  5000 /* restart delay bound */
#define S_STOP_WAIT_MS 4500 /* SIGTERM → SIGKILL for workers that do not stop */
#define S_POLL_MS      50   /* supervision period */

typedef struct {
    pid_t pid;        /* running worker, 0 when none */
    int64_t start_ms; /* when it was forked (mono) */
    int64_t due_ms;   /* when to fork it again (mono), once pid is 0 */
    int fails;        /* consecutive start failures */
} s_worker_t;

/* Binds cfg's address without SO_REUSEPORT: fails when another process holds
   the port, with or without SO_REUSEPORT. 0 when free, -1 (logged) otherwise. */
static int s_probe_port(const gw_config_t *cfg)
{
    const char *host = strcmp(cfg->listen, "localhost") == 0 ? "127.0.0.1" : cfg->listen;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        len = sizeof *a6;
    } else {
        LOG_E("invalid listen address '%s' (numeric IPv4/IPv6 or localhost)", cfg->listen);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        LOG_E("cannot bind address=%s port=%ld: %s", cfg->listen, cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return 0;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop looks at the flag */
}

/* Forks worker index (from 1); the child never returns. */
static void s_spawn(s_worker_t *w, long index, gw_worker_fn *fn, void *arg)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A worker must not outlive its parent (SIGKILL to the parent). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(0);
        }
        exit(fn(index, arg)); /* exit: sanitizers check the worker too */
    }
    if (pid < 0) {
        LOG_E("cannot fork worker=%ld: %s", index, strerror(errno));
        w->pid = 0;
        w->due_ms = util_mono_ms() + S_BACKOFF_MAX;
        return;
    }
    w->pid = pid;
    w->start_ms = util_mono_ms();
    LOG_N("worker started worker=%ld pid=%d", index, (int)pid);
}

/* Records the end of worker index; false when it keeps failing at start. */
static bool s_reap(s_worker_t *w, long index, int status)
{
    int64_t now = util_mono_ms();
    bool early = now - w->start_ms < S_START_MS;
    w->fails = early ? w->fails + 1 : 0;
    long delay = S_BACKOFF_MS;
    for (int k = 1; k < w->fails && delay < S_BACKOFF_MAX; k++) {
        delay *= 2;
    }
    delay = delay > S_BACKOFF_MAX ? S_BACKOFF_MAX : delay;
    if (WIFSIGNALED(status)) {
        LOG_W("worker died worker=%ld pid=%d signal=%d restart_in_ms=%ld", index, (int)w->pid,
              WTERMSIG(status), delay);
    } else {
        LOG_W("worker exited worker=%ld pid=%d status=%d restart_in_ms=%ld", index, (int)w->pid,
              WEXITSTATUS(status), delay);
    }
    w->pid = 0;
    w->due_ms = now + delay;
    return w->fails < S_START_FAILS;
}

/* SIGTERM to every worker, then SIGKILL after drain_ms + S_STOP_WAIT_MS (each
   worker first drains for --drain-ms); reaps them all. */
static void s_stop_all(s_worker_t *ws, long n, long drain_ms)
{
    for (long i = 0; i < n; i++) {
        if (ws[i].pid > 0) {
            kill(ws[i].pid, SIGTERM);
        }
    }
    int64_t deadline = util_mono_ms() + drain_ms + S_STOP_WAIT_MS;
    long left = n;
    while (left > 0) {
        left = 0;
        for (long i = 0; i < n; i++) {
            if (ws[i].pid > 0 && waitpid(ws[i].pid, NULL, WNOHANG) == ws[i].pid) {
                ws[i].pid = 0;
            }
            left += ws[i].pid > 0;
        }
        if (left > 0 && util_mono_ms() >= deadline) {
            for (long i = 0; i < n; i++) {
                if (ws[i].pid > 0) {
                    LOG_W("worker did not stop: killing worker=%ld pid=%d", i + 1, (int)ws[i].pid);
                    kill(ws[i].pid, SIGKILL);
                    waitpid(ws[i].pid, NULL, 0);
                    ws[i].pid = 0;
                }
            }
            left = 0;
        } else if (left > 0) {
            s_sleep_ms(20);
        }
    }
}

/* Reaps the workers that ended; false when one keeps failing at start. */
static bool s_reap_all(s_worker_t *ws, long n)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (long i = 0; i < n; i++) {
            if (ws[i].pid == pid && !s_reap(&ws[i], i + 1, status)) {
                LOG_E("worker=%ld failed %d times right after start: giving up", i + 1,
                      S_START_FAILS);
                return false;
            }
        }
    }
    return true;
}

int gw_workers_run(const gw_config_t *cfg, gw_worker_fn *fn, void *arg)
{
    long n = cfg->workers < S_WORKERS_MAX ? cfg->workers : S_WORKERS_MAX;
    if (s_probe_port(cfg) < 0) {
        return 1;
    }
    s_worker_t ws[S_WORKERS_MAX];
    memset(ws, 0, sizeof ws);
    LOG_N("starting workers=%ld address=%s port=%ld", n, cfg->listen, cfg->port);
    for (long i = 0; i < n; i++) {
        s_spawn(&ws[i], i + 1, fn, arg);
    }
    int rc = 0;
    while (!util_interrupted) {
        if (!s_reap_all(ws, n)) {
            rc = 1;
            break;
        }
        int64_t now = util_mono_ms();
        for (long i = 0; i < n && !util_interrupted; i++) {
            if (ws[i].pid == 0 && now >= ws[i].due_ms) {
                s_spawn(&ws[i], i + 1, fn, arg);
            }
        }
        s_sleep_ms(S_POLL_MS);
    }
    LOG_N("stopping workers=%ld", n);
    s_stop_all(ws, n, cfg->drain_ms);
    LOG_N("stopped");
    return rc;
}
