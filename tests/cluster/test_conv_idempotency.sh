#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_idempotency.sh — Idempotency-Key on a real cluster: a retried
# write returns the first answer byte for byte and writes nothing more
# (create, post, POST /api/message, patch, delete, cancel); the same key with
# another body, path or method is 409 and writes nothing; concurrent
# duplicates store one message; refused requests do not burn the key; a
# retry after kill -9 of the owner (right after the 202) gets the stored
# answer from the restarted node. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_idempotency
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_SUPERVISE=0 BICKY_REQUEST_TIMEOUT_MS=3000
tc_start conv_idempotency

# keyed METHOD PATH BODY KEY: tc_req with an Idempotency-Key.
keyed() { tc_req "$1" "$2" "$3" -H "Idempotency-Key: $4"; }

count() { tc_sql "select count(*) from $1"; }

# ---------------------------------------------------------------- create

keyed POST /api/conversations '{"title":"idem"}' k-create
first="$TC_CODE $TC_BODY"
x=$(tc_jq .id)
keyed POST /api/conversations '{"title":"idem"}' k-create
t_check "retried create: 201 and the same body byte for byte" test "$TC_CODE $TC_BODY" = "$first"
t_check "one conversation, one conversation.created" \
    test "$(count "conversations where title = 'idem'") $(count "events where conversation_id = '$x'")" = "1 1"
before=$(tc_counts)
keyed POST /api/conversations '{"title":"other"}' k-create
t_check "same key, other body: 409 conflict" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
keyed POST /api/message '{"title":"idem"}' k-create
t_check "same key, other route: 4xx (400 or 409), not a write" \
    eval '[[ $TC_CODE == 400 || $TC_CODE == 409 ]]'
keyed POST /api/message '{"content":"x"}' k-create
t_check "same key on POST /api/message (same derived conversation): 409" test "$TC_CODE" = 409
t_check "the refused reuses wrote nothing" test "$(tc_counts)" = "$before"

# ---------------------------------------------------------------- post

keyed POST "/api/conversations/$x/messages" '{"content":"only once"}' k-post
first="$TC_CODE $TC_BODY"
keyed POST "/api/conversations/$x/messages" '{"content":"only once"}' k-post
t_check "retried post: 202 and the same body byte for byte" test "$TC_CODE $TC_BODY" = "$first"
t_check "one user message, one turn" \
    bk_wait_for 5 eval "[[ \$(count \"messages where conversation_id = '$x'\") == 2 && \$(tc_status $x) == idle ]]"
keyed POST "/api/conversations/$x/messages" '{"content":"only once"}' k-post
t_check "a retry after the turn finished still gets the first answer" test "$TC_CODE $TC_BODY" = "$first"
y=$(tc_conv '{"title":"idem y"}')
before=$(tc_counts)
keyed POST "/api/conversations/$x/messages" '{"content":"changed"}' k-post
t_check "same key, other content: 409" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
keyed POST "/api/conversations/$y/messages" '{"content":"only once"}' k-post
t_check "same key and body on another conversation: 409" test "$TC_CODE" = 409
t_check "... and the two refusals wrote nothing" test "$(tc_counts)" = "$before"

# ---------------------------------------------------------------- concurrent duplicates

for i in $(seq 1 10); do
    curl -s -m 10 -o "$TC_VAR/dup.$i" -w '%{http_code}\n' -X POST \
        -H "Authorization: Bearer $BICKY_TOKEN" -H "$TC_JSON" -H 'Idempotency-Key: k-dup' \
        --data-binary '{"content":"ten at once"}' "$BICKY_URL/api/conversations/$x/messages" \
        >"$TC_VAR/dup.$i.code" &
done
wait
codes=$(sort "$TC_VAR"/dup.*.code | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' ')
t_check "10 concurrent duplicates: all 202 ($codes)" test "$codes" = "202x10 "
t_check "... with one and the same body" test "$(cat "$TC_VAR"/dup.[0-9]* | sort -u | wc -l)" = 1
t_check "... and one stored message" \
    test "$(count "messages where content = 'ten at once'")" = 1

# ---------------------------------------------------------------- refusals do not burn a key

