/*  test_reg_ctl — bickyctl as a process against an in-process registry
    (reg_server_actor on ipc endpoints) and a throwaway migrated database:
    every command, its JSON output and its exit codes. */
#include "common/ring.h"
#include "registry/reg_server.h"
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <sys/wait.h>

typedef struct {
    rt_db_t db;         /* throwaway database */
    char router[128];   /* registry ROUTER endpoint */
    char pub[128];      /* registry PUB endpoint */
    reg_config_t cfg;   /* registry config */
    zactor_t *registry; /* the registry */
    zsock_t *node;      /* fake nodes' DEALER */
} s_env_t;

static s_env_t s_env;

static void s_teardown(void)
{
    zsock_destroy(&s_env.node);
    zactor_destroy(&s_env.registry);
    rt_db_drop(&s_env.db);
}

TestSuite(reg_ctl, .fini = s_teardown, .timeout = 60);

/* A registry with nodes n1 (weight 1) and n2 (weight 2); bickyctl's
   environment points at it and at the database. */
static void s_start(void)
{
    rt_db_create(&s_env.db, true);
    snprintf(s_env.router, sizeof s_env.router, "ipc://@/bicky-ctl-%d-r", (int)getpid());
    snprintf(s_env.pub, sizeof s_env.pub, "ipc://@/bicky-ctl-%d-p", (int)getpid());
    s_env.cfg = (reg_config_t){.bind = s_env.router,
                               .pub_bind = s_env.pub,
                               .database_url = s_env.db.conninfo,
                               .dead_after_ms = 60000};
    s_env.registry = zactor_new(reg_server_actor, &s_env.cfg);
    s_env.node = rt_dealer(s_env.router);
    proto_msg_t ack;
    rt_register(s_env.node, "n1", 1, &ack);
    proto_msg_reset(&ack);
    rt_register(s_env.node, "n2", 2, &ack);
    proto_msg_reset(&ack);
    setenv("BICKY_REGISTRY", s_env.router, 1);
    setenv("BICKY_DATABASE_URL", s_env.db.conninfo, 1);
}

/* Runs "bickyctl ARGS"; stdout in out (stderr too when merge); returns the exit code. */
static int s_ctl(char *out, size_t cap, bool merge, const char *fmt, ...)
{
    const char *bin = rt_bin_dir();
    if (!bin) {
        cr_skip_test("built binaries not found (set BICKY_BIN)");
    }
    char cmd[4096], args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s/bickyctl %s %s", bin, args, merge ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int status = pclose(p);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The value of "key":"..." in a flat JSON text, copied into val. */
static void s_json_str(const char *json, const char *key, char *val, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no %s in %s", key, json);
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    cr_assert_lt(n, cap);
    memcpy(val, p, n);
    val[n] = 0;
}

Test(reg_ctl, nodes_ring_locate_and_status)
{
    s_start();
    char out[16384];
    cr_assert_eq(s_ctl(out, sizeof out, false, "nodes"), 0);
    cr_assert_not_null(strstr(out, "LAST BEAT"), "%s", out);
    cr_assert_not_null(strstr(out, "tcp://127.0.0.1:92"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "nodes --json"), 0);
    cr_assert_not_null(strstr(out, "{\"id\":\"n1\",\"state\":\"alive\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"weight\":2"), "%s", out);

    cr_assert_eq(s_ctl(out, sizeof out, false, "ring"), 0);
    cr_assert_not_null(strstr(out, "2 members"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "--json ring"), 0);
    cr_assert_not_null(strstr(out, "\"vnodes\":4096"), "%s", out);

    /* locate agrees with the ring everyone builds from the alive nodes by id. */
    ring_t *ring = ring_new(0);
    ring_member_t members[] = {{"n1", 1}, {"n2", 2}};
    cr_assert_eq(ring_set(ring, members, 2), 0);
    for (int i = 0; i < 5; i++) {
        uint8_t conv[16];
        char text[UTIL_UUID_STR_LEN + 1], node[64];
        util_uuid_generate(conv);
        util_uuid_format(conv, text);
        cr_assert_eq(s_ctl(out, sizeof out, false, "locate %s --json", text), 0);
        s_json_str(out, "node_id", node, sizeof node);
        cr_assert_str_eq(node, members[ring_lookup(ring, conv)].id);
    }
    ring_destroy(&ring);

    cr_assert_eq(s_ctl(out, sizeof out, false, "status"), 0);
    cr_assert_not_null(strstr(out, "2 alive, 0 draining, 0 dead"), "%s", out);
    cr_assert_not_null(strstr(out, "up to date"), "%s", out);
    /* The list is tried in turn: a dead first registry (nobody binds it) does
       not fail the command. */
    char dead[64], want[128];
    tf_endpoint(dead, sizeof dead, "nobody");
    cr_assert_eq(
        s_ctl(out, sizeof out, false, "status --json --registry %s,%s", dead, s_env.router), 0);
    snprintf(want, sizeof want, "\"endpoint\":\"%s\",\"reachable\":false", dead);
    cr_assert_not_null(strstr(out, want), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "nodes --registry %s,%s", dead, s_env.router), 0);
    cr_assert_eq(s_ctl(out, sizeof out, true, "status --registry %s", dead), 1);
    cr_assert_not_null(strstr(out, "UNREACHABLE"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, true, "nodes --registry %s", dead), 1);
    cr_assert_not_null(strstr(out, "no registry answered"), "%s", out);
}

