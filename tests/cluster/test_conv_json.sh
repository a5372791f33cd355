#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_json.sh — every JSON body the cluster sends has one spacing, the
# compact one (no space after ':' or ','): each body and each SSE data line is
# parsed and dumped again with python3's json.dumps(separators=(',', ':'),
# ensure_ascii=False), and must come back byte for byte. Covered: an echo turn
# folded into the post's commit and a streamed one (message.completed read
# back by Postgres), conversation create/get/list/patch, messages, events,
# the team log, status, POST /api/message, idempotent replays, an LLM turn
# with a tool call (permission.requested/decided built in SQL, tool events,
# the permission list, get and decision, a repeated decision), rules,
# worktrees (worktree.created on the team stream), strategies and errors.
# Metadata carries nested objects and arrays (jsonb prints them spaced).
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_json
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
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/conv_json_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start conv_json
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

BODIES=$TC_VAR/bodies.jsonl # one JSON text per line: "<what>\t<text>"

# compact_check FILE: every "<what>\t<json>" line of FILE parses and is its own
# compact dump; prints the offenders (with what they are), 0 when none.
compact_check() {
    python3 - "$1" <<'EOF'
import json, sys
bad = 0
for line in open(sys.argv[1], encoding="utf-8"):
    what, _, text = line.rstrip("\n").partition("\t")
    try:
        again = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError as e:
        print("%s: not JSON (%s): %.300s" % (what, e, text))
        bad += 1
        continue
    if again != text:
        print("%s: not compact: %.300s" % (what, text))
        bad += 1
sys.exit(1 if bad else 0)
EOF
}

# keep WHAT: records the last response body (when it has one) under WHAT.
keep() {
    [[ -n $TC_BODY ]] && printf '%s\t%s\n' "$1" "$TC_BODY" >>"$BODIES"
}

# req WHAT METHOD PATH [BODY [curl args]]: tc_req, then keep the body.
req() {
    local what=$1
    shift
    tc_req "$@"
    keep "$what ($TC_CODE)"
}

# keep_sse FILE: records the raw data of every event of an sse_probe --raw output.
keep_sse() {
    jq -r 'select(.event) | "sse \(.event)\t\(.raw)"' "$1" >>"$BODIES"
}

# open_sse NAME PATH UNTIL: an SSE reader in the background (raw data) that replays
# from the first stored event (after=0), so it misses nothing however late it opens;
# sets SSE_PID.
open_sse() {
    rm -f "$TC_VAR/ready.$1"
    tc_sse "$2?after=0" --raw --until "$3" --timeout 60 --ready-file "$TC_VAR/ready.$1" \
        >"$TC_VAR/$1.sse" &
    SSE_PID=$!
    bk_wait_for 20 test -e "$TC_VAR/ready.$1" || t_fail "$1: SSE stream open"
}

printf 'self-test\t{"a" : 1, "b": [1, 2]}\n' >"$TC_VAR/selftest.jsonl"
t_check "the checker refuses Postgres' spacing" eval "! compact_check '$TC_VAR/selftest.jsonl' >/dev/null"

META='{"tags":["a","b"],"nested":{"k":[1,{"x":true,"y":null}],"s":"a : b, c"},"n":-3}'

# ---------------------------------------------------------------- an echo turn (folded)

req "create" POST /api/conversations "{\"title\":\"json, shape: yes\",\"metadata\":$META}"
conv=$(tc_jq .id)
t_check "POST /api/conversations is 201" test "$TC_CODE" = 201
open_sse echo "/api/conversations/$conv/events" turn.completed
req "post" POST "/api/conversations/$conv/messages" "{\"content\":\"hello json world\",\"metadata\":$META}"
t_check "POST message is 202" test "$TC_CODE" = 202
wait "$SSE_PID"
keep_sse "$TC_VAR/echo.sse"
t_check "the echo stream: created, message, turn, deltas, completed ($(jq -r 'select(.event) | .event' "$TC_VAR/echo.sse" | sort -u | tr '\n' ' '))" \
    test "$(jq -r 'select(.event) | .event' "$TC_VAR/echo.sse" | sort -u | tr '\n' ' ')" \
    = "conversation.created message.completed message.created message.delta turn.completed turn.started "

# ---------------------------------------------------------------- a streamed echo turn

req "create streamed" POST /api/conversations "{\"metadata\":{\"echo\":{\"delay_ms\":5},\"m\":[{\"a\":[]}]}}"
slow=$(tc_jq .id)
open_sse slow "/api/conversations/$slow/events" turn.completed
req "post streamed" POST "/api/conversations/$slow/messages" '{"content":"one two three"}'
wait "$SSE_PID"
keep_sse "$TC_VAR/slow.sse"
t_check "the streamed turn's message.completed arrived" \
    test "$(jq -r 'select(.event == "message.completed") | .data.action.message.content' "$TC_VAR/slow.sse")" \
    = "echo: one two three"

