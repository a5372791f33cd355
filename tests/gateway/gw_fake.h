/*  gw_fake — test fixture for the gateway component tests: a fake registry
    (ROUTER + PUB) and one fake node (ROUTER + XPUB) in a zactor, the real
    gateway loop on a thread, and a libcurl helper. The node's behaviour is
    switched with fake_mode(); it can answer, stay silent, answer MOVED, or
    spray malformed frames. All ports come from 7300–7399 (ZMQ) and
    18300–18399 (HTTP). Header-only: included by one test file each. */
#ifndef BICKY_TESTS_GW_FAKE_H
#define BICKY_TESTS_GW_FAKE_H

#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "gateway/gateway_internal.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_TEAM       "11111111-1111-4111-8111-111111111111"
#define FAKE_GOOD_TOKEN "bk_good_token"
#define FAKE_STORED     5 /* stored events 1..5 for events.list */

typedef enum {
    FAKE_ANSWER,       /* answer every op */
    FAKE_SILENT,       /* never answer API ops (auth still answered) */
    FAKE_MOVED_ONCE,   /* MOVED to the first non-auth op, then answer */
    FAKE_MOVED_ALWAYS, /* MOVED to every non-auth op */
    FAKE_GARBAGE,      /* malformed frames everywhere, no real answer */
} fake_mode_t;

typedef struct {
    fake_mode_t mode;                    /* node behaviour */
    int moved_sent;                      /* MOVED replies so far */
    int ops;                             /* API ops received (auth excluded) */
    int auths;                           /* auth ops received */
    char last_op[64];                    /* last non-auth op */
    char last_args[4096];                /* its args JSON */
    char last_conv[40];                  /* its conversation id or "" */
    bool last_team;                      /* it carried a team id */
    bool live_on_sub;                    /* publish live events 4..7 + a delta on subscription */
    bool gap;                            /* events carry seqs; see fake_gap_publish */
    bool gap_done;                       /* the gap's live event went out */
    uint8_t last_topic[PROTO_TOPIC_LEN]; /* topic of the last subscription (padded) */
    zsock_t *node;                       /* node ROUTER */
    zsock_t *npub;                       /* node XPUB */
    zsock_t *reg;                        /* registry ROUTER */
    zsock_t *rpub;                       /* registry PUB */
    char node_ep[64], npub_ep[64], reg_ep[64], rpub_ep[64];
} fake_t;

/* ---- fake node -------------------------------------------------------------- */

static inline void
fake_reply(fake_t *f, zframe_t *id, const proto_msg_t *req, int status, const char *body)
{
    proto_msg_t r = {.v = PROTO_VERSION, .type = PROTO_API_REP, .req_id = req->req_id};
    r.status = (uint64_t)status;
    r.body = (char *)body;
    wire_send(f->node, id, &r);
}

static inline void fake_on_sub(fake_t *f);

/* GAP mode: the replay has read events up to 5 when events 6 and 7 commit;
   6 is published before the stream's subscription counts, so the stream
   only sees 7 live and must notice the missing seq (both are stored now). */
static inline void fake_gap_publish(fake_t *f, const proto_msg_t *req)
{
    while (zsock_events(f->npub) & ZMQ_POLLIN) {
        fake_on_sub(f); /* the stream's subscription, if still unread */
    }
    uint8_t topic[PROTO_TOPIC_LEN], team[16];
    util_uuid_parse(FAKE_TEAM, team);
    proto_topic(team, req->conv_id, topic);
    proto_msg_t e = {.v = PROTO_VERSION, .type = PROTO_EVENT, .event_id = 7, .seq = 7};
    e.event_type = "message.created";
    e.body = "{\"id\":7,\"seq\":7,\"type\":\"message.created\"}";
    f->gap_done = true;
    wire_publish(f->npub, topic, PROTO_TOPIC_LEN, &e);
}

