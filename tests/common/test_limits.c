/*  test_limits — a team's limits (common/limits.c): the defaults, the parsing
    of rates, counts and strategy lists (table driven, with malformed input),
    the allow-list, and the token bucket (burst, refill at /s, /m and /h, a
    lowered burst, Retry-After and RateLimit-Reset, time going backwards). */
#include "common/limits.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(limits, defaults_are_the_documented_ones)
{
    limits_t l;
    memset(&l, 0xab, sizeof l);
    limits_defaults(&l);
    char rate[24];
    limits_rate_format(&l, rate, sizeof rate);
    cr_assert_str_eq(rate, "100000/s");
    cr_assert_eq(l.burst, 200000);
    cr_assert_eq(l.actors, 10000000);
    cr_assert_eq(l.streams, 100000);
    cr_assert_eq(l.turns, 10000);
    cr_assert_eq(l.worktrees, 1000);
    cr_assert_str_eq(l.strategies, "");
}

typedef struct {
    const char *text;
    int rc;
    uint32_t n, per;
} s_rate_case_t;

Test(limits, parses_rates)
{
    static const s_rate_case_t cases[] = {
        {"50/s", 0, 50, 1},
        {"1/m", 0, 1, 60},
        {"3600/h", 0, 3600, 3600},
        {"1000000000/s", 0, 1000000000, 1},
        {"1000000001/s", -1, 0, 0},
        {"99999999999/s", -1, 0, 0},
        {"0/s", -1, 0, 0},
        {"050/s", -1, 0, 0},
        {"50", -1, 0, 0},
        {"50/", -1, 0, 0},
        {"/s", -1, 0, 0},
        {"50/d", -1, 0, 0},
        {"50/sec", -1, 0, 0},
        {"50/S", -1, 0, 0},
        {" 50/s", -1, 0, 0},
        {"50 /s", -1, 0, 0},
        {"-5/s", -1, 0, 0},
        {"5/s/s", -1, 0, 0},
        {"", -1, 0, 0},
        {NULL, -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t n = 7, per = 7;
        int rc = limits_parse_rate(cases[i].text, &n, &per);
        cr_assert_eq(rc, cases[i].rc, "rate '%s'", cases[i].text ? cases[i].text : "(null)");
        if (rc == 0) {
            cr_assert_eq(n, cases[i].n, "rate '%s'", cases[i].text);
            cr_assert_eq(per, cases[i].per, "rate '%s'", cases[i].text);
        } else {
            cr_assert_eq(n, 7, "untouched on error");
        }
    }
}

Test(limits, parses_counts)
{
    static const struct {
        const char *text;
        int rc;
        uint32_t v;
    } cases[] = {
        {"1", 0, 1},
        {"100", 0, 100},
        {"1000000000", 0, 1000000000},
        {"0", -1, 0},
        {"1000000001", -1, 0},
        {"4294967297", -1, 0},
        {"-1", -1, 0},
        {"1e3", -1, 0},
        {"12a", -1, 0},
        {" 1", -1, 0},
        {"", -1, 0},
        {"01", -1, 0},
        {"+1", -1, 0},
        {"12345678901", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t v = 9;
        int rc = limits_parse_count(cases[i].text, &v);
        cr_assert_eq(rc, cases[i].rc, "count '%s'", cases[i].text ? cases[i].text : "(null)");
        cr_assert_eq(v, rc == 0 ? cases[i].v : 9u, "count '%s'", cases[i].text);
    }
}

Test(limits, parses_strategy_lists)
{
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"echo", 0},
        {"echo,claude", 0},
        {"claude-code,gpt_4.1,a", 0},
        {"", -1},
        {",", -1},
        {"echo,", -1},
        {",echo", -1},
        {"echo,,claude", -1},
        {"Echo", -1},
        {"echo claude", -1},
        {"echo;claude", -1},
        {"echo,echo", -1},
        {"a,b,a", -1},
        {"é", -1},
        {NULL, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        int rc = limits_parse_strategies(cases[i].text, &why);
        cr_assert_eq(rc, cases[i].rc, "list '%s'", cases[i].text ? cases[i].text : "(null)");
        if (rc < 0) {
            cr_assert_not_null(why, "a reason for '%s'", cases[i].text);
        }
    }
    char name65[66], list[600], many[700];
    memset(name65, 'a', 65);
    name65[65] = 0;
    cr_assert_eq(limits_parse_strategies(name65, NULL), -1, "a 65-byte name");
    name65[64] = 0;
    cr_assert_eq(limits_parse_strategies(name65, NULL), 0, "a 64-byte name");
    memset(list, 'a', sizeof list - 1);
    list[sizeof list - 1] = 0;
    cr_assert_eq(limits_parse_strategies(list, NULL), -1, "longer than the buffer");
    size_t n = 0;
    for (int i = 0; i < 65; i++) {
        n += (size_t)snprintf(many + n, sizeof many - n, "%s%d", i ? "," : "", i);
    }
    cr_assert_eq(limits_parse_strategies(many, NULL), -1, "65 names");
}

Test(limits, allow_list)
{
    limits_t l;
    limits_defaults(&l);
    cr_assert(limits_strategy_allowed(&l, "anything"), "no list: every strategy");
    snprintf(l.strategies, sizeof l.strategies, "echo,claude");
    cr_assert(limits_strategy_allowed(&l, "echo"));
    cr_assert(limits_strategy_allowed(&l, "claude"));
    cr_assert_not(limits_strategy_allowed(&l, "claude-code"), "a longer name");
    cr_assert_not(limits_strategy_allowed(&l, "clau"), "a prefix");
    cr_assert_not(limits_strategy_allowed(&l, "echo,claude"), "the whole list");
    cr_assert_not(limits_strategy_allowed(&l, "gpt"));
    cr_assert_not(limits_strategy_allowed(&l, ""));
    cr_assert_not(limits_strategy_allowed(&l, NULL));
}

static limits_t s_rate(uint32_t n, uint32_t per, uint32_t burst)
{
    limits_t l;
    limits_defaults(&l);
    l.rate_n = n;
    l.rate_per = per;
    l.burst = burst;
    return l;
}

Test(limits_bucket, starts_full_then_refuses_past_the_burst)
{
    limits_t l = s_rate(10, 1, 5);
    limits_bucket_t b = {0};
    limits_quota_t q;
    cr_assert(limits_bucket_full(&b, &l, 1000), "a new bucket is full");
    for (uint32_t i = 0; i < 5; i++) {
        cr_assert(limits_bucket_take(&b, &l, 1000, &q), "token %u", i);
        cr_assert_eq(q.limit, 5);
        cr_assert_eq(q.remaining, 4 - i);
        cr_assert_eq(q.retry_after, 0);
    }
    cr_assert_not(limits_bucket_take(&b, &l, 1000, &q), "the 6th at the same instant");
    cr_assert_eq(q.remaining, 0);
    cr_assert_eq(q.retry_after, 1, "one token at 10/s: 0.1 s, rounded up to 1");
    cr_assert_eq(q.reset_s, 1, "5 tokens at 10/s: 0.5 s, rounded up");
    cr_assert_not(limits_bucket_full(&b, &l, 1000));
}

Test(limits_bucket, refills_at_the_rate)
{
    limits_t l = s_rate(10, 1, 5);
    limits_bucket_t b = {0};
    for (int i = 0; i < 5; i++) {
        limits_bucket_take(&b, &l, 0, NULL);
    }
    cr_assert_not(limits_bucket_take(&b, &l, 50, NULL), "half a token after 50 ms");
    cr_assert(limits_bucket_take(&b, &l, 100, NULL), "one token after 100 ms");
    cr_assert_not(limits_bucket_take(&b, &l, 100, NULL));
    /* 10 s later the bucket is full again, never more than the burst. */
    limits_quota_t q;
    cr_assert(limits_bucket_full(&b, &l, 10100));
    cr_assert(limits_bucket_take(&b, &l, 10100, &q));
    cr_assert_eq(q.remaining, 4);
    /* 1,000 requests over 10 s at 10/s: about 100 + the burst pass. */
    limits_bucket_t c = {0};
    int ok = 0;
    for (int t = 0; t < 1000; t++) {
        ok += limits_bucket_take(&c, &l, 20000 + t * 10, NULL);
    }
    cr_assert(ok >= 104 && ok <= 106, "%d passed", ok);
}

Test(limits_bucket, minutes_and_hours)
{
    limits_t m = s_rate(1, 60, 1);
    limits_bucket_t b = {0};
    limits_quota_t q;
    cr_assert(limits_bucket_take(&b, &m, 0, &q));
    cr_assert_not(limits_bucket_take(&b, &m, 1000, &q));
    cr_assert_eq(q.retry_after, 59, "1/m: 59 s left after 1 s");
    cr_assert(limits_bucket_take(&b, &m, 60000, &q));
    limits_t h = s_rate(2, 3600, 2);
    limits_bucket_t c = {0};
    limits_bucket_take(&c, &h, 0, NULL);
    limits_bucket_take(&c, &h, 0, NULL);
    cr_assert_not(limits_bucket_take(&c, &h, 0, &q));
    cr_assert_eq(q.retry_after, 1800, "2/h: a token every 30 minutes");
    cr_assert_eq(q.reset_s, 3600);
}

Test(limits_bucket, a_lowered_burst_applies_at_once)
{
    limits_t l = s_rate(10, 1, 100);
    limits_bucket_t b = {0};
    limits_quota_t q;
    limits_bucket_take(&b, &l, 0, &q);
    cr_assert_eq(q.remaining, 99);
    l.burst = 3;
    cr_assert(limits_bucket_take(&b, &l, 0, &q));
    cr_assert_eq(q.remaining, 2);
    cr_assert_eq(q.limit, 3);
}

Test(limits_bucket, time_going_backwards_adds_nothing)
{
    limits_t l = s_rate(1, 1, 1);
    limits_bucket_t b = {0};
    cr_assert(limits_bucket_take(&b, &l, 5000, NULL));
    cr_assert_not(limits_bucket_take(&b, &l, 1000, NULL));
    cr_assert_not(limits_bucket_take(&b, &l, 5500, NULL));
    cr_assert(limits_bucket_take(&b, &l, 6000, NULL));
}
