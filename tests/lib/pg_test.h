/*  pg_test — a plain libpq connection to the test database for Criterion tests that
    check rows themselves (BICKY_TEST_DATABASE_URL; the test is skipped without it).
    One connection per test binary: pg_test_open in .init, pg_test_close in .fini. */
#ifndef BICKY_TESTS_PG_TEST_H
#define BICKY_TESTS_PG_TEST_H

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdlib.h>

static PGconn *pg_test_conn;

static inline void pg_test_open(void)
{
    const char *url = getenv("BICKY_TEST_DATABASE_URL");
    if (!url || !*url) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    pg_test_conn = PQconnectdb(url);
    cr_assert_eq(PQstatus(pg_test_conn), CONNECTION_OK, "connect: %s",
                 PQerrorMessage(pg_test_conn));
}

static inline void pg_test_close(void)
{
    PQfinish(pg_test_conn);
    pg_test_conn = NULL;
}

/* Runs sql; the test fails unless it succeeds. */
static inline void pg_test_exec(const char *sql)
{
    PGresult *r = PQexec(pg_test_conn, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQerrorMessage(pg_test_conn));
    PQclear(r);
}

#endif
