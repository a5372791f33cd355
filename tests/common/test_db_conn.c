/*  db_conn against a real Postgres: queries, results, transactions, failures
    inside a batch, and pipelining order. Each test drives its own zloop.
    Connection loss, reconnects, destroy and bounds: test_db_conn_loss.c. */
#include "tests/common/db_conn_fixture.h"

TestSuite(db_conn, .init = setup, .fini = teardown);

Test(db_conn, plain_select_and_accessors, .timeout = 20)
{
    db_conn_t *conn = s_connect();
    cr_assert_eq(db_conn_in_flight(conn), 0);
    static batch_rec_t rec;
    db_batch_t *b = db_batch_new(conn, false);
    cr_assert_not_null(b);
    const char *p[] = {"41", NULL};
    s_add(b, NULL, "SELECT $1::int + 1 AS a, $2::text AS b, 'x' AS c", 2, p, &rec.stmts[0]);
    s_add(b, NULL, "SELECT generate_series(1, 3)", 0, NULL, &rec.stmts[1]);
    cr_assert_eq(db_batch_size(b), 2);
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 5000));
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.status, DB_OK);
    cr_assert(rec.null_strings, "error/sqlstate must be NULL on success");
    cr_assert_eq(rec.stmts[0].status, DB_OK);
    cr_assert_str_eq(rec.stmts[0].value, "42");
    cr_assert_eq(rec.stmts[0].rows, 1);
    cr_assert_eq(rec.stmts[1].rows, 3);
    cr_assert(rec.stmts[0].seq < rec.stmts[1].seq && rec.stmts[1].seq < rec.seq);
    cr_assert_eq(s_reentrant, 0);
    cr_assert_eq(db_conn_in_flight(conn), 0);

    /* NULLs, out-of-range cells and the column count, checked inside a callback. */
    char v[64];
    cr_assert_eq(s_query(conn, "SELECT NULL::text", v, sizeof v), DB_OK);
    cr_assert_str_eq(v, "<null>");

    db_batch_t *unsent = db_batch_new(conn, true);
    s_add(unsent, NULL, "SELECT 1", 0, NULL, NULL);
    db_batch_destroy(&unsent);
    cr_assert_null(unsent);
    db_batch_destroy(&unsent);

    db_conn_destroy(&conn);
    cr_assert_null(conn);
    db_conn_destroy(&conn);
}

static void s_shape_cb(void *arg, db_status_t status, const db_result_t *res)
{
    int *ok = arg;
    cr_assert_eq(status, DB_OK);
    *ok = db_result_cols(res) == 2 && db_result_rows(res) == 1 &&
          db_result_value(res, 0, 1) == NULL && db_result_value(res, 1, 0) == NULL &&
          db_result_value(res, 0, 2) == NULL && db_result_value(res, -1, 0) == NULL &&
          strcmp(db_result_value(res, 0, 0), "a") == 0 && db_result_affected(res) == 0;
}

Test(db_conn, result_shape, .timeout = 20)
{
    db_conn_t *conn = s_connect();
    static batch_rec_t rec;
    int ok = -1;
    db_batch_t *b = db_batch_new(conn, false);
    cr_assert_eq(db_batch_add(b, NULL, "SELECT 'a', NULL", 0, NULL, s_shape_cb, &ok), 0);
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 5000));
    cr_assert_eq(ok, 1);
    db_conn_destroy(&conn);
}

Test(db_conn, transactional_100_inserts_commit, .timeout = 30)
{
    char t[64], sql[128];
    s_table(t, sizeof t, "tx100");
    db_conn_t *conn = s_connect();
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, $2)", t);
    static batch_rec_t rec;
    db_batch_t *b = db_batch_new(conn, true);
    for (int i = 0; i < 100; i++) {
        char id[16], v[16];
        snprintf(id, sizeof id, "%d", i);
        snprintf(v, sizeof v, "v%d", i);
        const char *p[] = {id, v};
        s_add(b, NULL, sql, 2, p, &rec.stmts[i]);
    }
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 10000));
    cr_assert_eq(rec.status, DB_OK, "%s", rec.error);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(rec.stmts[i].calls, 1);
        cr_assert_eq(rec.stmts[i].status, DB_OK);
        cr_assert_eq(rec.stmts[i].affected, 1);
        cr_assert(i == 0 || rec.stmts[i - 1].seq < rec.stmts[i].seq);
    }
    cr_assert_eq(s_count(t), 100);
    db_conn_destroy(&conn);
}

