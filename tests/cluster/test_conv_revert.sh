#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_revert.sh — POST /api/events/:id/revert on a real cluster: a patch
# (title, metadata keys, on_busy) is undone field by field, metadata keys it
# added are removed again; the answer is the event.reverted event (201, its
# action names the original), the original gets reverted_by, both are in the
# log and on the stream; an archive is undone (the conversation takes posts
# again). Refusals write nothing: not reversible (message events, a revert
# itself), twice, a field changed since (the body names it; a later change of
# another metadata key does not block), another team's event (404), bad and
# unknown ids (400, 404). A revert while messages are posted stays in order
# (seqs gapless). The log filtered by types= (GET /api/events and a
# conversation's events); GET /api/events?wait= long-polls: answered by the
# next event after its id, kept waiting by events types= excludes, empty
# after its wait, nothing of another team, subscriptions dropped after.
# Permission rules: their creation and deletion are reversible team events
# (on the team stream, in the log); reverting a creation deletes the rule,
# reverting a deletion re-creates it with its id; twice → 409; a rule deleted
# since → 409 changed_since, nothing written; four concurrent reverts of one
# event → one 201; a worktree team event → 409; another team's → 404.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_revert
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start conv_revert

# last_event CONV TYPE: id of the conversation's newest event of TYPE.
last_event() {
    tc_sql "select id from events where conversation_id = '$1' and type = '$2' order by seq desc limit 1"
}
# conv_field CONV JQ: a field of GET /api/conversations/CONV.
conv_field() {
    tc_req GET "/api/conversations/$1"
    tc_jq "$2"
}
event_count() { tc_sql "select count(*) from events where conversation_id = '$1'"; }

# ---------------------------------------------------------------- a patch undone

conv=$(tc_conv '{"title":"first","metadata":{"keep":1,"x":1}}')
t_check "conversation created" test -n "$conv"
tc_req PATCH "/api/conversations/$conv" '{"title":"second","metadata":{"x":2,"added":true},"on_busy":"reject"}'
t_check "PATCH is 200 (got $TC_CODE)" test "$TC_CODE" = 200
upd=$(last_event "$conv" conversation.updated)
t_check "conversation.updated stored as reversible with the previous values" \
    test "$(tc_sql "select reversible, action->'previous' from events where id = $upd")" \
    = 't|{"title": "first", "on_busy": "enqueue", "metadata": {"x": 1}}'
tc_req GET "/api/conversations/$conv/events"
t_check "the event list marks it reversible, not reverted" \
    test "$(tc_jq ".data[] | select(.id == $upd) | [.reversible, .reverted_by] | tostring")" = '[true,null]'
t_check "conversation.created is not reversible" \
    test "$(tc_jq '.data[] | select(.type == "conversation.created") | .reversible')" = false

sse=$TC_VAR/revert.sse
rm -f "$TC_VAR/ready"
tc_sse "/api/conversations/$conv/events?after=$upd" --until event.reverted --timeout 20 \
    --ready-file "$TC_VAR/ready" >"$sse" &
probe=$!
t_check "SSE stream open" bk_wait_for 10 test -e "$TC_VAR/ready"

tc_req POST "/api/events/$upd/revert"
t_check "revert is 201 (got $TC_CODE: $TC_BODY)" test "$TC_CODE" = 201
rev=$(tc_jq .id)
t_check "the answer is event.reverted naming the original" \
    test "$(tc_jq '[.type, .action.reverts, .action.type, .reversible] | tostring')" \
    = "[\"event.reverted\",$upd,\"conversation.updated\",false]"
t_check "title, metadata and on_busy are back (the added key removed)" \
    test "$(conv_field "$conv" '[.title, (.metadata | keys), .metadata.x, .on_busy] | tostring')" \
    = '["first",["keep","x"],1,"enqueue"]'
t_check "the original is marked reverted_by the new event" \
    test "$(tc_sql "select reverted_by from events where id = $upd")" = "$rev"
tc_req GET "/api/conversations/$conv/events"
t_check "the event list shows reverted_by" \
    test "$(tc_jq ".data[] | select(.id == $upd) | .reverted_by")" = "$rev"
wait "$probe"
t_check "event.reverted arrived on the stream" grep -q '"type":"event.reverted"' "$sse"

# ---------------------------------------------------------------- refusals write nothing

