/*  agent_claude_io — the CLI's pipes on the zloop: stdin written from a
    bounded queue (a POLLOUT poller only while bytes wait), stdout split into
    bounded lines for agent_claude_parse, stderr kept as a short tail for
    error reasons. Handlers check that the fd is still the run's (a stale
    pollset entry may fire once after a poller ends). Loop thread only. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_READ_CHUNK     65536 /* bytes per read(2) */
#define S_READS_PER_WAKE 16    /* reads per handler call, so one run cannot hog the loop */
#define S_DRAIN_READS    1024  /* reads after the exit (64 MiB) */

static void s_poller_end(agent_claude_run_t *run, int fd)
{
    zmq_pollitem_t item = {NULL, fd, 0, 0};
    zloop_poller_end(run->owner->loop, &item);
}

static void s_close(agent_claude_run_t *run, int *fd, bool polled)
{
    if (*fd < 0) {
        return;
    }
    if (polled) {
        s_poller_end(run, *fd);
    }
    close(*fd);
    *fd = -1;
}

static void s_close_stdin(agent_claude_run_t *run)
{
    s_close(run, &run->in_fd, run->in_polled);
    run->in_polled = false;
    run->q_len = run->q_off = 0;
}

/* Writes queued bytes until the pipe is full (or broke: then stdin is closed). */
static void s_flush(agent_claude_run_t *run)
{
    while (run->in_fd >= 0 && run->q_off < run->q_len) {
        ssize_t n = write(run->in_fd, run->q + run->q_off, run->q_len - run->q_off);
        if (n > 0) {
            run->q_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            /* The CLI closed its stdin or died: its exit tells the rest. */
            LOG_I("claude stdin closed pid=%d: %s", (int)run->pid, strerror(errno));
            s_close_stdin(run);
            return;
        }
    }
    run->q_len = run->q_off = 0;
    if (run->in_polled) {
        s_poller_end(run, run->in_fd);
        run->in_polled = false;
    }
    if (run->close_in_after_flush) {
        s_close_stdin(run);
    }
}

static int s_on_stdin(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_claude_run_t *run = arg;
    if (run->in_fd != item->fd || !run->in_polled) {
        return 0;
    }
    s_flush(run);
    return 0;
}

static int s_want_pollout(agent_claude_run_t *run)
{
    if (run->in_polled || run->q_off >= run->q_len) {
        return 0;
    }
    zmq_pollitem_t item = {NULL, run->in_fd, ZMQ_POLLOUT, 0};
    if (zloop_poller(run->owner->loop, &item, s_on_stdin, run) != 0) {
        return -1;
    }
    zloop_poller_set_tolerant(run->owner->loop, &item);
    run->in_polled = true;
    return 0;
}

int agent_claude_io_send(agent_claude_run_t *run, const char *line)
{
    size_t len = strlen(line);
    if (run->in_fd < 0 || run->close_in_after_flush) {
        return -1;
    }
    if (run->q_off > 0) {
        memmove(run->q, run->q + run->q_off, run->q_len - run->q_off);
        run->q_len -= run->q_off;
        run->q_off = 0;
    }
    if (run->q_len + len + 1 > AGENT_CLAUDE_MAX_QUEUE) {
        return -1;
    }
    if (run->q_len + len + 1 > run->q_cap) {
        size_t cap = run->q_cap ? run->q_cap : 4096;
        while (cap < run->q_len + len + 1) {
            cap *= 2;
        }
        char *q = realloc(run->q, cap);
        if (!q) {
            return -1;
        }
        run->q = q;
        run->q_cap = cap;
    }
    memcpy(run->q + run->q_len, line, len);
    run->q[run->q_len + len] = '\n';
    run->q_len += len + 1;
    s_flush(run);
    return run->in_fd >= 0 ? s_want_pollout(run) : 0;
}

void agent_claude_io_close_stdin(agent_claude_run_t *run)
{
    run->close_in_after_flush = true;
    if (run->in_fd >= 0 && run->q_off >= run->q_len) {
        s_close_stdin(run);
    }
}

/* Splits complete lines off the buffer and parses them. A line over the
   bound fails the run. Stops as soon as the run is finished. */
static void s_process_lines(agent_claude_run_t *run, bool at_eof)
{
    size_t start = 0;
    while (!run->finished) {
        char *nl = memchr(run->line + run->line_scan, '\n', run->line_len - run->line_scan);
        size_t end = nl ? (size_t)(nl - run->line) : run->line_len;
        if (!nl && !(at_eof && end > start)) {
            run->line_scan = run->line_len;
            break;
        }
        char err[AGENT_CLAUDE_REASON_MAX] = "";
        size_t len = end - start;
        if (len > run->max_line) {
            snprintf(err, sizeof err, "claude output line longer than %zu bytes", run->max_line);
        } else if (agent_claude_parse_line(run, run->line + start, len, err, sizeof err) < 0 &&
                   !err[0]) {
            snprintf(err, sizeof err, "malformed claude output line");
        }
        start = nl ? end + 1 : end;
        run->line_scan = start;
        if (err[0]) {
            agent_claude_fail(run, err);
        }
    }
    if (run->finished) {
        run->line_len = run->line_scan = 0;
        return;
    }
    memmove(run->line, run->line + start, run->line_len - start);
    run->line_len -= start;
    run->line_scan -= start;
    if (run->line_len > run->max_line) {
        char err[128];
        snprintf(err, sizeof err, "claude output line longer than %zu bytes", run->max_line);
        agent_claude_fail(run, err);
    }
}

