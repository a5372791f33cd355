/*  test_reg_server — the registry running in-process (reg_server_actor) on
    ipc endpoints against a throwaway migrated database: registration,
    heartbeats, death detection with PUB updates, revival, admin actions,
    garbage on the ROUTER, restart from Postgres, a second registry standing
    by and taking over, and demotion when the database session is lost. */
#include "registry/reg_server.h"
#include "registry/reg_store.h"
#include "tests/fixtures/reg_testutil.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define S_DEAD_AFTER 1000

/* Random frames can declare msgpack containers of 2^32 elements, and
   msgpack-c asks malloc for room for all of them up front. glibc answers
   NULL (or lazily), which msgpack-c and proto_decode handle; ASan instead
   aborts the process by default. Make the sanitized build behave like the
   real allocator here. (proto_decode could bound declared sizes by the
   bytes left; reported.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

typedef struct {
    rt_db_t db;         /* throwaway database */
    int generation;     /* distinct endpoints per registry instance */
    char router[128];   /* registry ROUTER endpoint */
    char pub[128];      /* registry PUB endpoint */
    reg_config_t cfg;   /* config of the running instance */
    zactor_t *registry; /* the running instance */
} s_env_t;

static s_env_t s_env;

static void s_start(const char *router)
{
    if (!s_env.db.name[0]) {
        rt_db_create(&s_env.db, true);
    }
    s_env.generation++;
    if (router) {
        snprintf(s_env.router, sizeof s_env.router, "%s", router);
    } else {
        snprintf(s_env.router, sizeof s_env.router, "ipc://@/bicky-reg-%d-%d-r", (int)getpid(),
                 s_env.generation);
    }
    snprintf(s_env.pub, sizeof s_env.pub, "ipc://@/bicky-reg-%d-%d-p", (int)getpid(),
             s_env.generation);
    s_env.cfg = (reg_config_t){.bind = s_env.router,
                               .pub_bind = s_env.pub,
                               .database_url = s_env.db.conninfo,
                               .dead_after_ms = S_DEAD_AFTER};
    s_env.registry = zactor_new(reg_server_actor, &s_env.cfg);
    cr_assert_not_null(s_env.registry);
}

static void s_teardown(void)
{
    zactor_destroy(&s_env.registry);
    rt_db_drop(&s_env.db);
}

TestSuite(reg_server, .fini = s_teardown, .timeout = 60);

static zsock_t *s_sub(void)
{
    zsock_t *sub = zsock_new_sub(s_env.pub, REG_RING_TOPIC);
    cr_assert_not_null(sub);
    return sub;
}

/* Next ring publication within timeout_ms; -1 on timeout. */
static int s_sub_recv(zsock_t *sub, proto_msg_t *out, int timeout_ms)
{
    zpoller_t *p = zpoller_new(sub, NULL);
    int64_t deadline = util_mono_ms() + timeout_ms;
    int rc = -1;
    for (int64_t left; rc < 0 && (left = deadline - util_mono_ms()) > 0;) {
        if (zpoller_wait(p, (int)left) != sub) {
            break;
        }
        uint8_t topic[64];
        size_t tlen = 0;
        rc = wire_recv_sub(sub, topic, sizeof topic, &tlen, out, "test-sub");
        if (rc == 0) {
            cr_assert_eq(tlen, 4);
            cr_assert_eq(memcmp(topic, "ring", 4), 0);
            cr_assert_eq(out->type, PROTO_RING);
        }
    }
    zpoller_destroy(&p);
    return rc;
}

