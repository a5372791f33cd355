#!/usr/bin/env bash
# test_agents_llm.sh — the openai and anthropic strategies end to end on a
# real cluster (registry, 2 nodes, gateway, Postgres) driven over HTTP, with
# tests/fixtures/fake_llm.py as the provider: GET /api/strategies without
# secrets; a full turn streamed as message.delta on SSE (deltas concatenate
# to the stored reply, usage on the message); a tool call approved through
# /api/permissions and continued to the final answer; provider failures
# (429, 500, malformed stream, stalled stream) as turn.failed with a reason,
# the conversation still usable; cancel during a tool call; escape attempts
# through the tools; the API key only in the provider's auth header.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_llm
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-21000-21499}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18800-18899}
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_llm_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start agents_llm
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

# ---------------------------------------------------------------- strategies

tc_req GET /api/strategies
t_check "GET /api/strategies is 200" test "$TC_CODE" = 200
t_check "it lists echo, gpt, claude, gpt-expiring in file order" \
    test "$(tc_jq '[.data[0:4][].name] | join(",")')" = "echo,gpt,claude,gpt-expiring"
t_check "kinds and models, echo is the default" \
    test "$(tc_jq '[.data[0:4][] | "\(.kind):\(.model):\(.default)"] | join(" ")')" \
    = "echo:null:true openai:fake-gpt:false anthropic:fake-claude:false openai:fake-gpt:false"
t_check "every strategy has max_turns: null for echo, the file's (default 16) otherwise" \
    test "$(tc_jq '[.data[0:4][] | if has("max_turns") then .max_turns else "absent" end] | map(tostring) | join(" ")')" \
    = "null 16 16 16"
t_check "no base_url, no key, no key variable in the answer" \
    eval "! grep -q -e base_url -e api_key -e '$TA_SECRET' <<<'$TC_BODY'"
tc_req POST /api/conversations '{"strategy":"nope"}'
t_check "a conversation with an unknown strategy is 400 (got $TC_CODE)" test "$TC_CODE" = 400

# ---------------------------------------------------------------- a full turn

# full_turn STRATEGY MODEL: one streamed turn, checked on SSE and in Postgres.
full_turn() {
    local strat=$1 model=$2 conv sse joined stored
    ta_script '[{"kind":"text","text":"Hello from the fake model, streamed in pieces","usage":{"input_tokens":12,"output_tokens":9}}]'
    conv=$(tc_conv "{\"strategy\":\"$strat\"}")
    sse=$TC_VAR/$strat.sse
    rm -f "$TC_VAR/ready"
    tc_sse "/api/conversations/$conv/events" --until turn.completed --timeout 20 \
        --ready-file "$TC_VAR/ready" >"$sse" &
    local probe=$!
    bk_wait_for 5 test -e "$TC_VAR/ready"
    tc_post "$conv" "hello $strat" >/dev/null
    t_check "$strat: POST message is 202" test "$TC_CODE" = 202
    wait "$probe"
    t_check "$strat: several message.delta events on SSE" \
        test "$(jq -r 'select(.event == "message.delta") | .event' "$sse" | wc -l)" -ge 3
    joined=$(jq -j 'select(.event == "message.delta") | .data.text' "$sse")
    stored=$(jq -r 'select(.event == "message.completed") | .data.action.message.content' "$sse")
    t_check "$strat: deltas concatenate to the stored reply ('$joined')" \
        test "$joined" = "Hello from the fake model, streamed in pieces" -a "$stored" = "$joined"
    t_check "$strat: the assistant message carries model and usage" \
        test "$(jq -r 'select(.event == "message.completed") | .data.action.message.metadata | "\(.model) \(.usage.input_tokens) \(.usage.output_tokens)"' "$sse")" \
        = "$model 12 9"
    t_check "$strat: turn.completed with the turn's usage" \
        test "$(jq -r 'select(.event == "turn.completed") | .data.action.usage.output_tokens' "$sse")" = 9
    t_check "$strat: conversation idle" tc_wait_status "$conv" idle 5
    t_check "$strat: the model got the system prompt and the user message" \
        eval "ta_requests | jq -e '.[0].body | tostring | (contains(\"hello $strat\"))' >/dev/null"
    LAST_CONV=$conv
}

full_turn gpt fake-gpt
t_check "openai: the key went in the Authorization header" \
    test "$(ta_requests | jq -r '.[0].headers.authorization')" = "Bearer $TA_SECRET"
full_turn claude fake-claude

# A second turn of the same conversation carries the first one.
ta_script '[{"kind":"text","text":"second answer"}]'
tc_post "$LAST_CONV" "and a follow-up" >/dev/null
t_check "second turn completes" ta_wait "$LAST_CONV" turn.completed 2
t_check "the second model call got the whole history" \
    eval "ta_requests | jq -e '.[0].body.messages | tostring | (contains(\"hello claude\") and contains(\"streamed in pieces\") and contains(\"and a follow-up\"))' >/dev/null"

