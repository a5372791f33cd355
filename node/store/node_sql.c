/*  node_sql — every SQL statement the node runs, as named prepared statements.
    Reads return plain columns (NODE_*_COLS) that node_render.c turns into
    API.md JSON (see each statement's comment for the writes). Every
    statement is parameterised and scoped by team_id. Loop thread only. */
#include "node/store/node_store.h"

#define TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define CONV_JSON(c)                                                                               \
    "json_build_object('id', " c ".id, 'source', " c ".source, 'type', " c ".type, 'title', " c    \
    ".title, 'strategy', " c ".strategy, 'worktree_id', " c ".worktree_id, 'status', " c           \
    ".status, 'on_busy', " c ".on_busy, 'metadata', " c ".metadata, 'message_count', " c           \
    ".message_count, 'last_event_id', " c ".last_event_id, 'created_at', " TS(                     \
        c ".created_at") ", 'updated_at', " TS(c ".updated_at") ")"

#define MSG_JSON(m)                                                                                \
    "json_build_object('id', " m ".id, 'conversation_id', " m ".conversation_id, 'seq', " m        \
    ".seq, 'role', " m ".role, 'content', " m ".content, 'status', " m ".status, 'metadata', " m   \
    ".metadata, 'created_at', " TS(m ".created_at") ", 'updated_at', " TS(m ".updated_at") ")"

#define EVT_JSON(e) NODE_EVT_JSON(e)

/* The touch's last_event_id: $7 says the write set inserted events, the last of which is
   the sequence's current value in this session (the touch follows them). */
#define TOUCH_LAST_EVENT                                                                           \
    "last_event_id = CASE WHEN $7::bool THEN currval('events_id_seq') ELSE c.last_event_id END, "

#define EVT_COLS "INSERT INTO events AS e (team_id, conversation_id, seq, type, source, action) "

typedef struct {
    const char *name;
    int nparams;
    const char *sql;
} s_stmt_t;

