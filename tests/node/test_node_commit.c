/*  test_node_commit — group commit against a real node and Postgres: writes of
    many actors in one loop turn share one transaction (same xmin), a bad
    request in a group fails alone while its neighbours commit, a stale owner
    (another writer took the next seq) gets 503 and reloads without a gap,
    and an unreachable database gives 503 with retry_after. */
#include "node_test.h"

Test(node_commit, one_transaction_per_loop_turn, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 50 };
    uint8_t conv[N][16];
    for (int i = 0; i < N; i++) {
        nt_create(&t, conv[i], "{}");
    }
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = nt_send(&t, "conv.patch", conv[i], NULL, "{\"title\":\"grouped\"}");
    }
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        cr_assert_eq(r.status, 200);
        nt_rep_free(&r);
    }
    /* Rows written by one transaction carry the same xmin. */
    long long xids = nt_sql_ll(&t,
                               "SELECT count(DISTINCT e.xmin::text) FROM events e WHERE "
                               "e.team_id = '%s' AND e.type = 'conversation.updated'",
                               t.team_s);
    cr_assert_leq(xids, N / 5, "%lld transactions for %d writes", xids, N);
    nt_stop(&t);
}

Test(node_commit, bad_request_fails_alone, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 20, BAD = 7 };
    uint8_t conv[N][16];
    uint64_t ids[N];
    char bad[160];
    uint8_t wt[16];
    char wts[37];
    util_uuid_generate(wt);
    util_uuid_format(wt, wts);
    snprintf(bad, sizeof bad, "{\"content\":\"x\",\"create\":{\"worktree_id\":\"%s\"}}", wts);
    for (int i = 0; i < N; i++) {
        util_uuid_generate(conv[i]);
        ids[i] = nt_send(&t, "msg.post", conv[i], NULL,
                         i == BAD ? bad : "{\"content\":\"x\",\"create\":{}}");
    }
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        if (i == BAD) {
            cr_assert_eq(r.status, 400);
            cr_assert_str_eq(nt_str(r.body, "field", NULL), "worktree_id");
        } else {
            cr_assert_eq(r.status, 202, "neighbour %d status=%d", i, r.status);
        }
        nt_rep_free(&r);
    }
    char c[37];
    util_uuid_format(conv[BAD], c);
    cr_assert_eq(nt_sql_ll(&t, "SELECT count(*) FROM conversations WHERE id = '%s'", c), 0);
    cr_assert_eq(nt_sql_ll(&t, "SELECT count(*) FROM conversations WHERE team_id = '%s'", t.team_s),
                 N - 1);
    /* The failed create left the actor usable: a valid create on that id works. */
    nt_rep_t r = nt_call(&t, "msg.post", conv[BAD], "{\"content\":\"x\",\"create\":{}}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    for (int i = 0; i < N; i++) {
        nt_assert_gapless(&t, conv[i]);
    }
    nt_stop(&t);
}

Test(node_commit, stale_owner_gets_503_then_reloads, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    nt_rep_t r = nt_call(&t, "conv.patch", conv, "{\"title\":\"a\"}");
    cr_assert_eq(r.status, 200);
    nt_rep_free(&r);
    /* Another owner appends event seq 3 behind this node's back. */
    char c[37], sql[512];
    util_uuid_format(conv, c);
    snprintf(sql, sizeof sql,
             "INSERT INTO events (team_id, conversation_id, seq, type, source) VALUES ('%s', "
             "'%s', 3, 'conversation.updated', '{\"kind\":\"system\",\"id\":\"other\"}'); "
             "UPDATE conversations SET last_event_seq = 3 WHERE id = '%s'",
             t.team_s, c, c);
    nt_sql(&t, sql);
    r = nt_call(&t, "conv.patch", conv, "{\"title\":\"b\"}");
    cr_assert_eq(r.status, 503, "stale write status=%d", r.status);
    cr_assert_eq(r.retry_after, 1);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.patch", conv, "{\"title\":\"c\"}");
    cr_assert_eq(r.status, 200, "retry status=%d", r.status);
    cr_assert_str_eq(nt_str(r.body, "title", NULL), "c");
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, "SELECT max(seq) FROM events WHERE conversation_id = '%s'", c), 4);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_commit, database_down_gives_503, .timeout = 30)
{
    nt_t t;
    if (!nt_open(&t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    t.cfg.database_url = "host=127.0.0.1 port=7299 dbname=nothing connect_timeout=1";
    nt_start_node(&t);
    nt_connect(&t);
    uint8_t conv[16];
    util_uuid_generate(conv);
    const char *ops[][2] = {
        {"msg.post", "{\"content\":\"x\",\"create\":{}}"}, {"conv.get", "{}"}, {"conv.list", "{}"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        nt_rep_t r = nt_recv(&t, nt_send(&t, ops[i][0], i == 2 ? NULL : conv, NULL, ops[i][1]));
        cr_assert_eq(r.status, 503, "%s status=%d", ops[i][0], r.status);
        cr_assert_eq(r.retry_after, 1);
        nt_rep_free(&r);
    }
    nt_stop(&t);
}

Test(node_commit, mailbox_full_gives_503, .timeout = 30)
{
    nt_t t;
    if (!nt_open(&t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    t.cfg.mailbox_max = 2;
    nt_start_node(&t);
    nt_connect(&t);
    zclock_sleep(100);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    enum { N = 30 };
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = nt_send(&t, "conv.patch", conv, NULL, "{\"title\":\"t\"}");
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        ok += r.status == 200;
        busy += r.status == 503 && r.retry_after == 1;
        nt_rep_free(&r);
    }
    cr_assert_eq(ok + busy, N);
    cr_assert_gt(busy, 0, "the mailbox limit was never hit");
    cr_assert_gt(ok, 0);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}
