/*  test_node_render — the node's JSON of conversations, messages and events
    (node_render.c) is compact (jansson's JSON_COMPACT spacing) and otherwise
    what Postgres' json_build_object/to_char gave: each case stores tricky
    values (quotes, backslashes, every control byte, unicode, NULLs, jsonb
    with nested objects and arrays, timestamps with 0 to 6 fractional digits,
    odd years, session time zones with minute and second offsets) in a
    temporary table, selects the plain columns (NODE_*_COLS) next to the
    former SQL rendering, and compares: the same parsed value, and byte for
    byte Postgres' text with its whitespace outside strings dropped. The
    compactor (node_buf_json) is checked on its own, table-driven, and so is
    timestamp conversion (and against to_char over many random instants).
    Real Postgres: BICKY_TEST_DATABASE_URL. */
#include "common/db_conn_internal.h"
#include "node/ops/node_ops.h"
#include "tests/fixtures/pg_test.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The former SQL rendering (node_sql.c before rendering moved to the node). */
#define TS(x)        "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define TS_CURSOR(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define CONV_JSON                                                                                  \
    "json_build_object('id', c.id, 'source', c.source, 'type', c.type, 'title', c.title, "         \
    "'strategy', c.strategy, 'worktree_id', c.worktree_id, 'status', c.status, 'on_busy', "        \
    "c.on_busy, 'metadata', c.metadata, 'message_count', c.message_count, 'last_event_id', "       \
    "c.last_event_id, 'created_at', " TS("c.created_at") ", 'updated_at', " TS(                    \
        "c.updated_at") ")::text"
#define MSG_JSON                                                                                   \
    "json_build_object('id', m.id, 'conversation_id', m.conversation_id, 'seq', m.seq, 'role', "   \
    "m.role, 'content', m.content, 'status', m.status, 'metadata', m.metadata, 'created_at', " TS( \
        "m.created_at") ", 'updated_at', " TS("m.updated_at") ")::text"
#define EVT_JSON                                                                                   \
    "json_build_object('id', e.id, 'conversation_id', e.conversation_id, 'seq', e.seq, 'type', "   \
    "e.type, 'source', e.source, 'action', e.action, 'reversible', e.reversible, "                 \
    "'reverted_by', e.reverted_by, 'created_at', " TS("e.created_at") ")::text"

static PGresult *s_query(const char *sql)
{
    PGresult *r = PQexec(pg_test_conn, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg_test_conn));
    return r;
}

typedef void(s_row_fn)(node_buf_t *b, const db_result_t *res, int row, int col);

/* True when text has no whitespace outside its strings (the compact spacing). */
static bool s_compact(const char *text)
{
    bool in = false;
    for (const char *p = text; *p; p++) {
        if (in && *p == '\\' && p[1]) {
            p++;
        } else if (*p == '"') {
            in = !in;
        } else if (!in && strchr(" \t\r\n", *p)) {
            return false;
        }
    }
    return true;
}

/* Each row: cols 0.. = NODE_*_COLS, col `ncols` = Postgres' JSON text. The node's JSON is
   compact, parses to Postgres' value, and is Postgres' text without the whitespace outside
   strings (keys in the same order, the same escapes and numbers). Returns rows checked. */
static int s_compare(const char *sql, s_row_fn *render, int ncols)
{
    PGresult *r = s_query(sql);
    db_result_t res = {.pg = r};
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        node_buf_t b, want;
        node_buf_init(&b);
        node_buf_init(&want);
        render(&b, &res, i, 0);
        node_buf_json(&want, PQgetvalue(r, i, ncols));
        cr_assert(!b.oom && !want.oom);
        cr_expect(s_compact(b.data), "row %d is not compact: %s", i, b.data);
        json_error_t err;
        json_t *mine = json_loads(b.data, 0, &err);
        json_t *theirs = json_loads(PQgetvalue(r, i, ncols), 0, NULL);
        cr_expect_not_null(mine, "row %d does not parse: %s", i, err.text);
        cr_expect(json_equal(mine, theirs), "row %d: another value than Postgres'", i);
        cr_expect_str_eq(b.data, want.data, "row %d", i);
        json_decref(mine);
        json_decref(theirs);
        node_buf_free(&b);
        node_buf_free(&want);
    }
    PQclear(r);
    return rows;
}