n=$(event_count "$conv")
tc_req POST "/api/events/$upd/revert"
t_check "a second revert is 409 already_reverted (got $TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "409 already_reverted"
tc_req POST "/api/events/$rev/revert"
t_check "a revert is not reversible: 409 not_reversible (got $TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "409 not_reversible"
created=$(last_event "$conv" conversation.created)
tc_req POST "/api/events/$created/revert"
t_check "conversation.created: 409 not_reversible" test "$TC_CODE $(tc_jq .code)" = "409 not_reversible"
tc_req POST "/api/events/abc/revert"
t_check "a malformed id is 400 naming id" test "$TC_CODE $(tc_jq .field)" = "400 id"
tc_req POST "/api/events/0/revert"
t_check "id 0 is 400" test "$TC_CODE" = 400
tc_req POST "/api/events/999999999999/revert"
t_check "an unknown id is 404" test "$TC_CODE" = 404
other=$(tc_team_token revert-other)
TC_TOKEN=$other tc_req POST "/api/events/$upd/revert"
t_check "another team's event is 404 (got $TC_CODE)" test "$TC_CODE" = 404
t_check "no refusal wrote an event" test "$(event_count "$conv")" = "$n"

# ---------------------------------------------------------------- changed since

tc_req PATCH "/api/conversations/$conv" '{"title":"third","metadata":{"k":1}}'
e2=$(last_event "$conv" conversation.updated)
tc_req PATCH "/api/conversations/$conv" '{"title":"fourth"}'
tc_req POST "/api/events/$e2/revert"
t_check "a title changed since: 409 changed_since naming title (got $TC_CODE $TC_BODY)" \
    test "$TC_CODE $(tc_jq .code)" = "409 changed_since" -a -n "$(tc_jq .error | grep -w title)"
tc_req PATCH "/api/conversations/$conv" '{"metadata":{"m":1}}'
e4=$(last_event "$conv" conversation.updated)
tc_req PATCH "/api/conversations/$conv" '{"metadata":{"other":2}}'
tc_req POST "/api/events/$e4/revert"
t_check "another metadata key changed since does not block (got $TC_CODE $TC_BODY)" test "$TC_CODE" = 201
t_check "only key m is removed" \
    test "$(conv_field "$conv" '.metadata | keys | join(",")')" = "k,keep,other,x"
tc_req PATCH "/api/conversations/$conv" '{"metadata":{"m":5}}'
e6=$(last_event "$conv" conversation.updated)
tc_req PATCH "/api/conversations/$conv" '{"metadata":{"m":6}}'
tc_req POST "/api/events/$e6/revert"
t_check "the same metadata key changed since: 409 naming metadata.m" \
    test "$TC_CODE $(tc_jq .code)" = "409 changed_since" -a -n "$(tc_jq .error | grep -F metadata.m)"

# ---------------------------------------------------------------- archive undone, in order with posts

conv2=$(tc_conv '{}')
tc_post "$conv2" "before archive" >/dev/null
t_check "posted before the archive" tc_wait_status "$conv2" idle
tc_req DELETE "/api/conversations/$conv2"
t_check "archived (204)" test "$TC_CODE" = 204
arch=$(last_event "$conv2" conversation.archived)
tc_post "$conv2" "while archived" >/dev/null
t_check "an archived conversation refuses posts (409)" test "$TC_CODE" = 409
tc_req POST "/api/events/$arch/revert"
t_check "archive revert is 201 (got $TC_CODE $TC_BODY)" test "$TC_CODE" = 201
t_check "the conversation is idle again" test "$(conv_field "$conv2" .status)" = idle
for i in 1 2 3; do
    tc_post "$conv2" "after $i" >/dev/null &
done
tc_req PATCH "/api/conversations/$conv2" '{"title":"racing"}'
e7=$(last_event "$conv2" conversation.updated)
tc_req POST "/api/events/$e7/revert"
t_check "a revert among concurrent posts is 201" test "$TC_CODE" = 201
wait
t_check "the posts after the undo were taken and answered" \
    bk_wait_for 15 eval '[[ $(tc_sql "select count(*) from messages where conversation_id = '"'$conv2'"' and role = '"'assistant'"' and status = '"'completed'"'") -ge 4 ]]'
tc_req DELETE "/api/conversations/$conv2"
arch2=$(last_event "$conv2" conversation.archived)
tc_req POST "/api/events/$arch/revert"
t_check "the first archive, already reverted, stays 409" test "$TC_CODE" = 409
tc_req POST "/api/events/$arch2/revert"
t_check "the second archive reverts too" test "$TC_CODE" = 201

# ---------------------------------------------------------------- the log, filtered by type

tc_req GET "/api/events?types=event.reverted&limit=500"
t_check "GET /api/events?types=event.reverted lists exactly the reverts" \
    test "$(tc_jq '[.data[].type] | unique | join(",")') $(tc_jq '.data | length')" \
    = "event.reverted $(tc_sql "select count(*) from events where type = 'event.reverted'")"