# ---------------------------------------------------------------- a tool call, approved

for strat in gpt claude; do
    ta_script "[$(ta_tool_call list_directory '{"path":"."}' 'Let me look'),{\"kind\":\"text\",\"text\":\"I looked around\"}]"
    conv=$(tc_conv "{\"strategy\":\"$strat\"}")
    tc_post "$conv" "list the files" >/dev/null
    t_check "$strat: permission.requested stored" ta_wait "$conv" permission.requested
    t_check "$strat: conversation waiting_for_permission" \
        tc_wait_status "$conv" waiting_for_permission 5
    perm=$(ta_perm "$conv")
    tc_req GET "/api/permissions/$perm"
    t_check "$strat: GET /api/permissions/:id is the pending request" \
        test "$TC_CODE $(tc_jq '"\(.status) \(.tool_name) \(.conversation_id)"')" \
        = "200 pending list_directory $conv"
    tc_req POST "/api/permissions/$perm/approve" '{}'
    t_check "$strat: approve is 200 with the approved request" \
        test "$TC_CODE $(tc_jq .status)" = "200 approved"
    t_check "$strat: tool.completed" ta_wait "$conv" tool.completed
    t_check "$strat: turn.completed" ta_wait "$conv" turn.completed
    t_check "$strat: the final answer is stored" test "$(ta_assistant "$conv")" = "I looked around"
    t_check "$strat: event order" \
        test "$(tc_events "$conv" | awk '{print $2}' | grep -v -e conversation -e '^message.created' | tr '\n' ' ')" \
        = "turn.started message.completed permission.requested permission.decided tool.started tool.completed message.completed turn.completed "
    t_check "$strat: the second model call carried the tool result" \
        eval "ta_requests | jq -e '.[1].body | tostring | contains(\"entries\")' >/dev/null"
    tc_req GET "/api/conversations/$conv/messages"
    t_check "$strat: messages user, assistant(tool call), tool, assistant" \
        test "$(tc_jq '[.data[].role] | join(",")')" = "user,assistant,tool,assistant"
done

# ---------------------------------------------------------------- provider failures

fails() {
    local what=$1 item=$2 want=$3 conv reason
    ta_script "[$item]"
    conv=$(tc_conv '{"strategy":"gpt"}')
    tc_post "$conv" "fail: $what" >/dev/null
    t_check "$what: turn.failed" ta_wait "$conv" turn.failed 1 20
    reason=$(ta_last_action "$conv" turn.failed .error)
    t_check "$what: the reason says so ('$reason')" eval "grep -qi -- '$want' <<<'$reason'"
    t_check "$what: conversation status error" tc_wait_status "$conv" error 5
    t_check "$what: the assistant message is failed" \
        test "$(tc_sql "select status from messages where conversation_id = '$conv' and role = 'assistant'")" = error
    ta_script '[{"kind":"text","text":"recovered"}]'
    tc_post "$conv" "again" >/dev/null
    t_check "$what: the next turn works" ta_wait "$conv" turn.completed 1 20
}
fails 429 '{"kind":"http_error","status":429,"message":"Rate limit reached"}' "429"
fails 500 '{"kind":"http_error","status":500,"message":"boom"}' "500"
fails malformed '{"kind":"malformed"}' "json\|malformed\|protocol"
fails stalled '{"kind":"stalled","stall_s":10}' "stall\|timeout\|timed out"
fails truncated '{"kind":"truncated"}' "ended\|end\|protocol"

# ---------------------------------------------------------------- cancel during a tool call

ta_script "[$(ta_tool_call bash '{"command":"sleep 3; echo late"}'),{\"kind\":\"text\",\"text\":\"never\"}]"
conv=$(tc_conv '{"strategy":"gpt"}')
tc_post "$conv" "run something slow" >/dev/null
ta_wait "$conv" permission.requested
tc_req POST "/api/permissions/$(ta_perm "$conv")/approve" '{}'
t_check "cancel: tool.started" ta_wait "$conv" tool.started
tc_req POST "/api/conversations/$conv/cancel"
t_check "cancel: 202 during the tool call (got $TC_CODE)" test "$TC_CODE" = 202
t_check "cancel: turn.cancelled" ta_wait "$conv" turn.cancelled
sleep 3.5
t_check "cancel: the late tool result is dropped (no tool.completed)" \
    test "$(ta_count "$conv" tool.completed)" = 0
t_check "cancel: conversation idle" tc_wait_status "$conv" idle 5
t_check "cancel: only one model call was made" test "$(ta_requests | jq length)" = 1

# ---------------------------------------------------------------- escape attempts

