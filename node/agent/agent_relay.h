/*  agent_relay — the model relay: a loopback HTTP server between the Claude
    Code CLI and the real model API, so that no provider key ever enters the
    CLI's environment, its files or anything its tools can run. Each run gets
    a random token (32 bytes from getrandom, hex) that the CLI sends as its
    key; the relay accepts only live tokens (constant-time compare), swaps the
    token for the run's real key (x-api-key or Authorization: Bearer), forwards
    the request to the run's upstream and streams the answer back as it comes
    (SSE included). Anything without a live token gets 401 and reaches nothing.
    It can also listen on a unix socket (cfg.unix_path): a sandboxed CLI has no
    network of its own and reaches the relay only there, through bicky-fwd.
    Threads: new and destroy on the owner's thread; grant, revoke and the
    getters from any thread (a mutex guards the token table, which the
    serving threads only read). Requests are served on libmicrohttpd's own
    threads (one per connection) that block on libcurl only, never on a
    node loop. */
#ifndef BICKY_AGENT_RELAY_H
#define BICKY_AGENT_RELAY_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_RELAY_TOKEN_LEN   64                  /* hex characters of a run token */
#define AGENT_RELAY_MAX_BODY    (32u * 1024 * 1024) /* default bound on a request body */
#define AGENT_RELAY_MAX_CONN    256                 /* default connection limit (a thread each) */
#define AGENT_RELAY_IDLE_S      60 /* a connection that is not being forwarded may idle this long */
#define AGENT_RELAY_CONNECT_S   30 /* bound on connecting to the upstream */
#define AGENT_RELAY_DEFAULT_URL "https://api.anthropic.com" /* upstream when none is given */

typedef struct agent_relay_t agent_relay_t;

/* How the upstream wants its key. */
typedef enum {
    AGENT_RELAY_AUTH_X_API_KEY = 0, /* x-api-key: KEY (the Anthropic API) */
    AGENT_RELAY_AUTH_BEARER,        /* Authorization: Bearer KEY */
} agent_relay_auth_t;

typedef struct {
    int port;                 /* TCP port on 127.0.0.1; 0 = one the kernel picks */
    size_t max_body;          /* bound on one request body; 0 = AGENT_RELAY_MAX_BODY */
    unsigned max_connections; /* 0 = AGENT_RELAY_MAX_CONN */
    const char *unix_path;    /* also listen on this unix socket (a sandboxed CLI's only way
                                 out, through bicky-fwd); NULL = TCP only. When it is too
                                 long for sockaddr_un, the same name in a private directory
                                 made under /tmp (mode 0700, removed at destroy) instead */
} agent_relay_cfg_t;

/* Counters since start (each request lands in exactly one of the last five). */
typedef struct {
    uint64_t requests;  /* requests whose head was read */
    uint64_t forwarded; /* sent upstream; its status (any) was passed back */
    uint64_t refused;   /* no live token: 401 */
    uint64_t rejected;  /* live token, but a bad request (too large, method, path): 4xx */
    uint64_t failed;    /* live token, upstream unreachable: 502 */
    uint64_t aborted;   /* the client went away or the token died before the answer began */
    uint64_t cut;       /* forwarded answers cut short: client gone, token died, upstream broke */
} agent_relay_stats_t;

/* Starts the relay on 127.0.0.1 (cfg may be NULL: defaults) and logs its
   address. Returns NULL (logged) when the port cannot be bound. */
agent_relay_t *agent_relay_new(const agent_relay_cfg_t *cfg);

/* Stops serving (open connections are closed, upstream calls cancelled),
   forgets every token (keys wiped) and frees. Nulls *self_p; accepts NULL. */
void agent_relay_destroy(agent_relay_t **self_p);

/* Makes a token for one run: requests carrying it go to upstream (an
   http(s) base URL without trailing '/', NULL or "" = AGENT_RELAY_DEFAULT_URL)
   with api_key (NULL or "" = no auth header) sent as auth says. Strings are
   copied. Writes the token (NUL-terminated) to token. Returns 0, or -1 on a
   bad upstream or out of memory. */
int agent_relay_grant(agent_relay_t *self,
                      const char *upstream,
                      const char *api_key,
                      agent_relay_auth_t auth,
                      char token[AGENT_RELAY_TOKEN_LEN + 1]);

/* Kills a token (borrowed): new requests with it get 401 and its requests
   still streaming are cut. A token that is not live is ignored. */
void agent_relay_revoke(agent_relay_t *self, const char *token);

/* The base URL the CLI is given, "http://127.0.0.1:PORT" (valid until destroy). */
const char *agent_relay_url(const agent_relay_t *self);

/* The port it listens on. */
int agent_relay_port(const agent_relay_t *self);

/* The unix socket it also listens on (cfg.unix_path, or its stand-in in a private
   directory when that path is too long), "" when none (valid until destroy). */
const char *agent_relay_unix_path(const agent_relay_t *self);

/* Live tokens. */
size_t agent_relay_live(agent_relay_t *self);

/* A snapshot of the counters into out (caller-owned). */
void agent_relay_stats(agent_relay_t *self, agent_relay_stats_t *out);

#endif
