#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_legacy_import.sh — `bickyctl export` and `bickyctl import` on a real
# cluster (docs/bickyctl.md): an export round trip into another team of
# another database gives identical conversations (compared in SQL); the
# TypeScript server's export (a JSON array, or JSON Lines) keeps ids, order
# and timestamps, as the legacy GET /interactions/:id shows them; importing
# twice changes nothing; bad records (malformed lines, wrong types, duplicate
# ids, another team's ids, a 10 MB content, bad times, incomplete
# conversations) are refused one by one with a reason while the rest is
# imported; imported conversations take new messages with the next seqs; an
# import killed half-way (4 streams) and run again finishes with nothing
# duplicated; two streams' batches that both hold one message id: one is
# refused, the other imported whole; --streams out of range is a usage error;
# a batch too big to hold in memory is staged, the others are not, both whole.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=legacy_import
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start legacy_import
GEN=$SRC/bench/gen_import.py
W=$TC_VAR/work
mkdir -p "$W"

# ---------------------------------------------------------------- some history in team dev

for i in 1 2 3; do
    c=$(tc_conv "{\"title\":\"conv $i\",\"metadata\":{\"i\":$i}}")
    tc_post "$c" "first of $i" >/dev/null
    tc_wait_status "$c" idle 15
    tc_post "$c" "second of $i, with a tab	and a backslash \\\\ and é" >/dev/null
    tc_wait_status "$c" idle 15
done
tc_req PATCH "/api/conversations/$c" '{"title":"renamed"}'
# A reverted event: the import sets its reverted_by (compared below).
upd=$(tc_sql "select id from events where conversation_id = '$c' and type = 'conversation.updated'")
tc_req POST "/api/events/$upd/revert"
t_check "history: a conversation.updated event reverted (201)" test "$TC_CODE" = 201
tc_req DELETE "/api/conversations/$c"
first=$(tc_sql "select id from conversations order by created_at, id limit 1")

# ---------------------------------------------------------------- export

"$CTL" export --team dev >"$W/dev.jsonl" 2>"$W/export.err"
rc=$?
t_check "export exits 0 and writes nothing on stderr" \
    eval '[[ $rc == 0 && ! -s $W/export.err ]]'
