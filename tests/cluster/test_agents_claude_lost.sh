#!/usr/bin/env bash
# test_agents_claude_lost.sh — a claude-code turn that is running when its
# node is lost (SIGKILL, and its disk: the conversation's HOME with the CLI's
# transcript is deleted before the node comes back) on a real cluster
# (registry, 2 nodes, gateway, Postgres) with the real Claude Code CLI
# ($BICKY_CLAUDE; skipped without it) and tests/fixtures/fake_llm.py as the
# model. The turn's first step (a Bash call and its result) is done and its
# second model call is held open by the fake when the owner is killed: the
# transcript checkpointed in Postgres is resumed (--resume) by the next owner,
# the fake sees the earlier step resent with the follow-up that tells the
# model about the node loss, the turn completes with one assistant message,
# the tool is not run again, and seqs stay gapless. Without a checkpoint of
# the running turn (its claude_sessions row gone), the turn fails node_lost
# as for any strategy and the conversation stays usable.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7500-7599).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_claude_lost
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

if [[ -z ${BICKY_CLAUDE:-} || ! -x ${BICKY_CLAUDE:-} ]]; then
    echo "skipped: BICKY_CLAUDE is not set (tests/lib/install_claude.sh)"
    exit 0
fi
export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-22500-22999}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18700-18799}
export BICKY_FAKE_LLM_PORTS=${BICKY_FAKE_LLM_PORTS:-7500-7599}
# A killed node is restarted after 6 s, once the registry has seen it dead.
export BICKY_RESTART_BACKOFF_MS=6000
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_claude_lost.XXXXXX")
ta_setup "$TA_TMP"
tc_start agents_claude_lost
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

STEP='{"kind":"tool_call","name":"Bash","text":"Step one.","arguments":{"command":"echo step-one-output","description":"step one"}}'
HOLD='{"kind":"stalled","stall_s":120}'
DONE='{"kind":"text","text":"Finished after the node loss."}'

# held: the fake holds the turn's second model call open (the first step is done).
held() {
    ta_requests | jq -e 'length == 2 and .[1].outcome == "open"' >/dev/null
}

