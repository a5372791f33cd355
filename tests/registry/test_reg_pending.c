/*  test_reg_pending — the held-replies queue: order, release by stored
    version, capacity, expiry, destruction with entries still held. */
#include "registry/reg_pending.h"

#include <criterion/criterion.h>

static reg_reply_t s_reply(uint64_t req_id, uint64_t version, int64_t since)
{
    reg_reply_t r = {
        .type = PROTO_REG_ACK, .req_id = req_id, .version = version, .since_ms = since};
    r.peer = zframe_new("peer", 4);
    return r;
}

Test(reg_pending, releases_in_order_up_to_the_stored_version)
{
    reg_pending_t *q = reg_pending_new(8);
    cr_assert_not_null(q);
    for (uint64_t i = 1; i <= 4; i++) {
        reg_reply_t r = s_reply(100 + i, i < 3 ? 1 : i, 0);
        cr_assert_eq(reg_pending_add(q, &r), 0);
        cr_assert_null(r.peer, "the queue takes the peer frame");
    }
    cr_assert_eq(reg_pending_size(q), 4);
    reg_reply_t out;
    cr_assert_eq(reg_pending_pop(q, 0, &out), -1, "nothing stored yet");
    cr_assert_eq(reg_pending_pop(q, 1, &out), 0);
    cr_assert_eq(out.req_id, 101);
    cr_assert_not_null(out.peer);
    zframe_destroy(&out.peer);
    cr_assert_eq(reg_pending_pop(q, 1, &out), 0);
    cr_assert_eq(out.req_id, 102);
    zframe_destroy(&out.peer);
    cr_assert_eq(reg_pending_pop(q, 2, &out), -1, "version 3 waits");
    cr_assert_eq(reg_pending_pop(q, UINT64_MAX, &out), 0);
    cr_assert_eq(out.req_id, 103);
    zframe_destroy(&out.peer);
    cr_assert_eq(reg_pending_size(q), 1);
    reg_pending_destroy(&q);
    cr_assert_null(q);
    reg_pending_destroy(&q);
}

Test(reg_pending, is_bounded_and_wraps_around)
{
    reg_pending_t *q = reg_pending_new(3);
    reg_reply_t out;
    for (int round = 0; round < 5; round++) {
        for (uint64_t i = 0; i < 3; i++) {
            reg_reply_t r = s_reply(i, (uint64_t)round, 0);
            cr_assert_eq(reg_pending_add(q, &r), 0);
        }
        reg_reply_t extra = s_reply(99, (uint64_t)round, 0);
        cr_assert_eq(reg_pending_add(q, &extra), -1, "full");
        cr_assert_not_null(extra.peer, "a refused entry keeps its peer");
        zframe_destroy(&extra.peer);
        for (uint64_t i = 0; i < 3; i++) {
            cr_assert_eq(reg_pending_pop(q, (uint64_t)round, &out), 0);
            cr_assert_eq(out.req_id, i);
            zframe_destroy(&out.peer);
        }
    }
    reg_pending_destroy(&q);
}

Test(reg_pending, expires_old_entries)
{
    reg_pending_t *q = reg_pending_new(8);
    reg_reply_t a = s_reply(1, 1, 100), b = s_reply(2, 1, 200), c = s_reply(3, 2, 300);
    reg_pending_add(q, &a);
    reg_pending_add(q, &b);
    reg_pending_add(q, &c);
    cr_assert_eq(reg_pending_expire(q, 100), 0);
    cr_assert_eq(reg_pending_expire(q, 250), 2);
    reg_reply_t out;
    cr_assert_eq(reg_pending_pop(q, 5, &out), 0);
    cr_assert_eq(out.req_id, 3);
    zframe_destroy(&out.peer);
    cr_assert_eq(reg_pending_size(q), 0);
    /* Destroyed with entries still held: they are freed (ASan checks). */
    reg_reply_t d = s_reply(4, 3, 400);
    reg_pending_add(q, &d);
    reg_pending_destroy(&q);
}
