/*  test_gw_sse — component tests of the SSE clients (gw_sse, gw_fanout): the
    real gateway loop with the fake node of gw_fake.h publishing events.
    Resume without gap or duplicate, replay paging, team streams, keep-alive,
    unsubscribe when the last listener leaves, and the slow-client bound. */
#include "tests/fixtures/gw_fake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

TestSuite(gw_sse, .timeout = 30);

static void s_ready(gwt_t *t)
{
    gwt_start(t, true, NULL);
    cr_assert_eq(gwt_wait_ready(t, 5000), 200);
}

static void s_fake_cmd(gwt_t *t, const char *cmd)
{
    zstr_send(t->fake, cmd);
    char *ok = zstr_recv(t->fake);
    zstr_free(&ok);
}

/* Reads a gauge from /metrics; -1 when absent. */
static long s_gauge(gwt_t *t, const char *name)
{
    http_t *r = http_do(t, "GET", "/metrics", NULL, NULL, 0);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(r->body, key);
    long v = p ? atol(p + strlen(key)) : -1;
    free(r);
    return v;
}

/* Parses SSE text into the list of ids (0 for frames without id:). */
static size_t s_sse_ids(const char *text, long *ids, size_t cap, size_t *deltas)
{
    size_t n = 0;
    *deltas = 0;
    for (const char *p = text; (p = strstr(p, "event: ")) != NULL && n < cap; p++) {
        const char *block = p;
        while (block > text && !(block[-1] == '\n' && block - 1 > text && block[-2] == '\n')) {
            block--;
        }
        if (strncmp(p + 7, "message.delta", 13) == 0) {
            (*deltas)++;
            continue;
        }
        ids[n++] = strncmp(block, "id: ", 4) == 0 ? atol(block + 4) : 0;
    }
    return n;
}

Test(gw_sse, resume_replays_then_goes_live_without_duplicates)
{
    gwt_t t;
    s_ready(&t);
    s_fake_cmd(&t, "LIVE");
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, "Accept: text/event-stream",
                          "Last-Event-ID: 2", NULL};
    http_t *r = http_do(&t, "GET", "/api/conversations/44444444-4444-4444-8444-444444444444/events",
                        hdrs, NULL, 1500);
    cr_assert_eq(r->status, 200);
    cr_assert(strcasestr(r->headers, "Content-Type: text/event-stream; charset=utf-8\r\n"), "%s",
              r->headers);
    long ids[64];
    size_t deltas;
    size_t n = s_sse_ids(r->body, ids, 64, &deltas);
    cr_assert_eq(n, 5, "expected ids 3..7 once each:\n%s", r->body);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ids[i], (long)(3 + i), "position %zu:\n%s", i, r->body);
    }
    cr_assert_eq(deltas, 1, "%s", r->body);
    cr_assert(strstr(r->body, "event: message.delta\ndata: {\"message_id\""), "%s", r->body);
    cr_assert(strstr(r->body, ": keep-alive\n\n"), "keep-alive expected within 1.5 s");
    cr_assert(strstr(r->body, "hi\\nthere"), "escaped newline kept inside data: %s", r->body);
    free(r);
    gwt_stop(&t);
}

/* With the fake in mode cmd (GAP, GAP0: an event published before the
   stream's subscription counts), a stream resumed from last_id gets the ids
   first..last once each, in order, the missed one from the store. */
static void s_resume_with_gap(const char *cmd, long last_id, long first, long last)
{
    gwt_t t;
    s_ready(&t);
    s_fake_cmd(&t, cmd);
    char resume[40];
    snprintf(resume, sizeof resume, "Last-Event-ID: %ld", last_id);
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, "Accept: text/event-stream",
                          resume, NULL};
    http_t *r = http_do(&t, "GET", "/api/conversations/44444444-4444-4444-8444-444444444444/events",
                        hdrs, NULL, 1500);
    cr_assert_eq(r->status, 200);
    long ids[64];
    size_t deltas;
    size_t n = s_sse_ids(r->body, ids, 64, &deltas);
    cr_assert_eq(n, (size_t)(last - first + 1), "expected ids %ld..%ld once each:\n%s", first, last,
                 r->body);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ids[i], first + (long)i, "position %zu:\n%s", i, r->body);
    }
    free(r);
    gwt_stop(&t);
}

Test(gw_sse, a_missed_seq_is_caught_up_from_the_store)
{
    s_resume_with_gap("GAP", 2, 3, 7);
}

Test(gw_sse, a_missed_first_event_is_caught_up_from_the_store)
{
    s_resume_with_gap("GAP0", 0, 1, 2);
}

