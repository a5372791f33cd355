/*  test_db_conv_hot — the layout of conversations lets the node's touch be a HOT
    update (sql/0003_conversation_fillfactor.sql) in the migrated test database
    (BICKY_TEST_DATABASE_URL): the table keeps 10% of each page free; on a page filled
    up to that limit by inserts, two touches of a row in one transaction that leave its status as
    it was are both HOT (no index entry), and a touch that changes the status (indexed in
    conversations_team_status) is not. Everything runs in one transaction, rolled back. */
#include "common/db_schema.h"
#include "tests/fixtures/pg_test.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

/* First value of a one-row query as text (static buffer, "" for NULL / no row). */
static const char *s_value(const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(pg_test_conn, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg_test_conn));
    snprintf(out, sizeof out, "%s",
             PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

static long long s_ll(const char *sql)
{
    return atoll(s_value(sql));
}

/* The node's touch (NODE_Q_CONV_TOUCH's SET list) of row id, status as given. */
static void s_touch(const char *id, const char *status)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE conversations c SET last_msg_seq = c.last_msg_seq + 1, last_event_seq = "
             "c.last_event_seq + 3, message_count = c.message_count + 1, status = '%s', "
             "last_event_id = coalesce(c.last_event_id, 0) + 3, updated_at = now() WHERE c.id = "
             "'%s'",
             status, id);
    pg_test_exec(sql);
}

#define HOT     "SELECT pg_stat_get_xact_tuples_hot_updated('conversations'::regclass)"
#define UPDATED "SELECT pg_stat_get_xact_tuples_updated('conversations'::regclass)"

Test(db_conv_hot,
     touch_is_hot_unless_status_changes,
     .init = pg_test_open,
     .fini = pg_test_close,
     .timeout = 60)
{
    cr_assert_geq(db_schema_latest(), 3);
    cr_assert_str_eq(s_value("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE "
                             "relname = 'conversations' AND relkind = 'r'"),
                     "fillfactor=90");
    pg_test_exec("BEGIN");
    pg_test_exec("INSERT INTO teams (id, name) VALUES ('00000000-0000-4000-8000-00000000a0f1', "
                 "'hot-test')");
    pg_test_exec("INSERT INTO conversations (id, team_id, title) SELECT gen_random_uuid(), "
                 "'00000000-0000-4000-8000-00000000a0f1', repeat('t', 60) FROM generate_series(1, "
                 "400)");
    /* A row of the page holding most of them: a fresh page the inserts filled up to the
       fillfactor (at fillfactor 100 the first touch would move the row off it: not HOT). */
    const char *pick = "WITH r AS (SELECT id, (ctid::text::point)[0] AS blk FROM conversations "
                       "WHERE team_id = '00000000-0000-4000-8000-00000000a0f1'), b AS (SELECT "
                       "blk, count(*) AS n FROM r GROUP BY blk ORDER BY n DESC, blk LIMIT 1) "
                       "SELECT r.id FROM r JOIN b USING (blk) LIMIT 1";
    char id[64];
    snprintf(id, sizeof id, "%s", s_value(pick));
    cr_assert_neq(id[0], 0);
    long long hot0 = s_ll(HOT), upd0 = s_ll(UPDATED);
    s_touch(id, "idle");
    s_touch(id, "idle");
    cr_assert_eq(s_ll(UPDATED) - upd0, 2);
    cr_assert_eq(s_ll(HOT) - hot0, 2, "a touch leaving status as it was is not HOT");
    s_touch(id, "processing");
    cr_assert_eq(s_ll(UPDATED) - upd0, 3);
    cr_assert_eq(s_ll(HOT) - hot0, 2, "a status change (indexed) cannot be HOT");
    pg_test_exec("ROLLBACK");
}
