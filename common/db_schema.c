/*  db_schema — blocking migration runner and schema check over the embedded
    migrations (sql/CMakeLists.txt generates the table). Each call opens and
    closes its own connection; any thread, never an event loop. */
#include "common/db_schema.h"

#include "common/util.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECT_TIMEOUT 10 /* seconds, unless the conninfo says otherwise */

static const char *const s_create_table = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                          " version integer PRIMARY KEY,"
                                          " name text NOT NULL,"
                                          " applied_at timestamptz NOT NULL DEFAULT now())";

int db_schema_latest(void)
{
    return db_migrations_count ? db_migrations[db_migrations_count - 1].version : 0;
}

/* ---- password hygiene --------------------------------------------------- */

/* Copies the password of conninfo (if any) into out; out is "" otherwise. */
static void s_password(const char *conninfo, char *out, size_t outlen)
{
    out[0] = 0;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!strcmp(o->keyword, "password") && o->val && *o->val) {
            snprintf(out, outlen, "%s", o->val);
        }
    }
    PQconninfoFree(opts);
}

/* Makes one line of a libpq message: whitespace runs become one space, the
   tail is trimmed and every occurrence of the password becomes "***". */
static void s_clean_message(const char *msg, const char *password, char *out, size_t outlen)
{
    size_t k = 0, plen = strlen(password);
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && k + 4 < outlen;) {
        if (plen && strncmp(p, password, plen) == 0) {
            memcpy(out + k, "***", 3);
            k += 3;
            p += plen;
            space = false;
            continue;
        }
        bool ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (!ws || (!space && k > 0)) {
            out[k++] = ws ? ' ' : *p;
        }
        space = ws;
        p++;
    }
    while (k > 0 && out[k - 1] == ' ') {
        k--;
    }
    out[k] = 0;
}

/* ---- connection and small query helpers --------------------------------- */

static void s_quiet_notice(void *arg, const char *message)
{
    /* CREATE TABLE IF NOT EXISTS and friends send NOTICEs; they are not news. */
}

void db_schema_error_line(const char *msg, char *out, size_t outlen)
{
    s_clean_message(msg, "", out, outlen);
}

const char *const db_tcp_default_keys[DB_TCP_DEFAULTS_N] = {
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"};
const char *const db_tcp_default_vals[DB_TCP_DEFAULTS_N] = {"1", "10", "5", "3", "10000"};

PGconn *db_schema_connect(
    const char *conninfo, const char *app_name, int timeout_s, char *err, size_t errlen)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", timeout_s);
    const char *keys[DB_TCP_DEFAULTS_N + 4], *vals[DB_TCP_DEFAULTS_N + 4];
    size_t n = 0;
    for (; n < DB_TCP_DEFAULTS_N; n++) {
        keys[n] = db_tcp_default_keys[n];
        vals[n] = db_tcp_default_vals[n];
    }
    keys[n] = "connect_timeout";
    vals[n++] = timeout;
    keys[n] = "fallback_application_name";
    vals[n++] = app_name;
    keys[n] = "dbname";
    vals[n++] = conninfo ? conninfo : "";
    keys[n] = vals[n] = NULL;
    /* expand_dbname: the conninfo's own settings override the defaults before it. */
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(conn, s_quiet_notice, NULL);
        return conn;
    }
    char masked[512], password[256], why[512];
    util_mask_conninfo(conninfo, masked, sizeof masked);
    s_password(conninfo, password, sizeof password);
    s_clean_message(conn ? PQerrorMessage(conn) : "out of memory", password, why, sizeof why);
    snprintf(err, errlen, "cannot connect to the database (%s): %s", masked, why);
    PQfinish(conn);
    return NULL;
}

static PGconn *s_connect(const char *conninfo, char *err, size_t errlen)
{
    return db_schema_connect(conninfo, "bicky", S_CONNECT_TIMEOUT, err, errlen);
}

/* Runs a parameterised statement; 0 when it returned want, else -1 with err
   prefixed by what. The result is returned in *res_p when res_p is not NULL
   (the caller clears it), otherwise cleared here. */
static int s_exec(PGconn *conn,
                  const char *sql,
                  int nparams,
                  const char *const *params,
                  ExecStatusType want,
                  PGresult **res_p,
                  const char *what,
                  char *err,
                  size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        char why[512];
        s_clean_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), "", why,
                        sizeof why);
        snprintf(err, errlen, "%s: %s", what, why[0] ? why : "unexpected result");
        PQclear(res);
        return -1;
    }
    if (res_p) {
        *res_p = res;
    } else {
        PQclear(res);
    }
    return 0;
}

/* Versions recorded in schema_migrations, ascending, in a heap array (*out,
   freed by the caller; NULL with *count 0 when the table does not exist). */
static int s_recorded(PGconn *conn, int **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    PGresult *res = NULL;
    if (s_exec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
               PGRES_TUPLES_OK, &res, "cannot read the schema version", err, errlen) < 0) {
        return -1;
    }
    bool exists = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (!exists) {
        return 0;
    }
    if (s_exec(conn, "SELECT version FROM schema_migrations ORDER BY version", 0, NULL,
               PGRES_TUPLES_OK, &res, "cannot read schema_migrations", err, errlen) < 0) {
        return -1;
    }
    size_t n = (size_t)PQntuples(res);
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = atoi(PQgetvalue(res, (int)i, 0));
    }
    *count = n;
    PQclear(res);
    return 0;
}

