#!/usr/bin/env bash
# bench/pgfloor.sh — what Postgres alone can store of P1's rows (issue 18): the
# ceiling of the write path before any gateway, node or network cost. Starts a
# private Postgres sized and durable as `deploy/local/up` starts it (fsync and
# synchronous_commit on), migrates Bicky's real schema, creates a team with
# CONVS conversations (10,000, as P1) owned by one node, then runs pgbench
# with CLIENTS connections (a node keeps two groups in flight; two nodes = 4)
# for SECONDS: each transaction is one group commit of GROUP posts as the node
# writes them (node/store/node_sql.c): the owner guard (FOR SHARE), the
# messages, the events (their action embedding the message as the node
# renders it) and the touches, one statement each, rows generated in SQL (no
# parameter arrays to parse: optimistic). Prints posts/s and Postgres CPU per
# post. --messages/--events set the rows per post (P1's echo turn: 2 and 4)
# to see what a leaner write set would allow. docs/performance.md, "The
# floor".
#
#   bench/pgfloor.sh [--bin DIR] [--seconds N] [--clients N] [--group N]
#                    [--convs N] [--messages 1|2] [--events 1-4] [--dir DIR]
set -euo pipefail

BK_TAG=bench-pgfloor
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/lib.sh"
# shellcheck source=bench/bench_pg.sh
source "$BK_ROOT/bench/bench_pg.sh"

BIN=$BK_ROOT/build/bin SECONDS_=20 CLIENTS=4 GROUP=19 CONVS=10000 MSGS=2 EVTS=4 DIR=""
while (($#)); do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --group) GROUP=$2; shift 2 ;;
        --convs) CONVS=$2; shift 2 ;;
        --messages) MSGS=$2; shift 2 ;;
        --events) EVTS=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) bk_die "unknown argument $1 (see --help)" ;;
    esac
done
for v in SECONDS_ CLIENTS GROUP CONVS MSGS EVTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || bk_die "${v%_} must be a positive number"
done
((MSGS <= 2)) || bk_die "--messages is 1 or 2"
((EVTS <= 4)) || bk_die "--events is 1 to 4"
((CONVS >= GROUP)) || bk_die "--convs must be at least --group"
[[ -x $BIN/bickyctl ]] || bk_die "no bickyctl in $BIN (build first, or --bin DIR)"
command -v pgbench >/dev/null || bk_die "pgbench is missing (Debian: postgresql-client)"
drop=
if [[ -z $DIR ]]; then
    DIR=$(mktemp -d /tmp/bench-pgfloor.XXXXXX) drop=drop
    chmod 755 "$DIR" # as root, Postgres runs as postgres and must reach DIR/pg
fi
mkdir -p "$DIR"
bench_pg_start "$DIR" "$BIN" $drop
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$BICKY_DATABASE_URL" "$@"; }

# The team, its conversations (numbered for the groups) owned by node n1.
psql <<SQL
INSERT INTO teams (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'floor');
CREATE TABLE floor_convs (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO floor_convs SELECT g, gen_random_uuid() FROM generate_series(0, $CONVS - 1) g;
INSERT INTO conversations (id, team_id, source, type, strategy, status)
    SELECT id, '00000000-0000-4000-8000-000000000001', 'api', 'chat', 'echo', 'idle'
    FROM floor_convs;
INSERT INTO conversation_owners (conversation_id, node_id, epoch)
    SELECT id, 'n1', 1 FROM floor_convs;
CREATE SEQUENCE floor_seq;
ANALYZE;
SQL

# One group: GROUP consecutive conversations from a random start (two groups
# at once rarely share one, as the node never does).
team="'00000000-0000-4000-8000-000000000001'::uuid"
src="'{\"kind\":\"actor\",\"id\":\"echo\"}'::jsonb"
msg_json="jsonb_build_object('id', gen_random_uuid(), 'conversation_id', c.id, 'seq', 1,
    'role', 'user', 'content', 'hello from the bicky benchmark', 'status', 'completed',
    'metadata', '{}'::jsonb, 'created_at', now(), 'updated_at', now())"
roles="('user', 'hello from the bicky benchmark', '{}')"
((MSGS == 2)) && roles+=", ('assistant', 'echo: hello from the bicky benchmark',
    '{\"user_message_id\":\"00000000-0000-4000-8000-000000000002\",\"model\":\"echo\",\"usage\":{\"input_tokens\":6,\"output_tokens\":7}}')"
