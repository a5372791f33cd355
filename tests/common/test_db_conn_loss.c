/*  db_conn against a real Postgres: prepared statements across reconnects,
    connection loss (pg_terminate_backend) with batches in flight, unreachable
    servers, destroy with pending work, the queue bound and the connect timeout. */
#include "tests/common/db_conn_fixture.h"

TestSuite(db_conn_loss, .init = setup, .fini = teardown);

static void s_run_prepared(db_conn_t *conn, const char *id, const char *v, batch_rec_t *rec)
{
    memset(rec, 0, sizeof *rec);
    const char *p[] = {id, v};
    db_batch_t *b = db_batch_new(conn, true);
    s_add(b, "ins", NULL, 2, p, &rec->stmts[0]);
    s_add(b, "cnt", NULL, 0, NULL, &rec->stmts[1]);
    s_add(b, "get", NULL, 1, p, &rec->stmts[2]);
    s_submit(&b, rec);
    cr_assert(s_run_until(s_done, rec, 5000));
}

Test(db_conn_loss, prepared_statements_survive_reconnect, .timeout = 30)
{
    char t[64], ins[128], cnt[128], get[128];
    s_table(t, sizeof t, "prep");
    snprintf(ins, sizeof ins, "INSERT INTO %s (id, v) VALUES ($1, $2)", t);
    snprintf(cnt, sizeof cnt, "SELECT count(*) FROM %s", t);
    snprintf(get, sizeof get, "SELECT v FROM %s WHERE id = $1", t);
    db_conn_t *conn = db_conn_new(s_loop, s_url());
    cr_assert_not_null(conn);
    cr_assert_eq(db_conn_prepare(conn, "ins", ins, 2), 0);
    cr_assert_eq(db_conn_prepare(conn, "cnt", cnt, 0), 0);
    cr_assert_eq(db_conn_prepare(conn, "ins", cnt, 0), -1);
    cr_assert(s_run_until(s_ready, conn, 5000));
    /* Registered while connected: prepared before any batch submitted afterwards. */
    cr_assert_eq(db_conn_prepare(conn, "get", get, 1), 0);
    static batch_rec_t rec;
    s_run_prepared(conn, "1", "one", &rec);
    cr_assert_eq(rec.status, DB_OK, "%s", rec.error);
    cr_assert_str_eq(rec.stmts[1].value, "1");
    cr_assert_str_eq(rec.stmts[2].value, "one");

    int pid = s_backend_pid(conn);
    s_kill_backend(pid);
    cr_assert(s_run_until(s_not_ready, conn, 5000), "loss never noticed");
    cr_assert(s_run_until(s_ready, conn, 5000), "never reconnected");
    cr_assert_neq(s_backend_pid(conn), pid);
    s_run_prepared(conn, "2", "two", &rec);
    cr_assert_eq(rec.status, DB_OK, "%s", rec.error);
    cr_assert_str_eq(rec.stmts[1].value, "2");
    cr_assert_str_eq(rec.stmts[2].value, "two");
    db_conn_destroy(&conn);
}

static db_conn_t *s_resubmit_conn;
static batch_rec_t s_resubmit_rec;

static void
s_fail_then_resubmit_cb(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_batch_cb(arg, status, error, sqlstate);
    db_batch_t *b = db_batch_new(s_resubmit_conn, false);
    s_add(b, NULL, "SELECT 1", 0, NULL, &s_resubmit_rec.stmts[0]);
    s_submit(&b, &s_resubmit_rec);
}

