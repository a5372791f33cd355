#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_legacy.sh — the TypeScript server's routes on a real cluster (docs/api.md,
# "Legacy routes"): every route's answer shape, its errors, the Deprecation
# and Link headers on every answer (errors and 401 included), the legacy
# token for clients without headers, permission decisions on real pending
# requests (fake LLM asking for a tool), worktrees on a scratch repository,
# and GET /stream: the legacy vocabulary, and a client cut off mid-turn that
# resumes by Last-Event-ID with every remaining event once, in order.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=legacy
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/legacy_fake.XXXXXX")
ta_setup "$TA_TMP"
# The legacy token file: a placeholder now, the dev token once the cluster made it.
echo "bk_placeholder_legacy" >"$TA_TMP/legacy-token"
export BICKY_LEGACY_TOKEN_FILE=$TA_TMP/legacy-token
export BICKY_ECHO_DELAY_MS=40 BICKY_RESTART_BACKOFF_MS=200
tc_start legacy
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
NOPE=00000000-0000-4000-8000-000000000000

# deprecated SUCCESSOR: the last answer carries Deprecation: true and that Link.
deprecated() {
    [[ $(tc_header Deprecation) == true &&
        $(tc_header Link) == "<$1>; rel=\"successor-version\"" ]]
}

# answer CODE JSON: the last answer is CODE with exactly that body (jq -S compared).
answer() {
    [[ $TC_CODE == "$1" && $(jq -cS . <<<"$TC_BODY") == $(jq -cS . <<<"$2") ]]
}

# ---------------------------------------------------------------- POST /message

tc_req POST /message '{"content":"hello from an old client","metadata":{"client":"desktop"}}'
t_check "POST /message (new) → 200 {id, type: query, messageId}" \
    eval '[[ $TC_CODE == 200 && $(tc_jq .type) == query && $(tc_jq .id) =~ $UUID_RE &&
            $(tc_jq .messageId) =~ $UUID_RE && $(tc_jq "keys|join(\",\")") == id,messageId,type ]]'
t_check "POST /message: deprecated, successor /api/message" deprecated /api/message
conv=$(tc_jq .id)
msg1=$(tc_jq .messageId)
t_check "the conversation is type query, source legacy, in Postgres" \
    test "$(tc_sql "select type || ' ' || source from conversations where id = '$conv'")" \
    = "query legacy"
tc_wait_status "$conv" idle 15
tc_req POST /message "{\"content\":\"second\",\"interactionId\":\"${conv^^}\"}"
t_check "POST /message with interactionId (upper case) → 200 type message, same id" \
    eval '[[ $TC_CODE == 200 && $(tc_jq .type) == message && $(tc_jq .id) == "$conv" ]]'
tc_wait_status "$conv" idle 15
before=$(tc_counts)
tc_req POST /message '{"content":"   "}'
t_check "blank content → 400 Content is required" answer 400 '{"error":"Content is required"}'
t_check "… deprecated" deprecated /api/message
tc_req POST /message '{"interactionId":"'"$conv"'"}'
t_check "no content → 400 Content is required" answer 400 '{"error":"Content is required"}'
tc_req POST /message '{"content":5}'
t_check "content not a string → 400 Content is required" answer 400 '{"error":"Content is required"}'
tc_req POST /message "{\"content\":\"x\",\"interactionId\":\"$NOPE\"}"
t_check "unknown interactionId → 404 (not 500)" answer 404 '{"error":"Interaction not found"}'
tc_req POST /message '{"content":"x","interactionId":"not-a-uuid"}'
t_check "malformed interactionId → 404" answer 404 '{"error":"Interaction not found"}'
tc_req POST /message "{\"content\":\"x\",\"worktreeId\":\"$NOPE\"}"
t_check "unknown worktreeId → 404" answer 404 '{"error":"Worktree not found"}'
tc_req POST /message '{"content":"x","metadata":[1]}'
t_check "metadata not an object → 400" answer 400 '{"error":"metadata must be an object"}'
tc_req POST /message '{"content":'
t_check "invalid JSON → 400 invalid_json" eval '[[ $TC_CODE == 400 && $(tc_jq .code) == invalid_json ]]'
tc_req POST /message 'x' -H 'Content-Type: text/plain'
t_check "not JSON → 415 with the deprecation headers" \
    eval '[[ $TC_CODE == 415 ]] && deprecated /api/message'
