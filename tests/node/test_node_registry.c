/*  test_node_registry — the node's registry client against a fake registry
    (ROUTER + PUB in the test thread): REGISTER with the bound endpoints,
    RING_GET at start, heartbeats with the actor count, the ring learnt from
    replies and from the PUB topic "ring" (alive nodes sorted by id), MOVED
    with the node's epoch for conversations owned by another node, re-register
    on state "unknown", failover to the next registry after 1 s of silence,
    and 503 while no ring is known. */
#include "common/ring.h"
#include "tests/fixtures/node_test.h"

typedef struct {
    zsock_t *router;
    zsock_t *pub;
    char router_ep[96];
    char pub_ep[96];
} fake_reg_t;

static void s_fake_new(fake_reg_t *f, const char *tag)
{
    snprintf(f->router_ep, sizeof f->router_ep, "ipc://@/bicky-node-reg-%d-%s", (int)getpid(), tag);
    snprintf(f->pub_ep, sizeof f->pub_ep, "ipc://@/bicky-node-regpub-%d-%s", (int)getpid(), tag);
    f->router = zsock_new_router(f->router_ep);
    f->pub = zsock_new_pub(f->pub_ep);
    cr_assert_not_null(f->router);
    cr_assert_not_null(f->pub);
}

static void s_fake_destroy(fake_reg_t *f)
{
    zsock_destroy(&f->router);
    zsock_destroy(&f->pub);
}

/* Receives the next message of type want (others are dropped); identity kept in *id. */
static bool s_expect(fake_reg_t *f, proto_type_t want, proto_msg_t *out, zframe_t **id, int ms)
{
    int64_t deadline = zclock_mono() + ms;
    while (zclock_mono() < deadline) {
        if (!nt_wait(f->router, (int)(deadline - zclock_mono()))) {
            return false;
        }
        zframe_t *ident = NULL;
        if (wire_recv(f->router, &ident, out, "fake-reg") < 0) {
            zframe_destroy(&ident);
            continue;
        }
        if (out->type == want) {
            zframe_destroy(id);
            *id = ident;
            return true;
        }
        zframe_destroy(&ident);
        proto_msg_reset(out);
    }
    return false;
}

static proto_node_t s_node(const char *id, const char *state)
{
    proto_node_t n = {.weight = 1};
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.state, sizeof n.state, "%s", state);
    snprintf(n.router, sizeof n.router, "tcp://127.0.0.1:1");
    snprintf(n.pub, sizeof n.pub, "tcp://127.0.0.1:2");
    return n;
}

static void s_send_ring(fake_reg_t *f, zframe_t *id, proto_node_t *nodes, size_t n, uint64_t epoch)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_RING, .ring_epoch = epoch};
    m.pub = f->pub_ep;
    m.nodes = nodes;
    m.nnodes = n;
    if (id) {
        cr_assert_eq(wire_send(f->router, id, &m), 0);
    } else {
        cr_assert_eq(wire_publish(f->pub, "ring", 4, &m), 0);
    }
}

static void s_send_ack(fake_reg_t *f, zframe_t *id, const char *state, uint64_t epoch)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_REG_ACK, .ring_epoch = epoch};
    m.state = (char *)state;
    m.pub = f->pub_ep;
    cr_assert_eq(wire_send(f->router, id, &m), 0);
}

/* A conversation id the ring {n1, n2} gives to want. */
static void s_conv_owned_by(const char *want, uint8_t conv[16])
{
    ring_t *r = ring_new(0);
    ring_member_t m[2] = {{"n1", 1}, {"n2", 1}};
    cr_assert_eq(ring_set(r, m, 2), 0);
    for (;;) {
        util_uuid_generate(conv);
        if (strcmp(m[ring_lookup(r, conv)].id, want) == 0) {
            break;
        }
    }
    ring_destroy(&r);
}

