#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_sse_resume.sh — SSE resume on a real cluster: a client that
# disconnects after any number of events and reconnects with Last-Event-ID
# (or ?after=) receives exactly the remainder — every stored event once, in
# order, none skipped — both when replaying a finished conversation and while
# a turn streams live; a resume during a running turn merges replay and live
# events; a replay longer than one page; the team stream; bad resume points.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_sse_resume
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start conv_sse_resume

# Stored event ids of a conversation after an id, space separated (Postgres).
event_ids() {
    tc_sql "select id from events where conversation_id = '$1' and id > ${2:-0} order by id" |
        tr '\n' ' '
}

# Stored ids in an SSE capture, space separated.
sse_ids() { jq -r 'select(.id != null) | .id' "$@" | tr '\n' ' '; }

# ---------------------------------------------------------------- replay: every position

conv=$(tc_conv '{"title":"replay"}')
tc_post "$conv" "first turn" >/dev/null
tc_wait_status "$conv" idle 5
tc_post "$conv" "second turn" >/dev/null
bk_wait_for 5 eval "[[ \$(tc_sql \"select count(*) from events where conversation_id = '$conv'\") == 9 ]]"
tc_wait_status "$conv" idle 5
all=$(event_ids "$conv")
read -r -a E <<<"$all"
k=${#E[@]}
t_check "a finished conversation with 9 stored events" test "$k" = 9
bad=()
for ((i = 0; i <= k; i++)); do
    got=""
    if ((i > 0)); then
        tc_sse "/api/conversations/$conv/events" --last-event-id 0 --stored "$i" --rst \
            --timeout 5 >"$TC_VAR/a.sse"
        got=$(sse_ids "$TC_VAR/a.sse")
        [[ $got == "${E[*]:0:i} " ]] || bad+=("first part at $i: '$got'")
        resume=${E[i - 1]}
    else
        resume=0
    fi
    # Alternate the two ways of giving the resume point.
    if ((i % 2)); then
        tc_sse "/api/conversations/$conv/events?after=$resume" --idle 0.4 --timeout 5 \
            >"$TC_VAR/b.sse"
    else
        tc_sse "/api/conversations/$conv/events" --last-event-id "$resume" --idle 0.4 \
            --timeout 5 >"$TC_VAR/b.sse"
    fi
    rest=$(sse_ids "$TC_VAR/b.sse")
    want="${E[*]:i}"
    [[ $rest == "${want:+$want }" ]] || bad+=("remainder after $i: '$rest' want '$want'")
done
t_check "replay: disconnect after each of 0..$k events, resume gives exactly the remainder" \
    test "${#bad[@]}" = 0
((${#bad[@]})) && printf '  %s\n' "${bad[@]}"

tc_sse "/api/conversations/$conv/events?after=${E[0]}" --last-event-id "${E[4]}" --idle 0.4 \
    >"$TC_VAR/c.sse"
t_check "Last-Event-ID wins over ?after=" test "$(sse_ids "$TC_VAR/c.sse")" = "${E[*]:5} "

# ---------------------------------------------------------------- live: every position

live=$(tc_conv '{"title":"live","metadata":{"echo":{"delay_ms":40}}}')
# One turn streams 10 events: message.created, turn.started, 6 deltas,
# message.completed, turn.completed.
bad=()
for p in 1 2 3 4 5 6 7 8 9; do
    before=$(tc_sql "select coalesce(max(id), 0) from events where conversation_id = '$live'")
    rm -f "$TC_VAR/ready"
    tc_sse "/api/conversations/$live/events" --count "$p" --rst --timeout 10 \
        --ready-file "$TC_VAR/ready" >"$TC_VAR/p1.sse" &
    probe=$!
    bk_wait_for 5 test -e "$TC_VAR/ready"
    tc_post "$live" "one two three four five" >/dev/null
    wait "$probe"
    last=$(jq -r 'select(.id != null) | .id' "$TC_VAR/p1.sse" | tail -n 1)
    tc_sse "/api/conversations/$live/events" --last-event-id "${last:-$before}" \
        --until turn.completed --timeout 10 >"$TC_VAR/p2.sse"
    got="$(sse_ids "$TC_VAR/p1.sse" "$TC_VAR/p2.sse")"
    want="$(event_ids "$live" "$before")"
    [[ $got == "$want" ]] || bad+=("position $p: got '$got' want '$want'")
    n1=$(jq -s '[.[] | select(.event)] | length' "$TC_VAR/p1.sse")
    ((n1 == p)) || bad+=("position $p: the first stream ended after $n1 events")
    # Deltas are live only: some may be missed while away, none twice.
    idx=$(jq -r 'select(.event == "message.delta") | .data.index' "$TC_VAR/p1.sse" "$TC_VAR/p2.sse" |
        tr '\n' ' ')
    [[ $(tr ' ' '\n' <<<"$idx" | sed '/^$/d' | sort -n | uniq -d) == "" ]] ||
        bad+=("position $p: a delta twice ($idx)")
    tc_wait_status "$live" idle 5 || bad+=("position $p: not idle")
done
t_check "live: disconnect after each of 1..9 events of a turn, resume gives every stored event once" \
    test "${#bad[@]}" = 0
((${#bad[@]})) && printf '  %s\n' "${bad[@]}"

# ---------------------------------------------------------------- resume during a turn

# 80 words at 100 ms: the stream starts once the turn runs and has ~8 s to
# join it while it streams, even on a busy machine.
slow=$(tc_conv '{"title":"slow","metadata":{"echo":{"delay_ms":100}}}')
tc_post "$slow" "$(seq -s ' ' 1 80)" >/dev/null
bk_wait_for 10 eval "[[ \$(tc_sql \"select count(*) from events where conversation_id = '$slow' and type = 'turn.started'\") == 1 ]]"
tc_sse "/api/conversations/$slow/events" --last-event-id 0 --until turn.completed --timeout 30 \
    >"$TC_VAR/slow.sse"
t_check "resume from 0 during a turn: every stored event once, in order" \
    test "$(sse_ids "$TC_VAR/slow.sse")" = "$(event_ids "$slow")"
jq -s -e '[.[] | select(.event == "message.delta")] | length > 0' "$TC_VAR/slow.sse" >/dev/null ||
    jq -c '[.id, .event, .data.seq, .data.index]' "$TC_VAR/slow.sse" | head -n 40
t_check "... then the live deltas of the rest of the turn" \
    eval "jq -s -e '[.[] | select(.event == \"message.delta\")] | length > 0' '$TC_VAR/slow.sse' >/dev/null"
t_check "... and turn.completed last" \
    test "$(jq -r 'select(.event) | .event' "$TC_VAR/slow.sse" | tail -n 1)" = turn.completed

# ---------------------------------------------------------------- a replay of several pages

many=$(tc_conv '{"title":"many"}')
for i in $(seq 1 50); do
    tc_post "$many" "message $i" >/dev/null
done
t_check "50 queued turns finish" bk_wait_for 20 eval "[[ \$(tc_sql \"select count(*) from messages where conversation_id = '$many' and role = 'assistant' and status = 'completed'\") == 50 ]]"
tc_wait_status "$many" idle 5
n=$(event_ids "$many" | wc -w)
tc_sse "/api/conversations/$many/events" --last-event-id 0 --stored "$n" --timeout 10 \
    >"$TC_VAR/many.sse"
t_check "a replay of $n events (several pages) is complete and in order" \
    test "$(sse_ids "$TC_VAR/many.sse")" = "$(event_ids "$many")"
mid=$(event_ids "$many" | awk '{ print $150 }')
tc_sse "/api/conversations/$many/events" --last-event-id "$mid" --idle 0.5 --timeout 10 \
    >"$TC_VAR/many2.sse"
t_check "resume in the middle of a long log gives the remainder" \
    test "$(sse_ids "$TC_VAR/many2.sse")" = "$(event_ids "$many" "$mid")"

# ---------------------------------------------------------------- the team stream

mark=$(tc_sql "select max(id) from events")
for c in "$conv" "$live"; do
    tc_post "$c" "team stream" >/dev/null
    tc_wait_status "$c" idle 5
done
team_ids=$(tc_sql "select id from events where id > $mark order by id" | tr '\n' ' ')
tc_sse /api/stream --last-event-id "$mark" --idle 0.5 --timeout 10 >"$TC_VAR/team.sse"
t_check "/api/stream resume: the team's events after the mark, in order" \
    test "$(sse_ids "$TC_VAR/team.sse")" = "$team_ids"
half=$(awk '{ print $5 }' <<<"$team_ids")
tc_sse /api/stream --last-event-id "$half" --idle 0.5 --timeout 10 >"$TC_VAR/team2.sse"
t_check "/api/stream resume in the middle" \
    test "$(sse_ids "$TC_VAR/team2.sse")" = "$(tc_sql "select id from events where id > $half order by id" | tr '\n' ' ')"

# ---------------------------------------------------------------- bad resume points

tc_req GET "/api/conversations/$conv/events" "" -H 'Accept: text/event-stream' -H 'Last-Event-ID: abc'
t_check "Last-Event-ID: abc → 400 naming the header" \
    test "$TC_CODE $(tc_jq .field)" = "400 Last-Event-ID"
tc_req GET "/api/conversations/$conv/events?after=-1" "" -H 'Accept: text/event-stream'
t_check "?after=-1 → 400 naming after" test "$TC_CODE $(tc_jq .code) $(tc_jq .field)" = "400 invalid_field after"
tc_sse "/api/conversations/$(cat /proc/sys/kernel/random/uuid)/events" --timeout 5 >"$TC_VAR/nf.sse"
t_check "unknown conversation: plain 404, not a stream" \
    test "$(jq -r .status "$TC_VAR/nf.sse" | head -n 1)" = 404
tc_sse "/api/conversations/$(cat /proc/sys/kernel/random/uuid)/events" --last-event-id 0 \
    --timeout 5 >"$TC_VAR/nf2.sse"
t_check "unknown conversation with a resume point: plain 404" \
    test "$(jq -r .status "$TC_VAR/nf2.sse" | head -n 1)" = 404

tc_finish conv_sse_resume