static const s_stmt_t s_stmts[] = {
    /* Activation: the actor's state; $1 conv, $2 team. */
    {NODE_Q_CONV_LOAD, 2,
     "SELECT status, on_busy, last_msg_seq, last_event_seq, metadata->'echo'->>'delay_ms', "
     "metadata->'echo'->>'fail_every', strategy, EXISTS (SELECT 1 FROM actor_attachments a WHERE "
     "a.conversation_id = $1::uuid AND a.team_id = $2::uuid) FROM conversations WHERE id = "
     "$1::uuid AND "
     "team_id = "
     "$2::uuid"},
    /* $1 id $2 team $3 source $4 type $5 title $6 strategy $7 worktree $8 on_busy $9 metadata
       $10 the write set's time */
    {NODE_Q_CONV_INSERT, 10,
     "INSERT INTO conversations (id, team_id, source, type, title, strategy, worktree_id, "
     "on_busy, metadata, created_at, updated_at) VALUES ($1::uuid, $2::uuid, coalesce($3::text, "
     "'api'), "
     "coalesce($4::text, 'chat'), $5::text, coalesce($6::text, 'echo'), $7::uuid, "
     "coalesce($8::text, 'enqueue'), coalesce($9::jsonb, '{}'::jsonb), $10::timestamptz, "
     "$10::timestamptz)"},
    /* Division by zero when the worktree is not the team's: fails the write set. */
    {NODE_Q_WT_CHECK, 2,
     "SELECT 1 / (SELECT count(*)::int FROM worktrees WHERE id = $1::uuid AND team_id = $2::uuid "
     "AND removed_at IS NULL)"},
    /* $3 title given? $4 title $5 metadata patch $6 strategy $7 worktree given? $8 worktree
       $9 on_busy */
    {NODE_Q_CONV_PATCH, 9,
     "UPDATE conversations SET title = CASE WHEN $3::bool THEN $4::text ELSE title END, "
     "metadata = metadata || coalesce($5::jsonb, '{}'::jsonb), strategy = coalesce($6::text, "
     "strategy), worktree_id = CASE WHEN $7::bool THEN $8::uuid ELSE worktree_id END, on_busy = "
     "coalesce($9::text, on_busy) WHERE id = $1::uuid AND team_id = $2::uuid"},
    /* Last statement of every write: counters, status; returns the row and the actor's
       cached settings. $3 last msg seq $4 last event seq $5 added messages $6 status */
    {NODE_Q_CONV_TOUCH, 7,
     "UPDATE conversations AS c SET last_msg_seq = $3::bigint, last_event_seq = $4::bigint, "
     "message_count = c.message_count + $5::int, status = coalesce($6::text, "
     "c.status), " TOUCH_LAST_EVENT
     "updated_at = now() WHERE c.id = $1::uuid AND c.team_id = $2::uuid "
     "RETURNING " CONV_JSON(
         "c") "::text, c.status, c.on_busy, "
              "c.metadata->'echo'->>'delay_ms', c.metadata->'echo'->>'fail_every', "
              "c.strategy"},
    /* The same without the conversation's JSON (column 0 NULL), for write sets whose
       answer is not the conversation: most of them. */
    {NODE_Q_CONV_TOUCH_LITE, 7,
     "UPDATE conversations AS c SET last_msg_seq = $3::bigint, last_event_seq = $4::bigint, "
     "message_count = c.message_count + $5::int, status = coalesce($6::text, "
     "c.status), " TOUCH_LAST_EVENT
     "updated_at = now() WHERE c.id = $1::uuid AND c.team_id = $2::uuid "
     "RETURNING NULL::text, c.status, c.on_busy, c.metadata->'echo'->>'delay_ms', "
     "c.metadata->'echo'->>'fail_every', c.strategy"},
    /* Reads return plain columns (NODE_*_COLS); the node renders the JSON (node_render.c). */
    {NODE_Q_CONV_GET, 2,
     "SELECT " NODE_CONV_COLS("c") " FROM conversations c WHERE c.id = $1::uuid AND c.team_id = "
                                   "$2::uuid"},
    {NODE_Q_CONV_EXISTS, 2,
     "SELECT 1 FROM conversations WHERE id = $1::uuid AND team_id = $2::uuid"},
    /* First page: $1 team $2 source $3 type $4 status $5 limit (+1 fetched). Two statements,
       so that the cursor is always an index condition (a generic plan of a shared one
       filtered it row by row). */
    {NODE_Q_CONV_LIST, 5,
     "SELECT " NODE_CONV_COLS("c") " FROM conversations c WHERE c.team_id = $1::uuid AND "
                                   "($2::text IS NULL OR c.source = $2::text) AND ($3::text IS "
                                   "NULL OR c.type = $3::text) AND ($4::text IS NULL OR c.status = "
                                   "$4::text) ORDER BY c.created_at DESC, c.id DESC LIMIT $5::int"},
    /* Next pages: $1 team $2 cursor ts $3 cursor id $4 source $5 type $6 status $7 limit */
    {NODE_Q_CONV_LIST_AFTER, 7,
     "SELECT " NODE_CONV_COLS("c") " FROM conversations c WHERE c.team_id = $1::uuid AND "
                                   "(c.created_at, c.id) < ($2::timestamptz, $3::uuid) AND "
                                   "($4::text IS NULL OR c.source = $4::text) AND ($5::text IS "
                                   "NULL OR c.type = $5::text) AND ($6::text IS NULL OR c.status = "
                                   "$6::text) ORDER BY c.created_at DESC, c.id DESC LIMIT $7::int"},
    /* $1 id $2 conv $3 team $4 seq $5 role $6 content $7 status $8 metadata */
    /* $9 the write set's time (node_write.c). The node renders the message (node_render.c)
       from these parameters: nothing is returned. */
    {NODE_Q_MSG_INSERT, 9,
     "INSERT INTO messages AS m (id, conversation_id, team_id, seq, role, content, status, "
     "metadata, created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4::bigint, "
     "$5::text, $6::text, $7::text, coalesce($8::jsonb, '{}'::jsonb), $9::timestamptz, "
     "$9::timestamptz)"},
    /* $1 id $2 conv $3 content $4 status $5 metadata (merged) $6 team */
    {NODE_Q_MSG_FINISH, 6,
     "UPDATE messages AS m SET content = $3::text, status = $4::text, metadata = m.metadata || "
     "coalesce($5::jsonb, '{}'::jsonb), updated_at = now() WHERE m.id = $1::uuid AND "
     "m.conversation_id = $2::uuid AND m.team_id = $6::uuid"},
    /* $1 id $2 conv $3 team */
    {NODE_Q_MSG_START, 3,
     "UPDATE messages SET status = 'completed', updated_at = now() WHERE id = $1::uuid AND "
     "conversation_id = $2::uuid AND team_id = $3::uuid AND status = 'pending'"},
    {NODE_Q_MSG_CANCEL, 2,
     "UPDATE messages SET status = 'cancelled', updated_at = now() WHERE conversation_id = "
     "$1::uuid AND team_id = $2::uuid AND status = 'pending'"},
    /* $1 conv $2 team $3 after seq $4 limit */
    {NODE_Q_MSG_LIST, 4,
     "SELECT " NODE_MSG_COLS("m") " FROM messages m WHERE m.conversation_id = $1::uuid AND "
                                  "m.team_id = $2::uuid AND m.seq > $3::bigint ORDER BY m.seq "
                                  "LIMIT $4::int"},
    /* $1 team $2 conv $3 seq $4 type $5 source $6 action */
    /* $7 the write set's time. Returns the id; the node renders the event from these
       parameters (node_commit.c node_ws_publish). */
    {NODE_Q_EVT, 7,
     "INSERT INTO events (team_id, conversation_id, seq, type, source, action, created_at) "
     "VALUES ($1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, coalesce($6::jsonb, "
     "'{}'::jsonb), $7::timestamptz) RETURNING id"},
    /* Same, for a reversible event (API.md: revert), never merged with others. */
    {NODE_Q_EVT_REV, 7,
     "INSERT INTO events (team_id, conversation_id, seq, type, source, action, reversible, "
     "created_at) VALUES ($1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, "
     "coalesce($6::jsonb, '{}'::jsonb), true, $7::timestamptz) RETURNING id"},
    /* Same, with $7 merged into the action: {"message": …} or {"conversation": …}, the
       node's JSON of a row the same write set inserts; $8 the time. */
    {NODE_Q_EVT_EMBED, 8,
     "INSERT INTO events (team_id, conversation_id, seq, type, source, action, created_at) "
     "VALUES ($1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, coalesce($6::jsonb, "
     "'{}'::jsonb) || $7::jsonb, $8::timestamptz) RETURNING id"},
    /* Several message inserts (node_ws_merge.c), one array per column: $1 ids $2 convs
       $3 teams $4 seqs $5 roles $6 contents $7 statuses $8 metadata $9 times. A row per
       message, in order: its conversation and seq, then what NODE_Q_MSG_INSERT returns. */
    {NODE_Q_MSG_MULTI, 9,
     "INSERT INTO messages (id, conversation_id, team_id, seq, role, content, status, metadata, "
     "created_at, updated_at) SELECT t.id, t.conv, t.team, t.seq, t.role, t.content, t.status, "
     "coalesce(t.metadata, '{}'::jsonb), t.ts, t.ts FROM unnest($1::uuid[], $2::uuid[], "
     "$3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::jsonb[], "
     "$9::timestamptz[]) WITH ORDINALITY AS t(id, conv, team, seq, role, content, status, "
     "metadata, ts, n) ORDER BY t.n RETURNING conversation_id, seq"},
    /* Several event inserts, in order (a conversation's ids follow its seqs): $1 teams
       $2 convs $3 seqs $4 types $5 sources $6 actions $7 embedded rows $8 times. A row per
       event: its conversation and seq, then what NODE_Q_EVT returns. */
    {NODE_Q_EVT_MULTI, 8,
     "INSERT INTO events (team_id, conversation_id, seq, type, source, action, created_at) "
     "SELECT t.team, t.conv, t.seq, t.type, t.source, coalesce(t.action, '{}'::jsonb) || "
     "coalesce(t.embed, '{}'::jsonb), t.ts FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], "
     "$4::text[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::timestamptz[]) WITH ORDINALITY AS "
     "t(team, conv, seq, type, source, action, embed, ts, n) ORDER BY t.n RETURNING "
     "conversation_id, seq, id"},
    /* The touches (NODE_Q_CONV_TOUCH_LITE) of several write sets of a group, after all
       their inserts: $1 convs $2 teams $3 last msg seqs $4 last event seqs $5 added
       messages $6 statuses $7 whether the set inserted events; last_event_id is then the
       id of the event at the last seq. A row per conversation: its id, then what
       NODE_Q_CONV_TOUCH_LITE returns. */
    {NODE_Q_TOUCH_MULTI, 7,
     "UPDATE conversations AS c SET last_msg_seq = u.msg_seq, last_event_seq = u.evt_seq, "
     "message_count = c.message_count + u.added, status = coalesce(u.status, c.status), "
     "last_event_id = CASE WHEN u.has_events THEN coalesce((SELECT e.id FROM events e WHERE "
     "e.conversation_id = u.id AND e.seq = u.evt_seq), c.last_event_id) ELSE c.last_event_id "
     "END, updated_at = now() FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], "
     "$5::int[], $6::text[], $7::bool[]) AS u(id, team, msg_seq, evt_seq, added, status, "
     "has_events) WHERE c.id = u.id AND c.team_id = u.team RETURNING c.id, NULL::text, "
     "c.status, c.on_busy, c.metadata->'echo'->>'delay_ms', c.metadata->'echo'->>'fail_every', "
     "c.strategy"},
    /* Same, with the message $7 (its id: a message stored earlier) read from the table and
       embedded as action.message; rendered by Postgres. */
    {NODE_Q_EVT_MSG_DB, 7,
     EVT_COLS
     "SELECT $1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, coalesce($6::jsonb, "
     "'{}'::jsonb) || jsonb_build_object('message', " MSG_JSON(
         "m") ") FROM messages m "
              "WHERE m.id = $7::uuid AND m.conversation_id = $2::uuid AND m.team_id = $1::uuid "
              "RETURNING e.id, " EVT_JSON("e") "::text"},
    /* Same, with the conversation embedded as action.conversation. */
    {NODE_Q_EVT_CONV, 6,
     EVT_COLS "SELECT $1::uuid, $2::uuid, $3::bigint, $4::text, $5::jsonb, coalesce($6::jsonb, "
              "'{}'::jsonb) || jsonb_build_object('conversation', " CONV_JSON(
                  "c") ") FROM "
                       "conversations c WHERE c.id = $2::uuid AND c.team_id = $1::uuid RETURNING "
                       "e.id, " EVT_JSON("e") "::text"},
    /* $1 conv $2 team $3 after id $4 limit $5 types (comma list; NULL = all). The team
       test is written so that no index can serve it: with statistics older than a
       team's growth, the planner once ANDed events_team_id (team, id > 0: the whole
       team) into the conversation's scan, 250 ms a page instead of 0.2. */
    {NODE_Q_EVT_LIST, 5,
     "SELECT " NODE_EVT_COLS("e") " FROM events e WHERE e.conversation_id = $1::uuid AND "
                                  "(e.team_id = $2::uuid) IS TRUE AND e.id > $3::bigint AND "
                                  "($5::text IS NULL OR e.type = ANY (string_to_array($5::text, "
                                  "','))) ORDER BY e.id LIMIT $4::int"},
    /* $1 event id $2 team */
    {NODE_Q_EVT_GET, 2,
     "SELECT " NODE_EVT_COLS("e") " FROM events e WHERE e.id = $1::bigint AND e.team_id = "
                                  "$2::uuid"},
    /* $1 team $2 after id $3 limit $4 types (comma list; NULL = all) */
    {NODE_Q_EVT_TEAM, 4,
     "SELECT " NODE_EVT_COLS("e") " FROM events e WHERE e.team_id = $1::uuid AND e.id > "
                                  "$2::bigint AND ($4::text IS NULL OR e.type = ANY "
                                  "(string_to_array($4::text, ','))) ORDER BY e.id LIMIT $3::int"},
    {NODE_Q_IDEM_GET, 2,
     "SELECT request_hash, status, response FROM idempotency_keys WHERE team_id = $1::uuid AND "
     "key = $2::text AND created_at > now() - interval '24 hours'"},
    {NODE_Q_IDEM_DEL, 2,
     "DELETE FROM idempotency_keys WHERE team_id = $1::uuid AND key = $2::text AND created_at <= "
     "now() - interval '24 hours'"},
    /* $1 team $2 key $3 hash $4 status $5 conv: the response is the conversation */
    {NODE_Q_IDEM_CONV, 5,
     "INSERT INTO idempotency_keys (team_id, key, request_hash, status, response) SELECT "
     "$1::uuid, $2::text, $3::text, $4::int, " CONV_JSON(
         "c") "::text FROM conversations c WHERE "
              "c.id = $5::uuid AND c.team_id = $1::uuid RETURNING response"},
    /* $5 message id, $6 created (NULL = not a create) */
    {NODE_Q_IDEM_MSG, 6,
     "INSERT INTO idempotency_keys (team_id, key, request_hash, status, response) SELECT "
     "$1::uuid, $2::text, $3::text, $4::int, (CASE WHEN $6::bool IS NULL THEN "
     "json_build_object('message', " MSG_JSON("m") ") ELSE json_build_object('message', " MSG_JSON(
         "m") ", 'created', $6::bool) END)::text FROM messages m WHERE m.id = $5::uuid AND "
              "m.team_id = $1::uuid RETURNING response"},
    {NODE_Q_IDEM_TEXT, 5,
     "INSERT INTO idempotency_keys (team_id, key, request_hash, status, response) VALUES "
     "($1::uuid, $2::text, $3::text, $4::int, $5::text) RETURNING response"},
    /* Token check; last_used_at refreshed at most once a minute. The admin flag is told
       to the gateway for the console only: the registry checks it itself (0007). */
    {NODE_Q_AUTH, 1,
     "WITH t AS (SELECT a.id AS token_id, a.last_used_at, a.admin, tm.id, tm.name FROM api_tokens "
     "a JOIN "
     "teams tm ON tm.id = a.team_id WHERE a.token_sha256 = $1::text AND a.revoked_at IS NULL), "
     "u AS (UPDATE api_tokens SET last_used_at = now() WHERE id IN (SELECT token_id FROM t WHERE "
     "last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')) SELECT t.id, t.name, "
     /* The team's limits set with bickyctl (NULL = default; docs/bickyctl.md). */
     "json_strip_nulls(json_build_object('rate', l.rate, 'burst', l.burst, 'actors', l.actors, "
     "'streams', l.streams, 'turns', l.turns, 'worktrees', l.worktrees, 'strategies', "
     "array_to_string(l.strategies, ',')))::text, t.admin FROM t LEFT JOIN team_limits l ON "
     "l.team_id = t.id"},
    /* ---- single activation (node_fence.c, docs/placement.md) ---- */
    /* Claim, step 0: whatever the claim would still wait for (an uncommitted insert of
       one of its rows by a stopped node) stops it after 200 ms (55P03 → retried, each
       conversation alone) instead of stalling this node's pipeline. Local to the claim's
       implicit transaction. */
    {NODE_Q_OWN_TIMEOUT, 0, "SELECT set_config('lock_timeout', '200ms', true)"},
    /* Claim, step 1 (same implicit transaction), for every activation of a loop turn:
       $1 convs (uuid[]) $2 their teams (uuid[]) $3 node $4 epoch $5 nodes that may still
       hold conversations (text[]). The rows are locked without waiting (SKIP LOCKED): a
       row an open transaction holds (the holder's guard) is left alone, reported busy,
       and retried later, never waited for. A free or ours row is granted when it is ours
       already (at an epoch not newer than ours) or when its holder's epoch is older than
       ours and the holder is not alive/draining in our ring (crashed, removed). Nothing
       is claimed for another team's or a missing conversation. One row per entry of $1,
       in order: (ordinal, granted, the holder's epoch before, busy). */
    {NODE_Q_OWN_CLAIMS, 5,
     "WITH req AS (SELECT r.conv, r.team, r.ord FROM unnest($1::uuid[], $2::uuid[]) WITH "
     "ORDINALITY AS r (conv, team, ord)), lk AS MATERIALIZED (SELECT o.conversation_id, o.epoch "
     "FROM conversation_owners o WHERE o.conversation_id = ANY ($1::uuid[]) FOR UPDATE SKIP "
     "LOCKED), cur AS MATERIALIZED (SELECT o.conversation_id, o.epoch FROM conversation_owners o "
     "WHERE o.conversation_id = ANY ($1::uuid[])), ins AS (INSERT INTO conversation_owners AS o "
     "(conversation_id, node_id, epoch) SELECT DISTINCT c.id, $3::text, $4::bigint FROM req JOIN "
     "conversations c ON c.id = req.conv AND c.team_id = req.team WHERE c.id IN (SELECT "
     "conversation_id FROM lk) OR c.id NOT IN (SELECT conversation_id FROM cur) ON CONFLICT "
     "(conversation_id) DO UPDATE SET node_id = excluded.node_id, epoch = excluded.epoch, "
     "claimed_at = now() WHERE (o.node_id = excluded.node_id AND o.epoch <= excluded.epoch) OR "
     "(o.epoch < excluded.epoch AND o.node_id <> ALL ($5::text[])) RETURNING o.conversation_id) "
     "SELECT req.ord, EXISTS (SELECT 1 FROM ins WHERE ins.conversation_id = req.conv), "
     "coalesce((SELECT lk.epoch FROM lk WHERE lk.conversation_id = req.conv), (SELECT cur.epoch "
     "FROM cur WHERE cur.conversation_id = req.conv)), EXISTS (SELECT 1 FROM cur WHERE "
     "cur.conversation_id = req.conv) AND NOT EXISTS (SELECT 1 FROM lk WHERE lk.conversation_id "
     "= req.conv) FROM req ORDER BY req.ord"},
    /* The guard sent before every write set of a conversation we did not just create:
       division by zero (22012) unless the row still names us at our claim's epoch, which
       fails the write set (never its neighbours: see node_commit.c). FOR SHARE keeps a
       claimant out until our transaction ends. $1 conv $2 node $3 epoch */
    {NODE_Q_OWN_CHECK, 3,
     "SELECT 1 / count(*)::int FROM (SELECT 1 FROM conversation_owners WHERE conversation_id = "
     "$1::uuid AND node_id = $2::text AND epoch = $3::bigint FOR SHARE) o"},
    /* The guards of a group's write sets as one statement: 22012 unless every row names
       us at its claim's epoch (the group is then re-run set by set, each with its own
       guard, to find the failing one). A conversation may appear more than once (with
       the same epoch). $1 convs $2 node $3 epochs (same order as $1) */
    {NODE_Q_OWN_CHECK_MULTI, 3,
     "SELECT 1 / (count(*) = (SELECT count(DISTINCT c) FROM unnest($1::uuid[]) c))::int FROM "
     "(SELECT 1 FROM conversation_owners WHERE conversation_id = ANY ($1::uuid[]) AND node_id "
     "= $2::text AND epoch = ($3::bigint[])[array_position($1::uuid[], conversation_id)] FOR "
     "SHARE) o"},
    /* A conversation created by this write set is claimed in the same transaction. */
    {NODE_Q_OWN_CREATE, 3,
     "INSERT INTO conversation_owners (conversation_id, node_id, epoch) VALUES ($1::uuid, "
     "$2::text, $3::bigint)"},
    /* Passivation: $1 node $2 conversations (uuid[]). */
    {NODE_Q_OWN_RELEASE, 2,
     "DELETE FROM conversation_owners WHERE node_id = $1::text AND conversation_id = ANY "
     "($2::uuid[])"},
    /* A (re)started node holds no actor: claims left under its id by an earlier run go. */
    {NODE_Q_OWN_CLEANUP, 1, "DELETE FROM conversation_owners WHERE node_id = $1::text"},
    {NODE_Q_STATUS, 1,
     "SELECT coalesce(json_object_agg(status, n), '{}'::json)::text, (SELECT count(*) FROM "
     "worktrees WHERE team_id = $1::uuid AND removed_at IS NULL) FROM (SELECT status, "
     "count(*) AS n FROM conversations WHERE team_id = $1::uuid GROUP BY status) s"},
};

int node_sql_prepare(db_conn_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++) {
        if (db_conn_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].nparams) < 0) {
            return -1;
        }
    }
    return 0;
}
