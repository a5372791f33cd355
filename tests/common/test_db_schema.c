/*  test_db_schema — the embedded migrations, db_schema_migrate and
    db_schema_check against a throwaway database created (and dropped) on
    BICKY_TEST_DATABASE_URL's server. */
#include "common/db_schema.h"
#include "tests/fixtures/reg_testutil.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static rt_db_t s_db;

static void s_teardown(void)
{
    rt_db_drop(&s_db);
}

TestSuite(db_schema, .fini = s_teardown, .timeout = 60);

Test(db_schema, table_is_embedded_in_order)
{
    cr_assert_geq(db_migrations_count, 1);
    cr_assert_eq(db_schema_latest(), db_migrations[db_migrations_count - 1].version);
    cr_assert_eq(db_migrations[0].version, 1);
    cr_assert_str_eq(db_migrations[0].name, "init");
    cr_assert_not_null(strstr(db_migrations[0].sql, "CREATE TABLE nodes"));
    for (size_t i = 1; i < db_migrations_count; i++) {
        cr_assert_gt(db_migrations[i].version, db_migrations[i - 1].version);
    }
    cr_assert_null(db_migrations[db_migrations_count].sql, "sentinel");
}

Test(db_schema, migrate_fresh_then_idempotent_then_check)
{
    rt_db_create(&s_db, false);
    char err[512] = "";
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want,
             "database schema is at version 0, this binary needs %d; run `bickyctl migrate`",
             db_schema_latest());
    cr_assert_str_eq(err, want);

    char *text = NULL;
    size_t len = 0;
    FILE *report = open_memstream(&text, &len);
    int n = db_schema_migrate(s_db.conninfo, report, err, sizeof err);
    fclose(report);
    cr_assert_eq(n, (int)db_migrations_count, "migrate: %s", err);
    cr_assert_not_null(strstr(text, "applying 0001_init ... done"), "report: %s", text);
    free(text);
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), 0, "check: %s", err);
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT count(*) FROM ring_state"), "1");

    report = open_memstream(&text, &len);
    n = db_schema_migrate(s_db.conninfo, report, err, sizeof err);
    fclose(report);
    cr_assert_eq(n, 0, "second migrate: %s", err);
    cr_assert_not_null(strstr(text, "nothing to apply"), "report: %s", text);
    free(text);
    char count[16];
    snprintf(count, sizeof count, "%zu", db_migrations_count);
    cr_assert_str_eq(rt_db_value(&s_db, "SELECT count(*) FROM schema_migrations"), count);
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), 0, "check: %s", err);
}

Test(db_schema, check_refuses_newer_and_older)
{
    rt_db_create(&s_db, true);
    char err[512], sql[160], want[256];
    int latest = db_schema_latest();
    snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version, name) VALUES (%d, 'x')",
             latest + 1);
    rt_db_value(&s_db, sql);
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "database schema version %d is newer than this binary knows (%d); upgrade bicky",
             latest + 1, latest);
    cr_assert_str_eq(err, want);
    /* migrate refuses too, rather than "upgrading" a newer database. */
    cr_assert_eq(db_schema_migrate(s_db.conninfo, NULL, err, sizeof err), -1);
    cr_assert_str_eq(err, want);

    snprintf(sql, sizeof sql, "DELETE FROM schema_migrations WHERE version >= %d", latest);
    rt_db_value(&s_db, sql);
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "database schema is at version %d, this binary needs %d; run `bickyctl migrate`",
             latest - 1, latest);
    cr_assert_str_eq(err, want);
}

Test(db_schema, check_reports_connection_errors_without_password)
{
    char err[768], bad[2][128];
    int port = tf_refused_port(); /* nothing listens there */
    snprintf(bad[0], sizeof bad[0],
             "host=127.0.0.1 port=%d user=u password=hunter2 dbname=x connect_timeout=2", port);
    snprintf(bad[1], sizeof bad[1], "postgresql://u:hunter2@127.0.0.1:%d/x?connect_timeout=2",
             port);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(db_schema_check(bad[i], err, sizeof err), -1);
        cr_assert_not_null(strstr(err, "cannot connect to the database"), "%s", err);
        cr_assert_null(strstr(err, "hunter2"), "password leaked: %s", err);
        cr_assert_not_null(strstr(err, i == 0 ? "password=***" : "u:***@"), "%s", err);
        cr_assert_eq(db_schema_migrate(bad[i], NULL, err, sizeof err), -1);
        cr_assert_null(strstr(err, "hunter2"), "password leaked: %s", err);
    }
}

static void *s_migrate_thread(void *arg)
{
    char err[512];
    intptr_t n = db_schema_migrate(arg, NULL, err, sizeof err);
    return (void *)n;
}

Test(db_schema, concurrent_migrations_apply_once)
{
    rt_db_create(&s_db, false);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, s_migrate_thread, s_db.conninfo), 0);
    }
    intptr_t total = 0;
    for (int i = 0; i < 3; i++) {
        void *n = NULL;
        pthread_join(t[i], &n);
        cr_assert_geq((intptr_t)n, 0, "a concurrent migrate failed");
        total += (intptr_t)n;
    }
    cr_assert_eq(total, (intptr_t)db_migrations_count);
    char err[512];
    cr_assert_eq(db_schema_check(s_db.conninfo, err, sizeof err), 0, "%s", err);
}
