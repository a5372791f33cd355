/*  test_reg_members — the membership table's rules, driven with explicit
    clocks: joins, heartbeats, deaths, a pause of the registry, drains,
    removal, restore, validation. */
#include "registry/reg_members.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static reg_now_t s_at(int64_t ms)
{
    return (reg_now_t){.mono_ms = ms, .wall_ms = 1700000000000 + ms};
}

static reg_change_t s_join(reg_members_t *m, const char *id, uint64_t weight, int64_t at)
{
    reg_join_t j = {id, "tcp://127.0.0.1:7110", "tcp://127.0.0.1:7111", weight};
    const char *why = NULL;
    return reg_members_register(m, &j, s_at(at), &why);
}

Test(reg_members, lifecycle_and_sorted_order)
{
    reg_members_t *m = reg_members_new(3000);
    cr_assert_not_null(m);
    cr_assert_eq(reg_members_version(m), 0);
    cr_assert_eq(s_join(m, "n2", 1, 0), REG_CHANGED);
    cr_assert_eq(s_join(m, "n1", 2, 0), REG_CHANGED);
    cr_assert_eq(s_join(m, "n3", 1, 0), REG_CHANGED);
    cr_assert_eq(reg_members_version(m), 3);
    cr_assert_eq(reg_members_size(m), 3);
    cr_assert_str_eq(reg_members_at(m, 0)->id, "n1");
    cr_assert_str_eq(reg_members_at(m, 1)->id, "n2");
    cr_assert_str_eq(reg_members_at(m, 2)->id, "n3");
    cr_assert_null(reg_members_at(m, 3));
    cr_assert_eq(reg_members_find(m, "n1")->weight, 2);
    cr_assert_null(reg_members_find(m, "n9"));
    /* Same registration again: nothing visible changes, no version bump. */
    cr_assert_eq(s_join(m, "n1", 2, 10), REG_UNCHANGED);
    cr_assert_eq(reg_members_version(m), 3);
    /* A restarted node with another weight re-joins as itself. */
    cr_assert_eq(s_join(m, "n1", 3, 20), REG_CHANGED);
    cr_assert_eq(reg_members_size(m), 3);
    reg_members_destroy(&m);
    cr_assert_null(m);
    reg_members_destroy(&m);
}

Test(reg_members, heartbeats_deaths_and_return)
{
    reg_members_t *m = reg_members_new(1000);
    s_join(m, "a", 1, 0);
    s_join(m, "b", 1, 0);
    uint64_t e = reg_members_version(m);
    cr_assert_eq(reg_members_heartbeat(m, "a", 5, s_at(900)), REG_UNCHANGED);
    cr_assert_eq(reg_members_find(m, "a")->actors, 5);
    cr_assert_eq(reg_members_heartbeat(m, "zz", 0, s_at(900)), REG_REJECTED);
    cr_assert_eq(reg_members_sweep(m, 1000), 0, "exactly dead-after is not dead yet");
    cr_assert_eq(reg_members_sweep(m, 1001), 1);
    cr_assert_eq(reg_members_find(m, "b")->state, REG_NODE_DEAD);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_ALIVE);
    cr_assert_eq(reg_members_version(m), e + 1);
    cr_assert_eq(reg_members_sweep(m, 1500), 0, "a dead node dies once");
    size_t counts[3];
    reg_members_counts(m, counts);
    cr_assert_eq(counts[REG_NODE_ALIVE], 1);
    cr_assert_eq(counts[REG_NODE_DEAD], 1);
    /* A dead node beating again comes back. */
    cr_assert_eq(reg_members_heartbeat(m, "b", 0, s_at(1600)), REG_CHANGED);
    cr_assert_eq(reg_members_find(m, "b")->state, REG_NODE_ALIVE);
    /* Two deaths in one sweep bump the version once. */
    e = reg_members_version(m);
    cr_assert_eq(reg_members_sweep(m, 5000), 2);
    cr_assert_eq(reg_members_version(m), e + 1);
    /* Re-registering revives with the same id. */
    cr_assert_eq(s_join(m, "a", 1, 5100), REG_CHANGED);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_ALIVE);
    reg_members_destroy(&m);
}