kinds=$(jq -r .kind "$W/dev.jsonl" | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
want="conversation=$(tc_sql "select count(*) from conversations") event=$(tc_sql "select count(*) from events where conversation_id is not null") message=$(tc_sql "select count(*) from messages") "
t_check "export: one line per conversation, message and event ($kinds)" test "$kinds" = "$want"
"$CTL" export --team dev --after "$first" >"$W/after.jsonl"
t_check "export --after the first conversation: everything but its records" \
    test "$(wc -l <"$W/after.jsonl")" = "$(jq -c "select((.id // \"\") != \"$first\" and (.conversation_id // \"\") != \"$first\")" "$W/dev.jsonl" | wc -l)"
"$CTL" export --team dev --after 00000000-0000-4000-8000-000000000000 >/dev/null 2>&1
t_check "export --after an unknown conversation exits 1" test $? = 1
"$CTL" export --team dev --after nope >/dev/null 2>&1
t_check "export --after a malformed id exits 2" test $? = 2
"$CTL" export --team nobody >/dev/null 2>&1
t_check "export of an unknown team exits 1" test $? = 1

# ---------------------------------------------------------------- round trip into another database

DB2=${BICKY_DATABASE_URL/dbname=bicky/dbname=roundtrip}
tc_sql "create database roundtrip" >/dev/null
"$CTL" --database-url "$DB2" migrate >/dev/null && "$CTL" --database-url "$DB2" token create --team other >/dev/null
"$CTL" --database-url "$DB2" import --team other --json "$W/dev.jsonl" >"$W/rt.json"
rc=$?
t_check "round trip: import exits 0, every conversation imported, nothing refused" \
    eval '[[ $rc == 0 && $(jq -r "\"\(.imported.conversations) \(.refused_count)\"" "$W/rt.json") == "3 0" ]]'
# dump URL TEAM: the team's conversations, messages and events as text (event ids
# are global, so events are named by conversation and seq).
dump() {
    psql "$1" -X -q -At -v ON_ERROR_STOP=1 -c "
        select c.id, c.source, c.type, c.title, c.strategy, c.status, c.on_busy, c.metadata,
               c.message_count, c.last_msg_seq, c.last_event_seq, c.worktree_id, c.created_at,
               c.updated_at, (select seq from events where id = c.last_event_id)
          from conversations c join teams t on t.id = c.team_id where t.name = '$2' order by c.id;
        select m.id, m.conversation_id, m.seq, m.role, m.content, m.status, m.metadata,
               m.created_at, m.updated_at
          from messages m join teams t on t.id = m.team_id where t.name = '$2' order by m.id;
        select e.conversation_id, e.seq, e.type, e.source, e.action, e.reversible, e.created_at,
               (select r.seq from events r where r.id = e.reverted_by)
          from events e join teams t on t.id = e.team_id where t.name = '$2'
          and e.conversation_id is not null order by e.conversation_id, e.seq;
        select count(*) from conversation_owners o join conversations c on c.id = o.conversation_id
          join teams t on t.id = c.team_id where t.name = '$2'"
}
dump "$BICKY_DATABASE_URL" dev >"$W/a.txt"
dump "$DB2" other >"$W/b.txt"
t_check "round trip: conversations, messages and events identical in SQL ($(wc -l <"$W/a.txt") rows)" \
    eval 'diff <(sed "\$d" "$W/a.txt") <(sed "\$d" "$W/b.txt")'
t_check "… and no imported conversation is owned by a node" test "$(tail -n 1 "$W/b.txt")" = 0
t_check "… event ids in the new database follow each conversation's seq order" \
    test -z "$(psql "$DB2" -X -At -c "select 1 from (select seq - lag(seq) over (partition by conversation_id order by id) d from events) x where d <> 1")"

before=$(tc_counts)
"$CTL" import --team dev "$W/dev.jsonl" >"$W/again.txt"
rc=$?
t_check "importing the export into its own team: exit 0, all skipped, nothing changes" \
    eval '[[ $rc == 0 && $(grep -c "^skipped  3 " "$W/again.txt") == 1 && $(tc_counts) == "$before" ]]'
tc_sql "insert into teams (id, name) values (gen_random_uuid(), 'third')" >/dev/null
"$CTL" import --team third --json "$W/dev.jsonl" >"$W/third.json"
rc=$?
t_check "the same ids into another team of this database: each refused (exit 1), nothing written" \
    eval '[[ $rc == 1 && $(jq -r "[.refused[].reason] | unique | join(\",\")" "$W/third.json") == "the conversation id is already used by another team" &&
            $(jq -r .refused_count "$W/third.json") == 3 && $(tc_counts) == "$before" ]]'

# ---------------------------------------------------------------- the TypeScript server's export

OLD_TOKEN=$(tc_team_token old)
python3 "$GEN" --convs 4 --msgs 5 --format legacy --array --seed arr >"$W/old.json"
"$CTL" import --team old --json "$W/old.json" >"$W/old.out"
rc=$?
t_check "old format (JSON array): 4 interactions, 20 messages imported" \
    eval '[[ $rc == 0 && $(jq -r "\"\(.imported.conversations) \(.imported.messages) \(.imported.events)\"" "$W/old.out") == "4 20 0" ]]'
# legacy_view ID: the legacy route's answer as the old server gave it.
legacy_same() {
    local id=$1 got want
    got=$(curl -s -H "Authorization: Bearer $OLD_TOKEN" "$BICKY_URL/interactions/$id" |
        jq -c '{interaction: .interaction, messages: [.messages[] | {id, interactionId, role, content, timestamp, status}]}')
    want=$(jq -c ".[] | select(.interaction.id == \"$id\")" "$W/old.json")
    [[ $got == "$want" ]] || { echo "got  $got"; echo "want $want"; return 1; }
}
ids=$(jq -r '.[].interaction.id' "$W/old.json")
for id in $ids; do
    t_check "GET /interactions/$id gives back the record: ids, order, timestamps" legacy_same "$id"
done
python3 "$GEN" --convs 3 --msgs 4 --format legacy --seed lines >"$W/old.jsonl"
"$CTL" import --team old "$W/old.jsonl" >"$W/old2.out" 2>"$W/old2.err"
rc=$?
t_check "old format (JSON Lines): imported, no progress output when stderr is no tty" \
    eval '[[ $rc == 0 && $(head -n 1 "$W/old2.out") == "imported 3 conversations (12 messages, 0 events) into team old" && ! -s $W/old2.err ]]'
before=$(tc_counts)
"$CTL" import --team old "$W/old.json" >/dev/null && "$CTL" import --team old - <"$W/old.jsonl" >"$W/old3.out"
rc=$?
t_check "importing both again (one from stdin) changes nothing" \
    eval '[[ $rc == 0 && $(tc_counts) == "$before" && $(sed -n 2p "$W/old3.out") == "skipped  3 conversations already in the team" ]]'
aconv=$(head -n 1 <<<"$ids")
tc_req POST "/api/conversations/$aconv/messages" '{"content":"after the move"}' -H "Authorization: Bearer $OLD_TOKEN"
TC_TOKEN=$OLD_TOKEN
tc_req POST "/api/conversations/$aconv/messages" '{"content":"after the move"}'
t_check "an imported conversation takes a new message: 202, seq 6" \
    eval '[[ $TC_CODE == 202 && $(tc_jq .message.seq) == 6 ]]'
tc_wait_status "$aconv" idle 15
t_check "… its turn runs: 7 messages, events 1..4 (the log starts on Bicky)" \
    test "$(tc_sql "select message_count || ' ' || last_event_seq from conversations where id = '$aconv'")" = "7 4"
TC_TOKEN=$BICKY_TOKEN

# ---------------------------------------------------------------- bad records

bad=$W/bad.jsonl
rec() { python3 "$GEN" --convs 1 --msgs 2 --format legacy --seed "$1"; }
{
    rec good-a                                                        # line 1
    echo '{not json'                                                  # 2
    rec t1 | jq -c '.interaction.id = 5'                              # 3
    rec t2 | jq -c '.messages[1].content = 5'                         # 4
    rec t3 | jq -c '.messages[1].id = .messages[0].id'                # 5
    rec good-a | jq -c '.interaction.id = "6f1f6c2e-0000-4000-8000-000000000001" | .messages[].interactionId = .interaction.id' # 6: line 1's message ids
    rec t4 | jq -c ".interaction.id = \"$first\" | .messages[].interactionId = \"$first\"" # 7: another team's
    rec t5 | jq -c '.messages[0].content = ("x" * 10485760)'          # 8: 10 MB
    rec t6 | jq -c '.messages[0].timestamp = "2025-02-30T00:00:00Z"'  # 9
    rec t7 | jq -c '.messages[0].role = "robot"'                      # 10
    rec t8 | jq -c '.messages[0].status = "done"'                     # 11
    echo '{"kind":"message","conversation_id":"6f1f6c2e-0000-4000-8000-000000000002","seq":1}' # 12
    echo '[1,2]'                                                      # 13
    python3 "$GEN" --convs 1 --msgs 3 --seed t9 | grep -v '"seq":3,"role"' # 14..: 2 of 3 messages
    rec good-b
} >"$bad"
before_conv=$(tc_sql "select count(*) from conversations")
"$CTL" import --team old --json "$bad" >"$W/bad.json"
rc=$?
reason() { jq -r ".refused[] | select(.line == $1) | .reason" "$W/bad.json"; }
t_check "bad file: exit 1, the two good records imported" \
    eval '[[ $rc == 1 && $(jq -r .imported.conversations "$W/bad.json") == 2 &&
            $(tc_sql "select count(*) from conversations") == $((before_conv + 2)) ]]'
