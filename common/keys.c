/*  keys — roles, names, the keys directory (init, add) and opening a
    process's own certificate. The socket side (ZAP handler, CURVE options,
    peers, monitors) is in keys_sock.c. See keys.h for the layout. */
#define LOG_MODULE "keys"
#include "common/keys_internal.h"

#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const s_roles[] = {"none", "registry", "node", "gateway", "admin"};
#define S_NROLES (sizeof s_roles / sizeof s_roles[0])

const char *keys_role_name(keys_role_t role)
{
    return (size_t)role < S_NROLES ? s_roles[role] : "none";
}

keys_role_t keys_role_parse(const char *text)
{
    for (size_t i = 1; text && i < S_NROLES; i++) {
        if (!strcmp(text, s_roles[i])) {
            return (keys_role_t)i;
        }
    }
    return KEYS_ROLE_NONE;
}

bool keys_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KEYS_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    /* "." and ".." would name directories, not files. */
    return strcmp(name, ".") && strcmp(name, "..");
}

bool keys_endpoint_is_local(const char *ep)
{
    if (!ep) {
        return false;
    }
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) {
        return true;
    }
    return !strncmp(ep, "tcp://127.", 10) || !strncmp(ep, "tcp://[::1]:", 12) ||
           !strncmp(ep, "tcp://localhost:", 16);
}

int keys_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* mkdir that accepts an existing directory; then sets mode. */
static int s_mkdir(const char *path, mode_t mode, char *err, size_t errlen)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        return keys_fail(err, errlen, "cannot create %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return keys_fail(err, errlen, "%s exists and is not a directory", path);
    }
    if (chmod(path, mode) < 0) {
        return keys_fail(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
    }
    return 0;
}

int keys_init(const char *dir, char *err, size_t errlen)
{
    char path[KEYS_BUF_MAX];
    if (!dir || !*dir || strlen(dir) > KEYS_PATH_MAX - 200) {
        return keys_fail(err, errlen, "keys directory path is empty or too long");
    }
    if (s_mkdir(dir, 0755, err, errlen) < 0) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/public", dir);
    if (s_mkdir(path, 0755, err, errlen) < 0) {
        return -1;
    }
    for (keys_role_t r = KEYS_ROLE_REGISTRY; r <= KEYS_ROLE_ADMIN; r++) {
        snprintf(path, sizeof path, "%s/public/%s", dir, keys_role_name(r));
        if (s_mkdir(path, 0755, err, errlen) < 0) {
            return -1;
        }
    }
    snprintf(path, sizeof path, "%s/secret", dir);
    return s_mkdir(path, 0700, err, errlen);
}

bool keys_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Counts the *.cert files of dir/public/registry and copies the last one's
   path into path. */