static inline void fake_events_page(fake_t *f, zframe_t *id, const proto_msg_t *req)
{
    json_t *args = json_loads(req->body ? req->body : "{}", 0, NULL);
    json_int_t after = json_integer_value(json_object_get(args, "after"));
    json_int_t limit = json_integer_value(json_object_get(args, "limit"));
    json_decref(args);
    limit = limit > 0 && limit < 2 ? limit : 2; /* small pages exercise paging */
    json_t *data = json_array();
    json_int_t i = after + 1, stored = f->gap ? (f->gap_done ? 7 : 5) : FAKE_STORED;
    for (; i <= stored && (json_int_t)json_array_size(data) < limit; i++) {
        json_t *ev =
            json_pack("{s:I, s:s, s:{s:I}}", "id", i, "type", "message.created", "action", "n", i);
        if (f->gap) {
            json_object_set_new(ev, "seq", json_integer(i));
        }
        json_array_append_new(data, ev);
    }
    json_t *page =
        json_pack("{s:o, s:s?}", "data", data, "next_cursor", i <= stored ? "more" : NULL);
    char *text = json_dumps(page, JSON_COMPACT);
    fake_reply(f, id, req, 200, text);
    free(text);
    json_decref(page);
    if (f->gap && !f->gap_done && i > stored) {
        fake_gap_publish(f, req);
    }
}

static inline void fake_garbage(fake_t *f, zframe_t *id)
{
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand();
    }
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, zframe_data(id), zframe_size(id));
    zmsg_addmem(m, junk, sizeof junk);
    zmsg_send(&m, f->node);
    m = zmsg_new();
    zmsg_addmem(m, zframe_data(id), zframe_size(id));
    zmsg_addmem(m, junk, 3);
    zmsg_addmem(m, junk, 5);
    zmsg_addmem(m, "", 0);
    zmsg_send(&m, f->node);
    proto_msg_t r = {.v = PROTO_VERSION, .type = PROTO_API_REP, .req_id = 987654321, .status = 200};
    wire_send(f->node, id, &r);
    proto_msg_t e = {.v = PROTO_VERSION, .type = PROTO_EVENT, .event_type = "x", .body = "{}"};
    wire_send(f->node, id, &e);
    zsock_send(f->npub, "b", junk, sizeof junk);
    zsock_send(f->npub, "bb", junk, (size_t)32, junk, (size_t)7);
    zsock_send(f->npub, "bb", "ring", (size_t)4, junk, sizeof junk);
    zsock_send(f->rpub, "bb", "ring", (size_t)4, junk, sizeof junk);
    zsock_send(f->rpub, "b", "ring", (size_t)4);
}

static inline void fake_answer(fake_t *f, zframe_t *id, const proto_msg_t *m, const char *conv)
{
    char body[512];
    if (strcmp(m->op, "conv.create") == 0) {
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"idle\"}", conv);
        fake_reply(f, id, m, 201, body);
    } else if (strcmp(m->op, "msg.post") == 0) {
        snprintf(body, sizeof body,
                 "{\"message\":{\"id\":\"22222222-2222-4222-8222-222222222222\","
                 "\"conversation_id\":\"%s\",\"seq\":1},\"created\":true}",
                 conv);
        fake_reply(f, id, m, 202, body);
    } else if (strncmp(conv, "40404040", 8) == 0) {
        fake_reply(f, id, m, 404, "{\"error\":\"no such conversation\",\"code\":\"not_found\"}");
    } else if (strcmp(m->op, "events.list") == 0) {
        fake_events_page(f, id, m);
    } else if (strcmp(m->op, "conv.delete") == 0) {
        fake_reply(f, id, m, 204, NULL);
    } else if (strcmp(m->op, "status") == 0) {
        fake_reply(f, id, m, 200, "{\"actors\":3,\"conversations_by_status\":{\"idle\":2}}");
    } else {
        snprintf(body, sizeof body, "{\"op\":\"%s\",\"id\":\"%s\"}", m->op, conv);
        fake_reply(f, id, m, 200, body);
    }
}

