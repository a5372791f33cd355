/*  agent_http — curl multi on a zloop. curl tells us which sockets to watch
    (CURLMOPT_SOCKETFUNCTION → zloop pollers) and when to call it back
    (CURLMOPT_TIMERFUNCTION → one zloop timer); both end in
    curl_multi_socket_action, after which finished transfers are collected.
    curl forbids adding or removing handles from inside its callbacks, so a
    start or cancel requested from on_data is deferred to a zero-delay timer.
    Loop thread only. */
#define LOG_MODULE "agent_http"
#include "node/agent/agent_http.h"

#include "common/log.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct agent_http_req_t {
    agent_http_t *http;            /* owning client */
    CURL *easy;                    /* the transfer */
    struct curl_slist *headers;    /* request headers (owned) */
    char *body;                    /* request body copy (owned) */
    agent_http_callbacks_t cb;     /* caller's callbacks */
    void *arg;                     /* caller's argument */
    bool attached;                 /* added to the multi handle */
    bool cancelled;                /* no callbacks any more; free when possible */
    bool aborted;                  /* on_data asked to stop */
    long stall_ms;                 /* idle bound, 0 = none */
    int64_t last_ms;               /* when bytes last arrived (or the start) */
    char errbuf[CURL_ERROR_SIZE];  /* curl's message */
    agent_http_req_t *prev, *next; /* every live request of the client */
};

struct agent_http_t {
    zloop_t *loop;          /* borrowed loop */
    CURLM *multi;           /* curl multi handle */
    int timer_id;           /* curl's timeout timer, -1 when none */
    int defer_id;           /* deferred add/cancel timer, -1 when none */
    int watch_id;           /* stall watchdog timer, -1 when none */
    int in_curl;            /* > 0 while curl_multi_socket_action runs */
    agent_http_req_t *reqs; /* live requests (head of the list) */
    size_t active;          /* started, not finished, not cancelled */
    int *fds;               /* sockets with a zloop poller */
    size_t nfds, fds_cap;   /* count and allocation of fds */
    bool global_init;       /* curl_global_init succeeded */
};

#define S_WATCH_MS 100 /* stall watchdog period: the stall bound's precision */

static void s_check_done(agent_http_t *self);
static int s_on_defer(zloop_t *loop, int timer_id, void *arg);
static void s_finish(agent_http_t *self, agent_http_req_t *req, CURLcode code);

/* --- sockets and timers ------------------------------------------------- */

static int s_fd_find(const agent_http_t *self, int fd)
{
    for (size_t i = 0; i < self->nfds; i++) {
        if (self->fds[i] == fd) {
            return (int)i;
        }
    }
    return -1;
}

static void s_fd_forget(agent_http_t *self, int fd)
{
    int i = s_fd_find(self, fd);
    if (i >= 0) {
        zmq_pollitem_t item = {NULL, fd, 0, 0};
        zloop_poller_end(self->loop, &item);
        self->fds[i] = self->fds[--self->nfds];
    }
}

static void s_socket_action(agent_http_t *self, curl_socket_t fd, int flags)
{
    int running = 0;
    self->in_curl++;
    CURLMcode rc = curl_multi_socket_action(self->multi, fd, flags, &running);
    self->in_curl--;
    if (rc != CURLM_OK) {
        LOG_W("curl_multi_socket_action failed: %s", curl_multi_strerror(rc));
    }
    s_check_done(self);
}

static int s_on_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    agent_http_t *self = arg;
    int flags = 0;
    if (item->revents & ZMQ_POLLIN) {
        flags |= CURL_CSELECT_IN;
    }
    if (item->revents & ZMQ_POLLOUT) {
        flags |= CURL_CSELECT_OUT;
    }
    if (item->revents & ZMQ_POLLERR) {
        flags |= CURL_CSELECT_ERR;
    }
    s_socket_action(self, item->fd, flags);
    return 0;
}

