/*  bench_db_conn — rows/s through db_conn: transactional batches of 1, 10, 100
    and 1000 prepared INSERTs with 1, 2, 4 and 8 batches in flight, all on one
    zloop. Usage: bench_db_conn [CONNINFO] (default $BICKY_DATABASE_URL).
    Creates table bench_dbc_<pid> and drops it at the end. Not built by default;
    see docs/db.md for the build command. */
#include "common/db_conn.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    zloop_t *loop;   /* the loop */
    db_conn_t *conn; /* the connection under test */
    int batch;       /* inserts per batch */
    long total;      /* rows to insert in this run */
    long next_id;    /* next id to insert */
    long rows_done;  /* rows committed */
    int in_flight;   /* batches outstanding */
    int failures;    /* failed batches */
    bool finished;   /* stop the loop */
    int ticks_left;  /* ready-wait budget in 1 ms ticks */
} bench_t;

static void s_submit_one(bench_t *b);

static void s_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    bench_t *b = arg;
    b->in_flight--;
    if (status != DB_OK) {
        b->failures++;
        fprintf(stderr, "batch failed: %s (%s)\n", error, sqlstate);
    } else {
        b->rows_done += b->batch;
    }
    if (b->next_id < b->total) {
        s_submit_one(b);
    } else if (b->in_flight == 0) {
        b->finished = true;
    }
}

static void s_submit_one(bench_t *b)
{
    db_batch_t *batch = db_batch_new(b->conn, true);
    for (int i = 0; i < b->batch && b->next_id < b->total; i++) {
        char id[24];
        snprintf(id, sizeof id, "%ld", b->next_id++);
        const char *p[] = {id, "payload-0123456789"};
        db_batch_add(batch, "bench_ins", NULL, 2, p, NULL, NULL);
    }
    b->in_flight++;
    db_batch_submit(&batch, s_done, b);
}

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    bench_t *b = arg;
    return b->finished || util_interrupted ? -1 : 0;
}

static void s_run(bench_t *b)
{
    b->finished = false;
    int id = zloop_timer(b->loop, 1, 0, s_tick, b);
    zloop_start(b->loop);
    zloop_timer_end(b->loop, id);
}

static void s_plain_done(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    bench_t *b = arg;
    if (status != DB_OK) {
        fprintf(stderr, "setup failed: %s (%s)\n", error, sqlstate);
        exit(1);
    }
    b->finished = true;
}

static void s_plain(bench_t *b, const char *sql)
{
    db_batch_t *batch = db_batch_new(b->conn, false);
    db_batch_add(batch, NULL, sql, 0, NULL, NULL, NULL);
    db_batch_submit(&batch, s_plain_done, b);
    s_run(b);
}

static double s_measure(bench_t *b, const char *table, int batch, int depth, long total)
{
    char sql[128];
    snprintf(sql, sizeof sql, "TRUNCATE %s", table);
    s_plain(b, sql);
    b->batch = batch;
    b->total = total;
    b->next_id = 0;
    b->rows_done = 0;
    b->failures = 0;
    int64_t t0 = util_mono_us();
    for (int i = 0; i < depth && b->next_id < b->total; i++) {
        s_submit_one(b);
    }
    s_run(b);
    int64_t us = util_mono_us() - t0;
    if (b->failures) {
        fprintf(stderr, "%d batches failed\n", b->failures);
    }
    return (double)b->rows_done * 1e6 / (double)(us > 0 ? us : 1);
}

static int s_ready_tick(zloop_t *loop, int timer_id, void *arg)
{
    bench_t *b = arg;
    return db_conn_ready(b->conn) || util_interrupted || --b->ticks_left <= 0 ? -1 : 0;
}

/* Runs the loop until the connection is ready, for at most 5 s. */
static bool s_ready_wait(bench_t *b)
{
    b->ticks_left = 5000;
    int id = zloop_timer(b->loop, 1, 0, s_ready_tick, b);
    zloop_start(b->loop);
    zloop_timer_end(b->loop, id);
    return db_conn_ready(b->conn);
}

int main(int argc, char **argv)
{
    const char *ci = argc > 1 ? argv[1] : getenv("BICKY_DATABASE_URL");
    if (!ci || strcmp(ci, "--help") == 0) {
        fprintf(stderr, "usage: bench_db_conn CONNINFO (or set BICKY_DATABASE_URL)\n");
        return ci ? 0 : 2;
    }
    log_init("bench", LOG_LEVEL_WARN);
    util_signals_install();
    bench_t b = {.loop = zloop_new()};
    b.conn = db_conn_new(b.loop, ci);
    char table[64], sql[256];
    snprintf(table, sizeof table, "bench_dbc_%d", (int)getpid());
    if (!s_ready_wait(&b)) {
        fprintf(stderr, "cannot connect\n");
        return 1;
    }
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id bigint PRIMARY KEY, payload text, ts timestamptz DEFAULT now())",
             table);
    s_plain(&b, sql);
    /* Registered once the table exists; prepared on the live connection right away. */
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, payload) VALUES ($1, $2)", table);
    db_conn_prepare(b.conn, "bench_ins", sql, 2);
    const int sizes[] = {1, 10, 100, 1000};
    const long totals[] = {4000, 20000, 50000, 100000};
    const int depths[] = {1, 2, 4, 8};
    printf("| rows/batch | 1 in flight | 2 in flight | 4 in flight | 8 in flight |\n");
    printf("|---|---|---|---|---|\n");
    for (int s = 0; s < 4 && !util_interrupted; s++) {
        printf("| %d |", sizes[s]);
        for (int d = 0; d < 4; d++) {
            printf(" %.0f |", s_measure(&b, table, sizes[s], depths[d], totals[s]));
            fflush(stdout);
        }
        printf("\n");
    }
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    s_plain(&b, sql);
    db_conn_destroy(&b.conn);
    zloop_destroy(&b.loop);
    return 0;
}
