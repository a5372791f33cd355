/*  bc — small pieces shared by the bench load generators (bench/): an
    incremental HTTP/1.1 response parser (status, Content-Length or chunked
    body), non-blocking TCP connects from a chosen source address, a monotonic
    clock, process RSS, and latency sample sets with percentiles and CDF files.
    Single-threaded helpers without locks; each object belongs to one thread. */
#ifndef BICKY_BENCH_BC_H
#define BICKY_BENCH_BC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- HTTP/1.1 response parser ------------------------------------------------------------ */

#define BC_HTTP_LINE 96 /* header and chunk-size lines are kept up to this (truncated) */

/* Receives body bytes (chunked bodies arrive de-chunked). */
typedef void(bc_body_fn)(void *arg, const char *data, size_t n);

typedef struct {
    uint8_t state;           /* parser state (bc_http.c) */
    uint8_t line_len;        /* bytes kept in line */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool have_length;        /* a Content-Length was given */
    bool close;              /* Connection: close (not to be reused) */
    int status;              /* HTTP status of the response, 0 before the status line */
    int retry_after;         /* Retry-After in seconds, -1 when the response has none */
    int64_t left;            /* body or chunk bytes still to come */
    char line[BC_HTTP_LINE]; /* the line being read (header, chunk size) */
} bc_http_t;

/* Prepares h for the next response (retry_after -1). */
void bc_http_reset(bc_http_t *h);
/* Feeds n received bytes; body bytes go to fn(arg, ...). Returns the bytes consumed
   (fewer than n only when a response ended: *done is then true and the rest
   belongs to the next response), or -1 on a malformed response. */
ssize_t bc_http_feed(bc_http_t *h, const char *p, size_t n, bc_body_fn *fn, void *arg, bool *done);

/* ---- network and clocks ------------------------------------------------------------------ */

/* Monotonic clock in microseconds. */
int64_t bc_now_us(void);
/* Parses "http://A.B.C.D:PORT" (IPv4 loopback only: 127.0.0.0/8) into dst;
   -1 when it is not such a URL. */
int bc_parse_url(const char *url, struct sockaddr_in *dst);
/* Parses a comma list of 127.x.y.z addresses into out (at most cap); returns how
   many, or -1 on a bad or non-loopback address. */
int bc_parse_sources(const char *list, struct in_addr *out, int cap);
/* Opens a non-blocking TCP socket, bound to src when not NULL (port chosen at
   connect time, so every source address has its own ephemeral port range), and
   starts connecting to dst. Returns the fd, or -1 (errno set). */
int bc_tcp_connect(const struct sockaddr_in *dst, const struct in_addr *src, bool nodelay);
/* Writes all of buf to a non-blocking socket that was just found writable or is
   idle (small requests); returns 0, or -1 when the kernel refused part of it. */
int bc_write_all(int fd, const char *buf, size_t n);
/* Resident set size of process pid in KiB (VmRSS), or -1. pid 0 = this process. */
long bc_rss_kb(long pid);
/* RSS of pid plus its direct children (a gateway with --workers), KiB; -1 when
   pid is gone. */
long bc_rss_tree_kb(long pid);
/* Raises RLIMIT_NOFILE's soft limit to at least want (up to the hard limit);
   returns the resulting soft limit. */
long bc_raise_nofile(long want);
/* Reads the conversation ids of path (one UUID a line; other lines skipped)
   into *ids (malloc'd, caller frees), *n their count; -1 on a read or memory
   failure (a message on stderr for the first). */
int bc_load_uuids(const char *path, char (**ids)[37], size_t *n);

/* ---- latency samples --------------------------------------------------------------------- */

typedef struct {
    int64_t *v;  /* values (µs) */
    size_t n;    /* used */
    size_t cap;  /* allocated */
    bool sorted; /* v is sorted ascending */
} bc_samples_t;

/* Appends one value; -1 on OOM. */
int bc_samples_add(bc_samples_t *s, int64_t v);
/* The p-th percentile (0..100, nearest rank); sorts on first use; 0 when empty. */
int64_t bc_samples_pct(bc_samples_t *s, double p);
/* Writes a CDF for gnuplot: lines "<value in ms> <fraction ≤ value>", at most
   points lines (evenly spaced ranks, plus the maximum). 0 or -1 on I/O error. */
int bc_samples_write_cdf(bc_samples_t *s, const char *path, size_t points);
/* Prints {"n":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..,"mean":..} in ms. */
void bc_samples_json(bc_samples_t *s, char *out, size_t cap);
/* Frees the values. */
void bc_samples_free(bc_samples_t *s);

#endif
