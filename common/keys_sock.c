/*  keys_sock — the socket side of keys: the process's ZAP handler (czmq's
    zauth actor, one per process because libzmq has one ZAP endpoint per
    context), CURVE options on server and client sockets, the sender of a
    message, and socket monitors that log refused handshakes. keys_serve and
    keys_destroy: the thread that owns keys_t; the rest: the socket owner. */
#define LOG_MODULE "keys"
#include "common/keys_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

int keys_serve(keys_t *self, keys_role_t only)
{
    if (self->auth) {
        return 0;
    }
    char location[KEYS_BUF_MAX];
    if (only == KEYS_ROLE_NONE) {
        snprintf(location, sizeof location, "%s/public", self->dir);
    } else {
        snprintf(location, sizeof location, "%s/public/%s", self->dir, keys_role_name(only));
    }
    /* zauth's certificate store (zcertstore) re-reads the directory when it
       changes, so a key added later is admitted without a restart. */
    self->auth = zactor_new(zauth, NULL);
    if (!self->auth || zstr_sendx(self->auth, "CURVE", location, NULL) < 0 ||
        zsock_wait(self->auth) < 0) {
        LOG_E("cannot start the ZAP handler (zauth) location=%s", location);
        zactor_destroy(&self->auth);
        return -1;
    }
    LOG_N("CURVE on: admitting the certificates in %s; own key role=%s name=%s", location,
          keys_role_name(self->role), self->name);
    return 0;
}

void keys_server(keys_t *self, zsock_t *sock)
{
    zcert_apply(self->cert, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, KEYS_ZAP_DOMAIN);
}

int keys_client(keys_t *self, zsock_t *sock, keys_role_t role, const char *name)
{
    char path[KEYS_BUF_MAX];
    char key[41] = "";
    if (role == KEYS_ROLE_REGISTRY) {
        snprintf(key, sizeof key, "%s", self->registry_key);
        snprintf(path, sizeof path, "%s/public/registry/*.cert", self->dir);
    } else if (keys_name_valid(name)) {
        snprintf(path, sizeof path, "%s/public/%s/%s.cert", self->dir, keys_role_name(role), name);
        zcert_t *cert = zcert_load(path);
        const char *meta_role = cert ? zcert_meta(cert, "role") : NULL;
        const char *meta_name = cert ? zcert_meta(cert, "name") : NULL;
        /* A certificate is trusted for what its metadata says, which must be
           what its place in the directory says. */
        if (cert && keys_role_parse(meta_role) == role && meta_name && !strcmp(meta_name, name)) {
            snprintf(key, sizeof key, "%s", zcert_public_txt(cert));
        }
        zcert_destroy(&cert);
    } else {
        snprintf(path, sizeof path, "(invalid %s name)", keys_role_name(role));
    }
    if (!*key) {
        LOG_E("no trusted public key for %s %s: %s missing or not its certificate",
              keys_role_name(role), name ? name : "", path);
        return -1;
    }
    zcert_apply(self->cert, sock);
    zsock_set_curve_serverkey(sock, key);
    return 0;
}

void keys_peer(zframe_t *frame, keys_peer_t *out)
{
    memset(out, 0, sizeof *out);
    const char *role = frame ? zframe_meta(frame, "role") : NULL;
    const char *name = frame ? zframe_meta(frame, "name") : NULL;
    const char *user = frame ? zframe_meta(frame, "User-Id") : NULL;
    out->role = keys_role_parse(role);
    if (out->role != KEYS_ROLE_NONE && keys_name_valid(name)) {
        snprintf(out->name, sizeof out->name, "%s", name);
    } else {
        out->role = KEYS_ROLE_NONE;
    }
    if (user && strlen(user) == 40) {
        snprintf(out->key, sizeof out->key, "%s", user);
    }
}

/* ---- monitors ----------------------------------------------------------- */

zactor_t *keys_monitor_new(zsock_t *sock)
{
    zactor_t *mon = zactor_new(zmonitor, sock);
    if (!mon) {
        return NULL;
    }
    zstr_sendx(mon, "LISTEN", "HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL",
               "HANDSHAKE_FAILED_AUTH", NULL);
    zstr_send(mon, "START");
    zsock_wait(mon);
    return mon;
}

/* Refusals are rate limited so that a flood of bad handshakes cannot flood
   the log (the same rule as wire.c's bad frames). */
#define S_LOG_BURST 10
static _Thread_local int64_t s_second;
static _Thread_local unsigned s_count, s_suppressed;

static bool s_log_allowed(void)
{
    int64_t now = util_mono_ms() / 1000;
    if (now != s_second) {
        if (s_suppressed) {
            LOG_W("suppressed %u further refused-handshake warnings", s_suppressed);
        }
        s_second = now;
        s_count = 0;
        s_suppressed = 0;
    }
    if (s_count < S_LOG_BURST) {
        s_count++;
        return true;
    }
    s_suppressed++;
    return false;
}

static const char *s_reason(const char *event, long value)
{
    if (!strcmp(event, "HANDSHAKE_FAILED_AUTH")) {
        return value == 400 ? "key not admitted by this socket (ZAP 400)" : "ZAP refused";
    }
    if (!strcmp(event, "HANDSHAKE_FAILED_PROTOCOL")) {
        return value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                   ? "no CURVE key (security mechanism mismatch)"
                   : "protocol error in the handshake";
    }
    return "handshake failed: no CURVE key, or not a ZeroMQ peer";
}

int keys_monitor_log(zactor_t *monitor, const char *what)
{
    char *event = NULL, *value = NULL, *address = NULL;
    if (zstr_recvx(monitor, &event, &value, &address, NULL) < 0 || !event) {
        zstr_free(&event);
        return 0;
    }
    long v = value ? strtol(value, NULL, 10) : 0;
    if (s_log_allowed()) {
        LOG_W("refused a connection socket=%s endpoint=%s reason=\"%s\" event=%s value=%ld", what,
              address ? address : "", s_reason(event, v), event, v);
    }
    zstr_free(&event);
    zstr_free(&value);
    zstr_free(&address);
    return 0;
}