Test(db_conn, unique_violation_fails_whole_transaction, .timeout = 30)
{
    char t[64], sql[128];
    s_table(t, sizeof t, "uniq");
    db_conn_t *conn = s_connect();
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, 'x')", t);
    static batch_rec_t rec;
    const char *ids[] = {"1", "2", "1", "3"};
    db_batch_t *b = db_batch_new(conn, true);
    for (int i = 0; i < 4; i++) {
        s_add(b, NULL, sql, 1, &ids[i], &rec.stmts[i]);
    }
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 5000));
    cr_assert_eq(rec.status, DB_ERR_QUERY);
    cr_assert_str_eq(rec.sqlstate, "23505");
    cr_assert(strstr(rec.error, "duplicate key") != NULL, "error: %s", rec.error);
    cr_assert_eq(rec.stmts[0].status, DB_OK);
    cr_assert_eq(rec.stmts[1].status, DB_OK);
    cr_assert_eq(rec.stmts[2].status, DB_ERR_QUERY);
    cr_assert_eq(rec.stmts[3].status, DB_ERR_ABORTED);
    cr_assert_eq(rec.stmts[3].calls, 1);
    cr_assert_eq(s_count(t), 0);

    /* The same connection keeps working: a syntax error in a plain batch, then a commit. */
    char v[64];
    memset(&rec, 0, sizeof rec);
    cr_assert_eq(s_query(conn, "SELEC 1", v, sizeof v), DB_ERR_QUERY);
    b = db_batch_new(conn, true);
    s_add(b, NULL, sql, 1, &ids[3], &rec.stmts[0]);
    s_submit(&b, &rec);
    cr_assert(s_run_until(s_done, &rec, 5000));
    cr_assert_eq(rec.status, DB_OK, "%s", rec.error);
    cr_assert_eq(s_count(t), 1);
    db_conn_destroy(&conn);
}

Test(db_conn, failed_transaction_does_not_poison_pipelined_batches, .timeout = 30)
{
    char t[64], sql[128];
    s_table(t, sizeof t, "poison");
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, 'x')", t);
    db_conn_t *conn = s_connect();
    int pid = s_backend_pid(conn);
    static batch_rec_t recs[6];
    const char *dup[] = {"1", "1"};
    db_batch_t *b = db_batch_new(conn, true);
    s_add(b, NULL, sql, 1, &dup[0], &recs[0].stmts[0]);
    s_add(b, NULL, sql, 1, &dup[1], &recs[0].stmts[1]);
    s_submit(&b, &recs[0]);
    /* Sent while the failing one is still in flight. */
    for (int i = 1; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", 100 + i);
        const char *p[] = {id};
        b = db_batch_new(conn, i % 2 == 1);
        s_add(b, NULL, sql, 1, p, &recs[i].stmts[0]);
        s_submit(&b, &recs[i]);
    }
    cr_assert(db_conn_in_flight(conn) >= 2);
    int want = 6 + 1; /* + the pid query */
    cr_assert(s_run_until(s_count_reached, &want, 5000));
    cr_assert_eq(recs[0].status, DB_ERR_QUERY);
    cr_assert_str_eq(recs[0].sqlstate, "23505");
    for (int i = 1; i < 6; i++) {
        cr_assert_eq(recs[i].status, DB_OK, "batch %d: %s", i, recs[i].error);
    }
    cr_assert_eq(s_count(t), 5);
    /* The session is left outside any transaction block. */
    s_run_until(s_never, NULL, 100);
    char state[32];
    s_admin_state_of(pid, state, sizeof state);
    cr_assert_str_eq(state, "idle");
    db_conn_destroy(&conn);
}

Test(db_conn, commit_failure_fails_batch, .timeout = 30)
{
    char t[64], sql[512];
    s_table(t, sizeof t, "deferred");
    snprintf(sql, sizeof sql,
             "ALTER TABLE %s DROP CONSTRAINT %s_pkey, ADD CONSTRAINT %s_u UNIQUE (id) "
             "DEFERRABLE INITIALLY DEFERRED",
             t, t, t);
    s_admin_exec(sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, 'x')", t);
    db_conn_t *conn = s_connect();
    const char *dup[] = {"7", "7"};
    for (int tx = 1; tx >= 0; tx--) {
        static batch_rec_t rec;
        memset(&rec, 0, sizeof rec);
        db_batch_t *b = db_batch_new(conn, tx == 1);
        s_add(b, NULL, sql, 1, &dup[0], &rec.stmts[0]);
        s_add(b, NULL, sql, 1, &dup[1], &rec.stmts[1]);
        s_submit(&b, &rec);
        cr_assert(s_run_until(s_done, &rec, 5000));
        /* Each INSERT succeeded; the commit (COMMIT, or the sync's implicit one) failed. */
        cr_assert_eq(rec.stmts[0].status, DB_OK);
        cr_assert_eq(rec.stmts[1].status, DB_OK);
        cr_assert_eq(rec.status, DB_ERR_QUERY, "tx=%d", tx);
        cr_assert_str_eq(rec.sqlstate, "23505");
        cr_assert_eq(s_count(t), 0);
    }
    char v[64];
    cr_assert_eq(s_query(conn, "SELECT 'still usable'", v, sizeof v), DB_OK);
    cr_assert_str_eq(v, "still usable");
    db_conn_destroy(&conn);
}

