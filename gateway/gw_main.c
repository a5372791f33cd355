/*  bicky-gateway — the stateless HTTP/SSE front of a Bicky cluster: routes API
    calls over ZeroMQ to the node that owns each conversation. Main thread:
    options, logging, signals, then the server's single event loop. */
#define LOG_MODULE "gw_main"
#include "gateway/gateway_internal.h"

#include "common/cfg.h"
#include "common/cfg_file.h"
#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* Lets the process hold --max-connections sockets plus the ZMQ ones. */
static void s_raise_fd_limit(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t need = (rlim_t)want + 256;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
            LOG_W("open file limit %llu is below max_connections + 256",
                  (unsigned long long)rl.rlim_cur);
        }
    }
}

typedef struct {
    gw_config_t *cfg;  /* parsed options */
    log_level_t level; /* log level */
} s_main_t;

/* Runs the gateway loop in this process; returns the exit code. */
static int s_serve(gw_config_t *cfg)
{
    s_raise_fd_limit(cfg->max_connections);
    gw_server_t *server = gw_server_new(cfg);
    if (!server) {
        return 1;
    }
    LOG_N("started version=%s registry=%s curve=%s", BICKY_VERSION, cfg->registry,
          cfg->keys ? "on" : "off");
    int rc = gw_server_run(server);
    gw_server_destroy(&server);
    return rc == 0 ? 0 : 1;
}

/* A worker process (--workers > 1): logs as gw.<index>, binds with SO_REUSEPORT. */
static int s_worker(long index, void *arg)
{
    s_main_t *m = arg;
    char component[16];
    snprintf(component, sizeof component, "gw.%ld", index);
    log_init(component, m->level);
    m->cfg->reuse_port = true;
    return s_serve(m->cfg);
}

/* Reads the legacy token: the file's first line, 1..GW_TOKEN_MAX printable
   characters. -1 (said on stderr, never the token) otherwise. */
