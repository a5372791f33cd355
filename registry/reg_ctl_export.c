/*  reg_ctl_export — `bickyctl export --team NAME [--after CONV_ID]`: a team's
    conversations with their messages and events as JSON Lines on stdout,
    streamed (libpq single-row mode: one row in memory at a time). Order:
    conversations by (created_at, id), each one's line followed by its
    messages and then its events in seq order, so `--after` the last
    conversation whose records are complete resumes an interrupted export.
    Blocking libpq (the CLI has no loop). docs/bickyctl.md, "export". */
#include "common/db_schema.h"
#include "common/util.h"
#include "registry/reg_ctl.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/* One query, one ordered stream. Team events (no conversation) are not
   exported: they name worktrees, which do not move. An event's reverted_by
   is exported as the seq of the reverting event of the same conversation. */
static const char s_export_sql[] =
    "WITH conv AS (SELECT c.* FROM conversations c WHERE c.team_id = $1::uuid"
    " AND ($2::uuid IS NULL OR (c.created_at, c.id) >"
    " (SELECT a.created_at, a.id FROM conversations a WHERE a.id = $2::uuid AND a.team_id = "
    "$1::uuid)))"
    " SELECT line FROM ("
    " SELECT c.created_at AS k1, c.id AS k2, 0 AS part, 0::bigint AS seq,"
    " json_build_object('kind','conversation','id',c.id,'source',c.source,'type',c.type,"
    "'title',c.title,'strategy',c.strategy,'status',c.status,'on_busy',c.on_busy,"
    "'metadata',c.metadata,'message_count',c.message_count,'last_msg_seq',c.last_msg_seq,"
    "'last_event_seq',c.last_event_seq,'created_at',c.created_at,'updated_at',c.updated_at)::text"
    " AS line FROM conv c"
    " UNION ALL SELECT c.created_at, c.id, 1, m.seq,"
    " json_build_object('kind','message','id',m.id,'conversation_id',m.conversation_id,"
    "'seq',m.seq,'role',m.role,'content',m.content,'status',m.status,'metadata',m.metadata,"
    "'created_at',m.created_at,'updated_at',m.updated_at)::text"
    " FROM conv c JOIN messages m ON m.conversation_id = c.id"
    " UNION ALL SELECT c.created_at, c.id, 2, e.seq,"
    " json_build_object('kind','event','id',e.id,'conversation_id',e.conversation_id,"
    "'seq',e.seq,'type',e.type,'source',e.source,'action',e.action,'reversible',e.reversible,"
    "'reverted_by_seq',(SELECT r.seq FROM events r WHERE r.id = e.reverted_by"
    " AND r.conversation_id = e.conversation_id),'created_at',e.created_at)::text"
    " FROM conv c JOIN events e ON e.conversation_id = c.id"
    ") x ORDER BY k1, k2, part, seq";

/* Runs a one-row lookup; 1 found (value copied to out), 0 not found, -1 error. */
static int s_lookup(PGconn *conn, const char *sql, int n, const char *const *params, char *out)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        reg_ctl_fail("database error: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) == 1;
    if (found && out) {
        snprintf(out, UTIL_UUID_STR_LEN + 1, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return found;
}

/* Writes one row as compact JSON (Postgres spaces its JSON). -1 on a write error. */
static int s_write_line(const char *text, FILE *out)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    char *line = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    int rc = line && fputs(line, out) >= 0 && fputc('\n', out) != EOF ? 0 : -1;
    free(line);
    return rc;
}

/* Streams the export; returns the exit code. */
static int s_stream(PGconn *conn, const char *team_id, const char *after, long *lines)
{
    const char *params[] = {team_id, after};
    if (!PQsendQueryParams(conn, s_export_sql, 2, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        return reg_ctl_fail("database error: %s", PQerrorMessage(conn));
    }
    int rc = REG_CTL_EXIT_OK;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && rc == REG_CTL_EXIT_OK) {
            if (s_write_line(PQgetvalue(res, 0, 0), stdout) < 0) {
                rc = reg_ctl_fail("cannot write the export");
            }
            (*lines)++;
        } else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE) {
            rc = reg_ctl_fail("database error: %s", PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    if (fflush(stdout) != 0 && rc == REG_CTL_EXIT_OK) {
        rc = reg_ctl_fail("cannot write the export");
    }
    return rc;
}

int reg_ctl_export(reg_ctl_t *ctl, int argc, char **argv)
{
    const char *team = NULL, *after = NULL;
    const cfg_opt_t opts[] = {
        {"--team", NULL, CFG_STR, &team, 0, 0, "team to export (required)"},
        {"--after", NULL, CFG_STR, &after, 0, 0,
         "resume: only conversations after this one (its id)"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc =
        reg_ctl_parse(ctl, "--team NAME [--after CONV_ID] > FILE.jsonl", opts, argc, argv, 0, NULL);
    if (rc >= 0) {
        return rc;
    }
    uint8_t raw[16];
    if (!team || !*team || (after && util_uuid_parse(after, raw) < 0)) {
        fprintf(stderr, "bickyctl export: %s\n",
                !team || !*team ? "--team NAME is required" : "--after must be a conversation id");
        return REG_CTL_EXIT_USAGE;
    }
    PGconn *conn = reg_ctl_db_connect(ctl);
    if (!conn) {
        return ctl->database_url ? REG_CTL_EXIT_FAIL : REG_CTL_EXIT_USAGE;
    }
    char team_id[UTIL_UUID_STR_LEN + 1];
    const char *p[] = {team, after};
    int found = s_lookup(conn, "SELECT id FROM teams WHERE name = $1", 1, p, team_id);
    const char *q[] = {after, team_id};
    if (found == 1 && after) {
        found = s_lookup(conn, "SELECT id FROM conversations WHERE id = $1 AND team_id = $2", 2, q,
                         NULL);
        if (found == 0) {
            rc = reg_ctl_fail("no conversation %s in team %s", after, team);
        }
    } else if (found == 0) {
        rc = reg_ctl_fail("no such team: %s", team);
    }
    long lines = 0;
    if (found == 1) {
        rc = s_stream(conn, team_id, after, &lines);
    } else if (found < 0) {
        rc = REG_CTL_EXIT_FAIL;
    }
    PQfinish(conn);
    return rc;
}
