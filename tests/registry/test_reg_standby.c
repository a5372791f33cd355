/*  test_reg_standby — active/standby registries as real bicky-registry
    processes on one throwaway database: exactly one is active, fake nodes
    that follow a registry list stay registered through a kill -9 of the
    active, the standby takes over within 3 s with a larger epoch, a
    restarted registry stands by, epochs only grow across takeovers, a
    frozen active loses the lock to the standby, and a drain accepted while
    the node was dead survives a registry crash.
    Binaries from BICKY_BIN (else build/bin next to this test). */
#include "registry/reg_server.h"
#include "registry/reg_store.h"
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>

#define S_MAX_REG   2
#define S_MAX_NODES 4
#define S_BEAT_MS   500  /* fake node heartbeat period */
#define S_SILENT_MS 1000 /* a fake node moves on after this long without an answer */

typedef struct {
    char router[64]; /* ROUTER endpoint */
    char pub[64];    /* PUB endpoint */
    pid_t pid;       /* running process, 0 when none */
} s_reg_t;

static struct {
    rt_db_t db;             /* throwaway database */
    s_reg_t reg[S_MAX_REG]; /* registries A and B */
    long dead_after_ms;     /* --dead-after-ms of both */
} s_env;

static void s_teardown(void)
{
    for (int i = 0; i < S_MAX_REG; i++) {
        if (s_env.reg[i].pid > 0) {
            kill(s_env.reg[i].pid, SIGKILL);
            waitpid(s_env.reg[i].pid, NULL, 0);
            s_env.reg[i].pid = 0;
        }
    }
    rt_db_drop(&s_env.db);
}

TestSuite(reg_standby, .fini = s_teardown, .timeout = 90);

/* Database and endpoints (unique ipc names) for registries A and B. */
static void s_setup(long dead_after_ms)
{
    if (!rt_bin_dir()) {
        cr_skip_test("built binaries not found (set BICKY_BIN)");
    }
    rt_db_create(&s_env.db, true);
    s_env.dead_after_ms = dead_after_ms;
    for (int i = 0; i < S_MAX_REG; i++) {
        tf_endpoint(s_env.reg[i].router, sizeof s_env.reg[i].router, i ? "reg-b" : "reg-a");
        tf_endpoint(s_env.reg[i].pub, sizeof s_env.reg[i].pub, i ? "pub-b" : "pub-a");
    }
}

static void s_spawn(int i)
{
    char path[1100], dead[32];
    snprintf(path, sizeof path, "%s/bicky-registry", rt_bin_dir());
    snprintf(dead, sizeof dead, "%ld", s_env.dead_after_ms);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(path, "bicky-registry", "--bind", s_env.reg[i].router, "--pub-bind", s_env.reg[i].pub,
              "--database-url", s_env.db.conninfo, "--dead-after-ms", dead, "--log-level", "notice",
              (char *)NULL);
        _exit(127);
    }
    s_env.reg[i].pid = pid;
}

static void s_kill9(int i)
{
    kill(s_env.reg[i].pid, SIGKILL);
    waitpid(s_env.reg[i].pid, NULL, 0);
    s_env.reg[i].pid = 0;
}

/* SIGTERM: registry i must exit 0 within 5 s (standby or active alike). */
static void s_stop(int i)
{
    kill(s_env.reg[i].pid, SIGTERM);
    int64_t t0 = util_mono_ms();
    int status = 0;
    while (waitpid(s_env.reg[i].pid, &status, WNOHANG) == 0) {
        cr_assert_lt(util_mono_ms() - t0, 5000, "registry %c ignored SIGTERM for 5 s", 'A' + i);
        zclock_sleep(20);
    }
    s_env.reg[i].pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "registry %c: status %d", 'A' + i,
              status);
}

/* How registry i answers a RING_GET: 1 active (epoch set), 0 standby, -1 silent. */
static int s_role(int i, uint64_t *epoch)
{
    zsock_t *d = rt_dealer(s_env.reg[i].router);
    proto_msg_t m = {.type = PROTO_RING_GET, .req_id = (uint64_t)util_mono_us()}, rep;
    cr_assert_eq(wire_send(d, NULL, &m), 0);
    int role = -1;
    int64_t deadline = util_mono_ms() + 500;
    while (role < 0 && util_mono_ms() < deadline &&
           rt_recv(d, &rep, (int)(deadline - util_mono_ms())) == 0) {
        if (rep.req_id == m.req_id && rep.type == PROTO_RING) {
            role = 1;
            *epoch = rep.ring_epoch;
        } else if (rep.req_id == m.req_id && rep.type == PROTO_REG_ACK) {
            cr_assert_str_eq(rep.state, REG_STATE_STANDBY);
            cr_assert_eq(rep.ring_epoch, 0);
            role = 0;
        }
        proto_msg_reset(&rep);
    }
    zsock_destroy(&d);
    return role;
}