static inline void fake_on_auth(fake_t *f, zframe_t *id, const proto_msg_t *m)
{
    char good[65];
    util_sha256_hex(FAKE_GOOD_TOKEN, strlen(FAKE_GOOD_TOKEN), good);
    f->auths++;
    if (m->body && strstr(m->body, good)) {
        fake_reply(f, id, m, 200, "{\"team_id\":\"" FAKE_TEAM "\",\"team\":\"t\"}");
    } else {
        fake_reply(f, id, m, 401, "{\"error\":\"bad token\",\"code\":\"unauthorized\"}");
    }
}

static inline void fake_on_node(fake_t *f)
{
    zframe_t *id = NULL;
    proto_msg_t m;
    if (wire_recv(f->node, &id, &m, "fake_node") < 0) {
        return;
    }
    if (m.type == PROTO_API_REQ && strcmp(m.op, "auth") == 0) {
        fake_on_auth(f, id, &m);
    } else if (m.type == PROTO_API_REQ) {
        char conv[40] = "";
        if (m.has_conv) {
            util_uuid_format(m.conv_id, conv);
        }
        f->ops++;
        snprintf(f->last_op, sizeof f->last_op, "%s", m.op);
        snprintf(f->last_args, sizeof f->last_args, "%s", m.body ? m.body : "");
        snprintf(f->last_conv, sizeof f->last_conv, "%s", conv);
        f->last_team = m.has_team;
        bool moved = f->mode == FAKE_MOVED_ALWAYS || (f->mode == FAKE_MOVED_ONCE && !f->moved_sent);
        if (moved) {
            proto_msg_t r = {.v = PROTO_VERSION, .type = PROTO_MOVED, .req_id = m.req_id};
            r.ring_epoch = 1;
            f->moved_sent++;
            wire_send(f->node, id, &r);
        } else if (f->mode == FAKE_GARBAGE) {
            fake_garbage(f, id);
        } else if (f->mode != FAKE_SILENT) {
            fake_answer(f, id, &m, conv);
        }
    }
    proto_msg_reset(&m);
    zframe_destroy(&id);
}

static inline void
fake_publish(fake_t *f, const uint8_t *topic, uint64_t event_id, const char *type)
{
    char body[256];
    if (event_id) {
        snprintf(body, sizeof body, "{\"id\":%llu,\"type\":\"%s\"}", (unsigned long long)event_id,
                 type);
    } else {
        snprintf(body, sizeof body, "{\"message_id\":\"m\",\"index\":0,\"text\":\"hi\\nthere\"}");
    }
    proto_msg_t e = {.v = PROTO_VERSION, .type = PROTO_EVENT, .event_id = event_id};
    e.event_type = (char *)type;
    e.body = body;
    wire_publish(f->npub, topic, PROTO_TOPIC_LEN, &e);
}

/* XPUB: a subscription arrived. Publish live events 4..7 and a delta for a
   full conversation topic (the team prefix gets the same under a made-up
   conversation). */
static inline void fake_on_sub(fake_t *f)
{
    zframe_t *fr = zframe_recv(f->npub);
    if (!fr) {
        return;
    }
    if (zframe_size(fr) >= 17 && zframe_data(fr)[0] == 1) {
        memset(f->last_topic, 0x33, sizeof f->last_topic);
        memcpy(f->last_topic, zframe_data(fr) + 1,
               zframe_size(fr) - 1 > 32 ? 32 : zframe_size(fr) - 1);
    }
    if (f->live_on_sub && zframe_size(fr) >= 17 && zframe_data(fr)[0] == 1) {
        uint8_t *topic = f->last_topic;
        for (uint64_t i = 4; i <= 7; i++) {
            fake_publish(f, topic, i, "message.created");
        }
        fake_publish(f, topic, 0, "message.delta");
    }
    zframe_destroy(&fr);
}

/* ---- fake registry -------------------------------------------------------------- */