Test(db_conn_loss, connection_loss_fails_in_flight_then_recovers, .timeout = 30)
{
    char t[64], sql[128];
    s_table(t, sizeof t, "loss");
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, 'x')", t);
    db_conn_t *conn = s_connect();
    s_resubmit_conn = conn;
    int pid = s_backend_pid(conn);

    static batch_rec_t recs[4];
    db_batch_t *b = db_batch_new(conn, false);
    s_add(b, NULL, "SELECT pg_sleep(5)", 0, NULL, &recs[0].stmts[0]);
    s_submit(&b, &recs[0]);
    b = db_batch_new(conn, true);
    const char *ids[] = {"1", "2", "3"};
    for (int i = 0; i < 3; i++) {
        s_add(b, NULL, sql, 1, &ids[i], &recs[1].stmts[i]);
    }
    s_submit(&b, &recs[1]);
    b = db_batch_new(conn, false);
    s_add(b, NULL, "SELECT 1", 0, NULL, &recs[2].stmts[0]);
    s_in_submit = true;
    db_batch_submit(&b, s_fail_then_resubmit_cb, &recs[2]);
    s_in_submit = false;
    cr_assert_eq(db_conn_in_flight(conn), 3);
    s_run_until(s_never, NULL, 200); /* the sleep is running on the server */
    s_kill_backend(pid);

    cr_assert(s_run_until(s_done, &s_resubmit_rec, 5000));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].calls, 1);
        cr_assert_eq(recs[i].status, DB_ERR_CONN, "batch %d status %d", i, recs[i].status);
        cr_assert_neq(recs[i].error[0], '\0');
    }
    cr_assert_eq(recs[0].stmts[0].status, DB_ERR_CONN);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[1].stmts[i].calls, 1);
        cr_assert_eq(recs[1].stmts[i].status, DB_ERR_CONN);
    }
    /* Submitted while down (from a callback): failed from a timer, not inside submit. */
    cr_assert_eq(s_resubmit_rec.status, DB_ERR_CONN);
    cr_assert_eq(s_resubmit_rec.stmts[0].calls, 1);
    cr_assert_eq(s_reentrant, 0);
    cr_assert_eq(db_conn_in_flight(conn), 0);

    cr_assert(s_run_until(s_ready, conn, 5000), "never reconnected");
    static batch_rec_t again;
    b = db_batch_new(conn, true);
    s_add(b, NULL, sql, 1, &ids[0], &again.stmts[0]);
    s_submit(&b, &again);
    cr_assert(s_run_until(s_done, &again, 5000));
    cr_assert_eq(again.status, DB_OK, "%s", again.error);
    cr_assert_eq(s_count(t), 1);
    db_conn_destroy(&conn);
}

Test(db_conn_loss, bad_port_fails_batches, .timeout = 20)
{
    /* Nothing listens on port 1: every attempt is refused. No database needed. */
    db_conn_t *conn = db_conn_new(s_loop, "host=127.0.0.1 port=1 dbname=none user=none");
    cr_assert_not_null(conn);
    static batch_rec_t recs[3];
    for (int i = 0; i < 3; i++) {
        db_batch_t *b = db_batch_new(conn, i == 1);
        s_add(b, NULL, "SELECT 1", 0, NULL, &recs[i].stmts[0]);
        s_add(b, NULL, "SELECT 2", 0, NULL, &recs[i].stmts[1]);
        s_submit(&b, &recs[i]);
        cr_assert_eq(recs[i].calls, 0, "callback ran inside db_batch_submit");
        s_run_until(s_never, NULL, 150 * i);
    }
    int want = 3;
    cr_assert(s_run_until(s_count_reached, &want, 5000));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].calls, 1);
        cr_assert_eq(recs[i].status, DB_ERR_CONN);
        cr_assert_not_null(recs[i].sqlstate);
        cr_assert_eq(recs[i].stmts[0].status, DB_ERR_CONN);
        cr_assert_eq(recs[i].stmts[1].calls, 1);
    }
    cr_assert_not(db_conn_ready(conn));
    cr_assert_eq(s_reentrant, 0);
    s_run_until(s_never, NULL, 500); /* a few reconnect attempts with back-off */
    db_conn_destroy(&conn);
    cr_assert_null(conn);
}

static db_conn_t *s_dying_conn;
static batch_rec_t s_late_rec;