/* Waits up to ms until registry i answers with role want; returns the time taken. */
static int64_t s_wait_role(int i, int want, int ms, uint64_t *epoch)
{
    int64_t t0 = util_mono_ms();
    uint64_t e = 0;
    while (s_role(i, &e) != want) {
        cr_assert_lt(util_mono_ms() - t0, ms, "registry %c not %s within %d ms", 'A' + i,
                     want ? "active" : "standby", ms);
        zclock_sleep(50);
    }
    if (epoch) {
        *epoch = e;
    }
    return util_mono_ms() - t0;
}

/* ---- fake nodes that follow a registry list (what node_registry does) ---- */

typedef struct {
    char id[16];          /* node id */
    int order[S_MAX_REG]; /* registry indexes, in list order */
    int cur;              /* position in order */
    zsock_t *dealer;      /* to the current registry */
    bool registered;      /* the current registry acked alive/draining */
    char state[16];       /* last state acked */
    uint64_t waiting;     /* req_id of the unanswered request, 0 when none */
    int64_t sent_ms;      /* when it was sent */
    int64_t next_send_ms; /* next register/heartbeat */
    bool paused;          /* silent (a node that died) */
} s_node_t;

static uint64_t s_next_req = 1;

static void s_node_send(s_node_t *n)
{
    char router[64], pub[64];
    snprintf(router, sizeof router, "tcp://127.0.0.1:9%s", n->id + 1);
    snprintf(pub, sizeof pub, "tcp://127.0.0.1:8%s", n->id + 1);
    proto_msg_t m = {.type = n->registered ? PROTO_HEARTBEAT : PROTO_REGISTER,
                     .req_id = ++s_next_req,
                     .node_id = n->id,
                     .router = router,
                     .pub = pub,
                     .weight = 1};
    cr_assert_eq(wire_send(n->dealer, NULL, &m), 0);
    n->waiting = m.req_id;
    n->sent_ms = util_mono_ms();
}

static void s_node_connect(s_node_t *n)
{
    zsock_destroy(&n->dealer);
    n->dealer = rt_dealer(s_env.reg[n->order[n->cur]].router);
    n->registered = false;
    n->waiting = 0;
}

static void s_node_init(s_node_t *n, const char *id, int first)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->order[0] = first;
    n->order[1] = 1 - first;
    s_node_connect(n);
}

static void s_node_next(s_node_t *n, int64_t delay_ms)
{
    n->cur = (n->cur + 1) % S_MAX_REG;
    s_node_connect(n);
    n->next_send_ms = util_mono_ms() + delay_ms;
}

static void s_node_on_reply(s_node_t *n, const proto_msg_t *m)
{
    if (m->type != PROTO_REG_ACK || m->req_id != n->waiting) {
        return;
    }
    n->waiting = 0;
    snprintf(n->state, sizeof n->state, "%s", m->state);
    if (!strcmp(m->state, REG_STATE_STANDBY)) {
        /* Not the active one: the next endpoint now (with a breath, in case all stand by). */
        s_node_next(n, 50);
    } else if (!strcmp(m->state, "alive") || !strcmp(m->state, "draining")) {
        n->registered = true;
        n->next_send_ms = util_mono_ms() + S_BEAT_MS;
    } else {
        n->registered = false;
        n->next_send_ms = util_mono_ms();
    }
}

static void s_node_step(s_node_t *n)
{
    proto_msg_t m;
    while (zsock_events(n->dealer) & ZMQ_POLLIN) {
        if (wire_recv(n->dealer, NULL, &m, "fake-node") == 0) {
            s_node_on_reply(n, &m);
            proto_msg_reset(&m);
        }
    }
    int64_t now = util_mono_ms();
    if (n->waiting && now - n->sent_ms >= S_SILENT_MS) {
        s_node_next(n, 0);
    }
    if (!n->waiting && !n->paused && now >= n->next_send_ms) {
        s_node_send(n);
    }
}

/* Runs every node for ms. */
static void s_pump(s_node_t *nodes, int count, int ms)
{
    for (int64_t end = util_mono_ms() + ms; util_mono_ms() < end; zclock_sleep(10)) {
        for (int i = 0; i < count; i++) {
            s_node_step(&nodes[i]);
        }
    }
}

static void s_nodes_free(s_node_t *nodes, int count)
{
    for (int i = 0; i < count; i++) {
        zsock_destroy(&nodes[i].dealer);
    }
}

