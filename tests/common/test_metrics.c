/*  test_metrics — histograms: bounds checked, each observation in the first
    bucket whose bound holds it, rendered cumulative with +Inf equal to _count,
    scaled (µs as seconds) and labelled; the GET /metrics endpoint over a real
    TCP socket: 200 with the render's text, 404 elsewhere, 405 for POST, a bad
    address refused. A reader thread rendering while the owner observes sees
    counts that only grow. */
#include "common/metrics.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const int64_t s_bounds[] = {10, 100, 1000};

static char *s_render(const metrics_hist_t *h, const char *labels)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    metrics_hist_render(f, "x_seconds", labels, h);
    fclose(f);
    return text;
}

Test(metrics, init_refuses_bad_bounds)
{
    metrics_hist_t h;
    static const int64_t down[] = {5, 5};
    cr_assert_eq(metrics_hist_init(&h, s_bounds, 0, 1), -1);
    cr_assert_eq(metrics_hist_init(&h, down, 2, 1), -1);
    cr_assert_eq(metrics_hist_init(&h, s_bounds, METRICS_MAX_BUCKETS + 1, 1), -1);
    cr_assert_eq(metrics_hist_init(&h, s_bounds, 3, 1), 0);
    cr_assert_eq(metrics_hist_init(&h, metrics_bounds_us, metrics_nbounds_us, 1e-6), 0);
    cr_assert_eq(metrics_hist_init(&h, metrics_bounds_size, metrics_nbounds_size, 1), 0);
}

Test(metrics, buckets_are_cumulative_with_inf_equal_to_count)
{
    metrics_hist_t h;
    cr_assert_eq(metrics_hist_init(&h, s_bounds, 3, 1e-6), 0);
    int64_t values[] = {0, 10, 11, 100, 5000, -3, 1000};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        metrics_hist_observe(&h, values[i]);
    }
    cr_assert_eq(metrics_hist_count(&h), 7);
    char *text = s_render(&h, NULL);
    /* le=10: 0, 10, -3 (as 0); le=100: + 11, 100; le=1000: + 1000; +Inf: + 5000. */
    cr_assert(strstr(text, "x_seconds_bucket{le=\"1e-05\"} 3\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_bucket{le=\"0.0001\"} 5\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_bucket{le=\"0.001\"} 6\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_bucket{le=\"+Inf\"} 7\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_sum 0.006121\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_count 7\n"), "%s", text);
    free(text);
}

Test(metrics, labels_go_before_le)
{
    metrics_hist_t h;
    cr_assert_eq(metrics_hist_init(&h, s_bounds, 3, 1), 0);
    metrics_hist_observe(&h, 50);
    char *text = s_render(&h, "strategy=\"echo\"");
    cr_assert(strstr(text, "x_seconds_bucket{strategy=\"echo\",le=\"100\"} 1\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_sum{strategy=\"echo\"} 50\n"), "%s", text);
    cr_assert(strstr(text, "x_seconds_count{strategy=\"echo\"} 1\n"), "%s", text);
    free(text);
}

/* ---- a scrape while the owner observes ------------------------------------------------- */

typedef struct {
    metrics_hist_t h;
    _Atomic int stop;
} s_race_t;

static void *s_observer(void *arg)
{
    s_race_t *r = arg;
    for (int64_t i = 0; !atomic_load(&r->stop); i++) {
        metrics_hist_observe(&r->h, i % 2000);
    }
    return NULL;
}

Test(metrics, counts_seen_by_a_reader_only_grow)
{
    static s_race_t r;
    cr_assert_eq(metrics_hist_init(&r.h, s_bounds, 3, 1), 0);
    atomic_init(&r.stop, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_observer, &r), 0);
    uint64_t last = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t n = metrics_hist_count(&r.h);
        cr_assert_geq(n, last);
        last = n;
        free(s_render(&r.h, NULL));
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
}

/* ---- the endpoint ---------------------------------------------------------------------- */

static void s_body(FILE *f, void *arg)
{
    fprintf(f, "%s 42\n", (const char *)arg);
}

/* One HTTP/1.0 exchange on 127.0.0.1:port; returns the whole answer (malloc'd). */
static char *s_http(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t cap = 65536, len = 0;
    char *buf = calloc(1, cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
    }
    close(fd);
    return buf;
}

Test(metrics, endpoint_serves_get_metrics_only)
{
    metrics_http_t *m = metrics_http_start("127.0.0.1:0", s_body, "bicky_test_value");
    cr_assert_not_null(m);
    int port = metrics_http_port(m);
    cr_assert_gt(port, 0);

    char *ok = s_http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(ok, "HTTP/1.0 200", 12) == 0 || strncmp(ok, "HTTP/1.1 200", 12) == 0, "%s",
              ok);
    cr_assert(strstr(ok, "Content-Type: text/plain; version=0.0.4"), "%s", ok);
    cr_assert(strstr(ok, "\r\n\r\nbicky_test_value 42\n"), "%s", ok);
    free(ok);

    char *nf = s_http(port, "GET /other HTTP/1.0\r\n\r\n");
    cr_assert(strstr(nf, " 404 "), "%s", nf);
    free(nf);

    char *post = s_http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    cr_assert(strstr(post, " 405 "), "%s", post);
    free(post);

    metrics_http_stop(&m);
    cr_assert_null(m);
    metrics_http_stop(&m); /* NULL is accepted */
}

Test(metrics, endpoint_refuses_bad_addresses)
{
    const char *bad[] = {
        "",        "127.0.0.1",   ":80", "localhost:80", "127.0.0.1:99999", "127.0.0.1:x",
        "[::1:80", "1.2.3.4.5:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_null(metrics_http_start(bad[i], s_body, "x"), "%s", bad[i]);
    }
    cr_assert_null(metrics_http_start(NULL, s_body, "x"));
    metrics_http_t *v6 = metrics_http_start("[::1]:0", s_body, "x");
    if (v6) { /* hosts without IPv6 loopback refuse it; both are fine */
        cr_assert_gt(metrics_http_port(v6), 0);
        metrics_http_stop(&v6);
    }
}