#define N_ORDER 400
static batch_rec_t s_recs[N_ORDER + 1];

static void s_chain_cb(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    /* Submitting from inside a callback is allowed; this batch goes to the back. */
    db_conn_t *conn = arg;
    s_batch_cb(&s_recs[N_ORDER - 1], status, error, sqlstate);
    db_batch_t *b = db_batch_new(conn, false);
    s_add(b, NULL, "SELECT 'chained'", 0, NULL, &s_recs[N_ORDER].stmts[0]);
    s_submit(&b, &s_recs[N_ORDER]);
}

Test(db_conn, many_batches_in_flight_complete_in_order, .timeout = 30)
{
    db_conn_t *conn = s_connect();
    for (int i = 0; i < N_ORDER; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *p[] = {id};
        db_batch_t *b = db_batch_new(conn, i % 2 == 0);
        s_add(b, NULL, "SELECT $1::int", 1, p, &s_recs[i].stmts[0]);
        s_add(b, NULL, "SELECT pg_backend_pid()", 0, NULL, &s_recs[i].stmts[1]);
        if (i == N_ORDER - 1) {
            s_in_submit = true;
            db_batch_submit(&b, s_chain_cb, conn);
            s_in_submit = false;
        } else {
            s_submit(&b, &s_recs[i]);
        }
    }
    size_t in_flight = db_conn_in_flight(conn);
    cr_assert(in_flight > 1, "in_flight=%zu", in_flight);
    int want = N_ORDER + 1;
    cr_assert(s_run_until(s_count_reached, &want, 20000), "completed=%d", s_completed);
    for (int i = 0; i <= N_ORDER; i++) {
        cr_assert_eq(s_recs[i].calls, 1, "batch %d", i);
        cr_assert_eq(s_recs[i].status, DB_OK, "batch %d: %s", i, s_recs[i].error);
        cr_assert_eq(s_recs[i].order, i, "batch %d completed as %d", i, s_recs[i].order);
    }
    for (int i = 0; i < N_ORDER; i++) {
        cr_assert_eq(atoi(s_recs[i].stmts[0].value), i);
    }
    cr_assert_str_eq(s_recs[N_ORDER].stmts[0].value, "chained");
    cr_assert_eq(s_reentrant, 0);
    cr_assert_eq(db_conn_in_flight(conn), 0);
    db_conn_destroy(&conn);
}

Test(db_conn, large_output_is_flushed, .timeout = 30)
{
    /* ~24 MB of parameters: far beyond the socket buffer, so PQflush returns 1 and the
       rest goes out as the socket becomes writable, while results are read. */
    db_conn_t *conn = s_connect();
    size_t len = 256 * 1024;
    char *big = malloc(len + 1);
    cr_assert_not_null(big);
    memset(big, 'x', len);
    big[len] = '\0';
    static batch_rec_t recs[8];
    for (int i = 0; i < 8; i++) {
        db_batch_t *b = db_batch_new(conn, i % 2 == 0);
        for (int k = 0; k < 12; k++) {
            const char *p[] = {big};
            s_add(b, NULL, "SELECT length($1::text)", 1, p, &recs[i].stmts[k]);
        }
        s_submit(&b, &recs[i]);
    }
    free(big);
    int want = 8;
    cr_assert(s_run_until(s_count_reached, &want, 20000), "completed=%d", s_completed);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(recs[i].status, DB_OK, "batch %d: %s", i, recs[i].error);
        cr_assert_eq(recs[i].order, i);
        for (int k = 0; k < 12; k++) {
            cr_assert_str_eq(recs[i].stmts[k].value, "262144");
        }
    }
    db_conn_destroy(&conn);
}