static inline void fake_ring(fake_t *f, proto_msg_t *r)
{
    static proto_node_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "n1");
    snprintf(n.state, sizeof n.state, "alive");
    snprintf(n.router, sizeof n.router, "%s", f->node_ep);
    snprintf(n.pub, sizeof n.pub, "%s", f->npub_ep);
    n.weight = 1;
    *r = (proto_msg_t){.v = PROTO_VERSION, .type = PROTO_RING, .ring_epoch = 1};
    r->pub = f->rpub_ep;
    r->nodes = &n;
    r->nnodes = 1;
}

static inline void fake_on_reg(fake_t *f)
{
    zframe_t *id = NULL;
    proto_msg_t m;
    if (wire_recv(f->reg, &id, &m, "fake_reg") < 0) {
        return;
    }
    if (m.type == PROTO_RING_GET) {
        if (f->mode == FAKE_GARBAGE) {
            zmsg_t *g = zmsg_new();
            zmsg_addmem(g, zframe_data(id), zframe_size(id));
            zmsg_addstr(g, "not msgpack at all");
            zmsg_send(&g, f->reg);
        }
        proto_msg_t r;
        fake_ring(f, &r);
        wire_send(f->reg, id, &r);
    }
    proto_msg_reset(&m);
    zframe_destroy(&id);
}

static inline int fake_bind(zsock_t *s, char *ep, size_t cap)
{
    int port = zsock_bind(s, "tcp://127.0.0.1:*[7300-7399]");
    snprintf(ep, cap, "tcp://127.0.0.1:%d", port);
    return port;
}

static inline void fake_command(fake_t *f, zsock_t *pipe, char *cmd)
{
    if (strcmp(cmd, "MODE") == 0) {
        char *mode = zstr_recv(pipe);
        f->mode = (fake_mode_t)atoi(mode);
        f->moved_sent = 0;
        zstr_free(&mode);
        zstr_send(pipe, "OK");
    } else if (strcmp(cmd, "LIVE") == 0) {
        f->live_on_sub = true;
        zstr_send(pipe, "OK");
    } else if (strcmp(cmd, "GAP") == 0) {
        f->gap = true;
        zstr_send(pipe, "OK");
    } else if (strcmp(cmd, "FLOOD") == 0) {
        /* Many large events on the last subscribed topic. */
        char *big = malloc(2048);
        memset(big, 'z', 2047);
        big[2047] = 0;
        for (uint64_t i = 1; i <= 4000; i++) {
            proto_msg_t e = {.v = PROTO_VERSION, .type = PROTO_EVENT, .event_id = 1000 + i};
            e.event_type = "message.created";
            e.body = big;
            wire_publish(f->npub, f->last_topic, PROTO_TOPIC_LEN, &e);
        }
        free(big);
        zstr_send(pipe, "OK");
    } else if (strcmp(cmd, "STATS") == 0) {
        zsock_send(pipe, "iissi", f->ops, f->auths, f->last_op, f->last_args, f->moved_sent);
    } else if (strcmp(cmd, "CONV") == 0) {
        zsock_send(pipe, "si", f->last_conv, (int)f->last_team);
    }
}

static inline void fake_actor(zsock_t *pipe, void *args)
{
    fake_t *f = calloc(1, sizeof *f);
    f->mode = FAKE_ANSWER;
    f->node = zsock_new(ZMQ_ROUTER);
    f->npub = zsock_new(ZMQ_XPUB);
    f->reg = zsock_new(ZMQ_ROUTER);
    f->rpub = zsock_new(ZMQ_PUB);
    zsock_set_sndhwm(f->npub, 100000);
    int ok = fake_bind(f->node, f->node_ep, sizeof f->node_ep) > 0 &&
             fake_bind(f->npub, f->npub_ep, sizeof f->npub_ep) > 0 &&
             fake_bind(f->reg, f->reg_ep, sizeof f->reg_ep) > 0 &&
             fake_bind(f->rpub, f->rpub_ep, sizeof f->rpub_ep) > 0;
    zsock_signal(pipe, ok ? 0 : 1);
    zstr_send(pipe, f->reg_ep);
    zpoller_t *poller = zpoller_new(pipe, f->node, f->npub, f->reg, NULL);
    int64_t next_ring = zclock_mono();
    while (true) {
        void *which = zpoller_wait(poller, 100);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            if (!term) {
                fake_command(f, pipe, cmd);
            }
            zstr_free(&cmd);
            if (term) {
                break;
            }
        } else if (which == f->node) {
            fake_on_node(f);
        } else if (which == f->npub) {
            fake_on_sub(f);
        } else if (which == f->reg) {
            fake_on_reg(f);
        }
        if (zclock_mono() >= next_ring) {
            proto_msg_t r;
            fake_ring(f, &r);
            wire_publish(f->rpub, "ring", 4, &r);
            next_ring = zclock_mono() + 300;
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&f->node);
    zsock_destroy(&f->npub);
    zsock_destroy(&f->reg);
    zsock_destroy(&f->rpub);
    free(f);
}

