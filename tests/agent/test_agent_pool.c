/*  test_agent_pool — the worker pool: work on workers, completions on the
    loop thread inside a running zloop, the bounded queue, resubmission from
    a completion, and destroy with work still queued (cancelled). */
#include "node/agent/agent_pool.h"
#include "node/agent/agent_tools.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Shared by the jobs of one test. */
typedef struct {
    pthread_t loop_thread; /* the thread running the zloop */
    int gate[2];           /* blocking jobs read one byte from gate[0] */
    atomic_int started;    /* work functions entered */
    int done;              /* done callbacks (loop thread only) */
    int cancelled;         /* done callbacks with cancelled == true */
    int wrong_thread;      /* callbacks on the wrong thread */
    int target;            /* the loop stops once done reaches it */
    agent_pool_t *pool;    /* for resubmission */
    int chain;             /* resubmissions left */
} state_t;

/* One submitted job. */
typedef struct {
    state_t *s;       /* shared state */
    bool block;       /* wait for a gate byte */
    bool ran;         /* work_fn ran */
    pthread_t worker; /* thread that ran work_fn */
} job_t;

static void s_work(void *arg)
{
    job_t *job = arg;
    atomic_fetch_add(&job->s->started, 1);
    job->worker = pthread_self();
    /* No Criterion asserts off the test's own thread: record and check later. */
    char c;
    job->ran = !job->block || read(job->s->gate[0], &c, 1) == 1;
}

static void s_done(void *arg, bool cancelled)
{
    job_t *job = arg;
    state_t *s = job->s;
    if (!pthread_equal(pthread_self(), s->loop_thread)) {
        s->wrong_thread++;
    }
    if (job->ran && pthread_equal(job->worker, s->loop_thread)) {
        s->wrong_thread++;
    }
    s->done++;
    s->cancelled += cancelled;
    if (cancelled) {
        cr_assert_not(job->ran, "a cancelled job must not have run");
    }
}

static job_t *s_job(state_t *s, bool block)
{
    job_t *job = calloc(1, sizeof *job);
    cr_assert_not_null(job);
    job->s = s;
    job->block = block;
    return job;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    state_t *s = arg;
    return s->done >= s->target ? -1 : 0;
}

static int s_on_guard(zloop_t *loop, int timer_id, void *arg)
{
    return -1;
}

/* Runs loop until s->done reaches target (or 5 s pass). */
static void s_run_until(zloop_t *loop, state_t *s, int target)
{
    s->target = target;
    int tick = zloop_timer(loop, 5, 0, s_on_tick, s);
    int guard = zloop_timer(loop, 5000, 1, s_on_guard, s);
    zloop_start(loop);
    zloop_timer_end(loop, tick);
    zloop_timer_end(loop, guard);
}

static void s_state_init(state_t *s)
{
    memset(s, 0, sizeof *s);
    s->loop_thread = pthread_self();
    cr_assert_eq(pipe(s->gate), 0);
}

Test(agent_pool, completions_run_on_the_loop_thread, .timeout = 10)
{
    state_t s;
    s_state_init(&s);
    zloop_t *loop = zloop_new();
    agent_pool_t *pool = agent_pool_new(loop, 3, 100);
    cr_assert_not_null(pool);
    cr_assert_eq(agent_pool_workers(pool), 3);
    job_t *jobs[50];
    for (int i = 0; i < 50; i++) {
        jobs[i] = s_job(&s, false);
        cr_assert_eq(agent_pool_submit(pool, s_work, s_done, jobs[i]), 0);
    }
    s_run_until(loop, &s, 50);
    cr_assert_eq(s.done, 50);
    cr_assert_eq(s.cancelled, 0);
    cr_assert_eq(s.wrong_thread, 0);
    for (int i = 0; i < 50; i++) {
        cr_assert(jobs[i]->ran);
        free(jobs[i]);
    }
    cr_assert_eq(agent_pool_outstanding(pool), 0);
    agent_pool_destroy(&pool);
    cr_assert_null(pool);
    agent_pool_destroy(&pool); /* safe twice */
    zloop_destroy(&loop);
}

Test(agent_pool, bounded_queue_refuses_when_full, .timeout = 10)
{
    state_t s;
    s_state_init(&s);
    zloop_t *loop = zloop_new();
    agent_pool_t *pool = agent_pool_new(loop, 1, 3);
    job_t *a = s_job(&s, true), *b = s_job(&s, false), *c = s_job(&s, false);
    job_t *d = s_job(&s, false);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, a), 0);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, b), 0);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, c), 0);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, d), -1, "a full queue refuses");
    cr_assert_eq(agent_pool_outstanding(pool), 3);
    cr_assert_eq(write(s.gate[1], "x", 1), 1);
    s_run_until(loop, &s, 3);
    cr_assert_eq(s.done, 3);
    cr_assert_eq(agent_pool_outstanding(pool), 0);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, d), 0, "room again once delivered");
    s_run_until(loop, &s, 4);
    cr_assert_eq(s.done, 4);
    cr_assert_eq(s.wrong_thread, 0);
    agent_pool_destroy(&pool);
    zloop_destroy(&loop);
    free(a), free(b), free(c), free(d);
}

static void *s_open_gate_later(void *arg)
{
    state_t *s = arg;
    usleep(200 * 1000);
    return (void *)(intptr_t)write(s->gate[1], "x", 1);
}