Test(reg_members, silence_while_the_registry_did_not_run_does_not_count)
{
    reg_members_t *m = reg_members_new(2000);
    s_join(m, "a", 1, 0);
    s_join(m, "b", 1, 0);
    reg_members_heartbeat(m, "a", 0, s_at(1000));
    uint64_t v = reg_members_version(m);
    /* The registry was stopped from 1000 to 4000: nobody was watching. */
    reg_members_unwatched(m, 3000, 4000);
    cr_assert_eq(reg_members_sweep(m, 4000), 0, "a pause of the registry kills nobody");
    cr_assert_eq(reg_members_version(m), v);
    cr_assert_eq(reg_members_sweep(m, 5001), 1, "b's 2 s of watched silence end at 5000");
    cr_assert_eq(reg_members_find(m, "b")->state, REG_NODE_DEAD);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_ALIVE);
    cr_assert_eq(reg_members_sweep(m, 6001), 1, "a's at 6000");
    /* Clocks never move past now. */
    s_join(m, "c", 1, 7000);
    reg_members_unwatched(m, 5000, 7100);
    cr_assert_eq(reg_members_find(m, "c")->beat_ms, 7100);
    reg_members_destroy(&m);
}

Test(reg_members, drain_undrain_remove)
{
    reg_members_t *m = reg_members_new(1000);
    s_join(m, "a", 1, 0);
    int status = 0;
    const char *why = NULL;
    uint64_t e = reg_members_version(m);
    cr_assert_eq(reg_members_admin(m, "drain", "a", &status, &why), REG_CHANGED);
    cr_assert_eq(status, 200);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_DRAINING);
    cr_assert_eq(reg_members_admin(m, "drain", "a", &status, &why), REG_UNCHANGED);
    cr_assert_eq(reg_members_version(m), e + 1);
    /* A draining node that restarts stays draining. */
    cr_assert_eq(s_join(m, "a", 1, 10), REG_UNCHANGED);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_DRAINING);
    /* ... and when it dies and comes back, it is still drained. */
    reg_members_sweep(m, 2000);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_DEAD);
    cr_assert_eq(reg_members_heartbeat(m, "a", 0, s_at(2100)), REG_CHANGED);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_DRAINING);
    cr_assert_eq(reg_members_admin(m, "undrain", "a", &status, &why), REG_CHANGED);
    cr_assert_eq(reg_members_find(m, "a")->state, REG_NODE_ALIVE);
    cr_assert_eq(reg_members_admin(m, "undrain", "a", &status, &why), REG_UNCHANGED);
    cr_assert_eq(status, 200);
    cr_assert_eq(reg_members_admin(m, "explode", "a", &status, &why), REG_REJECTED);
    cr_assert_eq(status, 400);
    cr_assert_eq(reg_members_admin(m, "drain", "nobody", &status, &why), REG_REJECTED);
    cr_assert_eq(status, 404);
    e = reg_members_version(m);
    cr_assert_eq(reg_members_admin(m, "remove", "a", &status, &why), REG_CHANGED);
    cr_assert_eq(reg_members_version(m), e + 1);
    cr_assert_eq(reg_members_size(m), 0);
    cr_assert_eq(reg_members_heartbeat(m, "a", 0, s_at(3000)), REG_REJECTED);
    reg_members_destroy(&m);
}

Test(reg_members, rejects_bad_registrations)
{
    reg_members_t *m = reg_members_new(1000);
    const char *why = NULL;
    const reg_join_t bad[] = {
        {"", "tcp://a:1", "tcp://a:2", 1},     {"has space", "tcp://a:1", "tcp://a:2", 1},
        {"n\n1", "tcp://a:1", "tcp://a:2", 1}, {"n1", "nonsense", "tcp://a:2", 1},
        {"n1", "tcp://a:1", "tcp://a b:2", 1}, {"n1", "tcp://a:1", "tcp://a:2", 65},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        cr_assert_eq(reg_members_register(m, &bad[i], s_at(0), &why), REG_REJECTED, "case %zu", i);
        cr_assert_not_null(why);
    }
    char longid[80];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    cr_assert_not(reg_node_id_valid(longid));
    longid[64] = 0;
    cr_assert_not(reg_node_id_valid(longid), "64 characters is one too many");
    longid[63] = 0;
    cr_assert(reg_node_id_valid(longid));
    cr_assert_eq(reg_members_size(m), 0);
    cr_assert_eq(reg_members_version(m), 0);
    reg_members_destroy(&m);
}

Test(reg_members, table_is_bounded)
{
    reg_members_t *m = reg_members_new(1000);
    char id[16];
    for (int i = 0; i < REG_MAX_NODES; i++) {
        snprintf(id, sizeof id, "n%04d", i);
        cr_assert_eq(s_join(m, id, 1, 0), REG_CHANGED);
    }
    cr_assert_eq(s_join(m, "one-too-many", 1, 0), REG_REJECTED);
    cr_assert_eq(reg_members_size(m), REG_MAX_NODES);
    reg_members_destroy(&m);
}

