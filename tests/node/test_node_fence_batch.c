/*  test_node_fence_batch — the activations of one loop turn are claimed together
    (node_fence_claim.c) with a real node (a thread of the test), the real database and a
    fake registry: many activations at once are claimed in fewer transactions than
    activations; a row held by another open transaction delays only its own conversation
    while the others of the batch are granted; a batch mixing our team's conversations with
    another team's, a missing one, one held under a newer epoch and one left by a dead node
    grants exactly ours and the dead node's; and a batch failing as a whole (a row inserted
    by a transaction that stays open: the 200 ms lock timeout) is retried one claim at a
    time, so the others are served and the blocked one follows once the row is free. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/node_fake_reg.h"
#include "tests/fixtures/node_test.h"

/* A registry-mode node alone in the ring at epoch 3, with its own id. */
static void s_start_alone(nt_t *t, fr_t *f, const char *tag)
{
    (void)fr_standby; /* the fake registry's other controls are not needed here */
    (void)fr_registers;
    fr_start(f, tag);
    if (!nt_open(t)) {
        fr_stop(f);
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    static char id[40];
    snprintf(id, sizeof id, "fb%d-%s", (int)getpid(), tag);
    t->cfg.id = id;
    t->cfg.standalone = false;
    t->cfg.registry = f->router;
    char spec[160];
    snprintf(spec, sizeof spec, "3 %s:alive", id);
    fr_ring_set(f, spec);
    nt_start_node(t);
    nt_connect(t);
    zclock_sleep(100);
    /* Wait until the node has the ring: any conversation is then ours. */
    uint8_t probe[16];
    util_uuid_generate(probe);
    for (int i = 0; i < 100; i++) {
        nt_rep_t r = nt_call(t, "conv.get", probe, "{}");
        int st = r.status;
        nt_rep_free(&r);
        if (st == 404) {
            return;
        }
        zclock_sleep(50);
    }
    cr_assert_fail("the node never got its ring");
}

static void s_exec(nt_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_exec(nt_t *t, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    nt_sql(t, sql);
}

/* A conversation of team_s, stored without a claim (as after its owner passivated it). */
static void s_conv(nt_t *t, uint8_t conv[16], const char *team_s)
{
    char c[UTIL_UUID_STR_LEN + 1];
    util_uuid_generate(conv);
    util_uuid_format(conv, c);
    s_exec(t, "INSERT INTO conversations (id, team_id) VALUES ('%s', '%s')", c, team_s);
}

/* The claim row of conv: epoch, or -1 when there is none; *node (41 bytes) its holder. */
static long long s_owner(nt_t *t, const uint8_t conv[16], char *node)
{
    char c[UTIL_UUID_STR_LEN + 1], sql[256];
    util_uuid_format(conv, c);
    snprintf(sql, sizeof sql,
             "SELECT epoch, node_id FROM conversation_owners WHERE conversation_id = '%s'", c);
    PGresult *r = PQexec(t->pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(t->pg));
    long long epoch = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    if (node) {
        snprintf(node, 41, "%s", PQntuples(r) ? PQgetvalue(r, 0, 1) : "");
    }
    PQclear(r);
    return epoch;
}

/* Receives the reply to id within ms (status -1 when none came). */
static nt_rep_t s_recv_within(nt_t *t, uint64_t id, int ms)
{
    int64_t deadline = zclock_mono() + ms;
    while (zclock_mono() < deadline) {
        for (size_t i = 0; i < t->nstash; i++) {
            if (t->stash_id[i] == id) {
                return nt_recv(t, id);
            }
        }
        if (nt_wait(t->gw, 20)) {
            return nt_recv(t, id);
        }
    }
    return (nt_rep_t){.status = -1};
}

static int s_status(nt_t *t, uint64_t id, int ms)
{
    nt_rep_t r = s_recv_within(t, id, ms);
    int st = r.type == PROTO_MOVED ? 0 : r.status;
    nt_rep_free(&r);
    return st;
}

#define POST "{\"content\":\"claimed together\"}"

Test(node_fence_batch, locked_row_waits_alone_in_a_batch, .timeout = 60)
{
    enum { N = 40 };
    fr_t f;
    nt_t t;
    s_start_alone(&t, &f, "lk");
    uint8_t conv[N][16];
    char ids[N][UTIL_UUID_STR_LEN + 1];
    for (int i = 0; i < N; i++) {
        s_conv(&t, conv[i], t.team_s);
        util_uuid_format(conv[i], ids[i]);
    }
    /* conv[0]'s row is held by a node stopped in the middle of a group commit. */
    s_exec(&t,
           "INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES ('%s', "
           "'stuck', 2)",
           ids[0]);
    s_exec(&t, "BEGIN; SELECT 1 FROM conversation_owners WHERE conversation_id = '%s' FOR SHARE",
           ids[0]);
    uint64_t req[N];
    for (int i = 0; i < N; i++) {
        req[i] = nt_send(&t, "msg.post", conv[i], NULL, POST);
    }
    for (int i = 1; i < N; i++) {
        cr_assert_eq(s_status(&t, req[i], 3000), 202, "conversation %d", i);
        cr_assert_eq(s_owner(&t, conv[i], NULL), 3);
    }
    cr_assert_eq(s_status(&t, req[0], 300), -1, "the locked conversation was answered");
    /* Claimed together: the granted rows share far fewer inserting transactions. */
    char list[N * (UTIL_UUID_STR_LEN + 3) + 8] = "";
    for (int i = 1; i < N; i++) {
        strcat(list, i > 1 ? ",'" : "'");
        strcat(list, ids[i]);
        strcat(list, "'");
    }
    long long xacts = nt_sql_ll(&t,
                                "SELECT count(DISTINCT xmin::text) FROM conversation_owners WHERE "
                                "conversation_id IN (%s)",
                                list);
    cr_log_info("%d activations claimed in %lld transactions", N - 1, xacts);
    cr_assert_lt(xacts, N - 1, "every activation was claimed in its own transaction");
    nt_sql(&t, "COMMIT");
    /* The row names a node absent from our ring at an older epoch: taken over. */
    cr_assert_eq(s_status(&t, req[0], 3000), 202);
    cr_assert_eq(s_owner(&t, conv[0], NULL), 3);
    zclock_sleep(200);
    for (int i = 0; i < N; i += 13) {
        nt_assert_gapless(&t, conv[i]);
    }
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence_batch, mixed_batch_grants_only_ours, .timeout = 60)
{
    fr_t f;
    nt_t t;
    s_start_alone(&t, &f, "mx");
    uint8_t other_team[16];
    char other_team_s[UTIL_UUID_STR_LEN + 1];
    nt_team_new(&t, other_team, other_team_s);
    enum { OURS, THEIRS, MISSING, NEWER, DEAD, OURS2, N };
    uint8_t conv[N][16];
    char ids[N][UTIL_UUID_STR_LEN + 1];
    for (int i = 0; i < N; i++) {
        if (i == MISSING) {
            util_uuid_generate(conv[i]);
        } else {
            s_conv(&t, conv[i], i == THEIRS ? other_team_s : t.team_s);
        }
        util_uuid_format(conv[i], ids[i]);
    }
    s_exec(&t,
           "INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES ('%s', "
           "'newer', 9), ('%s', 'gone', 1)",
           ids[NEWER], ids[DEAD]);
    uint64_t req[N];
    for (int i = 0; i < N; i++) {
        req[i] = nt_send(&t, "msg.post", conv[i], NULL, POST); /* all as our team */
    }
    int want[N] = {
        [OURS] = 202, [THEIRS] = 404, [MISSING] = 404, [NEWER] = 0, [DEAD] = 202, [OURS2] = 202};
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s_status(&t, req[i], 3000), want[i], "conversation %d", i);
    }
    char node[41];
    cr_assert_eq(s_owner(&t, conv[OURS], node), 3);
    cr_assert_str_eq(node, t.cfg.id);
    cr_assert_eq(s_owner(&t, conv[OURS2], NULL), 3);
    cr_assert_eq(s_owner(&t, conv[THEIRS], NULL), -1, "another team's conversation claimed");
    cr_assert_eq(s_owner(&t, conv[MISSING], NULL), -1, "a missing conversation claimed");
    cr_assert_eq(s_owner(&t, conv[NEWER], node), 9);
    cr_assert_str_eq(node, "newer");
    cr_assert_eq(s_owner(&t, conv[DEAD], node), 3);
    cr_assert_str_eq(node, t.cfg.id);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id IN ('%s', "
                           "'%s')",
                           ids[THEIRS], ids[NEWER]),
                 0);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence_batch, failed_batch_is_retried_alone, .timeout = 60)
{
    enum { N = 12 };
    fr_t f;
    nt_t t;
    s_start_alone(&t, &f, "fl");
    char spec[160];
    snprintf(spec, sizeof spec, "3 %s:alive,holder:draining", t.cfg.id);
    fr_ring_set(&f, spec);
    zclock_sleep(300);
    uint8_t conv[N][16];
    char ids[N][UTIL_UUID_STR_LEN + 1], list[N * (UTIL_UUID_STR_LEN + 3) + 8] = "";
    for (int i = 0; i < N; i++) {
        s_conv(&t, conv[i], t.team_s);
        util_uuid_format(conv[i], ids[i]);
        s_exec(&t,
               "INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES ('%s', "
               "'holder', 2)",
               ids[i]);
        if (i > 0) {
            strcat(list, i > 1 ? ",'" : "'");
            strcat(list, ids[i]);
            strcat(list, "'");
        }
    }
    /* All wait for the draining holder, and retry together (one batch per retry tick). */
    uint64_t req[N];
    for (int i = 0; i < N; i++) {
        req[i] = nt_send(&t, "msg.post", conv[i], NULL, POST);
    }
    cr_assert_eq(s_status(&t, req[1], 300), -1, "answered while the holder held it");
    /* The holder releases; a stopped claimant then inserts conv[0]'s row and never ends
       its transaction: the next batch waits 200 ms for that row and fails as a whole. */
    s_exec(&t,
           "DELETE FROM conversation_owners WHERE node_id = 'holder' AND conversation_id IN "
           "('%s', %s)",
           ids[0], list);
    s_exec(&t,
           "BEGIN; INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES "
           "('%s', 'stuck', 1)",
           ids[0]);
    int64_t t0 = zclock_mono();
    for (int i = 1; i < N; i++) {
        cr_assert_eq(s_status(&t, req[i], 3000), 202, "conversation %d", i);
    }
    int64_t others_ms = zclock_mono() - t0;
    cr_assert_eq(s_status(&t, req[0], 200), -1, "answered behind an uncommitted row");
    nt_sql(&t, "COMMIT");
    /* Retried one by one after the failed batch: each in a transaction of its own. */
    long long xacts = nt_sql_ll(&t,
                                "SELECT count(DISTINCT xmin::text) FROM conversation_owners WHERE "
                                "conversation_id IN (%s)",
                                list);
    cr_log_info("the %d others answered within %lld ms, claimed in %lld transactions", N - 1,
                (long long)others_ms, xacts);
    cr_assert_lt(others_ms, 2000);
    cr_assert_eq(xacts, N - 1);
    /* conv[0]'s row names a node absent from our ring at an older epoch: taken over. */
    cr_assert_eq(s_status(&t, req[0], 3000), 202);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s_owner(&t, conv[i], NULL), 3, "conversation %d", i);
    }
    nt_stop(&t);
    fr_stop(&f);
}
