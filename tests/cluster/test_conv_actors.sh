#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_actors.sh — the actors of a conversation (issue 15) on a real
# cluster: GET …/actors lists the responder (the conversation's strategy);
# POST attaches an observer (201, the actor.attached event, the row and the
# event in Postgres with the caller as source); validation answers 400
# invalid_field naming the field (name, strategy, trigger type, n, types,
# config keys), a duplicate name and an archived conversation 409 conflict,
# the ninth observer 409 too_many_actors; another team's conversation is 404;
# DELETE detaches (204, actor.detached), an unknown name is 404, the
# responder 409. Attach and detach while a turn runs stay in order (seqs
# gapless, the turn completes). Attachments survive a drain: the conversation
# moves to the other node and lists the same observers there, and they run
# there. Observers run after the responder's turns (tests/fixtures/fake_llm.py
# as their model): a summarizer keeps the title and a summary in metadata
# (conversation.updated and observer.completed with the observer as source, a
# message of role observer, the status idle, no turn of its own); a failing
# model and a timeout give observer.failed and the conversation stays usable;
# every_n_turns runs every n-th turn; on_event_types after a turn that stored
# one of its types (a failed turn).
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_actors
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/conv_actors_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start conv_actors
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

OBS='{"name":"notes","strategy":"echo","trigger":{"type":"after_turn"}}'
# actor_names CONV: the names GET …/actors lists, comma-joined.
actor_names() {
    tc_req GET "/api/conversations/$1/actors"
    tc_jq '[.data[].name] | join(",")'
}
event_count() { tc_sql "select count(*) from events where conversation_id = '$1'"; }

# ---------------------------------------------------------------- attach, list, detach

conv=$(tc_conv '{"title":"observed"}')
t_check "conversation created" test -n "$conv"
tc_req GET "/api/conversations/$conv/actors"
t_check "GET actors is 200 (got $TC_CODE)" test "$TC_CODE" = 200
t_check "only the responder, with the conversation's strategy" \
    test "$(tc_jq '[.data[] | "\(.name):\(.kind):\(.strategy)"] | join(" ")')" = "responder:responder:echo"

tc_req POST "/api/conversations/$conv/actors" \
    '{"name":"notes","strategy":"echo","trigger":{"type":"every_n_turns","n":2},"config":{"message":true,"timeout_s":5}}'
t_check "attach is 201 (got $TC_CODE: $TC_BODY)" test "$TC_CODE" = 201
t_check "the answer is actor.attached with the observer" \
    test "$(tc_jq '[.type, .action.actor.name, .action.actor.kind, .action.actor.trigger.n, .action.actor.config.message, .source.kind] | tostring')" \
    = '["actor.attached","notes","observer",2,true,"user"]'
t_check "the row is stored, with the team" \
    test "$(tc_sql "select a.name, a.strategy, a.trigger->>'type', a.team_id = c.team_id from actor_attachments a join conversations c on c.id = a.conversation_id where a.conversation_id = '$conv'")" \
    = "notes|echo|every_n_turns|t"
t_check "GET actors lists responder then notes" test "$(actor_names "$conv")" = "responder,notes"
tc_req GET "/api/conversations/$conv/actors"
t_check "the observer as listed ($(tc_jq '.data[1] | tostring'))" \
    test "$(tc_jq '.data[1] | [.kind, .strategy, .trigger.type, .config.timeout_s, (.created_at | type)] | tostring')" \
    = '["observer","echo","every_n_turns",5,"string"]'

# ---------------------------------------------------------------- refusals write nothing