Test(reg_server, registers_nodes_and_answers_ring_get)
{
    s_start(NULL);
    zsock_t *d1 = rt_dealer(s_env.router), *d2 = rt_dealer(s_env.router);
    proto_msg_t ack, ring;
    rt_register(d1, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, "alive");
    cr_assert_str_eq(ack.pub, s_env.pub);
    uint64_t e1 = ack.ring_epoch;
    proto_msg_reset(&ack);
    rt_register(d2, "n2", 2, &ack);
    cr_assert_str_eq(ack.state, "alive");
    cr_assert_eq(ack.ring_epoch, e1 + 1);
    proto_msg_reset(&ack);
    rt_beat(d1, "n1", 7, &ack);
    cr_assert_str_eq(ack.state, "alive");
    cr_assert_eq(ack.ring_epoch, e1 + 1, "a heartbeat changes nothing");
    proto_msg_reset(&ack);

    rt_ring_get(d1, &ring);
    cr_assert_eq(ring.ring_epoch, e1 + 1);
    cr_assert_str_eq(ring.pub, s_env.pub);
    cr_assert_eq(ring.nnodes, 2);
    cr_assert_str_eq(ring.nodes[0].id, "n1");
    cr_assert_str_eq(ring.nodes[1].id, "n2");
    cr_assert_str_eq(ring.nodes[0].state, "alive");
    cr_assert_eq(ring.nodes[0].actors, 7);
    cr_assert_eq(ring.nodes[1].weight, 2);
    cr_assert_str_eq(ring.nodes[1].router, "tcp://127.0.0.1:92");
    cr_assert_lt(ring.nodes[0].age_ms, 1000);
    proto_msg_reset(&ring);
    zsock_destroy(&d1);
    zsock_destroy(&d2);
}

/* Beats from the given dealers (NULL entries skipped) every 250 ms for ms. */
static void s_beat_for(zsock_t *d1, zsock_t *d2, int ms)
{
    for (int64_t end = util_mono_ms() + ms; util_mono_ms() < end;) {
        proto_msg_t ack;
        rt_beat(d1, "n1", 0, &ack);
        cr_assert_str_eq(ack.state, "alive");
        proto_msg_reset(&ack);
        if (d2) {
            rt_beat(d2, "n2", 0, &ack);
            cr_assert_str_eq(ack.state, "alive");
            proto_msg_reset(&ack);
        }
        zclock_sleep(250);
    }
}

Test(reg_server, silent_node_dies_publishes_and_revives)
{
    s_start(NULL);
    zsock_t *sub = s_sub(), *d1 = rt_dealer(s_env.router), *d2 = rt_dealer(s_env.router);
    proto_msg_t ack, ring;
    rt_register(d1, "n1", 1, &ack);
    proto_msg_reset(&ack);
    rt_register(d2, "n2", 1, &ack);
    proto_msg_reset(&ack);
    /* The periodic publication proves the subscription is live. */
    cr_assert_eq(s_sub_recv(sub, &ring, 2500), 0, "no periodic ring publication");
    proto_msg_reset(&ring);

    s_beat_for(d1, d2, 2 * S_DEAD_AFTER);
    rt_ring_get(d1, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "alive", "heartbeats keep a node alive");
    uint64_t before = ring.ring_epoch;
    proto_msg_reset(&ring);

    /* n2 goes silent; n1 keeps beating. */
    int64_t silent_at = util_mono_ms();
    bool dead_seen = false;
    while (!dead_seen && util_mono_ms() - silent_at < S_DEAD_AFTER + 1000) {
        s_beat_for(d1, NULL, 1);
        if (s_sub_recv(sub, &ring, 200) == 0) {
            dead_seen = !strcmp(rt_state_of(&ring, "n2"), "dead");
            if (dead_seen) {
                cr_assert_gt(ring.ring_epoch, before, "death bumps the epoch");
                cr_assert_str_eq(rt_state_of(&ring, "n1"), "alive");
            }
            proto_msg_reset(&ring);
        }
    }
    cr_assert(dead_seen, "no PUB update with n2 dead within dead-after + 1 s");
    rt_ring_get(d1, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "dead");
    uint64_t dead_epoch = ring.ring_epoch;
    proto_msg_reset(&ring);

    /* A restarted n2 re-registers under the same id. */
    rt_register(d2, "n2", 1, &ack);
    cr_assert_str_eq(ack.state, "alive");
    cr_assert_eq(ack.ring_epoch, dead_epoch + 1);
    proto_msg_reset(&ack);
    rt_ring_get(d1, &ring);
    cr_assert_eq(ring.nnodes, 2);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "alive");
    proto_msg_reset(&ring);
    zsock_destroy(&sub);
    zsock_destroy(&d1);
    zsock_destroy(&d2);
}

