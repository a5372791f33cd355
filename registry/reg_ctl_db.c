/*  reg_ctl_db — bickyctl commands answered by Postgres: migrate and the API
    token commands. Blocking libpq (the CLI has no loop). Only the SHA-256
    of a token is stored; the token itself is printed once, at creation. */
#include "common/db_schema.h"
#include "common/util.h"
#include "registry/reg_ctl.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX_LEN 10  /* token characters kept to recognise it in lists */
#define S_TEAM_MAX   100 /* teams.name CHECK */
#define S_LABEL_MAX  200 /* token label */

#define S_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* ---- connection and queries --------------------------------------------- */

/* Connects and checks the schema; NULL after printing why. */
static PGconn *s_connect(const reg_ctl_t *ctl)
{
    char err[768];
    PGconn *conn = NULL;
    if (db_schema_check(ctl->database_url, err, sizeof err) < 0 ||
        !(conn = db_schema_connect(ctl->database_url, "bickyctl", 10, err, sizeof err))) {
        reg_ctl_fail("%s", err);
    }
    return conn;
}

/* Runs a parameterised statement; the result (caller clears) or NULL after
   printing the server's message. */
static PGresult *s_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        db_schema_error_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), msg,
                             sizeof msg);
        reg_ctl_fail("database error: %s", msg);
        PQclear(res);
        return NULL;
    }
    return res;
}

static int s_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = s_query(conn, sql, nparams, params);
    PQclear(res);
    return res ? 0 : -1;
}

static int s_need_db(const reg_ctl_t *ctl)
{
    if (!ctl->database_url || !*ctl->database_url) {
        fprintf(stderr, "bickyctl: this command needs --database-url (or BICKY_DATABASE_URL)\n");
        return REG_CTL_EXIT_USAGE;
    }
    return -1;
}

PGconn *reg_ctl_db_connect(const reg_ctl_t *ctl)
{
    if (s_need_db(ctl) >= 0) {
        return NULL;
    }
    PGconn *conn = s_connect(ctl);
    if (conn && s_exec(conn, "SET TimeZone = 'UTC'", 0, NULL) < 0) {
        PQfinish(conn);
        conn = NULL;
    }
    return conn;
}

/* A printable name: 1..max bytes, no control characters. */
static bool s_text_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- migrate ------------------------------------------------------------ */

int reg_ctl_migrate(reg_ctl_t *ctl, int argc, char **argv)
{
    int rc = reg_ctl_parse(ctl, "[--database-url URL] [--json]", NULL, argc, argv, 0, NULL);
    if (rc >= 0 || (rc = s_need_db(ctl)) >= 0) {
        return rc;
    }
    char err[768];
    int applied = db_schema_migrate(ctl->database_url, ctl->json ? NULL : stdout, err, sizeof err);
    if (applied < 0) {
        return reg_ctl_fail("%s", err);
    }
    if (ctl->json) {
        printf("{\"applied\":%d,\"version\":%d}\n", applied, db_schema_latest());
    }
    return REG_CTL_EXIT_OK;
}

/* ---- token create ------------------------------------------------------- */

typedef struct {
    char token[48];                      /* the secret, shown once */
    char id[UTIL_UUID_STR_LEN + 1];      /* api_tokens.id */
    char team_id[UTIL_UUID_STR_LEN + 1]; /* teams.id */
    bool team_created;                   /* the team did not exist before */
    bool admin;                          /* may drain/undrain nodes (api_tokens.admin) */
} s_new_token_t;

static void s_new_uuid(char out[UTIL_UUID_STR_LEN + 1])
{
    uint8_t raw[16];
    util_uuid_generate(raw);
    util_uuid_format(raw, out);
}