/* Every byte 1..127 once, then unicode (2-, 3-, 4-byte, U+2028), as a SQL expression. */
#define ALL_BYTES                                                                                  \
    "(SELECT string_agg(chr(i), '') FROM generate_series(1, 127) i) || 'é€𝄞\u2028 \"\\/'"

/* The zones each case runs in: offsets of hours, half hours, and seconds (LMT). */
static const char *const s_zones[] = {"UTC",          "Asia/Kolkata",       "America/St_Johns",
                                      "Europe/Paris", "Pacific/Kiritimati", "America/Los_Angeles"};

#define NZONES (sizeof s_zones / sizeof s_zones[0])

static void s_zone(size_t i)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SET TimeZone = '%s'", s_zones[i]);
    pg_test_exec(sql);
}

/* Timestamps: 0, 1, 3, 5, 6 fractional digits, leap day, old dates with LMT offsets, far
   future, and one whose local date differs from the UTC one. */
#define TS_VALUES                                                                                  \
    "('2026-11-27 22:59:22+00'), ('2026-11-27 22:59:22.1+00'), ('2026-11-27 22:59:22.123+00'), "   \
    "('2026-11-27 22:59:22.12345+00'), ('2026-11-27 22:59:22.999999+00'), "                        \
    "('2024-02-29 23:30:00.000001+00'), ('1800-01-01 00:00:00+00'), ('1899-12-31 "                 \
    "23:59:59.5+00'), ('0999-06-01 12:00:00+00'), ('20000-01-01 00:00:00.25+00'), ('2026-12-31 "   \
    "23:45:00.5-05')"

Test(node_render, conversations_match_postgres, .init = pg_test_open, .fini = pg_test_close)
{
    pg_test_exec("CREATE TEMP TABLE rc (LIKE conversations INCLUDING DEFAULTS)");
    pg_test_exec("INSERT INTO rc (id, team_id, source, type, title, strategy, worktree_id, status, "
                 "on_busy, metadata, message_count, last_event_id, created_at, updated_at) SELECT "
                 "gen_random_uuid(), gen_random_uuid(), 'api', 'chat', NULL, 'echo', NULL, 'idle', "
                 "'enqueue', '{}', 0, NULL, t::timestamptz, t::timestamptz + interval '1.5 s' FROM "
                 "(VALUES " TS_VALUES ") v(t)");
    pg_test_exec(
        "INSERT INTO rc (id, team_id, source, type, title, strategy, worktree_id, status, "
        "on_busy, metadata, message_count, last_event_id) VALUES (gen_random_uuid(), "
        "gen_random_uuid(), " ALL_BYTES ", 'q\"uo\\te', " ALL_BYTES ", 's\\\\', "
        "gen_random_uuid(), 'x\ny', 'é', jsonb_build_object('k\"\\', " ALL_BYTES
        ", 'n', 1.50, 'a', jsonb_build_array(NULL, true, 'x')), 2147483647, "
        "9223372036854775807), (gen_random_uuid(), gen_random_uuid(), '', '', '', '', NULL, "
        "'', '', '[]', -1, 0)");
    for (size_t z = 0; z < NZONES; z++) {
        s_zone(z);
        int n = s_compare("SELECT " NODE_CONV_COLS("c") ", " CONV_JSON " FROM rc c",
                          node_render_conv_row, NODE_CONV_NCOLS);
        cr_assert_eq(n, 13);
    }
}

