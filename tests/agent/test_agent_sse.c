/*  test_agent_sse — the incremental SSE parser: a table of streams, each fed
    whole, split in two at every byte boundary and one byte at a time, must
    give the same events; bounds and callback stops are errors. */
#include "node/agent/agent_sse.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char out[4096]; /* events as "name|data;" */
    int count;      /* events seen */
    int stop_after; /* return -1 from this event on (0: never) */
} s_sink_t;

static int s_on_event(void *arg, const char *event, const char *data, size_t len)
{
    s_sink_t *sink = arg;
    cr_assert_eq(strlen(data), len, "data is NUL-terminated at len");
    size_t used = strlen(sink->out);
    snprintf(sink->out + used, sizeof sink->out - used, "%s|%s;", event, data);
    sink->count++;
    return sink->stop_after && sink->count >= sink->stop_after ? -1 : 0;
}

typedef struct {
    const char *in;   /* the stream */
    const char *want; /* events */
    int pending;      /* agent_sse_pending at the end */
} s_case_t;

static const s_case_t s_cases[] = {
    {"data: hello\n\n", "message|hello;", 0},
    {"event: add\ndata: 1\n\n", "add|1;", 0},
    {"event: a\r\ndata: x\r\n\r\n", "a|x;", 0},
    {"data: a\r\rdata: b\r\r", "message|a;message|b;", 0},
    {"data: a\r\n\rdata: b\n\r\n", "message|a;message|b;", 0},
    {": ping\n\ndata: x\n\n", "message|x;", 0},
    {":\n: another comment\ndata: x\n\n", "message|x;", 0},
    {"data: a\ndata: b\ndata\n\n", "message|a\nb\n;", 0},
    {"data:x\n\ndata:  y\n\n", "message|x;message| y;", 0},
    {"event: x\n\n", "", 0},
    {"data: x\n", "", 1},
    {"data: x", "", 1},
    {"id: 5\nretry: 10\ndata: y\n\n", "message|y;", 0},
    {"\xEF\xBB\xBF"
     "data: b\n\n",
     "message|b;", 0},
    {"data: {\"a\":1}\n\ndata: [DONE]\n\n", "message|{\"a\":1};message|[DONE];", 0},
    {"event: e1\ndata: 1\n\ndata: 2\n\n", "e1|1;message|2;", 0},
    {"foo: bar\ndata: z\n\n", "message|z;", 0},
    {"data:\n\n", "message|;", 0},
    {"event: content_block_delta\ndata: {\"t\":\"a:b\"}\n\n\n\n",
     "content_block_delta|{\"t\":\"a:b\"};", 0},
    {"\n\n\ndata: late\n\n", "message|late;", 0},
};

static void s_run(const s_case_t *c, const size_t *cuts, size_t ncuts, const char *how)
{
    s_sink_t sink = {0};
    agent_sse_t *sse = agent_sse_new(0, 0, s_on_event, &sink);
    cr_assert_not_null(sse);
    size_t len = strlen(c->in), at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        cr_assert_eq(agent_sse_feed(sse, c->in + at, end - at), 0, "%s: %s", how, c->in);
        at = end;
    }
    cr_assert_str_eq(sink.out, c->want, "%s: input \"%s\"", how, c->in);
    cr_assert_eq(agent_sse_pending(sse), c->pending, "%s: pending for \"%s\"", how, c->in);
    cr_assert_null(agent_sse_error(sse));
    agent_sse_destroy(&sse);
    cr_assert_null(sse);
}

Test(agent_sse, table_whole_split_and_bytewise)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        size_t len = strlen(c->in);
        s_run(c, NULL, 0, "whole");
        for (size_t k = 0; k <= len; k++) {
            size_t cut[1] = {k};
            s_run(c, cut, 1, "split");
        }
        size_t cuts[256];
        cr_assert_lt(len, 256);
        for (size_t k = 0; k < len; k++) {
            cuts[k] = k + 1;
        }
        s_run(c, cuts, len, "bytewise");
    }
}

Test(agent_sse, empty_feeds_and_destroy_null)
{
    s_sink_t sink = {0};
    agent_sse_t *sse = agent_sse_new(0, 0, s_on_event, &sink);
    cr_assert_eq(agent_sse_feed(sse, "", 0), 0);
    cr_assert_eq(agent_sse_pending(sse), 0);
    agent_sse_destroy(&sse);
    agent_sse_destroy(&sse);
    agent_sse_destroy(NULL);
}