t_check "refused requests wrote nothing" test "$(tc_counts)" = "$before"

# ---------------------------------------------------------------- GET /interactions[/:id]

tc_req GET "/interactions/$conv"
echo "$TC_BODY" >"$TC_VAR/interaction.json"
t_check "GET /interactions/:id → 200 {interaction, messages}" \
    eval '[[ $TC_CODE == 200 && $(tc_jq "keys|join(\",\")") == interaction,messages ]]'
t_check "… interaction {id, source, type, createdAt, metadata}" \
    eval '[[ $(tc_jq ".interaction|keys|join(\",\")") == createdAt,id,metadata,source,type &&
            $(tc_jq .interaction.type) == query && $(tc_jq .interaction.metadata) == "{}" ]]'
messages_ok() {
    local f=$TC_VAR/interaction.json
    [[ $(jq -r '[.messages[] | .role] | join(",")' "$f") == user,assistant,user,assistant &&
        $(jq -r '[.messages[] | .status] | unique | join(",")' "$f") == completed &&
        $(jq -r '.messages[0] | keys | join(",")' "$f") == content,id,interactionId,metadata,role,status,timestamp &&
        $(jq -r '.messages[0].metadata.client' "$f") == desktop &&
        $(jq -r '.messages[0].id' "$f") == "$msg1" &&
        $(jq -r '.messages[1].content' "$f") == "echo: hello from an old client" ]]
}
t_check "… 4 messages in order, user/assistant, camelCase, old statuses" messages_ok
times_ok() {
    local api db
    api=$(jq -r '[.messages[] | .id + " " + .timestamp] | join(",")' "$TC_VAR/interaction.json")
    db=$(tc_sql "select string_agg(id || ' ' || to_char(created_at at time zone 'UTC',
                 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ',' order by seq)
                 from messages where conversation_id = '$conv'")
    [[ $api == "$db" ]] || { echo "api $api"; echo "db  $db"; return 1; }
}
t_check "… the ids, contents and times are Postgres's" times_ok
t_check "… assistant metadata: model, usage {inputTokens, outputTokens, totalTokens}" \
    eval '[[ $(tc_jq ".messages[1].metadata.model") == echo &&
            $(tc_jq ".messages[1].metadata.usage | \"\(.inputTokens) \(.outputTokens) \(.totalTokens)\"") == "5 6 11" ]]'
t_check "… deprecated, successor the conversation's messages" \
    deprecated "/api/conversations/$conv/messages"
tc_req GET "/interactions/$NOPE"
t_check "unknown interaction → 404 Interaction not found" answer 404 '{"error":"Interaction not found"}'
tc_req GET "/interactions/x'y"
t_check "malformed id → 404 Interaction not found (not 500)" \
    answer 404 '{"error":"Interaction not found"}'
tc_req GET /interactions
t_check "GET /interactions → 200 array with messageCount, lastMessage, hasUnprocessedMessages" \
    eval '[[ $TC_CODE == 200 && $(tc_jq "map(select(.id == \"$conv\"))[0] | \"\(.messageCount) \(.hasUnprocessedMessages) \(.lastMessage.content) \(.lastMessage.interactionId)\"") == "4 false echo: second $conv" ]]'
t_check "… deprecated, successor /api/conversations" deprecated /api/conversations

# ---------------------------------------------------------------- GET /status

tc_req GET /status
t_check "GET /status → 200 {queued, processing, waitingForPermission, totalInteractions, activeAgents}" \
    eval '[[ $TC_CODE == 200 && $(tc_jq "keys|join(\",\")") == activeAgents,processing,queued,totalInteractions,waitingForPermission &&
            $(tc_jq .totalInteractions) == $(tc_sql "select count(*) from conversations c join teams t on t.id = c.team_id where t.name = '"'dev'"'") &&
            $(tc_jq ".activeAgents|length") == 2 ]]'
t_check "… deprecated, successor /api/status" deprecated /api/status