keyed POST "/api/conversations/$x/messages" '{"content":""}' k-later
t_check "a refused keyed request (400)..." test "$TC_CODE" = 400
keyed POST "/api/conversations/$x/messages" '{"content":"now valid"}' k-later
t_check "... leaves the key free: a valid request with it is 202" test "$TC_CODE" = 202
t_check "no key stored for a refused request" \
    test "$(count "idempotency_keys where key = 'k-later'")" = 1

# ---------------------------------------------------------------- POST /api/message

keyed POST /api/message '{"content":"shortcut once"}' k-msg
first="$TC_CODE $TC_BODY"
keyed POST /api/message '{"content":"shortcut once"}' k-msg
t_check "retried POST /api/message: the same answer (same conversation and message)" \
    test "$TC_CODE $TC_BODY" = "$first"
t_check "... created true in both, one conversation, one message" \
    test "$(tc_jq .created) $(count "messages where content = 'shortcut once'")" = "true 1"

# ---------------------------------------------------------------- patch, delete, cancel

keyed PATCH "/api/conversations/$x" '{"title":"renamed"}' k-patch
first="$TC_CODE $TC_BODY"
keyed PATCH "/api/conversations/$x" '{"title":"renamed"}' k-patch
t_check "retried PATCH: 200 and the same body" test "$TC_CODE $TC_BODY" = "$first"
t_check "one conversation.updated" \
    test "$(count "events where conversation_id = '$x' and type = 'conversation.updated'")" = 1
keyed PATCH "/api/conversations/$x" '{"title":"renamed again"}' k-patch
t_check "PATCH with the key and another body: 409" test "$TC_CODE" = 409

z=$(tc_conv '{"title":"to delete","metadata":{"echo":{"delay_ms":100}}}')
tc_post "$z" "one two three four five six seven eight nine ten" >/dev/null
sleep 0.3
keyed POST "/api/conversations/$z/cancel" '' k-cancel
t_check "keyed cancel of a running turn: 202" test "$TC_CODE" = 202
keyed POST "/api/conversations/$z/cancel" '' k-cancel
t_check "retried cancel: 202 again (stored), not 409" test "$TC_CODE" = 202
tc_req POST "/api/conversations/$z/cancel"
t_check "an unkeyed cancel now: 409 (nothing runs)" test "$TC_CODE" = 409
t_check "one turn.cancelled" \
    test "$(count "events where conversation_id = '$z' and type = 'turn.cancelled'")" = 1
keyed DELETE "/api/conversations/$z" '' k-delete
code1=$TC_CODE
keyed DELETE "/api/conversations/$z" '' k-delete
t_check "keyed DELETE twice: 204 both" test "$code1 $TC_CODE" = "204 204"
t_check "one conversation.archived" \
    test "$(count "events where conversation_id = '$z' and type = 'conversation.archived'")" = 1

# ---------------------------------------------------------------- retry after a crash

w=$(tc_conv '{"title":"crash retry"}')
owner=$(tc_owner "$w")
old=$(tc_pid "$owner")
keyed POST "/api/conversations/$w/messages" '{"content":"survives the crash"}' k-crash
first="$TC_CODE $TC_BODY"
kill -KILL "$old"
t_check "202 before kill -9 of the owner $owner" test "${first%% *}" = 202
# The supervisor must have seen the death before it is asked to restart.
bk_wait_for 10 grep -q "$owner pid=$old exited" "$TC_VAR/log/supervisor.log"
kill -USR1 "$(bk_read_pid "$TC_VAR/run/supervisor.pid")"
bk_wait_for 10 eval "p=\$(tc_pid $owner); [[ -n \$p && \$p != $old ]] && tc_node_is $owner alive"
retry() {
    keyed POST "/api/conversations/$w/messages" '{"content":"survives the crash"}' k-crash
    [[ $TC_CODE == 202 ]]
}
t_check "the retry after the restart is 202" bk_wait_for 10 retry
t_check "... with the stored first answer" test "$TC_CODE $TC_BODY" = "$first"
t_check "... and one message" test "$(count "messages where content = 'survives the crash'")" = 1

tc_finish conv_idempotency