Test(gw_sse, a_resume_with_nothing_to_replay_checks_its_first_event)
{
    s_resume_with_gap("GAP", 5, 6, 7);
}

Test(gw_sse, team_stream_live_only)
{
    gwt_t t;
    s_ready(&t);
    s_fake_cmd(&t, "LIVE");
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, NULL};
    http_t *r = http_do(&t, "GET", "/api/stream", hdrs, NULL, 1000);
    cr_assert_eq(r->status, 200);
    long ids[64];
    size_t deltas;
    size_t n = s_sse_ids(r->body, ids, 64, &deltas);
    cr_assert_eq(n, 4, "live ids 4..7:\n%s", r->body);
    cr_assert_eq(ids[0], 4);
    cr_assert_eq(ids[3], 7);
    free(r);
    /* The subscription goes away with the client: a suspended connection
       notices the departure at its next keep-alive (300 ms here). */
    usleep(800 * 1000);
    r = http_do(&t, "GET", "/metrics", NULL, NULL, 0);
    cr_assert(strstr(r->body, "bicky_gateway_sse_clients 0"), "%s", r->body);
    cr_assert(strstr(r->body, "bicky_gateway_sse_topics 0"), "%s", r->body);
    free(r);
    gwt_stop(&t);
}

Test(gw_sse, replay_pages_until_done)
{
    gwt_t t;
    s_ready(&t);
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, NULL};
    http_t *r = http_do(&t, "GET", "/api/stream?after=0", hdrs, NULL, 800);
    cr_assert_eq(r->status, 200);
    long ids[64];
    size_t deltas;
    size_t n = s_sse_ids(r->body, ids, 64, &deltas);
    cr_assert_eq(n, FAKE_STORED, "%s", r->body);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[FAKE_STORED - 1], FAKE_STORED);
    free(r);
    gwt_stop(&t);
}

Test(gw_sse, slow_client_is_disconnected)
{
    gwt_t t;
    s_ready(&t);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t.cfg.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = "GET /api/stream HTTP/1.1\r\nHost: x\r\n"
                      "Authorization: Bearer " FAKE_GOOD_TOKEN "\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    for (int i = 0; i < 100 && s_gauge(&t, "bicky_gateway_sse_topics") != 1; i++) {
        usleep(20 * 1000);
    }
    cr_assert_eq(s_gauge(&t, "bicky_gateway_sse_clients"), 1);
    usleep(100 * 1000);      /* the subscription reaches the fake's XPUB */
    s_fake_cmd(&t, "FLOOD"); /* 4000 events of 2 KiB; nobody reads */
    long clients = 1;
    for (int i = 0; i < 150 && clients != 0; i++) {
        usleep(20 * 1000);
        clients = s_gauge(&t, "bicky_gateway_sse_clients");
    }
    cr_assert_eq(clients, 0, "the slow client is still connected");
    cr_assert_eq(s_gauge(&t, "bicky_gateway_sse_slow_disconnects_total"), 1);
    cr_assert_eq(s_gauge(&t, "bicky_gateway_sse_topics"), 0);
    close(fd);
    gwt_stop(&t);
}

Test(gw_sse, unknown_conversation_is_404_before_streaming)
{
    gwt_t t;
    s_ready(&t);
    const char *hdrs[] = {"Authorization: Bearer " FAKE_GOOD_TOKEN, "Accept: text/event-stream",
                          NULL};
    const char *paths[] = {"/api/conversations/40404040-4444-4444-8444-444444444444/events",
                           "/api/conversations/40404040-4444-4444-8444-444444444444/events"
                           "?after=3"};
    for (int i = 0; i < 2; i++) {
        http_t *r = http_do(&t, "GET", paths[i], hdrs, NULL, 3000);
        cr_assert_eq(r->status, 404, "%ld %s", r->status, r->body);
        cr_assert(strcasestr(r->headers, "Content-Type: application/json"));
        cr_assert(strstr(r->body, "\"code\":\"not_found\""));
        free(r);
    }
    fake_mode(&t, FAKE_SILENT);
    http_t *r = http_do(&t, "GET", paths[0], hdrs, NULL, 3000);
    cr_assert_eq(r->status, 504, "%ld %s", r->status, r->body);
    free(r);
    cr_assert_eq(s_gauge(&t, "bicky_gateway_sse_clients"), 0);
    cr_assert_eq(s_gauge(&t, "bicky_gateway_sse_topics"), 0, "subscriptions are released");
    gwt_stop(&t);
}