/* The ring of registry i. */
static void s_ring_of(int i, proto_msg_t *ring)
{
    zsock_t *d = rt_dealer(s_env.reg[i].router);
    rt_ring_get(d, ring);
    zsock_destroy(&d);
}

/* Runs "bickyctl ARGS" (stderr merged) into out; returns its exit code. */
static int s_ctl(char *out, size_t cap, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/bickyctl %s 2>&1", rt_bin_dir(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int status = pclose(p);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A active, B standing by. */
static void s_start_pair(void)
{
    uint64_t e = 0;
    s_spawn(0);
    s_wait_role(0, 1, 5000, NULL);
    s_spawn(1);
    s_wait_role(1, 0, 5000, NULL);
    cr_assert_eq(s_role(0, &e), 1, "A is active");
    cr_assert_eq(s_role(1, &e), 0, "B stands by");
}

/* Registry reg's ring holds count nodes, all alive and beating; returns its epoch. */
static uint64_t s_assert_all_alive(int reg, size_t count)
{
    proto_msg_t ring;
    s_ring_of(reg, &ring);
    cr_assert_eq(ring.nnodes, count);
    for (size_t i = 0; i < ring.nnodes; i++) {
        cr_assert_str_eq(ring.nodes[i].state, "alive", "%s", ring.nodes[i].id);
        cr_assert_lt(ring.nodes[i].age_ms, 1500, "%s does not beat to %c", ring.nodes[i].id,
                     'A' + reg);
    }
    uint64_t epoch = ring.ring_epoch;
    proto_msg_reset(&ring);
    return epoch;
}

/* kill -9 of registry dead; the other must be active within 3 s with an
   epoch above before (nodes keep beating meanwhile). Returns that epoch. */
static uint64_t s_kill_and_take_over(int dead, s_node_t *nodes, int count, uint64_t before)
{
    s_kill9(dead);
    int64_t t0 = util_mono_ms();
    uint64_t after = 0;
    while (s_role(1 - dead, &after) != 1) {
        cr_assert_lt(util_mono_ms() - t0, 3000, "%c did not take over within 3 s", 'B' - dead);
        s_pump(nodes, count, 50);
    }
    cr_log_info("takeover took %lld ms", (long long)(util_mono_ms() - t0));
    cr_assert_gt(after, before, "the takeover epoch %llu must exceed %llu",
                 (unsigned long long)after, (unsigned long long)before);
    return after;
}

/* bickyctl with A (standby) first in its list: it moves on to B at once. */
static void s_ctl_skips_the_standby(void)
{
    char out[8192], args[512];
    snprintf(args, sizeof args, "--registry %s,%s status", s_env.reg[0].router,
             s_env.reg[1].router);
    cr_assert_eq(s_ctl(out, sizeof out, args), 0, "%s", out);
    cr_assert_not_null(strstr(out, "standby"), "%s", out);
    cr_assert_not_null(strstr(out, "active, ring epoch"), "%s", out);
    snprintf(args, sizeof args, "--registry %s,%s drain n3", s_env.reg[0].router,
             s_env.reg[1].router);
    int64_t t1 = util_mono_ms();
    cr_assert_eq(s_ctl(out, sizeof out, args), 0, "%s", out);
    cr_assert_lt(util_mono_ms() - t1, 900, "the standby's answer should move bickyctl on at once");
}

Test(reg_standby, kill_9_of_the_active_the_standby_takes_over)
{
    s_setup(3000);
    s_start_pair();
    /* n1, n2 list A first; n3 lists B first and must move on to A. */
    s_node_t nodes[3];
    s_node_init(&nodes[0], "n1", 0);
    s_node_init(&nodes[1], "n2", 0);
    s_node_init(&nodes[2], "n3", 1);
    s_pump(nodes, 3, 1500);
    uint64_t before = s_assert_all_alive(0, 3);
    cr_assert_eq(nodes[2].order[nodes[2].cur], 0, "n3 did not move on from the standby");

    /* The active dies without a word; nodes keep beating (and following). */
    uint64_t after = s_kill_and_take_over(0, nodes, 3, before);
    s_pump(nodes, 3, 2000);
    cr_assert_geq(s_assert_all_alive(1, 3), after);
    for (int i = 0; i < 3; i++) {
        cr_assert(nodes[i].registered, "%s not registered", nodes[i].id);
        cr_assert_eq(nodes[i].order[nodes[i].cur], 1, "%s does not follow B", nodes[i].id);
    }

    /* The old active comes back as a standby; B stays active. */
    uint64_t e = 0;
    s_spawn(0);
    s_wait_role(0, 0, 5000, NULL);
    s_pump(nodes, 3, 1000);
    cr_assert_eq(s_role(0, &e), 0);
    cr_assert_eq(s_role(1, &e), 1);
    s_ctl_skips_the_standby();

    /* A clean stop of the active hands over too (its session closes). */
    s_stop(1);
    s_wait_role(0, 1, 3000, &e);
    cr_assert_gt(e, after);
    s_pump(nodes, 3, 1500);
    proto_msg_t ring;
    s_ring_of(0, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n1"), "alive");
    cr_assert_str_eq(rt_state_of(&ring, "n3"), "draining", "the drain was stored");
    proto_msg_reset(&ring);
    s_stop(0);
    s_nodes_free(nodes, 3);
}

Test(reg_standby, epochs_only_grow_and_one_is_active_at_a_time)
{
    s_setup(3000);
    s_start_pair();
    uint64_t last = 0, e = 0;
    cr_assert_eq(s_role(0, &last), 1);
    s_node_t nodes[2];
    s_node_init(&nodes[0], "n1", 0);
    s_node_init(&nodes[1], "n2", 1);
    s_pump(nodes, 2, 1000);
    int active = 0;
    for (int round = 0; round < 3; round++) {
        last = s_kill_and_take_over(active, nodes, 2, last);
        s_spawn(active);
        s_wait_role(active, 0, 5000, NULL);
        s_pump(nodes, 2, 1500);
        /* Never two actives: the restarted one stands by, the other serves. */
        cr_assert_eq(s_role(active, &e), 0);
        cr_assert_eq(s_role(1 - active, &e), 1);
        cr_assert_geq(e, last);
        last = e;
        active = 1 - active;
    }
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)s_assert_all_alive(active, 2));
    cr_assert_str_eq(rt_db_value(&s_env.db, "SELECT epoch FROM ring_state"), want,
                     "the published epoch is the stored one");
    s_nodes_free(nodes, 2);
}