Test(agent_sse, oversize_line_is_an_error)
{
    const char *in = "data: 0123456789abcdef\n\n";
    for (size_t k = 0; k <= strlen(in); k++) {
        s_sink_t sink = {0};
        agent_sse_t *sse = agent_sse_new(16, 0, s_on_event, &sink);
        int rc = agent_sse_feed(sse, in, k);
        if (rc == 0) {
            rc = agent_sse_feed(sse, in + k, strlen(in) - k);
        }
        cr_assert_eq(rc, -1, "cut at %zu", k);
        cr_assert_str_eq(agent_sse_error(sse), "line longer than 16 bytes");
        cr_assert_eq(sink.count, 0);
        cr_assert_eq(agent_sse_feed(sse, "data: x\n\n", 9), -1, "stays failed");
        agent_sse_destroy(&sse);
    }
    /* Exactly at the bound is fine. */
    s_sink_t sink = {0};
    agent_sse_t *sse = agent_sse_new(16, 0, s_on_event, &sink);
    cr_assert_eq(agent_sse_feed(sse, "data: 0123456789\n\n", 18), 0);
    cr_assert_str_eq(sink.out, "message|0123456789;");
    agent_sse_destroy(&sse);
}

Test(agent_sse, unterminated_growth_is_bounded)
{
    s_sink_t sink = {0};
    agent_sse_t *sse = agent_sse_new(1000, 0, s_on_event, &sink);
    char chunk[100];
    memset(chunk, 'z', sizeof chunk);
    int rc = 0, feeds = 0;
    while (rc == 0 && feeds < 100) {
        rc = agent_sse_feed(sse, chunk, sizeof chunk);
        feeds++;
    }
    cr_assert_eq(rc, -1);
    cr_assert_eq(feeds, 11, "fails as soon as the line passes 1000 bytes");
    agent_sse_destroy(&sse);
}

Test(agent_sse, oversize_event_data_is_an_error)
{
    s_sink_t sink = {0};
    agent_sse_t *sse = agent_sse_new(0, 8, s_on_event, &sink);
    const char *in = "data: 12345\ndata: 6789\n\n";
    cr_assert_eq(agent_sse_feed(sse, in, strlen(in)), -1);
    cr_assert_str_eq(agent_sse_error(sse), "event data longer than 8 bytes");
    cr_assert_eq(sink.count, 0);
    agent_sse_destroy(&sse);

    sse = agent_sse_new(0, 8, s_on_event, &sink);
    in = "data: 1234\ndata: 567\n\n";
    cr_assert_eq(agent_sse_feed(sse, in, strlen(in)), 0, "8 bytes with the joining newline");
    cr_assert_str_eq(sink.out, "message|1234\n567;");
    agent_sse_destroy(&sse);
}

Test(agent_sse, callback_can_stop_the_parser)
{
    s_sink_t sink = {.stop_after = 2};
    agent_sse_t *sse = agent_sse_new(0, 0, s_on_event, &sink);
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    cr_assert_eq(agent_sse_feed(sse, in, strlen(in)), -1);
    cr_assert_str_eq(sink.out, "message|1;message|2;", "nothing after the stop");
    cr_assert_str_eq(agent_sse_error(sse), "stopped by callback");
    agent_sse_destroy(&sse);
}

static int s_on_len(void *arg, const char *event, const char *data, size_t len)
{
    *(size_t *)arg = len;
    cr_assert_eq(memcmp(data, "a\0b", 4), 0);
    return 0;
}

Test(agent_sse, data_may_hold_nul_bytes)
{
    size_t len = 0;
    static const char in[] = "event: e\ndata: a\0b\n\n";
    agent_sse_t *sse = agent_sse_new(0, 0, s_on_len, &len);
    cr_assert_eq(agent_sse_feed(sse, in, sizeof in - 1), 0);
    cr_assert_eq(len, 3);
    agent_sse_destroy(&sse);
    sse = agent_sse_new(0, 0, NULL, NULL);
    cr_assert_eq(agent_sse_feed(sse, in, sizeof in - 1), 0, "no callback: events are dropped");
    agent_sse_destroy(&sse);
}
