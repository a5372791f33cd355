/*  test_reg_server_admin — admin requests that carry an API token (what a
    gateway forwards for POST /api/nodes/:id/drain), against the registry
    running in-process on ipc endpoints and a throwaway migrated database
    (no keys: the role checks are cluster/test_curve's). The registry reads
    the token itself: a live admin token drains and undrains (the answer
    carries the node's state), a team token, an unknown token and a revoked
    one are refused 403 and change nothing, remove is refused even to an
    admin token, and a flag cleared in Postgres counts at once. */
#include "common/util.h"
#include "registry/reg_server.h"
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>

static rt_db_t s_db;
static reg_config_t s_cfg;
static zactor_t *s_registry;
static char s_router[128], s_pub[128];

static void s_start(void)
{
    rt_db_create(&s_db, true);
    snprintf(s_router, sizeof s_router, "ipc://@/bicky-rega-%d-r", (int)getpid());
    snprintf(s_pub, sizeof s_pub, "ipc://@/bicky-rega-%d-p", (int)getpid());
    s_cfg = (reg_config_t){
        .bind = s_router, .pub_bind = s_pub, .database_url = s_db.conninfo, .dead_after_ms = 60000};
    s_registry = zactor_new(reg_server_actor, &s_cfg);
    cr_assert_not_null(s_registry);
}

static void s_teardown(void)
{
    zactor_destroy(&s_registry);
    rt_db_drop(&s_db);
}

TestSuite(reg_server_admin, .fini = s_teardown, .timeout = 60);

/* Stores a token of team acme (created once) with the given admin flag; token is
   the secret the caller sends. */
static void s_token(const char *token, bool admin)
{
    char sha[65], sql[512];
    util_sha256_hex(token, strlen(token), sha);
    rt_db_value(&s_db, "INSERT INTO teams (id, name) VALUES"
                       " ('00000000-0000-4000-8000-0000000000aa', 'acme') ON CONFLICT DO NOTHING");
    snprintf(sql, sizeof sql,
             "INSERT INTO api_tokens (id, team_id, token_sha256, prefix, admin) VALUES"
             " (gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', '%s', 'bk_t', %s)",
             sha, admin ? "true" : "false");
    rt_db_value(&s_db, sql);
}

/* An admin request with a token; returns the status. */
static uint64_t s_admin(zsock_t *d, const char *action, const char *id, const char *token)
{
    proto_msg_t m = {.type = PROTO_ADMIN,
                     .action = (char *)action,
                     .node_id = (char *)id,
                     .token = (char *)token},
                rep;
    rt_call(d, &m, PROTO_ADMIN_REP, &rep);
    uint64_t status = rep.status;
    proto_msg_reset(&rep);
    return status;
}

static const char *s_state(zsock_t *d, const char *id)
{
    static char state[16];
    proto_msg_t ring;
    rt_ring_get(d, &ring);
    snprintf(state, sizeof state, "%s", rt_state_of(&ring, id));
    proto_msg_reset(&ring);
    return state;
}

Test(reg_server_admin, tokens_are_checked_in_postgres)
{
    s_start();
    zsock_t *node = rt_dealer(s_router), *gw = rt_dealer(s_router);
    proto_msg_t ack;
    rt_register(node, "n1", 1, &ack);
    proto_msg_reset(&ack);
    s_token("bk_admin_token", true);
    s_token("bk_team_token", false);

    cr_assert_eq(s_admin(gw, "drain", "n1", "bk_team_token"), 403, "a team token");
    cr_assert_eq(s_admin(gw, "drain", "n1", "bk_no_such_token"), 403, "an unknown token");
    cr_assert_str_eq(s_state(gw, "n1"), "alive", "nothing drained");
    cr_assert_eq(s_admin(gw, "remove", "n1", "bk_admin_token"), 403, "remove needs the admin key");
    cr_assert_str_eq(s_state(gw, "n1"), "alive");

    proto_msg_t m = {.type = PROTO_ADMIN,
                     .action = "drain",
                     .node_id = "n1",
                     .token = "bk_admin_token"},
                rep;
    rt_call(gw, &m, PROTO_ADMIN_REP, &rep);
    cr_assert_eq(rep.status, 200, "%s", rep.error ? rep.error : "");
    cr_assert_str_eq(rep.state, "draining", "the answer carries the node's new state");
    cr_assert_gt(rep.ring_epoch, 0);
    proto_msg_reset(&rep);
    cr_assert_str_eq(s_state(gw, "n1"), "draining");
    cr_assert_eq(s_admin(gw, "drain", "nobody", "bk_admin_token"), 404);
    cr_assert_eq(s_admin(gw, "drain", "n1", "bk_admin_token"), 200, "a no-op is 200");

    /* The flag is read at each request: cleared in Postgres, refused at once. */
    char sha[65], sql[256];
    util_sha256_hex("bk_admin_token", 14, sha);
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET admin = false WHERE token_sha256 = '%s'", sha);
    rt_db_value(&s_db, sql);
    cr_assert_eq(s_admin(gw, "undrain", "n1", "bk_admin_token"), 403);
    cr_assert_str_eq(s_state(gw, "n1"), "draining");
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET admin = true WHERE token_sha256 = '%s'", sha);
    rt_db_value(&s_db, sql);
    cr_assert_eq(s_admin(gw, "undrain", "n1", "bk_admin_token"), 200);
    cr_assert_str_eq(s_state(gw, "n1"), "alive");

    /* Revoked: refused. */
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = '%s'",
             sha);
    rt_db_value(&s_db, sql);
    cr_assert_eq(s_admin(gw, "drain", "n1", "bk_admin_token"), 403, "a revoked token");
    cr_assert_str_eq(s_state(gw, "n1"), "alive");
    /* Without a token (an insecure cluster's bickyctl), as before. */
    cr_assert_eq(rt_admin(gw, "drain", "n1"), 200);
    cr_assert_str_eq(s_state(gw, "n1"), "draining");
    zsock_destroy(&node);
    zsock_destroy(&gw);
}