t_check "line 2: invalid JSON" eval '[[ $(reason 2) == "invalid JSON"* ]]'
t_check "line 3: interaction.id must be a UUID" test "$(reason 3)" = "interaction.id must be a UUID"
t_check "line 4: content must be a string" test "$(reason 4)" = "messages[1]: content must be a string"
t_check "line 5: duplicate message id" eval '[[ $(reason 5) == "message id "*" appears more than once" ]]'
t_check "line 6: the message ids of line 1, imported in the same batch" \
    eval '[[ $(reason 6) == "message id "*" appears more than once" ]]'
t_check "line 7: another team's conversation id" test "$(reason 7)" = "the conversation id is already used by another team"
t_check "line 8: 10 MB content" test "$(reason 8)" = "messages[0]: content is too long"
t_check "line 9: a date that does not exist" test "$(reason 9)" = "messages[0]: timestamp must be an RFC 3339 date-time"
t_check "line 10: unknown role" test "$(reason 10)" = "messages[0]: role must be user, assistant, system or tool"
t_check "line 11: unknown status" test "$(reason 11)" = "messages[0]: status must be pending, processing, completed or failed"
t_check "line 12: a message outside its conversation" eval '[[ $(reason 12) == "message outside its conversation"* ]]'
t_check "line 13: not an object" test "$(reason 13)" = "a record must be a JSON object"
t_check "line 14: an incomplete conversation" test "$(reason 14)" = "incomplete: 2 of its 3 messages"
t_check "13 refusals in all, each with its line" test "$(jq -r '.refused_count' "$W/bad.json")" = 13
t_check "nothing of a refused record was written" \
    test "$(tc_sql "select count(*) from conversations where id = '$(rec t5 | jq -r .interaction.id)'")" = 0
