#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_teams.sh — team isolation on a real cluster: with another team's
# token every conversation route of a conversation is 404 (never 403, never
# 409), whether its actor is resident or passivated, idle or mid-turn, and
# nothing is written; lists, the team log, the status counts and the team SSE
# stream show only the caller's team; idempotency keys are per team.
# Actors passivate after 1 s here (BICKY_ACTOR_IDLE_S=1) so both the resident
# and the cold path are crossed. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_teams
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_ACTOR_IDLE_S=1
tc_start conv_teams

TOKEN_A=$BICKY_TOKEN
TOKEN_B=$(tc_team_token rival)
t_check "a token for a second team" test -n "$TOKEN_B" -a "$TOKEN_B" != null

as_a() { TC_TOKEN=$TOKEN_A; }
as_b() { TC_TOKEN=$TOKEN_B; }

as_a
ca=$(tc_conv '{"title":"team a","metadata":{"echo":{"delay_ms":10}}}')
tc_post "$ca" "secret of team a" >/dev/null
tc_wait_status "$ca" idle 5
as_b
cb=$(tc_conv '{"title":"team b"}')
t_check "each team has a conversation" test -n "$ca" -a -n "$cb"

# cross WHAT CONV: every conversation route of CONV with the current token
# must be 404 not_found; prints the routes that were not.
cross() {
    local c=$1 out=() r
    local routes=(
        "GET /api/conversations/$c"
        "HEAD /api/conversations/$c"
        "PATCH /api/conversations/$c {\"title\":\"stolen\"}"
        "PATCH /api/conversations/$c {}"
        "DELETE /api/conversations/$c"
        "GET /api/conversations/$c/messages"
        "GET /api/conversations/$c/messages?after_seq=1"
        "POST /api/conversations/$c/messages {\"content\":\"intruder\"}"
        "POST /api/conversations/$c/cancel"
        "GET /api/conversations/$c/events"
        "GET /api/conversations/$c/events?after=0"
        "POST /api/message {\"content\":\"intruder\",\"conversation_id\":\"$c\"}"
        "POST /api/message {\"content\":\"intruder\",\"conversation_id\":\"${c^^}\",\"title\":\"x\"}"
    )
    for r in "${routes[@]}"; do
        read -r m p b <<<"$r"
        tc_req "$m" "$p" "${b:-}"
        if [[ $m == HEAD ]]; then
            [[ $TC_CODE == 404 ]] || out+=("$r → $TC_CODE")
        elif [[ "$TC_CODE $(tc_jq .code)" != "404 not_found" ]]; then
            out+=("$r → $TC_CODE $TC_BODY")
        fi
    done
    tc_req POST "/api/conversations/$c/messages" '{"content":"intruder"}' -H 'Idempotency-Key: cross-1'
    [[ $TC_CODE == 404 ]] || out+=("keyed POST messages → $TC_CODE")
    for r in "" "--last-event-id 0"; do
        # shellcheck disable=SC2086
        tc_sse "/api/conversations/$c/events" $r --timeout 5 >"$TC_VAR/x.sse"
        [[ $(jq -r '.status // empty' "$TC_VAR/x.sse" | head -n 1) == 404 ]] ||
            out+=("SSE $r → $(head -c 200 "$TC_VAR/x.sse")")
    done
    ((${#out[@]} == 0)) || printf '  %s\n' "${out[@]}"
    ((${#out[@]} == 0))
}

row() { tc_sql "select status, title, message_count, last_event_id, updated_at from conversations where id = '$1'"; }

# ---------------------------------------------------------------- resident actors

before=$(tc_counts)
row_a=$(row "$ca")
as_b
t_check "B on A's conversation (resident actor): every route 404" cross "$ca"
as_a
t_check "A on B's conversation: every route 404" cross "$cb"
t_check "nothing was written by the crossings" test "$(tc_counts)" = "$before"
t_check "A's conversation unchanged" test "$(row "$ca")" = "$row_a"

# ---------------------------------------------------------------- passivated actors

sleep 2.5
as_b
t_check "B on A's conversation after passivation: every route 404" cross "$ca"
t_check "nothing was written (cold path)" test "$(tc_counts)" = "$before"
t_check "still no conversation of B with A's id" \
    test "$(tc_sql "select count(*) from conversations where id = '$ca'")" = 1
t_check "B's 'new' id on POST /api/message is refused, not taken over" \
    test "$(tc_sql "select t.name from conversations c join teams t on t.id = c.team_id where c.id = '$ca'")" = dev

# ---------------------------------------------------------------- mid-turn

as_a
tc_req PATCH "/api/conversations/$ca" '{"metadata":{"echo":{"delay_ms":150}}}'
tc_post "$ca" "a long turn for team a to run" >/dev/null
as_b
t_check "B on A's conversation mid-turn: every route 404" cross "$ca"
t_check "A's turn is not cancelled by B and completes" \
    bk_wait_for 10 eval "[[ \$(tc_sql \"select status from messages where conversation_id = '$ca' order by seq desc limit 1\") == completed ]]"
t_check "A's log holds no trace of B" \
    test "$(tc_sql "select count(*) from events where conversation_id = '$ca' and (type in ('turn.cancelled', 'conversation.archived') or action::text like '%intruder%' or action::text like '%stolen%')")" = 0

# ---------------------------------------------------------------- lists, log, status, stream

as_b
tc_req GET '/api/conversations?limit=500'
t_check "B's list holds only B's conversation" test "$(tc_jq '[.data[].id] | join(",")')" = "$cb"
tc_req GET '/api/events?limit=500'
t_check "B's team log holds only B's events" \
    test "$(tc_jq '[.data[].conversation_id] | unique | join(",")')" = "$cb"
tc_req GET /api/status
t_check "B's status counts only B's conversations" \
    test "$(tc_jq '.conversations_by_status | to_entries | map(.value) | add')" = 1
as_a
tc_req GET '/api/conversations?limit=500'
t_check "A's list does not hold B's conversation" \
    test "$(tc_jq "[.data[] | select(.id == \"$cb\")] | length")" = 0

as_b
rm -f "$TC_VAR/ready"
tc_sse /api/stream --until turn.completed --timeout 10 --ready-file "$TC_VAR/ready" \
    >"$TC_VAR/b-stream.sse" &
probe=$!
bk_wait_for 5 test -e "$TC_VAR/ready"
as_a
tc_post "$ca" "team a speaks while b listens" >/dev/null
tc_wait_status "$ca" idle 10
as_b
tc_post "$cb" "team b speaks" >/dev/null
wait "$probe"
t_check "B's team stream got B's turn and nothing of A" \
    test "$(jq -r 'select(.event) | .data.conversation_id // .data.action.message.conversation_id' "$TC_VAR/b-stream.sse" | sort -u | tr '\n' ' ')" = "$cb "
t_check "... including the turn's events" \
    test "$(jq -r 'select(.event) | .event' "$TC_VAR/b-stream.sse" | tail -n 1)" = turn.completed
t_check "B's team stream resumed from 0 replays only B's events" \
    eval "tc_sse /api/stream --last-event-id 0 --idle 0.5 --timeout 5 | jq -r 'select(.event) | .data.conversation_id' | sort -u | grep -qx '$cb'"

# ---------------------------------------------------------------- idempotency keys are per team

as_a
tc_req POST "/api/conversations/$ca/messages" '{"content":"same key"}' -H 'Idempotency-Key: shared-key'
code_a=$TC_CODE
id_a=$(tc_jq .message.id)
as_b
tc_req POST "/api/conversations/$cb/messages" '{"content":"same key"}' -H 'Idempotency-Key: shared-key'
t_check "the same key in two teams: two 202s, two messages" \
    test "$code_a $TC_CODE $([[ $id_a != "$(tc_jq .message.id)" ]] && echo differ)" = "202 202 differ"
tc_req POST /api/conversations '{"title":"keyed"}' -H 'Idempotency-Key: conv-key'
kb=$(tc_jq .id)
as_a
tc_req POST /api/conversations '{"title":"keyed"}' -H 'Idempotency-Key: conv-key'
t_check "a keyed create in each team gives each team its own conversation" \
    test "$TC_CODE $([[ $kb != "$(tc_jq .id)" ]] && echo differ)" = "201 differ"

# ---------------------------------------------------------------- tokens

TC_TOKEN=bk_not_a_real_token_0000000000000000000000000
tc_req GET /api/conversations
t_check "an unknown token: 401" test "$TC_CODE $(tc_jq .code)" = "401 unauthorized"
as_a

tc_finish conv_teams
