/*  sse_clients — internal declarations of the SSE load generator
    (bench/sse_clients.c: options, phases, report; bench/sse_conn.c: the
    listener and poster connections on one epoll; bench/ws_conn.c: listeners
    over WebSocket, --ws). Single-threaded. */
#ifndef BICKY_BENCH_SSE_CLIENTS_H
#define BICKY_BENCH_SSE_CLIENTS_H

#include "bench/bc.h"

#define SC_LINE    256        /* SSE line / WebSocket message bytes kept (id and seq come first) */
#define SC_NONE    UINT32_MAX /* no post / no conversation */
#define SC_MAX_SRC 64         /* source addresses */
#define SC_BODY    4096       /* poster: response body bytes kept */
#define SC_RBUF    65536      /* read buffer */
#define SC_PROCS   16         /* --procs at most */

enum { SC_K_OTHER, SC_K_CREATED, SC_K_COMPLETED, SC_K_DELTA };
enum { SC_C_IDLE, SC_C_CONNECTING, SC_C_STREAM, SC_C_CLOSED };
enum { SC_P_DOWN, SC_P_CONNECTING, SC_P_IDLE, SC_P_BUSY };
enum { SC_TAG_CLIENT = 1, SC_TAG_POSTER = 2 };

typedef struct {
    char id[37];           /* conversation UUID */
    uint32_t *posts;       /* indexes of the posts to it, in sending order */
    uint32_t nposts, cap;  /* used / allocated */
    uint32_t ndone;        /* posts whose message.completed the probe saw */
    int64_t last_event_id; /* from GET after the load; -1 unknown, 0 none */
} sc_conv_t;

typedef struct {
    int64_t sent_us; /* request written */
    int64_t ack_us;  /* 202 received (0 = not yet) */
    int64_t done_us; /* message.completed seen by the conversation's probe (0 = not yet) */
    uint32_t conv;   /* conversation index */
    int16_t status;  /* HTTP status, 0 while in flight, -1 connection lost */
} sc_post_t;

typedef struct {
    int fd;               /* socket, -1 when none */
    uint32_t conv;        /* conversation index */
    uint8_t state;        /* SC_C_* */
    uint8_t ev_kind;      /* SC_K_* of the event being parsed */
    uint16_t line_len;    /* bytes in line */
    uint8_t ws_head;      /* --ws: bytes of the head's final CRLFCRLF matched (4: past it) */
    uint8_t ws_hdr_len;   /* --ws: bytes in ws_hdr */
    uint8_t ws_hdr[10];   /* --ws: the frame header being read */
    uint64_t ws_left;     /* --ws: payload bytes of the frame still to come */
    bool probe;           /* first listener of its conversation: matches completions */
    bool ready;           /* ": connected" received */
    int64_t ev_id;        /* id: of the event being parsed (0 = none, e.g. a delta) */
    int64_t ev_seq;       /* seq of the event being parsed (0 = none) */
    int64_t last_seq;     /* seq of the last stored event */
    int64_t max_id;       /* highest event id */
    uint32_t events;      /* stored events received */
    uint32_t deltas;      /* message.delta events received */
    uint32_t gaps;        /* seq not following the previous one */
    uint32_t ncreated;    /* message.created received */
    uint32_t cap_created; /* allocated in created_us */
    int64_t *created_us;  /* arrival time of each message.created */
    bc_http_t http;       /* response parser */
    char line[SC_LINE];   /* SSE line being read (truncated) */
} sc_client_t;

typedef struct {
    int fd;             /* socket, -1 when down */
    uint8_t state;      /* SC_P_* */
    uint32_t post;      /* post in flight, or SC_NONE */
    uint32_t get_conv;  /* GET in flight for this conversation, or SC_NONE */
    bc_http_t http;     /* response parser */
    size_t body_len;    /* bytes in body */
    char body[SC_BODY]; /* response body (truncated) */
} sc_poster_t;

typedef struct {
    const char *url;        /* gateway, http://127.0.0.1:PORT */
    const char *token;      /* bearer token */
    const char *convs_file; /* conversation ids, one a line (fresh ones) */
    const char *sources;    /* comma list of 127.x source addresses */
    const char *samples;    /* prefix of the CDF files to write, or NULL */
    const char *content;    /* message content posted */
    long clients;           /* SSE listeners */
    long nconvs;            /* conversations used (first lines of the file) */
    long rate;              /* posts per second */
    long duration_s;        /* posting time */
    long post_conns;        /* keep-alive connections for posts */
    long connect_parallel;  /* listeners connecting at once */
    long connect_timeout_s; /* give up waiting for listeners after this */
    long settle_s;          /* wait this long for late events */
    long gateway_pid;       /* gateway process for RSS (with its workers), 0 = none */
    long procs;             /* processes sharing the listeners and posts (fd limit) */
    bool ws;                /* listeners over WebSocket (Phoenix v2), not SSE */
} sc_opts_t;

