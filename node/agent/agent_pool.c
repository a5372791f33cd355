/*  agent_pool — fixed worker threads, one mutex-protected job queue and one
    list of finished jobs. A worker that finishes a job moves it to the
    finished list and bumps an eventfd; the zloop wakes on that fd and calls
    the done callbacks on the loop thread. Nothing else is shared. */
#define LOG_MODULE "agent_pool"
#include "node/agent/agent_pool.h"
#include "common/log.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct agent_job_t {
    agent_pool_work_fn *work_fn; /* runs on a worker */
    agent_pool_done_fn *done_fn; /* runs on the loop thread */
    void *arg;                   /* the submitter's, never touched here */
    struct agent_job_t *next;    /* next job in whichever list holds it */
} agent_job_t;

typedef struct {
    agent_job_t *head; /* oldest job */
    agent_job_t *tail; /* newest job */
} agent_job_list_t;

struct agent_pool_t {
    zloop_t *loop;          /* borrowed; the completion fd is registered on it */
    zmq_pollitem_t item;    /* poll item of efd */
    bool registered;        /* item is registered with loop */
    int efd;                /* eventfd written by workers, read by the loop */
    pthread_t *threads;     /* nthreads workers */
    int nthreads;           /* workers started (joined at destroy) */
    pthread_mutex_t mutex;  /* guards everything below */
    pthread_cond_t cond;    /* signalled on new work and on stop */
    agent_job_list_t queue; /* waiting for a worker */
    agent_job_list_t done;  /* finished, waiting for the loop */
    size_t outstanding;     /* submitted and done_fn not yet called */
    size_t max_queue;       /* bound on outstanding */
    bool stopping;          /* destroy started: workers exit, submit refuses */
};

static void s_list_push(agent_job_list_t *list, agent_job_t *job)
{
    job->next = NULL;
    if (list->tail) {
        list->tail->next = job;
    } else {
        list->head = job;
    }
    list->tail = job;
}

static agent_job_t *s_list_pop(agent_job_list_t *list)
{
    agent_job_t *job = list->head;
    if (job) {
        list->head = job->next;
        if (!list->head) {
            list->tail = NULL;
        }
        job->next = NULL;
    }
    return job;
}

/* Takes the whole list, leaving it empty. */
static agent_job_t *s_list_take(agent_job_list_t *list)
{
    agent_job_t *head = list->head;
    list->head = NULL;
    list->tail = NULL;
    return head;
}

static void s_wake_loop(agent_pool_t *self)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
    while (write(self->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void *s_worker(void *arg)
{
    agent_pool_t *self = arg;
    pthread_mutex_lock(&self->mutex);
    while (true) {
        while (!self->stopping && !self->queue.head) {
            pthread_cond_wait(&self->cond, &self->mutex);
        }
        if (self->stopping) {
            break;
        }
        agent_job_t *job = s_list_pop(&self->queue);
        pthread_mutex_unlock(&self->mutex);
        job->work_fn(job->arg);
        pthread_mutex_lock(&self->mutex);
        s_list_push(&self->done, job);
        s_wake_loop(self);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

/* Calls done_fn for every job of the chain and frees them. The outstanding
   count drops before each callback so that a callback may submit again. */
static void s_deliver(agent_pool_t *self, agent_job_t *chain, bool cancelled)
{
    while (chain) {
        agent_job_t *job = chain;
        chain = chain->next;
        pthread_mutex_lock(&self->mutex);
        self->outstanding--;
        pthread_mutex_unlock(&self->mutex);
        job->done_fn(job->arg, cancelled);
        free(job);
    }
}

static int s_on_completion(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_pool_t *self = arg;
    uint64_t count;
    while (read(self->efd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&self->mutex);
    agent_job_t *chain = s_list_take(&self->done);
    pthread_mutex_unlock(&self->mutex);
    s_deliver(self, chain, false);
    return 0;
}

/* Starts the workers with every signal blocked, so that process signals land
   on the loop thread and never interrupt a worker's system calls. */
static int s_start_workers(agent_pool_t *self, int workers)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < workers; i++) {
        rc = pthread_create(&self->threads[i], NULL, s_worker, self);
        if (rc != 0) {
            LOG_E("cannot start worker thread: err=%d", rc);
            break;
        }
        self->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

agent_pool_t *agent_pool_new(zloop_t *loop, int workers, size_t max_queue)
{
    assert(loop);
    if (workers <= 0) {
        workers = AGENT_POOL_DEFAULT_WORKERS;
    }
    if (workers > AGENT_POOL_MAX_WORKERS) {
        workers = AGENT_POOL_MAX_WORKERS;
    }
    agent_pool_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = loop;
    self->max_queue = max_queue ? max_queue : AGENT_POOL_DEFAULT_QUEUE;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->threads = calloc((size_t)workers, sizeof *self->threads);
    if (self->efd < 0 || !self->threads) {
        LOG_E("cannot create the pool: %s", strerror(errno));
        agent_pool_destroy(&self);
        return NULL;
    }
    self->item = (zmq_pollitem_t){.socket = NULL, .fd = self->efd, .events = ZMQ_POLLIN};
    if (zloop_poller(loop, &self->item, s_on_completion, self) != 0) {
        LOG_E("cannot register the pool with the loop");
        agent_pool_destroy(&self);
        return NULL;
    }
    self->registered = true;
    if (s_start_workers(self, workers) != 0) {
        agent_pool_destroy(&self);
        return NULL;
    }
    return self;
}

void agent_pool_destroy(agent_pool_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    agent_pool_t *self = *self_p;
    pthread_mutex_lock(&self->mutex);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    for (int i = 0; i < self->nthreads; i++) {
        pthread_join(self->threads[i], NULL);
    }
    if (self->registered) {
        zloop_poller_end(self->loop, &self->item);
    }
    /* The workers are gone: the lists are ours alone now. */
    s_deliver(self, s_list_take(&self->done), false);
    s_deliver(self, s_list_take(&self->queue), true);
    if (self->efd >= 0) {
        close(self->efd);
    }
    free(self->threads);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mutex);
    free(self);
    *self_p = NULL;
}

int agent_pool_submit(agent_pool_t *self,
                      agent_pool_work_fn *work_fn,
                      agent_pool_done_fn *done_fn,
                      void *arg)
{
    assert(self);
    assert(work_fn);
    assert(done_fn);
    agent_job_t *job = malloc(sizeof *job);
    if (!job) {
        return -1;
    }
    *job = (agent_job_t){.work_fn = work_fn, .done_fn = done_fn, .arg = arg};
    pthread_mutex_lock(&self->mutex);
    if (self->stopping || self->outstanding >= self->max_queue) {
        pthread_mutex_unlock(&self->mutex);
        free(job);
        return -1;
    }
    self->outstanding++;
    s_list_push(&self->queue, job);
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    return 0;
}

size_t agent_pool_outstanding(agent_pool_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->mutex);
    size_t n = self->outstanding;
    pthread_mutex_unlock(&self->mutex);
    return n;
}

int agent_pool_workers(const agent_pool_t *self)
{
    assert(self);
    return self->nthreads;
}
