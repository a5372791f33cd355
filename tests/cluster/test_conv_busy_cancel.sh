#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_busy_cancel.sh — turns on a real cluster: each on_busy policy
# (enqueue: processed in order; reject: 409 and nothing written; interrupt:
# the running turn cancelled first), cancel (partial reply stored, equal to
# the deltas sent; 409 when nothing runs; the queue goes on), delete during a
# turn (archived, queued messages cancelled, later posts 409), and a failing
# strategy (turn.failed, back-off, the conversation stays usable).
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_busy_cancel
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start conv_busy_cancel

SLOW='"metadata":{"echo":{"delay_ms":60}}'
LONG="one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four"
LONG=${LONG//$'\n'/ }

# "role:status:content" of a conversation's messages, in seq order, "|"-joined.
msgs() {
    tc_sql "select string_agg(role || ':' || status || ':' || content, '|' order by seq)
            from messages where conversation_id = '$1'"
}
types() { tc_sql "select string_agg(type, ' ' order by seq) from events where conversation_id = '$1'"; }
# Every assistant reply answers the user message its turn names.
replies_match() {
    [[ $(tc_sql "select count(*) from events e join messages u on u.id::text = e.action->>'user_message_id'
                 join messages a on a.id::text = e.action->>'message_id'
                 where e.conversation_id = '$1' and e.type = 'turn.started'
                 and a.status = 'completed' and a.content <> 'echo: ' || u.content") == 0 ]]
}

# ---------------------------------------------------------------- enqueue

c=$(tc_conv "{$SLOW}")
FIRST="first in line: $LONG"
s1=$(tc_post "$c" "$FIRST" && tc_jq .message.status)
s2=$(tc_post "$c" "second in line" && tc_jq .message.status)
s3=$(tc_post "$c" "third in line" && tc_jq .message.status)
t_check "enqueue: three 202s while busy; the later two are pending" \
    test "$(echo "$s1" "$s2" "$s3" | tr '\n' ' ' | awk '{ print $2, $4, $6 }')" = "completed pending pending"
t_check "enqueue: the conversation is processing meanwhile" test "$(tc_status "$c")" = processing
t_check "enqueue: all three answered, in order" tc_wait_status "$c" idle 15
t_check "enqueue: messages by seq (user replies follow acceptance)" test "$(msgs "$c")" = \
    "user:completed:$FIRST|assistant:completed:echo: $FIRST|user:completed:second in line|user:completed:third in line|assistant:completed:echo: second in line|assistant:completed:echo: third in line"
t_check "enqueue: each reply answers its own message" replies_match "$c"
t_check "enqueue: turns started in posting order" \
    test "$(tc_sql "select string_agg(u.content, ',' order by e.seq) from events e join messages u
                    on u.id::text = e.action->>'user_message_id' where e.conversation_id = '$c'
                    and e.type = 'turn.started'")" = "$FIRST,second in line,third in line"

# ---------------------------------------------------------------- reject

c=$(tc_conv "{$SLOW}")
tc_req PATCH "/api/conversations/$c" '{"on_busy":"reject"}'
t_check "PATCH on_busy=reject: 200" test "$TC_CODE $(tc_jq .on_busy)" = "200 reject"
tc_post "$c" "$LONG" >/dev/null
before=$(tc_counts)
tc_req POST "/api/conversations/$c/messages" '{"content":"not now"}'
t_check "reject: a post during the turn is 409 conflict" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
t_check "reject: nothing written" test "$(tc_counts)" = "$before"
tc_wait_status "$c" idle 10
tc_req POST "/api/conversations/$c/messages" '{"content":"now it is fine"}'
t_check "reject: once idle, a post is 202" test "$TC_CODE" = 202
tc_wait_status "$c" idle 10
t_check "reject: two turns, no trace of the refused one" \
    test "$(tc_sql "select count(*) from messages where conversation_id = '$c'") $(tc_sql "select count(*) from messages where content = 'not now'")" = "4 0"

# ---------------------------------------------------------------- interrupt

c=$(tc_conv "{$SLOW,\"on_busy\":\"interrupt\"}")
tc_post "$c" "$LONG" >/dev/null
sleep 0.35
tc_req POST "/api/conversations/$c/messages" '{"content":"stop and answer this"}'
t_check "interrupt: a post during the turn is 202" test "$TC_CODE" = 202
tc_wait_status "$c" idle 10
part=$(tc_sql "select content from messages where conversation_id = '$c' and role = 'assistant' order by seq limit 1")
t_check "interrupt: the running reply is cancelled with a partial text ('$part')" \
    eval "[[ \$(tc_sql \"select status from messages where conversation_id = '$c' and role = 'assistant' order by seq limit 1\") == cancelled && -n '$part' && 'echo: $LONG' == '$part'* && '$part' != 'echo: $LONG' ]]"
t_check "interrupt: turn.cancelled, then the new message's turn completes" test "$(types "$c")" = \
    "conversation.created message.created turn.started turn.cancelled message.created turn.started message.completed turn.completed"
t_check "interrupt: the new message got its reply" \
    test "$(tc_sql "select content from messages where conversation_id = '$c' order by seq desc limit 1")" \
    = "echo: stop and answer this"

# ---------------------------------------------------------------- cancel

c=$(tc_conv "{$SLOW}")
rm -f "$TC_VAR/ready"
tc_sse "/api/conversations/$c/events" --idle 1 --timeout 10 \
    --ready-file "$TC_VAR/ready" >"$TC_VAR/cancel.sse" &
probe=$!
bk_wait_for 5 test -e "$TC_VAR/ready"
tc_post "$c" "$LONG" >/dev/null
sleep 0.35
tc_req POST "/api/conversations/$c/cancel"
t_check "cancel of a running turn: 202 {}" test "$TC_CODE $TC_BODY" = "202 {}"
wait "$probe"
stored=$(tc_sql "select content from messages where conversation_id = '$c' and role = 'assistant'")
sent=$(jq -j 'select(.event == "message.delta") | .data.text' "$TC_VAR/cancel.sse")
t_check "cancel: the stored partial reply is exactly what was streamed ('$stored')" \
    test -n "$stored" -a "$stored" = "$sent"
t_check "cancel: assistant message cancelled, conversation idle" \
    test "$(tc_sql "select status from messages where conversation_id = '$c' and role = 'assistant'") $(tc_status "$c")" = "cancelled idle"
t_check "cancel: turn.cancelled carries the message and usage" \
    test "$(jq -r 'select(.event == "turn.cancelled") | .data.action | "\(.message.status) \(.usage.output_tokens > 0)"' "$TC_VAR/cancel.sse")" = "cancelled true"
t_check "cancel: no delta after turn.cancelled (stream read 1 s past it)" \
    test "$(jq -r 'select(.event) | .event' "$TC_VAR/cancel.sse" | sed -n '/turn.cancelled/,$p' | tr '\n' ' ')" = "turn.cancelled "
tc_req POST "/api/conversations/$c/cancel"
t_check "cancel when nothing runs: 409 conflict" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
tc_post "$c" "still usable" >/dev/null
t_check "cancel: the conversation stays usable" bk_wait_for 10 eval \
    "[[ \$(tc_sql \"select content from messages where conversation_id = '$c' order by seq desc limit 1\") == 'echo: still usable' ]]"

# 24 words at 400 ms: the turn still runs when the cancel comes, however slow
# the machine is between the posts; the cancel waits for the reply to stream.
c=$(tc_conv '{"metadata":{"echo":{"delay_ms":400}}}')
tc_post "$c" "$LONG" >/dev/null
tc_post "$c" "queued one" >/dev/null
tc_post "$c" "queued two" >/dev/null
bk_wait_for 10 eval "[[ -n \$(tc_sql \"select 1 from messages where conversation_id = '$c'
                                        and role = 'assistant' and status = 'streaming'\") ]]"
tc_req POST "/api/conversations/$c/cancel"
t_check "cancel with a queue: 202" test "$TC_CODE" = 202
tc_wait_status "$c" idle 10
t_check "cancel with a queue: the queued messages run after it" test "$(msgs "$c")" = \
    "user:completed:$LONG|assistant:cancelled:$(tc_sql "select content from messages where conversation_id = '$c' and seq = 2")|user:completed:queued one|user:completed:queued two|assistant:completed:echo: queued one|assistant:completed:echo: queued two"

# ---------------------------------------------------------------- delete during a turn

c=$(tc_conv "{$SLOW}")
tc_post "$c" "$LONG" >/dev/null
tc_post "$c" "never answered" >/dev/null
sleep 0.3
tc_req DELETE "/api/conversations/$c"
t_check "delete during a turn: 204" test "$TC_CODE" = 204
t_check "delete: archived, the turn cancelled, the queued message cancelled" \
    test "$(tc_status "$c") $(tc_sql "select string_agg(role || ':' || status, ',' order by seq) from messages where conversation_id = '$c'")" \
    = "archived user:completed,assistant:cancelled,user:cancelled"
tc_req POST "/api/conversations/$c/messages" '{"content":"too late"}'
t_check "delete: a later post is 409" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
tc_req DELETE "/api/conversations/$c"
t_check "delete again: 204, no second conversation.archived" \
    test "$TC_CODE $(tc_sql "select count(*) from events where conversation_id = '$c' and type = 'conversation.archived'")" = "204 1"
tc_req GET "/api/conversations/$c"
t_check "an archived conversation still reads (200, archived)" test "$TC_CODE $(tc_jq .status)" = "200 archived"

# ---------------------------------------------------------------- a failing strategy

c=$(tc_conv '{"metadata":{"echo":{"delay_ms":10,"fail_every":2}}}')
tc_post "$c" "turn one" >/dev/null
tc_post "$c" "turn two fails half way through" >/dev/null
tc_post "$c" "turn three" >/dev/null
t_check "fail_every=2: the three turns end" bk_wait_for 10 eval \
    "[[ \$(tc_sql \"select count(*) from messages where conversation_id = '$c' and role = 'assistant' and status in ('completed', 'error')\") == 3 ]]"
tc_wait_status "$c" idle 5
t_check "the failed turn: assistant error, message.failed + turn.failed; the others complete" \
    test "$(tc_sql "select string_agg(status, ',' order by seq) from messages where conversation_id = '$c' and role = 'assistant'") $(tc_sql "select count(*) from events where conversation_id = '$c' and type in ('message.failed', 'turn.failed')")" \
    = "completed,error,completed 2"
t_check "the turn after the failure answers its own message" replies_match "$c"

tc_finish conv_busy_cancel