# escape TOOL ARGS: approved, it must come back as an error result.
escape() {
    local tool=$1 args=$2 conv
    ta_script "[$(ta_tool_call "$tool" "$args"),{\"kind\":\"text\",\"text\":\"ok\"}]"
    conv=$(tc_conv '{"strategy":"gpt"}')
    tc_post "$conv" "try $tool" >/dev/null
    ta_wait "$conv" permission.requested
    tc_req POST "/api/permissions/$(ta_perm "$conv")/approve" '{}'
    t_check "escape $tool $args: turn completes" ta_wait "$conv" turn.completed
    t_check "escape $tool $args: refused (is_error)" \
        test "$(ta_last_action "$conv" tool.completed .is_error)" = true
    t_check "escape $tool $args: nothing from outside reached the model" \
        eval "! ta_requests | jq -r '.[1].body | tostring' | grep -q 'root:x:0'"
}
mkdir -p "$TA_TMP/outside"
echo secret >"$TA_TMP/outside/secret.txt"
escape read_file '{"path":"../../../../../../etc/passwd"}'
escape read_file '{"path":"/etc/passwd"}'
escape list_directory '{"path":".."}'
escape write_file "{\"path\":\"../outside/pwned.txt\",\"content\":\"x\"}"
# A NUL in the arguments: the call does not parse, the turn fails, nothing runs.
ta_script "[$(ta_tool_call read_file '{"path":"a\u0000b"}')]"
conv=$(tc_conv '{"strategy":"gpt"}')
tc_post "$conv" "nul" >/dev/null
t_check "NUL in arguments: turn.failed" ta_wait "$conv" turn.failed
t_check "NUL in arguments: no request, no tool run" \
    test "$(ta_count "$conv" permission.requested)$(ta_count "$conv" tool.started)" = 00
t_check "no file was written outside" test ! -e "$BICKY_WORK_DIR/conversations/outside/pwned.txt"
# A symlink made by an (approved) bash call does not let read_file out.
ta_script "[$(ta_tool_call bash "{\"command\":\"ln -s $TA_TMP/outside link\"}"),$(ta_tool_call read_file '{"path":"link/secret.txt"}'),{\"kind\":\"text\",\"text\":\"ok\"}]"
conv=$(tc_conv '{"strategy":"gpt"}')
tc_post "$conv" "symlink" >/dev/null
ta_wait "$conv" permission.requested
tc_req POST "/api/permissions/$(ta_perm "$conv")/approve" '{}'
ta_wait "$conv" permission.requested 2
tc_req POST "/api/permissions/$(ta_perm "$conv" 2)/approve" '{}'
t_check "symlink: turn completes" ta_wait "$conv" turn.completed
t_check "symlink: read_file through the link is refused" \
    test "$(ta_last_action "$conv" tool.completed '.tool_name + " " + (.is_error | tostring)')" = "read_file true"

# ---------------------------------------------------------------- claude-code (with the CLI)

if grep -q 'strategy.cc' "$BICKY_CONFIG"; then
    ta_script '[{"kind":"tool_call","name":"Bash","id":"toolu_c1","text":"Writing.","arguments":{"command":"echo hi > cc.txt","description":"write"}},{"kind":"text","text":"Written by claude."}]'
    conv=$(tc_conv '{"strategy":"cc"}')
    tc_post "$conv" "write cc.txt" >/dev/null
    t_check "claude-code: permission.requested" ta_wait "$conv" permission.requested 1 30
    tc_req POST "/api/permissions/$(ta_perm "$conv")/approve" '{}'
    t_check "claude-code: approve is 200" test "$TC_CODE" = 200
    t_check "claude-code: turn.completed" ta_wait "$conv" turn.completed 1 40
    t_check "claude-code: the command ran in the conversation's dir" \
        test "$(cat "$BICKY_WORK_DIR/conversations/$conv/cc.txt" 2>/dev/null)" = hi
    t_check "claude-code: the answer is stored" \
        eval "[[ '$(ta_assistant "$conv")' == *'Written by claude.'* ]]"
    t_check "claude-code: the texts of its two model calls are set apart by a blank line" \
        test "$(tc_sql "select count(*) from messages where conversation_id = '$conv' and role = 'assistant' and content = E'Writing.\\n\\nWritten by claude.'")" = 1
    t_check "claude-code: the session id is in the metadata, the session in Postgres" \
        test "$(tc_sql "select count(*) from claude_sessions s join conversations c on c.id = s.conversation_id where c.id = '$conv' and c.metadata->'claude_code'->>'session_id' = s.session_id")" = 1
else
    echo "claude-code part skipped: BICKY_CLAUDE is not set"
fi

t_check "the API key never appears in a log" eval "! grep -rq '$TA_SECRET' '$TC_VAR/log'"
tc_finish agents_llm
