/*  agent_relay — the model relay's daemon, its tokens and the intake of a
    request: the head is checked for a live token before anything else (no
    token, no body kept, 401 at once), the body is bounded, then the request
    goes upstream (agent_relay_fwd.c). Requests run on libmicrohttpd's
    threads, one per connection; tokens are granted and revoked from the node
    loop under the relay's mutex. See agent_relay.h. */
#define LOG_MODULE "agent_relay"
#include "common/log.h"
#include "node/agent/agent_relay_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- tokens -------------------------------------------------------------------------------- */

static void s_grant_free(agent_relay_grant_t *g)
{
    if (g->key) {
        OPENSSL_cleanse(g->key, strlen(g->key));
    }
    OPENSSL_cleanse(g->token, sizeof g->token);
    free(g->key);
    free(g->upstream);
    free(g);
}

static int s_random_token(char token[AGENT_RELAY_TOKEN_LEN + 1])
{
    unsigned char raw[AGENT_RELAY_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR) {
            return -1;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        token[2 * i] = hex[raw[i] >> 4];
        token[2 * i + 1] = hex[raw[i] & 15];
    }
    token[AGENT_RELAY_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

static bool s_upstream_ok(const char *u)
{
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
        return false;
    }
    for (const char *p = u; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return false;
        }
    }
    return u[strlen(u) - 1] != '/';
}