static int s_grow_line(agent_claude_run_t *run)
{
    if (run->line_cap - run->line_len >= S_READ_CHUNK) {
        return 0;
    }
    size_t cap = run->line_cap ? run->line_cap * 2 : 2 * S_READ_CHUNK;
    while (cap - run->line_len < S_READ_CHUNK) {
        cap *= 2;
    }
    char *line = realloc(run->line, cap);
    if (!line) {
        return -1;
    }
    run->line = line;
    run->line_cap = cap;
    return 0;
}

/* Reads stdout (at most max_reads times). Returns 1 at EOF, 2 when the pipe
   is empty, 0 otherwise. */
static int s_read_stdout(agent_claude_run_t *run, int max_reads)
{
    for (int i = 0; i < max_reads && run->out_fd >= 0 && !run->finished; i++) {
        if (s_grow_line(run) < 0) {
            agent_claude_fail(run, "out of memory reading claude output");
            return 0;
        }
        ssize_t n = read(run->out_fd, run->line + run->line_len, run->line_cap - run->line_len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return 2;
        }
        if (n <= 0) {
            s_process_lines(run, true);
            s_close(run, &run->out_fd, true);
            return 1;
        }
        run->line_len += (size_t)n;
        s_process_lines(run, false);
    }
    return 0;
}

/* After the run finished (cancelled or failed) the CLI may still write while
   it stops: read and drop, so it never blocks on a full pipe. */
static void s_discard_stdout(agent_claude_run_t *run)
{
    char buf[S_READ_CHUNK];
    for (int i = 0; i < S_READS_PER_WAKE && run->out_fd >= 0; i++) {
        ssize_t n = read(run->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            s_close(run, &run->out_fd, true);
            return;
        }
    }
}

static int s_on_stdout(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_claude_run_t *run = arg;
    if (run->out_fd != item->fd) {
        return 0;
    }
    if (run->finished) {
        s_discard_stdout(run);
    } else {
        s_read_stdout(run, S_READS_PER_WAKE);
    }
    return 0;
}

static void s_read_stderr(agent_claude_run_t *run, int max_reads)
{
    char buf[4096];
    for (int i = 0; i < max_reads && run->err_fd >= 0; i++) {
        ssize_t n = read(run->err_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            s_close(run, &run->err_fd, true);
            return;
        }
        for (ssize_t k = 0; k < n; k++) {
            run->err_tail[run->err_total++ % AGENT_CLAUDE_ERR_TAIL] = buf[k];
        }
        LOG_D("claude stderr pid=%d bytes=%zd", (int)run->pid, n);
    }
}

static int s_on_stderr(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_claude_run_t *run = arg;
    if (run->err_fd != item->fd) {
        return 0;
    }
    s_read_stderr(run, S_READS_PER_WAKE);
    return 0;
}

static int s_on_pidfd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_claude_run_t *run = arg;
    if (run->pidfd != item->fd || run->exited) {
        return 0;
    }
    agent_claude_reap(run);
    return 0;
}

static int s_add_reader(agent_claude_run_t *run, int fd, zloop_fn *handler)
{
    zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
    if (zloop_poller(run->owner->loop, &item, handler, run) != 0) {
        return -1;
    }
    zloop_poller_set_tolerant(run->owner->loop, &item);
    return 0;
}

int agent_claude_io_attach(agent_claude_run_t *run)
{
    if (s_add_reader(run, run->out_fd, s_on_stdout) < 0 ||
        s_add_reader(run, run->err_fd, s_on_stderr) < 0) {
        return -1;
    }
    if (run->pidfd >= 0 && s_add_reader(run, run->pidfd, s_on_pidfd) < 0) {
        close(run->pidfd);
        run->pidfd = -1; /* the tick polls with WNOHANG instead */
    }
    return 0;
}

void agent_claude_io_drain(agent_claude_run_t *run)
{
    /* The process is gone, so what it wrote is already in the pipes: read
       until EAGAIN (a grandchild may still hold the write end) or EOF, with
       a bound in case such a grandchild keeps writing. */
    for (int i = 0; i < S_DRAIN_READS && run->out_fd >= 0 && !run->finished; i++) {
        if (s_read_stdout(run, 1) != 0) {
            break;
        }
    }
    if (!run->finished && run->line_len > 0) {
        s_process_lines(run, true);
    }
    s_read_stderr(run, 64);
}

void agent_claude_io_close_pipes(agent_claude_run_t *run)
{
    s_close_stdin(run);
    s_close(run, &run->out_fd, true);
    s_close(run, &run->err_fd, true);
}

void agent_claude_io_close_pidfd(agent_claude_run_t *run)
{
    s_close(run, &run->pidfd, true);
}

void agent_claude_io_err_tail(const agent_claude_run_t *run, char *out, size_t outlen)
{
    size_t n = run->err_total < AGENT_CLAUDE_ERR_TAIL ? run->err_total : AGENT_CLAUDE_ERR_TAIL;
    size_t first = run->err_total - n, o = 0;
    if (outlen == 0) {
        return;
    }
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)run->err_tail[(first + i) % AGENT_CLAUDE_ERR_TAIL];
        out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = '\0';
}
