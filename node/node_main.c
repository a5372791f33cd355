/*  bicky-node — main: flags and BICKY_* environment, logging, signals, the
    schema check, then one node on this thread until SIGTERM/SIGINT. */
#define LOG_MODULE "node_main"
#include "common/cfg.h"
#include "common/cfg_file.h"
#include "common/db_schema.h"
#include "common/log.h"
#include "common/util.h"
#include "node/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define USAGE                                                                                      \
    "--id ID --database-url URL [options]\n\n"                                                     \
    "Runs one Bicky node: actors for conversations, group commit to Postgres,\n"                   \
    "events on PUB. See docs/node.md."

/* Parses flags and environment into cfg and *level; returns cfg_parse's result, or -1 on
   a bad log level or a missing required value (message printed). */
static int s_parse(
    node_cfg_t *cfg, log_level_t *level, const char **config, keys_cfg_t *kc, int argc, char **argv)
{
    const char *level_name = "notice";
    const cfg_opt_t opts[] = {
        {"--id", "BICKY_NODE_ID", CFG_STR, &cfg->id, 0, 0, "node id (required, 1..63 chars)"},
        {"--registry", "BICKY_REGISTRY", CFG_STR, &cfg->registry, 0, 0,
         "comma list of registry ROUTER endpoints"},
        {"--bind", "BICKY_NODE_BIND", CFG_STR, &cfg->bind, 0, 0, "ROUTER endpoint (API requests)"},
        {"--pub-bind", "BICKY_NODE_PUB_BIND", CFG_STR, &cfg->pub_bind, 0, 0,
         "PUB endpoint (events)"},
        {"--advertise", "BICKY_NODE_ADVERTISE", CFG_STR, &cfg->advertise, 0, 0,
         "ROUTER endpoint others connect to, tcp://HOST[:PORT] (default: --bind; required "
         "when --bind is a wildcard)"},
        {"--pub-advertise", "BICKY_NODE_PUB_ADVERTISE", CFG_STR, &cfg->pub_advertise, 0, 0,
         "PUB endpoint others connect to (default: --pub-bind; required when it is a wildcard)"},
        {"--database-url", "BICKY_DATABASE_URL", CFG_CONNINFO, &cfg->database_url, 0, 0,
         "Postgres conninfo (required)"},
        {"--weight", "BICKY_NODE_WEIGHT", CFG_INT, &cfg->weight, 1, 64, "ring weight"},
        {"--actor-idle-s", "BICKY_ACTOR_IDLE_S", CFG_INT, &cfg->actor_idle_s, 1, 86400,
         "passivate actors idle this long"},
        {"--mailbox-max", "BICKY_MAILBOX_MAX", CFG_INT, &cfg->mailbox_max, 1, 65536,
         "requests waiting per actor (full: 503)"},
        {"--max-actors", "BICKY_MAX_ACTORS", CFG_INT, &cfg->max_actors, 1, 100000000,
         "resident actors (full: 503)"},
        {"--echo-delay-ms", "BICKY_ECHO_DELAY_MS", CFG_INT, &cfg->echo_delay_ms, 0, 60000,
         "echo strategy: delay per streamed word"},
        {"--echo-fail-every", "BICKY_ECHO_FAIL_EVERY", CFG_INT, &cfg->echo_fail_every, 0, 1000000,
         "echo strategy: every Nth turn fails (tests; 0 = never)"},
        {"--standalone", "BICKY_NODE_STANDALONE", CFG_BOOL, &cfg->standalone, 0, 0,
         "test/dev only: no registry, own every conversation"},
        {"--config", "BICKY_CONFIG", CFG_STR, config, 0, 0,
         "strategies config file (docs/configuration.md); default: echo only"},
        {"--work-dir", "BICKY_WORK_DIR", CFG_STR, &cfg->work_dir, 0, 0,
         "tools' per-conversation dirs and worktrees"},
        {"--repo", "BICKY_REPO", CFG_STR, &cfg->repo, 0, 0,
         "git repository of /api/worktrees (none by default)"},
        {"--tool-workers", "BICKY_TOOL_WORKERS", CFG_INT, &cfg->tool_workers, 1, 64,
         "threads running tools and git"},
        {"--mcp-permission-bin", "BICKY_MCP_PERMISSION_BIN", CFG_STR, &cfg->mcp_permission_bin, 0,
         0, "bicky-mcp-permission (permission_channel = mcp); default: next to bicky-node"},
        {"--metrics-bind", "BICKY_NODE_METRICS_BIND", CFG_STR, &cfg->metrics_bind, 0, 0,
         "serve GET /metrics (Prometheus) at HOST:PORT; default: not served"},
        {"--db-deadline-ms", "BICKY_DB_DEADLINE_MS", CFG_INT, &cfg->db_deadline_ms, 0, 3600000,
         "Postgres connection lost when sent work hears nothing this long (0 = never)"},
        {"--model-relay-port", "BICKY_MODEL_RELAY_PORT", CFG_INT, &cfg->model_relay_port, 0, 65535,
         "port of the model relay on 127.0.0.1 (claude-code strategies; 0 = a free one)"},
        {"--exec-bin", "BICKY_EXEC_BIN", CFG_STR, &cfg->exec_bin, 0, 0,
         "bicky-exec, through which children are started (a sandboxed claude CLI also needs "
         "bicky-fwd beside it, else its turns fail); default: next to bicky-node"},
        {"--sandbox", "BICKY_SANDBOX", CFG_STR, &cfg->sandbox, 0, 0,
         "tools and the claude CLI in a bwrap sandbox: auto (when bwrap is installed), on "
         "(required: without bwrap tool calls fail), off (logged as a warning)"},
        {"--log-level", "BICKY_LOG_LEVEL", CFG_STR, &level_name, 0, 0,
         "error|warn|notice|info|debug"},
        KEYS_CFG_OPTS(kc),
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = cfg_parse("bicky-node", USAGE, opts, argc, argv, NULL, NULL);
    if (rc != 0) {
        return rc;
    }
    if (log_level_parse(level_name, level) < 0) {
        fprintf(stderr, "bicky-node: invalid --log-level '%s'\n", level_name);
        return -1;
    }
    if (!cfg->id || !*cfg->id || !cfg->database_url || !*cfg->database_url) {
        fprintf(stderr, "bicky-node: --id and --database-url are required (see --help)\n");
        return -1;
    }
    if (strcmp(cfg->sandbox, "auto") != 0 && strcmp(cfg->sandbox, "on") != 0 &&
        strcmp(cfg->sandbox, "off") != 0) {
        fprintf(stderr, "bicky-node: --sandbox must be auto, on or off\n");
        return -1;
    }
    char err[300];
    if (node_cfg_check_endpoints(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bicky-node: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Same-uid processes (a tool, the CLI) must not read our /proc environ, cmdline
       memory or fds: they hold the database URL and provider keys. */
    prctl(PR_SET_DUMPABLE, 0);
    node_cfg_t cfg;
    node_cfg_defaults(&cfg);
    log_level_t level = LOG_LEVEL_NOTICE;
    const char *config = NULL;
    keys_cfg_t kc = {0};
    int rc = s_parse(&cfg, &level, &config, &kc, argc, argv);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    char err[1024];
    const char *endpoints[] = {cfg.bind, cfg.pub_bind, cfg.standalone ? NULL : cfg.registry, NULL};
    keys_want_t want = {
        .prog = "bicky-node", .role = KEYS_ROLE_NODE, .name = cfg.id, .endpoints = endpoints};
    if (keys_open(&kc, &want, &cfg.keys, err, sizeof err) < 0) {
        fprintf(stderr, "bicky-node: %s\n", err);
        return 2;
    }
    cfg_file_t *strategies = cfg_file_load(config, err, sizeof err);
    if (!strategies) {
        fprintf(stderr, "bicky-node: %s\n", err);
        keys_destroy(&cfg.keys);
        return 2;
    }
    cfg.strategies = strategies;
    log_init("node", level);
    /* The node parses timestamptz text (node_render.c): libpq sends these as the
       sessions' DateStyle and TimeZone, whatever the server's defaults are. */
    setenv("PGDATESTYLE", "ISO", 1);
    setenv("PGTZ", "UTC", 1);
    if (db_schema_check(cfg.database_url, err, sizeof err) < 0) {
        LOG_E("%s", err);
        cfg_file_destroy(&strategies);
        keys_destroy(&cfg.keys);
        return 1;
    }
    util_signals_install();
    node_t *node = node_new(&cfg);
    if (!node) {
        cfg_file_destroy(&strategies);
        keys_destroy(&cfg.keys);
        return 1;
    }
    rc = node_run(node);
    node_destroy(&node);
    cfg_file_destroy(&strategies);
    keys_destroy(&cfg.keys);
    return rc == 0 ? 0 : 1;
}
