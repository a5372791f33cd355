/*  test_gw_server — component tests of the gateway loop (gw_server): the real
    server on a thread, a fake registry and node (gw_fake.h), curl as the
    client. Phase-1 behaviour: health/ready/metrics, 404/405, 503 without a
    ring, 504 on a silent node, 413, malformed frames, registry failover,
    graceful stop that answers waiting requests. */
#include "tests/fixtures/gw_fake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

TestSuite(gw_server, .timeout = 30);

Test(gw_server, health_ready_and_errors_without_ring)
{
    gwt_t t;
    char nobody[64]; /* a registry endpoint nobody binds */
    gwt_start(&t, false, tf_endpoint(nobody, sizeof nobody, "nobody"));
    http_t *r = http_do(&t, "GET", "/health", NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    cr_assert(strstr(r->body, "\"status\":\"ok\"") && strstr(r->body, "\"version\""));
    free(r);
    r = http_do(&t, "GET", "/ready", NULL, NULL, 0);
    cr_assert_eq(r->status, 503);
    cr_assert(strstr(r->body, "\"code\":\"unavailable\""), "%s", r->body);
    cr_assert(strcasestr(r->headers, "Retry-After: 1"), "%s", r->headers);
    free(r);
    r = http_do(&t, "GET", "/nowhere", NULL, NULL, 0);
    cr_assert_eq(r->status, 404);
    cr_assert(strstr(r->body, "\"code\":\"not_found\""));
    free(r);
    r = http_do(&t, "PUT", "/api/conversations", NULL, NULL, 0);
    cr_assert_eq(r->status, 405);
    cr_assert(strcasestr(r->headers, "Allow: POST, GET"), "%s", r->headers);
    free(r);
    /* Authenticated routes need a node for the token check: none → 503. */
    r = http_do(&t, "GET", "/api/conversations", s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 503, "%ld %s", r->status, r->body);
    cr_assert(strcasestr(r->headers, "Retry-After:"));
    free(r);
    r = http_do(&t, "GET", "/api/conversations", NULL, NULL, 0);
    cr_assert_eq(r->status, 401);
    cr_assert(strcasestr(r->headers, "WWW-Authenticate: Bearer"));
    free(r);
    gwt_stop(&t);
}

Test(gw_server, ready_and_metrics_with_ring)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    http_t *r = http_do(&t, "GET", "/metrics", NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    cr_assert(strstr(r->body, "bicky_gateway_live_nodes 1"), "%s", r->body);
    cr_assert(strstr(r->body, "bicky_gateway_ring_epoch 1"));
    cr_assert(strstr(r->body, "bicky_gateway_uptime_seconds "));
    cr_assert(strstr(r->body, "bicky_gateway_open_connections "));
    cr_assert(strstr(r->body, "bicky_gateway_sse_clients 0"));
    cr_assert(
        strstr(r->body, "bicky_gateway_http_requests_total{route=\"/ready\",status=\"200\"}"));
    cr_assert(strcasestr(r->headers, "Content-Type: text/plain"));
    free(r);
    gwt_stop(&t);
}

Test(gw_server, registry_failover_to_second_endpoint)
{
    gwt_t t;
    /* The first registry of the list never answers: nobody binds it. */
    char nobody[64], list[96];
    snprintf(list, sizeof list, "%s,%%s", tf_endpoint(nobody, sizeof nobody, "nobody"));
    gwt_start(&t, true, list);
    int64_t t0 = util_mono_ms();
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    cr_expect_lt(util_mono_ms() - t0, 3000);
    gwt_stop(&t);
}

Test(gw_server, silent_node_gives_504)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    fake_mode(&t, FAKE_SILENT);
    http_t *r = http_do(&t, "GET", "/api/conversations", s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 504, "%ld %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"code\":\"timeout\""));
    cr_assert_lt(r->seconds, 2.0);
    free(r);
    /* The gateway keeps serving, and a late reply would be dropped. */
    fake_mode(&t, FAKE_ANSWER);
    r = http_do(&t, "GET", "/api/conversations", s_auth_json, NULL, 0);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    free(r);
    gwt_stop(&t);
}