Test(reg_ctl, drain_undrain_remove)
{
    s_start();
    char out[8192];
    cr_assert_eq(s_ctl(out, sizeof out, false, "drain n2"), 0);
    cr_assert_not_null(strstr(out, "drain n2: done"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "nodes --json"), 0);
    cr_assert_not_null(strstr(out, "{\"id\":\"n2\",\"state\":\"draining\""), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "ring"), 0);
    cr_assert_not_null(strstr(out, "off the ring: n2 (draining)"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "undrain n2 --json"), 0);
    cr_assert_not_null(strstr(out, "\"action\":\"undrain\",\"status\":200"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "remove n2"), 0);
    cr_assert_eq(s_ctl(out, sizeof out, true, "remove n2"), 1);
    cr_assert_not_null(strstr(out, "no such node: n2"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "status --json"), 0);
    cr_assert_not_null(strstr(out, "\"nodes\":{\"alive\":1,\"draining\":0,\"dead\":0}"), "%s", out);
}

Test(reg_ctl, tokens_and_migrate)
{
    s_start();
    char out[8192], token[64], id[64], sql[256];
    cr_assert_eq(s_ctl(out, sizeof out, false, "token create --team acme --name ci --json"), 0);
    s_json_str(out, "token", token, sizeof token);
    s_json_str(out, "id", id, sizeof id);
    cr_assert_not_null(strstr(out, "\"team\":\"acme\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"team_created\":true"), "%s", out);
    cr_assert_not_null(strstr(out, "\"admin\":false"), "%s", out);
    cr_assert_eq(strncmp(token, "bk_", 3), 0);
    /* Only the hash is stored. */
    char sha[65];
    util_sha256_hex(token, strlen(token), sha);
    snprintf(sql, sizeof sql, "SELECT token_sha256 FROM api_tokens WHERE id = '%s'", id);
    cr_assert_str_eq(rt_db_value(&s_env.db, sql), sha);
    cr_assert_str_eq(rt_db_value(&s_env.db,
                                 "SELECT count(*) FROM api_tokens t, teams tm"
                                 " WHERE t.team_id = tm.id AND tm.name = 'acme' AND t.name = 'ci'"),
                     "1");
    /* A second token for the same team reuses the team. */
    cr_assert_eq(s_ctl(out, sizeof out, false, "token create --team acme"), 0);
    cr_assert_not_null(strstr(out, "shown only this once"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "token create --name x"), 2);
    /* An admin token: the flag is stored, printed and listed. */
    char admin_id[64];
    cr_assert_eq(s_ctl(out, sizeof out, false, "token create --team acme --name ops --admin"), 0);
    cr_assert_not_null(strstr(out, "admin  yes"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "token create --team acme --admin --json"), 0);
    cr_assert_not_null(strstr(out, "\"admin\":true"), "%s", out);
    s_json_str(out, "id", admin_id, sizeof admin_id);
    snprintf(sql, sizeof sql, "SELECT admin FROM api_tokens WHERE id = '%s'", admin_id);
    cr_assert_str_eq(rt_db_value(&s_env.db, sql), "t");
    snprintf(sql, sizeof sql, "SELECT admin FROM api_tokens WHERE id = '%s'", id);
    cr_assert_str_eq(rt_db_value(&s_env.db, sql), "f");
    cr_assert_str_eq(rt_db_value(&s_env.db, "SELECT count(*) FROM api_tokens WHERE admin"), "2");

    cr_assert_eq(s_ctl(out, sizeof out, false, "token list --team acme --json"), 0);
    cr_assert_not_null(strstr(out, id), "%s", out);
    cr_assert_null(strstr(out, token), "the token must never be listed");
    cr_assert_null(strstr(out, sha), "the hash must never be listed");
    cr_assert_not_null(strstr(out, "\"last_used_at\":null"), "%s", out);
    cr_assert_not_null(strstr(out, "\"admin\":true}"), "%s", out);
    cr_assert_not_null(strstr(out, "\"admin\":false}"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "token list"), 0);
    cr_assert_not_null(strstr(out, "LAST USED"), "%s", out);
    cr_assert_not_null(strstr(out, "ADMIN"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, true, "token list --team nosuch"), 1);

    cr_assert_eq(s_ctl(out, sizeof out, false, "token revoke %s", id), 0);
    cr_assert_not_null(strstr(out, "revoked token"), "%s", out);
    snprintf(sql, sizeof sql, "SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = '%s'", id);
    cr_assert_str_eq(rt_db_value(&s_env.db, sql), "t");
    cr_assert_eq(s_ctl(out, sizeof out, false, "token revoke %s", id), 0);
    cr_assert_not_null(strstr(out, "already revoked"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "token revoke 00000000-0000-4000-8000-000000000000"),
                 1);
    cr_assert_eq(s_ctl(out, sizeof out, false, "token revoke nope"), 2);

    cr_assert_eq(s_ctl(out, sizeof out, false, "migrate"), 0);
    cr_assert_not_null(strstr(out, "nothing to apply"), "%s", out);
    cr_assert_eq(s_ctl(out, sizeof out, false, "migrate --json"), 0);
    cr_assert_not_null(strstr(out, "\"applied\":0"), "%s", out);
    /* A database that refuses connections. */
    cr_assert_eq(s_ctl(out, sizeof out, true,
                       "migrate --database-url 'host=127.0.0.1 port=%d "
                       "password=hunter2 connect_timeout=2'",
                       tf_refused_port()),
                 1);
    cr_assert_null(strstr(out, "hunter2"), "%s", out);
    unsetenv("BICKY_DATABASE_URL");
    cr_assert_eq(s_ctl(out, sizeof out, false, "token list"), 2);
}
