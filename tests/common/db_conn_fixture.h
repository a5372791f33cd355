/*  Shared fixture for the db_conn tests (test_db_conn*.c): callback recorders,
    a loop runner, and a plain blocking libpq "admin" connection (test code only,
    never on the loop) that sets up, checks and kills backends. Real Postgres from
    BICKY_TEST_DATABASE_URL; tests needing it are skipped when it is unset. Tables
    are named dbc_<pid>_<name> and dropped by the suite's teardown. Every helper is
    static inline so a test file may use any subset of them. */
#ifndef BICKY_TESTS_DB_CONN_FIXTURE_H
#define BICKY_TESTS_DB_CONN_FIXTURE_H

#include "common/db_conn.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_STMTS 128

typedef struct {
    int calls;          /* times the statement callback ran */
    db_status_t status; /* last status */
    int seq;            /* global callback sequence number of the last call */
    int rows;           /* rows in the result (DB_OK only) */
    long affected;      /* rows affected (DB_OK only) */
    char value[64];     /* value (0,0) as text, "<null>" for NULL */
} stmt_rec_t;

typedef struct {
    int calls;          /* times the batch callback ran */
    db_status_t status; /* last status */
    int seq;            /* global callback sequence number */
    int order;          /* completion order among batch callbacks */
    char error[256];    /* copy of error ("" when NULL) */
    char sqlstate[8];   /* copy of sqlstate ("" when NULL) */
    bool null_strings;  /* error and sqlstate were both NULL */
    stmt_rec_t stmts[MAX_STMTS];
} batch_rec_t;

/* Test-process state: Criterion runs every test in its own process. */
static zloop_t *s_loop;
static PGconn *s_admin;
static int s_seq;        /* callback sequence counter */
static int s_completed;  /* batch callbacks so far */
static bool s_in_submit; /* true while db_batch_submit runs */
static int s_reentrant;  /* callbacks seen inside db_batch_submit */

static inline void s_stmt_cb(void *arg, db_status_t status, const db_result_t *res)
{
    stmt_rec_t *r = arg;
    r->calls++;
    r->status = status;
    r->seq = ++s_seq;
    s_reentrant += s_in_submit;
    if (status == DB_OK) {
        cr_assert_not_null(res);
        r->rows = db_result_rows(res);
        r->affected = db_result_affected(res);
        const char *v = db_result_value(res, 0, 0);
        snprintf(r->value, sizeof r->value, "%s", v ? v : "<null>");
    } else {
        cr_assert_null(res);
    }
}

static inline void
s_batch_cb(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    batch_rec_t *r = arg;
    r->calls++;
    r->status = status;
    r->seq = ++s_seq;
    r->order = s_completed++;
    s_reentrant += s_in_submit;
    r->null_strings = !error && !sqlstate;
    snprintf(r->error, sizeof r->error, "%s", error ? error : "");
    snprintf(r->sqlstate, sizeof r->sqlstate, "%s", sqlstate ? sqlstate : "");
}

static inline void s_submit(db_batch_t **b, batch_rec_t *rec)
{
    s_in_submit = true;
    db_batch_submit(b, s_batch_cb, rec);
    s_in_submit = false;
    cr_assert_null(*b);
}

static inline void s_add(
    db_batch_t *b, const char *name, const char *sql, int n, const char *const *p, stmt_rec_t *rec)
{
    cr_assert_eq(db_batch_add(b, name, sql, n, p, rec ? s_stmt_cb : NULL, rec), 0);
}

/* --- running the loop -------------------------------------------------------------------- */

typedef bool(pred_fn)(void *arg);
typedef struct {
    pred_fn *pred;
    void *arg;
    int64_t deadline;
    bool met;
} run_t;

static inline int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    run_t *r = arg;
    if (r->pred(r->arg)) {
        r->met = true;
        return -1;
    }
    return zclock_mono() >= r->deadline ? -1 : 0;
}