Test(reg_server, drain_undrain_remove)
{
    s_start(NULL);
    zsock_t *sub = s_sub(), *d = rt_dealer(s_env.router), *ctl = rt_dealer(s_env.router);
    proto_msg_t ack, ring;
    rt_register(d, "n1", 1, &ack);
    uint64_t e = ack.ring_epoch;
    proto_msg_reset(&ack);

    cr_assert_eq(rt_admin(ctl, "drain", "n1"), 200);
    rt_beat(d, "n1", 0, &ack);
    cr_assert_str_eq(ack.state, "draining");
    cr_assert_eq(ack.ring_epoch, e + 1);
    proto_msg_reset(&ack);
    /* The change is published (possibly after a periodic copy of the old ring). */
    bool seen = false;
    for (int i = 0; i < 3 && !seen && s_sub_recv(sub, &ring, 1500) == 0; i++) {
        seen = ring.ring_epoch == e + 1 && !strcmp(rt_state_of(&ring, "n1"), "draining");
        proto_msg_reset(&ring);
    }
    cr_assert(seen, "drain was not published");
    /* A restart of a draining node keeps it draining. */
    rt_register(d, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, "draining");
    proto_msg_reset(&ack);

    cr_assert_eq(rt_admin(ctl, "undrain", "n1"), 200);
    rt_ring_get(ctl, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n1"), "alive");
    cr_assert_eq(ring.ring_epoch, e + 2);
    proto_msg_reset(&ring);

    cr_assert_eq(rt_admin(ctl, "drain", "nobody"), 404);
    cr_assert_eq(rt_admin(ctl, "explode", "n1"), 400);

    cr_assert_eq(rt_admin(ctl, "remove", "n1"), 200);
    rt_ring_get(ctl, &ring);
    cr_assert_eq(ring.nnodes, 0);
    cr_assert_eq(ring.ring_epoch, e + 3);
    proto_msg_reset(&ring);
    rt_beat(d, "n1", 0, &ack);
    cr_assert_str_eq(ack.state, "unknown", "a removed node is told to register again");
    proto_msg_reset(&ack);
    rt_register(d, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, "alive");
    proto_msg_reset(&ack);
    zsock_destroy(&sub);
    zsock_destroy(&d);
    zsock_destroy(&ctl);
}

Test(reg_server, rejects_invalid_registration)
{
    s_start(NULL);
    zsock_t *d = rt_dealer(s_env.router);
    proto_msg_t m = {.type = PROTO_REGISTER,
                     .node_id = "bad id!",
                     .router = "tcp://127.0.0.1:1",
                     .pub = "tcp://127.0.0.1:2",
                     .weight = 1},
                ack, ring;
    rt_call(d, &m, PROTO_REG_ACK, &ack);
    cr_assert_str_eq(ack.state, "unknown");
    cr_assert_not_null(ack.error);
    proto_msg_reset(&ack);
    rt_ring_get(d, &ring);
    cr_assert_eq(ring.nnodes, 0);
    proto_msg_reset(&ring);
    zsock_destroy(&d);
}

/* Sends one message of nframes frames with random contents. */
static void s_send_random(zsock_t *d, int nframes, size_t maxlen)
{
    zmsg_t *zm = zmsg_new();
    for (int f = 0; f < nframes; f++) {
        size_t n = (size_t)rand() % (maxlen + 1);
        uint8_t *buf = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            buf[i] = (uint8_t)rand();
        }
        zmsg_addmem(zm, buf, n);
        free(buf);
    }
    zmsg_send(&zm, d);
}