Test(agent_pool, destroy_cancels_queued_work, .timeout = 10)
{
    state_t s;
    s_state_init(&s);
    zloop_t *loop = zloop_new();
    agent_pool_t *pool = agent_pool_new(loop, 1, 10);
    job_t *running = s_job(&s, true);
    cr_assert_eq(agent_pool_submit(pool, s_work, s_done, running), 0);
    for (int i = 0; i < 200 && atomic_load(&s.started) == 0; i++) {
        usleep(10 * 1000);
    }
    cr_assert_eq(atomic_load(&s.started), 1);
    job_t *queued[4];
    for (int i = 0; i < 4; i++) {
        queued[i] = s_job(&s, false);
        cr_assert_eq(agent_pool_submit(pool, s_work, s_done, queued[i]), 0);
    }
    pthread_t opener;
    pthread_create(&opener, NULL, s_open_gate_later, &s);
    /* Destroy waits for the running job, then cancels the queued ones. */
    agent_pool_destroy(&pool);
    cr_assert_null(pool);
    void *wrote = NULL;
    pthread_join(opener, &wrote);
    cr_assert_eq((intptr_t)wrote, 1);
    cr_assert(running->ran);
    cr_assert_eq(s.done, 5);
    cr_assert_eq(s.cancelled, 4);
    cr_assert_eq(s.wrong_thread, 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_not(queued[i]->ran);
        free(queued[i]);
    }
    free(running);
    zloop_destroy(&loop);
}

static void s_done_resubmit(void *arg, bool cancelled)
{
    job_t *job = arg;
    state_t *s = job->s;
    s_done(arg, cancelled);
    job->ran = false;
    if (s->chain-- > 0) {
        cr_assert_eq(agent_pool_submit(s->pool, s_work, s_done_resubmit, job), 0);
    }
}

Test(agent_pool, done_callback_may_submit_again, .timeout = 10)
{
    state_t s;
    s_state_init(&s);
    zloop_t *loop = zloop_new();
    s.pool = agent_pool_new(loop, 2, 1);
    s.chain = 9;
    job_t *job = s_job(&s, false);
    cr_assert_eq(agent_pool_submit(s.pool, s_work, s_done_resubmit, job), 0);
    s_run_until(loop, &s, 10);
    cr_assert_eq(s.done, 10);
    cr_assert_eq(s.wrong_thread, 0);
    agent_pool_destroy(&s.pool);
    free(job);
    zloop_destroy(&loop);
}

Test(agent_pool, defaults_and_caps, .timeout = 10)
{
    zloop_t *loop = zloop_new();
    agent_pool_t *pool = agent_pool_new(loop, 0, 0);
    cr_assert_eq(agent_pool_workers(pool), AGENT_POOL_DEFAULT_WORKERS);
    agent_pool_destroy(&pool);
    pool = agent_pool_new(loop, 1000, 1);
    cr_assert_eq(agent_pool_workers(pool), AGENT_POOL_MAX_WORKERS);
    agent_pool_destroy(&pool);
    cr_assert_null(pool);
    zloop_destroy(&loop);
}

/* A tool call as the node will run it: agent_tool_run on a worker, the
   result handed back on the loop thread. */
typedef struct {
    json_t *args;   /* tool arguments */
    json_t *result; /* set on the worker */
    char *error;    /* set on the worker */
    int rc;         /* agent_tool_run's return */
    bool delivered; /* done_fn ran */
    pthread_t loop; /* the loop thread */
    char dir[64];   /* the tool's worktree: an empty directory of its own */
    bool on_loop;   /* done_fn ran on the loop thread */
} tool_call_t;

static void s_tool_work(void *arg)
{
    tool_call_t *call = arg;
    call->rc = agent_tool_run(call->dir, "bash", call->args, NULL, &call->result, &call->error);
}

static void s_tool_done(void *arg, bool cancelled)
{
    tool_call_t *call = arg;
    call->delivered = !cancelled;
    call->on_loop = pthread_equal(pthread_self(), call->loop);
}

static int s_count_tick(zloop_t *loop, int timer_id, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int s_stop_when_delivered(zloop_t *loop, int timer_id, void *arg)
{
    return ((tool_call_t *)arg)->delivered ? -1 : 0;
}

Test(agent_pool, loop_stays_responsive_while_a_tool_blocks, .timeout = 10)
{
    zloop_t *loop = zloop_new();
    agent_pool_t *pool = agent_pool_new(loop, 2, 8);
    /* Not /tmp itself: the default disk quota (sandbox_disk_mb) measures the
       worktree, and a shared /tmp may be over it. */
    tool_call_t call = {.args = json_pack("{s:s}", "command", "sleep 0.5; echo done"),
                        .loop = pthread_self(),
                        .dir = "/tmp/test_agent_pool.XXXXXX"};
    cr_assert_not_null(mkdtemp(call.dir));
    cr_assert_eq(agent_pool_submit(pool, s_tool_work, s_tool_done, &call), 0);
    int ticks = 0;
    zloop_timer(loop, 10, 0, s_count_tick, &ticks);
    zloop_timer(loop, 5, 0, s_stop_when_delivered, &call);
    zloop_timer(loop, 5000, 1, s_on_guard, NULL);
    zloop_start(loop);
    cr_assert(call.delivered);
    cr_assert(call.on_loop);
    cr_assert_eq(call.rc, 0, "%s", call.error ? call.error : "");
    cr_assert_str_eq(json_string_value(json_object_get(call.result, "stdout")), "done\n");
    cr_assert_geq(ticks, 20, "the loop kept ticking (%d) while bash slept", ticks);
    json_decref(call.result);
    json_decref(call.args);
    agent_pool_destroy(&pool);
    zloop_destroy(&loop);
    rmdir(call.dir);
}
