/*  test_gw_auth — the bounded token cache (gw_auth_cache): hits, misses,
    positive and negative TTLs, the capacity bound and clock eviction. */
#include "gateway/gateway_internal.h"

#include "common/util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(gw_auth, .timeout = 10);

static void s_key(int i, char out[65])
{
    char text[32];
    snprintf(text, sizeof text, "token-%d", i);
    util_sha256_hex(text, strlen(text), out);
}

Test(gw_auth, lifecycle)
{
    gw_auth_cache_t *c = gw_auth_cache_new(16, 60000, 5000);
    cr_assert_not_null(c);
    gw_auth_cache_destroy(&c);
    cr_assert_null(c);
    gw_auth_cache_destroy(&c);
}

Test(gw_auth, positive_and_negative_ttl)
{
    gw_auth_cache_t *c = gw_auth_cache_new(16, 60000, 5000);
    char a[65], b[65];
    s_key(1, a);
    s_key(2, b);
    uint8_t team[16], got[16];
    memset(team, 0xab, sizeof team);
    cr_assert_eq(gw_auth_cache_get(c, a, 0, got, NULL), GW_AUTH_MISS);
    gw_auth_cache_put(c, a, team, NULL, 1000);
    gw_auth_cache_put(c, b, NULL, NULL, 1000);
    cr_assert_eq(gw_auth_cache_get(c, a, 2000, got, NULL), GW_AUTH_ALLOW);
    cr_assert_eq(memcmp(got, team, 16), 0);
    cr_assert_eq(gw_auth_cache_get(c, b, 2000, got, NULL), GW_AUTH_DENY);
    cr_assert_eq(gw_auth_cache_get(c, b, 5999, got, NULL), GW_AUTH_DENY);
    cr_assert_eq(gw_auth_cache_get(c, b, 6000, got, NULL), GW_AUTH_MISS, "negative TTL 5 s");
    cr_assert_eq(gw_auth_cache_get(c, a, 60999, got, NULL), GW_AUTH_ALLOW);
    cr_assert_eq(gw_auth_cache_get(c, a, 61000, got, NULL), GW_AUTH_MISS, "positive TTL 60 s");
    cr_assert_eq(gw_auth_cache_size(c), 0, "expired entries are dropped on lookup");
    /* A refused token that becomes valid is overwritten. */
    gw_auth_cache_put(c, b, NULL, NULL, 0);
    gw_auth_cache_put(c, b, team, NULL, 1);
    cr_assert_eq(gw_auth_cache_get(c, b, 2, got, NULL), GW_AUTH_ALLOW);
    cr_assert_eq(gw_auth_cache_size(c), 1);
    gw_auth_cache_destroy(&c);
}

Test(gw_auth, keeps_the_team_limits_of_the_answer)
{
    gw_auth_cache_t *c = gw_auth_cache_new(16, 60000, 5000);
    char a[65], b[65];
    s_key(1, a);
    s_key(2, b);
    uint8_t team[16], got[16];
    memset(team, 0xcd, sizeof team);
    limits_t set, out, def;
    limits_defaults(&set);
    limits_defaults(&def);
    set.turns = 3;
    snprintf(set.strategies, sizeof set.strategies, "echo");
    gw_auth_cache_put(c, a, team, &set, 0);
    gw_auth_cache_put(c, b, team, NULL, 0);
    cr_assert_eq(gw_auth_cache_get(c, a, 1, got, &out), GW_AUTH_ALLOW);
    cr_assert_eq(out.turns, 3);
    cr_assert_str_eq(out.strategies, "echo");
    cr_assert_eq(gw_auth_cache_get(c, b, 1, got, &out), GW_AUTH_ALLOW);
    cr_assert_eq(memcmp(&out, &def, sizeof out), 0, "no limits given: the defaults");
    /* A later answer (the cache entry expired and was asked again) replaces them. */
    set.turns = 4;
    gw_auth_cache_put(c, a, team, &set, 2);
    cr_assert_eq(gw_auth_cache_get(c, a, 3, got, &out), GW_AUTH_ALLOW);
    cr_assert_eq(out.turns, 4);
    gw_auth_cache_destroy(&c);
}