/* A valid REGISTER cut at every length, and other well-formed but unwanted messages. */
static void s_send_truncated_and_misdirected(zsock_t *d)
{
    proto_msg_t m = {.type = PROTO_REGISTER,
                     .node_id = "trunc",
                     .router = "tcp://127.0.0.1:1",
                     .pub = "tcp://127.0.0.1:2",
                     .weight = 1};
    uint8_t *data = NULL;
    size_t size = 0;
    cr_assert_eq(proto_encode(&m, &data, &size), PROTO_OK);
    for (size_t cut = 0; cut < size; cut++) {
        zframe_t *f = zframe_new(data, cut);
        zframe_send(&f, d, 0);
    }
    free(data);
    proto_msg_t api = {.type = PROTO_API_REQ, .op = "conv.get"};
    proto_msg_t ev = {.type = PROTO_EVENT, .event_type = "x", .body = "{}"};
    proto_msg_t ring = {.type = PROTO_RING};
    cr_assert_eq(wire_send(d, NULL, &api), 0);
    cr_assert_eq(wire_send(d, NULL, &ev), 0);
    cr_assert_eq(wire_send(d, NULL, &ring), 0);
    static const uint8_t not_a_map[] = {0x93, 0x01, 0x02, 0x03};
    static const uint8_t wrong_version[] = {0x82, 0xa1, 'v', 0x07, 0xa4, 't', 'y', 'p', 'e', 0x01};
    zsock_send(d, "b", not_a_map, sizeof not_a_map);
    zsock_send(d, "b", wrong_version, sizeof wrong_version);
}

/* Opens raw TCP connections to port and writes random bytes (no ZMTP). */
static void s_raw_tcp_garbage(int port)
{
    for (int c = 0; c < 20; c++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            uint8_t buf[512];
            for (size_t i = 0; i < sizeof buf; i++) {
                buf[i] = (uint8_t)rand();
            }
            ssize_t w = write(fd, buf, (size_t)(rand() % (int)sizeof buf) + 1);
            (void)w;
        }
        close(fd);
    }
}

Test(reg_server, garbage_never_crashes_it)
{
    /* TCP, for the raw garbage below, on a port the kernel just handed out:
       the registry does not report the port of a wildcard bind. */
    char tcp[64];
    int port = tf_free_port();
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", port);
    s_start(tcp);
    srand(42);
    zsock_t *bad = rt_dealer(s_env.router);
    for (int i = 0; i < 300; i++) {
        s_send_random(bad, 1 + (i % 4 == 0 ? rand() % 3 : 0), i < 200 ? 64 : 4096);
    }
    zsock_send(bad, "z");
    s_send_truncated_and_misdirected(bad);
    s_raw_tcp_garbage(port);
    /* More than the registry accepts in one message: that peer is cut off. */
    zsock_t *huge = rt_dealer(s_env.router);
    s_send_random(huge, 1, 0);
    zframe_t *big = zframe_new(NULL, 2u << 20);
    zframe_send(&big, huge, 0);

    zsock_t *good = rt_dealer(s_env.router);
    proto_msg_t ring, ack;
    rt_ring_get(good, &ring);
    cr_assert_eq(ring.nnodes, 0, "no garbage became a node");
    proto_msg_reset(&ring);
    rt_register(good, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, "alive");
    proto_msg_reset(&ack);
    /* The sender of garbage can still talk sense afterwards. */
    rt_ring_get(bad, &ring);
    cr_assert_eq(ring.nnodes, 1);
    proto_msg_reset(&ring);
    zsock_destroy(&bad);
    zsock_destroy(&huge);
    zsock_destroy(&good);
}

/* Waits until sql on the database returns want (persistence is asynchronous). */
static void s_wait_db(const char *sql, const char *want)
{
    const char *got = "";
    for (int64_t end = util_mono_ms() + 5000; util_mono_ms() < end; zclock_sleep(50)) {
        if (!strcmp(got = rt_db_value(&s_env.db, sql), want)) {
            return;
        }
    }
    cr_assert_fail("%s: got '%s', want '%s'", sql, got, want);
}