n=$(event_count "$conv")
# refused BODY FIELD: POST is 400 invalid_field naming FIELD.
refused() {
    tc_req POST "/api/conversations/$conv/actors" "$1"
    t_check "400 invalid_field $2 for $1 (got $TC_CODE $(tc_jq .code) $(tc_jq .field))" \
        test "$TC_CODE $(tc_jq .code) $(tc_jq .field)" = "400 invalid_field $2"
}
refused '{"strategy":"echo","trigger":{"type":"after_turn"}}' name
refused '{"name":"Bad Name","strategy":"echo","trigger":{"type":"after_turn"}}' name
refused '{"name":"responder","strategy":"echo","trigger":{"type":"after_turn"}}' name
refused '{"name":"abcdefghijabcdefghijabcdefghijabc","strategy":"echo","trigger":{"type":"after_turn"}}' name
refused '{"name":"x","strategy":"nope","trigger":{"type":"after_turn"}}' strategy
refused '{"name":"x","strategy":"echo"}' trigger
refused '{"name":"x","strategy":"echo","trigger":{"type":"sometimes"}}' type
refused '{"name":"x","strategy":"echo","trigger":{"type":"every_n_turns"}}' n
refused '{"name":"x","strategy":"echo","trigger":{"type":"every_n_turns","n":0}}' n
refused '{"name":"x","strategy":"echo","trigger":{"type":"after_turn","n":3}}' n
refused '{"name":"x","strategy":"echo","trigger":{"type":"on_event_types","types":"a,,b"}}' types
refused '{"name":"x","strategy":"echo","trigger":{"type":"after_turn"},"config":{"bogus":1}}' bogus
refused '{"name":"x","strategy":"echo","trigger":{"type":"after_turn"},"config":{"timeout_s":301}}' timeout_s
tc_req POST "/api/conversations/$conv/actors" "$OBS"
t_check "a duplicate name is 409 conflict (got $TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "409 conflict"
other=$(tc_team_token actors-other)
TC_TOKEN=$other tc_req GET "/api/conversations/$conv/actors"
t_check "another team's conversation: GET is 404 (got $TC_CODE)" test "$TC_CODE" = 404
TC_TOKEN=$other tc_req POST "/api/conversations/$conv/actors" '{"name":"spy","strategy":"echo","trigger":{"type":"after_turn"}}'
t_check "another team's conversation: POST is 404 (got $TC_CODE)" test "$TC_CODE" = 404
TC_TOKEN=$other tc_req DELETE "/api/conversations/$conv/actors/notes"
t_check "another team's conversation: DELETE is 404 (got $TC_CODE)" test "$TC_CODE" = 404
tc_req DELETE "/api/conversations/$conv/actors/nobody"
t_check "detaching an unknown name is 404 (got $TC_CODE)" test "$TC_CODE" = 404
tc_req DELETE "/api/conversations/$conv/actors/responder"
t_check "detaching the responder is 409 (got $TC_CODE)" test "$TC_CODE" = 409
tc_req GET "/api/conversations/00000000-0000-4000-8000-000000000001/actors"
t_check "an unknown conversation is 404 (got $TC_CODE)" test "$TC_CODE" = 404
t_check "no refusal wrote an event" test "$(event_count "$conv")" = "$n"

# ---------------------------------------------------------------- the limit

for i in 2 3 4 5 6 7 8; do
    tc_req POST "/api/conversations/$conv/actors" \
        "{\"name\":\"obs$i\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"on_event_types\",\"types\":\"turn.failed\"}}"
    [[ $TC_CODE == 201 ]] || t_fail "observer $i: $TC_CODE $TC_BODY"
done
t_check "8 observers attached" test "$(tc_sql "select count(*) from actor_attachments where conversation_id = '$conv'")" = 8
tc_req POST "/api/conversations/$conv/actors" '{"name":"ninth","strategy":"echo","trigger":{"type":"after_turn"}}'
t_check "the ninth is 409 too_many_actors (got $TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "409 too_many_actors"
tc_req DELETE "/api/conversations/$conv/actors/obs8"
t_check "detach is 204 (got $TC_CODE $TC_BODY)" test "$TC_CODE" = 204
t_check "actor.detached stored with the observer, the caller as source" \
    test "$(tc_sql "select action->'actor'->>'name', source->>'kind' from events where conversation_id = '$conv' and type = 'actor.detached'")" = "obs8|user"
t_check "the row is gone" \
    test "$(tc_sql "select count(*) from actor_attachments where conversation_id = '$conv' and name = 'obs8'")" = 0
tc_req POST "/api/conversations/$conv/actors" '{"name":"ninth","strategy":"echo","trigger":{"type":"after_turn"}}'
t_check "below the limit again: 201 (got $TC_CODE)" test "$TC_CODE" = 201

# ---------------------------------------------------------------- during a turn, in order

