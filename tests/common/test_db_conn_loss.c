/*  db_conn against a real Postgres: prepared statements across reconnects,
    connection loss (pg_terminate_backend) with batches in flight, unreachable
    servers, destroy with pending work, the queue bound and the connect timeout,
    and a silent partition (tests/fixtures/tcp_relay.py swallowing every byte)
    under load: noticed by the answer deadline, survived, nothing acknowledged lost. */
#include "tests/common/db_conn_fixture.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

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

/* ---- a silent partition: tests/fixtures/tcp_relay.py between us and the server ---- */

/* Starts the relay towards the test server's TCP port; returns its pid, *port set. */
static pid_t s_relay_start(int *port)
{
    const char *pg_port = getenv("BICKY_TEST_PG_PORT");
    if (!pg_port || !*pg_port) {
        cr_skip_test("BICKY_TEST_PG_PORT is not set");
    }
    char target[64], script[PATH_MAX], file[64];
    snprintf(target, sizeof target, "127.0.0.1:%s", pg_port);
    snprintf(script, sizeof script, "%s/tests/fixtures/tcp_relay.py", BICKY_SRC_DIR);
    snprintf(file, sizeof file, "/tmp/bicky-relay-%d.port", (int)getpid());
    unlink(file);
    char *argv[] = {"python3", script, "--target", target, "--port-file", file, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    cr_assert_eq(posix_spawnp(&pid, "python3", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 500 && access(file, F_OK) != 0; i++) {
        usleep(20 * 1000);
    }
    FILE *f = fopen(file, "re");
    cr_assert_not_null(f, "the relay did not start");
    cr_assert_eq(fscanf(f, "%d", port), 1);
    fclose(f);
    unlink(file);
    return pid;
}

/* The load: one transactional insert every few ms; what each batch got. */
typedef struct {
    db_conn_t *conn;
    char table[64];
    int next_id;           /* ids submitted so far */
    int ok, lost;          /* batches that committed / failed with DB_ERR_CONN */
    int other;             /* any other outcome */
    int done;              /* callbacks so far */
    int *acked;            /* ids that committed (capacity 100000) */
    int64_t first_lost_ms; /* when the first DB_ERR_CONN arrived (monotonic) */
    bool stop;             /* stop submitting */
} s_load_t;

typedef struct {
    s_load_t *load;
    int id;
} s_ins_t;

static void s_ins_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_ins_t *ins = arg;
    s_load_t *l = ins->load;
    l->done++;
    if (status == DB_OK) {
        l->acked[l->ok++] = ins->id;
    } else if (status == DB_ERR_CONN) {
        if (!l->lost++) {
            l->first_lost_ms = zclock_mono();
        }
    } else {
        l->other++;
    }
    free(ins);
}

static int s_load_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_load_t *l = arg;
    if (l->stop || l->next_id >= 100000) {
        return 0;
    }
    char sql[128], id[16];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES ($1, 'x')", l->table);
    s_ins_t *ins = malloc(sizeof *ins);
    cr_assert_not_null(ins);
    *ins = (s_ins_t){l, ++l->next_id};
    snprintf(id, sizeof id, "%d", ins->id);
    const char *p[] = {id};
    db_batch_t *b = db_batch_new(l->conn, true);
    cr_assert_eq(db_batch_add(b, NULL, sql, 1, p, NULL, NULL), 0);
    db_batch_submit(&b, s_ins_done, ins);
    return 0;
}

static bool s_lost_seen(void *arg)
{
    return ((s_load_t *)arg)->lost > 0;
}

static int s_target;
static bool s_ok_reached(void *arg)
{
    return ((s_load_t *)arg)->ok >= s_target;
}

static bool s_all_done(void *arg)
{
    s_load_t *l = arg;
    return l->done == l->next_id;
}

Test(db_conn_loss, a_silent_partition_is_detected_and_survived, .timeout = 120)
{
    s_url();
    int port = 0;
    pid_t relay = s_relay_start(&port);
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres dbname=%s", port,
             PQdb(s_admin));
    static s_load_t l;
    memset(&l, 0, sizeof l);
    l.acked = calloc(100000, sizeof *l.acked);
    s_table(l.table, sizeof l.table, "part");
    l.conn = db_conn_new(s_loop, conninfo);
    cr_assert_not_null(l.conn);
    db_conn_set_deadline(l.conn, 1000);
    cr_assert(s_run_until(s_ready, l.conn, 10000), "connects through the relay");
    int timer = zloop_timer(s_loop, 5, 0, s_load_tick, &l);
    s_target = 50;
    cr_assert(s_run_until(s_ok_reached, &l, 20000), "commits through the relay");
    cr_assert_eq(l.lost, 0);

    kill(relay, SIGUSR1); /* silence: bytes swallowed, no RST */
    int64_t t0 = zclock_mono();
    cr_assert(s_run_until(s_lost_seen, &l, 15000), "the loss is noticed");
    int64_t took = l.first_lost_ms - t0;
    cr_log_info("silent partition noticed after %lld ms", (long long)took);
    cr_assert_lt(took, 8000, "noticed in seconds (%lld ms), not the kernel's minutes",
                 (long long)took);
    cr_assert_not(db_conn_ready(l.conn));

    kill(relay, SIGUSR2); /* forwarding again */
    s_target = l.ok + 50;
    cr_assert(s_run_until(s_ok_reached, &l, 30000), "commits again after the partition");
    l.stop = true;
    cr_assert(s_run_until(s_all_done, &l, 20000));
    zloop_timer_end(s_loop, timer);
    cr_assert_eq(l.other, 0, "only commits and connection failures");

    /* Every acknowledged insert is stored (a lost one may be stored too: ambiguous). */
    long stored = s_count(l.table);
    cr_assert_geq(stored, l.ok);
    char sql[160];
    int missing = 0;
    for (int i = 0; i < l.ok; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id = %d", l.table, l.acked[i]);
        missing += s_admin_long(sql) != 1;
    }
    cr_assert_eq(missing, 0, "%d acknowledged inserts missing", missing);
    db_conn_destroy(&l.conn);
    free(l.acked);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
}