# ---------------------------------------------------------------- conversation reads and writes

req "get" GET "/api/conversations/$conv"
req "list" GET "/api/conversations?limit=5"
req "list page 2" GET "/api/conversations?limit=1&cursor=$(tc_jq .next_cursor)"
req "patch" PATCH "/api/conversations/$conv" '{"title":"patched","metadata":{"more":{"z":[0]}}}'
req "patch nothing" PATCH "/api/conversations/$conv" '{}'
req "messages" GET "/api/conversations/$conv/messages"
req "events" GET "/api/conversations/$conv/events"
req "team log" GET "/api/events?limit=500"
req "status" GET /api/status
t_check "status: counts by status ($(tc_jq '.conversations_by_status | tostring'))" \
    test "$(tc_jq '.conversations_by_status.idle > 0')" = true
req "message shortcut" POST /api/message "{\"content\":\"shortcut\",\"metadata\":$META}"
t_check "POST /api/message is 202" test "$TC_CODE" = 202

# Idempotent writes: the first answer and the replay (the stored text) alike.
for i in 1 2; do
    req "keyed create $i" POST /api/conversations "{\"title\":\"keyed\",\"metadata\":$META}" \
        -H 'Idempotency-Key: json-create'
    keyed[i]=$TC_BODY
    req "keyed post $i" POST "/api/conversations/$conv/messages" '{"content":"keyed"}' \
        -H 'Idempotency-Key: json-post'
    posted[i]=$TC_BODY
done
t_check "a replayed create is the first answer, byte for byte" test "${keyed[1]}" = "${keyed[2]}"
t_check "a replayed post is the first answer, byte for byte" test "${posted[1]}" = "${posted[2]}"
req "keyed patch" PATCH "/api/conversations/$conv" '{"title":"keyed patch"}' \
    -H 'Idempotency-Key: json-patch'

# ---------------------------------------------------------------- an LLM turn with a tool call

ta_script "[$(ta_tool_call list_directory '{"path":"."}' 'Let me look.'),{\"kind\":\"text\",\"text\":\"Done: one file.\"}]"
req "create llm" POST /api/conversations "{\"strategy\":\"gpt\",\"metadata\":$META}"
llm=$(tc_jq .id)
open_sse llm "/api/conversations/$llm/events" turn.completed
req "post llm" POST "/api/conversations/$llm/messages" '{"content":"list the files"}'
t_check "permission.requested" ta_wait "$llm" permission.requested
perm=$(ta_perm "$llm")
req "permissions" GET "/api/permissions?status=pending"
req "permission" GET "/api/permissions/$perm"
req "approve" POST "/api/permissions/$perm/approve" '{}'
t_check "approve is 200" test "$TC_CODE" = 200
wait "$SSE_PID"
keep_sse "$TC_VAR/llm.sse"
req "approve again" POST "/api/permissions/$perm/approve" '{}'
t_check "the same decision again is 200" test "$TC_CODE" = 200
t_check "the LLM stream has the permission and tool events" \
    test "$(jq -r 'select(.event) | .event' "$TC_VAR/llm.sse" | grep -cE '^(permission\.requested|permission\.decided|tool\.started|tool\.completed)$')" = 4
req "rule" POST /api/permission-rules '{"scope":"team","tool_pattern":"read_*","decision":"allow"}'
req "rules" GET /api/permission-rules

# ---------------------------------------------------------------- worktrees, team stream

open_sse team /api/stream worktree.created
req "worktree" POST /api/worktrees '{"branch":"json/shape"}'
t_check "POST /api/worktrees is 201" test "$TC_CODE" = 201
wt=$(tc_jq .id)
wait "$SSE_PID"
keep_sse "$TC_VAR/team.sse"
req "worktree get" GET "/api/worktrees/$wt"
req "worktrees" GET /api/worktrees

# ---------------------------------------------------------------- the rest

req "strategies" GET /api/strategies
req "not found" GET "/api/conversations/6f1c1a4e-0000-4000-8000-000000000000"
req "bad field" POST /api/conversations '{"on_busy":"later"}'
req "bad filter" GET "/api/permissions?status=bogus"
req "node refusal" POST /api/conversations '{"strategy":"nope"}'
req "health" GET /health

n=$(wc -l <"$BODIES")
t_check "$n bodies and SSE events collected" test "$n" -gt 60
t_check "every REST body and every SSE event is compact JSON" compact_check "$BODIES"

tc_finish conv_json
