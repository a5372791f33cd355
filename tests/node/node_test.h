/*  node_test — helpers for the node's component tests: a real node running in
    a zactor thread of the test process (standalone or with a fake registry),
    a DEALER acting as the gateway, a SUB acting as an event listener, and a
    libpq connection to create teams and inspect rows. Each test makes its own
    team and endpoints (ipc abstract names with the pid), so tests never collide.
    Header-only (static functions) because every test file is its own binary. */
#ifndef BICKY_TESTS_NODE_TEST_H
#define BICKY_TESTS_NODE_TEST_H

#include "common/util.h"
#include "common/wire.h"
#include "node/node.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NT_TIMEOUT 5000 /* ms to wait for a reply or an event */

typedef struct {
    int status;           /* HTTP status, or -1 on timeout, 0 for MOVED */
    proto_type_t type;    /* API_REP or MOVED */
    uint64_t epoch;       /* envelope epoch */
    uint64_t retry_after; /* seconds */
    json_t *body;         /* parsed body (NULL when empty or not JSON) */
} nt_rep_t;

#define NT_STASH 512 /* replies received out of order, kept for a later nt_recv */

typedef struct {
    node_cfg_t cfg;     /* the node's configuration (must outlive it) */
    char bind[96];      /* node ROUTER endpoint */
    char pub[96];       /* node PUB endpoint */
    char conninfo[512]; /* test database */
    zactor_t *node;     /* node thread */
    zsock_t *gw;        /* DEALER to the node */
    zsock_t *sub;       /* SUB on the node's PUB, subscribed to the team */
    PGconn *pg;         /* for fixtures and checks */
    uint8_t team[16];   /* this test's team */
    char team_s[37];
    uint64_t next_req; /* request ids */
    uint64_t stash_id[NT_STASH];
    nt_rep_t stash[NT_STASH];
    size_t nstash;
} nt_t;

static inline const char *nt_db_url(void)
{
    const char *url = getenv("BICKY_TEST_DATABASE_URL");
    return url && *url ? url : NULL;
}

static inline void nt_sql(nt_t *t, const char *sql)
{
    PGresult *r = PQexec(t->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "sql failed: %s: %s", sql,
              PQerrorMessage(t->pg));
    PQclear(r);
}