static inline bool s_run_until(pred_fn *pred, void *arg, int timeout_ms)
{
    if (pred(arg)) {
        return true;
    }
    run_t r = {pred, arg, zclock_mono() + timeout_ms, false};
    int id = zloop_timer(s_loop, 1, 0, s_tick, &r);
    zloop_start(s_loop);
    zloop_timer_end(s_loop, id);
    return r.met;
}

static inline bool s_never(void *arg)
{
    return false;
}

static inline bool s_ready(void *arg)
{
    return db_conn_ready(arg);
}

static inline bool s_not_ready(void *arg)
{
    return !db_conn_ready(arg);
}

static inline bool s_done(void *arg)
{
    return ((batch_rec_t *)arg)->calls > 0;
}

static inline bool s_count_reached(void *arg)
{
    return s_completed >= *(int *)arg;
}

/* --- fixture ----------------------------------------------------------------------------- */

static inline const char *s_url(void)
{
    const char *url = getenv("BICKY_TEST_DATABASE_URL");
    if (!url || !*url) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    return url;
}

static inline void s_admin_exec(const char *sql)
{
    PGresult *r = PQexec(s_admin, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static inline long s_admin_long(const char *sql)
{
    PGresult *r = PQexec(s_admin, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static inline void s_table(char *out, size_t size, const char *name)
{
    (void)s_url(); /* skips the test when there is no database */
    snprintf(out, size, "dbc_%d_%s", (int)getpid(), name);
    char sql[256];
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY, v text)", out, out);
    s_admin_exec(sql);
}

static inline long s_count(const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return s_admin_long(sql);
}

static inline void setup(void)
{
    s_loop = zloop_new();
    cr_assert_not_null(s_loop);
    const char *url = getenv("BICKY_TEST_DATABASE_URL");
    if (url && *url) {
        s_admin = PQconnectdb(url);
        cr_assert_eq(PQstatus(s_admin), CONNECTION_OK, "%s", PQerrorMessage(s_admin));
        PGresult *r = PQexec(s_admin, "SET client_min_messages = warning");
        PQclear(r);
    }
}

static inline void teardown(void)
{
    if (s_admin) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables "
                 "WHERE tablename LIKE 'dbc\\_%d\\_%%' LOOP EXECUTE 'DROP TABLE ' || t; "
                 "END LOOP; END $$",
                 (int)getpid());
        PQclear(PQexec(s_admin, sql));
        PQfinish(s_admin);
        s_admin = NULL;
    }
    zloop_destroy(&s_loop);
}

static inline db_conn_t *s_connect(void)
{
    db_conn_t *conn = db_conn_new(s_loop, s_url());
    cr_assert_not_null(conn);
    cr_assert(s_run_until(s_ready, conn, 5000), "connection never became ready");
    return conn;
}

/* Runs one plain single-statement batch and returns its value (0,0) in out. */
static inline db_status_t s_query(db_conn_t *conn, const char *sql, char *out, size_t size)
{
    static batch_rec_t rec;
    memset(&rec, 0, sizeof rec);
    db_batch_t *b = db_batch_new(conn, false);
    s_add(b, NULL, sql, 0, NULL, &rec.stmts[0]);
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 5000), "no answer to %s", sql);
    if (out) {
        snprintf(out, size, "%s", rec.stmts[0].value);
    }
    return rec.status;
}

static inline void s_admin_state_of(int pid, char *out, size_t size)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT state FROM pg_stat_activity WHERE pid = %d", pid);
    PGresult *r = PQexec(s_admin, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "<gone>");
    PQclear(r);
}

static inline int s_backend_pid(db_conn_t *conn)
{
    char v[64];
    cr_assert_eq(s_query(conn, "SELECT pg_backend_pid()", v, sizeof v), DB_OK);
    return atoi(v);
}

static inline void s_kill_backend(int pid)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    s_admin_exec(sql);
}

#endif
