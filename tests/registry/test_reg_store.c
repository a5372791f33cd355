/*  test_reg_store — the election and persistence thread against a
    throwaway migrated database: the first store takes the lock, a second
    stands by; saves write membership (a dead drained node as "draining")
    and bump the epoch only when asked; when the active store goes away the
    other one takes over with the stored membership and a larger epoch. */
#include "registry/reg_store.h"
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>

static rt_db_t s_db;

static void s_teardown(void)
{
    rt_db_drop(&s_db);
}

TestSuite(reg_store, .fini = s_teardown, .timeout = 60);

static int s_revseq_seen; /* REG_STORE_REVSEQ events s_event skipped */

/* The next event of store within ms (the test fails otherwise), skipping the
   revocation counter an active store reports after its takeover. */
static void s_event(reg_store_t *store, int ms, reg_store_event_t *ev)
{
    zpoller_t *p = zpoller_new(reg_store_sock(store), NULL);
    for (;;) {
        void *which = zpoller_wait(p, ms);
        cr_assert_not_null(which, "no store event within %d ms", ms);
        cr_assert_eq(reg_store_recv(store, ev), 0);
        if (ev->type != REG_STORE_REVSEQ) {
            break;
        }
        cr_assert_eq(ev->revoked_seq, 0, "no token was revoked in a fresh database");
        s_revseq_seen++;
    }
    zpoller_destroy(&p);
}

static reg_change_t s_join(reg_members_t *m, const char *id)
{
    reg_join_t j = {id, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", 1};
    const char *why = NULL;
    reg_now_t now = {util_mono_ms(), util_wall_ms()};
    return reg_members_register(m, &j, now, &why);
}

/* n1 alive; n2 dead and drained while dead. */
static void s_two_nodes_one_dead_and_drained(reg_members_t *m)
{
    s_join(m, "n1");
    s_join(m, "n2");
    int status = 0;
    const char *why = NULL;
    reg_members_heartbeat(m, "n1", 0, (reg_now_t){util_mono_ms() + 5000, util_wall_ms()});
    cr_assert_eq(reg_members_sweep(m, util_mono_ms() + 4000), 1);
    cr_assert_eq(reg_members_admin(m, "drain", "n2", &status, &why), REG_CHANGED);
}

Test(reg_store, elects_one_saves_and_hands_over)
{
    rt_db_create(&s_db, true);
    reg_store_t *a = reg_store_new(s_db.conninfo, 3000);
    cr_assert_not_null(a);
    reg_store_event_t ev;
    s_event(a, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_ACTIVE);
    cr_assert_eq(ev.generation, 1);
    cr_assert_eq(ev.epoch, 1, "a fresh database starts at epoch 1");
    cr_assert_eq(reg_members_size(ev.members), 0);
    reg_members_t *m = ev.members;

    reg_store_t *b = reg_store_new(s_db.conninfo, 3000);
    s_event(b, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_STANDBY);
    cr_assert_null(ev.members);

    s_two_nodes_one_dead_and_drained(m);
    cr_assert_eq(reg_store_save(a, m, 1, true), 0);
    s_event(a, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_SAVED);
    cr_assert_eq(s_revseq_seen, 1, "the active reports the revocation counter once");
    cr_assert(ev.ok);
    cr_assert_eq(ev.epoch, 2);
    cr_assert_eq(ev.version, reg_members_version(m));
    cr_assert_str_eq(
        rt_db_value(&s_db, "SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM nodes"),
        "n1:alive,n2:draining");
    /* Without bump the epoch stays; a save for another activation is ignored. */
    cr_assert_eq(reg_store_save(a, m, 1, false), 0);
    s_event(a, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_SAVED);
    cr_assert_eq(ev.epoch, 0);
    cr_assert_eq(reg_store_save(a, m, 7, true), 0);
    zclock_sleep(300);
    cr_assert_eq(reg_store_recv(a, &ev), -1);
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT epoch FROM ring_state"), "2");

    /* a goes away (its session closes): b takes over within a retry period. */
    reg_store_destroy(&a);
    cr_assert_null(a);
    int64_t t0 = util_mono_ms();
    s_event(b, 3000, &ev);
    cr_assert_eq(ev.type, REG_STORE_ACTIVE);
    cr_assert_lt(util_mono_ms() - t0, 2000);
    cr_assert_eq(ev.generation, 1);
    cr_assert_eq(ev.epoch, 3);
    cr_assert_eq(reg_members_size(ev.members), 2);
    const reg_node_t *n2 = reg_members_find(ev.members, "n2");
    cr_assert_eq(n2->state, REG_NODE_DRAINING, "restored drained, with a grace period");
    cr_assert(n2->drained);
    reg_members_destroy(&ev.members);
    reg_members_destroy(&m);
    reg_store_destroy(&b);
    reg_store_destroy(&b);
}

Test(reg_store, an_unreachable_database_means_standby)
{
    char conninfo[128]; /* nothing listens on the port */
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=nothing connect_timeout=1",
             tf_refused_port());
    reg_store_t *s = reg_store_new(conninfo, 3000);
    cr_assert_not_null(s);
    reg_store_event_t ev;
    s_event(s, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_STANDBY);
    int64_t t0 = util_mono_ms();
    reg_store_destroy(&s);
    cr_assert_lt(util_mono_ms() - t0, 3000, "stopping took too long");
}

