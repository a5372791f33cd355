/*  agent_pool — a small fixed pool of worker threads for blocking work (tool
    calls, libgit2). Work runs on a worker; its completion runs later on the
    loop thread, posted back through an eventfd registered with the zloop.
    Every function here is called from the loop thread that owns the zloop. */
#ifndef BICKY_AGENT_POOL_H
#define BICKY_AGENT_POOL_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define AGENT_POOL_DEFAULT_WORKERS 4
#define AGENT_POOL_MAX_WORKERS     64
#define AGENT_POOL_DEFAULT_QUEUE   64

typedef struct agent_pool_t agent_pool_t;

/* Runs on a worker thread. May block (bounded: tools have timeouts). arg is the
   submitter's; the pool never frees or touches it. */
typedef void(agent_pool_work_fn)(void *arg);
/* Runs on the loop thread after work_fn returned (cancelled == false), or
   without work_fn having run when the pool is destroyed first (cancelled ==
   true). It is called exactly once per accepted submit and is where the
   submitter frees arg. It may call agent_pool_submit. */
typedef void(agent_pool_done_fn)(void *arg, bool cancelled);

/* Creates a pool of `workers` threads (<= 0 gives 4, capped at 64) and
   registers its completion fd with loop (borrowed: destroy the pool before the
   loop). max_queue bounds the outstanding jobs (waiting, running, or finished
   but not yet delivered to done_fn); 0 gives 64. Returns NULL (logged) on
   failure. Worker threads run with every signal blocked. */
agent_pool_t *agent_pool_new(zloop_t *loop, int workers, size_t max_queue);

/* Stops the workers, waits for the jobs that are running to finish, then calls
   done_fn on the loop thread: cancelled == false for jobs that ran, true for
   jobs still waiting (their work_fn never runs). Nulls *self_p; accepts NULL. */
void agent_pool_destroy(agent_pool_t **self_p);

/* Queues work_fn(arg) for a worker; done_fn(arg, cancelled) follows on the loop
   thread. Returns 0, or -1 when max_queue jobs are outstanding or the pool is
   stopping: the job is not taken, arg stays the caller's (answer 503). */
int agent_pool_submit(agent_pool_t *self,
                      agent_pool_work_fn *work_fn,
                      agent_pool_done_fn *done_fn,
                      void *arg);

/* Number of jobs submitted whose done_fn has not been called yet. */
size_t agent_pool_outstanding(agent_pool_t *self);

/* Number of worker threads. */
int agent_pool_workers(const agent_pool_t *self);

#endif