conv2=$(tc_conv '{"metadata":{"echo":{"delay_ms":150}}}')
tc_post "$conv2" "one two three four five six seven eight" >/dev/null
t_check "a turn runs" tc_wait_status "$conv2" processing
tc_req POST "/api/conversations/$conv2/actors" "$OBS"
t_check "attach during a turn is 201 (got $TC_CODE)" test "$TC_CODE" = 201
tc_req DELETE "/api/conversations/$conv2/actors/notes"
t_check "detach during a turn is 204 (got $TC_CODE)" test "$TC_CODE" = 204
tc_req POST "/api/conversations/$conv2/actors" "$OBS"
t_check "attach again is 201 (got $TC_CODE)" test "$TC_CODE" = 201
t_check "the turn completes" tc_wait_status "$conv2" idle 20
t_check "turn.completed is stored" \
    test "$(tc_sql "select count(*) from events where conversation_id = '$conv2' and type = 'turn.completed'")" = 1
t_check "the actor events are in the order of the answers" \
    test "$(tc_sql "select string_agg(type, ',' order by seq) from events where conversation_id = '$conv2' and type like 'actor.%'")" \
    = "actor.attached,actor.detached,actor.attached"

t_check "notes ran after the turn: observer.completed" \
    bk_wait_for 10 eval '[[ $(ta_count '"$conv2"' observer.completed) == 1 ]]'

# ---------------------------------------------------------------- a summarizer runs after each turn

SUMMARY='{"title":"Greeting chat","metadata":{"summary":"The user greets."}}'
conv4=$(tc_conv '{"title":"untitled","metadata":{"keep":1}}')
tc_req POST "/api/conversations/$conv4/actors" \
    '{"name":"summarizer","strategy":"gpt","trigger":{"type":"after_turn"},"config":{"patch":true,"message":true,"prompt":"Reply with JSON: title and metadata.summary."}}'
t_check "summarizer attached (got $TC_CODE $TC_BODY)" test "$TC_CODE" = 201
ta_script "[{\"kind\":\"text\",\"text\":$(jq -Rs . <<<"$SUMMARY")}]"
tc_post "$conv4" "hello there" >/dev/null
t_check "observer.completed within 15 s" \
    bk_wait_for 15 eval '[[ $(ta_count '"$conv4"' observer.completed) == 1 ]]'
t_check "the title and the summary are kept (other metadata too)" \
    test "$(tc_sql "select title, metadata->>'summary', metadata->>'keep' from conversations where id = '$conv4'")" \
    = "Greeting chat|The user greets.|1"
t_check "conversation.updated and observer.completed have the observer as source" \
    test "$(tc_sql "select string_agg(distinct source::text, ' ') from events where conversation_id = '$conv4' and type in ('conversation.updated', 'observer.completed')")" \
    = '{"kind": "actor", "name": "summarizer"}'
t_check "its reply is a message of role observer, after the assistant's" \
    test "$(tc_sql "select string_agg(role, ',' order by seq) from messages where conversation_id = '$conv4'")" = "user,assistant,observer"
t_check "observer.completed embeds that message" \
    test "$(tc_sql "select action->'message'->>'role' from events where conversation_id = '$conv4' and type = 'observer.completed'")" = observer
t_check "the model got the observer's prompt and the conversation" \
    eval "ta_requests | jq -e '.[-1].body | tostring | (contains(\"Reply with JSON\") and contains(\"user: hello there\"))' >/dev/null"
t_check "the conversation is idle, one turn only" \
    test "$(tc_status "$conv4") $(ta_count "$conv4" turn.started)" = "idle 1"
tc_req GET "/api/conversations/$conv4"
t_check "GET shows the new title" test "$(tc_jq .title)" = "Greeting chat"

# ---------------------------------------------------------------- failure and timeout leave it usable

ta_script '[{"kind":"http_error","status":500,"message":"observer model down"}]'
tc_post "$conv4" "second" >/dev/null
t_check "a failing model: observer.failed" \
    bk_wait_for 15 eval '[[ $(ta_count '"$conv4"' observer.failed) == 1 ]]'
t_check "its reason names the failure" \
    test -n "$(tc_sql "select 1 from events where conversation_id = '$conv4' and type = 'observer.failed' and action->>'reason' like '%500%'")"
