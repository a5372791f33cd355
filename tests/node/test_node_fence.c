/*  test_node_fence — single activation fenced in Postgres (node_fence.c) and the
    hand-off on ring changes (node_handoff.c), with real nodes (threads of the test)
    against the real database and a fake registry (a zactor answering REGISTER,
    HEARTBEAT and RING_GET with the ring the test sets, and publishing it):
    the claim row written at activation and by creates; a write whose claim was
    taken over is refused (MOVED, nothing stored) and the actor dropped; a claim
    refused by a newer holder answers MOVED, one held by a live node waits for its
    release (and gives up with 503 after 5 s), one held by a dead node is taken
    over; a row locked by an open transaction delays the claim instead of
    blocking the node; releases on passivation and on ring changes (a running turn
    finishes first); a restarted node deletes its old claims; a standby registry
    is skipped at once; and two nodes that both believe they own the same
    conversations (split brain) keep every conversation gapless with every
    acknowledged message stored. */
#include "common/ring.h"
#include "node/ops/node_ops.h"
#include "tests/fixtures/node_fake_reg.h"
#include "tests/fixtures/node_test.h"

/* ---- nodes ------------------------------------------------------------------------------- */

/* A registry-mode node with its own id (claims of other tests' nodes are never touched). */
static void s_open(nt_t *t, const char *tag, const char *registry)
{
    if (!nt_open(t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    static char ids[4][40];
    static int k;
    char *id = ids[k++ % 4];
    snprintf(id, 40, "f%d-%s", (int)getpid(), tag);
    t->cfg.id = id;
    t->cfg.standalone = false;
    t->cfg.registry = registry;
}

static void s_start(nt_t *t)
{
    nt_start_node(t);
    nt_connect(t);
    zclock_sleep(100);
}

/* A conversation id the ring of members (in id order) gives to want. */
static void s_conv_of(const char *const *members, size_t n, const char *want, uint8_t conv[16])
{
    ring_t *r = ring_new(0);
    ring_member_t m[8];
    for (size_t i = 0; i < n; i++) {
        snprintf(m[i].id, sizeof m[i].id, "%s", members[i]);
        m[i].weight = 1;
    }
    cr_assert_eq(ring_set(r, m, n), 0);
    do {
        util_uuid_generate(conv);
    } while (strcmp(m[ring_lookup(r, conv)].id, want) != 0);
    ring_destroy(&r);
}

/* Waits until the node answers conv.get on conv with 200/404 (it knows a ring owning it). */
static void s_wait_owner(nt_t *t, const uint8_t conv[16])
{
    for (int i = 0; i < 100; i++) {
        nt_rep_t r = nt_call(t, "conv.get", conv, "{}");
        int st = r.status;
        nt_rep_free(&r);
        if (st == 200 || st == 404) {
            return;
        }
        zclock_sleep(50);
    }
    cr_assert_fail("the node never owned the conversation");
}

/* Receives a reply with a custom timeout (-1 status on timeout). */
static nt_rep_t s_recv_within(nt_t *t, uint64_t id, int ms)
{
    int64_t deadline = zclock_mono() + ms;
    while (zclock_mono() < deadline) {
        if (!nt_wait(t->gw, 50)) {
            continue;
        }
        return nt_recv(t, id);
    }
    return (nt_rep_t){.status = -1};
}

typedef struct {
    char s[UTIL_UUID_STR_LEN + 1];
} s_id_t;

static s_id_t s_id(const uint8_t conv[16])
{
    s_id_t id;
    util_uuid_format(conv, id.s);
    return id;
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

#define OWNER_EPOCH "SELECT epoch FROM conversation_owners WHERE conversation_id = '%s'"
#define OWNER_ROWS  "SELECT count(*) FROM conversation_owners WHERE conversation_id = '%s'"
#define MSG_ROWS    "SELECT count(*) FROM messages WHERE conversation_id = '%s'"

static int s_post(nt_t *t, const uint8_t conv[16])
{
    nt_rep_t r = nt_call(t, "msg.post", conv, "{\"content\":\"hello there\"}");
    int st = r.status;
    nt_rep_free(&r);
    return st;
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(node_fence, claim_guard_moved_and_takeover, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "a");
    nt_t t;
    s_open(&t, "a", f.router);
    char spec[160];
    snprintf(spec, sizeof spec, "5 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    s_start(&t);
    const char *members[] = {t.cfg.id};
    uint8_t conv[16];
    s_conv_of(members, 1, t.cfg.id, conv);
    s_wait_owner(&t, conv);

    /* A create claims in its own transaction, at our epoch. */
    nt_rep_t r = nt_call(&t, "conv.create", conv, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 5);
    cr_assert_eq(s_post(&t, conv), 202);
    zclock_sleep(200); /* the echo turn ends */
    long long before = nt_sql_ll(&t, MSG_ROWS, s_id(conv).s);

    /* Another node takes the conversation over (newer epoch): our write is refused. */
    s_exec(&t,
           "UPDATE conversation_owners SET node_id = 'intruder', epoch = 7 WHERE "
           "conversation_id = '%s'",
           s_id(conv).s);
    r = nt_call(&t, "msg.post", conv, "{\"content\":\"refused\"}");
    cr_assert_eq(r.type, PROTO_MOVED, "fenced write status=%d", r.status);
    cr_assert_eq(r.epoch, 5);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, MSG_ROWS, s_id(conv).s), before, "a fenced write stored something");
    /* Reactivation: the holder's epoch (7) is newer than our ring: MOVED again. */
    r = nt_call(&t, "msg.post", conv, "{\"content\":\"refused again\"}");
    cr_assert_eq(r.type, PROTO_MOVED);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, MSG_ROWS, s_id(conv).s), before);

    /* Ring 8: the intruder is dead, we own it: the claim takes the row over. */
    snprintf(spec, sizeof spec, "8 %s:alive,intruder:dead", t.cfg.id);
    fr_ring_set(&f, spec);
    int st = 0;
    for (int i = 0; i < 50 && st != 202; i++) {
        st = s_post(&t, conv);
        zclock_sleep(st == 202 ? 0 : 50);
    }
    cr_assert_eq(st, 202);
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 8);
    cr_assert_eq(nt_sql_ll(&t, MSG_ROWS, s_id(conv).s), before + 2);
    zclock_sleep(200);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence, claim_waits_for_live_holder, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "b");
    nt_t t;
    s_open(&t, "b", f.router);
    char spec[160];
    snprintf(spec, sizeof spec, "5 %s:alive,holder:draining", t.cfg.id);
    fr_ring_set(&f, spec);
    s_start(&t);
    const char *members[] = {t.cfg.id};
    uint8_t conv[16], conv2[16];
    s_conv_of(members, 1, t.cfg.id, conv);
    s_conv_of(members, 1, t.cfg.id, conv2);
    s_wait_owner(&t, conv);
    nt_rep_t r = nt_call(&t, "conv.create", conv, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", conv2, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    /* Both go to a draining node (as if it held them and still finished a turn). */
#define STEAL                                                                                      \
    "UPDATE conversation_owners SET node_id = 'holder', epoch = 4 WHERE conversation_id = '%s'"
    s_exec(&t, STEAL, s_id(conv).s);
    s_exec(&t, STEAL, s_id(conv2).s);
    cr_assert_eq(s_post(&t, conv), 0, "a fenced write must be answered MOVED");
    cr_assert_eq(s_post(&t, conv2), 0, "a fenced write must be answered MOVED");

    /* A fresh activation waits while the holder is draining... */
    int64_t t0 = zclock_mono();
    uint64_t id = nt_send(&t, "msg.post", conv, NULL, "{\"content\":\"waits\"}");
    r = s_recv_within(&t, id, 600);
    cr_assert_eq(r.status, -1, "answered while the holder still held it (status %d)", r.status);
    /* ...and goes on as soon as the holder releases. */
    s_exec(&t, "DELETE FROM conversation_owners WHERE conversation_id = '%s'", s_id(conv).s);
    r = s_recv_within(&t, id, 3000);
    cr_assert_eq(r.status, 202, "status %d", r.status);
    nt_rep_free(&r);
    cr_assert_lt(zclock_mono() - t0, 2000);
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 5);

    /* A holder that never releases: 503 with retry_after after NODE_CLAIM_WAIT_MS. */
    t0 = zclock_mono();
    id = nt_send(&t, "msg.post", conv2, NULL, "{\"content\":\"gives up\"}");
    r = s_recv_within(&t, id, NODE_CLAIM_WAIT_MS + 3000);
    cr_assert_eq(r.status, 503, "status %d", r.status);
    cr_assert_eq(r.retry_after, 1);
    nt_rep_free(&r);
    cr_assert_geq(zclock_mono() - t0, NODE_CLAIM_WAIT_MS - 200);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM conversation_owners WHERE "
                           "conversation_id = '%s' AND node_id = 'holder'",
                           s_id(conv2).s),
                 1);
    /* The holder dies: the claim is taken over at once. */
    snprintf(spec, sizeof spec, "6 %s:alive,holder:dead", t.cfg.id);
    fr_ring_set(&f, spec);
    zclock_sleep(200);
    cr_assert_eq(s_post(&t, conv2), 202);
    nt_assert_gapless(&t, conv);
    nt_assert_gapless(&t, conv2);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence, locked_row_delays_claim_without_blocking, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "c");
    nt_t t;
    s_open(&t, "c", f.router);
    char spec[160];
    snprintf(spec, sizeof spec, "3 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    t.cfg.actor_idle_s = 1;
    s_start(&t);
    const char *members[] = {t.cfg.id};
    uint8_t conv[16], other[16];
    s_conv_of(members, 1, t.cfg.id, conv);
    s_conv_of(members, 1, t.cfg.id, other);
    s_wait_owner(&t, conv);
    nt_rep_t r = nt_call(&t, "conv.create", conv, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", other, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    /* Passivation releases the claims. */
    for (int i = 0; i < 60 && nt_sql_ll(&t, OWNER_ROWS, s_id(conv).s) != 0; i++) {
        zclock_sleep(100);
    }
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(conv).s), 0, "claim kept after passivation");
    /* A node that stopped in the middle of a group commit: its open transaction holds
       the row (its guard's FOR SHARE)... */
    s_exec(&t,
           "INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES ('%s', "
           "'stuck', 2)",
           s_id(conv).s);
    s_exec(&t, "BEGIN; SELECT 1 FROM conversation_owners WHERE conversation_id = '%s' FOR SHARE",
           s_id(conv).s);
    uint64_t id = nt_send(&t, "msg.post", conv, NULL, "{\"content\":\"behind a lock\"}");
    /* ...the node is not blocked: another conversation is served meanwhile. */
    r = nt_call(&t, "msg.post", other, "{\"content\":\"not blocked\"}");
    cr_assert_eq(r.status, 202, "other conversation status %d", r.status);
    nt_rep_free(&r);
    r = s_recv_within(&t, id, 400);
    cr_assert_eq(r.status, -1);
    nt_sql(&t, "COMMIT");
    /* The committed row names a node absent from our ring at an older epoch: taken over. */
    r = s_recv_within(&t, id, 3000);
    cr_assert_eq(r.status, 202, "status %d", r.status);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 3);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence, uncommitted_claim_costs_at_most_the_lock_timeout, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "u");
    nt_t t;
    s_open(&t, "u", f.router);
    char spec[160];
    snprintf(spec, sizeof spec, "4 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    s_start(&t);
    const char *members[] = {t.cfg.id};
    uint8_t conv[16], other[16];
    s_conv_of(members, 1, t.cfg.id, conv);
    s_conv_of(members, 1, t.cfg.id, other);
    /* Waits on the other conversation: conv.get warms the actor of the conversation it
       reads, and that activation's claim could land after the insert below. */
    s_wait_owner(&t, other);
    /* The conversation exists but nobody claimed it; a stopped claimant's transaction
       inserted its claim and never ended. */
    s_exec(&t, "INSERT INTO conversations (id, team_id) VALUES ('%s', '%s')", s_id(conv).s,
           t.team_s);
    nt_rep_t r = nt_call(&t, "conv.create", other, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    /* Nothing may have claimed it: the lookup above found no conversation. */
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(conv).s), 0,
                 "claimed at epoch %lld, by this node: %lld, %lld ms ago",
                 nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s),
                 nt_sql_ll(&t,
                           "SELECT (node_id = '%s')::int FROM conversation_owners WHERE "
                           "conversation_id = '%s'",
                           t.cfg.id, s_id(conv).s),
                 nt_sql_ll(&t,
                           "SELECT (extract(epoch FROM now() - claimed_at) * 1000)::bigint FROM "
                           "conversation_owners WHERE conversation_id = '%s'",
                           s_id(conv).s));
    s_exec(&t,
           "BEGIN; INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES "
           "('%s', 'stuck', 1)",
           s_id(conv).s);
    uint64_t id = nt_send(&t, "msg.post", conv, NULL, "{\"content\":\"behind an insert\"}");
    /* The node's pipeline is held at most ~200 ms per claim attempt. */
    for (int i = 0; i < 5; i++) {
        int64_t t0 = zclock_mono();
        r = nt_call(&t, "msg.post", other, "{\"content\":\"still served\"}");
        cr_assert_eq(r.status, 202, "status %d", r.status);
        nt_rep_free(&r);
        cr_assert_lt(zclock_mono() - t0, 1000, "the node was blocked");
    }
    r = s_recv_within(&t, id, 100);
    cr_assert_eq(r.status, -1);
    nt_sql(&t, "COMMIT");
    r = s_recv_within(&t, id, 3000);
    cr_assert_eq(r.status, 202, "status %d", r.status);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 4);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence, ring_change_hands_off_after_turn, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "d");
    nt_t t;
    s_open(&t, "d", f.router);
    char spec[200];
    snprintf(spec, sizeof spec, "5 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    s_start(&t);
    /* Both conversations go to "zz" once it joins. */
    const char *both[] = {t.cfg.id, "zz"};
    uint8_t busy[16], idle[16];
    s_conv_of(both, 2, "zz", busy);
    s_conv_of(both, 2, "zz", idle);
    s_wait_owner(&t, busy);
    nt_rep_t r = nt_call(&t, "conv.create", busy, "{\"metadata\":{\"echo\":{\"delay_ms\":100}}}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", idle, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    /* A slow turn (8 words x 100 ms) runs on busy when the ring changes. */
    r = nt_call(&t, "msg.post", busy, "{\"content\":\"one two three four five six seven\"}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    snprintf(spec, sizeof spec, "6 %s:alive,zz:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    for (int i = 0; i < 40 && nt_sql_ll(&t, OWNER_ROWS, s_id(idle).s) != 0; i++) {
        zclock_sleep(25);
    }
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(idle).s), 0, "idle actor's claim not released");
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(busy).s), 1, "released before the turn ended");
    r = nt_call(&t, "msg.post", busy, "{\"content\":\"after\"}");
    cr_assert_eq(r.type, PROTO_MOVED);
    cr_assert_eq(r.epoch, 6);
    nt_rep_free(&r);
    /* The turn ends here (stored by us), then the claim goes. */
    for (int i = 0; i < 60 && nt_sql_ll(&t, OWNER_ROWS, s_id(busy).s) != 0; i++) {
        zclock_sleep(50);
    }
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(busy).s), 0);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                           "type = 'turn.completed'",
                           s_id(busy).s),
                 1);
    nt_assert_gapless(&t, busy);
    nt_stop(&t);
    fr_stop(&f);
}

