/*  test_node_actor — the actor table (hash + LRU) and the bounded mailbox,
    without a database: add/find/remove under churn, LRU order, the mailbox
    limit, and the compact size of a resident actor. */
#include "common/util.h"
#include "node/ops/node_ops.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static node_req_t *s_req(uint64_t id)
{
    node_req_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->req_id = id;
    return r;
}

Test(node_actor, table_lifecycle)
{
    node_actors_t *t = node_actors_new(NULL);
    cr_assert_not_null(t);
    uint8_t conv[16], team[16];
    util_uuid_generate(conv);
    util_uuid_generate(team);
    node_actor_t *a = node_actors_add(t, conv, team, 5);
    cr_assert_not_null(a);
    cr_assert_eq(a->state, NODE_ACTOR_LOADING);
    cr_assert_eq(a->echo_delay_ms, -1);
    cr_assert_eq(node_actors_find(t, conv), a);
    cr_assert_null(node_actors_add(t, conv, team, 6), "duplicate accepted");
    cr_assert_eq(node_actors_count(t), 1);
    cr_assert_eq(node_actors_oldest(t), a);
    node_actors_remove(t, a);
    cr_assert_null(node_actors_find(t, conv));
    cr_assert_eq(node_actors_count(t), 0);
    node_actors_destroy(&t);
    cr_assert_null(t);
    node_actors_destroy(&t);
}

Test(node_actor, churn_keeps_every_key_findable)
{
    node_actors_t *t = node_actors_new(NULL);
    enum { N = 20000 };
    uint8_t(*ids)[16] = malloc(N * 16);
    uint8_t team[16] = {1};
    for (int i = 0; i < N; i++) {
        util_uuid_generate(ids[i]);
        cr_assert_not_null(node_actors_add(t, ids[i], team, i));
    }
    /* Remove every third, then check all presence/absence (backward-shift deletion). */
    for (int i = 0; i < N; i += 3) {
        node_actors_remove(t, node_actors_find(t, ids[i]));
    }
    for (int i = 0; i < N; i++) {
        node_actor_t *a = node_actors_find(t, ids[i]);
        if (i % 3 == 0) {
            cr_assert_null(a, "removed key %d still found", i);
        } else {
            cr_assert_not_null(a, "key %d lost", i);
            cr_assert_eq(memcmp(a->conv_id, ids[i], 16), 0);
        }
    }
    cr_assert_eq(node_actors_count(t), (size_t)(N - (N + 2) / 3));
    free(ids);
    node_actors_destroy(&t);
}

Test(node_actor, lru_order_follows_touches)
{
    node_actors_t *t = node_actors_new(NULL);
    uint8_t team[16] = {2}, c[3][16];
    node_actor_t *a[3];
    for (int i = 0; i < 3; i++) {
        util_uuid_generate(c[i]);
        a[i] = node_actors_add(t, c[i], team, i);
    }
    cr_assert_eq(node_actors_oldest(t), a[0]);
    node_actors_touch(t, a[0], 10);
    cr_assert_eq(node_actors_oldest(t), a[1]);
    cr_assert_eq(a[0]->last_used_ms, 10);
    node_actors_remove(t, a[1]);
    cr_assert_eq(node_actors_oldest(t), a[2]);
    node_actors_destroy(&t);
}

Test(node_actor, mailbox_is_bounded_and_fifo)
{
    node_actors_t *t = node_actors_new(NULL);
    uint8_t conv[16] = {3}, team[16] = {4};
    node_actor_t *a = node_actors_add(t, conv, team, 0);
    cr_assert_null(a->mbox, "mailbox allocated before use");
    const size_t max = 37;
    for (size_t i = 0; i < max; i++) {
        cr_assert_eq(node_mbox_push(a, s_req(i), max), 0);
    }
    node_req_t *extra = s_req(999);
    cr_assert_eq(node_mbox_push(a, extra, max), -1, "mailbox exceeded its limit");
    node_req_destroy(&extra);
    cr_assert_eq(node_mbox_count(a), max);
    /* Interleave pops and pushes across the ring buffer's wrap. */
    for (size_t i = 0; i < 10; i++) {
        node_req_t *r = node_mbox_pop(a);
        cr_assert_eq(r->req_id, i);
        node_req_destroy(&r);
        cr_assert_eq(node_mbox_push(a, s_req(100 + i), max), 0);
    }
    cr_assert_eq(node_mbox_peek(a)->req_id, 10);
    for (size_t i = 10; i < max; i++) {
        node_req_t *r = node_mbox_pop(a);
        cr_assert_eq(r->req_id, i);
        node_req_destroy(&r);
    }
    for (size_t i = 0; i < 10; i++) {
        node_req_t *r = node_mbox_pop(a);
        cr_assert_eq(r->req_id, 100 + i);
        node_req_destroy(&r);
    }
    cr_assert_null(node_mbox_pop(a));
    cr_assert_null(a->mbox, "empty mailbox keeps memory");
    /* Requests still queued are freed with the table. */
    node_mbox_push(a, s_req(1), max);
    node_actors_destroy(&t);
}

Test(node_actor, resident_actor_is_small)
{
    /* Issue 6: about 1 KB per resident actor at most; the struct is far below. */
    cr_assert_leq(sizeof(node_actor_t), 128, "node_actor_t is %zu bytes", sizeof(node_actor_t));
}

Test(node_actor, names_parse_both_ways)
{
    for (int s = NODE_ST_IDLE; s <= NODE_ST_ARCHIVED; s++) {
        cr_assert_eq(node_status_parse(node_status_name(s)), s);
    }
    for (int b = NODE_BUSY_ENQUEUE; b <= NODE_BUSY_INTERRUPT; b++) {
        cr_assert_eq(node_on_busy_parse(node_on_busy_name(b)), b);
    }
    cr_assert_eq(node_status_parse("bogus"), -1);
    cr_assert_eq(node_on_busy_parse(NULL), -1);
}