t_check "the responder's turn completed anyway" test "$(ta_count "$conv4" turn.completed)" = 2
tc_req DELETE "/api/conversations/$conv4/actors/summarizer"
tc_req POST "/api/conversations/$conv4/actors" \
    '{"name":"slow","strategy":"gpt","trigger":{"type":"after_turn"},"config":{"timeout_s":1}}'
t_check "a slow observer attached (got $TC_CODE)" test "$TC_CODE" = 201
ta_script '[{"kind":"stalled","stall_s":30}]'
tc_post "$conv4" "third" >/dev/null
t_check "a timeout: observer.failed naming it" \
    bk_wait_for 15 eval '[[ -n $(tc_sql "select 1 from events where conversation_id = '"'$conv4'"' and type = '"'observer.failed'"' and action->>'"'reason'"' like '"'timed out%'"'") ]]'
t_check "the conversation is idle" tc_wait_status "$conv4" idle
tc_req DELETE "/api/conversations/$conv4/actors/slow"
tc_post "$conv4" "fourth" >/dev/null
t_check "and takes the next turn" bk_wait_for 10 eval '[[ $(ta_count '"$conv4"' turn.completed) == 4 ]]'

# ---------------------------------------------------------------- every_n_turns

conv5=$(tc_conv '{}')
tc_req POST "/api/conversations/$conv5/actors" '{"name":"second","strategy":"echo","trigger":{"type":"every_n_turns","n":2}}'
for i in 1 2 3 4; do
    tc_post "$conv5" "turn $i" >/dev/null
    bk_wait_for 10 eval '[[ $(ta_count '"$conv5"' turn.completed) == '"$i"' ]]'
done
t_check "every second turn: 2 runs after 4 turns" \
    bk_wait_for 10 eval '[[ $(ta_count '"$conv5"' observer.completed) == 2 ]]'

# ---------------------------------------------------------------- on_event_types

conv6=$(tc_conv '{"metadata":{"echo":{"fail_every":1}}}')
tc_req POST "/api/conversations/$conv6/actors" '{"name":"onfail","strategy":"echo","trigger":{"type":"on_event_types","types":"turn.failed"}}'
tc_req POST "/api/conversations/$conv6/actors" '{"name":"onperm","strategy":"echo","trigger":{"type":"on_event_types","types":"permission.requested"}}'
tc_post "$conv6" "this turn fails" >/dev/null
t_check "a failed turn" bk_wait_for 10 eval '[[ $(ta_count '"$conv6"' turn.failed) == 1 ]]'
t_check "the observer of turn.failed runs after it" \
    bk_wait_for 10 eval '[[ $(ta_count '"$conv6"' observer.completed) == 1 ]]'
t_check "the observer of permission.requested does not" \
    test "$(tc_sql "select string_agg(source->>'name', ',') from events where conversation_id = '$conv6' and type like 'observer.%'")" = onfail
t_check "the conversation is usable (not processing)" \
    test "$(tc_status "$conv6")" != processing

# ---------------------------------------------------------------- archived

conv3=$(tc_conv '{}')
tc_req DELETE "/api/conversations/$conv3"
tc_req POST "/api/conversations/$conv3/actors" "$OBS"
t_check "an archived conversation: 409 conflict (got $TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "409 conflict"

# ---------------------------------------------------------------- survives a drain

owner=$(tc_owner "$conv2")
t_check "conv2 has an owner ($owner)" test -n "$owner"
before=$(actor_names "$conv2")
t_check "bickyctl drain $owner" "$CTL" drain "$owner"
t_check "the conversation moves off $owner" \
    bk_wait_for 15 eval '[[ -n $(tc_owner '"$conv2"') && $(tc_owner '"$conv2"') != '"$owner"' ]]'
t_check "the other node lists the same actors ($before)" \
    bk_wait_for 10 eval '[[ $(actor_names '"$conv2"') == "'"$before"'" ]]'
tc_post "$conv2" "after the move" >/dev/null
t_check "notes runs on the new owner" \
    bk_wait_for 15 eval '[[ $(ta_count '"$conv2"' observer.completed) == 2 ]]'
tc_req DELETE "/api/conversations/$conv2/actors/notes"
t_check "and detaches there (got $TC_CODE)" test "$TC_CODE" = 204
t_check "bickyctl undrain $owner" "$CTL" undrain "$owner"

tc_finish conv_actors
