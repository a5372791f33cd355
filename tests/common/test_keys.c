/*  test_keys — common/keys: roles and names, the keys directory (init, add),
    opening a process's own certificate (every refusal), and CURVE with zauth
    on real sockets: the ZAP handler admits only the role it serves, and every
    received message names its sender's role, name and key. */
#include "common/keys.h"
#include "tests/fixtures/tf_net.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[256];

static void s_setup(void)
{
    zsys_handler_set(NULL);
    snprintf(s_dir, sizeof s_dir, "/tmp/bicky-test-keys-%d", (int)getpid());
    char err[512];
    cr_assert_eq(keys_init(s_dir, err, sizeof err), 0, "%s", err);
}

static void s_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(keys, .init = s_setup, .fini = s_teardown, .timeout = 30);

/* Mode bits of s_dir/rel. */
static mode_t s_mode(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, rel);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s missing", path);
    return st.st_mode & 0777;
}

/* Adds a key and returns its secret file in path. */
static void s_add(keys_role_t role, const char *name, char *path, size_t len)
{
    char err[512];
    cr_assert_eq(keys_add(s_dir, role, name, path, len, err, sizeof err), 0, "%s", err);
}

Test(keys, roles_names_and_local_endpoints)
{
    for (keys_role_t r = KEYS_ROLE_REGISTRY; r <= KEYS_ROLE_ADMIN; r++) {
        cr_assert_eq(keys_role_parse(keys_role_name(r)), r);
    }
    cr_assert_eq(keys_role_parse("none"), KEYS_ROLE_NONE);
    cr_assert_eq(keys_role_parse("Node"), KEYS_ROLE_NONE);
    cr_assert_eq(keys_role_parse(NULL), KEYS_ROLE_NONE);
    cr_assert(keys_name_valid("n1"));
    cr_assert(keys_name_valid("node-a.b_c:1"));
    cr_assert_not(keys_name_valid(""));
    cr_assert_not(keys_name_valid(".."));
    cr_assert_not(keys_name_valid("a/b"));
    cr_assert_not(keys_name_valid("a b"));
    cr_assert_not(
        keys_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
    cr_assert(keys_endpoint_is_local("tcp://127.0.0.1:7100"));
    cr_assert(keys_endpoint_is_local("tcp://127.3.2.1:1"));
    cr_assert(keys_endpoint_is_local("tcp://[::1]:7100"));
    cr_assert(keys_endpoint_is_local("tcp://localhost:7100"));
    cr_assert(keys_endpoint_is_local("ipc:///tmp/x"));
    cr_assert(keys_endpoint_is_local("inproc://x"));
    cr_assert_not(keys_endpoint_is_local("tcp://*:7100"));
    cr_assert_not(keys_endpoint_is_local("tcp://0.0.0.0:7100"));
    cr_assert_not(keys_endpoint_is_local("tcp://10.0.0.1:7100"));
    cr_assert_not(keys_endpoint_is_local("tcp://127example.com:1"));
}

Test(keys, init_and_add_make_the_layout)
{
    char err[512], path[1300];
    cr_assert_eq(keys_init(s_dir, err, sizeof err), 0, "a second init is fine: %s", err);
    cr_assert_eq(s_mode("secret"), 0700);
    cr_assert_eq(s_mode("public/node"), 0755);
    s_add(KEYS_ROLE_NODE, "n1", path, sizeof path);
    cr_assert(strstr(path, "/secret/node-n1.key"));
    cr_assert_eq(s_mode("secret/node-n1.key"), 0600);
    char pub[512];
    snprintf(pub, sizeof pub, "%s/public/node/n1.cert", s_dir);
    zcert_t *cert = zcert_load(pub);
    cr_assert_not_null(cert);
    cr_assert_str_eq(zcert_meta(cert, "role"), "node");
    cr_assert_str_eq(zcert_meta(cert, "name"), "n1");
    zcert_t *secret = zcert_load(path);
    cr_assert_str_eq(zcert_public_txt(secret), zcert_public_txt(cert));
    zcert_destroy(&cert);
    zcert_destroy(&secret);
    /* Refusals write nothing. */
    cr_assert_eq(keys_add(s_dir, KEYS_ROLE_NODE, "n1", path, sizeof path, err, sizeof err), -1);
    cr_assert(strstr(err, "exists already"), "%s", err);
    cr_assert_eq(keys_add(s_dir, KEYS_ROLE_NODE, "../x", path, sizeof path, err, sizeof err), -1);
    cr_assert(strstr(err, "invalid name"), "%s", err);
    cr_assert_eq(keys_add(s_dir, KEYS_ROLE_NONE, "x", path, sizeof path, err, sizeof err), -1);
    s_add(KEYS_ROLE_REGISTRY, "registry", path, sizeof path);
    cr_assert_eq(keys_add(s_dir, KEYS_ROLE_REGISTRY, "r2", path, sizeof path, err, sizeof err), -1);
    cr_assert(strstr(err, "registry key already"), "%s", err);
    cr_assert_eq(access("/tmp/bicky-test-keys-none/secret", F_OK), -1);
    cr_assert_eq(keys_add("/tmp/bicky-test-keys-none", KEYS_ROLE_NODE, "n1", path, sizeof path, err,
                          sizeof err),
                 -1);
    cr_assert(strstr(err, "not a keys directory"), "%s", err);
}

/* keys_open with cert/keys/insecure for a node named name; returns its rc. */
static int
s_open(const char *cert, bool insecure, const char *name, const char *ep, keys_t **out, char *err)
{
    keys_cfg_t kc = {.cert = cert, .keys = cert ? s_dir : NULL, .insecure = insecure};
    const char *eps[] = {ep, NULL};
    keys_want_t want = {
        .prog = "bicky-node", .role = KEYS_ROLE_NODE, .name = name, .endpoints = eps};
    return keys_open(&kc, &want, out, err, 512);
}

Test(keys, open_checks_everything)
{
    char err[512], node[1300], gw[1300];
    keys_t *k = NULL;
    cr_assert_eq(s_open(NULL, false, "n1", "tcp://127.0.0.1:1", &k, err), -1);
    cr_assert(strstr(err, "refuses to start without keys"), "%s", err);
    cr_assert_eq(s_open(NULL, true, "n1", "tcp://127.0.0.1:1,ipc:///tmp/x", &k, err), 0, "%s", err);
    cr_assert_null(k);
    cr_assert_eq(s_open(NULL, true, "n1", "tcp://127.0.0.1:1,tcp://0.0.0.0:2", &k, err), -1);
    cr_assert(strstr(err, "--insecure refuses endpoint tcp://0.0.0.0:2"), "%s", err);
    s_add(KEYS_ROLE_NODE, "n1", node, sizeof node);
    s_add(KEYS_ROLE_GATEWAY, "gw", gw, sizeof gw);
    cr_assert_eq(s_open(gw, false, "n1", "tcp://0.0.0.0:1", &k, err), -1);
    cr_assert(strstr(err, "needs a key of role node"), "%s", err);
    cr_assert_eq(s_open(node, false, "n2", "tcp://0.0.0.0:1", &k, err), -1);
    cr_assert(strstr(err, "not of 'n2'"), "%s", err);
    char pub[512];
    snprintf(pub, sizeof pub, "%s/public/node/n1.cert", s_dir);
    cr_assert_eq(s_open(pub, false, "n1", "tcp://0.0.0.0:1", &k, err), -1, "a public cert");
    chmod(node, 0644);
    cr_assert_eq(s_open(node, false, "n1", "tcp://0.0.0.0:1", &k, err), -1);
    cr_assert(strstr(err, "chmod 600"), "%s", err);
    chmod(node, 0600);
    cr_assert_eq(s_open(node, false, "n1", "tcp://0.0.0.0:1", &k, err), 0, "%s", err);
    cr_assert_not_null(k);
    cr_assert_eq(keys_role(k), KEYS_ROLE_NODE);
    cr_assert_str_eq(keys_name(k), "n1");
    keys_destroy(&k);
    cr_assert_null(k);
    keys_destroy(&k);
    /* The cluster must trust the key: its public copy is what it says. */
    cr_assert_eq(unlink(pub), 0);
    cr_assert_eq(s_open(node, false, "n1", "tcp://0.0.0.0:1", &k, err), -1);
    cr_assert(strstr(err, "does not hold the public key"), "%s", err);
}

/* Opens the key (role, name) as the process's own. */
static keys_t *s_key(keys_role_t role, const char *name)
{
    char path[1300], err[512];
    s_add(role, name, path, sizeof path);
    keys_cfg_t kc = {.cert = path, .keys = s_dir};
    keys_want_t want = {.prog = "test", .role = role, .name = name};
    keys_t *k = NULL;
    cr_assert_eq(keys_open(&kc, &want, &k, err, sizeof err), 0, "%s", err);
    return k;
}

/* A DEALER with key k (or none) sends "hello" to ep; true when router got it
   within wait_ms, with its sender in *who. */
static bool s_deliver(
    zsock_t *router, const char *ep, keys_t *k, const char *name, int wait_ms, keys_peer_t *who)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_linger(dealer, 0);
    if (k) {
        cr_assert_eq(keys_client(k, dealer, KEYS_ROLE_NODE, name), 0);
    }
    cr_assert_eq(zsock_connect(dealer, "%s", ep), 0);
    zstr_send(dealer, "hello");
    zpoller_t *p = zpoller_new(router, NULL);
    bool got = zpoller_wait(p, wait_ms) == router;
    if (got) {
        zmsg_t *m = zmsg_recv(router);
        keys_peer(zmsg_last(m), who);
        zmsg_destroy(&m);
    }
    zpoller_destroy(&p);
    zsock_destroy(&dealer);
    return got;
}

