/*  node — a Bicky node: one zloop hosting one actor per active conversation,
    answering API requests from gateways (ROUTER), publishing events (PUB),
    registered with the registry (DEALER + SUB), writing to Postgres through
    one async pipeline connection with group commit. See docs/node.md.
    A node_t is owned by the thread that created it and runs on that thread. */
#ifndef BICKY_NODE_H
#define BICKY_NODE_H

#include "common/keys.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct {
    const char *id;           /* node id (1..63 chars), stable across restarts */
    const char *registry;     /* comma list of registry ROUTER endpoints */
    const char *bind;         /* ROUTER endpoint for API requests */
    const char *pub_bind;     /* PUB endpoint for events */
    const char *database_url; /* libpq conninfo */
    long weight;              /* ring weight 1..64 */
    long actor_idle_s;        /* passivate an actor after this many idle seconds */
    long mailbox_max;         /* requests waiting per actor */
    long max_actors;          /* resident actors; beyond it new activations get 503 */
    long echo_delay_ms;       /* echo strategy: delay per streamed word */
    long echo_fail_every;     /* echo strategy: every Nth turn fails (0 = never; tests) */
    bool standalone;          /* test/dev only: no registry, own every conversation */
    const struct cfg_file_t *strategies; /* loaded --config; NULL = built-in default (echo) */
    const char *work_dir;           /* tools' per-conversation dirs and worktrees (./var/work) */
    const char *repo;               /* git repository of the worktrees; NULL/"" = none */
    long tool_workers;              /* agent pool threads (tools, git) */
    const char *mcp_permission_bin; /* bicky-mcp-permission; NULL = next to /proc/self/exe */
    const char *metrics_bind;       /* GET /metrics at HOST:PORT; NULL/"" = not served */
    keys_t *keys;                   /* CURVE node key (borrowed); NULL = insecure */
    /* The endpoints others connect to (--advertise, --pub-advertise): tcp://HOST[:PORT];
       NULL/"" = the bound ones, which then must not be wildcards (common/endpoint.h). */
    const char *advertise;
    const char *pub_advertise;
    const char *exec_bin;  /* bicky-exec (children die with the node); NULL = next to the node */
    long db_deadline_ms;   /* Postgres connection lost when sent work hears nothing this long */
    long model_relay_port; /* the claude-code model relay's port on 127.0.0.1; 0 = kernel's */
    const char *sandbox;   /* tools and the CLI in bwrap: "auto" (when found), "on", "off" */
} node_cfg_t;

typedef struct node_t node_t;

/* Checks the bind/advertise pairs (common/endpoint.h): a wildcard --bind or --pub-bind needs
   its --advertise / --pub-advertise. Returns 0, or -1 with the reason in err. Any thread. */
int node_cfg_check_endpoints(const node_cfg_t *cfg, char *err, size_t errlen);

/* Fills cfg with the documented defaults (strings are static). */
void node_cfg_defaults(node_cfg_t *cfg);

/* Creates a node: binds its sockets, starts connecting to Postgres and to the
   registry. cfg is borrowed and must outlive the node. Returns NULL (logged)
   on a bad configuration or a bind failure. */
node_t *node_new(const node_cfg_t *cfg);

/* Destroys the node, nulls *self_p; accepts NULL. Pending database work is
   failed and its requests answered 503 before the sockets close. */
void node_destroy(node_t **self_p);

/* Runs the loop until util_interrupted is set (graceful stop: new requests
   get 503, in-flight commits finish, at most ~4.5 s) or node_stop is called.
   Returns 0 on a clean stop. */
int node_run(node_t *self);

/* Asks a running node to stop gracefully (same path as SIGTERM). Loop thread only. */
void node_stop(node_t *self);

/* zactor body running a node in a thread (tests): args is a node_cfg_t *.
   Signals 0 on the pipe when ready (-1 on failure); stops on "$TERM". */
void node_zactor(zsock_t *pipe, void *args);

#endif
