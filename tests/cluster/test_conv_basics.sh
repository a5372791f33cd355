#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_basics.sh — the conversation API end to end on a real cluster
# (registry, 2 nodes, gateway, Postgres): create → post → assistant reply;
# the SSE order message.created → turn.started → deltas → message.completed
# → turn.completed, deltas that concatenate to the stored reply; the stored
# rows, the event log, a PATCH that changes nothing (no event, the same
# conversation), POST /api/message, listings on both nodes, the process
# routes. Ends with the gapless check, down, exit statuses and no sanitizer
# report. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_basics
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start conv_basics

# ---------------------------------------------------------------- create → post → reply

conv=$(tc_conv '{"title":"basics","metadata":{"echo":{"delay_ms":20}}}')
t_check "POST /api/conversations is 201 with an id" test -n "$conv"
tc_req GET "/api/conversations/$conv"
t_check "the new conversation: idle, echo, enqueue, 0 messages, title kept" \
    test "$(tc_jq '[.status, .strategy, .on_busy, .message_count, .title] | join(" ")')" \
    = "idle echo enqueue 0 basics"

sse=$TC_VAR/basics.sse
rm -f "$TC_VAR/ready"
tc_sse "/api/conversations/$conv/events" --until turn.completed --timeout 15 \
    --ready-file "$TC_VAR/ready" >"$sse" &
probe=$!
t_check "SSE stream open" bk_wait_for 5 test -e "$TC_VAR/ready"
tc_req POST "/api/conversations/$conv/messages" '{"content":"hello bicky world"}'
t_check "POST message is 202 (got $TC_CODE)" test "$TC_CODE" = 202
t_check "the 202 carries the stored user message (seq 1, completed)" \
    test "$(tc_jq '.message | [.seq, .role, .status, .content] | join(" ")')" \
    = "1 user completed hello bicky world"
user_id=$(tc_jq .message.id)
wait "$probe"

types=$(jq -r 'select(.event) | .event' "$sse" | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' ')
t_check "SSE order: message.created, turn.started, 4 deltas, message.completed, turn.completed ($types)" \
    test "$types" = "message.createdx1 turn.startedx1 message.deltax4 message.completedx1 turn.completedx1 "
ids=$(jq -r 'select(.id != null) | .id' "$sse" | tr '\n' ' ')
t_check "stored events carry increasing ids ($ids)" \
    eval "jq -s -e '[.[] | select(.id != null) | .id] | . == (sort | unique) and length == 4' '$sse' >/dev/null"
t_check "deltas have no id and indexes 0..3" \
    test "$(jq -r 'select(.event == "message.delta") | "\(.id)/\(.data.index)"' "$sse" | tr '\n' ' ')" \
    = "null/0 null/1 null/2 null/3 "
joined=$(jq -j 'select(.event == "message.delta") | .data.text' "$sse")
t_check "the deltas concatenate to the reply ('$joined')" test "$joined" = "echo: hello bicky world"
stored=$(jq -r 'select(.event == "message.completed") | .data.action.message.content' "$sse")
t_check "message.completed carries the same text" test "$stored" = "$joined"
t_check "turn.completed names the user message and usage" \
    test "$(jq -r 'select(.event == "turn.completed") | .data.action | "\(.user_message_id) \(.usage.input_tokens) \(.usage.output_tokens)"' "$sse")" \
    = "$user_id 3 4"
t_check "message.created embeds the user message" \
    test "$(jq -r 'select(.event == "message.created") | .data.action.message.id' "$sse")" = "$user_id"

t_check "conversation idle after the turn" tc_wait_status "$conv" idle 5
tc_req GET "/api/conversations/$conv/messages"
t_check "GET messages: user then completed assistant reply" \
    test "$(tc_jq '[.data[] | "\(.seq):\(.role):\(.status):\(.content)"] | join("|")')" \
    = "1:user:completed:hello bicky world|2:assistant:completed:echo: hello bicky world"
t_check "assistant metadata: model echo, usage 3/4" \
    test "$(tc_jq '.data[1].metadata | "\(.model) \(.usage.input_tokens) \(.usage.output_tokens)"')" = "echo 3 4"
tc_req GET "/api/conversations/$conv/events"
t_check "GET events: the stored log in order" \
    test "$(tc_jq '[.data[].type] | join(" ")')" \
    = "conversation.created message.created turn.started message.completed turn.completed"
last=$(tc_jq '.data[-1].id')
tc_req GET "/api/conversations/$conv"
t_check "conversation: 2 messages, last_event_id = last event ($last)" \
    test "$(tc_jq '"\(.message_count) \(.last_event_id) \(.status)"')" = "2 $last idle"
tc_req GET "/api/conversations/$conv/messages?after_seq=1"
t_check "after_seq=1 gives the reply only" test "$(tc_jq '[.data[].seq] | join(",")')" = 2

# PATCH that changes nothing: the conversation as it is, no event, updated_at kept.
tc_req GET "/api/conversations/$conv"
as_is=$(jq -cS . <<<"$TC_BODY")
n_events=$(tc_sql "select count(*) from events where conversation_id = '$conv'")
tc_req PATCH "/api/conversations/$conv" '{}'
t_check "PATCH {}: 200 with the conversation as it is" \
    test "$TC_CODE $(jq -cS . <<<"$TC_BODY")" = "200 $as_is"