tc_req GET "/api/conversations/$conv/events?types=conversation.updated,event.reverted&limit=500"
t_check "a conversation's events filtered by two types" \
    test "$(tc_jq '.data | length')" = "$(tc_sql "select count(*) from events where conversation_id = '$conv' and type in ('conversation.updated', 'event.reverted')")"
tc_req GET "/api/events?types=a,,b"
t_check "an empty type in types= is 400 naming types" test "$TC_CODE $(tc_jq .field)" = "400 types"
tc_req GET "/api/events?types=x%20y"
t_check "a type with a space is 400" test "$TC_CODE" = 400

# ---------------------------------------------------------------- permission rules (team events)

# rule_event TYPE RULE: id of the team event TYPE of rule RULE.
rule_event() {
    tc_sql "select id from events where type = '$1' and conversation_id is null and action->'rule'->>'id' = '$2' order by id desc limit 1"
}
reverts() { tc_sql "select count(*) from events where type = 'event.reverted'"; }
rtopics=$(tc_metric bicky_gateway_sse_topics)
tc_sse /api/stream --until permission_rule.created --timeout 30 >"$TC_VAR/rules.sse" &
rsse=$!
t_check "the team stream is listening" \
    bk_wait_for 15 eval '(( $(tc_metric bicky_gateway_sse_topics) > rtopics ))'
tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"bash","decision":"allow"}'
rule=$(tc_jq .id)
t_check "a team rule: 201" test "$TC_CODE" = 201
rc=$(rule_event permission_rule.created "$rule")
t_check "its creation is a reversible team event with the whole rule" \
    test "$(tc_sql "select conversation_id is null, seq is null, reversible, action->'rule'->>'tool_pattern', source->>'kind' from events where id = ${rc:-0}")" = "t|t|t|bash|user"
wait "$rsse"
t_check "... published on the team's stream" grep -q "\"type\":\"permission_rule.created\".*\"$rule\"" "$TC_VAR/rules.sse"
tc_req GET "/api/events?types=permission_rule.created"
t_check "... and listed by GET /api/events?types=" test "$(tc_jq '.data[-1].action.rule.id')" = "$rule"
tc_req POST "/api/events/$rc/revert"
t_check "reverting the creation: 201 event.reverted naming it" \
    test "$TC_CODE $(tc_jq .type) $(tc_jq .action.reverts) $(tc_jq .conversation_id)" = "201 event.reverted $rc null"
t_check "... the rule is gone" test "$(tc_sql "select count(*) from permission_rules where id = '$rule'")" = 0
t_check "... and the creation's reverted_by is the revert" \
    test "$(tc_sql "select reverted_by from events where id = $rc")" = "$(tc_jq .id)"
tc_req POST "/api/events/$rc/revert"
t_check "reverting it twice: 409 already_reverted" test "$TC_CODE $(tc_jq .code)" = "409 already_reverted"

tc_req POST /api/permission-rules "{\"scope\":\"conversation\",\"conversation_id\":\"$conv\",\"tool_pattern\":\"read_*\",\"decision\":\"deny\"}"
crule=$(tc_jq .id)
tc_req DELETE "/api/permission-rules/$crule"
t_check "deleting a conversation rule: 204" test "$TC_CODE" = 204
rd=$(rule_event permission_rule.deleted "$crule")
t_check "its deletion is a reversible team event" \
    test "$(tc_sql "select reversible, action->'rule'->>'conversation_id' from events where id = ${rd:-0}")" = "t|$conv"
tc_req POST "/api/events/$rd/revert"
t_check "reverting the deletion: 201" test "$TC_CODE" = 201
tc_req GET "/api/permission-rules?conversation_id=$conv"
t_check "... the rule is back with its id, scope, pattern and decision" \
    test "$(tc_jq "[.data[] | select(.id == \"$crule\") | .scope, .tool_pattern, .decision] | join(\" \")")" \
    = "conversation read_* deny"

tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"grep","decision":"deny"}'
grule=$(tc_jq .id)
gc=$(rule_event permission_rule.created "$grule")
tc_req DELETE "/api/permission-rules/$grule"
before=$(reverts)
tc_req POST "/api/events/$gc/revert"
t_check "reverting the creation of a rule deleted since: 409 changed_since naming rule" \
    test "$TC_CODE $(tc_jq .code) $(tc_jq .error | cut -d: -f1)" = "409 changed_since rule"
t_check "... and nothing was written" test "$(reverts)" = "$before"

tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"write_file","decision":"deny"}'
race=$(rule_event permission_rule.created "$(tc_jq .id)")
for i in 1 2 3 4; do
    curl -s -m 30 -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $TC_TOKEN" \
        "$BICKY_URL/api/events/$race/revert" >"$TC_VAR/race$i" &
done
wait
t_check "four reverts of one event at once: one 201, three 409" \
    test "$(cat "$TC_VAR"/race? | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')" = "1×201 3×409 "
t_check "... and one event.reverted" \
    test "$(tc_sql "select count(*) from events where type = 'event.reverted' and (action->>'reverts')::bigint = $race")" = 1

rteam=$(tc_sql "select team_id from conversations where id = '$conv'")
wt=$(tc_sql "insert into events (team_id, type, source, action) values ('$rteam', 'worktree.created', '{\"kind\":\"user\"}', '{}') returning id")
tc_req POST "/api/events/$wt/revert"
t_check "a worktree team event: 409 not_reversible" test "$TC_CODE $(tc_jq .code)" = "409 not_reversible"
other_r=$(tc_team_token "rules-other-$$")
TC_TOKEN=$other_r tc_req POST "/api/events/$rd/revert"
t_check "another team's rule event: 404" test "$TC_CODE" = 404
TC_TOKEN=$other_r tc_req POST /api/permission-rules '{"scope":"team","tool_pattern":"x","decision":"deny"}'
t_check "another team's rule event is not in this team's log" \
    test "$(tc_sql "select team_id from events where type = 'permission_rule.created' and action->'rule'->>'id' = '$(tc_jq .id)'")" != "$rteam"

# ---------------------------------------------------------------- the log, long-polled

# poll OUT QUERY [TOKEN]: GET /api/events?QUERY in the background, the body in OUT.
poll() {
    curl -s -m 90 -o "$1" -w '%{http_code}' -H "Authorization: Bearer ${3:-$TC_TOKEN}" \
        "$BICKY_URL/api/events?$2" >"$1.code" &
}
team=$(tc_sql "select team_id from conversations where id = '$conv'")
top() { tc_sql "select coalesce(max(id), 0) from events where team_id = '$team'"; }
tc_req GET "/api/events?wait=soon"
t_check "wait=soon: 400 naming wait" test "$TC_CODE $(tc_jq .field)" = "400 wait"
tc_req GET "/api/events?wait=61"
t_check "wait=61: 400 (60 s at most)" test "$TC_CODE" = 400
topics0=$(tc_metric bicky_gateway_sse_topics)
max=$(top)
poll "$TC_VAR/poll1" "after=$max&wait=60"
p1=$!
t_check "the waiting long-poll listens to its team's events" \
    bk_wait_for 15 eval '(( $(tc_metric bicky_gateway_sse_topics) > topics0 ))'
lp=$(tc_conv '{"title":"long-poll"}')
wait "$p1"
t_check "a long-poll with nothing after its id is answered by the next event ($(cat "$TC_VAR/poll1.code"))" \
    test "$(cat "$TC_VAR/poll1.code") $(jq -r '.data[0].type' "$TC_VAR/poll1")" = "200 conversation.created"
t_check "... which is the first event after the id" \
    test "$(jq -r '.data[0].id' "$TC_VAR/poll1")" = "$(tc_sql "select min(id) from events where team_id = '$team' and id > $max")"
max=$(top)
poll "$TC_VAR/poll2" "after=$max&wait=60&types=conversation.updated"
p2=$!
tc_post "$lp" "events of other types first" >/dev/null
tc_wait_status "$lp" idle 30
tc_req PATCH "/api/conversations/$lp" '{"title":"polled"}'
wait "$p2"
t_check "with types=: the other events keep it waiting, the update answers it" \
    test "$(cat "$TC_VAR/poll2.code") $(jq -r '[.data[].type] | unique | join(",")' "$TC_VAR/poll2")" \
    = "200 conversation.updated"
other=$(tc_team_token "poll-other-$$")
max=$(top)
poll "$TC_VAR/poll3" "wait=2" "$other"
p3=$!
tc_post "$lp" "not for the other team" >/dev/null
wait "$p3"
t_check "another team's long-poll times out with an empty page, none of these events" \
    test "$(cat "$TC_VAR/poll3.code") $(jq -c '.data' "$TC_VAR/poll3")" = "200 []"
tc_req GET "/api/events?after=$(($(top) + 1000000))&wait=1"
t_check "wait=1 with nothing new: 200 and an empty page" test "$TC_CODE $(tc_jq '.data | length')" = "200 0"
t_check "the gateway dropped the polls' subscriptions" \
    bk_wait_for 10 eval '[[ $(tc_metric bicky_gateway_sse_topics) == "$topics0" ]]'

tc_finish conv_revert