Test(reg_members, restore_gives_a_fresh_grace_period)
{
    reg_members_t *m = reg_members_new(1000);
    reg_node_t n = {.id = "r1", .router = "tcp://h:1", .pub = "tcp://h:2", .weight = 1};
    n.state = REG_NODE_ALIVE;
    cr_assert_eq(reg_members_restore(m, &n, 50000), 0);
    cr_assert_eq(reg_members_restore(m, &n, 50000), -1, "duplicate");
    reg_node_t d = n;
    snprintf(d.id, sizeof d.id, "r2");
    d.state = REG_NODE_DRAINING;
    cr_assert_eq(reg_members_restore(m, &d, 50000), 0);
    reg_node_t bad = n;
    snprintf(bad.id, sizeof bad.id, "bad id");
    cr_assert_eq(reg_members_restore(m, &bad, 50000), -1);
    cr_assert_eq(reg_members_version(m), 0, "restoring is not a change");
    cr_assert_eq(reg_members_sweep(m, 50900), 0, "still within the grace period");
    cr_assert_eq(reg_members_sweep(m, 51001), 2);
    /* The restored draining node keeps its drain across death. */
    cr_assert_eq(reg_members_heartbeat(m, "r2", 0, s_at(51100)), REG_CHANGED);
    cr_assert_eq(reg_members_find(m, "r2")->state, REG_NODE_DRAINING);
    reg_node_state_t st;
    cr_assert_eq(reg_node_state_parse("draining", &st), 0);
    cr_assert_eq(st, REG_NODE_DRAINING);
    cr_assert_eq(reg_node_state_parse("zombie", &st), -1);
    cr_assert_str_eq(reg_node_state_name(REG_NODE_DEAD), "dead");
    reg_members_destroy(&m);
}

Test(reg_members, drain_of_a_dead_node_is_stored)
{
    reg_members_t *m = reg_members_new(1000);
    s_join(m, "a", 1, 0);
    s_join(m, "b", 1, 0);
    reg_members_heartbeat(m, "a", 0, s_at(900));
    cr_assert_eq(reg_members_sweep(m, 1500), 1);
    const reg_node_t *b = reg_members_find(m, "b");
    cr_assert_eq(b->state, REG_NODE_DEAD);
    cr_assert_str_eq(reg_node_stored_state(b), "dead");
    int status = 0;
    const char *why = NULL;
    uint64_t v = reg_members_version(m);
    /* Nothing changes on the ring, but the mark must be written: a change. */
    cr_assert_eq(reg_members_admin(m, "drain", "b", &status, &why), REG_CHANGED);
    cr_assert_eq(status, 200);
    cr_assert_eq(reg_members_version(m), v + 1);
    cr_assert_eq(b->state, REG_NODE_DEAD);
    cr_assert_str_eq(reg_node_stored_state(b), "draining", "the mark travels in the state column");
    cr_assert_eq(reg_members_admin(m, "drain", "b", &status, &why), REG_UNCHANGED);
    cr_assert_str_eq(reg_node_stored_state(reg_members_find(m, "a")), "alive");

    /* What a restarted registry reads back: draining, with a grace period. */
    reg_members_t *back = reg_members_new(1000);
    reg_node_t row = *b;
    cr_assert_eq(reg_node_state_parse(reg_node_stored_state(b), &row.state), 0);
    row.drained = false;
    cr_assert_eq(reg_members_restore(back, &row, 10000), 0);
    cr_assert_eq(reg_members_find(back, "b")->state, REG_NODE_DRAINING);
    cr_assert_eq(reg_members_sweep(back, 11001), 1, "still silent: dead again");
    cr_assert_str_eq(reg_node_stored_state(reg_members_find(back, "b")), "draining");
    cr_assert_eq(s_join(back, "b", 1, 11100), REG_CHANGED);
    cr_assert_eq(reg_members_find(back, "b")->state, REG_NODE_DRAINING, "comes back drained");

    /* Undraining the dead node is stored as well. */
    cr_assert_eq(reg_members_admin(m, "undrain", "b", &status, &why), REG_CHANGED);
    cr_assert_str_eq(reg_node_stored_state(b), "dead");
    reg_members_destroy(&back);
    reg_members_destroy(&m);
}
