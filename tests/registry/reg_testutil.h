/*  reg_testutil — helpers for the registry and schema tests: a throwaway
    database on BICKY_TEST_DATABASE_URL's server (created and dropped by the
    test), the built binaries, and a fake node's DEALER. Test process only. */
#ifndef BICKY_REG_TESTUTIL_H
#define BICKY_REG_TESTUTIL_H

#include "common/db_schema.h"
#include "common/util.h"
#include "common/wire.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char name[64];       /* database name */
    char conninfo[1024]; /* conninfo of the throwaway database */
} rt_db_t;

static inline void rt_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Connects to the server of BICKY_TEST_DATABASE_URL (skips the test when unset). */
static inline PGconn *rt_admin_conn(void)
{
    const char *url = getenv("BICKY_TEST_DATABASE_URL");
    if (!url || !*url) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    const char *keys[] = {"dbname", NULL}, *vals[] = {url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, rt_quiet, NULL);
    return c;
}

/* conninfo of the test server with dbname replaced by name. */
static inline void rt_conninfo_for(const char *name, char *out, size_t outlen)
{
    PQconninfoOption *opts = PQconninfoParse(getenv("BICKY_TEST_DATABASE_URL"), NULL);
    cr_assert_not_null(opts);
    size_t k = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = !strcmp(o->keyword, "dbname") ? name : o->val;
        if (!v || !*v) {
            continue;
        }
        k += (size_t)snprintf(out + k, outlen - k, "%s%s='", k ? " " : "", o->keyword);
        for (const char *p = v; *p && k + 3 < outlen; p++) {
            if (*p == '\'' || *p == '\\') {
                out[k++] = '\\';
            }
            out[k++] = *p;
        }
        k += (size_t)snprintf(out + k, outlen - k, "'");
    }
    if (!strstr(out, "dbname=")) {
        snprintf(out + k, outlen - k, " dbname='%s'", name);
    }
    PQconninfoFree(opts);
}

static inline void rt_admin_exec(const char *sql)
{
    PGconn *c = rt_admin_conn();
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Creates an empty throwaway database (migrated when migrate is true). */
static inline void rt_db_create(rt_db_t *db, bool migrate)
{
    static int serial = 0;
    snprintf(db->name, sizeof db->name, "bicky_t_%d_%d", (int)getpid(), ++serial);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    rt_admin_exec(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    rt_admin_exec(sql);
    rt_conninfo_for(db->name, db->conninfo, sizeof db->conninfo);
    if (migrate) {
        char err[512];
        int n = db_schema_migrate(db->conninfo, NULL, err, sizeof err);
        cr_assert_geq(n, 1, "migrate failed: %s", err);
    }
}

static inline void rt_db_drop(rt_db_t *db)
{
    if (db->name[0] && getenv("BICKY_TEST_DATABASE_URL")) {
        char sql[160];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
        rt_admin_exec(sql);
        db->name[0] = 0;
    }
}

/* Runs one statement on db; returns the first value of the first row
   (static buffer, "" when none). */
static inline const char *rt_db_value(const rt_db_t *db, const char *sql)
{
    static char value[1024];
    const char *keys[] = {"dbname", NULL}, *vals[] = {db->conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, rt_quiet, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    snprintf(value, sizeof value, "%s",
             st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return value;
}

/* Directory of the built binaries: BICKY_BIN, else ../bin next to this
   test executable (build/tests → build/bin). NULL when neither exists. */
static inline const char *rt_bin_dir(void)
{
    static char dir[1024];
    const char *env = getenv("BICKY_BIN");
    if (env && *env) {
        return env;
    }
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        return NULL;
    }
    exe[n] = 0;
    snprintf(dir, sizeof dir, "%s/../bin", dirname(exe));
    struct stat st;
    return stat(dir, &st) == 0 ? dir : NULL;
}

/* ---- fake node / client over a DEALER ---- */

static inline zsock_t *rt_dealer(const char *endpoint)
{
    zsock_t *d = zsock_new_dealer(endpoint);
    cr_assert_not_null(d);
    zsock_set_linger(d, 0);
    return d;
}

/* Receives one decodable message within timeout_ms; -1 on timeout. */
static inline int rt_recv(zsock_t *sock, proto_msg_t *out, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    zpoller_t *p = zpoller_new(sock, NULL);
    int rc = -1;
    for (int64_t left; rc < 0 && (left = deadline - util_mono_ms()) > 0;) {
        if (zpoller_wait(p, (int)left) != sock) {
            break;
        }
        rc = wire_recv(sock, NULL, out, "test");
    }
    zpoller_destroy(&p);
    return rc;
}

/* Sends msg and waits for the reply of type want with the same req_id. */
static inline void rt_call(zsock_t *d, proto_msg_t *msg, proto_type_t want, proto_msg_t *rep)
{
    static uint64_t next_id = 1000;
    msg->req_id = ++next_id;
    cr_assert_eq(wire_send(d, NULL, msg), 0);
    for (;;) {
        cr_assert_eq(rt_recv(d, rep, 3000), 0, "no %s reply", proto_type_name(want));
        if (rep->req_id == msg->req_id && rep->type == want) {
            return;
        }
        proto_msg_reset(rep);
    }
}

static inline void rt_register(zsock_t *d, const char *id, uint64_t weight, proto_msg_t *ack)
{
    char router[64], pub[64];
    snprintf(router, sizeof router, "tcp://127.0.0.1:9%s", id + strlen(id) - 1);
    snprintf(pub, sizeof pub, "tcp://127.0.0.1:8%s", id + strlen(id) - 1);
    proto_msg_t m = {.type = PROTO_REGISTER,
                     .node_id = (char *)id,
                     .router = router,
                     .pub = pub,
                     .weight = weight};
    rt_call(d, &m, PROTO_REG_ACK, ack);
}

static inline void rt_beat(zsock_t *d, const char *id, uint64_t actors, proto_msg_t *ack)
{
    proto_msg_t m = {.type = PROTO_HEARTBEAT, .node_id = (char *)id, .actors = actors};
    rt_call(d, &m, PROTO_REG_ACK, ack);
}

static inline void rt_ring_get(zsock_t *d, proto_msg_t *ring)
{
    proto_msg_t m = {.type = PROTO_RING_GET};
    rt_call(d, &m, PROTO_RING, ring);
}

static inline uint64_t rt_admin(zsock_t *d, const char *action, const char *id)
{
    proto_msg_t m = {.type = PROTO_ADMIN, .action = (char *)action, .node_id = (char *)id}, rep;
    rt_call(d, &m, PROTO_ADMIN_REP, &rep);
    uint64_t status = rep.status;
    proto_msg_reset(&rep);
    return status;
}

/* State of node id in a RING message, or NULL when absent. */
static inline const char *rt_state_of(const proto_msg_t *ring, const char *id)
{
    for (size_t i = 0; i < ring->nnodes; i++) {
        if (!strcmp(ring->nodes[i].id, id)) {
            return ring->nodes[i].state;
        }
    }
    return NULL;
}

#endif
