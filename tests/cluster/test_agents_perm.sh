#!/usr/bin/env bash
# test_agents_perm.sh — permissions end to end on a real cluster (2 nodes,
# so a decision often reaches a conversation owned by the other node than
# the one perm.get asked): deny (the refusal becomes the tool result),
# decisions repeated (same → the first answer, other → 409), unknown and
# other team's requests (404), bad bodies (400), listings and filters;
# remember "conversation" and "team" (the next call runs without asking);
# rules from the API (deny wins, delete); two requests pending at once;
# expiry (permission_timeout_s) into a denial "expired"; decisions over the
# Phoenix WebSocket with the real phoenix client (approve on the
# conversation's topic, deny on the team topic); and a node killed
# while a request is pending: the decision, when it comes, is applied.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_perm
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"
# shellcheck source=tests/lib/phoenix.sh
source "$SRC/tests/lib/phoenix.sh"
tp_install

export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-21000-21499}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18800-18899}
# A killed node is restarted after 6 s, once the registry has seen it dead.
export BICKY_RESTART_BACKOFF_MS=6000
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_perm_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start agents_perm
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

# ask CONV TOOL ARGS [NEW]: posts a message whose model call asks for TOOL;
# waits for the request and prints its id.
ask() {
    local conv=$1 tool=$2 args=$3 before
    before=$(ta_count "$conv" permission.requested)
    ta_script "[$(ta_tool_call "$tool" "$args"),{\"kind\":\"text\",\"text\":\"finished\"}]"
    tc_post "$conv" "use $tool" >/dev/null
    ta_wait "$conv" permission.requested $((before + 1)) >/dev/null
    ta_perm_of_tool "$conv" "$tool"
}

# ---------------------------------------------------------------- deny, repeats, 404s

conv=$(tc_conv '{"strategy":"gpt"}')
perm=$(ask "$conv" bash '{"command":"touch /tmp/should-not-exist"}')
t_check "a request was made ($perm)" test -n "$perm"
tc_req GET "/api/permissions?status=pending&conversation_id=$conv"
t_check "GET /api/permissions?status=pending lists it" \
    test "$TC_CODE $(tc_jq '[.data[].id] | join(",")')" = "200 $perm"
tc_req POST "/api/permissions/$perm/deny" '{"reason":"no shell today"}'
t_check "deny is 200 with status denied and the reason" \
    test "$TC_CODE $(tc_jq '"\(.status) \(.reason)"')" = "200 denied no shell today"
first=$TC_BODY
t_check "deny: turn completes" ta_wait "$conv" turn.completed
t_check "deny: no tool ran" test "$(ta_count "$conv" tool.started)" = 0
t_check "deny: the refusal was the model's tool result" \
    eval "ta_requests | jq -r '.[1].body | tostring' | grep -q 'no shell today'"
tc_req POST "/api/permissions/$perm/deny" '{"reason":"no shell today"}'
t_check "the same deny again: 200 and the first answer" test "$TC_CODE" = 200 -a "$TC_BODY" = "$first"
tc_req POST "/api/permissions/$perm/approve" '{}'
t_check "approve after deny: 409 conflict" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
tc_req POST "/api/permissions/$perm/deny" '{"reason":"other"}'
t_check "deny with another reason: 409" test "$TC_CODE" = 409
tc_req POST "/api/permissions/6f1c1a4e-0000-4000-8000-000000000000/approve" '{}'
t_check "unknown request: 404" test "$TC_CODE $(tc_jq .code)" = "404 not_found"
tc_req GET "/api/permissions/not-a-uuid"
t_check "a bad id: 400" test "$TC_CODE" = 400
tc_req POST "/api/permissions/$perm/approve" '{"remember":"forever"}'
t_check "approve with a bad remember: 400 naming it" test "$TC_CODE $(tc_jq .field)" = "400 remember"
tc_req POST "/api/permissions/$perm/approve" '{"surprise":1}'
t_check "an unknown field: 400" test "$TC_CODE $(tc_jq .field)" = "400 surprise"
tc_req POST "/api/permissions/$perm/deny" '{"reason":""}'
t_check "a blank reason: 400" test "$TC_CODE" = 400
other=$(tc_team_token other-team)
TC_TOKEN=$other
tc_req GET "/api/permissions/$perm"
t_check "another team: GET is 404" test "$TC_CODE" = 404
tc_req POST "/api/permissions/$perm/deny" '{}'
t_check "another team: deny is 404" test "$TC_CODE" = 404
tc_req GET /api/permissions
t_check "another team: the list is empty" test "$(tc_jq '.data | length')" = 0
TC_TOKEN=$BICKY_TOKEN

# ---------------------------------------------------------------- approve with updated input