/* ---- the gateway on a thread ------------------------------------------------------ */

typedef struct {
    gw_config_t cfg;     /* its configuration */
    gw_server_t *server; /* the gateway */
    pthread_t thread;    /* runs gw_server_run */
    int rc;              /* its result */
    bool running;        /* thread started */
    char base[64];       /* http://127.0.0.1:port */
    zactor_t *fake;      /* fake cluster, or NULL */
    char reg_ep[64];     /* fake registry endpoint */
    char reg_list[256];  /* registry list given to the gateway */
} gwt_t;

static inline void *gwt_main(void *arg)
{
    gwt_t *t = arg;
    t->rc = gw_server_run(t->server);
    return NULL;
}

/* Starts the fake cluster (when with_fake) and a gateway whose registry list
   is registry (NULL → the fake's; a "%s" in it is replaced by the fake's
   endpoint) and request timeout timeout_ms (0 → 400). Fails the test on error. */
static inline void gwt_start_ex(gwt_t *t, bool with_fake, const char *registry, long timeout_ms)
{
    memset(t, 0, sizeof *t);
    log_init("gw", LOG_LEVEL_WARN);
    util_signals_install();
    util_interrupted = 0;
    curl_global_init(CURL_GLOBAL_ALL);
    if (with_fake) {
        t->fake = zactor_new(fake_actor, NULL);
        cr_assert_not_null(t->fake);
        char *ep = zstr_recv(t->fake);
        snprintf(t->reg_ep, sizeof t->reg_ep, "%s", ep);
        zstr_free(&ep);
    }
    gw_config_defaults(&t->cfg);
    const char *spot = registry ? strstr(registry, "%s") : NULL;
    if (!registry) {
        snprintf(t->reg_list, sizeof t->reg_list, "%s", t->reg_ep);
    } else if (spot) {
        snprintf(t->reg_list, sizeof t->reg_list, "%.*s%s%s", (int)(spot - registry), registry,
                 t->reg_ep, spot + 2);
    } else {
        snprintf(t->reg_list, sizeof t->reg_list, "%s", registry);
    }
    t->cfg.registry = t->reg_list;
    t->cfg.request_timeout_ms = timeout_ms > 0 ? timeout_ms : 400;
    t->cfg.max_body = 4096;
    t->cfg.keepalive_ms = 300;
    int start = 18300 + (int)(getpid() % 100);
    for (int i = 0; i < 100 && !t->server; i++) {
        t->cfg.port = 18300 + (start - 18300 + i) % 100;
        t->server = gw_server_new(&t->cfg);
    }
    cr_assert_not_null(t->server, "gateway did not start");
    snprintf(t->base, sizeof t->base, "http://127.0.0.1:%ld", t->cfg.port);
    cr_assert_eq(pthread_create(&t->thread, NULL, gwt_main, t), 0);
    t->running = true;
}

static inline void gwt_start(gwt_t *t, bool with_fake, const char *registry)
{
    gwt_start_ex(t, with_fake, registry, 0);
}