Test(reg_server, restart_resumes_from_postgres)
{
    s_start(NULL);
    zsock_t *d = rt_dealer(s_env.router);
    proto_msg_t ack, ring;
    rt_register(d, "n1", 1, &ack);
    proto_msg_reset(&ack);
    rt_register(d, "n2", 3, &ack);
    proto_msg_reset(&ack);
    cr_assert_eq(rt_admin(d, "drain", "n2"), 200);
    rt_ring_get(d, &ring);
    uint64_t epoch = ring.ring_epoch;
    proto_msg_reset(&ring);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)epoch);
    s_wait_db("SELECT epoch FROM ring_state", want);
    s_wait_db("SELECT string_agg(id || ':' || state || ':' || weight, ',' ORDER BY id) FROM nodes",
              "n1:alive:1,n2:draining:3");
    zsock_destroy(&d);
    zactor_destroy(&s_env.registry);

    s_start(NULL);
    d = rt_dealer(s_env.router);
    rt_ring_get(d, &ring);
    cr_assert_eq(ring.ring_epoch, epoch + 1, "resumes above the stored epoch");
    cr_assert_eq(ring.nnodes, 2);
    cr_assert_str_eq(rt_state_of(&ring, "n1"), "alive", "known nodes get a grace period");
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "draining");
    cr_assert_eq(ring.nodes[1].weight, 3);
    proto_msg_reset(&ring);
    /* Nobody beats: after the grace period both are dead. */
    zclock_sleep(S_DEAD_AFTER + 400);
    rt_ring_get(d, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n1"), "dead");
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "dead");
    proto_msg_reset(&ring);
    /* n2 is dead but drained: its row keeps "draining" so the mark survives. */
    s_wait_db("SELECT string_agg(state, ',' ORDER BY id) FROM nodes", "dead,draining");
    /* They come back as themselves; n2 is still drained. */
    rt_beat(d, "n1", 0, &ack);
    cr_assert_str_eq(ack.state, "alive");
    proto_msg_reset(&ack);
    rt_register(d, "n2", 3, &ack);
    cr_assert_str_eq(ack.state, "draining");
    proto_msg_reset(&ack);
    zsock_destroy(&d);
}

/* Terminates the Postgres session holding the registry lock of this test's
   database (advisory locks of other databases look alike); returns how many. */
static int s_kill_lock_session(void)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
             " AND granted AND objid = (%lld & 4294967295)::oid AND database ="
             " (SELECT oid FROM pg_database WHERE datname = current_database())",
             (long long)REG_STORE_LOCK_KEY);
    return atoi(rt_db_value(&s_env.db, sql));
}

/* Sends RING_GET; true when the answer is a ring (active), false for a standby ack. */
static bool s_is_active(zsock_t *d, uint64_t *epoch)
{
    proto_msg_t m = {.type = PROTO_RING_GET, .req_id = (uint64_t)util_mono_us()}, rep;
    cr_assert_eq(wire_send(d, NULL, &m), 0);
    for (;;) {
        cr_assert_eq(rt_recv(d, &rep, 3000), 0, "no answer to ring_get");
        if (rep.req_id == m.req_id) {
            break;
        }
        proto_msg_reset(&rep);
    }
    bool active = rep.type == PROTO_RING;
    if (!active) {
        cr_assert_eq(rep.type, PROTO_REG_ACK);
        cr_assert_str_eq(rep.state, REG_STATE_STANDBY);
        cr_assert_eq(rep.ring_epoch, 0);
        cr_assert_null(rep.pub, "a standby advertises no PUB");
    }
    if (epoch) {
        *epoch = rep.ring_epoch;
    }
    proto_msg_reset(&rep);
    return active;
}

