/*  curve_probe — a hostile (or borrowed-key) ZeroMQ client for
    tests/cluster/test_curve.sh: sends one registry or node request, or
    subscribes to a PUB, with no key, a stolen cluster key, or a rogue key,
    and prints what came back. Single thread, blocking with deadlines.

    curve_probe [--cert FILE] [--server-cert FILE] [--wait-ms N] ENDPOINT ACTION [ARGS]
      register NODE ROUTER PUB | heartbeat NODE | admin ACTION NODE [API_TOKEN] | ring
      api OP TEAM_UUID [CONV_UUID|-] [JSON]
      sub STOP_FILE        subscribe (empty prefix), print "event N" per message, until
                           STOP_FILE exists
    Prints one line: the reply's fields, "no reply", or "received N"; exits
    0 on a reply (or after sub), 3 on no reply, 2 on a usage error. */
#include "common/util.h"
#include "common/wire.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *cert;        /* own certificate (secret), or NULL: no CURVE */
    const char *server_cert; /* the server's public certificate (CURVE) */
    long wait_ms;            /* reply deadline */
} s_opts_t;

static int s_usage(void)
{
    fprintf(stderr, "usage: curve_probe [--cert FILE --server-cert FILE] [--wait-ms N] ENDPOINT "
                    "register|heartbeat|admin|ring|api|sub ARGS\n");
    return 2;
}

/* Applies CURVE to sock when a certificate is given; -1 on a bad file. */
static int s_secure(const s_opts_t *o, zsock_t *sock)
{
    if (!o->cert) {
        return 0;
    }
    zcert_t *own = zcert_load(o->cert);
    zcert_t *server = o->server_cert ? zcert_load(o->server_cert) : NULL;
    if (!own || !server) {
        fprintf(stderr, "curve_probe: cannot load %s or %s\n", o->cert,
                o->server_cert ? o->server_cert : "(no --server-cert)");
        zcert_destroy(&own);
        zcert_destroy(&server);
        return -1;
    }
    zcert_apply(own, sock);
    zsock_set_curve_serverkey(sock, zcert_public_txt(server));
    zcert_destroy(&own);
    zcert_destroy(&server);
    return 0;
}

static void s_print(const proto_msg_t *m)
{
    switch (m->type) {
        case PROTO_REG_ACK:
            printf("reg_ack state=%s error=%s\n", m->state ? m->state : "",
                   m->error ? m->error : "");
            break;
        case PROTO_ADMIN_REP:
            printf("admin_rep status=%llu error=%s state=%s\n", (unsigned long long)m->status,
                   m->error ? m->error : "", m->state ? m->state : "");
            break;
        case PROTO_RING:
            printf("ring epoch=%llu nodes=%zu\n", (unsigned long long)m->ring_epoch, m->nnodes);
            break;
        case PROTO_API_REP:
            printf("api_rep status=%llu body=%s\n", (unsigned long long)m->status,
                   m->body ? m->body : "");
            break;
        default:
            printf("reply type=%s\n", proto_type_name(m->type));
    }
}

/* Fills req from ACTION ARGS; -1 on a usage error. */
static int s_request(int argc, char **argv, proto_msg_t *req)
{
    const char *a = argv[0];
    if (!strcmp(a, "register") && argc == 4) {
        *req = (proto_msg_t){.type = PROTO_REGISTER,
                             .node_id = argv[1],
                             .router = argv[2],
                             .pub = argv[3],
                             .weight = 1};
    } else if (!strcmp(a, "heartbeat") && argc == 2) {
        *req = (proto_msg_t){.type = PROTO_HEARTBEAT, .node_id = argv[1]};
    } else if (!strcmp(a, "admin") && (argc == 3 || argc == 4)) {
        *req = (proto_msg_t){.type = PROTO_ADMIN,
                             .action = argv[1],
                             .node_id = argv[2],
                             .token = argc == 4 ? argv[3] : NULL};
    } else if (!strcmp(a, "ring") && argc == 1) {
        *req = (proto_msg_t){.type = PROTO_RING_GET};
    } else if (!strcmp(a, "api") && argc >= 3 && argc <= 5) {
        *req = (proto_msg_t){.type = PROTO_API_REQ,
                             .op = argv[1],
                             .has_team = true,
                             .body = argc == 5 ? argv[4] : "{}"};
        req->has_conv = argc >= 4 && strcmp(argv[3], "-");
        if (util_uuid_parse(argv[2], req->team_id) < 0 ||
            (req->has_conv && util_uuid_parse(argv[3], req->conv_id) < 0)) {
            return -1;
        }
    } else {
        return -1;
    }
    req->v = PROTO_VERSION;
    req->req_id = 7;
    return 0;
}

static int s_ask(const s_opts_t *o, const char *endpoint, proto_msg_t *req)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_linger(dealer, 0);
    if (s_secure(o, dealer) < 0 || zsock_connect(dealer, "%s", endpoint) < 0) {
        zsock_destroy(&dealer);
        return 2;
    }
    /* Queued until a handshake completes, which it never does for a refused key. */
    wire_send(dealer, NULL, req);
    zpoller_t *poller = zpoller_new(dealer, NULL);
    int rc = 3;
    proto_msg_t rep;
    if (zpoller_wait(poller, (int)o->wait_ms) == dealer &&
        wire_recv(dealer, NULL, &rep, "probe") == 0) {
        s_print(&rep);
        proto_msg_reset(&rep);
        rc = 0;
    } else {
        printf("no reply\n");
    }
    zpoller_destroy(&poller);
    zsock_destroy(&dealer);
    return rc;
}

static int s_sub(const s_opts_t *o, const char *endpoint, const char *stop_file)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    zsock_set_linger(sub, 0);
    if (s_secure(o, sub) < 0 || zsock_connect(sub, "%s", endpoint) < 0) {
        zsock_destroy(&sub);
        return 2;
    }
    zsock_set_subscribe(sub, "");
    printf("subscribed\n");
    fflush(stdout);
    zpoller_t *poller = zpoller_new(sub, NULL);
    long received = 0;
    while (access(stop_file, F_OK) != 0) {
        if (zpoller_wait(poller, 100) == sub) {
            zmsg_t *m = zmsg_recv(sub);
            if (m) {
                received++;
                printf("event %ld\n", received);
                fflush(stdout);
            }
            zmsg_destroy(&m);
        }
    }
    printf("received %ld\n", received);
    zpoller_destroy(&poller);
    zsock_destroy(&sub);
    return 0;
}

int main(int argc, char **argv)
{
    zsys_handler_set(NULL);
    s_opts_t o = {.wait_ms = 2000};
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (!strcmp(argv[i], "--cert")) {
            o.cert = argv[i + 1];
        } else if (!strcmp(argv[i], "--server-cert")) {
            o.server_cert = argv[i + 1];
        } else if (!strcmp(argv[i], "--wait-ms")) {
            o.wait_ms = strtol(argv[i + 1], NULL, 10);
        } else {
            return s_usage();
        }
    }
    if (argc - i < 2) {
        return s_usage();
    }
    const char *endpoint = argv[i];
    if (!strcmp(argv[i + 1], "sub")) {
        return argc - i == 3 ? s_sub(&o, endpoint, argv[i + 2]) : s_usage();
    }
    proto_msg_t req;
    if (s_request(argc - i - 1, argv + i + 1, &req) < 0) {
        return s_usage();
    }
    return s_ask(&o, endpoint, &req);
}