int keys_registry_certs(const char *dir, char *path, size_t pathlen)
{
    char sub[KEYS_BUF_MAX];
    snprintf(sub, sizeof sub, "%s/public/registry", dir);
    DIR *d = opendir(sub);
    if (!d) {
        return 0;
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".cert")) {
            snprintf(path, pathlen, "%s/%s", sub, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

int keys_add(const char *dir,
             keys_role_t role,
             const char *name,
             char *path,
             size_t pathlen,
             char *err,
             size_t errlen)
{
    char pub[KEYS_BUF_MAX], other[KEYS_BUF_MAX];
    if (role == KEYS_ROLE_NONE) {
        return keys_fail(err, errlen, "role must be one of: registry, node, gateway, admin");
    }
    if (!keys_name_valid(name)) {
        return keys_fail(err, errlen, "invalid name '%s': 1..63 characters of A-Z a-z 0-9 . _ : -",
                         name ? name : "");
    }
    if (!dir || strlen(dir) > KEYS_PATH_MAX - 200) {
        return keys_fail(err, errlen, "keys directory path is empty or too long");
    }
    snprintf(other, sizeof other, "%s/secret", dir);
    if (!keys_exists(other)) {
        return keys_fail(err, errlen, "%s is not a keys directory (run bickyctl keys init %s)", dir,
                         dir);
    }
    if (role == KEYS_ROLE_REGISTRY && keys_registry_certs(dir, other, sizeof other) > 0) {
        return keys_fail(err, errlen,
                         "the cluster has a registry key already (%s); its registries share it",
                         other);
    }
    snprintf(pub, sizeof pub, "%s/public/%s/%s.cert", dir, keys_role_name(role), name);
    snprintf(path, pathlen, "%s/secret/%s-%s.key", dir, keys_role_name(role), name);
    if (keys_exists(pub) || keys_exists(path)) {
        return keys_fail(err, errlen, "a %s key named %s exists already (%s)", keys_role_name(role),
                         name, pub);
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        return keys_fail(err, errlen, "cannot make a key pair (no CURVE in libzmq?)");
    }
    zcert_set_meta(cert, "role", "%s", keys_role_name(role));
    zcert_set_meta(cert, "name", "%s", name);
    int rc = zcert_save_secret(cert, path) == 0 && chmod(path, 0600) == 0 &&
                     zcert_save_public(cert, pub) == 0
                 ? 0
                 : keys_fail(err, errlen, "cannot write %s or %s: %s", path, pub, strerror(errno));
    zcert_destroy(&cert);
    return rc;
}

/* ---- opening a process's own certificate -------------------------------- */

static int s_check_local(const keys_want_t *want, char *err, size_t errlen)
{
    for (const char *const *list = want->endpoints; list && *list; list++) {
        char *copy = strdup(*list);
        if (!copy) {
            return keys_fail(err, errlen, "out of memory");
        }
        char *save = NULL;
        for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
            if (!keys_endpoint_is_local(ep)) {
                keys_fail(err, errlen,
                          "--insecure refuses endpoint %s: without CURVE only loopback "
                          "(tcp://127.x, tcp://[::1], tcp://localhost), ipc:// and inproc:// "
                          "are allowed; give --cert and --keys",
                          ep);
                free(copy);
                return -1;
            }
        }
        free(copy);
    }
    return 0;
}

/* The secret file must not be readable by group or others (like ssh). */
static int s_check_mode(const char *file, char *err, size_t errlen)
{
    struct stat st;
    if (stat(file, &st) < 0) {
        return keys_fail(err, errlen, "cannot read certificate %s: %s", file, strerror(errno));
    }
    if (st.st_mode & 077) {
        return keys_fail(err, errlen,
                         "secret certificate %s is accessible by others (mode %03o); "
                         "chmod 600 it",
                         file, (unsigned)(st.st_mode & 0777));
    }
    return 0;
}

static bool s_has_secret(zcert_t *cert)
{
    const byte *s = zcert_secret_key(cert);
    for (int i = 0; i < 32; i++) {
        if (s[i]) {
            return true;
        }
    }
    return false;
}

/* Loads and checks the own certificate into self->cert. */
static int
s_load_own(keys_t *self, const keys_cfg_t *cfg, const keys_want_t *want, char *err, size_t errlen)
{
    if (s_check_mode(cfg->cert, err, errlen) < 0) {
        return -1;
    }
    self->cert = zcert_load(cfg->cert);
    if (!self->cert || !s_has_secret(self->cert)) {
        return keys_fail(err, errlen, "%s is not a secret CURVE certificate", cfg->cert);
    }
    self->role = keys_role_parse(zcert_meta(self->cert, "role"));
    const char *name = zcert_meta(self->cert, "name");
    snprintf(self->name, sizeof self->name, "%s", name ? name : "");
    if (self->role != want->role || !keys_name_valid(self->name)) {
        return keys_fail(
            err, errlen, "%s is a %s certificate (name '%s'); %s needs a key of role %s", cfg->cert,
            keys_role_name(self->role), self->name, want->prog, keys_role_name(want->role));
    }
    if (want->name && strcmp(want->name, self->name)) {
        return keys_fail(err, errlen, "%s is the key of %s '%s', not of '%s'", cfg->cert,
                         keys_role_name(self->role), self->name, want->name);
    }
    return 0;
}

/* The own public key must be trusted by the cluster: its copy in public/. */
static int s_check_public(keys_t *self, char *err, size_t errlen)
{
    char pub[KEYS_BUF_MAX];
    snprintf(pub, sizeof pub, "%s/public/%s/%s.cert", self->dir, keys_role_name(self->role),
             self->name);
    zcert_t *copy = zcert_load(pub);
    bool same = copy && !strcmp(zcert_public_txt(copy), zcert_public_txt(self->cert));
    zcert_destroy(&copy);
    if (!same) {
        return keys_fail(err, errlen,
                         "%s does not hold the public key of %s (is --keys the "
                         "cluster's keys directory?)",
                         pub, self->name);
    }
    if (self->role != KEYS_ROLE_REGISTRY) {
        int n = keys_registry_certs(self->dir, pub, sizeof pub);
        if (n > 1) {
            return keys_fail(err, errlen,
                             "%s/public/registry holds %d certificates; a cluster "
                             "has one registry key",
                             self->dir, n);
        }
        zcert_t *reg = n == 1 ? zcert_load(pub) : NULL;
        if (reg) {
            snprintf(self->registry_key, sizeof self->registry_key, "%s", zcert_public_txt(reg));
        }
        zcert_destroy(&reg);
    }
    return 0;
}

int keys_open(
    const keys_cfg_t *cfg, const keys_want_t *want, keys_t **out, char *err, size_t errlen)
{
    *out = NULL;
    bool has_cert = cfg->cert && *cfg->cert, has_keys = cfg->keys && *cfg->keys;
    if (cfg->insecure) {
        /* --insecure wins over keys named (e.g. inherited from the environment). */
        return s_check_local(want, err, errlen);
    }
    if (!has_cert || !has_keys) {
        return keys_fail(err, errlen,
                         "%s refuses to start without keys: give --cert FILE and --keys DIR "
                         "(BICKY_CERT, BICKY_KEYS; make them with bickyctl keys init/add), or "
                         "--insecure on loopback endpoints",
                         want->prog);
    }
    if (!zsys_has_curve()) {
        return keys_fail(err, errlen, "libzmq was built without CURVE");
    }
    if (strlen(cfg->keys) > KEYS_PATH_MAX - 200) {
        return keys_fail(err, errlen, "--keys path is too long");
    }
    keys_t *self = calloc(1, sizeof *self);
    if (!self) {
        return keys_fail(err, errlen, "out of memory");
    }
    snprintf(self->dir, sizeof self->dir, "%s", cfg->keys);
    if (s_load_own(self, cfg, want, err, errlen) < 0 || s_check_public(self, err, errlen) < 0) {
        keys_destroy(&self);
        return -1;
    }
    *out = self;
    return 0;
}

void keys_destroy(keys_t **self_p)
{
    if (self_p && *self_p) {
        keys_t *self = *self_p;
        zactor_destroy(&self->auth);
        zcert_destroy(&self->cert);
        free(self);
        *self_p = NULL;
    }
}

keys_role_t keys_role(const keys_t *self)
{
    return self->role;
}

const char *keys_name(const keys_t *self)
{
    return self->name;
}

const char *keys_public_txt(const keys_t *self)
{
    return zcert_public_txt(self->cert);
}