Test(gw_auth, capacity_is_a_hard_bound)
{
    gw_auth_cache_t *c = gw_auth_cache_new(64, 60000, 5000);
    uint8_t team[16] = {1};
    char k[65];
    for (int i = 0; i < 1000; i++) {
        s_key(i, k);
        gw_auth_cache_put(c, k, team, NULL, i);
        cr_assert_leq(gw_auth_cache_size(c), 64);
    }
    cr_assert_eq(gw_auth_cache_size(c), 64);
    /* The newest entries are there. */
    uint8_t got[16];
    s_key(999, k);
    cr_assert_eq(gw_auth_cache_get(c, k, 1000, got, NULL), GW_AUTH_ALLOW);
    gw_auth_cache_destroy(&c);
}

Test(gw_auth, clock_keeps_recently_used_entries)
{
    gw_auth_cache_t *c = gw_auth_cache_new(8, 60000, 5000);
    uint8_t team[16] = {2}, got[16];
    char k[65], hot[65];
    s_key(0, hot);
    gw_auth_cache_put(c, hot, team, NULL, 0);
    for (int i = 1; i < 200; i++) {
        /* The hot token is used between every insertion. */
        cr_assert_eq(gw_auth_cache_get(c, hot, i, got, NULL), GW_AUTH_ALLOW, "evicted at %d", i);
        s_key(i, k);
        gw_auth_cache_put(c, k, team, NULL, i);
    }
    gw_auth_cache_destroy(&c);
}

Test(gw_auth, expired_entries_are_evicted_first)
{
    gw_auth_cache_t *c = gw_auth_cache_new(4, 100, 50);
    uint8_t team[16] = {3}, got[16];
    char k[65];
    for (int i = 0; i < 4; i++) {
        s_key(i, k);
        gw_auth_cache_put(c, k, team, NULL, 0);
        cr_assert_eq(gw_auth_cache_get(c, k, 1, got, NULL), GW_AUTH_ALLOW);
    }
    s_key(10, k);
    gw_auth_cache_put(c, k, team, NULL, 500);
    cr_assert_eq(gw_auth_cache_size(c), 4);
    cr_assert_eq(gw_auth_cache_get(c, k, 501, got, NULL), GW_AUTH_ALLOW);
    gw_auth_cache_destroy(&c);
}

/* Fills the cache with tokens 0..n-1 (allowed). */
static void s_fill(gw_auth_cache_t *c, int n)
{
    uint8_t team[16] = {1};
    for (int i = 0; i < n; i++) {
        char k[65];
        s_key(i, k);
        gw_auth_cache_put(c, k, team, NULL, 0);
    }
}

Test(gw_auth, a_revocation_evicts_its_token_and_a_gap_flushes_all)
{
    gw_auth_cache_t *c = gw_auth_cache_new(16, 60000, 5000);
    uint8_t got[16];
    char k0[65], k1[65], k2[65];
    s_key(0, k0);
    s_key(1, k1);
    s_key(2, k2);
    s_fill(c, 3);
    gw_auth_cache_revoked_seq(c, 4); /* the first ring: counter known */
    cr_assert_eq(gw_auth_cache_size(c), 0, "entries cached before the counter was known go");
    s_fill(c, 3);
    gw_auth_cache_revoked_seq(c, 4);
    cr_assert_eq(gw_auth_cache_size(c), 3, "the same counter again changes nothing");
    gw_auth_cache_revoked(c, k0, 5);
    cr_assert_eq(gw_auth_cache_get(c, k0, 1, got, NULL), GW_AUTH_MISS, "the revoked token is gone");
    cr_assert_eq(gw_auth_cache_get(c, k1, 1, got, NULL), GW_AUTH_ALLOW, "the others stay");
    gw_auth_cache_revoked_seq(c, 5);
    cr_assert_eq(gw_auth_cache_size(c), 2, "a ring with the announced counter keeps them");
    gw_auth_cache_revoked(c, k1, 7); /* 6 was missed */
    cr_assert_eq(gw_auth_cache_size(c), 0, "a gap flushes the cache");
    s_fill(c, 3);
    gw_auth_cache_revoked_seq(c, 8); /* a revocation whose message was missed */
    cr_assert_eq(gw_auth_cache_size(c), 0, "a ring with an unannounced counter flushes");
    s_fill(c, 3);
    gw_auth_cache_revoked(c, k2, 8); /* late duplicate of what the ring announced */
    cr_assert_eq(gw_auth_cache_size(c), 2);
    gw_auth_cache_revoked_seq(c, 0);
    cr_assert_eq(gw_auth_cache_size(c), 2, "0 = not known: ignored");
    gw_auth_cache_revoked_seq(c, 1);
    cr_assert_eq(gw_auth_cache_size(c), 0, "a counter that went back (new database) flushes");
    gw_auth_cache_destroy(&c);
}
