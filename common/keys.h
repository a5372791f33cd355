/*  keys — CURVE certificates and the roles bound to them (issue 11). A
    cluster's keys directory holds public/<role>/<name>.cert (every public
    certificate: the trust anchor, copied to every host) and
    secret/<role>-<name>.key (mode 600, in a 700 directory: each host keeps
    only its own). Each certificate carries the metadata `role` and `name`;
    the ZAP handler (czmq's zauth) hands both to libzmq, so every message a
    ROUTER receives says which role and name sent it (keys_peer).
    keys_init/keys_add: any thread. A keys_t belongs to the thread that opened
    it (main), and its sockets to the thread that owns them. */
#ifndef BICKY_KEYS_H
#define BICKY_KEYS_H

#include "common/cfg.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KEYS_ROLE_NONE = 0, /* no key (insecure mode) or unknown */
    KEYS_ROLE_REGISTRY,
    KEYS_ROLE_NODE,
    KEYS_ROLE_GATEWAY,
    KEYS_ROLE_ADMIN,
} keys_role_t;

#define KEYS_NAME_MAX   63 /* like a node id; keeps zauth's 512-byte metadata buffer safe */
#define KEYS_ZAP_DOMAIN "bicky"

/* "registry", "node", "gateway", "admin", or "none". Static string. */
const char *keys_role_name(keys_role_t role);
/* The role named text (not "none"), or KEYS_ROLE_NONE when unknown. */
keys_role_t keys_role_parse(const char *text);
/* True for 1..63 characters of A-Z a-z 0-9 . _ : - (a node id). */
bool keys_name_valid(const char *name);
/* True for the endpoints --insecure may use: tcp://127.x.x.x:…,
   tcp://[::1]:…, tcp://localhost:…, ipc://…, inproc://…. Borrows endpoint. */
bool keys_endpoint_is_local(const char *endpoint);

/* Creates dir, dir/public/<role>/ for every role (755) and dir/secret/ (700).
   Existing directories are kept (safe to run twice). 0, or -1 with a message
   in err. */
int keys_init(const char *dir, char *err, size_t errlen);
/* Makes a new certificate for (role, name) under an initialised dir: the
   public part in public/<role>/<name>.cert, the secret one in
   secret/<role>-<name>.key (600). Refuses a name that exists, a bad name, and
   a second registry key (the registries of a cluster share one). Writes the
   secret file's path into path (pathlen bytes). 0, or -1 with err. */
int keys_add(const char *dir,
             keys_role_t role,
             const char *name,
             char *path,
             size_t pathlen,
             char *err,
             size_t errlen);

/* The security options every daemon and bickyctl take (KEYS_CFG_OPTS adds
   them to a cfg_opt_t table). Strings point into argv/environ. */
typedef struct {
    const char *cert; /* own secret certificate file, or NULL */
    const char *keys; /* cluster keys directory, or NULL */
    bool insecure;    /* run without CURVE (loopback endpoints only) */
} keys_cfg_t;

/* --cert's variable is cert_env: BICKY_CERT for the daemons, BICKY_ADMIN_CERT
   for bickyctl (so that an operator's shell does not hand its admin key to a
   daemon started from it). */
#define KEYS_CFG_OPTS_AS(k, cert_env)                                                              \
    {"--cert",                                                                                     \
     cert_env,                                                                                     \
     CFG_STR,                                                                                      \
     &(k)->cert,                                                                                   \
     0,                                                                                            \
     0,                                                                                            \
     "own secret CURVE certificate (bickyctl keys add; needs --keys)"},                            \
        {"--keys",                                                                                 \
         "BICKY_KEYS",                                                                             \
         CFG_STR,                                                                                  \
         &(k)->keys,                                                                               \
         0,                                                                                        \
         0,                                                                                        \
         "cluster keys directory: the certificates under its public/ are trusted"},                \
    {                                                                                              \
        "--insecure", "BICKY_INSECURE", CFG_BOOL, &(k)->insecure, 0, 0,                            \
            "no CURVE and no roles: refused unless every endpoint is loopback or ipc"              \
    }
#define KEYS_CFG_OPTS(k) KEYS_CFG_OPTS_AS(k, "BICKY_CERT")

typedef struct keys_t keys_t;

/* What keys_open checks. */
typedef struct {
    const char *prog;             /* program name for messages */
    keys_role_t role;             /* the role the own certificate must have */
    const char *name;             /* the name it must have (node id), or NULL: any */
    const char *const *endpoints; /* NULL-terminated comma lists the process binds or
                                     connects to; each must be local with --insecure */
} keys_want_t;

/* Opens a process's security from its options. Without --cert/--keys and
   without --insecure it refuses ("… refuses to start without keys …").
   --insecure (which wins over --cert/--keys): *out = NULL after checking
   every endpoint is local. Keys: the
   own secret certificate is loaded (it must hold a secret key, be mode 600 or
   stricter, have the wanted role and name, and match its public copy in the
   directory); the registry's public key is read when there is one. Returns 0,
   or -1 with a message in err (the caller prints it and exits 2). Main
   thread, before any socket exists. */
int keys_open(
    const keys_cfg_t *cfg, const keys_want_t *want, keys_t **out, char *err, size_t errlen);
/* Stops the ZAP handler, frees everything and nulls *self_p; accepts NULL.
   Call after every server socket is destroyed. */
void keys_destroy(keys_t **self_p);

/* The own certificate's role and name. */
keys_role_t keys_role(const keys_t *self);
const char *keys_name(const keys_t *self);
/* The own public key in Z85 (40 characters). */
const char *keys_public_txt(const keys_t *self);

/* Starts this process's ZAP handler (zauth; one per process, it serves every
   server socket): it admits only the certificates under public/<only>/
   (KEYS_ROLE_NONE: every certificate under public/), re-read when the
   directory changes. Call once, before binding any server socket: with no
   ZAP handler libzmq 4.3 admits any CURVE client. 0 or -1 (logged). */
int keys_serve(keys_t *self, keys_role_t only);
/* Makes sock a CURVE server with the own certificate (before bind). */
void keys_server(keys_t *self, zsock_t *sock);
/* Makes sock a CURVE client with the own certificate, expecting the server
   key of (role, name): the registry key for KEYS_ROLE_REGISTRY (name
   ignored), public/<role>/<name>.cert otherwise. Before connect. 0, or -1
   when that certificate is missing or not what its path says (logged). */
int keys_client(keys_t *self, zsock_t *sock, keys_role_t role, const char *name);

/* Who sent a message: the role and name of its certificate (from the ZAP
   metadata of any frame of it), and its public key (User-Id). Role NONE with
   empty strings for a frame from a socket without CURVE. */
typedef struct {
    keys_role_t role;             /* certificate role */
    char name[KEYS_NAME_MAX + 1]; /* certificate name */
    char key[41];                 /* public key, Z85 */
} keys_peer_t;
void keys_peer(zframe_t *frame, keys_peer_t *out);

/* A socket monitor for a CURVE server socket (zmonitor, an actor): reports
   failed handshakes (no key, a key the ZAP handler refused, garbage). Read it
   on the socket owner's loop with keys_monitor_log. NULL on failure. */
zactor_t *keys_monitor_new(zsock_t *sock);
/* Reads one monitor event and logs it as a warning naming what (the socket),
   at most 10 lines a second per thread. Returns 0. */
int keys_monitor_log(zactor_t *monitor, const char *what);

#endif