int agent_relay_grant(agent_relay_t *self,
                      const char *upstream,
                      const char *api_key,
                      agent_relay_auth_t auth,
                      char token[AGENT_RELAY_TOKEN_LEN + 1])
{
    upstream = upstream && *upstream ? upstream : AGENT_RELAY_DEFAULT_URL;
    if (!s_upstream_ok(upstream)) {
        LOG_W("refusing a grant: bad upstream url");
        return -1;
    }
    agent_relay_grant_t *g = calloc(1, sizeof *g);
    if (!g || !(g->upstream = strdup(upstream)) ||
        (api_key && *api_key && !(g->key = strdup(api_key))) || s_random_token(g->token) < 0) {
        if (g) {
            s_grant_free(g);
        }
        LOG_E("cannot make a relay token");
        return -1;
    }
    g->auth = auth;
    memcpy(token, g->token, sizeof g->token);
    pthread_mutex_lock(&self->lock);
    g->id = ++self->next_id;
    g->next = self->grants;
    self->grants = g;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void agent_relay_revoke(agent_relay_t *self, const char *token)
{
    if (!self || !token || strlen(token) != AGENT_RELAY_TOKEN_LEN) {
        return;
    }
    pthread_mutex_lock(&self->lock);
    for (agent_relay_grant_t **pp = &self->grants; *pp; pp = &(*pp)->next) {
        if (CRYPTO_memcmp((*pp)->token, token, AGENT_RELAY_TOKEN_LEN) == 0) {
            agent_relay_grant_t *g = *pp;
            *pp = g->next;
            s_grant_free(g);
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

bool agent_relay_grant_live(agent_relay_t *self, uint64_t id)
{
    if (atomic_load(&self->stopping)) {
        return false;
    }
    bool live = false;
    pthread_mutex_lock(&self->lock);
    for (agent_relay_grant_t *g = self->grants; g && !live; g = g->next) {
        live = g->id == id;
    }
    pthread_mutex_unlock(&self->lock);
    return live;
}

/* The token of a request: x-api-key, else Authorization: Bearer. */
static const char *s_presented(struct MHD_Connection *conn)
{
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
    if (key) {
        return key;
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    return auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
}

/* Looks the presented token up in constant time per grant (every grant is
   compared, so the time does not say how much of a token matched) and copies
   what the request needs. */
static bool s_authorize(agent_relay_t *self, agent_relay_req_t *r)
{
    const char *t = s_presented(r->conn);
    if (!t || strlen(t) != AGENT_RELAY_TOKEN_LEN) {
        return false;
    }
    bool ok = false;
    pthread_mutex_lock(&self->lock);
    agent_relay_grant_t *hit = NULL;
    for (agent_relay_grant_t *g = self->grants; g; g = g->next) {
        if (CRYPTO_memcmp(g->token, t, AGENT_RELAY_TOKEN_LEN) == 0) {
            hit = g;
        }
    }
    if (hit) {
        r->grant_id = hit->id;
        r->auth = hit->auth;
        r->upstream = strdup(hit->upstream);
        r->key = hit->key ? strdup(hit->key) : NULL;
        ok = r->upstream && (r->key || !hit->key);
    }
    pthread_mutex_unlock(&self->lock);
    return ok;
}

/* ---- local answers ------------------------------------------------------------------------- */

/* An error in the Anthropic API's shape, which the CLI shows as it is. */
static enum MHD_Result
s_error(struct MHD_Connection *conn, unsigned status, const char *type, const char *message)
{
    json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type, "message",
                          message);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static bool s_uri_ok(const char *uri)
{
    if (!uri || strncmp(uri, "/v1/", 4) != 0 || strstr(uri, "..")) {
        return false;
    }
    for (const char *p = uri; *p; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void *s_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    agent_relay_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        return NULL;
    }
    r->relay = cls;
    r->conn = conn;
    r->client_fd = -1;
    r->uri = strlen(uri) <= AGENT_RELAY_MAX_URI ? strdup(uri) : NULL;
    return r;
}

static void s_on_completed(void *cls,
                           struct MHD_Connection *conn,
                           void **req_cls,
                           enum MHD_RequestTerminationCode toe)
{
    agent_relay_req_t *r = *req_cls;
    if (!r) {
        return;
    }
    agent_relay_fwd_close(r);
    if (r->key) {
        OPENSSL_cleanse(r->key, strlen(r->key));
    }
    free(r->key);
    free(r->upstream);
    free(r->body);
    free(r->uri);
    free(r);
    *req_cls = NULL;
}

/* First call, the head only: a request without a live token is answered 401
   at once and its body is never kept. */
static enum MHD_Result s_head(agent_relay_t *self, agent_relay_req_t *r)
{
    atomic_fetch_add(&self->n_requests, 1);
    r->seen = true;
    if (!s_authorize(self, r)) {
        atomic_fetch_add(&self->n_refused, 1);
        LOG_I("refused a request without a live run token");
        return s_error(r->conn, MHD_HTTP_UNAUTHORIZED, "authentication_error",
                       "the model relay needs a live run token");
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    r->too_big = cl && strtoull(cl, NULL, 10) > self->max_body;
    return MHD_YES;
}

static void s_take_body(agent_relay_t *self, agent_relay_req_t *r, const char *data, size_t len)
{
    if (r->too_big) {
        return;
    }
    if (r->body_len + len > self->max_body) {
        r->too_big = true;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 64 * 1024;
        while (cap < r->body_len + len) {
            cap *= 2;
        }
        char *b = realloc(r->body, cap);
        if (!b) {
            r->too_big = true; /* refused like an oversized body */
            return;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
}

static enum MHD_Result s_reject(agent_relay_t *self, agent_relay_req_t *r, unsigned status)
{
    atomic_fetch_add(&self->n_rejected, 1);
    LOG_I("rejected a relay request status=%u", status);
    const char *msg = status == MHD_HTTP_CONTENT_TOO_LARGE    ? "request body too large"
                      : status == MHD_HTTP_METHOD_NOT_ALLOWED ? "only GET and POST are relayed"
                                                              : "only /v1/… paths are relayed";
    return s_error(
        r->conn, status,
        status == MHD_HTTP_CONTENT_TOO_LARGE ? "request_too_large" : "invalid_request_error", msg);
}

static enum MHD_Result s_forward(agent_relay_t *self, agent_relay_req_t *r)
{
    /* The upstream may think for minutes: no idle timeout while it does. */
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->client_fd = ci ? ci->connect_fd : -1;
    if (agent_relay_fwd_start(r) < 0) {
        atomic_fetch_add(&self->n_aborted, 1);
        LOG_I("relay request abandoned before its answer");
        return MHD_NO;
    }
    if (!r->head_done) {
        atomic_fetch_add(&self->n_failed, 1);
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof msg, "model relay: upstream unreachable: %s",
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result));
        LOG_W("%s", msg);
        return s_error(r->conn, MHD_HTTP_BAD_GATEWAY, "api_error", msg);
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, AGENT_RELAY_BLOCK, agent_relay_fwd_read, r, NULL);
    if (!resp) {
        return MHD_NO;
    }
    for (struct curl_slist *h = r->resp_hdrs; h; h = h->next) {
        char *colon = strchr(h->data, ':');
        if (colon) {
            *colon = '\0';
            MHD_add_response_header(resp, h->data, colon + 1 + strspn(colon + 1, " \t"));
            *colon = ':';
        }
    }
    atomic_fetch_add(&self->n_forwarded, 1);
    LOG_I("relayed status=%ld", r->status);
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_on_access(void *cls,
                                   struct MHD_Connection *conn,
                                   const char *url,
                                   const char *method,
                                   const char *version,
                                   const char *upload_data,
                                   size_t *upload_data_size,
                                   void **req_cls)
{
    agent_relay_t *self = cls;
    agent_relay_req_t *r = *req_cls;
    if (!r) {
        return MHD_NO; /* out of memory when the head arrived */
    }
    if (!r->seen) {
        return s_head(self, r);
    }
    if (*upload_data_size) {
        s_take_body(self, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->too_big) {
        return s_reject(self, r, MHD_HTTP_CONTENT_TOO_LARGE);
    }
    r->post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (!r->post && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        return s_reject(self, r, MHD_HTTP_METHOD_NOT_ALLOWED);
    }
    if (!s_uri_ok(r->uri)) {
        return s_reject(self, r, MHD_HTTP_NOT_FOUND);
    }
    return s_forward(self, r);
}

/* ---- life ---------------------------------------------------------------------------------- */

/* The same service on a unix socket at path (a stale socket file is replaced), mode
   0600; a path too long for sockaddr_un is replaced by the same name in a private
   directory under /tmp (sock_path.h). A failure is logged and leaves the relay on TCP
   only: a sandboxed CLI, which can reach nothing else, then does not run. */
static void s_listen_unix(agent_relay_t *self, const char *path, unsigned flags, unsigned conns)
{
    sock_path_t *sp = &self->sock;
    if (sock_path_make(sp, path, 0) < 0) {
        LOG_E("model relay: no unix socket, TCP only (sandboxed claude-code turns will fail) "
              "path=%s error=\"%s\"",
              path, strerror(errno));
        return;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sp->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct stat st;
    if (lstat(sp->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(sp->path);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(sp->path, 0600) != 0 ||
        listen(fd, 64) != 0) {
        LOG_E("model relay: cannot listen on a unix socket, TCP only (sandboxed claude-code "
              "turns will fail) path=%s error=\"%s\"",
              sp->path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        sock_path_remove(sp);
        return;
    }
    self->mhd_unix =
        MHD_start_daemon(flags, 0, NULL, NULL, s_on_access, self, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_CONNECTION_LIMIT, conns, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)AGENT_RELAY_IDLE_S, MHD_OPTION_URI_LOG_CALLBACK, s_on_uri, self,
                         MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self, MHD_OPTION_END);
    if (!self->mhd_unix) {
        LOG_E("model relay: cannot serve the unix socket, TCP only (sandboxed claude-code "
              "turns will fail) path=%s",
              sp->path);
        close(fd);
        sock_path_remove(sp);
        return;
    }
    if (sp->dir[0]) {
        LOG_N("model relay listening unix=%s (in a private directory: path=%s is too long for a "
              "unix socket)",
              sp->path, path);
    } else {
        LOG_N("model relay listening unix=%s", sp->path);
    }
}

agent_relay_t *agent_relay_new(const agent_relay_cfg_t *cfg)
{
    agent_relay_cfg_t c = cfg ? *cfg : (agent_relay_cfg_t){0};
    agent_relay_t *self = calloc(1, sizeof *self);
    if (!self || c.port < 0 || c.port > 65535) {
        LOG_E("cannot make the model relay (port %d)", c.port);
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->max_body = c.max_body ? c.max_body : AGENT_RELAY_MAX_BODY;
    self->curl_init = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    self->mhd = MHD_start_daemon(
        flags, (uint16_t)c.port, NULL, NULL, s_on_access, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(c.max_connections ? c.max_connections : AGENT_RELAY_MAX_CONN),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)AGENT_RELAY_IDLE_S, MHD_OPTION_URI_LOG_CALLBACK,
        s_on_uri, self, MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self, MHD_OPTION_END);
    if (!self->curl_init || !self->mhd) {
        LOG_E("cannot start the model relay on 127.0.0.1:%d", c.port);
        agent_relay_destroy(&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : c.port;
    snprintf(self->url, sizeof self->url, "http://127.0.0.1:%d", self->port);
    LOG_N("model relay listening url=%s max_body=%zu", self->url, self->max_body);
    if (c.unix_path && *c.unix_path) {
        s_listen_unix(self, c.unix_path, flags,
                      (unsigned)(c.max_connections ? c.max_connections : AGENT_RELAY_MAX_CONN));
    }
    return self;
}

void agent_relay_destroy(agent_relay_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    agent_relay_t *self = *self_p;
    atomic_store(&self->stopping, true);
    if (self->mhd) {
        MHD_stop_daemon(self->mhd); /* joins the connection threads */
    }
    if (self->mhd_unix) {
        MHD_stop_daemon(self->mhd_unix); /* closes its listening socket */
    }
    sock_path_remove(&self->sock); /* the socket, and its private directory if any */
    while (self->grants) {
        agent_relay_grant_t *g = self->grants;
        self->grants = g->next;
        s_grant_free(g);
    }
    if (self->curl_init) {
        curl_global_cleanup();
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

const char *agent_relay_url(const agent_relay_t *self)
{
    return self->url;
}

int agent_relay_port(const agent_relay_t *self)
{
    return self->port;
}

const char *agent_relay_unix_path(const agent_relay_t *self)
{
    return self->sock.path;
}

size_t agent_relay_live(agent_relay_t *self)
{
    size_t n = 0;
    pthread_mutex_lock(&self->lock);
    for (agent_relay_grant_t *g = self->grants; g; g = g->next) {
        n++;
    }
    pthread_mutex_unlock(&self->lock);
    return n;
}

void agent_relay_stats(agent_relay_t *self, agent_relay_stats_t *out)
{
    *out = (agent_relay_stats_t){
        .requests = atomic_load(&self->n_requests),
        .forwarded = atomic_load(&self->n_forwarded),
        .refused = atomic_load(&self->n_refused),
        .rejected = atomic_load(&self->n_rejected),
        .failed = atomic_load(&self->n_failed),
        .aborted = atomic_load(&self->n_aborted),
        .cut = atomic_load(&self->n_cut),
    };
}
