/*  reg_ctl_limits — `bickyctl team limits TEAM [--rate R] [--burst N] …`:
    sets, resets (the value `default`) and shows a team's limits (table
    team_limits, sql/0005_team_limits.sql; the defaults are common/limits.h).
    Blocking libpq (the CLI has no loop). */
#include "common/limits.h"
#include "registry/reg_ctl.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define S_STR2(x) #x
#define S_STR(x)  S_STR2(x)

/* The limits in table order: option, column, default (text). */
typedef struct {
    const char *name;  /* option without "--", and the column */
    const char *value; /* the option's value, NULL when not given */
    char def[32];      /* the default, as text */
} s_limit_t;

enum { S_RATE, S_BURST, S_ACTORS, S_STREAMS, S_TURNS, S_WORKTREES, S_STRATEGIES, S_COUNT };

static void s_table(s_limit_t t[S_COUNT])
{
    static const char *const names[S_COUNT] = {"rate",  "burst",     "actors",    "streams",
                                               "turns", "worktrees", "strategies"};
    limits_t d;
    limits_defaults(&d);
    for (int i = 0; i < S_COUNT; i++) {
        t[i].name = names[i];
        t[i].value = NULL;
    }
    limits_rate_format(&d, t[S_RATE].def, sizeof t[S_RATE].def);
    snprintf(t[S_BURST].def, sizeof t[S_BURST].def, "%u", d.burst);
    snprintf(t[S_ACTORS].def, sizeof t[S_ACTORS].def, "%u", d.actors);
    snprintf(t[S_STREAMS].def, sizeof t[S_STREAMS].def, "%u", d.streams);
    snprintf(t[S_TURNS].def, sizeof t[S_TURNS].def, "%u", d.turns);
    snprintf(t[S_WORKTREES].def, sizeof t[S_WORKTREES].def, "%u", d.worktrees);
    snprintf(t[S_STRATEGIES].def, sizeof t[S_STRATEGIES].def, "all");
}

/* Checks every given value; prints why and returns -1 on the first bad one. */
static int s_check(const s_limit_t t[S_COUNT])
{
    for (int i = 0; i < S_COUNT; i++) {
        const char *v = t[i].value;
        uint32_t a, b;
        const char *why = "";
        if (!v || !strcmp(v, "default")) {
            continue;
        }
        if (i == S_RATE         ? limits_parse_rate(v, &a, &b) < 0
            : i == S_STRATEGIES ? limits_parse_strategies(v, &why) < 0
                                : limits_parse_count(v, &a) < 0) {
            fprintf(stderr, "bickyctl: --%s '%s' is not valid: %s (or `default`)\n", t[i].name, v,
                    i == S_RATE         ? "N/s, N/m or N/h with N in 1..1000000000"
                    : i == S_STRATEGIES ? why
                                        : "a count in 1..1000000000");
            return -1;
        }
    }
    return 0;
}

/* Upserts the given columns (a column not given keeps its value; `default`
   stores NULL). One statement: nothing is half-written. */