Test(node_render, messages_match_postgres, .init = pg_test_open, .fini = pg_test_close)
{
    pg_test_exec("CREATE TEMP TABLE rm (LIKE messages INCLUDING DEFAULTS)");
    pg_test_exec(
        "INSERT INTO rm (id, conversation_id, team_id, seq, role, content, status, metadata, "
        "created_at, updated_at) SELECT gen_random_uuid(), gen_random_uuid(), "
        "gen_random_uuid(), row_number() OVER (), 'user', 'hello', 'completed', '{}', "
        "t::timestamptz, t::timestamptz FROM (VALUES " TS_VALUES ") v(t)");
    pg_test_exec(
        "INSERT INTO rm (id, conversation_id, team_id, seq, role, content, status, metadata) "
        "VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), "
        "9223372036854775807, 'assistant', " ALL_BYTES ", 'streaming', "
        "jsonb_build_object('usage', jsonb_build_object('in', 1, 'out', 2), 'text', " ALL_BYTES
        ")), (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 1, 'tool', '', '', "
        "'\"s\"')");
    for (size_t z = 0; z < NZONES; z++) {
        s_zone(z);
        int n = s_compare("SELECT " NODE_MSG_COLS("m") ", " MSG_JSON " FROM rm m",
                          node_render_msg_row, NODE_MSG_NCOLS);
        cr_assert_eq(n, 13);
    }
}

Test(node_render, events_match_postgres, .init = pg_test_open, .fini = pg_test_close)
{
    pg_test_exec("CREATE TEMP TABLE re (LIKE events INCLUDING DEFAULTS)");
    pg_test_exec("INSERT INTO re (team_id, conversation_id, seq, type, source, action, reversible, "
                 "created_at) SELECT gen_random_uuid(), gen_random_uuid(), row_number() OVER (), "
                 "'message.created', '{\"kind\": \"api\"}', '{}', false, t::timestamptz FROM "
                 "(VALUES " TS_VALUES ") v(t)");
    pg_test_exec("UPDATE re SET reverted_by = seq + 1000 WHERE seq % 2 = 0");
    pg_test_exec("INSERT INTO re (team_id, conversation_id, seq, type, source, action, reversible) "
                 "VALUES (gen_random_uuid(), NULL, NULL, " ALL_BYTES
                 ", jsonb_build_object('kind', " ALL_BYTES
                 "), jsonb_build_object('message', jsonb_build_object('content', " ALL_BYTES
                 ")), true)");
    for (size_t z = 0; z < NZONES; z++) {
        s_zone(z);
        int n = s_compare("SELECT " NODE_EVT_COLS("e") ", " EVT_JSON " FROM re e",
                          node_render_evt_row, NODE_EVT_NCOLS);
        cr_assert_eq(n, 12);
    }
}

/* node_ts_api and node_ts_cursor against to_char on 20,000 random instants per zone. */
Test(node_render, timestamps_match_to_char, .init = pg_test_open, .fini = pg_test_close)
{
    for (size_t z = 0; z < NZONES; z++) {
        s_zone(z);
        PGresult *r = s_query("SELECT t::text, " TS("t") ", " TS_CURSOR(
            "t") " FROM (SELECT timestamptz "
                 "'1850-01-01' + random() * interval '250 years' AS t FROM generate_series(1, "
                 "20000) "
                 "UNION ALL SELECT date_trunc('second', now()) UNION ALL SELECT date_trunc('ms', "
                 "now())) s");
        for (int i = 0; i < PQntuples(r); i++) {
            char api[32], cur[40];
            const char *pg = PQgetvalue(r, i, 0);
            cr_assert_gt(node_ts_api(pg, api), 0, "%s", pg);
            cr_assert_gt(node_ts_cursor(pg, cur), 0, "%s", pg);
            cr_assert_str_eq(api, PQgetvalue(r, i, 1), "%s in %s", pg, s_zones[z]);
            cr_assert_str_eq(cur, PQgetvalue(r, i, 2), "%s in %s", pg, s_zones[z]);
        }
        PQclear(r);
    }
}