# A new conversation whose message ids an earlier import stored: the batch's
# insert meets the primary key, rolls back and is checked again, naming them.
{
    rec good-b | jq -c '.interaction.id = "6f1f6c2e-0000-4000-8000-000000000003" | .messages[].interactionId = .interaction.id'
    rec good-c
} >"$W/reused.jsonl"
"$CTL" import --team old --json "$W/reused.jsonl" >"$W/reused.json"
rc=$?
t_check "message ids stored by an earlier import: refused (exit 1), the other record imported" \
    eval '[[ $rc == 1 && $(jq -r ".refused[0].reason" "$W/reused.json") == "message id "*" already exists" &&
            $(jq -r .imported.conversations "$W/reused.json") == 1 &&
            $(tc_sql "select count(*) from conversations where id = '"'"'6f1f6c2e-0000-4000-8000-000000000003'"'"'") == 0 ]]'

# ---------------------------------------------------------------- a killed import, run again

python3 "$GEN" --convs 100 --msgs 2000 --format legacy --seed killed >"$W/big.jsonl"
tc_sql "insert into teams (id, name) values (gen_random_uuid(), 'killed')" >/dev/null
count_in() { tc_sql "select count(*) || ' ' || coalesce(sum(message_count), 0) from conversations c join teams t on t.id = c.team_id where t.name = 'killed'"; }
# 4 streams: 4 batches of 25 conversations in flight at once. Another
# session holds the last conversation's id (an uncommitted insert), so the
# last batch waits on it while the first three commit: the import is killed
# then, half-way whatever its speed; the holder's transaction goes with it.
last=$(tail -n 1 "$W/big.jsonl" | jq -r .interaction.id)
PGAPPNAME=holder psql "$BICKY_DATABASE_URL" -X -q -c "insert into conversations (id, team_id)
    select '$last', id from teams where name = 'killed'; select pg_sleep(300)" >/dev/null 2>&1 &
hpid=$!
bk_wait_for 30 eval '[[ $(tc_sql "select count(*) from pg_stat_activity where application_name = '"'holder'"' and query like '"'%pg_sleep%'"'") == 1 ]]'
"$CTL" import --team killed --streams 4 "$W/big.jsonl" >"$W/k1.out" 2>&1 &
kpid=$!
bk_wait_for 120 eval '[[ $(count_in) == "75 150000" ]]'
kill -9 "$kpid" 2>/dev/null
wait "$kpid" 2>/dev/null
tc_sql "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'holder'" >/dev/null
wait "$hpid" 2>/dev/null
partial=$(count_in)
t_check "the import was killed half-way ($partial)" eval '[[ $partial != "0 0" && $partial != "100 200000" ]]'
t_check "… leaving whole conversations only (2000 messages each)" \
    test "$(tc_sql "select count(*) from conversations c join teams t on t.id = c.team_id where t.name = 'killed' and message_count <> 2000")" = 0
"$CTL" import --team killed --json "$W/big.jsonl" >"$W/k2.json"
rc=$?
t_check "run again: exit 0, the rest imported, the first part skipped" \
    eval '[[ $rc == 0 && $(jq -r ".imported.conversations + .skipped" "$W/k2.json") == 100 && $(jq -r .skipped "$W/k2.json") == ${partial%% *} ]]'