static int s_set(PGconn *conn, const char *team, const s_limit_t t[S_COUNT])
{
    const char *p[1 + 2 * S_COUNT];
    p[0] = team;
    for (int i = 0; i < S_COUNT; i++) {
        bool given = t[i].value != NULL;
        p[1 + 2 * i] = given ? "t" : "f";
        p[2 + 2 * i] = given && strcmp(t[i].value, "default") ? t[i].value : NULL;
    }
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO team_limits AS l (team_id, rate, burst, actors, streams, turns, worktrees, "
        "strategies) SELECT id, $3, $5::int, $7::int, $9::int, $11::int, $13::int, "
        "string_to_array($15, ',') FROM teams WHERE name = $1 ON CONFLICT (team_id) DO UPDATE SET "
        "rate = CASE WHEN $2::bool THEN EXCLUDED.rate ELSE l.rate END, "
        "burst = CASE WHEN $4::bool THEN EXCLUDED.burst ELSE l.burst END, "
        "actors = CASE WHEN $6::bool THEN EXCLUDED.actors ELSE l.actors END, "
        "streams = CASE WHEN $8::bool THEN EXCLUDED.streams ELSE l.streams END, "
        "turns = CASE WHEN $10::bool THEN EXCLUDED.turns ELSE l.turns END, "
        "worktrees = CASE WHEN $12::bool THEN EXCLUDED.worktrees ELSE l.worktrees END, "
        "strategies = CASE WHEN $14::bool THEN EXCLUDED.strategies ELSE l.strategies END, "
        "updated_at = now()",
        1 + 2 * S_COUNT, NULL, p, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0) {
        reg_ctl_fail("database error: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

static void s_print(const reg_ctl_t *ctl, const char *team, PGresult *res, s_limit_t t[S_COUNT])
{
    if (ctl->json) {
        printf("{\"team\":");
        reg_ctl_json_str(stdout, team);
    } else {
        printf("team        %s\n", team);
    }
    for (int i = 0; i < S_COUNT; i++) {
        bool set = !PQgetisnull(res, 0, i);
        const char *v = set ? PQgetvalue(res, 0, i) : t[i].def;
        bool number = i != S_RATE && i != S_STRATEGIES;
        if (ctl->json) {
            printf(",\"%s\":", t[i].name);
            if (i == S_STRATEGIES && !set) {
                printf("null");
            } else if (number) {
                printf("%s", v);
            } else {
                reg_ctl_json_str(stdout, v);
            }
        } else {
            printf("%-11s %s%s\n", t[i].name, v, set ? "" : " (default)");
        }
    }
    if (ctl->json) {
        printf(",\"defaults\":[");
        for (int i = 0, n = 0; i < S_COUNT; i++) {
            if (PQgetisnull(res, 0, i)) {
                printf("%s\"%s\"", n++ ? "," : "", t[i].name);
            }
        }
        printf("]}\n");
    }
}

/* Prints the team's limits (defaults marked); 0, or -1 (no such team). */
static int s_show(const reg_ctl_t *ctl, PGconn *conn, const char *team, s_limit_t t[S_COUNT])
{
    const char *p[] = {team};
    PGresult *res = PQexecParams(conn,
                                 "SELECT l.rate, l.burst, l.actors, l.streams, l.turns, "
                                 "l.worktrees, array_to_string(l.strategies, ',') FROM teams tm "
                                 "LEFT JOIN team_limits l ON l.team_id = tm.id WHERE tm.name = $1",
                                 1, NULL, p, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        reg_ctl_fail("database error: %s", PQresultErrorMessage(res));
    } else if (PQntuples(res) != 1) {
        reg_ctl_fail("no such team: %s", team);
    } else {
        s_print(ctl, team, res, t);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

int reg_ctl_team_limits(reg_ctl_t *ctl, int argc, char **argv)
{
    s_limit_t t[S_COUNT];
    s_table(t);
    const cfg_opt_t opts[] = {
        {"--rate", NULL, CFG_STR, &t[S_RATE].value, 0, 0,
         "requests per gateway: N/s, N/m or N/h (default " S_STR(LIMITS_RATE_N_DEF) "/s)"},
        {"--burst", NULL, CFG_STR, &t[S_BURST].value, 0, 0,
         "token bucket size (default " S_STR(LIMITS_BURST_DEF) ")"},
        {"--actors", NULL, CFG_STR, &t[S_ACTORS].value, 0, 0,
         "resident actors per node (default " S_STR(LIMITS_ACTORS_DEF) ")"},
        {"--streams", NULL, CFG_STR, &t[S_STREAMS].value, 0, 0,
         "SSE streams + WebSockets per gateway (default " S_STR(LIMITS_STREAMS_DEF) ")"},
        {"--turns", NULL, CFG_STR, &t[S_TURNS].value, 0, 0,
         "turns running at once per node (default " S_STR(LIMITS_TURNS_DEF) ")"},
        {"--worktrees", NULL, CFG_STR, &t[S_WORKTREES].value, 0, 0,
         "active worktrees (default " S_STR(LIMITS_WORKTREES_DEF) ")"},
        {"--strategies", NULL, CFG_STR, &t[S_STRATEGIES].value, 0, 0,
         "comma list of the strategies the team may use (default: all)"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    char **pos = NULL;
    int rc = reg_ctl_parse(ctl,
                           "TEAM [--rate N/s] [--burst N] [--actors N] [--streams N] [--turns N]\n"
                           "       [--worktrees N] [--strategies a,b] [--json] [--database-url URL]"
                           "\n(the value `default` resets one; no option shows them)",
                           opts, argc, argv, 1, &pos);
    if (rc >= 0) {
        return rc;
    }
    if (s_check(t) < 0) {
        return REG_CTL_EXIT_USAGE;
    }
    PGconn *conn = reg_ctl_db_connect(ctl);
    if (!conn) {
        return ctl->database_url && *ctl->database_url ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_USAGE;
    }
    bool any = false;
    for (int i = 0; i < S_COUNT; i++) {
        any = any || t[i].value;
    }
    rc = REG_CTL_EXIT_FAIL;
    if ((!any || s_set(conn, pos[0], t) == 0) && s_show(ctl, conn, pos[0], t) == 0) {
        rc = REG_CTL_EXIT_OK;
    }
    PQfinish(conn);
    return rc;
}