# ---------------------------------------------------------------- auth, legacy token

TC_TOKEN=bk_wrong
tc_req GET /interactions
TC_TOKEN=$BICKY_TOKEN
t_check "a wrong token → 401 with WWW-Authenticate and the deprecation headers" \
    eval '[[ $TC_CODE == 401 && $(tc_header WWW-Authenticate) == Bearer ]] && deprecated /api/conversations'
TC_TOKEN=-
tc_req GET /interactions
t_check "no token, legacy token file holds an unknown token → 401" test "$TC_CODE" = 401
TC_TOKEN=$BICKY_TOKEN
echo "$BICKY_TOKEN" >"$BICKY_LEGACY_TOKEN_FILE"
gw_old=$(tc_pid gateway)
kill -TERM "$gw_old"
t_check "the gateway restarts and reads the legacy token" \
    bk_wait_for 20 eval '[[ $(tc_pid gateway) != "$gw_old" ]] && bk_http_ok "$BICKY_URL/ready"'
TC_TOKEN=-
tc_req GET "/interactions/$conv"
t_check "no Authorization header on a legacy route → the legacy token is assumed (200)" \
    eval '[[ $TC_CODE == 200 && $(tc_jq .interaction.id) == "$conv" ]]'
tc_req GET /api/conversations
t_check "… but never on /api routes (401)" test "$TC_CODE" = 401
TC_TOKEN=bk_wrong
tc_req GET /interactions
t_check "… and a header that is sent wins (401)" test "$TC_CODE" = 401
TC_TOKEN=$BICKY_TOKEN

# ---------------------------------------------------------------- permissions