tc_req PATCH "/api/conversations/$conv" '{"title":"basics","on_busy":"enqueue"}'
t_check "PATCH with the stored values: 200, unchanged" \
    test "$TC_CODE $(jq -cS . <<<"$TC_BODY")" = "200 $as_is"
t_check "neither appended an event" \
    test "$(tc_sql "select count(*) from events where conversation_id = '$conv'")" = "$n_events"

# Three more turns in a row: every reply in order.
for w in alpha beta gamma; do
    tc_post "$conv" "$w" >/dev/null
done
t_check "three more turns finish" bk_wait_for 10 eval "[[ \$(tc_sql \"select count(*) from messages where conversation_id = '$conv' and status = 'completed'\") == 8 ]]"
t_check "replies follow their messages" \
    test "$(tc_messages "$conv" | awk '{ print $2 ":" $4 $5 }' | tr '\n' ' ')" \
    = "user:hellobicky assistant:echo:hello user:alpha assistant:echo:alpha user:beta assistant:echo:beta user:gamma assistant:echo:gamma "

# ---------------------------------------------------------------- POST /api/message

tc_req POST /api/message '{"content":"shortcut","title":"via message"}'
t_check "POST /api/message without id: 202, created true" \
    test "$TC_CODE $(tc_jq .created)" = "202 true"
sc=$(tc_jq .conversation_id)
mid=$(tc_jq .message_id)
t_check "its message_id is the stored user message" \
    test "$(tc_sql "select role || seq from messages where id = '$mid' and conversation_id = '$sc'")" = user1
tc_req POST /api/message "{\"content\":\"again\",\"conversation_id\":\"$sc\"}"
t_check "POST /api/message to it: 202, created false" test "$TC_CODE $(tc_jq .created)" = "202 false"
t_check "both shortcut messages get replies" bk_wait_for 10 eval "[[ \$(tc_sql \"select count(*) from messages where conversation_id = '$sc' and role = 'assistant' and status = 'completed'\") == 2 ]]"
tc_req GET "/api/conversations/$sc"
t_check "its title came from the create fields" test "$(tc_jq .title)" = "via message"

# ---------------------------------------------------------------- both nodes

declare -A owners=()
convs=()
for i in $(seq 1 10); do
    c=$(tc_conv "{\"title\":\"spread $i\"}")
    convs+=("$c")
    owners[$(tc_owner "$c")]=1
done
t_check "conversations land on both nodes (${!owners[*]})" test "${#owners[@]}" = 2
ok=1
for c in "${convs[@]}"; do
    [[ -n $(tc_post "$c" "spread message") ]] || ok=0
done
t_check "a post on each of 10 conversations is 202" test "$ok" = 1
t_check "each gets its reply" bk_wait_for 10 eval "[[ \$(tc_sql \"select count(*) from messages where role = 'assistant' and status = 'completed' and content = 'echo: spread message'\") == 10 ]]"
tc_req GET '/api/conversations?limit=5'
t_check "list: 5 newest first, next_cursor" \
    test "$(tc_jq '[.data[].title] | join(",")') $(tc_jq '.next_cursor != null')" \
    = "spread 10,spread 9,spread 8,spread 7,spread 6 true"
cursor=$(tc_jq .next_cursor)
tc_req GET "/api/conversations?limit=5&cursor=$cursor"
t_check "second page continues" \
    test "$(tc_jq '[.data[].title] | join(",")')" = "spread 5,spread 4,spread 3,spread 2,spread 1"
tc_req GET "/api/events?limit=500"
t_check "team log: oldest first, strictly increasing ids" \
    eval "tc_jq '[.data[].id] | . == (sort | unique) and length > 40' | grep -q true"
first=$(tc_jq '.data[0].id')
tc_req GET "/api/events?after=$first&limit=1"
t_check "team log ?after= skips to the next event" test "$(tc_jq '.data[0].id > '"$first")" = true
tc_req GET /api/status
t_check "/api/status: 2 live nodes, counts by status" \
    test "$TC_CODE $(tc_jq '"\(.live_nodes) \(.conversations_by_status.idle > 0)"')" = "200 2 true"

# ---------------------------------------------------------------- process routes

tc_req GET /health
t_check "GET /health 200 ok" test "$TC_CODE $(tc_jq .status)" = "200 ok"
tc_req HEAD /health
t_check "HEAD /health 200" test "$TC_CODE" = 200
tc_req GET /metrics
t_check "GET /metrics has request counters" eval 'grep -q bicky_gateway_http_requests_total <<<"$TC_BODY"'
tc_req DELETE /api/conversations
t_check "DELETE /api/conversations: 405 with Allow" \
    test "$TC_CODE $(tc_header Allow)" = "405 POST, GET"
tc_req GET /api/nothing
t_check "unknown route: 404 not_found" test "$TC_CODE $(tc_jq .code)" = "404 not_found"
TC_TOKEN=-
tc_req GET "/api/conversations/$conv"
t_check "no token: 401 with WWW-Authenticate" \
    test "$TC_CODE $(tc_header WWW-Authenticate | cut -d' ' -f1)" = "401 Bearer"
TC_TOKEN=$BICKY_TOKEN

tc_finish conv_basics