Test(reg_store, writes_a_full_table_with_awkward_endpoints)
{
    rt_db_create(&s_db, true);
    reg_store_t *s = reg_store_new(s_db.conninfo, 3000);
    reg_store_event_t ev;
    s_event(s, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_ACTIVE);
    reg_members_t *m = ev.members;
    /* Quotes, backslashes, braces and commas must survive the array literals. */
    char id[16], router[REG_EP_MAX], pub[REG_EP_MAX];
    for (int i = 0; i < REG_MAX_NODES; i++) {
        snprintf(id, sizeof id, "n%04d", i);
        snprintf(router, sizeof router, "tcp://h\"{x,y}\\%d:%0200d", i, i);
        snprintf(pub, sizeof pub, "ipc://@/p,%d", i);
        reg_join_t j = {id, router, pub, (uint64_t)(i % 65)};
        const char *why = NULL;
        cr_assert_eq(reg_members_register(m, &j, (reg_now_t){0, util_wall_ms()}, &why), REG_CHANGED,
                     "%s", why ? why : "");
    }
    int64_t t0 = util_mono_ms();
    cr_assert_eq(reg_store_save(s, m, 1, true), 0);
    s_event(s, 5000, &ev);
    cr_assert_eq(ev.type, REG_STORE_SAVED);
    cr_assert(ev.ok);
    cr_assert_eq(ev.epoch, 2);
    cr_log_info("stored %d nodes in %lld ms", REG_MAX_NODES, (long long)(util_mono_ms() - t0));
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT count(*) FROM nodes"), "1024");
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT router FROM nodes WHERE id = 'n0007'"),
                     reg_members_find(m, "n0007")->router);
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT pub || weight FROM nodes WHERE id = 'n0100'"),
                     "ipc://@/p,10035");
    /* The same table read back by the next takeover. */
    reg_store_destroy(&s);
    s = reg_store_new(s_db.conninfo, 3000);
    reg_store_event_t back;
    s_event(s, 5000, &back);
    cr_assert_eq(back.type, REG_STORE_ACTIVE);
    cr_assert_eq(back.epoch, 3);
    cr_assert_eq(reg_members_size(back.members), REG_MAX_NODES);
    cr_assert_str_eq(reg_members_find(back.members, "n1023")->router,
                     reg_members_find(m, "n1023")->router);
    reg_members_destroy(&back.members);
    reg_members_destroy(&m);
    reg_store_destroy(&s);
}