Test(reg_standby, drained_while_dead_survives_a_registry_crash)
{
    s_setup(1000);
    s_spawn(0);
    s_wait_role(0, 1, 5000, NULL);
    s_node_t nodes[2];
    s_node_init(&nodes[0], "n1", 0);
    s_node_init(&nodes[1], "n2", 0);
    s_pump(nodes, 2, 800);
    /* n2 dies. */
    nodes[1].paused = true;
    s_pump(nodes, 2, 1800);
    proto_msg_t ring;
    s_ring_of(0, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "dead");
    proto_msg_reset(&ring);
    /* Drained while dead; the 200 means stored: crash right after it. */
    zsock_t *ctl = rt_dealer(s_env.reg[0].router);
    cr_assert_eq(rt_admin(ctl, "drain", "n2"), 200);
    zsock_destroy(&ctl);
    s_kill9(0);

    s_spawn(0);
    s_wait_role(0, 1, 5000, NULL);
    s_ring_of(0, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "draining", "the drain mark was lost");
    proto_msg_reset(&ring);
    /* n2 restarts: it comes back draining, not alive. */
    s_nodes_free(nodes, 2);
    s_node_init(&nodes[0], "n1", 0);
    s_node_init(&nodes[1], "n2", 0);
    s_pump(nodes, 2, 1000);
    cr_assert(nodes[1].registered);
    cr_assert_str_eq(nodes[1].state, "draining");
    cr_assert_str_eq(nodes[0].state, "alive");
    s_ring_of(0, &ring);
    cr_assert_str_eq(rt_state_of(&ring, "n2"), "draining");
    proto_msg_reset(&ring);
    s_nodes_free(nodes, 2);
}

Test(reg_standby, a_frozen_active_loses_the_lock_to_the_standby)
{
    s_setup(3000);
    s_spawn(0);
    uint64_t before = 0, after = 0, e = 0;
    s_wait_role(0, 1, 5000, &before);
    s_spawn(1);
    s_wait_role(1, 0, 5000, NULL);
    /* A stops dead without closing anything: its session stays open until
       Postgres ends it for silence (REG_STORE_IDLE_KILL_MS). */
    kill(s_env.reg[0].pid, SIGSTOP);
    int64_t took = s_wait_role(1, 1, REG_STORE_IDLE_KILL_MS + 3000, &after);
    cr_assert_gt(after, before);
    cr_log_info("takeover from a frozen active took %lld ms", (long long)took);
    /* A wakes up: its session is gone, so it stands by instead of serving. */
    kill(s_env.reg[0].pid, SIGCONT);
    s_wait_role(0, 0, 2000, NULL);
    cr_assert_eq(s_role(1, &e), 1);
    cr_assert_eq(e, after, "B's epoch did not move: A bumped nothing after waking");
}