static int s_read_token(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bicky-gateway: --legacy-token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    bool ok = fgets(out, (int)size, f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(out, "\r\n") : 0;
    out[n] = 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = isgraph((unsigned char)out[i]);
    }
    if (!ok || n == 0 || n > GW_TOKEN_MAX) {
        fprintf(stderr,
                "bicky-gateway: --legacy-token-file %s: the first line must be a token of 1 "
                "to %d printable characters\n",
                path, GW_TOKEN_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Same-uid processes (a tool, the CLI) must not read our /proc environ, cmdline
       memory or fds: they hold the database URL and provider keys. */
    prctl(PR_SET_DUMPABLE, 0);
    gw_config_t cfg;
    gw_config_defaults(&cfg);
    const char *level_name = "notice";
    const char *config = NULL;
    keys_cfg_t kc = {0};
    const char *legacy_file = NULL;
    char legacy_token[GW_TOKEN_MAX + 2];
    const cfg_opt_t opts[] = {
        {"--listen", "BICKY_HTTP_ADDR", CFG_STR, &cfg.listen, 0, 0, "HTTP listen address"},
        {"--port", "BICKY_HTTP_PORT", CFG_INT, &cfg.port, 1, 65535, "HTTP port"},
        {"--registry", "BICKY_REGISTRY", CFG_STR, &cfg.registry, 0, 0,
         "comma list of registry ROUTER endpoints"},
        {"--workers", "BICKY_GATEWAY_WORKERS", CFG_INT, &cfg.workers, 1, 64,
         "worker processes sharing the port (SO_REUSEPORT); 1 = no fork"},
        {"--request-timeout-ms", "BICKY_REQUEST_TIMEOUT_MS", CFG_INT, &cfg.request_timeout_ms, 50,
         600000, "answer 504 when a node is silent this long"},
        {"--max-body", "BICKY_MAX_BODY", CFG_INT, &cfg.max_body, 1024, 64L * 1024 * 1024,
         "largest request body in bytes (413 above)"},
        {"--max-connections", "BICKY_MAX_CONNECTIONS", CFG_INT, &cfg.max_connections, 1, 1000000,
         "open HTTP connections at most (per worker)"},
        {"--idle-timeout-s", "BICKY_HTTP_IDLE_TIMEOUT_S", CFG_INT, &cfg.conn_timeout_s, 1, 3600,
         "close an idle HTTP connection after this many seconds"},
        {"--max-connections-per-ip", "BICKY_MAX_CONNECTIONS_PER_IP", CFG_INT, &cfg.max_conns_per_ip,
         0, 1000000,
         "open HTTP connections per client address at most, per worker (0 = no limit; behind "
         "a proxy every client has its address)"},
        {"--max-inflight", "BICKY_MAX_INFLIGHT", CFG_INT, &cfg.max_inflight, 0, 1000000,
         "API requests out to one node at most, per worker; past it 503 with Retry-After "
         "(0 = no limit)"},
        {"--request-deadline-ms", "BICKY_REQUEST_DEADLINE_MS", CFG_INT, &cfg.request_deadline_ms,
         100, 3600000,
         "a request's head and body must arrive within this (408 and close), and a kept-alive "
         "connection is closed after this long without a request"},
        {"--auth-fail-max", "BICKY_AUTH_FAIL_MAX", CFG_INT, &cfg.auth_fail_max, 0, 1000000,
         "failed authentications per client address in a window before 429 (0 = off)"},
        {"--auth-fail-window-ms", "BICKY_AUTH_FAIL_WINDOW_MS", CFG_INT, &cfg.auth_fail_window_ms,
         100, 86400000, "the window of --auth-fail-max"},
        {"--sse-frame-max", "BICKY_SSE_FRAME_MAX", CFG_INT, &cfg.sse_frame_max, 65536,
         24L * 1024 * 1024,
         "largest SSE event in bytes; a client due a larger one is closed (it resumes later)"},
        {"--drain-ms", "BICKY_GATEWAY_DRAIN_MS", CFG_INT, &cfg.drain_ms, 0, 600000,
         "on SIGTERM: /ready answers 503 but requests are served this long, then stop"},
        {"--sse-keepalive-ms", "BICKY_SSE_KEEPALIVE_MS", CFG_INT, &cfg.keepalive_ms, 100, 15000,
         "SSE keep-alive comment interval"},
        {"--config", "BICKY_CONFIG", CFG_STR, &config, 0, 0,
         "strategies config file, listed by GET /api/strategies (the nodes' file)"},
        {"--legacy-token-file", "BICKY_LEGACY_TOKEN_FILE", CFG_STR, &legacy_file, 0, 0,
         "file holding a token assumed on legacy routes sent without one (off when unset)"},
        {"--log-level", "BICKY_LOG_LEVEL", CFG_STR, &level_name, 0, 0,
         "error|warn|notice|info|debug"},
        KEYS_CFG_OPTS(&kc),
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = cfg_parse("bicky-gateway", "[options]", opts, argc, argv, NULL, NULL);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    s_main_t m = {.cfg = &cfg};
    if (log_level_parse(level_name, &m.level) < 0) {
        fprintf(stderr, "bicky-gateway: invalid --log-level '%s'\n", level_name);
        return 2;
    }
    char err[1024];
    const char *endpoints[] = {cfg.registry, NULL};
    keys_want_t want = {.prog = "bicky-gateway", .role = KEYS_ROLE_GATEWAY, .endpoints = endpoints};
    if (keys_open(&kc, &want, &cfg.keys, err, sizeof err) < 0) {
        fprintf(stderr, "bicky-gateway: %s\n", err);
        return 2;
    }
    if (legacy_file && s_read_token(legacy_file, legacy_token, sizeof legacy_token) < 0) {
        return 2;
    }
    cfg.legacy_token = legacy_file ? legacy_token : NULL;
    cfg_file_t *strategies = cfg_file_load(config, err, sizeof err);
    if (!strategies) {
        fprintf(stderr, "bicky-gateway: %s\n", err);
        keys_destroy(&cfg.keys);
        return 2;
    }
    cfg.strategies = strategies;
    log_init("gw", m.level);
    util_signals_install();
    rc = cfg.workers > 1 ? gw_workers_run(&cfg, s_worker, &m) : s_serve(&cfg);
    cfg_file_destroy(&strategies);
    keys_destroy(&cfg.keys);
    return rc;
}