Test(keys, zauth_admits_one_role_and_names_the_sender)
{
    keys_t *node = s_key(KEYS_ROLE_NODE, "n1");
    keys_t *gw = s_key(KEYS_ROLE_GATEWAY, "gw1");
    keys_t *admin = s_key(KEYS_ROLE_ADMIN, "ops");
    cr_assert_eq(keys_serve(node, KEYS_ROLE_GATEWAY), 0);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    keys_server(node, router);
    zactor_t *mon = keys_monitor_new(router);
    cr_assert_not_null(mon);
    char ep[128];
    cr_assert_geq(zsock_bind(router, "%s", tf_endpoint(ep, sizeof ep, "keys")), 0);
    keys_peer_t who;
    cr_assert(s_deliver(router, ep, gw, "n1", 5000, &who), "a gateway key is admitted");
    cr_assert_eq(who.role, KEYS_ROLE_GATEWAY);
    cr_assert_str_eq(who.name, "gw1");
    cr_assert_str_eq(who.key, keys_public_txt(gw));
    /* Refused keys: the monitor reports each refusal; nothing is delivered. */
    cr_assert_not(s_deliver(router, ep, admin, "n1", 300, &who), "an admin key is not admitted");
    zpoller_t *p = zpoller_new(mon, NULL);
    cr_assert_eq(zpoller_wait(p, 5000), (void *)mon, "the refusal is reported");
    char *event = NULL, *value = NULL, *addr = NULL;
    zstr_recvx(mon, &event, &value, &addr, NULL);
    cr_assert_str_eq(event, "HANDSHAKE_FAILED_AUTH");
    cr_assert_str_eq(value, "400");
    zstr_free(&event);
    zstr_free(&value);
    zstr_free(&addr);
    cr_assert_not(s_deliver(router, ep, NULL, NULL, 300, &who), "no key, no delivery");
    cr_assert_eq(zpoller_wait(p, 5000), (void *)mon, "the keyless peer is reported too");
    cr_assert_eq(keys_monitor_log(mon, "test"), 0);
    zpoller_destroy(&p);
    zactor_destroy(&mon);
    zsock_destroy(&router);
    keys_destroy(&admin);
    keys_destroy(&gw);
    keys_destroy(&node);
}

Test(keys, client_refuses_a_misplaced_certificate)
{
    keys_t *gw = s_key(KEYS_ROLE_GATEWAY, "gw1");
    keys_t *node = s_key(KEYS_ROLE_NODE, "n1");
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/public/node/n1.cert", s_dir);
    snprintf(to, sizeof to, "%s/public/node/n2.cert", s_dir);
    cr_assert_eq(link(from, to), 0);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_eq(keys_client(gw, dealer, KEYS_ROLE_NODE, "n1"), 0);
    cr_assert_eq(keys_client(gw, dealer, KEYS_ROLE_NODE, "n2"), -1, "n1's cert under n2's name");
    cr_assert_eq(keys_client(gw, dealer, KEYS_ROLE_NODE, "n3"), -1, "no cert");
    cr_assert_eq(keys_client(gw, dealer, KEYS_ROLE_REGISTRY, NULL), -1, "no registry key yet");
    zsock_destroy(&dealer);
    keys_destroy(&node);
    keys_destroy(&gw);
}