/* Stops the gateway as SIGTERM would and checks it exits 0 within 5 s. */
static inline void gwt_stop(gwt_t *t)
{
    if (t->running) {
        util_interrupted = 1;
        int64_t t0 = util_mono_ms();
        pthread_join(t->thread, NULL);
        cr_expect_lt(util_mono_ms() - t0, 5000, "gateway took too long to stop");
        cr_expect_eq(t->rc, 0);
        t->running = false;
    }
    gw_server_destroy(&t->server);
    cr_expect_null(t->server);
    zactor_destroy(&t->fake);
    curl_global_cleanup();
}

static inline void fake_mode(gwt_t *t, fake_mode_t mode)
{
    zstr_sendx(t->fake, "MODE",
               mode == FAKE_ANSWER         ? "0"
               : mode == FAKE_SILENT       ? "1"
               : mode == FAKE_MOVED_ONCE   ? "2"
               : mode == FAKE_MOVED_ALWAYS ? "3"
                                           : "4",
               NULL);
    char *ok = zstr_recv(t->fake);
    zstr_free(&ok);
}

typedef struct {
    int ops, auths, moved;
    char op[64];
    char args[4096];
} fake_stats_t;

static inline fake_stats_t fake_stats(gwt_t *t)
{
    fake_stats_t s;
    memset(&s, 0, sizeof s);
    char *op = NULL, *args = NULL;
    zstr_send(t->fake, "STATS");
    zsock_recv(t->fake, "iissi", &s.ops, &s.auths, &op, &args, &s.moved);
    snprintf(s.op, sizeof s.op, "%s", op ? op : "");
    snprintf(s.args, sizeof s.args, "%s", args ? args : "");
    zstr_free(&op);
    zstr_free(&args);
    return s;
}

/* ---- HTTP client ---------------------------------------------------------------- */

typedef struct {
    long status;        /* HTTP status, 0 on transport error */
    char body[65536];   /* response body (truncated) */
    size_t len;         /* bytes in body */
    char headers[4096]; /* response headers (truncated) */
    size_t hlen;        /* bytes in headers */
    double seconds;     /* total time */
} http_t;

static inline size_t http_body_cb(char *p, size_t sz, size_t n, void *arg)
{
    http_t *r = arg;
    size_t k = sz * n;
    size_t room = sizeof r->body - 1 - r->len;
    size_t take = k < room ? k : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = 0;
    return k;
}

static inline size_t http_header_cb(char *p, size_t sz, size_t n, void *arg)
{
    http_t *r = arg;
    size_t k = sz * n;
    size_t room = sizeof r->headers - 1 - r->hlen;
    size_t take = k < room ? k : room;
    memcpy(r->headers + r->hlen, p, take);
    r->hlen += take;
    r->headers[r->hlen] = 0;
    return k;
}

/* One request. hdrs: NULL-terminated header lines or NULL; body may be NULL;
   timeout_ms bounds the whole exchange (SSE tests read until it expires). */
static inline http_t *http_do(gwt_t *t,
                              const char *method,
                              const char *path,
                              const char **hdrs,
                              const char *body,
                              long timeout_ms)
{
    http_t *r = calloc(1, sizeof *r);
    char url[512];
    snprintf(url, sizeof url, "%s%s", t->base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    for (const char **h = hdrs; h && *h; h++) {
        list = curl_slist_append(list, *h);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return r;
}

static const char *s_auth_json[] __attribute__((unused)) = {
    "Authorization: Bearer " FAKE_GOOD_TOKEN, "Content-Type: application/json", NULL};

/* Polls /ready until 200 or timeout; returns the last status. */
static inline long gwt_wait_ready(gwt_t *t, long ms)
{
    long status = 0;
    for (int64_t end = util_mono_ms() + ms; util_mono_ms() < end;) {
        http_t *r = http_do(t, "GET", "/ready", NULL, NULL, 1000);
        status = r->status;
        free(r);
        if (status == 200) {
            break;
        }
        usleep(50 * 1000);
    }
    return status;
}

#endif
