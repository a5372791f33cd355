/*  node_render — the API.md JSON of conversations, messages and events, built
    in the node from plain fields (instead of json_build_object/to_char in SQL).

    The output is byte for byte what Postgres' json_build_object gave before
    (tests/node/test_node_render.c compares both on the same values):
      {"id" : "…", "source" : "api", …}    keys in API.md order, " : " and ", "
    - strings escaped like Postgres' escape_json (\" \\ \b \f \n \r \t, other
      bytes < 0x20 as \u00xx lowercase, everything else verbatim: UTF-8, '/');
    - a NULL const char * renders null (title, worktree_id, an event's
      conversation_id…); *_null flags do the same for numbers;
    - metadata / action / source are jsonb TEXT, inserted verbatim (as
      json_build_object did with a jsonb column: Postgres' jsonb output);
    - timestamps are given as Postgres timestamptz text output (any DateStyle
      ISO offset, e.g. "2026-11-27 22:59:22.12+00", "… 04:31:27+05:30") and
      rendered "2026-11-27T22:59:22.120Z" (UTC, milliseconds truncated, as
      to_char's MS). An unparsable timestamp (infinity…) renders null, as
      to_char did.

    Two ways to use it:
      1. from values held in memory: fill node_{conv,msg,evt}_fields_t and call
         node_render_{conv,msg,evt};
      2. from a result row: select NODE_{CONV,MSG,EVT}_COLS("alias") (the SQL
         column list, in the order the row readers expect) and call
         node_render_{conv,msg,evt}_row(b, res, row, first_column).
    node_ts_api / node_ts_cursor convert one timestamptz text.

    bicky-node sets PGDATESTYLE=ISO and PGTZ=UTC (node_main.c), so libpq asks
    for them at connect; any other TimeZone works too (offsets applied here).
    Pure functions; any thread. */
#ifndef BICKY_NODE_RENDER_H
#define BICKY_NODE_RENDER_H

#include "common/db_conn.h"
#include "node/node_internal.h"

#include <stdbool.h>

typedef struct {
    const char *id, *conversation_id; /* uuid text */
    long long seq;
    const char *role, *content, *status;
    const char *metadata;                /* jsonb text, verbatim */
    const char *created_at, *updated_at; /* timestamptz text */
} node_msg_fields_t;

typedef struct {
    const char *id, *source, *type, *title, *strategy, *worktree_id, *status, *on_busy;
    const char *metadata; /* jsonb text, verbatim */
    long long message_count;
    long long last_event_id;
    bool last_event_id_null;
    const char *created_at, *updated_at; /* timestamptz text */
} node_conv_fields_t;

typedef struct {
    long long id;
    const char *conversation_id; /* NULL for team events */
    long long seq;
    bool seq_null;
    const char *type;
    const char *source, *action; /* jsonb text, verbatim */
    bool reversible;
    const char *created_at; /* timestamptz text */
} node_evt_fields_t;

/* Append one resource's JSON object to b (b->oom set on allocation failure). */
void node_render_msg(node_buf_t *b, const node_msg_fields_t *m);
void node_render_conv(node_buf_t *b, const node_conv_fields_t *c);
void node_render_evt(node_buf_t *b, const node_evt_fields_t *e);

/* Column lists (SQL text; a is the table alias as a string literal) matching the row
   readers below: NODE_*_NCOLS columns each. */
#define NODE_CONV_COLS(a)                                                                          \
    a ".id, " a ".source, " a ".type, " a ".title, " a ".strategy, " a ".worktree_id, " a          \
      ".status, " a ".on_busy, " a ".metadata, " a ".message_count, " a ".last_event_id, " a       \
      ".created_at, " a ".updated_at"
#define NODE_CONV_NCOLS          13
#define NODE_CONV_COL_CREATED_AT 11 /* offset of created_at in NODE_CONV_COLS */
#define NODE_MSG_COLS(a)                                                                           \
    a ".id, " a ".conversation_id, " a ".seq, " a ".role, " a ".content, " a ".status, " a         \
      ".metadata, " a ".created_at, " a ".updated_at"
#define NODE_MSG_NCOLS   9
#define NODE_MSG_COL_SEQ 2 /* offset of seq in NODE_MSG_COLS */
#define NODE_EVT_COLS(a)                                                                           \
    a ".id, " a ".conversation_id, " a ".seq, " a ".type, " a ".source, " a ".action, " a          \
      ".reversible, " a ".created_at"
#define NODE_EVT_NCOLS  8
#define NODE_EVT_COL_ID 0 /* offset of id in NODE_EVT_COLS */

/* Render row `row` of res whose columns col.. are NODE_*_COLS. */
void node_render_conv_row(node_buf_t *b, const db_result_t *res, int row, int col);
void node_render_msg_row(node_buf_t *b, const db_result_t *res, int row, int col);
void node_render_evt_row(node_buf_t *b, const db_result_t *res, int row, int col);

/* Appends s as a JSON string escaped exactly like Postgres' escape_json; NULL → null. */
void node_render_str(node_buf_t *b, const char *s);

/* Postgres timestamptz text output ("2026-11-27 22:59:22.123456+00", any offset, optional
   " BC") → "2026-11-27T22:59:22.123Z" (UTC, ms truncated, like to_char's MS). Returns the
   length written, or -1 when malformed (out is then ""). */
int node_ts_api(const char *pg, char out[32]);
/* Same, microseconds: the conv.list cursor form "2026-11-27T22:59:22.123456Z". */
int node_ts_cursor(const char *pg, char out[40]);

#endif