t_check "… 100 conversations, 200000 messages, none twice" \
    eval '[[ $(count_in) == "100 200000" && $(tc_sql "select count(*) from messages m join teams t on t.id = m.team_id where t.name = '"'killed'"'") == 200000 ]]'

t_check "… every conversation gapless, its counters matching its rows" tc_gapless

# ---------------------------------------------------------------- streams

"$CTL" import --help >"$W/help.txt" 2>&1
t_check "import --help names --streams" grep -q -- "--streams" "$W/help.txt"
"$CTL" import --team killed --streams 0 "$W/big.jsonl" >/dev/null 2>&1
rc0=$?
"$CTL" import --team killed --streams 17 "$W/big.jsonl" >/dev/null 2>&1
rc17=$?
t_check "--streams 0 or 17: exit 2" eval '[[ $rc0 == 2 && $rc17 == 2 ]]'
# Conversation A has 50,000 messages (a batch of its own, on stream 1); B, on
# stream 2 at the same time, reuses A's first message id. Whichever batch
# commits second collides on the key (or sees the other's row in its check),
# checks again and is refused; the other is imported whole.
python3 "$GEN" --convs 1 --msgs 50000 --format legacy --seed race-a >"$W/race.jsonl"
mid=$(head -c 4000 "$W/race.jsonl" | grep -o '"messages":\[{"id":"[^"]*"' | cut -d'"' -f6)
python3 "$GEN" --convs 1 --msgs 2 --format legacy --seed race-b | jq -c ".messages[0].id = \"$mid\"" >>"$W/race.jsonl"
tc_sql "insert into teams (id, name) values (gen_random_uuid(), 'race')" >/dev/null
"$CTL" import --team race --streams 2 --json "$W/race.jsonl" >"$W/race.json"
rc=$?
t_check "a message id in two streams' batches: exit 1, one conversation refused for it" \
    eval '[[ $rc == 1 && $(jq -r "\"\(.imported.conversations) \(.refused_count)\"" "$W/race.json") == "1 1" &&
            $(jq -r ".refused[0].reason" "$W/race.json") == "message id $mid "* ]]'
t_check "… the other imported whole (50,000 or 2 messages), the id once" \
    eval '[[ $(tc_sql "select message_count from conversations c join teams t on t.id = c.team_id where t.name = '"'race'"'") =~ ^(50000|2)$ &&
            $(tc_sql "select count(*) from messages where id = '"'$mid'"'") == 1 ]]'

# ---------------------------------------------------------------- a batch too big to hold

# A batch is held in memory, then COPYed straight into the tables, while it
# fits in 32 MB; a conversation of 80,000 messages and 80,000 events (about
# 39 MB of rows) is staged in imp_rec as it is read instead. Both ways, in
# one file: everything imported, gapless, its counters and last_event_id right.
python3 "$GEN" --convs 2 --msgs 3 --format bicky --seed held-a >"$W/mixed.jsonl"
python3 "$GEN" --convs 1 --msgs 80000 --format bicky --seed staged >>"$W/mixed.jsonl"
python3 "$GEN" --convs 2 --msgs 3 --format bicky --seed held-b >>"$W/mixed.jsonl"
tc_sql "insert into teams (id, name) values (gen_random_uuid(), 'mixed')" >/dev/null
"$CTL" import --team mixed --json "$W/mixed.jsonl" >"$W/mixed.json"
rc=$?
t_check "a 39 MB conversation between small ones: exit 0, 5 conversations, 80,012 messages and events" \
    eval '[[ $rc == 0 && $(jq -r "\"\(.imported.conversations) \(.imported.messages) \(.imported.events)\"" "$W/mixed.json") == "5 80012 80012" ]]'
t_check "… each one's last_event_id the id of its last event" \
    test "$(tc_sql "select count(*) from conversations c join teams t on t.id = c.team_id
                    join events e on e.id = c.last_event_id and e.seq = c.last_event_seq
                    where t.name = 'mixed'")" = 5
t_check "… every conversation gapless, its counters matching its rows" tc_gapless

tc_finish legacy_import
