/*  test_gw_limits — the gateway's per-team table (gateway/gw_limits.c): a
    bucket per team (teams do not share tokens), open streams counted per team
    and bounded (force for a WebSocket whose 101 went out), the table's bound
    (idle teams make room, busy ones refuse), the auth answer's limits object
    (members out of range keep their default), pack / unpack. */
#include "gateway/gw_limits.h"

#include <criterion/criterion.h>
#include <string.h>

static limits_t s_lim(uint32_t burst, uint32_t streams)
{
    limits_t l;
    limits_defaults(&l);
    l.rate_n = 1;
    l.rate_per = 3600;
    l.burst = burst;
    l.streams = streams;
    return l;
}

static void s_team(uint8_t team[16], int n)
{
    memset(team, 0, 16);
    team[0] = (uint8_t)(n & 0xff);
    team[1] = (uint8_t)(n >> 8);
    team[15] = 0x42;
}

Test(gw_limits, buckets_are_per_team)
{
    gw_limits_t *self = gw_limits_new(16);
    cr_assert_not_null(self);
    limits_t l = s_lim(2, 5);
    uint8_t a[16], b[16];
    s_team(a, 1);
    s_team(b, 2);
    limits_quota_t q;
    cr_assert(gw_limits_take(self, a, &l, 0, &q));
    cr_assert(gw_limits_take(self, a, &l, 0, &q));
    cr_assert_not(gw_limits_take(self, a, &l, 0, &q), "a's bucket is empty");
    cr_assert_geq(q.retry_after, 1);
    cr_assert(gw_limits_take(self, b, &l, 0, &q), "b has its own");
    cr_assert_eq(q.remaining, 1);
    gw_limits_destroy(&self);
    cr_assert_null(self);
    gw_limits_destroy(&self);
}

Test(gw_limits, streams_are_counted_and_bounded)
{
    gw_limits_t *self = gw_limits_new(16);
    limits_t l = s_lim(10, 2);
    uint8_t a[16], b[16];
    s_team(a, 1);
    s_team(b, 2);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, false), 0);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, false), 0);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, false), -1, "the third is refused");
    cr_assert_eq(gw_limits_streams(self, a), 2);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, true), 0, "forced (101 already sent)");
    cr_assert_eq(gw_limits_streams(self, a), 3);
    cr_assert_eq(gw_limits_stream_open(self, b, &l, false), 0, "another team is not affected");
    gw_limits_stream_close(self, a);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, false), -1, "still 2 open of 2");
    gw_limits_stream_close(self, a);
    gw_limits_stream_close(self, a);
    cr_assert_eq(gw_limits_stream_open(self, a, &l, false), 0, "1 open: one more");
    for (int i = 0; i < 5; i++) {
        gw_limits_stream_close(self, a); /* more closes than opens stay at 0 */
    }
    cr_assert_eq(gw_limits_streams(self, a), 0);
    uint8_t c[16];
    s_team(c, 3);
    gw_limits_stream_close(self, c); /* an unknown team: nothing */
    cr_assert_eq(gw_limits_streams(self, c), 0);
    gw_limits_destroy(&self);
}

Test(gw_limits, the_table_is_bounded)
{
    gw_limits_t *self = gw_limits_new(4);
    limits_t l = s_lim(10, 10);
    uint8_t t[16];
    /* Four busy teams (a stream open each) fill it: a fifth is refused. */
    for (int i = 0; i < 4; i++) {
        s_team(t, i);
        cr_assert_eq(gw_limits_stream_open(self, t, &l, false), 0);
    }
    s_team(t, 4);
    cr_assert_not(gw_limits_take(self, t, &l, 0, NULL), "no room: refused, not grown");
    cr_assert_eq(gw_limits_stream_open(self, t, &l, true), -1);
    /* A team whose streams closed and whose bucket is full makes room. */
    s_team(t, 0);
    gw_limits_stream_close(self, t);
    s_team(t, 4);
    cr_assert(gw_limits_take(self, t, &l, 0, NULL));
    /* A team that used a token is not idle until its bucket refills. */
    for (int i = 5; i < 9; i++) {
        s_team(t, i);
        cr_assert_not(gw_limits_take(self, t, &l, 0, NULL), "team %d: no idle team to drop", i);
    }
    gw_limits_destroy(&self);
}

Test(gw_limits, limits_from_the_auth_answer)
{
    limits_t l;
    json_t *o = json_loads("{\"rate\":\"50/m\",\"burst\":7,\"actors\":0,\"streams\":-3,"
                           "\"turns\":\"9\",\"worktrees\":2000000000,\"strategies\":\"echo,gpt\"}",
                           0, NULL);
    cr_assert_not_null(o);
    gw_limits_from_json(&l, o);
    limits_t d;
    limits_defaults(&d);
    cr_assert_eq(l.rate_n, 50);
    cr_assert_eq(l.rate_per, 60);
    cr_assert_eq(l.burst, 7);
    cr_assert_eq(l.actors, d.actors, "0 keeps the default");
    cr_assert_eq(l.streams, d.streams, "negative keeps the default");
    cr_assert_eq(l.turns, d.turns, "a string keeps the default");
    cr_assert_eq(l.worktrees, d.worktrees, "too large keeps the default");
    cr_assert_str_eq(l.strategies, "echo,gpt");
    json_decref(o);
    o = json_loads("{\"rate\":\"fast\",\"strategies\":\"Echo\"}", 0, NULL);
    gw_limits_from_json(&l, o);
    cr_assert_eq(l.rate_n, d.rate_n);
    cr_assert_str_eq(l.strategies, "", "a bad list allows every strategy (the default)");
    json_decref(o);
    gw_limits_from_json(&l, NULL);
    cr_assert_eq(memcmp(&l, &d, sizeof l), 0, "no object: the defaults");
}

Test(gw_limits, pack_and_unpack)
{
    limits_t l = s_lim(3, 4);
    l.turns = 5;
    l.actors = 6;
    l.worktrees = 7;
    uint32_t p[3];
    gw_limits_pack(&l, p);
    limits_t u;
    gw_limits_unpack(p, &u);
    cr_assert_eq(u.turns, 5);
    cr_assert_eq(u.actors, 6);
    cr_assert_eq(u.worktrees, 7);
    limits_t d;
    limits_defaults(&d);
    cr_assert_eq(u.burst, d.burst, "the rest default");
}
