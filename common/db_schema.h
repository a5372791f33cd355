/*  db_schema — the numbered SQL migrations (sql/NNNN_name.sql) embedded in
    every binary by sql/CMakeLists.txt, and the blocking runner and checker
    that use them. The functions open their own libpq connection and block
    until Postgres answers: call them before any event loop starts (bickyctl
    migrate; node and registry startup), from any thread, never from a loop.

    The schema version of a database is the highest version recorded in its
    table schema_migrations(version int primary key, name text, applied_at
    timestamptz); 0 when the table does not exist. A binary's schema version
    (DB_SCHEMA_VERSION in the design docs) is db_schema_latest(): the highest
    version embedded in it. */
#ifndef BICKY_DB_SCHEMA_H
#define BICKY_DB_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    int version;      /* NNNN of sql/NNNN_name.sql, > 0, strictly increasing in the table */
    const char *name; /* "name" part of the file name, e.g. "init" */
    const char *sql;  /* the file's text, run as one multi-statement query */
} db_migration_t;

/* The embedded migrations ordered by version (generated; read-only), and
   their count. db_migrations[db_migrations_count] is a {0, NULL, NULL} sentinel. */
extern const db_migration_t db_migrations[];
extern const size_t db_migrations_count;

/* Advisory-lock key taken by db_schema_migrate, so concurrent runs serialise. */
#define DB_SCHEMA_LOCK_KEY 0x62696b79L /* "biky" */

/* The highest embedded migration version (0 when none is embedded). */
int db_schema_latest(void);

/* Brings the database named by conninfo up to db_schema_latest(): creates
   schema_migrations if missing, takes the advisory lock DB_SCHEMA_LOCK_KEY
   (a concurrent run waits for it), then applies every embedded migration
   not yet recorded, each in its own transaction together with its
   schema_migrations row. Idempotent: a second run applies nothing and says
   so. Progress lines go to report (borrowed; may be NULL). Refuses a
   database whose version is newer than this binary knows.
   Returns the number of migrations applied (0 when already up to date), or
   -1 with a one-line reason in err (never containing a password). */
int db_schema_migrate(const char *conninfo, FILE *report, char *err, size_t errlen);

/* Returns 0 when the database is exactly at db_schema_latest() (every
   embedded version recorded, none newer). Otherwise -1 and err holds one of:
     "database schema version N is newer than this binary knows (M); upgrade bicky"
     "database schema is at version N, this binary needs M; run `bickyctl migrate`"
     "cannot connect to the database (host=… dbname=…): <libpq message>"
   Node and registry call it at startup and exit 1 with err. */
int db_schema_check(const char *conninfo, char *err, size_t errlen);

/* libpq's PGconn, for the callers that include <libpq-fe.h> themselves. */
struct pg_conn;

/* The blocking connect shared by every short-lived or thread-owned
   connection (db_schema itself, the registry's store thread, bickyctl):
   connect_timeout timeout_s unless conninfo sets one, application_name
   app_name unless conninfo sets one, NOTICEs silenced. Returns the
   connection (the caller PQfinish-es it), or NULL with a one-line reason in
   err that names the conninfo masked by util_mask_conninfo and never the
   password. */
/* libpq keywords before the conninfo of every Bicky connection, so that a
   silently partitioned server (packets dropped, no RST) is noticed in seconds
   rather than the kernel's ~15 minutes: TCP keepalives after 10 s idle, every
   5 s, 3 probes; tcp_user_timeout 10 s (data unacknowledged that long aborts
   the connection). Each applies unless the conninfo sets it (the conninfo
   comes last, with expand_dbname). Unix-socket connections ignore them. */
#define DB_TCP_DEFAULTS_N 5
extern const char *const db_tcp_default_keys[DB_TCP_DEFAULTS_N];
extern const char *const db_tcp_default_vals[DB_TCP_DEFAULTS_N];

struct pg_conn *db_schema_connect(
    const char *conninfo, const char *app_name, int timeout_s, char *err, size_t errlen);

/* Makes one line of a libpq message (whitespace runs → one space, tail
   trimmed) into out. */
void db_schema_error_line(const char *msg, char *out, size_t outlen);

#endif
