/*  agent_relay internals shared by agent_relay.c (daemon, tokens, request
    intake and local answers) and agent_relay_fwd.c (the upstream call with
    libcurl and the streamed answer). A request lives on the libmicrohttpd
    thread of its connection. */
#ifndef BICKY_AGENT_RELAY_INTERNAL_H
#define BICKY_AGENT_RELAY_INTERNAL_H

#include "common/sock_path.h"
#include "node/agent/agent_relay.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define AGENT_RELAY_MAX_URI   8192        /* bytes of a request target */
#define AGENT_RELAY_HIGH_MARK (64 * 1024) /* buffered answer bytes before curl is paused */
#define AGENT_RELAY_BLOCK     (16 * 1024) /* libmicrohttpd's block for the streamed answer */
#define AGENT_RELAY_POLL_MS   500         /* longest wait before the token and stop are checked */

/* One live token. */
typedef struct agent_relay_grant_t {
    struct agent_relay_grant_t *next; /* in the relay's list */
    uint64_t id;                      /* never reused: requests hold it, not the grant */
    char token[AGENT_RELAY_TOKEN_LEN + 1];
    char *upstream;          /* base URL */
    char *key;               /* real key, NULL = none; wiped when freed */
    agent_relay_auth_t auth; /* how the key is sent */
} agent_relay_grant_t;

struct agent_relay_t {
    struct MHD_Daemon *mhd;       /* serving threads */
    struct MHD_Daemon *mhd_unix;  /* the same, on the unix socket (NULL = none) */
    sock_path_t sock;             /* its path ("" = none), in a private dir when long */
    int port;                     /* bound port */
    char url[48];                 /* http://127.0.0.1:PORT */
    size_t max_body;              /* request body bound */
    pthread_mutex_t lock;         /* guards grants and next_id */
    agent_relay_grant_t *grants;  /* live tokens */
    uint64_t next_id;             /* id of the next grant */
    atomic_bool stopping;         /* destroy has begun: requests end */
    bool curl_init;               /* curl_global_init succeeded */
    _Atomic uint64_t n_requests;  /* agent_relay_stats_t */
    _Atomic uint64_t n_forwarded; /* … */
    _Atomic uint64_t n_refused;   /* … */
    _Atomic uint64_t n_rejected;  /* … */
    _Atomic uint64_t n_failed;    /* … */
    _Atomic uint64_t n_aborted;   /* … */
    _Atomic uint64_t n_cut;       /* … */
};

/* One request, from its head to the end of its answer. */
typedef struct {
    agent_relay_t *relay;             /* owner */
    struct MHD_Connection *conn;      /* its connection */
    char *uri;                        /* raw request target (path and query) */
    bool seen;                        /* the access handler ran once */
    bool authorized;                  /* a live token came with the head */
    bool too_big;                     /* the body passed max_body */
    bool post;                        /* POST (else GET) */
    uint64_t grant_id;                /* the token's grant */
    char *upstream, *key;             /* copies of the grant's (key wiped when freed) */
    agent_relay_auth_t auth;          /* of the grant */
    char *body;                       /* request body */
    size_t body_len, body_cap;        /* its length and capacity */
    int client_fd;                    /* the client's socket, watched for a close; -1 = not */
    CURLM *multi;                     /* the upstream call */
    CURL *easy;                       /* … */
    struct curl_slist *req_hdrs;      /* headers sent upstream */
    struct curl_slist *resp_hdrs;     /* "Name: value" lines passed back */
    char *url;                        /* upstream URL */
    long status;                      /* upstream status once the head is complete */
    bool head_done;                   /* the upstream's final head was read */
    bool done;                        /* curl finished the transfer */
    CURLcode result;                  /* its result */
    char errbuf[CURL_ERROR_SIZE];     /* curl's message */
    char *buf;                        /* answer bytes not yet given to libmicrohttpd */
    size_t buf_len, buf_off, buf_cap; /* its length, consumed prefix, capacity */
    bool paused;                      /* curl's writes are paused (buffer full) */
} agent_relay_req_t;

/* agent_relay.c */
/* True while the grant id is live and the relay is not stopping. Any thread. */
bool agent_relay_grant_live(agent_relay_t *self, uint64_t id);

/* agent_relay_fwd.c */
/* Sends r upstream and waits for the head of the answer. Returns 0 with
   r->status and r->resp_hdrs (or r->done with an error and no status: the
   upstream could not be reached), or -1 when the client went away, the
   token died or the relay stops (nothing is answered then). */
int agent_relay_fwd_start(agent_relay_req_t *r);
/* libmicrohttpd's content reader of the streamed answer (cls = r). */
ssize_t agent_relay_fwd_read(void *cls, uint64_t pos, char *out, size_t max);
/* Ends the upstream call (if any) and frees its parts. */
void agent_relay_fwd_close(agent_relay_req_t *r);

#endif
