/*  node_fake_reg — a fake registry for the node's component tests: a zactor with a
    ROUTER answering REGISTER / HEARTBEAT (reg_ack with the node's state in the ring
    the test set, or "standby") and RING_GET (the ring), and a PUB publishing the
    ring on every change and once a second, like bicky-registry. The test drives it
    through the actor's pipe (fr_ring_set, fr_standby, fr_registers).
    Header-only (static functions) because every test file is its own binary. */
#ifndef BICKY_TESTS_NODE_FAKE_REG_H
#define BICKY_TESTS_NODE_FAKE_REG_H

#include "node_test.h"

typedef struct {
    char router[96]; /* ROUTER endpoint */
    char pub[96];    /* PUB endpoint */
    zactor_t *actor; /* the fake */
} fr_t;

typedef struct {
    uint64_t epoch;
    proto_node_t nodes[8];
    size_t n;
    bool standby;
    int registers;
} fr_state_t;

static void
fr_ack(zsock_t *router, zframe_t *id, fr_state_t *st, const char *node_id, const char *pub)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_REG_ACK};
    const char *state = "alive";
    for (size_t i = 0; node_id && i < st->n; i++) {
        if (strcmp(st->nodes[i].id, node_id) == 0) {
            state = st->nodes[i].state;
        }
    }
    m.state = (char *)(st->standby ? "standby" : state);
    m.ring_epoch = st->standby ? 0 : st->epoch;
    m.pub = st->standby ? NULL : (char *)pub;
    wire_send(router, id, &m);
}

static void fr_ring(zsock_t *sock, zframe_t *id, fr_state_t *st, const char *pub)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_RING, .ring_epoch = st->epoch};
    m.pub = (char *)pub;
    m.nodes = st->nodes;
    m.nnodes = st->n;
    if (id) {
        wire_send(sock, id, &m);
    } else {
        wire_publish(sock, "ring", 4, &m);
    }
}

/* "EPOCH id:state,id:state" */
static void fr_set(fr_state_t *st, const char *spec)
{
    st->epoch = strtoull(spec, NULL, 10);
    st->n = 0;
    const char *p = strchr(spec, ' ');
    while (p && *++p && st->n < 8) {
        proto_node_t *n = &st->nodes[st->n++];
        memset(n, 0, sizeof *n);
        n->weight = 1;
        snprintf(n->router, sizeof n->router, "tcp://127.0.0.1:1");
        snprintf(n->pub, sizeof n->pub, "tcp://127.0.0.1:2");
        size_t idlen = strcspn(p, ":");
        snprintf(n->id, sizeof n->id, "%.*s", (int)idlen, p);
        p += idlen + 1;
        size_t slen = strcspn(p, ",");
        snprintf(n->state, sizeof n->state, "%.*s", (int)slen, p);
        p = strchr(p, ',');
    }
}

static void fr_on_router(zsock_t *router, fr_state_t *st, const char *pub)
{
    zframe_t *id = NULL;
    proto_msg_t m;
    if (wire_recv(router, &id, &m, "fake-reg") == 0) {
        if (m.type == PROTO_REGISTER || m.type == PROTO_HEARTBEAT) {
            st->registers += m.type == PROTO_REGISTER;
            fr_ack(router, id, st, m.node_id, pub);
        } else if (m.type == PROTO_RING_GET) {
            if (st->standby) {
                fr_ack(router, id, st, NULL, pub);
            } else {
                fr_ring(router, id, st, pub);
            }
        }
        proto_msg_reset(&m);
    }
    zframe_destroy(&id);
}

static bool fr_on_pipe(zsock_t *pipe, zsock_t *pubsock, fr_state_t *st, const char *pub)
{
    char *cmd = NULL, *arg = NULL;
    if (zstr_recvx(pipe, &cmd, &arg, NULL) < 1 || !cmd || strcmp(cmd, "$TERM") == 0) {
        zstr_free(&cmd);
        zstr_free(&arg);
        return false;
    }
    if (strcmp(cmd, "RING") == 0 && arg) {
        fr_set(st, arg);
        fr_ring(pubsock, NULL, st, pub);
        zsock_signal(pipe, 0);
    } else if (strcmp(cmd, "STANDBY") == 0) {
        st->standby = arg && strcmp(arg, "1") == 0;
        zsock_signal(pipe, 0);
    } else if (strcmp(cmd, "REGISTERS") == 0) {
        zsock_signal(pipe, (byte)(st->registers > 250 ? 250 : st->registers));
    }
    zstr_free(&cmd);
    zstr_free(&arg);
    return true;
}

static void fr_actor(zsock_t *pipe, void *args)
{
    fr_t *f = args;
    zsock_t *router = zsock_new_router(f->router);
    zsock_t *pub = zsock_new_pub(f->pub);
    fr_state_t st = {.epoch = 0};
    zsock_signal(pipe, router && pub ? 0 : 1);
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    int64_t last_pub = zclock_mono();
    for (bool run = router && pub; run;) {
        void *which = zpoller_wait(poller, 100);
        if (which == pipe) {
            run = fr_on_pipe(pipe, pub, &st, f->pub);
        } else if (which == router) {
            fr_on_router(router, &st, f->pub);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        if (zclock_mono() - last_pub >= 1000 && st.n && !st.standby) {
            fr_ring(pub, NULL, &st, f->pub); /* like the registry: once a second */
            last_pub = zclock_mono();
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
    zsock_destroy(&pub);
}

static void fr_start(fr_t *f, const char *tag)
{
    snprintf(f->router, sizeof f->router, "ipc://@/bicky-fence-reg-%d-%s", (int)getpid(), tag);
    snprintf(f->pub, sizeof f->pub, "ipc://@/bicky-fence-pub-%d-%s", (int)getpid(), tag);
    f->actor = zactor_new(fr_actor, f);
    cr_assert_not_null(f->actor);
}

/* Sets and publishes the ring: "EPOCH id:state,...". */
static void fr_ring_set(fr_t *f, const char *spec)
{
    zstr_sendx(f->actor, "RING", spec, NULL);
    zsock_wait(f->actor);
}

static void fr_standby(fr_t *f, bool on)
{
    zstr_sendx(f->actor, "STANDBY", on ? "1" : "0", NULL);
    zsock_wait(f->actor);
}

static int fr_registers(fr_t *f)
{
    zstr_sendx(f->actor, "REGISTERS", "", NULL);
    return zsock_wait(f->actor);
}

static void fr_stop(fr_t *f)
{
    zactor_destroy(&f->actor);
}

#endif