pconv=$(tc_conv '{"strategy":"gpt"}')
ta_script "[$(ta_tool_call bash '{"command":"echo one"}'),{\"kind\":\"text\",\"text\":\"done one\"}]"
tc_post "$pconv" "run it" >/dev/null
ta_wait "$pconv" permission.requested 1 >/dev/null
perm=$(ta_perm "$pconv" 1)
tc_req GET "/permissions/$perm/status"
t_check "GET /permissions/:id/status → 200 pending" answer 200 '{"status":"pending"}'
t_check "… deprecated, successor /api/permissions/:id" deprecated "/api/permissions/$perm"
tc_req GET "/interactions"
t_check "a conversation waiting for permission hasUnprocessedMessages" \
    test "$(tc_jq "map(select(.id == \"$pconv\"))[0].hasUnprocessedMessages")" = true
tc_req GET /status
t_check "GET /status counts it in waitingForPermission" test "$(tc_jq .waitingForPermission)" = 1
tc_req POST "/interactions/$pconv/permission/response" '{"approved":"yes"}'
t_check "permission/response with approved not a boolean → 400" \
    answer 400 '{"error":"approved must be true or false"}'
tc_req POST "/interactions/$pconv/permission/response" '{"approved":true}'
t_check "POST /interactions/:id/permission/response approved → 200 {success: true}" \
    answer 200 '{"success":true}'
t_check "… the tool ran and the turn completed" ta_wait "$pconv" turn.completed
tc_req GET "/permissions/$perm/status"
t_check "… status approved" answer 200 '{"status":"approved"}'
tc_req POST "/interactions/$pconv/permission/response" '{"approved":true}'
t_check "nothing pending any more → 400 Interaction not waiting for permission" \
    answer 400 '{"error":"Interaction not waiting for permission"}'
tc_req POST "/interactions/$NOPE/permission/response" '{"approved":true}'
t_check "permission/response of an unknown interaction → 404" \
    answer 404 '{"error":"Interaction not found"}'

ta_script "[$(ta_tool_call bash '{"command":"echo two"}'),{\"kind\":\"text\",\"text\":\"done two\"}]"
tc_post "$pconv" "again" >/dev/null
ta_wait "$pconv" permission.requested 2 >/dev/null
perm2=$(ta_perm "$pconv" 2)
tc_req POST "/permissions/$perm2/deny"
t_check "POST /permissions/:id/deny → 200 {success: true}" answer 200 '{"success":true}'
t_check "… deprecated, successor /api/permissions/:id/deny" deprecated "/api/permissions/$perm2/deny"
t_check "… the request is denied in Postgres" \
    test "$(tc_sql "select status from tool_permissions where id = '$perm2'")" = denied
tc_req POST "/permissions/$perm2/approve"
t_check "approving a denied request → 409" answer 409 '{"error":"Permission request already decided"}'
ta_wait "$pconv" turn.completed 2 >/dev/null
ta_script "[$(ta_tool_call bash '{"command":"echo three"}'),{\"kind\":\"text\",\"text\":\"done three\"}]"
tc_post "$pconv" "third" >/dev/null
ta_wait "$pconv" permission.requested 3 >/dev/null
perm3=$(ta_perm "$pconv" 3)
tc_req POST "/permissions/${perm3^^}/approve" '{"ignored":1}'
t_check "POST /permissions/:id/approve (upper-case id, a body) → 200" answer 200 '{"success":true}'
t_check "… approved in Postgres" \
    test "$(tc_sql "select status from tool_permissions where id = '$perm3'")" = approved
tc_req POST "/permissions/$NOPE/approve"
t_check "approve an unknown request → 404" answer 404 '{"error":"Permission request not found"}'
tc_req POST "/permissions/nope/deny"
t_check "deny a malformed id → 404" answer 404 '{"error":"Permission request not found"}'
tc_req GET "/permissions/$NOPE/status"
t_check "status of an unknown request → 404 {status: not_found}" answer 404 '{"status":"not_found"}'
tc_req GET /permissions/nope/status
t_check "status of a malformed id → 404 {status: not_found}" answer 404 '{"status":"not_found"}'
TC_TOKEN=$(tc_team_token legacy-other)
tc_req GET "/permissions/$perm/status"
t_check "another team's request → 404" answer 404 '{"status":"not_found"}'
tc_req GET "/interactions/$conv"
t_check "another team's interaction → 404" answer 404 '{"error":"Interaction not found"}'
tc_req GET /interactions
t_check "another team's list is empty" answer 200 '[]'
TC_TOKEN=$BICKY_TOKEN

# ---------------------------------------------------------------- worktrees

tc_req POST /worktrees '{"branch":"legacy-wt"}'
t_check "POST /worktrees → 200 {id, path, branch, baseCommit, status, createdAt}" \
    eval '[[ $TC_CODE == 200 && $(tc_jq "keys|join(\",\")") == baseCommit,branch,createdAt,id,path,status &&
            $(tc_jq .branch) == legacy-wt && $(tc_jq .status) == active && -d $(tc_jq .path) ]]'
t_check "… deprecated, successor /api/worktrees" deprecated /api/worktrees
wt=$(tc_jq .id)
tc_req POST /worktrees '{"branch":"legacy-wt"}'
t_check "the same branch again → 409 with an error" \
    eval '[[ $TC_CODE == 409 && -n $(tc_jq .error) ]]'
tc_req POST /worktrees '{"baseBranch":"main"}'
t_check "no branch → 400 Branch name is required" answer 400 '{"error":"Branch name is required"}'
tc_req POST /worktrees '{"branch":"x2","customPath":"/etc"}'
t_check "customPath → 400 (the server chooses paths)" \
    answer 400 '{"error":"customPath is not supported: the server chooses worktree paths"}'
tc_req POST /worktrees '{"branch":"bad..name"}'
t_check "a branch git refuses → 400 with an error" eval '[[ $TC_CODE == 400 && -n $(tc_jq .error) ]]'
tc_req GET /worktrees
t_check "GET /worktrees → 200 [the worktree]" \
    eval '[[ $TC_CODE == 200 && $(tc_jq "map(.id) | join(\",\")") == "$wt" && $(tc_jq ".[0].branch") == legacy-wt ]]'
tc_req POST /message "{\"content\":\"in a worktree\",\"worktreeId\":\"$wt\"}"
t_check "POST /message with a worktreeId → 200, the conversation uses it" \
    eval '[[ $TC_CODE == 200 && $(tc_sql "select worktree_id from conversations where id = '"'"'$(tc_jq .id)'"'"'") == "$wt" ]]'

# ---------------------------------------------------------------- GET /stream

