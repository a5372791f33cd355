/*  test_node_commit — group commit against a real node and Postgres: writes of
    many actors in one loop turn share one transaction (same xmin), a bad
    request in a group fails alone while its neighbours commit, a stale owner
    (another writer took the next seq) gets 503 and reloads without a gap,
    an unreachable database gives 503 with retry_after, writes made while two
    groups are in flight wait and commit together, and a group whose one guard
    statement fails for one lost conversation refuses only that one. */
#include "tests/fixtures/node_test.h"

Test(node_commit, one_transaction_per_loop_turn, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 50 };
    uint8_t conv[N][16];
    for (int i = 0; i < N; i++) {
        nt_create(&t, conv[i], "{}");
    }
    /* Archives: plain writes (a patch reads its row first, to skip a no-op). */
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = nt_send(&t, "conv.delete", conv[i], NULL, "{}");
    }
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        cr_assert_eq(r.status, 204);
        nt_rep_free(&r);
    }
    /* Rows written by one transaction carry the same xmin. */
    long long xids = nt_sql_ll(&t,
                               "SELECT count(DISTINCT e.xmin::text) FROM events e WHERE "
                               "e.team_id = '%s' AND e.type = 'conversation.archived'",
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
    char conninfo[128]; /* nothing listens on the port */
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=nothing connect_timeout=1",
             tf_refused_port());
    t.cfg.database_url = conninfo;
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

/* At most two groups are in flight (node_commit.c S_INFLIGHT_MAX): writes of later loop
   turns wait in the open group and commit together once the pipeline has room. The
   first group is held on a row lock taken by the test, the second queues behind it, and
   the writes sent meanwhile, one per loop turn, then share one transaction. */
Test(node_commit, writes_wait_for_room_and_commit_together, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 12 };
    uint8_t conv[N][16];
    char c0[37];
    for (int i = 0; i < N; i++) {
        nt_create(&t, conv[i], "{}");
    }
    util_uuid_format(conv[0], c0);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT 1 FROM conversations WHERE id = '%s' FOR UPDATE", c0);
    nt_sql(&t, "BEGIN");
    nt_sql(&t, sql);
    /* Archives: plain writes (a patch would first read its row, which waits in the
       pipeline too). */
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = nt_send(&t, "conv.delete", conv[i], NULL, "{}");
        zclock_sleep(i < 2 ? 100 : 20); /* a loop turn each */
    }
    nt_sql(&t, "COMMIT");
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        cr_assert_eq(r.status, 204, "write %d: %d", i, r.status);
        nt_rep_free(&r);
    }
    char list[N * 40 + 8];
    size_t len = 0;
    for (int i = 2; i < N; i++) {
        char c[37];
        util_uuid_format(conv[i], c);
        len += (size_t)snprintf(list + len, sizeof list - len, "%s'%s'", i > 2 ? "," : "", c);
    }
    long long xids = nt_sql_ll(&t,
                               "SELECT count(DISTINCT xmin::text) FROM events WHERE type = "
                               "'conversation.archived' AND conversation_id IN (%s)",
                               list);
    cr_assert_eq(xids, 1, "%lld transactions for the %d writes that waited", xids, N - 2);
    nt_stop(&t);
}

/* Posts to conv[0..N) with the pipeline held full by a row lock on conv[0] (see above);
   want[i] is the status each must get. */
static void s_held_posts(nt_t *t, uint8_t conv[][16], int n, const int *want)
{
    char c0[37], sql[160];
    util_uuid_format(conv[0], c0);
    snprintf(sql, sizeof sql, "SELECT 1 FROM conversations WHERE id = '%s' FOR UPDATE", c0);
    nt_sql(t, "BEGIN");
    nt_sql(t, sql);
    uint64_t ids[64];
    for (int i = 0; i < n; i++) {
        ids[i] = nt_send(t, "msg.post", conv[i], NULL, "{\"content\":\"grouped post\"}");
        zclock_sleep(i < 2 ? 100 : 20);
    }
    nt_sql(t, "COMMIT");
    for (int i = 0; i < n; i++) {
        nt_rep_t r = nt_recv(t, ids[i]);
        cr_assert_eq(r.status, want[i], "post %d: %d", i, r.status);
        nt_rep_free(&r);
    }
}