/* Finds or creates the team; fills t->team_id and t->team_created. */
static int s_team(PGconn *conn, const char *team, s_new_token_t *t)
{
    char fresh[UTIL_UUID_STR_LEN + 1];
    s_new_uuid(fresh);
    const char *ins[] = {fresh, team}, *sel[] = {team};
    PGresult *res = s_query(conn,
                            "INSERT INTO teams (id, name) VALUES ($1::uuid, $2)"
                            " ON CONFLICT (name) DO NOTHING RETURNING id",
                            2, ins);
    if (!res) {
        return -1;
    }
    t->team_created = PQntuples(res) == 1;
    PQclear(res);
    if (!(res = s_query(conn, "SELECT id FROM teams WHERE name = $1", 1, sel))) {
        return -1;
    }
    int ok = PQntuples(res) == 1;
    if (ok) {
        snprintf(t->team_id, sizeof t->team_id, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

static int s_create(PGconn *conn, const char *team, const char *label, s_new_token_t *t)
{
    char sha[65], prefix[S_PREFIX_LEN + 1];
    if (util_token_generate(t->token) < 0) {
        reg_ctl_fail("cannot generate a token (no randomness)");
        return -1;
    }
    util_sha256_hex(t->token, strlen(t->token), sha);
    snprintf(prefix, sizeof prefix, "%s", t->token);
    s_new_uuid(t->id);
    if (s_exec(conn, "BEGIN", 0, NULL) < 0) {
        return -1;
    }
    int rc = s_team(conn, team, t);
    if (rc == 0) {
        const char *params[] = {t->id, t->team_id, sha, prefix, label, t->admin ? "t" : "f"};
        rc = s_exec(conn,
                    "INSERT INTO api_tokens (id, team_id, token_sha256, prefix, name, admin)"
                    " VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::boolean)",
                    6, params);
    }
    if (rc == 0) {
        rc = s_exec(conn, "COMMIT", 0, NULL);
    } else {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    return rc;
}

static void
s_print_created(const reg_ctl_t *ctl, const s_new_token_t *t, const char *team, const char *label)
{
    if (ctl->json) {
        printf("{\"token\":\"%s\",\"id\":\"%s\",\"team\":", t->token, t->id);
        reg_ctl_json_str(stdout, team);
        printf(",\"team_id\":\"%s\",\"team_created\":%s,\"admin\":%s,\"name\":", t->team_id,
               t->team_created ? "true" : "false", t->admin ? "true" : "false");
        reg_ctl_json_str(stdout, label);
        printf("}\n");
        return;
    }
    printf("token  %s\n", t->token);
    printf("id     %s\n", t->id);
    printf("team   %s (%s%s)\n", team, t->team_created ? "new team " : "", t->team_id);
    printf("name   %s\n", label ? label : "-");
    printf("admin  %s\n",
           t->admin ? "yes: may drain and undrain nodes (POST /api/nodes/:id/drain)" : "no");
    printf("Store the token now: it is shown only this once.\n");
}

int reg_ctl_token_create(reg_ctl_t *ctl, int argc, char **argv)
{
    const char *team = NULL, *label = NULL;
    bool admin = false;
    const cfg_opt_t opts[] = {
        {"--team", NULL, CFG_STR, &team, 0, 0, "team name (the team is created when missing)"},
        {"--name", NULL, CFG_STR, &label, 0, 0, "a label for the token, e.g. ci"},
        {"--admin", NULL, CFG_BOOL, &admin, 0, 0,
         "an admin token: may also drain and undrain nodes through the gateway"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc =
        reg_ctl_parse(ctl, "--team NAME [--name LABEL] [--admin] [--json] [--database-url URL]",
                      opts, argc, argv, 0, NULL);
    if (rc >= 0 || (rc = s_need_db(ctl)) >= 0) {
        return rc;
    }
    if (!s_text_ok(team, S_TEAM_MAX)) {
        fprintf(stderr, "bickyctl: --team NAME is required (1..%d printable characters)\n",
                S_TEAM_MAX);
        return REG_CTL_EXIT_USAGE;
    }
    if (label && !s_text_ok(label, S_LABEL_MAX)) {
        fprintf(stderr, "bickyctl: --name must be 1..%d printable characters\n", S_LABEL_MAX);
        return REG_CTL_EXIT_USAGE;
    }
    PGconn *conn = s_connect(ctl);
    if (!conn) {
        return REG_CTL_EXIT_FAIL;
    }
    s_new_token_t t = {.admin = admin};
    rc = s_create(conn, team, label, &t) < 0 ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_OK;
    PQfinish(conn);
    if (rc == REG_CTL_EXIT_OK) {
        s_print_created(ctl, &t, team, label);
    }
    return rc;
}

/* ---- token list --------------------------------------------------------- */

static const char *s_val(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void s_list_json(PGresult *res)
{
    static const char *const keys[] = {"id",         "team",         "prefix",    "name",
                                       "created_at", "last_used_at", "revoked_at"};
    printf("[");
    for (int r = 0; r < PQntuples(res); r++) {
        printf("%s{", r ? "," : "");
        for (int c = 0; c < 7; c++) {
            printf("%s\"%s\":", c ? "," : "", keys[c]);
            reg_ctl_json_str(stdout, s_val(res, r, c));
        }
        printf(",\"admin\":%s}", !strcmp(PQgetvalue(res, r, 7), "t") ? "true" : "false");
    }
    printf("]\n");
}

static int s_list_table(PGresult *res)
{
    static const char *const headers[] = {"ID",        "TEAM",    "PREFIX", "NAME", "CREATED",
                                          "LAST USED", "REVOKED", "ADMIN",  NULL};
    reg_ctl_table_t *t = reg_ctl_table_new(headers);
    for (int r = 0; t && r < PQntuples(res); r++) {
        const char *cells[8];
        for (int c = 0; c < 7; c++) {
            cells[c] = s_val(res, r, c);
        }
        cells[5] = cells[5] ? cells[5] : "never";
        cells[7] = !strcmp(PQgetvalue(res, r, 7), "t") ? "admin" : "-";
        if (reg_ctl_table_add(t, cells) < 0) {
            reg_ctl_table_destroy(&t);
        }
    }
    if (!t) {
        return reg_ctl_fail("out of memory");
    }
    reg_ctl_table_print(t, stdout);
    reg_ctl_table_destroy(&t);
    return REG_CTL_EXIT_OK;
}

/* 0 when team is NULL or exists; otherwise prints why and returns -1. */
static int s_team_exists(PGconn *conn, const char *team)
{
    const char *params[] = {team};
    PGresult *res = team ? s_query(conn, "SELECT 1 FROM teams WHERE name = $1", 1, params) : NULL;
    if (!team) {
        return 0;
    }
    int found = res && PQntuples(res) == 1;
    PQclear(res);
    if (res && !found) {
        reg_ctl_fail("no such team: %s", team);
    }
    return found ? 0 : -1;
}

int reg_ctl_token_list(reg_ctl_t *ctl, int argc, char **argv)
{
    const char *team = NULL;
    const cfg_opt_t opts[] = {
        {"--team", NULL, CFG_STR, &team, 0, 0, "only this team's tokens"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = reg_ctl_parse(ctl, "[--team NAME] [--json] [--database-url URL]", opts, argc, argv, 0,
                           NULL);
    if (rc >= 0 || (rc = s_need_db(ctl)) >= 0) {
        return rc;
    }
    PGconn *conn = s_connect(ctl);
    if (!conn) {
        return REG_CTL_EXIT_FAIL;
    }
    const char *params[] = {team};
    PGresult *res = NULL;
    if (s_team_exists(conn, team) == 0) {
        res = s_query(
            conn,
            "SELECT t.id, tm.name, t.prefix, t.name, " S_TS("t.created_at") ", " S_TS(
                "t.last_used_at") ", " S_TS("t.revoked_at") ", t.admin FROM api_tokens t JOIN "
                                                            "teams tm ON "
                                                            "tm.id = t.team_id"
                                                            " WHERE $1::text IS NULL OR tm.name = "
                                                            "$1"
                                                            " ORDER BY tm.name, t.created_at, t.id",
            1, params);
    }
    rc = REG_CTL_EXIT_FAIL;
    if (res && ctl->json) {
        s_list_json(res);
        rc = REG_CTL_EXIT_OK;
    } else if (res) {
        rc = s_list_table(res);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* ---- token revoke ------------------------------------------------------- */

/* Prints the outcome of a revoke that changed nothing: already revoked, or no such token. */
static int s_revoke_noop(const reg_ctl_t *ctl, PGconn *conn, const char *id)
{
    const char *params[] = {id};
    PGresult *res = s_query(
        conn, "SELECT " S_TS("revoked_at") " FROM api_tokens WHERE id = $1::uuid", 1, params);
    if (!res) {
        return REG_CTL_EXIT_FAIL;
    }
    int rc = REG_CTL_EXIT_OK;
    if (PQntuples(res) == 0) {
        rc = reg_ctl_fail("no such token: %s", id);
    } else if (ctl->json) {
        printf("{\"id\":\"%s\",\"revoked_at\":\"%s\",\"already_revoked\":true}\n", id,
               PQgetvalue(res, 0, 0));
    } else {
        printf("token %s was already revoked at %s\n", id, PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

int reg_ctl_token_revoke(reg_ctl_t *ctl, int argc, char **argv)
{
    char **pos = NULL;
    int rc = reg_ctl_parse(ctl, "ID [--json] [--database-url URL]", NULL, argc, argv, 1, &pos);
    if (rc >= 0 || (rc = s_need_db(ctl)) >= 0) {
        return rc;
    }
    uint8_t raw[16];
    char id[UTIL_UUID_STR_LEN + 1];
    if (util_uuid_parse(pos[0], raw) < 0) {
        fprintf(stderr, "bickyctl: '%s' is not a token id (a UUID)\n", pos[0]);
        return REG_CTL_EXIT_USAGE;
    }
    util_uuid_format(raw, id);
    PGconn *conn = s_connect(ctl);
    if (!conn) {
        return REG_CTL_EXIT_FAIL;
    }
    const char *params[] = {id};
    PGresult *res = s_query(conn,
                            "UPDATE api_tokens SET revoked_at = now()"
                            " WHERE id = $1::uuid AND revoked_at IS NULL"
                            " RETURNING " S_TS("revoked_at"),
                            1, params);
    if (!res) {
        rc = REG_CTL_EXIT_FAIL;
    } else if (PQntuples(res) == 0) {
        rc = s_revoke_noop(ctl, conn, id);
    } else if (ctl->json) {
        printf("{\"id\":\"%s\",\"revoked_at\":\"%s\",\"already_revoked\":false}\n", id,
               PQgetvalue(res, 0, 0));
        rc = REG_CTL_EXIT_OK;
    } else {
        printf("revoked token %s at %s\n", id, PQgetvalue(res, 0, 0));
        rc = REG_CTL_EXIT_OK;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