# checkpointed CONV: claude_sessions holds a transcript of the running turn with the
# first step's tool result in it.
checkpointed() {
    local uid
    uid=$(tc_sql "select id from messages where conversation_id = '$1' and role = 'user'
                  order by seq desc limit 1")
    [[ $(tc_sql "select count(*) from claude_sessions where conversation_id = '$1'
                 and turn_message_id = '$uid'
                 and position('step-one-output' in convert_from(bundle, 'UTF8')) > 0") == 1 ]]
}

# lose_owner CONV: SIGKILL to the conversation's node, its copy of the conversation's
# CLI HOME (the transcript) deleted while it is dead; waits until it is back.
lose_owner() {
    local owner
    owner=$(tc_owner "$1")
    kill -KILL "$(tc_pid "$owner")"
    bk_wait_for 10 tc_node_is "$owner" dead || return 1
    rm -rf "${BICKY_WORK_DIR:?}/claude/$1"
    bk_wait_for 20 tc_node_is "$owner" alive && bk_wait_for 10 bk_http_ok "$BICKY_URL/ready" >/dev/null
}

# activate CONV: a read activates the conversation on its owner (retried while it
# comes back).
activate() {
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        tc_req GET "/api/conversations/$1"
        [[ $TC_CODE == 200 ]] && return 0
        sleep 1
    done
    return 1
}

# ---------------------------------------------------------------- resumed from the checkpoint

conv=$(tc_conv '{"strategy":"cc"}')
ta_script "[$STEP,$HOLD,$DONE]"
t_check "post is 202" eval "tc_post $conv 'run the two steps' >/dev/null"
t_check "the first step ran (tool.completed)" ta_wait "$conv" tool.completed 1 40
t_check "the second model call is held by the fake" bk_wait_for 30 held
t_check "the running turn's transcript is checkpointed in Postgres" \
    bk_wait_for 20 checkpointed "$conv"
t_check "still processing" test "$(tc_status "$conv")" = processing
t_check "the owner is killed, its disk copy gone, and it is back" lose_owner "$conv"
t_check "the conversation is activated again" activate "$conv"
t_check "turn.completed" ta_wait "$conv" turn.completed 1 60
t_check "no turn.failed" test "$(ta_count "$conv" turn.failed)" = 0
t_check "the resumed call is the third model request" \
    eval "ta_requests | jq -e 'length == 3' >/dev/null"
t_check "the resumed request resends the first step (tool_use and its result)" \
    eval "ta_requests | jq -e '[.[2].body.messages[].content | arrays | .[]] |
          (map(select(.type == \"tool_use\") | .input.command) | index(\"echo step-one-output\")) and
          (map(select(.type == \"tool_result\") | tostring) | any(contains(\"step-one-output\")))' >/dev/null"
t_check "the resumed request tells the model about the node loss" \
    eval "ta_requests | jq -e '.[2].body.messages[-1] | tostring |
          contains(\"interrupted because the node running it was lost\")' >/dev/null"
t_check "the resumed request keeps the user's task" \
    eval "ta_requests | jq -e '.[2].body.messages | tostring | contains(\"run the two steps\")' >/dev/null"
t_check "one assistant message" test "$(tc_sql "select count(*) from messages
    where conversation_id = '$conv' and role = 'assistant'")" = 1
t_check "the answer is the resumed session's" \
    eval "[[ '$(ta_assistant "$conv")' == *'Finished after the node loss.'* ]]"
t_check "the tool was not run again" test "$(ta_count "$conv" tool.started)" = 1
t_check "idle" tc_wait_status "$conv" idle 10
t_check "the turn's end stored the final transcript (no checkpoint marker)" \
    test "$(tc_sql "select count(*) from claude_sessions where conversation_id = '$conv'
                    and turn_message_id is null")" = 1
t_check "the conversation goes on: a next turn" \
    eval "ta_script '[{\"kind\":\"text\",\"text\":\"Second turn.\"}]' &&
          tc_post $conv 'and now?' >/dev/null && ta_wait $conv turn.completed 2 60"

# ---------------------------------------------------------------- no checkpoint: today's failure

conv=$(tc_conv '{"strategy":"cc"}')
ta_script "[$STEP,$HOLD]"
t_check "no checkpoint: post is 202" eval "tc_post $conv 'run the two steps' >/dev/null"
t_check "no checkpoint: the second model call is held" bk_wait_for 40 held
t_check "no checkpoint: checkpointed" bk_wait_for 20 checkpointed "$conv"
owner=$(tc_owner "$conv")
kill -KILL "$(tc_pid "$owner")"
t_check "no checkpoint: the owner is dead" bk_wait_for 10 tc_node_is "$owner" dead
# As if the node had been lost before the running turn's first step was stored.
tc_sql "delete from claude_sessions where conversation_id = '$conv'" >/dev/null
t_check "no checkpoint: the owner is back" \
    eval "bk_wait_for 20 tc_node_is $owner alive && bk_wait_for 10 bk_http_ok $BICKY_URL/ready >/dev/null"
t_check "no checkpoint: activated again" activate "$conv"
t_check "no checkpoint: turn.failed" ta_wait "$conv" turn.failed 1 30
t_check "no checkpoint: reason node_lost" \
    test "$(ta_last_action "$conv" turn.failed '.reason')" = node_lost
t_check "no checkpoint: no model call was made after the loss" \
    eval "ta_requests | jq -e 'length == 2' >/dev/null"
t_check "no checkpoint: the conversation is usable (error)" tc_wait_status "$conv" error 10

t_check "the API key never appears in a log" eval "! grep -rq '$TA_SECRET' '$TC_VAR/log'"
tc_finish agents_claude_lost
