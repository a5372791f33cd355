/*  test_ring — balance, minimal movement on join/leave, and placement that is
    identical in every process (golden values) for the consistent-hash ring. */
#include "common/ring.h"
#include "common/util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define KEYS 1000000

/* Deterministic key i: the index spread through the 16 bytes. */
static void s_key(uint32_t i, uint8_t key[16])
{
    uint64_t a = util_hash64(&i, sizeof i);
    uint64_t b = a * 0x9e3779b97f4a7c15ULL + i;
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static ring_t *s_ring(int n)
{
    ring_member_t m[8];
    memset(m, 0, sizeof m);
    for (int i = 0; i < n; i++) {
        snprintf(m[i].id, sizeof m[i].id, "n%d", i + 1);
        m[i].weight = 1;
    }
    ring_t *r = ring_new(0);
    cr_assert_not_null(r);
    cr_assert_eq(ring_set(r, m, (size_t)n), 0);
    return r;
}

Test(ring, balance_three_nodes, .timeout = 60)
{
    ring_t *r = s_ring(3);
    size_t count[3] = {0};
    uint8_t key[16];
    for (uint32_t i = 0; i < KEYS; i++) {
        util_uuid_generate(key);
        int owner = ring_lookup(r, key);
        cr_assert(owner >= 0 && owner < 3);
        count[owner]++;
    }
    size_t max = count[0] > count[1] ? count[0] : count[1];
    max = max > count[2] ? max : count[2];
    double ratio = (double)max / (KEYS / 3.0);
    cr_log_info("max/mean %.4f (%zu %zu %zu)", ratio, count[0], count[1], count[2]);
    cr_assert_leq(ratio, 1.05, "max/mean %.4f", ratio);
    double total = ring_share(r, 0) + ring_share(r, 1) + ring_share(r, 2);
    cr_assert_float_eq(total, 1.0, 1e-9);
    ring_destroy(&r);
    cr_assert_null(r);
}

Test(ring, join_moves_a_quarter_only_to_the_new_node, .timeout = 60)
{
    ring_t *r3 = s_ring(3), *r4 = s_ring(4);
    size_t moved = 0;
    uint8_t key[16];
    for (uint32_t i = 0; i < KEYS; i++) {
        s_key(i, key);
        int a = ring_lookup(r3, key), b = ring_lookup(r4, key);
        if (a != b) {
            cr_assert_eq(b, 3, "key %u moved between old nodes %d -> %d", i, a, b);
            moved++;
        }
    }
    double share = (double)moved / KEYS;
    cr_log_info("join moved %.4f of keys", share);
    cr_assert(share > 0.22 && share < 0.28, "moved %.4f", share);
    ring_destroy(&r3);
    ring_destroy(&r4);
}

Test(ring, leave_moves_only_the_leavers_keys, .timeout = 60)
{
    ring_t *r3 = s_ring(3);
    ring_member_t two[2] = {{"n1", 1}, {"n3", 1}}; /* n2 leaves */
    ring_t *r2 = ring_new(0);
    cr_assert_eq(ring_set(r2, two, 2), 0);
    uint8_t key[16];
    for (uint32_t i = 0; i < KEYS / 4; i++) {
        s_key(i, key);
        const char *before = ring_member(r3, (size_t)ring_lookup(r3, key))->id;
        const char *after = ring_member(r2, (size_t)ring_lookup(r2, key))->id;
        if (strcmp(before, "n2") != 0) {
            cr_assert_str_eq(before, after, "key %u moved though its owner stayed", i);
        }
    }
    ring_destroy(&r3);
    ring_destroy(&r2);
}

Test(ring, weights_scale_the_share)
{
    ring_member_t m[2] = {{"a", 1}, {"b", 3}};
    ring_t *r = ring_new(0);
    cr_assert_eq(ring_set(r, m, 2), 0);
    cr_assert_float_eq(ring_share(r, 1), 0.75, 0.03);
    ring_destroy(&r);
}

Test(ring, golden_placement_is_stable_across_processes)
{
    /* These owners were computed once and must never change: a change would
       move every conversation of a running cluster on upgrade. */
    ring_t *r = s_ring(3);
    uint64_t digest = 0;
    uint8_t key[16];
    for (uint32_t i = 0; i < 10000; i++) {
        s_key(i, key);
        digest = digest * 31 + (uint64_t)ring_lookup(r, key);
    }
    cr_assert_eq(util_hash64("n1#0", 4), 0x888af6a8b08899c2ULL, "hash changed: %#llx",
                 (unsigned long long)util_hash64("n1#0", 4));
    cr_assert_eq(digest, 0xe7baaec7fa64d945ULL, "placement digest %#llx",
                 (unsigned long long)digest);
    ring_destroy(&r);
}

Test(ring, rejects_bad_members_and_empty_ring)
{
    ring_t *r = ring_new(16);
    uint8_t key[16] = {0};
    cr_assert_eq(ring_lookup(r, key), -1);
    ring_member_t dup[2] = {{"x", 1}, {"x", 1}};
    cr_assert_eq(ring_set(r, dup, 2), -1);
    ring_member_t heavy[1] = {{"x", 65}};
    cr_assert_eq(ring_set(r, heavy, 1), -1);
    ring_member_t empty[1] = {{"", 1}};
    cr_assert_eq(ring_set(r, empty, 1), -1);
    ring_member_t zero[1] = {{"z", 0}};
    cr_assert_eq(ring_set(r, zero, 1), 0);
    cr_assert_eq(ring_lookup(r, key), -1, "weight 0 keeps a member off the ring");
    cr_assert_eq(ring_size(r), 1);
    cr_assert_null(ring_member(r, 5));
    ring_destroy(&r);
    ring_destroy(&r);
    ring_destroy(NULL);
}