/* Creates conv[0..n) (their ids as text in c) and expects 202 for each post (want). */
static void s_create_n(nt_t *t, uint8_t conv[][16], char c[][37], int *want, int n)
{
    for (int i = 0; i < n; i++) {
        nt_create(t, conv[i], "{}");
        util_uuid_format(conv[i], c[i]);
        want[i] = 202;
    }
}

/* Posts held behind a full pipeline commit as one group whose inserts and touches are
   merged across write sets (node_ws_merge.c node_group_merge): one transaction, every
   conversation's counters and last_event_id right, gapless. Then one of them conflicts
   with a row written behind the node's back: the merged insert fails, the group is
   re-run one write set per transaction, and only that one is refused. */
Test(node_commit, group_of_posts_merged_and_a_failure_isolated, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 12, BAD = 7 };
    uint8_t conv[N][16];
    char c[N][37];
    int want[N];
    s_create_n(&t, conv, c, want, N);
    s_held_posts(&t, conv, N, want);
    char sql[1024];
    long long xids = nt_sql_ll(&t,
                               "SELECT count(DISTINCT m.xmin::text) FROM messages m JOIN "
                               "conversations c ON c.id = m.conversation_id WHERE c.team_id = "
                               "'%s' AND c.id NOT IN ('%s', '%s')",
                               t.team_s, c[0], c[1]);
    cr_assert_eq(xids, 1, "%lld transactions for the posts that waited", xids);
    for (int i = 0; i < N; i++) {
        nt_assert_gapless(&t, conv[i]);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM conversations c WHERE c.id = '%s' AND c.message_count = 2 "
                 "AND c.last_msg_seq = 2 AND c.last_event_seq = 5 AND c.status = 'idle' AND "
                 "c.last_event_id = (SELECT max(id) FROM events WHERE conversation_id = c.id)",
                 c[i]);
        cr_assert_eq(nt_sql_ll(&t, "%s", sql), 1, "conversation %d's row after the group", i);
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO messages (id, conversation_id, team_id, seq, role, content, status) "
             "VALUES (gen_random_uuid(), '%s', '%s', 3, 'user', 'behind the node', "
             "'completed'); UPDATE conversations SET last_msg_seq = 3 WHERE id = '%s'",
             c[BAD], t.team_s, c[BAD]);
    nt_sql(&t, sql);
    want[BAD] = 503;
    s_held_posts(&t, conv, N, want);
    for (int i = 0; i < N; i++) {
        long long n =
            nt_sql_ll(&t, "SELECT count(*) FROM messages WHERE conversation_id = '%s'", c[i]);
        cr_assert_eq(n, i == BAD ? 3 : 4, "conversation %d: %lld messages", i, n);
        if (i != BAD) {
            nt_assert_gapless(&t, conv[i]);
        }
    }
    /* The refused one reloads and takes posts again, after the foreign row. */
    nt_rep_t r = nt_call(&t, "msg.post", conv[BAD], "{\"content\":\"after\"}");
    cr_assert_eq(r.status, 202, "after the refusal: %d %s", r.status,
                 r.body ? nt_str(r.body, "error", NULL) : "");
    cr_assert_eq(nt_int(r.body, "message", "seq"), 4);
    nt_rep_free(&r);
    nt_stop(&t);
}

/* A group's ownership guards go as one statement (node_fence.c node_fence_add_guards).
   When one conversation of the group was taken over behind the node's back, that
   statement fails the group; re-run set by set, only the taken one is refused (MOVED,
   nothing stored) and its neighbours commit. */
Test(node_commit, group_guard_refuses_only_the_lost_conversation, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 12, LOST = 5 };
    uint8_t conv[N][16];
    char c[N][37];
    int want[N];
    s_create_n(&t, conv, c, want, N);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE conversation_owners SET node_id = 'intruder', epoch = epoch + 1 WHERE "
             "conversation_id = '%s'",
             c[LOST]);
    nt_sql(&t, sql);
    want[LOST] = 0; /* MOVED */
    s_held_posts(&t, conv, N, want);
    for (int i = 0; i < N; i++) {
        long long n =
            nt_sql_ll(&t, "SELECT count(*) FROM messages WHERE conversation_id = '%s'", c[i]);
        cr_assert_eq(n, i == LOST ? 0 : 2, "conversation %d: %lld messages", i, n);
        if (i != LOST) {
            nt_assert_gapless(&t, conv[i]);
        }
    }
    nt_stop(&t);
}