static void s_start_with(nt_t *t, const char *registry)
{
    if (!nt_open(t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    t->cfg.standalone = false;
    t->cfg.registry = registry;
    nt_start_node(t);
    nt_connect(t);
}

Test(node_registry, registers_follows_ring_and_moves, .timeout = 30)
{
    fake_reg_t f;
    s_fake_new(&f, "a");
    nt_t t;
    s_start_with(&t, f.router_ep);

    proto_msg_t m;
    zframe_t *id = NULL;
    cr_assert(s_expect(&f, PROTO_REGISTER, &m, &id, 3000), "no REGISTER");
    cr_assert_str_eq(m.node_id, "n1");
    cr_assert_str_eq(m.router, t.bind);
    cr_assert_str_eq(m.pub, t.pub);
    cr_assert_eq(m.weight, 1);
    proto_msg_reset(&m);
    s_send_ack(&f, id, "alive", 5);
    cr_assert(s_expect(&f, PROTO_RING_GET, &m, &id, 3000), "no RING_GET");
    proto_msg_reset(&m);
    /* Unsorted on purpose: the node sorts by id. */
    proto_node_t nodes[3] = {s_node("n2", "alive"), s_node("n1", "alive"),
                             s_node("n0", "draining")};
    s_send_ring(&f, id, nodes, 3, 5);

    uint8_t mine[16], theirs[16];
    s_conv_owned_by("n1", mine);
    s_conv_owned_by("n2", theirs);
    nt_rep_t r = {.status = -1};
    for (int i = 0; i < 50; i++) {
        r = nt_call(&t, "conv.get", theirs, "{}");
        if (r.type == PROTO_MOVED) {
            break;
        }
        nt_rep_free(&r);
        zclock_sleep(50);
    }
    cr_assert_eq(r.type, PROTO_MOVED);
    cr_assert_eq(r.epoch, 5);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.get", mine, "{}");
    cr_assert_eq(r.status, 404);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", mine, "{}");
    cr_assert_eq(r.status, 201);
    nt_rep_free(&r);

    /* Heartbeats carry the actor count. */
    cr_assert(s_expect(&f, PROTO_HEARTBEAT, &m, &id, 2500), "no HEARTBEAT");
    cr_assert_str_eq(m.node_id, "n1");
    proto_msg_reset(&m);
    s_send_ack(&f, id, "alive", 5); /* unanswered, the node would move to the next registry */
    cr_assert(s_expect(&f, PROTO_HEARTBEAT, &m, &id, 2500), "no second HEARTBEAT");
    cr_assert_eq(m.actors, 1);
    proto_msg_reset(&m);
    s_send_ack(&f, id, "alive", 5);

    /* A published ring with n2 gone: the node owns its conversations now. */
    proto_node_t alone[2] = {s_node("n1", "alive"), s_node("n2", "dead")};
    for (int i = 0; i < 50; i++) {
        s_send_ring(&f, NULL, alone, 2, 6);
        r = nt_call(&t, "conv.get", theirs, "{}");
        if (r.status == 404) {
            break;
        }
        nt_rep_free(&r);
        zclock_sleep(50);
    }
    cr_assert_eq(r.status, 404);
    nt_rep_free(&r);
    /* An older published ring is ignored. */
    s_send_ring(&f, NULL, nodes, 3, 4);
    zclock_sleep(200);
    r = nt_call(&t, "conv.get", theirs, "{}");
    cr_assert_eq(r.status, 404);
    nt_rep_free(&r);

    /* Junk from the registry side (DEALER and SUB) is dropped; the node keeps going. */
    cr_assert(s_expect(&f, PROTO_HEARTBEAT, &m, &id, 2500));
    proto_msg_reset(&m);
    void *rh = zsock_resolve(f.router), *ph = zsock_resolve(f.pub);
    for (int i = 0; i < 50; i++) {
        uint8_t junk[40];
        for (size_t k = 0; k < sizeof junk; k++) {
            junk[k] = (uint8_t)rand();
        }
        zmq_send(rh, zframe_data(id), zframe_size(id), ZMQ_SNDMORE);
        zmq_send(rh, junk, (size_t)(i % 40) + 1, 0);
        zmq_send(ph, "ring", 4, ZMQ_SNDMORE);
        zmq_send(ph, junk, (size_t)(i % 40) + 1, 0);
        zmq_send(ph, "ring", 4, 0); /* wrong frame count */
    }
    s_send_ack(&f, id, "alive", 6);
    r = nt_call(&t, "conv.get", mine, "{}");
    cr_assert_eq(r.status, 200);
    nt_rep_free(&r);

    /* The registry forgot us: the node registers again. */
    cr_assert(s_expect(&f, PROTO_HEARTBEAT, &m, &id, 2500));
    proto_msg_reset(&m);
    s_send_ack(&f, id, "unknown", 6);
    cr_assert(s_expect(&f, PROTO_REGISTER, &m, &id, 2500), "no REGISTER after unknown");
    proto_msg_reset(&m);
    zframe_destroy(&id);
    nt_stop(&t);
    s_fake_destroy(&f);
}

Test(node_registry, fails_over_to_next_registry, .timeout = 30)
{
    fake_reg_t f;
    s_fake_new(&f, "b");
    char list[256];
    snprintf(list, sizeof list, "ipc://@/bicky-node-nobody-%d,%s", (int)getpid(), f.router_ep);
    nt_t t;
    s_start_with(&t, list);
    int64_t t0 = zclock_mono();
    proto_msg_t m;
    zframe_t *id = NULL;
    cr_assert(s_expect(&f, PROTO_REGISTER, &m, &id, 4000), "second registry never reached");
    int64_t ms = zclock_mono() - t0;
    cr_assert_geq(ms, 900, "moved on too early (%lld ms)", (long long)ms);
    cr_assert_lt(ms, 3000, "moved on too late (%lld ms)", (long long)ms);
    proto_msg_reset(&m);
    zframe_destroy(&id);
    nt_stop(&t);
    s_fake_destroy(&f);
}

Test(node_registry, no_ring_means_unavailable, .timeout = 30)
{
    char list[128];
    snprintf(list, sizeof list, "ipc://@/bicky-node-silent-%d", (int)getpid());
    nt_t t;
    s_start_with(&t, list);
    uint8_t conv[16];
    util_uuid_generate(conv);
    nt_rep_t r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_eq(r.status, 503);
    cr_assert_eq(r.retry_after, 1);
    cr_assert_str_eq(nt_str(r.body, "code", NULL), "unavailable");
    nt_rep_free(&r);
    /* Team-wide reads need no ring. */
    r = nt_call(&t, "conv.list", NULL, "{}");
    cr_assert_eq(r.status, 200);
    nt_rep_free(&r);
    nt_stop(&t);
}