/* First value of a one-row query as a long (-1 when no row). */
static inline long long nt_sql_ll(nt_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline long long nt_sql_ll(nt_t *t, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(t->pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "sql failed: %s: %s", sql,
                 PQerrorMessage(t->pg));
    long long v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

/* A fresh team named after its id. */
static inline void nt_team_new(nt_t *t, uint8_t team[16], char team_s[37])
{
    util_uuid_generate(team);
    util_uuid_format(team, team_s);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO teams (id, name) VALUES ('%s', 'test-%s')", team_s,
             team_s);
    nt_sql(t, sql);
}

static inline void nt_endpoints(nt_t *t)
{
    static int seq = 0;
    seq++;
    snprintf(t->bind, sizeof t->bind, "ipc://@/bicky-node-test-%d-%d-api", (int)getpid(), seq);
    snprintf(t->pub, sizeof t->pub, "ipc://@/bicky-node-test-%d-%d-pub", (int)getpid(), seq);
}

/* Connects the test's DEALER and SUB to the node. */
static inline void nt_connect(nt_t *t)
{
    t->gw = zsock_new_dealer(t->bind);
    t->sub = zsock_new(ZMQ_SUB);
    cr_assert_not_null(t->gw);
    cr_assert_not_null(t->sub);
    zsock_set_subscribe(t->sub, "");
    cr_assert_eq(zsock_connect(t->sub, "%s", t->pub), 0);
    zsock_set_rcvtimeo(t->gw, NT_TIMEOUT);
    zsock_set_rcvtimeo(t->sub, NT_TIMEOUT);
}

/* Opens the database and a team; returns false (test skipped) without a database. */
static inline bool nt_open(nt_t *t)
{
    memset(t, 0, sizeof *t);
    const char *url = nt_db_url();
    if (!url) {
        return false;
    }
    snprintf(t->conninfo, sizeof t->conninfo, "%s", url);
    t->pg = PQconnectdb(t->conninfo);
    cr_assert_eq(PQstatus(t->pg), CONNECTION_OK, "cannot connect: %s", PQerrorMessage(t->pg));
    nt_sql(t, "SET client_min_messages = warning");
    nt_team_new(t, t->team, t->team_s);
    node_cfg_defaults(&t->cfg);
    nt_endpoints(t);
    t->cfg.id = "n1";
    t->cfg.database_url = t->conninfo;
    t->cfg.bind = t->bind;
    t->cfg.pub_bind = t->pub;
    t->cfg.standalone = true;
    return true;
}

static inline void nt_start_node(nt_t *t)
{
    t->node = zactor_new(node_zactor, &t->cfg);
    cr_assert_not_null(t->node);
}

/* The usual setup: database, team, a standalone node, gateway and listener sockets.
   Skips the test when BICKY_TEST_DATABASE_URL is not set. */
static inline void nt_start(nt_t *t)
{
    if (!nt_open(t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    nt_start_node(t);
    nt_connect(t);
    zclock_sleep(100); /* let the SUB subscription reach the PUB */
}

static inline void nt_stop(nt_t *t)
{
    while (t->nstash) {
        json_decref(t->stash[--t->nstash].body);
    }
    zactor_destroy(&t->node);
    cr_assert_null(t->node);
    zsock_destroy(&t->gw);
    zsock_destroy(&t->sub);
    if (t->pg) {
        PQfinish(t->pg);
        t->pg = NULL;
    }
}

/* Waits up to ms for sock to be readable. */
static inline bool nt_wait(zsock_t *sock, int ms)
{
    zpoller_t *p = zpoller_new(sock, NULL);
    void *which = zpoller_wait(p, ms);
    zpoller_destroy(&p);
    return which == sock;
}

static inline void nt_rep_free(nt_rep_t *r)
{
    json_decref(r->body);
    r->body = NULL;
}

/* Sends an API request (conv may be NULL, team may be NULL = the test's team). */
static inline uint64_t
nt_send(nt_t *t, const char *op, const uint8_t *conv, const uint8_t *team, const char *body)
{
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_API_REQ, .req_id = ++t->next_req};
    m.op = (char *)op;
    m.body = (char *)(body ? body : "{}");
    m.has_team = true;
    memcpy(m.team_id, team ? team : t->team, 16);
    if (conv) {
        m.has_conv = true;
        memcpy(m.conv_id, conv, 16);
    }
    cr_assert_eq(wire_send(t->gw, NULL, &m), 0);
    return m.req_id;
}

/* Receives the reply to req_id; replies to other requests are stashed for their own
   nt_recv (replies may arrive in any order). status -1 on timeout. */
static inline nt_rep_t nt_recv(nt_t *t, uint64_t req_id)
{
    for (size_t i = 0; i < t->nstash; i++) {
        if (t->stash_id[i] == req_id) {
            nt_rep_t r = t->stash[i];
            t->nstash--;
            t->stash[i] = t->stash[t->nstash];
            t->stash_id[i] = t->stash_id[t->nstash];
            return r;
        }
    }
    int64_t deadline = zclock_mono() + NT_TIMEOUT;
    while (zclock_mono() < deadline) {
        if (!nt_wait(t->gw, (int)(deadline - zclock_mono()))) {
            break;
        }
        proto_msg_t m;
        if (wire_recv(t->gw, NULL, &m, "test-gw") < 0) {
            continue;
        }
        nt_rep_t r = {.type = m.type, .epoch = m.ring_epoch, .retry_after = m.retry_after};
        r.status = m.type == PROTO_MOVED ? 0 : (int)m.status;
        r.body = m.body && *m.body ? json_loads(m.body, 0, NULL) : NULL;
        uint64_t id = m.req_id;
        proto_msg_reset(&m);
        if (id == req_id) {
            return r;
        }
        cr_assert_lt(t->nstash, (size_t)NT_STASH);
        t->stash_id[t->nstash] = id;
        t->stash[t->nstash++] = r;
    }
    return (nt_rep_t){.status = -1};
}

static inline nt_rep_t nt_call(nt_t *t, const char *op, const uint8_t *conv, const char *body)
{
    return nt_recv(t, nt_send(t, op, conv, NULL, body));
}

/* Creates a conversation (body = its fields) and returns its id in conv. */
static inline void nt_create(nt_t *t, uint8_t conv[16], const char *body)
{
    util_uuid_generate(conv);
    nt_rep_t r = nt_call(t, "conv.create", conv, body ? body : "{}");
    cr_assert_eq(r.status, 201, "conv.create status=%d", r.status);
    nt_rep_free(&r);
}

/* The next published event: type into type (64 bytes), body parsed; id returned
   (0 for deltas), -1 on timeout. */
static inline long long nt_event(nt_t *t, char type[64], json_t **body, int ms)
{
    if (!nt_wait(t->sub, ms)) {
        return -1;
    }
    uint8_t topic[PROTO_TOPIC_LEN];
    size_t tlen = 0;
    proto_msg_t m;
    if (wire_recv_sub(t->sub, topic, sizeof topic, &tlen, &m, "test-sub") < 0) {
        return -1;
    }
    cr_assert_eq(tlen, (size_t)PROTO_TOPIC_LEN);
    snprintf(type, 64, "%s", m.event_type);
    if (body) {
        *body = json_loads(m.body, 0, NULL);
    }
    long long id = (long long)m.event_id;
    proto_msg_reset(&m);
    return id;
}

/* Waits for the next stored (non-delta) event of the given type; counts deltas seen. */
static inline long long nt_event_of(nt_t *t, const char *want, json_t **body, int *deltas)
{
    char type[64];
    for (int i = 0; i < 10000; i++) {
        json_t *b = NULL;
        long long id = nt_event(t, type, &b, NT_TIMEOUT);
        if (id < 0) {
            return -1;
        }
        if (strcmp(type, "message.delta") == 0 && deltas) {
            (*deltas)++;
        }
        if (strcmp(type, want) == 0) {
            if (body) {
                *body = b;
            } else {
                json_decref(b);
            }
            return id;
        }
        json_decref(b);
    }
    return -1;
}

static inline const char *nt_str(const json_t *obj, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(obj, path1);
    if (path2) {
        v = json_object_get(v, path2);
    }
    return json_string_value(v);
}

static inline long long nt_int(const json_t *obj, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(obj, path1);
    if (path2) {
        v = json_object_get(v, path2);
    }
    return json_integer_value(v);
}

/* Asserts the conversation's message and event seqs are exactly 1..n. */
static inline void nt_assert_gapless(nt_t *t, const uint8_t conv[16])
{
    char c[37];
    util_uuid_format(conv, c);
    const char *tables[] = {"messages", "events"};
    for (int i = 0; i < 2; i++) {
        long long n =
            nt_sql_ll(t, "SELECT count(*) FROM %s WHERE conversation_id = '%s'", tables[i], c);
        long long mx = nt_sql_ll(t,
                                 "SELECT coalesce(max(seq), 0) FROM %s WHERE "
                                 "conversation_id = '%s'",
                                 tables[i], c);
        long long mn = nt_sql_ll(t,
                                 "SELECT coalesce(min(seq), 1) FROM %s WHERE "
                                 "conversation_id = '%s'",
                                 tables[i], c);
        cr_assert_eq(n, mx, "%s: %lld rows but max seq %lld", tables[i], n, mx);
        cr_assert_eq(mn, 1, "%s: min seq %lld", tables[i], mn);
    }
}

#endif
