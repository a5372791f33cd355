/*  keys_internal — the keys_t object and helpers shared by keys.c (files,
    opening) and keys_sock.c (ZAP handler, socket options, peers). */
#ifndef BICKY_KEYS_INTERNAL_H
#define BICKY_KEYS_INTERNAL_H

#include "common/keys.h"

#include <stdint.h>

#define KEYS_PATH_MAX 1024
#define KEYS_BUF_MAX  (KEYS_PATH_MAX + 256) /* a path under the keys directory */

struct keys_t {
    char dir[KEYS_PATH_MAX];      /* the cluster keys directory */
    zcert_t *cert;                /* own certificate, with its secret key */
    keys_role_t role;             /* own role (metadata "role") */
    char name[KEYS_NAME_MAX + 1]; /* own name (metadata "name") */
    char registry_key[41];        /* the registry's public key, "" when none */
    zactor_t *auth;               /* the process's zauth, once keys_serve ran */
};

/* Formats a message into err; returns -1. */
int keys_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True when path exists. */
bool keys_exists(const char *path);
/* Number of certificates in dir/public/registry; the last one's path in path. */
int keys_registry_certs(const char *dir, char *path, size_t pathlen);

#endif
