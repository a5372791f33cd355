/*  test_gw_workers — the worker supervisor of bicky-gateway --workers
    (gw_workers_run): port in use, workers that keep failing at start, a
    restarted worker, and a stop on the interrupt flag. */
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TestSuite(gw_workers, .timeout = 30);

static int s_pipe[2];

static void s_cfg(gw_config_t *cfg, long port, long workers)
{
    gw_config_defaults(cfg);
    cfg->port = port;
    cfg->workers = workers;
}

/* A free TCP port on 127.0.0.1 (bound, then closed). */
static long s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Workers end with _exit: exit() would run the test runner's atexit handlers
   in the forked worker. */
static int s_fail_fast(long index, void *arg)
{
    (void)index;
    (void)arg;
    _exit(1);
}

/* Reports its index, then runs until SIGTERM (the parent's stop). */
static int s_until_term(long index, void *arg)
{
    (void)arg;
    char c = (char)('0' + index);
    cr_assert_eq(write(s_pipe[1], &c, 1), 1);
    while (!util_interrupted) {
        usleep(5000);
    }
    _exit(0);
}

/* Worker 1 dies once (the first time), the others run until SIGTERM. */
static int s_die_once(long index, void *arg)
{
    const char *marker = arg;
    if (index == 1 && access(marker, F_OK) != 0) {
        FILE *f = fopen(marker, "w");
        if (f) {
            fclose(f);
        }
        _exit(3);
    }
    return s_until_term(index, NULL);
}

static void *s_interrupt_later(void *arg)
{
    usleep((useconds_t)(long)arg * 1000);
    util_interrupted = 1;
    return NULL;
}

static int64_t s_run_ms(const gw_config_t *cfg, gw_worker_fn *fn, void *arg, int *rc)
{
    int64_t t0 = util_mono_ms();
    *rc = gw_workers_run(cfg, fn, arg);
    return util_mono_ms() - t0;
}

Test(gw_workers, port_in_use_fails_before_forking)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    gw_config_t cfg;
    s_cfg(&cfg, ntohs(a.sin_port), 2);
    int rc;
    s_run_ms(&cfg, s_fail_fast, NULL, &rc);
    cr_assert_eq(rc, 1);
    close(fd);
}

Test(gw_workers, invalid_address_fails)
{
    gw_config_t cfg;
    s_cfg(&cfg, s_free_port(), 2);
    cfg.listen = "not-an-address";
    int rc;
    s_run_ms(&cfg, s_fail_fast, NULL, &rc);
    cr_assert_eq(rc, 1);
}

Test(gw_workers, gives_up_on_workers_failing_at_start)
{
    util_signals_install();
    util_interrupted = 0;
    gw_config_t cfg;
    s_cfg(&cfg, s_free_port(), 2);
    int rc;
    int64_t ms = s_run_ms(&cfg, s_fail_fast, NULL, &rc);
    cr_assert_eq(rc, 1);
    cr_assert_lt(ms, 10000, "gave up after %lld ms", (long long)ms);
}

Test(gw_workers, starts_n_and_stops_on_interrupt)
{
    util_signals_install();
    util_interrupted = 0;
    cr_assert_eq(pipe(s_pipe), 0);
    gw_config_t cfg;
    s_cfg(&cfg, s_free_port(), 3);
    pthread_t t;
    pthread_create(&t, NULL, s_interrupt_later, (void *)800L);
    int rc;
    int64_t ms = s_run_ms(&cfg, s_until_term, NULL, &rc);
    pthread_join(t, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_lt(ms, 5000, "stopped after %lld ms", (long long)ms);
    char seen[8] = {0};
    close(s_pipe[1]);
    cr_assert_eq(read(s_pipe[0], seen, sizeof seen - 1), 3);
    cr_assert(strchr(seen, '1') && strchr(seen, '2') && strchr(seen, '3'), "indexes: %s", seen);
    close(s_pipe[0]);
}

Test(gw_workers, restarts_a_worker_that_dies)
{
    util_signals_install();
    util_interrupted = 0;
    cr_assert_eq(pipe(s_pipe), 0);
    char marker[64];
    snprintf(marker, sizeof marker, "/tmp/test_gw_workers.%d", (int)getpid());
    unlink(marker);
    gw_config_t cfg;
    s_cfg(&cfg, s_free_port(), 2);
    pthread_t t;
    pthread_create(&t, NULL, s_interrupt_later, (void *)1500L);
    int rc;
    s_run_ms(&cfg, s_die_once, marker, &rc);
    pthread_join(t, NULL);
    unlink(marker);
    cr_assert_eq(rc, 0);
    char seen[8] = {0};
    close(s_pipe[1]);
    cr_assert_eq(read(s_pipe[0], seen, sizeof seen - 1), 2, "started: %s", seen);
    cr_assert(strchr(seen, '1') && strchr(seen, '2'), "worker 1 restarted: %s", seen);
    close(s_pipe[0]);
}