tc_sse /stream --headers-only >"$TC_VAR/h.json"
t_check "GET /stream: 200 text/event-stream, deprecated, successor /api/stream" \
    eval '[[ $(jq -r .status "$TC_VAR/h.json") == 200 &&
            $(jq -r ".headers[\"content-type\"]" "$TC_VAR/h.json") == text/event-stream* &&
            $(jq -r ".headers.deprecation" "$TC_VAR/h.json") == true &&
            $(jq -r ".headers.link" "$TC_VAR/h.json") == "</api/stream>; rel=\"successor-version\"" ]]'
curl -sN -m 2 -H "Authorization: Bearer $BICKY_TOKEN" "$BICKY_URL/stream" >"$TC_VAR/raw.sse"
t_check "the stream opens with the comment ': connected'" \
    test "$(head -n 1 "$TC_VAR/raw.sse")" = ": connected"
tc_req GET /stream "" -H "Last-Event-ID: x"
t_check "a bad Last-Event-ID → 400" eval '[[ $TC_CODE == 400 && -n $(tc_jq .error) ]]'

# A live turn: the stream is open before the message is posted.
start=$(tc_sql "select coalesce(max(id), 0) from events")
rm -f "$TC_VAR/ready"
tc_sse /stream --until '' --count 0 --stored 3 --rst --timeout 20 --ready-file "$TC_VAR/ready" \
    >"$TC_VAR/s1.sse" &
sse_pid=$!
bk_wait_for 10 test -e "$TC_VAR/ready"
words=$(printf 'w%d ' $(seq 1 150))
tc_req POST /message "{\"content\":\"$words\"}"
sconv=$(tc_jq .id)
wait "$sse_pid"
t_check "legacy events: data {type, timestamp, data} lines with ids, no event: lines" \
    eval '[[ $(jq -sr "map(select(.id != null)) | length" "$TC_VAR/s1.sse") == 3 &&
            $(jq -sr "map(select(.id != null) | .event) | unique | join(\",\")" "$TC_VAR/s1.sse") == message ]]'
t_check "… interaction:created with the interaction, then message:added with the message" \
    eval '[[ $(jq -sr "map(select(.id != null) | .data.type) | .[0:2] | join(\",\")" "$TC_VAR/s1.sse") == interaction:created,message:added &&
            $(jq -sr "map(select(.id != null))[0].data.data.interaction.id" "$TC_VAR/s1.sse") == "$sconv" &&
            $(jq -sr "map(select(.id != null))[1].data.data | \"\(.message.content) \(.interactionId)\"" "$TC_VAR/s1.sse") == "$words $sconv" ]]'
last=$(jq -sr 'map(select(.id != null)) | last.id' "$TC_VAR/s1.sse")
t_check "the client was cut off mid-turn" \
    test "$(tc_sql "select count(*) from events where conversation_id = '$sconv' and type = 'turn.completed'")" = 0
# Resumed once the turn is over (the legacy vocabulary has no deltas, so a
# stream open during the turn can be silent for longer than any idle limit):
# every event stored after the last one seen comes back, then 3 s of quiet.
tc_wait_status "$sconv" idle 60
tc_sse /stream --last-event-id "$last" --until '' --idle 3 --timeout 30 >"$TC_VAR/s2.sse"
got=$( (jq -r 'select(.id != null) | .id' "$TC_VAR/s1.sse" "$TC_VAR/s2.sse") | tr '\n' ' ')
want=$(tc_sql "select id from events where id > $start and conversation_id = '$sconv' order by id" | tr '\n' ' ')
t_check "resumed by Last-Event-ID: every stored event of the turn once, in order" test "$got" = "$want"
t_check "… ending with message:updated (the reply, completed) and interaction:updated" \
    eval '[[ $(jq -sr "map(select(.id != null) | .data.type) | .[-2:] | join(\",\")" "$TC_VAR/s2.sse") == message:updated,interaction:updated &&
            $(jq -sr "map(select(.data.type == \"message:updated\"))[-1].data.data.message | \"\(.status) \(.role)\"" "$TC_VAR/s2.sse") == "completed assistant" ]]'

tc_finish legacy