Test(gw_server, body_limit_413_and_media_type_415)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    char *big = malloc(10000);
    snprintf(big, 10000, "{\"content\":\"");
    memset(big + 12, 'x', 9000);
    snprintf(big + 9012, 100, "\"}");
    http_t *r = http_do(&t, "POST", "/api/message", s_auth_json, big, 0);
    cr_assert_eq(r->status, 413, "%ld %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"code\":\"payload_too_large\""));
    free(r);
    const char *chunked[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN,
                             "Content-Type: application/json", "Transfer-Encoding: chunked", NULL};
    r = http_do(&t, "POST", "/api/message", chunked, big, 0);
    cr_assert_eq(r->status, 413, "%ld %s", r->status, r->body);
    free(r);
    /* Under the limit (and past curl's Expect: 100-continue threshold) passes. */
    snprintf(big + 2012, 100, "\"}");
    r = http_do(&t, "POST", "/api/message", s_auth_json, big, 0);
    cr_assert_eq(r->status, 202, "%ld %s", r->status, r->body);
    free(r);
    free(big);
    const char *text[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, "Content-Type: text/plain",
                          NULL};
    r = http_do(&t, "POST", "/api/message", text, "{\"content\":\"hi\"}", 0);
    cr_assert_eq(r->status, 415, "%ld %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"code\":\"unsupported_media_type\""));
    free(r);
    /* Still healthy afterwards. */
    r = http_do(&t, "GET", "/health", NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    free(r);
    gwt_stop(&t);
}

Test(gw_server, malformed_frames_do_not_crash)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    fake_mode(&t, FAKE_GARBAGE);
    for (int i = 0; i < 5; i++) {
        http_t *r = http_do(&t, "GET", "/api/conversations", s_auth_json, NULL, 0);
        cr_assert_eq(r->status, 504, "%ld %s", r->status, r->body);
        free(r);
    }
    usleep(700 * 1000); /* a few registry refreshes answered with garbage too */
    http_t *r = http_do(&t, "GET", "/ready", NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    free(r);
    r = http_do(&t, "GET", "/metrics", NULL, NULL, 0);
    cr_assert(strstr(r->body, "bicky_gateway_upstream_replies_total{outcome=\"dropped\"} "));
    cr_assert_null(strstr(r->body, "bicky_gateway_upstream_replies_total{outcome=\"dropped\"} 0\n"),
                   "the stray reply was not counted as dropped");
    free(r);
    gwt_stop(&t);
}

typedef struct {
    gwt_t *t;
    long status;
    char body[512];
} waiter_t;

static void *s_waiter(void *arg)
{
    waiter_t *w = arg;
    http_t *r = http_do(w->t, "GET", "/api/conversations", s_auth_json, NULL, 8000);
    w->status = r->status;
    snprintf(w->body, sizeof w->body, "%.400s", r->body);
    free(r);
    return NULL;
}

Test(gw_server, stop_answers_waiting_requests_503)
{
    gwt_t t;
    gwt_start_ex(&t, true, NULL, 20000);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    fake_mode(&t, FAKE_SILENT);
    waiter_t w = {.t = &t};
    pthread_t th;
    pthread_create(&th, NULL, s_waiter, &w);
    for (int i = 0; i < 100 && fake_stats(&t).ops == 0; i++) {
        usleep(20 * 1000);
    }
    cr_assert_eq(fake_stats(&t).ops, 1, "the request did not reach the node");
    gwt_stop(&t);
    pthread_join(th, NULL);
    cr_assert_eq(w.status, 503, "%ld %s", w.status, w.body);
    cr_assert(strstr(w.body, "\"code\":\"unavailable\""));
}

/* Sends len bytes on a fresh connection to the gateway and closes it. */
static void s_raw(gwt_t *t, const void *data, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->cfg.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    (void)n;
    char buf[512];
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = recv(fd, buf, sizeof buf, 0);
    close(fd);
}

Test(gw_server, hostile_http_bytes_do_not_crash)
{
    gwt_t t;
    gwt_start(&t, true, NULL);
    cr_assert_eq(gwt_wait_ready(&t, 5000), 200);
    srand(7);
    char junk[8192];
    for (int i = 0; i < 20; i++) {
        for (size_t k = 0; k < sizeof junk; k++) {
            junk[k] = (char)rand();
        }
        s_raw(&t, junk, (size_t)(rand() % (int)sizeof junk) + 1);
    }
    /* Headers far past the per-connection memory pool. */
    char *big = malloc(100000);
    int n = snprintf(big, 100000, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 90000);
    memcpy(big + n + 90000, "\r\n\r\n", 4);
    s_raw(&t, big, (size_t)n + 90004);
    free(big);
    const char *half = "POST /api/message HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{";
    s_raw(&t, half, strlen(half));
    http_t *r = http_do(&t, "GET", "/health", NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    free(r);
    gwt_stop(&t);
}