Test(reg_server, second_registry_stands_by_and_says_so)
{
    s_start(NULL);
    reg_config_t cfg2 = s_env.cfg;
    char router2[128], pub2[128];
    snprintf(router2, sizeof router2, "ipc://@/bicky-reg-%d-second-r", (int)getpid());
    snprintf(pub2, sizeof pub2, "ipc://@/bicky-reg-%d-second-p", (int)getpid());
    cfg2.bind = router2;
    cfg2.pub_bind = pub2;
    zactor_t *second = zactor_new(reg_server_actor, &cfg2);
    cr_assert_not_null(second);
    zsock_t *d1 = rt_dealer(s_env.router), *d2 = rt_dealer(router2);
    cr_assert(s_is_active(d1, NULL));
    cr_assert_not(s_is_active(d2, NULL));
    /* Every request type gets the same standby signal, and nothing changes. */
    proto_msg_t ack;
    rt_register(d2, "n1", 1, &ack);
    cr_assert_str_eq(ack.state, REG_STATE_STANDBY);
    cr_assert_not_null(ack.error);
    proto_msg_reset(&ack);
    rt_beat(d2, "n1", 0, &ack);
    cr_assert_str_eq(ack.state, REG_STATE_STANDBY);
    proto_msg_reset(&ack);
    proto_msg_t adm = {.type = PROTO_ADMIN, .action = "drain", .node_id = "n1"};
    rt_call(d2, &adm, PROTO_REG_ACK, &ack);
    cr_assert_str_eq(ack.state, REG_STATE_STANDBY);
    proto_msg_reset(&ack);
    cr_assert_str_eq(rt_db_value(&s_env.db, "SELECT count(*) FROM nodes"), "0");

    /* The active one goes away cleanly: the standby takes over. */
    uint64_t before = 0;
    rt_register(d1, "n1", 1, &ack);
    before = ack.ring_epoch;
    proto_msg_reset(&ack);
    zactor_destroy(&s_env.registry);
    int64_t t0 = util_mono_ms();
    uint64_t after = 0;
    while (!s_is_active(d2, &after) && util_mono_ms() - t0 < 3000) {
        zclock_sleep(50);
    }
    cr_assert_gt(after, before, "the takeover bumps the epoch");
    cr_assert_lt(util_mono_ms() - t0, 3000, "no takeover within 3 s");
    proto_msg_t ring;
    rt_ring_get(d2, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n1"), "alive", "membership came from Postgres");
    proto_msg_reset(&ring);
    zsock_destroy(&d1);
    zsock_destroy(&d2);
    zactor_destroy(&second);
}

Test(reg_server, demotes_when_its_session_dies_and_takes_over_again)
{
    s_start(NULL);
    zsock_t *d = rt_dealer(s_env.router);
    proto_msg_t ack;
    rt_register(d, "n1", 1, &ack);
    uint64_t before = ack.ring_epoch;
    proto_msg_reset(&ack);
    cr_assert_eq(s_kill_lock_session(), 1);
    /* Within a session check it notices, stands by, and (the lock being
       free) takes over again with a new epoch. Standby answers may show up
       in between; what must never happen is an old or repeated epoch. */
    uint64_t epoch = 0;
    int64_t t0 = util_mono_ms();
    while (util_mono_ms() - t0 < 4000) {
        if (s_is_active(d, &epoch) && epoch > before) {
            break;
        }
        cr_assert_eq(epoch == 0 || epoch == before, true, "epoch=%llu", (unsigned long long)epoch);
        zclock_sleep(50);
    }
    cr_assert_gt(epoch, before, "not active again with a newer epoch within 4 s");
    rt_beat(d, "n1", 0, &ack);
    cr_assert_str_eq(ack.state, "alive", "membership reloaded from Postgres");
    proto_msg_reset(&ack);
    zsock_destroy(&d);
}

Test(reg_server, stands_by_when_the_database_goes_away)
{
    s_start(NULL);
    zsock_t *d = rt_dealer(s_env.router);
    proto_msg_t ack;
    rt_register(d, "n1", 1, &ack);
    proto_msg_reset(&ack);
    /* Kill its connections and the database itself: the lock is gone. */
    rt_db_drop(&s_env.db);
    int64_t t0 = util_mono_ms();
    bool standby = false;
    while (!standby && util_mono_ms() - t0 < 3000) {
        standby = !s_is_active(d, NULL);
        zclock_sleep(100);
    }
    cr_assert(standby, "still active 3 s after its database went away");
    /* It keeps answering at once (the loop never waits on the database). */
    for (int i = 0; i < 8; i++) {
        int64_t t1 = util_mono_ms();
        rt_beat(d, "n1", 0, &ack);
        cr_assert_str_eq(ack.state, REG_STATE_STANDBY);
        proto_msg_reset(&ack);
        cr_assert_lt(util_mono_ms() - t1, 500, "the loop waited on the database");
        zclock_sleep(200);
    }
    zsock_destroy(&d);
    t0 = util_mono_ms();
    zactor_destroy(&s_env.registry);
    cr_assert_lt(util_mono_ms() - t0, 5000, "stopping took too long");
}