/* A request whose idempotency lookup is in flight is handed off (MOVED); the ring comes
   back and a new request takes the head of the mailbox: the old lookup's answer must not
   be applied to it (it was: 409 "already used with a different request"). */
Test(node_fence, handoff_during_idempotency_lookup, .timeout = 60)
{
    fr_t f;
    fr_start(&f, "i");
    nt_t t;
    s_open(&t, "i", f.router);
    char spec[200];
    snprintf(spec, sizeof spec, "5 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    s_start(&t);
    const char *both[] = {t.cfg.id, "zz"};
    uint8_t x[16], z[16];
    s_conv_of(both, 2, "zz", x);
    s_conv_of(both, 2, t.cfg.id, z);
    s_wait_owner(&t, x);
    nt_rep_t r = nt_call(&t, "conv.create", x, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", z, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    r = nt_call(&t, "msg.post", x,
                "{\"content\":\"first\",\"idempotency_key\":\"k1\",\"request_hash\":\"h1\"}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    /* Hold the node's pipeline: a write of z waits for our row lock. */
    s_exec(&t, "BEGIN; SELECT 1 FROM conversations WHERE id = '%s' FOR UPDATE", s_id(z).s);
    uint64_t patch = nt_send(&t, "conv.patch", z, NULL, "{\"title\":\"blocked\"}");
    zclock_sleep(100);
    uint64_t old = nt_send(&t, "msg.post", x, NULL,
                           "{\"content\":\"first\",\"idempotency_key\":\"k1\","
                           "\"request_hash\":\"h1\"}");
    zclock_sleep(100); /* its lookup is queued behind the blocked write */
    snprintf(spec, sizeof spec, "6 %s:alive,zz:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    r = nt_recv(&t, old);
    cr_assert_eq(r.type, PROTO_MOVED, "status %d", r.status);
    nt_rep_free(&r);
    snprintf(spec, sizeof spec, "7 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    uint64_t fresh = 0;
    for (int i = 0; i < 50; i++) {
        fresh = nt_send(&t, "msg.post", x, NULL,
                        "{\"content\":\"second\",\"idempotency_key\":\"k2\","
                        "\"request_hash\":\"h2\"}");
        if (!(nt_wait(t.gw, 100))) {
            break; /* waiting in the mailbox behind the lookup */
        }
        r = nt_recv(&t, fresh);
        cr_assert_eq(r.type, PROTO_MOVED, "status %d before the ring came back", r.status);
        nt_rep_free(&r);
        zclock_sleep(20);
    }
    nt_sql(&t, "COMMIT");
    r = nt_recv(&t, patch);
    cr_assert_eq(r.status, 200);
    nt_rep_free(&r);
    r = nt_recv(&t, fresh);
    cr_assert_eq(r.status, 202, "status %d: %s", r.status,
                 r.body ? nt_str(r.body, "error", NULL) : "");
    nt_rep_free(&r);
    nt_stop(&t);
    fr_stop(&f);
}

Test(node_fence, restart_cleans_old_claims_and_skips_standby, .timeout = 60)
{
    fr_t sb, f;
    fr_start(&sb, "sb");
    fr_start(&f, "e");
    fr_standby(&sb, true);
    char list[256];
    snprintf(list, sizeof list, "%s,%s", sb.router, f.router);
    nt_t t;
    s_open(&t, "e", list);
    char spec[160];
    snprintf(spec, sizeof spec, "9 %s:alive", t.cfg.id);
    fr_ring_set(&f, spec);
    const char *members[] = {t.cfg.id};
    uint8_t old[16], conv[16];
    s_conv_of(members, 1, t.cfg.id, old);
    s_conv_of(members, 1, t.cfg.id, conv);
    /* A claim left by an earlier run of this node id. */
    char c[37], sql[512];
    util_uuid_format(old, c);
    snprintf(sql, sizeof sql,
             "INSERT INTO conversations (id, team_id) VALUES ('%s', '%s'); INSERT INTO "
             "conversation_owners (conversation_id, node_id, epoch) VALUES ('%s', '%s', 1)",
             c, t.team_s, c, t.cfg.id);
    nt_sql(&t, sql);
    int64_t t0 = zclock_mono();
    s_start(&t);
    /* The standby answers at once; the node moves on well before the 1 s silence. */
    for (int i = 0; i < 100 && fr_registers(&f) == 0; i++) {
        zclock_sleep(20);
    }
    cr_assert_gt(fr_registers(&f), 0);
    cr_assert_lt(zclock_mono() - t0, 900, "standby not skipped at once");
    s_wait_owner(&t, conv);
    nt_rep_t r = nt_call(&t, "conv.create", conv, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t, OWNER_ROWS, s_id(old).s), 0, "old claim not deleted");
    cr_assert_eq(nt_sql_ll(&t, OWNER_EPOCH, s_id(conv).s), 9);
    nt_stop(&t);
    fr_stop(&f);
    fr_stop(&sb);
}

/* Two nodes, each told by its own registry that it owns everything: node A at epoch 5
   (the old ring), node B at epoch 6 (A dead). Both get writes for the same
   conversations; A's are refused once B claimed, nothing is lost or duplicated. */
Test(node_fence, split_brain_two_nodes, .timeout = 90)
{
    fr_t fa, fb;
    fr_start(&fa, "sa");
    fr_start(&fb, "sb2");
    nt_t a, b;
    s_open(&a, "A", fa.router);
    s_open(&b, "B", fb.router);
    memcpy(b.team, a.team, 16);
    memcpy(b.team_s, a.team_s, sizeof a.team_s);
    char spec[200];
    snprintf(spec, sizeof spec, "5 %s:alive", a.cfg.id);
    fr_ring_set(&fa, spec);
    snprintf(spec, sizeof spec, "6 %s:dead,%s:alive", a.cfg.id, b.cfg.id);
    fr_ring_set(&fb, spec);
    s_start(&a);
    s_start(&b);
    enum { N = 8, ROUNDS = 6 };
    uint8_t conv[N][16];
    for (int i = 0; i < N; i++) {
        util_uuid_generate(conv[i]);
    }
    s_wait_owner(&a, conv[0]);
    s_wait_owner(&b, conv[0]);
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_call(&a, "conv.create", conv[i], "{}");
        cr_assert_eq(r.status, 201);
        nt_rep_free(&r);
    }
    int acked = 0, moved = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            /* Alternate: A first on even rounds, B first on odd ones, both at once. */
            nt_t *x = (round + i) % 2 ? &a : &b, *y = x == &a ? &b : &a;
            char body[64];
            snprintf(body, sizeof body, "{\"content\":\"r%d c%d\"}", round, i);
            uint64_t ix = nt_send(x, "msg.post", conv[i], NULL, body);
            uint64_t iy = nt_send(y, "msg.post", conv[i], NULL, body);
            nt_rep_t rx = nt_recv(x, ix), ry = nt_recv(y, iy);
            acked += (rx.status == 202) + (ry.status == 202);
            moved += (rx.type == PROTO_MOVED) + (ry.type == PROTO_MOVED);
            cr_assert(rx.status == 202 || rx.type == PROTO_MOVED || rx.status == 503, "status %d",
                      rx.status);
            cr_assert(ry.status == 202 || ry.type == PROTO_MOVED || ry.status == 503, "status %d",
                      ry.status);
            nt_rep_free(&rx);
            nt_rep_free(&ry);
        }
    }
    cr_assert_gt(moved, 0, "the stale node was never refused");
    cr_assert_gt(acked, N * ROUNDS / 2);
    zclock_sleep(300);
    long long stored = nt_sql_ll(&a,
                                 "SELECT count(*) FROM messages WHERE team_id = '%s' AND role "
                                 "= 'user'",
                                 a.team_s);
    cr_assert_eq(stored, acked, "%lld user messages stored, %d acknowledged", stored, acked);
    for (int i = 0; i < N; i++) {
        nt_assert_gapless(&a, conv[i]);
        char c[37];
        util_uuid_format(conv[i], c);
        cr_assert_eq(nt_sql_ll(&a,
                               "SELECT count(*) FROM conversation_owners WHERE "
                               "conversation_id = '%s' AND node_id = '%s' AND epoch = 6",
                               c, b.cfg.id),
                     1, "B does not hold conversation %d", i);
    }
    nt_stop(&a);
    nt_stop(&b);
    fr_stop(&fa);
    fr_stop(&fb);
}