static int s_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    agent_http_t *self = userp;
    /* A change of interest is a new poller: zloop pollers are immutable. */
    s_fd_forget(self, fd);
    if (what == CURL_POLL_REMOVE || what == CURL_POLL_NONE) {
        return 0;
    }
    short events = (short)(((what & CURL_POLL_IN) ? ZMQ_POLLIN : 0) |
                           ((what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
    if (self->nfds == self->fds_cap) {
        size_t cap = self->fds_cap ? self->fds_cap * 2 : 16;
        int *fds = realloc(self->fds, cap * sizeof *fds);
        if (!fds) {
            return -1;
        }
        self->fds = fds;
        self->fds_cap = cap;
    }
    zmq_pollitem_t item = {NULL, fd, events, 0};
    if (zloop_poller(self->loop, &item, s_on_fd, self) != 0) {
        LOG_E("cannot register socket fd=%d with the loop", fd);
        return -1;
    }
    /* Errors on the socket are curl's to handle; zloop must not drop it. */
    zloop_poller_set_tolerant(self->loop, &item);
    self->fds[self->nfds++] = fd;
    return 0;
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    agent_http_t *self = arg;
    if (timer_id != self->timer_id) {
        return 0; /* cancelled earlier in this loop pass */
    }
    self->timer_id = -1;
    s_socket_action(self, CURL_SOCKET_TIMEOUT, 0);
    return 0;
}

static int s_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    agent_http_t *self = userp;
    if (self->timer_id >= 0) {
        zloop_timer_end(self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (timeout_ms >= 0) {
        self->timer_id = zloop_timer(self->loop, (size_t)timeout_ms, 1, s_on_timer, self);
        if (self->timer_id < 0) {
            LOG_E("cannot arm the curl timer");
            return -1;
        }
    }
    return 0;
}

static void s_schedule_defer(agent_http_t *self)
{
    if (self->defer_id < 0) {
        self->defer_id = zloop_timer(self->loop, 0, 1, s_on_defer, self);
        if (self->defer_id < 0) {
            LOG_E("cannot arm the deferred-work timer");
        }
    }
}

/* curl's CURLOPT_LOW_SPEED_* averages over several seconds, so a stall would
   be noticed seconds late; this watchdog fails a transfer that received no
   byte for stall_ms, to within S_WATCH_MS. It is a one-shot timer re-armed
   while some transfer has a stall bound. */
static agent_http_req_t *s_find_stalled(agent_http_t *self, int64_t now, bool *any)
{
    for (agent_http_req_t *req = self->reqs; req; req = req->next) {
        if (req->cancelled || req->stall_ms <= 0) {
            continue;
        }
        *any = true;
        if (req->attached && now - req->last_ms >= req->stall_ms) {
            return req;
        }
    }
    return NULL;
}

static int s_on_watch(zloop_t *loop, int timer_id, void *arg);

static void s_arm_watch(agent_http_t *self)
{
    if (self->watch_id < 0) {
        self->watch_id = zloop_timer(self->loop, S_WATCH_MS, 1, s_on_watch, self);
    }
}

static int s_on_watch(zloop_t *loop, int timer_id, void *arg)
{
    agent_http_t *self = arg;
    if (timer_id != self->watch_id) {
        return 0;
    }
    self->watch_id = -1;
    bool any = false;
    agent_http_req_t *req;
    /* Rescan after each failure: its on_done may cancel other transfers. */
    while ((req = s_find_stalled(self, zclock_mono(), &any))) {
        snprintf(req->errbuf, sizeof req->errbuf, "no data received for %ld ms", req->stall_ms);
        s_finish(self, req, CURLE_OPERATION_TIMEDOUT);
        any = false;
    }
    s_find_stalled(self, zclock_mono(), &any);
    if (any) {
        s_arm_watch(self);
    }
    return 0;
}

/* --- requests ------------------------------------------------------------ */

static void s_req_free(agent_http_req_t *req)
{
    agent_http_t *self = req->http;
    if (req->attached) {
        curl_multi_remove_handle(self->multi, req->easy);
    }
    if (req->prev) {
        req->prev->next = req->next;
    } else {
        self->reqs = req->next;
    }
    if (req->next) {
        req->next->prev = req->prev;
    }
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    free(req->body);
    free(req);
}

static int s_attach(agent_http_req_t *req)
{
    CURLMcode rc = curl_multi_add_handle(req->http->multi, req->easy);
    if (rc != CURLM_OK) {
        LOG_E("curl_multi_add_handle failed: %s", curl_multi_strerror(rc));
        return -1;
    }
    req->attached = true;
    return 0;
}

static void s_finish(agent_http_t *self, agent_http_req_t *req, CURLcode code)
{
    if (req->cancelled) {
        s_req_free(req);
        return;
    }
    self->active--;
    long status = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    agent_http_result_t res = {
        .curl_code = (int)code,
        .status = status,
        .timed_out = code == CURLE_OPERATION_TIMEDOUT,
        .aborted = req->aborted,
        .error = code == CURLE_OK ? ""
                 : req->errbuf[0] ? req->errbuf
                                  : curl_easy_strerror(code),
    };
    LOG_D("transfer done status=%ld curl=%d", status, (int)code);
    /* Detach first so that on_done may start transfers on a clean handle set. */
    curl_multi_remove_handle(self->multi, req->easy);
    req->attached = false;
    req->cancelled = true;
    if (req->cb.on_done) {
        req->cb.on_done(req->arg, &res);
    }
    s_req_free(req);
}

static void s_check_done(agent_http_t *self)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv) {
            s_finish(self, (agent_http_req_t *)priv, code);
        }
    }
}

static int s_on_defer(zloop_t *loop, int timer_id, void *arg)
{
    agent_http_t *self = arg;
    if (timer_id != self->defer_id) {
        return 0;
    }
    self->defer_id = -1;
    agent_http_req_t *req = self->reqs, *next;
    for (; req; req = next) {
        next = req->next;
        if (req->cancelled) {
            s_req_free(req);
        } else if (!req->attached && s_attach(req) != 0) {
            /* Report it like any failed transfer. */
            snprintf(req->errbuf, sizeof req->errbuf, "cannot add the transfer");
            s_finish(self, req, CURLE_FAILED_INIT);
        }
    }
    return 0;
}