typedef struct {
    sc_opts_t o;                    /* options */
    struct sockaddr_in dst;         /* gateway address */
    struct in_addr src[SC_MAX_SRC]; /* source addresses */
    int nsrc;                       /* count of src (0 = kernel's choice) */
    int ep;                         /* epoll fd */
    char host[64];                  /* Host header value */
    sc_conv_t *convs;               /* conversations */
    size_t nconvs;
    sc_client_t *clients; /* listeners */
    size_t nclients;
    sc_poster_t *posters; /* post connections */
    size_t nposters;
    sc_post_t *posts; /* every post sent */
    size_t nposts, cap_posts;
    size_t next_client;                     /* next listener to start */
    size_t connecting;                      /* started, neither ready nor closed */
    size_t ready;                           /* listeners that got ": connected" */
    size_t closed;                          /* listeners whose connection ended */
    size_t connect_errors;                  /* connects refused by the kernel or the server */
    size_t acked;                           /* posts answered 202 */
    size_t post_errors;                     /* posts answered otherwise, or lost */
    size_t gets_left;                       /* GETs of last_event_id outstanding */
    size_t late_posts;                      /* posts sent ≥ 1 ms after their slot */
    uint32_t rr_conv;                       /* next conversation to post to */
    long rss_start, rss_connected, rss_end; /* gateway RSS, KiB */
    int64_t t_start, t_connected, t_post_start, t_post_end; /* µs */
    long proc;          /* index among --procs children, -1 when alone or the parent */
    int ctl_up;         /* child → parent pipe (phase bytes, then the results), or -1 */
    int ctl_down;       /* parent → child pipe (go-ahead bytes, non-blocking), or -1 */
    int64_t ws_hb_us;   /* --ws: last heartbeat round */
    char rbuf[SC_RBUF]; /* read buffer shared by every connection */
} sc_t;

/* sse_conn.c */
/* Starts connecting listener i (state CONNECTING); on failure it is CLOSED. */
void sc_client_start(sc_t *sc, size_t i);
/* Handles epoll events of listener i. */
void sc_client_io(sc_t *sc, size_t i, uint32_t events);
/* Connects poster i (state CONNECTING; IDLE once writable). */
void sc_poster_start(sc_t *sc, size_t i);
/* Handles epoll events of poster i. */
void sc_poster_io(sc_t *sc, size_t i, uint32_t events);
/* Posts a message to conversation conv on an idle poster; -1 when none is idle. */
int sc_post(sc_t *sc, uint32_t conv);
/* GETs conversation conv (its last_event_id) on an idle poster; -1 when none is idle. */
int sc_get_conv(sc_t *sc, uint32_t conv);

/* sse_report.c */
/* True when listener c is connected and got every stored event of its conversation. */
bool sc_client_complete(const sc_t *sc, const sc_client_t *c);
/* Computes the latencies and checks, prints the SSE_JSON line, writes the CDF files. */
void sc_report(sc_t *sc);
/* --procs child: writes its counts and raw samples to fd; -1 on a write error. */
int sc_report_send(sc_t *sc, int fd);
/* --procs parent: reads every child's results from fds, merges them (sums,
   percentiles over all samples), prints the SSE_JSON line and the CDF files
   like sc_report, with the RSS figures of sc. -1 when a child's data is short. */
int sc_report_merge(sc_t *sc, const int *fds, long n);

/* Accounts the event parsed into c's ev_* fields (sse_conn.c). */
void sc_client_event(sc_t *sc, sc_client_t *c);

/* --ws (ws_conn.c): the upgrade request and join frame of listener c into out;
   its length, or -1 when it does not fit. */
int sc_ws_request(sc_t *sc, const sc_client_t *c, char *out, size_t cap);
/* Feeds n received bytes of listener c; -1 when the socket must close (not
   upgraded, or the server closed). */
int sc_ws_feed(sc_t *sc, sc_client_t *c, const char *p, size_t n);
/* Sends a heartbeat on every ready listener, at most every 20 s. */
void sc_ws_heartbeats(sc_t *sc);

#endif