evts="('message.created', jsonb_build_object('message', $msg_json))"
((EVTS >= 2)) && evts+=", ('turn.started', '{\"user_message_id\":\"00000000-0000-4000-8000-000000000002\",\"message_id\":\"00000000-0000-4000-8000-000000000003\"}'::jsonb)"
((EVTS >= 3)) && evts+=", ('message.completed', jsonb_build_object('message', $msg_json))"
((EVTS >= 4)) && evts+=", ('turn.completed', '{\"message_id\":\"00000000-0000-4000-8000-000000000003\",\"user_message_id\":\"00000000-0000-4000-8000-000000000002\",\"usage\":{\"input_tokens\":6,\"output_tokens\":7}}'::jsonb)"
cat >"$DIR/group.sql" <<SQL
\set lo random(0, $CONVS - $GROUP)
BEGIN;
SELECT 1 / (count(*) = $GROUP)::int FROM (SELECT 1 FROM conversation_owners o JOIN floor_convs c ON c.id = o.conversation_id WHERE c.n >= :lo AND c.n < :lo + $GROUP AND o.node_id = 'n1' AND o.epoch = 1 FOR SHARE OF o) g;
INSERT INTO messages (id, conversation_id, team_id, seq, role, content, status, metadata, created_at, updated_at) SELECT gen_random_uuid(), c.id, $team, nextval('floor_seq'), r.role, r.content, 'completed', r.meta::jsonb, now(), now() FROM floor_convs c CROSS JOIN (VALUES $roles) r(role, content, meta) WHERE c.n >= :lo AND c.n < :lo + $GROUP ORDER BY c.n RETURNING conversation_id, seq;
INSERT INTO events (team_id, conversation_id, seq, type, source, action, created_at) SELECT $team, c.id, nextval('floor_seq'), t.type, $src, t.action, now() FROM floor_convs c CROSS JOIN LATERAL (VALUES $evts) t(type, action) WHERE c.n >= :lo AND c.n < :lo + $GROUP ORDER BY c.n RETURNING conversation_id, seq, id;
UPDATE conversations AS cv SET last_msg_seq = cv.last_msg_seq + $MSGS, last_event_seq = cv.last_event_seq + $EVTS, message_count = cv.message_count + $MSGS, status = 'idle', last_event_id = (SELECT max(e.id) FROM events e WHERE e.conversation_id = cv.id AND e.seq > cv.last_event_seq), updated_at = now() FROM floor_convs c WHERE cv.id = c.id AND c.n >= :lo AND c.n < :lo + $GROUP AND cv.team_id = $team RETURNING cv.id, cv.status;
COMMIT;
SQL

backends_cpu() { # CPU x100 of the live backends (not yet reaped)
    local p t=0
    for p in $(pgrep -P "$(head -n 1 "$PGDIR/data/postmaster.pid")"); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
cpu0=$(($(bench_pg_cpu) + $(backends_cpu)))
pgbench -n -M prepared -f "$DIR/group.sql" -c "$CLIENTS" -j 2 -T "$SECONDS_" \
    "$BICKY_DATABASE_URL" >"$DIR/pgbench.out" 2>&1 ||
    { cat "$DIR/pgbench.out" >&2; bk_die "pgbench failed"; }
sleep 1 # its backends are reaped
cpu=$(($(bench_pg_cpu) + $(backends_cpu) - cpu0))
tps=$(awk '/^tps = / { print $3; exit }' "$DIR/pgbench.out")
lat=$(awk '/^latency average = / { print $4; exit }' "$DIR/pgbench.out")
msgs=$(psql -At -c "SELECT count(*) FILTER (WHERE role = 'user') FROM messages")
printf 'pgfloor: %d messages + %d events per post, %d posts a group, %d clients, %d s\n' \
    "$MSGS" "$EVTS" "$GROUP" "$CLIENTS" "$SECONDS_"
printf 'pgfloor: %.0f groups/s = %.0f posts/s (latency avg %s ms); %s posts stored\n' \
    "$tps" "$(bc -l <<<"$tps * $GROUP")" "$lat" "$msgs"
printf 'pgfloor: Postgres %.1f CPU s = %.1f µs per post; load %s; %d cores\n' \
    "$(bc -l <<<"$cpu/100")" "$(bc -l <<<"$cpu * 10000 / $msgs")" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