static bool s_has(const int *versions, size_t count, int version)
{
    for (size_t i = 0; i < count; i++) {
        if (versions[i] == version) {
            return true;
        }
    }
    return false;
}

/* First embedded migration not recorded, or NULL. */
static const db_migration_t *s_first_missing(const int *versions, size_t count)
{
    for (size_t i = 0; i < db_migrations_count; i++) {
        if (!s_has(versions, count, db_migrations[i].version)) {
            return &db_migrations[i];
        }
    }
    return NULL;
}

static void s_newer_message(int current, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "database schema version %d is newer than this binary knows (%d); upgrade bicky",
             current, db_schema_latest());
}

/* ---- check -------------------------------------------------------------- */

int db_schema_check(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = s_connect(conninfo, err, errlen);
    if (!conn) {
        return -1;
    }
    int *versions = NULL;
    size_t count = 0;
    int rc = s_recorded(conn, &versions, &count, err, errlen);
    PQfinish(conn);
    if (rc < 0) {
        return -1;
    }
    int current = count ? versions[count - 1] : 0;
    const db_migration_t *missing = s_first_missing(versions, count);
    free(versions);
    if (current > db_schema_latest()) {
        s_newer_message(current, err, errlen);
        return -1;
    }
    if (missing && missing->version < current) {
        snprintf(err, errlen,
                 "database schema is at version %d but lacks migration %04d_%s, this binary "
                 "needs %d; run `bickyctl migrate`",
                 current, missing->version, missing->name, db_schema_latest());
        return -1;
    }
    if (missing) {
        snprintf(err, errlen,
                 "database schema is at version %d, this binary needs %d; run `bickyctl migrate`",
                 current, db_schema_latest());
        return -1;
    }
    return 0;
}

/* ---- migrate ------------------------------------------------------------ */

static int s_lock(PGconn *conn, FILE *report, char *err, size_t errlen)
{
    char key[32];
    snprintf(key, sizeof key, "%ld", DB_SCHEMA_LOCK_KEY);
    const char *params[] = {key};
    PGresult *res = NULL;
    if (s_exec(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, PGRES_TUPLES_OK, &res,
               "cannot take the migration lock", err, errlen) < 0) {
        return -1;
    }
    bool got = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (got) {
        return 0;
    }
    if (report) {
        fprintf(report, "another migration is running; waiting for it to finish\n");
        fflush(report);
    }
    return s_exec(conn, "SELECT pg_advisory_lock($1::bigint)", 1, params, PGRES_TUPLES_OK, NULL,
                  "cannot take the migration lock", err, errlen);
}

/* Applies one migration and records it, in one transaction. */
static int s_apply(PGconn *conn, const db_migration_t *m, FILE *report, char *err, size_t errlen)
{
    char what[128], version[16];
    snprintf(what, sizeof what, "migration %04d_%s failed", m->version, m->name);
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    int64_t t0 = util_mono_ms();
    if (report) {
        fprintf(report, "applying %04d_%s ... ", m->version, m->name);
        fflush(report);
    }
    PGresult *res = PQexec(conn, "BEGIN");
    PQclear(res);
    /* PQexec (simple protocol) runs the file's statements in the open transaction. */
    res = PQexec(conn, m->sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc < 0) {
        char why[512];
        s_clean_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), "", why,
                        sizeof why);
        snprintf(err, errlen, "%s: %s", what, why);
    }
    PQclear(res);
    if (rc == 0) {
        rc = s_exec(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2,
                    params, PGRES_COMMAND_OK, NULL, what, err, errlen);
    }
    if (rc == 0) {
        rc = s_exec(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, what, err, errlen);
    } else {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    if (report) {
        fprintf(report, rc == 0 ? "done (%lld ms)\n" : "FAILED\n",
                (long long)(util_mono_ms() - t0));
    }
    return rc;
}

static int s_migrate(PGconn *conn, FILE *report, char *err, size_t errlen)
{
    if (s_lock(conn, report, err, errlen) < 0 ||
        s_exec(conn, s_create_table, 0, NULL, PGRES_COMMAND_OK, NULL,
               "cannot create schema_migrations", err, errlen) < 0) {
        return -1;
    }
    int *versions = NULL;
    size_t count = 0;
    if (s_recorded(conn, &versions, &count, err, errlen) < 0) {
        return -1;
    }
    int current = count ? versions[count - 1] : 0, applied = 0;
    if (current > db_schema_latest()) {
        s_newer_message(current, err, errlen);
        free(versions);
        return -1;
    }
    for (size_t i = 0; i < db_migrations_count; i++) {
        const db_migration_t *m = &db_migrations[i];
        if (s_has(versions, count, m->version)) {
            continue;
        }
        if (s_apply(conn, m, report, err, errlen) < 0) {
            free(versions);
            return -1;
        }
        applied++;
    }
    free(versions);
    if (report && applied) {
        fprintf(report, "database schema is now at version %d (%d migration%s applied)\n",
                db_schema_latest(), applied, applied == 1 ? "" : "s");
    } else if (report) {
        fprintf(report, "database schema is up to date at version %d; nothing to apply\n",
                db_schema_latest());
    }
    return applied;
}

int db_schema_migrate(const char *conninfo, FILE *report, char *err, size_t errlen)
{
    PGconn *conn = s_connect(conninfo, err, errlen);
    if (!conn) {
        return -1;
    }
    int rc = s_migrate(conn, report, err, errlen);
    /* Closing the session also releases the advisory lock. */
    PQfinish(conn);
    return rc;
}
