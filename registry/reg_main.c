/*  bicky-registry — cluster membership and the consistent-hash ring.
    main: flags, schema check, then one zloop until SIGTERM/SIGINT. */
#define LOG_MODULE "reg_main"
#include "common/cfg.h"
#include "common/db_schema.h"
#include "common/endpoint.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "registry/reg_server.h"

#include <stdio.h>
#include <sys/prctl.h>

static int s_on_interrupt_check(zloop_t *loop, int timer_id, void *arg)
{
    return util_interrupted ? -1 : 0;
}

static int s_run(const reg_config_t *cfg)
{
    reg_server_t *server = reg_server_new(cfg);
    zloop_t *loop = server ? zloop_new() : NULL;
    int rc = 1;
    if (loop && reg_server_attach(server, loop) == 0 &&
        zloop_timer(loop, 100, 0, s_on_interrupt_check, NULL) >= 0) {
        zloop_start(loop);
        LOG_N("registry stopping role=%s epoch=%llu",
              reg_server_active(server) ? "active" : "standby",
              (unsigned long long)reg_server_epoch(server));
        rc = util_interrupted ? 0 : 1;
    }
    zloop_destroy(&loop);
    reg_server_destroy(&server);
    return rc;
}

int main(int argc, char **argv)
{
    /* Same-uid processes (a tool, the CLI) must not read our /proc environ, cmdline
       memory or fds: they hold the database URL and provider keys. */
    prctl(PR_SET_DUMPABLE, 0);
    const char *bind = "tcp://127.0.0.1:7100";
    const char *pub_bind = "tcp://127.0.0.1:7101";
    const char *pub_advertise = NULL;
    const char *database_url = NULL;
    const char *level_name = "notice";
    long dead_after_ms = 3000;
    keys_cfg_t kc = {0};
    const cfg_opt_t opts[] = {
        {"--bind", "BICKY_REGISTRY_BIND", CFG_STR, &bind, 0, 0, "ROUTER endpoint for requests"},
        {"--pub-bind", "BICKY_REGISTRY_PUB_BIND", CFG_STR, &pub_bind, 0, 0,
         "PUB endpoint for ring updates"},
        {"--pub-advertise", "BICKY_REGISTRY_PUB_ADVERTISE", CFG_STR, &pub_advertise, 0, 0,
         "PUB endpoint told to nodes and gateways, tcp://HOST[:PORT] (default: --pub-bind; "
         "required when it is a wildcard)"},
        {"--database-url", "BICKY_DATABASE_URL", CFG_CONNINFO, &database_url, 0, 0,
         "libpq conninfo or postgresql:// URL (required)"},
        {"--dead-after-ms", "BICKY_DEAD_AFTER_MS", CFG_INT, &dead_after_ms, 200, 3600000,
         "heartbeat silence after which a node is dead"},
        {"--log-level", "BICKY_LOG_LEVEL", CFG_STR, &level_name, 0, 0,
         "error|warn|notice|info|debug"},
        KEYS_CFG_OPTS(&kc),
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int prc = cfg_parse("bicky-registry", "[OPTIONS]", opts, argc, argv, NULL, NULL);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    log_level_t level;
    if (log_level_parse(level_name, &level) < 0) {
        fprintf(stderr, "bicky-registry: invalid --log-level '%s' (see --help)\n", level_name);
        return 2;
    }
    if (!database_url || !*database_url) {
        fprintf(stderr, "bicky-registry: --database-url (BICKY_DATABASE_URL) is required\n");
        return 2;
    }
    char err[1024];
    if (endpoint_check("--pub-bind", pub_bind, "--pub-advertise", pub_advertise, err, sizeof err) <
        0) {
        fprintf(stderr, "bicky-registry: %s\n", err);
        return 2;
    }
    const char *endpoints[] = {bind, pub_bind, NULL};
    keys_want_t want = {
        .prog = "bicky-registry", .role = KEYS_ROLE_REGISTRY, .endpoints = endpoints};
    keys_t *keys = NULL;
    if (keys_open(&kc, &want, &keys, err, sizeof err) < 0) {
        fprintf(stderr, "bicky-registry: %s\n", err);
        return 2;
    }
    log_init("registry", level);
    util_signals_install();
    if (db_schema_check(database_url, err, sizeof err) < 0) {
        LOG_E("%s", err);
        keys_destroy(&keys);
        return 1;
    }
    reg_config_t cfg = {.bind = bind,
                        .pub_bind = pub_bind,
                        .pub_advertise = pub_advertise,
                        .database_url = database_url,
                        .dead_after_ms = dead_after_ms,
                        .keys = keys};
    int rc = s_run(&cfg);
    keys_destroy(&keys);
    return rc;
}