static void
s_destroy_resubmit_cb(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_batch_cb(arg, status, error, sqlstate);
    db_batch_t *b = db_batch_new(s_dying_conn, false);
    s_add(b, NULL, "SELECT 1", 0, NULL, &s_late_rec.stmts[0]);
    s_submit(&b, &s_late_rec);
}

Test(db_conn_loss, destroy_calls_every_pending_callback_once, .timeout = 30)
{
    db_conn_t *conn = s_connect();
    db_conn_t *bad = db_conn_new(s_loop, "host=127.0.0.1 port=1 dbname=none user=none");
    s_dying_conn = conn;
    static batch_rec_t recs[8];
    db_batch_t *b = db_batch_new(conn, false);
    s_add(b, NULL, "SELECT pg_sleep(2)", 0, NULL, &recs[0].stmts[0]);
    db_batch_submit(&b, s_destroy_resubmit_cb, &recs[0]);
    for (int i = 1; i < 8; i++) {
        b = db_batch_new(i < 5 ? conn : bad, i % 2 == 0);
        for (int k = 0; k < 3; k++) {
            s_add(b, NULL, "SELECT 1", 0, NULL, &recs[i].stmts[k]);
        }
        s_submit(&b, &recs[i]);
    }
    db_conn_destroy(&conn);
    db_conn_destroy(&bad);
    cr_assert_null(conn);
    cr_assert_null(bad);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(recs[i].calls, 1, "batch %d calls %d", i, recs[i].calls);
        cr_assert_eq(recs[i].status, DB_ERR_CONN);
        int n = i == 0 ? 1 : 3;
        for (int k = 0; k < n; k++) {
            cr_assert_eq(recs[i].stmts[k].calls, 1);
            cr_assert_eq(recs[i].stmts[k].status, DB_ERR_CONN);
        }
    }
    cr_assert_eq(s_late_rec.calls, 1);
    cr_assert_eq(s_late_rec.stmts[0].calls, 1);
    cr_assert_eq(s_late_rec.status, DB_ERR_CONN);
    /* Nothing is left on the loop: it runs idle without touching freed memory. */
    s_run_until(s_never, NULL, 100);
}

#define N_CAP 10005 /* DB_MAX_QUEUED + 5 */
static batch_rec_t s_cap_recs[N_CAP];

Test(db_conn_loss, queue_is_bounded_and_connect_times_out, .timeout = 30)
{
    /* A listener that never accepts: the TCP connect succeeds, the startup packet is
       never answered, so the connection stays in CONNECTING until the connect timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    char ci[128];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable",
             ntohs(sa.sin_port));
    db_conn_t *conn = db_conn_new(s_loop, ci);
    for (int i = 0; i < N_CAP; i++) {
        db_batch_t *b = db_batch_new(conn, false);
        s_add(b, NULL, "SELECT 1", 0, NULL, &s_cap_recs[i].stmts[0]);
        s_submit(&b, &s_cap_recs[i]);
    }
    cr_assert_eq(s_completed, 0);
    int want = 5;
    cr_assert(s_run_until(s_count_reached, &want, 1000));
    for (int i = N_CAP - 5; i < N_CAP; i++) {
        cr_assert_eq(s_cap_recs[i].status, DB_ERR_CONN);
        cr_assert_str_eq(s_cap_recs[i].error, "queue full");
    }
    cr_assert_eq(s_completed, 5, "queued batches failed before the connect timeout");
    want = N_CAP;
    cr_assert(s_run_until(s_count_reached, &want, 10000));
    for (int i = 0; i < N_CAP - 5; i++) {
        cr_assert_eq(s_cap_recs[i].calls, 1);
        cr_assert_eq(s_cap_recs[i].status, DB_ERR_CONN);
        cr_assert_eq(s_cap_recs[i].stmts[0].calls, 1);
        cr_assert_eq(s_cap_recs[i].order, i + 5);
    }
    cr_assert_eq(s_reentrant, 0);
    db_conn_destroy(&conn);
    close(lfd);
}