static size_t s_on_header(char *ptr, size_t size, size_t nmemb, void *userp)
{
    agent_http_req_t *req = userp;
    req->last_ms = zclock_mono();
    return size * nmemb;
}

static size_t s_on_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    agent_http_req_t *req = userp;
    size_t len = size * nmemb;
    req->last_ms = zclock_mono();
    if (req->cancelled) {
        return len ? 0 : 1; /* anything but len aborts the transfer */
    }
    long status = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    if (req->cb.on_data && req->cb.on_data(req->arg, status, ptr, len) != 0) {
        req->aborted = true;
        return len ? 0 : 1;
    }
    return req->cancelled ? (len ? 0 : 1) : len;
}

static struct curl_slist *s_headers(const char *const *headers)
{
    /* No "Expect: 100-continue" round trip before the body. */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; list && headers && headers[i]; i++) {
        struct curl_slist *more = curl_slist_append(list, headers[i]);
        if (!more) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = more;
    }
    return list;
}

static int s_setup_body(agent_http_req_t *req, const agent_http_opts_t *o)
{
    CURL *e = req->easy;
    const char *method = o->method ? o->method : o->body ? "POST" : "GET";
    if (o->body) {
        req->body = malloc(o->body_len + 1);
        if (!req->body) {
            return -1;
        }
        memcpy(req->body, o->body, o->body_len);
        req->body[o->body_len] = '\0';
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    }
    if (!o->body && strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(method, "GET") == 0 && !o->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

static int s_setup(agent_http_req_t *req, const agent_http_opts_t *o)
{
    CURL *e = req->easy;
    if (!(req->headers = s_headers(o->headers)) || s_setup_body(req, o) != 0) {
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)req);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    if (o->timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    }
    if (o->connect_timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
    req->stall_ms = o->stall_s > 0 ? o->stall_s * 1000 : 0;
    req->last_ms = zclock_mono();
    return curl_easy_setopt(e, CURLOPT_URL, o->url) == CURLE_OK ? 0 : -1;
}

agent_http_req_t *agent_http_start(agent_http_t *self,
                                   const agent_http_opts_t *opts,
                                   const agent_http_callbacks_t *cb,
                                   void *arg)
{
    assert(self && opts && cb);
    agent_http_req_t *req = calloc(1, sizeof *req);
    if (!req || !(req->easy = curl_easy_init())) {
        LOG_E("cannot create a transfer: out of memory");
        free(req);
        return NULL;
    }
    req->http = self;
    req->cb = *cb;
    req->arg = arg;
    req->next = self->reqs;
    if (self->reqs) {
        self->reqs->prev = req;
    }
    self->reqs = req;
    if (!opts->url || s_setup(req, opts) != 0) {
        LOG_E("cannot set up a transfer (bad URL or out of memory)");
        s_req_free(req);
        return NULL;
    }
    if (self->in_curl) {
        s_schedule_defer(self);
    } else if (s_attach(req) != 0) {
        s_req_free(req);
        return NULL;
    }
    self->active++;
    if (req->stall_ms > 0) {
        s_arm_watch(self);
    }
    return req;
}

void agent_http_cancel(agent_http_t *self, agent_http_req_t **req_p)
{
    if (!req_p || !*req_p) {
        return;
    }
    agent_http_req_t *req = *req_p;
    *req_p = NULL;
    if (req->cancelled) {
        return;
    }
    req->cancelled = true;
    self->active--;
    if (self->in_curl) {
        s_schedule_defer(self);
    } else {
        s_req_free(req);
    }
}

size_t agent_http_active(const agent_http_t *self)
{
    return self ? self->active : 0;
}

agent_http_t *agent_http_new(zloop_t *loop)
{
    assert(loop);
    agent_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        LOG_E("out of memory");
        return NULL;
    }
    self->loop = loop;
    self->timer_id = -1;
    self->defer_id = -1;
    self->watch_id = -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        LOG_E("curl_global_init failed");
        agent_http_destroy(&self);
        return NULL;
    }
    self->global_init = true;
    if (!(self->multi = curl_multi_init())) {
        LOG_E("curl_multi_init failed");
        agent_http_destroy(&self);
        return NULL;
    }
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_curl_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    return self;
}

void agent_http_destroy(agent_http_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    agent_http_t *self = *self_p;
    while (self->reqs) {
        s_req_free(self->reqs);
    }
    if (self->multi) {
        curl_multi_cleanup(self->multi);
        self->multi = NULL;
    }
    while (self->nfds) {
        s_fd_forget(self, self->fds[0]);
    }
    if (self->timer_id >= 0) {
        zloop_timer_end(self->loop, self->timer_id);
    }
    if (self->defer_id >= 0) {
        zloop_timer_end(self->loop, self->defer_id);
    }
    if (self->watch_id >= 0) {
        zloop_timer_end(self->loop, self->watch_id);
    }
    if (self->global_init) {
        curl_global_cleanup();
    }
    free(self->fds);
    free(self);
    *self_p = NULL;
}