conv=$(tc_conv '{"strategy":"claude"}')
perm=$(ask "$conv" write_file '{"path":"a.txt","content":"from the model"}')
tc_req POST "/api/permissions/$perm/approve" '{"updated_input":{"path":"b.txt","content":"edited"}}'
t_check "approve with updated_input: 200" test "$TC_CODE $(tc_jq .updated_input.path)" = "200 b.txt"
t_check "updated_input: turn completes" ta_wait "$conv" turn.completed
t_check "the tool ran with the updated input" \
    test "$(cat "$BICKY_WORK_DIR/conversations/$conv/b.txt" 2>/dev/null)" = edited
t_check "and not with the model's" test ! -e "$BICKY_WORK_DIR/conversations/$conv/a.txt"

# ---------------------------------------------------------------- over the Phoenix socket

# phx TOPIC PERMISSION approve|deny: the decision over a Phoenix socket; prints
# the client's outcome line ({"step":"decided"|"decide_error"|…, "reply"}).
phx() {
    node "$TP_CLIENT" decide "$BICKY_HTTP_PORT" "$TC_TOKEN" "$@" 2>&1 |
        jq -c 'select(.step == "decided" or .step == "decide_error" or .step == "join_error")' |
        tail -1
}
conv=$(tc_conv '{"strategy":"gpt"}')
perm=$(ask "$conv" bash '{"command":"echo approved over phoenix"}')
got=$(phx "$conv" "$perm" approve)
t_check "permission:approve on the conversation topic: ok, approved ($got)" \
    test "$(jq -r '.step + " " + .reply.status' <<<"$got")" = "decided approved"
t_check "... the tool ran and the turn completed" ta_wait "$conv" turn.completed
t_check "... its result reached the model" \
    eval "ta_requests | jq -r '.[-1].body | tostring' | grep -q 'approved over phoenix'"
perm=$(ask "$conv" bash '{"command":"touch /tmp/phx-denied"}')
got=$(phx team "$perm" deny)
t_check "permission:deny on the team topic: ok, denied ($got)" \
    test "$(jq -r '.step + " " + .reply.status + " " + .reply.reason' <<<"$got")" = "decided denied denied over phoenix"
t_check "... the turn completed without running it" \
    eval 'ta_wait "$conv" turn.completed 2 && [[ $(ta_count "$conv" tool.started) == 1 ]]'
other=$(tc_team_token phx-other-team)
perm=$(ask "$conv" bash '{"command":"true"}')
got=$(TC_TOKEN=$other phx team "$perm" approve)
t_check "another team's socket cannot decide it: not_found ($got)" \
    test "$(jq -r '.reply.code' <<<"$got")" = not_found
tc_req POST "/api/permissions/$perm/deny" '{}'
ta_wait "$conv" turn.completed 3 >/dev/null

# ---------------------------------------------------------------- remember

conv=$(tc_conv '{"strategy":"gpt"}')
perm=$(ask "$conv" read_file '{"path":"x"}')
tc_req POST "/api/permissions/$perm/approve" '{"remember":"conversation"}'
t_check "approve remember=conversation: 200" test "$TC_CODE" = 200
ta_wait "$conv" turn.completed
tc_req GET "/api/permission-rules?conversation_id=$conv"
t_check "a conversation rule read_file → allow exists" \
    test "$(tc_jq '[.data[] | "\(.scope) \(.tool_pattern) \(.decision)"] | join(",")')" \
    = "conversation read_file allow"
ta_script "[$(ta_tool_call read_file '{"path":"y"}'),{\"kind\":\"text\",\"text\":\"again\"}]"
tc_post "$conv" "read again" >/dev/null
t_check "remembered: the second call runs without asking" ta_wait "$conv" turn.completed 2
t_check "remembered: still one request, two tool runs" \
    test "$(ta_count "$conv" permission.requested) $(ta_count "$conv" tool.completed)" = "1 2"
conv2=$(tc_conv '{"strategy":"gpt"}')
perm=$(ask "$conv2" read_file '{"path":"z"}')
t_check "a conversation rule does not reach another conversation" test -n "$perm"
tc_req POST "/api/permissions/$perm/approve" '{"remember":"team"}'
ta_wait "$conv2" turn.completed
conv3=$(tc_conv '{"strategy":"claude"}')
ta_script "[$(ta_tool_call read_file '{"path":"w"}'),{\"kind\":\"text\",\"text\":\"team\"}]"
tc_post "$conv3" "team rule" >/dev/null
t_check "remember=team: a third conversation runs read_file without asking" \
    ta_wait "$conv3" turn.completed
t_check "remember=team: no request there" test "$(ta_count "$conv3" permission.requested)" = 0

# ---------------------------------------------------------------- rules from the API

tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"read_*","decision":"deny"}'
t_check "POST a team rule read_* → deny: 201" test "$TC_CODE $(tc_jq .decision)" = "201 deny"
rule=$(tc_jq .id)
tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"a b","decision":"deny"}'
t_check "a bad pattern: 400" test "$TC_CODE $(tc_jq .field)" = "400 tool_pattern"
tc_req POST /api/permission-rules "{\"scope\":\"conversation\",\"tool_pattern\":\"x\",\"decision\":\"deny\"}"
t_check "a conversation rule without conversation_id: 400" test "$TC_CODE" = 400
conv4=$(tc_conv '{"strategy":"gpt"}')
ta_script "[$(ta_tool_call read_file '{"path":"q"}'),{\"kind\":\"text\",\"text\":\"denied\"}]"
tc_post "$conv4" "rule deny" >/dev/null
t_check "team rules: read_file exact allow outranks read_* deny" ta_wait "$conv4" turn.completed
t_check "… so it ran" test "$(ta_count "$conv4" tool.completed)" = 1
ta_script "[$(ta_tool_call grep '{"pattern":"x"}'),{\"kind\":\"text\",\"text\":\"no grep\"}]"
tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"gr*","decision":"deny"}'
tc_post "$conv4" "grep it" >/dev/null
t_check "rule gr* → deny: the turn completes without asking" ta_wait "$conv4" turn.completed 2
t_check "… nothing ran, nothing asked" \
    test "$(ta_count "$conv4" tool.started) $(ta_count "$conv4" permission.requested)" = "1 0"
tc_req DELETE "/api/permission-rules/$rule"
t_check "DELETE the rule: 204" test "$TC_CODE" = 204
tc_req DELETE "/api/permission-rules/$rule"
t_check "DELETE again: 404" test "$TC_CODE" = 404

# ---------------------------------------------------------------- two pending at once

conv=$(tc_conv '{"strategy":"gpt"}')
ta_script '[{"kind":"two_tool_calls","calls":[{"name":"list_directory","arguments":{"path":"."}},{"name":"bash","arguments":{"command":"echo two"}}]},{"kind":"text","text":"both handled"}]'
tc_post "$conv" "two at once" >/dev/null
t_check "two requests pending" ta_wait "$conv" permission.requested 2
p1=$(ta_perm_of_tool "$conv" list_directory)
p2=$(ta_perm_of_tool "$conv" bash)
tc_req POST "/api/permissions/$p2/approve" '{}'
t_check "approve the second first: 200" test "$TC_CODE" = 200
t_check "its tool ran" ta_wait "$conv" tool.completed
t_check "still waiting for the first" tc_wait_status "$conv" waiting_for_permission 5
tc_req POST "/api/permissions/$p1/deny" '{}'
t_check "deny the first: 200" test "$TC_CODE" = 200
t_check "the turn completes" ta_wait "$conv" turn.completed
t_check "one model call after both" test "$(ta_requests | jq length)" = 2
t_check "the model got both results" \
    eval "ta_requests | jq -r '.[1].body | tostring' | grep -q 'two' && ta_requests | jq -r '.[1].body | tostring' | grep -q 'denied by the user'"

# ---------------------------------------------------------------- expiry

conv=$(tc_conv '{"strategy":"gpt-expiring"}')
perm=$(ask "$conv" list_directory '{}')
tc_req GET "/api/permissions/$perm"
t_check "the request carries expires_at" test "$(tc_jq '.expires_at != null')" = true
t_check "after 2 s it expires: permission.decided" ta_wait "$conv" permission.decided 1 10
tc_req GET "/api/permissions/$perm"
t_check "status expired, reason expired" test "$(tc_jq '"\(.status) \(.reason)"')" = "expired expired"
t_check "expired: the turn goes on and completes" ta_wait "$conv" turn.completed
tc_req POST "/api/permissions/$perm/approve" '{}'
t_check "approving an expired request: 409" test "$TC_CODE" = 409

# ---------------------------------------------------------------- a node dies while a request is pending

conv=$(tc_conv '{"strategy":"claude"}')
perm=$(ask "$conv" list_directory '{"path":"."}')
owner=$(tc_owner "$conv")
t_check "pending on $owner" tc_wait_status "$conv" waiting_for_permission 5
old=$(tc_pid "$owner")
kill -KILL "$old"
t_check "$owner is dead" bk_wait_for 10 tc_node_is "$owner" dead
t_check "$owner is alive again" bk_wait_for 20 tc_node_is "$owner" alive
bk_wait_for 10 bk_http_ok "$BICKY_URL/ready" >/dev/null
t_check "still waiting_for_permission after the restart" \
    test "$(tc_status "$conv")" = waiting_for_permission
ok=0
for _ in 1 2 3 4 5; do
    tc_req POST "/api/permissions/$perm/approve" '{}'
    [[ $TC_CODE == 200 ]] && ok=1 && break
    sleep 1
done
t_check "approve after the restart: 200 (got $TC_CODE)" test "$ok" = 1
t_check "the tool runs" ta_wait "$conv" tool.completed 1 20
t_check "the turn completes with the final answer" ta_wait "$conv" turn.completed 1 20
t_check "final answer stored" test "$(ta_assistant "$conv")" = finished
t_check "conversation idle" tc_wait_status "$conv" idle 5
grep -h "turn resumed" "$TC_VAR"/log/n*.log | tail -n 1

tc_finish agents_perm