Test(node_render, timestamp_table)
{
    static const struct {
        const char *pg, *api, *cursor;
    } cases[] = {
        {"2026-11-27 22:59:22+00", "2026-11-27T22:59:22.000Z", "2026-11-27T22:59:22.000000Z"},
        {"2026-11-27 22:59:22.1+00", "2026-11-27T22:59:22.100Z", "2026-11-27T22:59:22.100000Z"},
        {"2026-11-27 22:59:22.123456+00", "2026-11-27T22:59:22.123Z",
         "2026-11-27T22:59:22.123456Z"},
        {"2026-11-27 22:59:22.999999+00", "2026-11-27T22:59:22.999Z",
         "2026-11-27T22:59:22.999999Z"},
        {"2027-01-01 04:31:27.5+05:30", "2026-12-31T23:01:27.500Z", "2026-12-31T23:01:27.500000Z"},
        {"2024-02-28 22:00:00-03", "2024-02-29T01:00:00.000Z", "2024-02-29T01:00:00.000000Z"},
        {"1900-01-01 00:00:00+00:09:21", "1899-12-31T23:50:39.000Z", "1899-12-31T23:50:39.000000Z"},
        {"2026-01-01 00:00:00+00:00:30", "2025-12-31T23:59:30.000Z", "2025-12-31T23:59:30.000000Z"},
        {"20000-01-01 00:00:00+00", "20000-01-01T00:00:00.000Z", "20000-01-01T00:00:00.000000Z"},
        {"0044-03-15 00:00:00+00 BC", "0044-03-15T00:00:00.000Z", "0044-03-15T00:00:00.000000Z"},
        {"2026-11-27T22:59:22Z", NULL, NULL},
        {"infinity", NULL, NULL},
        {"-infinity", NULL, NULL},
        {"", NULL, NULL},
        {"2026-11-27 22:59:22", NULL, NULL},
        {"2026-11-27 22:59:22.1234567+00", NULL, NULL},
        {"2026-13-27 22:59:22+00", NULL, NULL},
        {"2026-11-27 22:59:22+00 AD", NULL, NULL},
        {"2026-11-27 22:59:22+0", NULL, NULL},
        {"999999999999-11-27 22:59:22+00", NULL, NULL},
        {"2026-11-27 22:59:22.+00", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char api[32], cur[40];
        int a = node_ts_api(cases[i].pg, api);
        int c = node_ts_cursor(cases[i].pg, cur);
        if (!cases[i].api) {
            cr_expect_eq(a, -1, "%s", cases[i].pg);
            cr_expect_eq(c, -1, "%s", cases[i].pg);
            cr_expect_str_eq(api, "");
            continue;
        }
        cr_expect_str_eq(api, cases[i].api, "%s", cases[i].pg);
        cr_expect_str_eq(cur, cases[i].cursor, "%s", cases[i].pg);
        cr_expect_eq(a, (int)strlen(cases[i].api));
    }
    char out[32];
    cr_expect_eq(node_ts_api(NULL, out), -1);
}

/* Values held in memory (the write path): NULLs, flags, the node's own text. */
Test(node_render, fields)
{
    node_buf_t b;
    node_buf_init(&b);
    node_evt_fields_t e = {.id = 7,
                           .seq_null = true,
                           .type = "team.x",
                           .source = "{}",
                           .action = NULL,
                           .reversible = true,
                           .created_at = "bad"};
    node_render_evt(&b, &e);
    cr_expect_str_eq(b.data, "{\"id\":7,\"conversation_id\":null,\"seq\":null,"
                             "\"type\":\"team.x\",\"source\":{},\"action\":null,"
                             "\"reversible\":true,\"reverted_by\":null,\"created_at\":null}");
    node_buf_free(&b);
    node_conv_fields_t c = {.id = "i",
                            .source = "s",
                            .type = "t",
                            .strategy = "e",
                            .status = "idle",
                            .on_busy = "enqueue",
                            .metadata = "{\"a\": [1, 2], \"s\": \"x : y, z\"}",
                            .message_count = 3,
                            .last_event_id = 9,
                            .created_at = "2026-11-27 22:59:22+00",
                            .updated_at = "2026-11-27 22:59:22.5+00"};
    node_render_conv(&b, &c);
    cr_expect_str_eq(b.data,
                     "{\"id\":\"i\",\"source\":\"s\",\"type\":\"t\",\"title\":null,"
                     "\"strategy\":\"e\",\"worktree_id\":null,\"status\":\"idle\","
                     "\"on_busy\":\"enqueue\",\"metadata\":{\"a\":[1,2],\"s\":\"x : y, z\"},"
                     "\"message_count\":3,\"last_event_id\":9,"
                     "\"created_at\":\"2026-11-27T22:59:22.000Z\","
                     "\"updated_at\":\"2026-11-27T22:59:22.500Z\"}");
    node_buf_free(&b);
    /* The node's own text (a row it writes): verbatim, and an embedded row joined to the
       action as jsonb's || would. */
    node_evt_fields_t own = {.id = 8,
                             .conversation_id = "c",
                             .seq = 2,
                             .type = "turn.cancelled",
                             .source = "{\"kind\":\"user\",\"id\":\"t\"}",
                             .action = "{\"message_id\":\"m\"}",
                             .embed = "{\"message\":{\"id\":\"m\",\"metadata\":{}}}",
                             .created_at = "2026-11-27 22:59:22+00",
                             .own = true};
    node_render_evt(&b, &own);
    cr_expect_str_eq(b.data, "{\"id\":8,\"conversation_id\":\"c\",\"seq\":2,\"type\":"
                             "\"turn.cancelled\",\"source\":{\"kind\":\"user\",\"id\":\"t\"},"
                             "\"action\":{\"message_id\":\"m\",\"message\":{\"id\":\"m\","
                             "\"metadata\":{}}},\"reversible\":false,\"reverted_by\":null,"
                             "\"created_at\":"
                             "\"2026-11-27T22:59:22.000Z\"}");
    node_buf_free(&b);
    own.action = "{}";
    node_render_evt(&b, &own);
    cr_expect(strstr(b.data, ",\"action\":{\"message\":{\"id\":\"m\",\"metadata\":{}}},"), "%s",
              b.data);
    node_buf_free(&b);
    own.action = "{\"a\":1}";
    own.embed = NULL;
    node_render_evt(&b, &own);
    cr_expect(strstr(b.data, ",\"action\":{\"a\":1},"), "%s", b.data);
    node_buf_free(&b);
    node_render_str(&b, "a\x01\x1f\x7f\"\\/é");
    cr_expect_str_eq(b.data, "\"a\\u0001\\u001f\x7f\\\"\\\\/é\"");
    node_buf_free(&b);
}

/* node_buf_json: the whitespace outside strings goes, strings stay byte for byte. */
Test(node_render, compact_table)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{}", "{}"},
        {"{\"a\": 1, \"b\": [1, 2, {\"c\": null}]}", "{\"a\":1,\"b\":[1,2,{\"c\":null}]}"},
        {"{\"id\" : 7, \"t\" : \"x\"}", "{\"id\":7,\"t\":\"x\"}"},
        {"{ \"idle\" : 2, \"error\" : 1 }", "{\"idle\":2,\"error\":1}"},
        {"[\n  1,\t2\r\n]", "[1,2]"},
        {"{\"s\": \"a : b, c\"}", "{\"s\":\"a : b, c\"}"},
        {"{\"s\": \"q\\\" : \\\\\", \"t\": \" \"}", "{\"s\":\"q\\\" : \\\\\",\"t\":\" \"}"},
        {"{\"é\": \"€ 𝄞\", \"u\": \"\\u0001 \\n\"}", "{\"é\":\"€ 𝄞\",\"u\":\"\\u0001 \\n\"}"},
        {"\"plain text\"", "\"plain text\""},
        {"  1.50 ", "1.50"},
        {"", ""},
        {"{\"cut\": \"ab\\", "{\"cut\":\"ab\\"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        node_buf_t b;
        node_buf_init(&b);
        node_buf_json(&b, cases[i].in);
        cr_expect_str_eq(b.data ? b.data : "", cases[i].out, "case %zu", i);
        node_buf_free(&b);
    }
    node_buf_t b;
    node_buf_init(&b);
    node_buf_json(&b, NULL);
    cr_expect_str_eq(b.data, "null");
    node_buf_free(&b);
}
