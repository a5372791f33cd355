/*  agent_http — HTTP client transfers on a zloop through curl's multi socket
    interface: curl's sockets become zloop pollers and its timeout a zloop
    timer, and curl_multi_socket_action runs when either fires, so a transfer
    never blocks the loop (DNS uses curl's threaded resolver). Response bytes
    are handed over as they arrive (for streaming). Every function must be
    called from the thread that runs the zloop, and callbacks run there. */
#ifndef BICKY_AGENT_HTTP_H
#define BICKY_AGENT_HTTP_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct agent_http_t agent_http_t;
typedef struct agent_http_req_t agent_http_req_t;

/* What to send. Everything is copied by agent_http_start. */
typedef struct {
    const char *method;         /* "POST", "GET", … (NULL: POST when body, else GET) */
    const char *url;            /* absolute http(s) URL */
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;           /* request body, or NULL */
    size_t body_len;            /* its length */
    long timeout_ms;            /* overall bound on the transfer; 0 = none */
    long connect_timeout_ms;    /* bound on connecting; 0 = curl's default */
    long stall_s;               /* fail when no byte arrives for this long; 0 = off */
} agent_http_opts_t;

/* How a transfer ended. */
typedef struct {
    int curl_code;     /* CURLcode: 0 on a completed transfer, whatever the status */
    long status;       /* HTTP status, 0 when no response arrived */
    bool timed_out;    /* the overall or the stall timeout fired */
    bool aborted;      /* on_data returned -1 */
    const char *error; /* curl's message when curl_code != 0, else "" (borrowed) */
} agent_http_result_t;

typedef struct {
    /* Response body bytes as they arrive, with the HTTP status already
       known. Return 0 to go on, -1 to abort the transfer (on_done then
       reports aborted). May call agent_http_start/agent_http_cancel. */
    int (*on_data)(void *arg, long status, const char *data, size_t len);
    /* Called exactly once when the transfer ends, unless it was cancelled.
       The request is freed after it returns: do not cancel it from here.
       May start new transfers. Must not destroy the agent_http_t. */
    void (*on_done)(void *arg, const agent_http_result_t *result);
} agent_http_callbacks_t;

/* Creates a client whose transfers run on loop (borrowed: destroy the client
   before the loop, and only after zloop_start has run once or from inside a
   loop handler, because zloop defers timer cancellation until it runs).
   Calls curl_global_init: create the first client on the main thread before
   other threads start. Returns NULL (logged) on failure. */
agent_http_t *agent_http_new(zloop_t *loop);

/* Cancels every transfer (no callbacks), unregisters from the loop and frees
   the client; accepts NULL and nulls the caller's pointer. */
void agent_http_destroy(agent_http_t **self_p);

/* Starts a transfer. cb is copied; arg is the caller's and is passed to the
   callbacks. Returns the request (owned by the client; it is freed after
   on_done or by agent_http_cancel), or NULL (logged) on a bad URL or when out
   of memory. Safe to call from inside callbacks. */
agent_http_req_t *agent_http_start(agent_http_t *self,
                                   const agent_http_opts_t *opts,
                                   const agent_http_callbacks_t *cb,
                                   void *arg);

/* Stops a transfer: no callback runs for it afterwards. Nulls *req_p; accepts
   NULL. Safe from inside any callback, including the request's own on_data
   (the transfer is then torn down once control is back in the loop). */
void agent_http_cancel(agent_http_t *self, agent_http_req_t **req_p);

/* Number of transfers not yet finished or cancelled. */
size_t agent_http_active(const agent_http_t *self);

#endif
