#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_crash.sh — ack after commit and recovery, on a real cluster with
# processes killed on purpose (the supervisor does not restart them by itself:
# BICKY_SUPERVISE=0; the test restarts them with SIGUSR1, as `up -d` does):
#  1. kill -9 of the owning node right after a 202: both acknowledged messages
#     are in Postgres; after the restart the conversation is recovered on
#     activation (the lost turn failed with reason node_lost, the pending
#     message gets its reply) and stays usable;
#  2. the owner dies and stays down: once the registry sees it dead the
#     survivor takes the conversation over the same way; it moves back after
#     the restart;
#  3. load with kills: 16 clients post with Idempotency-Key and retry on
#     503/504; n1 is killed and restarted at once, n2 killed and declared dead
#     before its restart. Every 202 is in Postgres with its content, no
#     message is stored twice, every message gets exactly one turn, nothing
#     is left pending, and seqs are gapless (checked at the end).
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_crash
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=2500 BICKY_REQUEST_TIMEOUT_MS=3000
tc_start conv_crash

# restart_missing NAME PID: once the supervisor has seen NAME (pid PID) exit,
# asks it to start what is not running (what `up -d` does). Asked earlier, it
# would start nothing: the death it has not seen yet holds the process.
restart_missing() {
    bk_wait_for 10 grep -q "$1 pid=$2 exited" "$TC_VAR/log/supervisor.log"
    kill -USR1 "$(bk_read_pid "$TC_VAR/run/supervisor.pid")"
}

# A node runs under a pid other than $2 and the registry lists it alive.
restarted() { local p; p=$(tc_pid "$1"); [[ -n $p && $p != "$2" ]] && bk_alive "$p" && tc_node_is "$1" alive; }

# Count of a conversation's messages with role $2 and status $3.
count_msgs() {
    tc_sql "select count(*) from messages where conversation_id = '$1' and role = '$2' and status = '$3'"
}

# Checks a recovered conversation: user messages u1 (its turn was lost) and u2
# (pending at the crash, answered after). $1 conv, $2 what.
check_recovered() {
    local c=$1 what=$2 m
    m=$(tc_sql "select status || ' ' || (metadata->>'reason') from messages
                where conversation_id = '$c' and role = 'assistant' order by seq limit 1")
    t_check "$what: the lost turn's reply is 'error' with reason node_lost ($m)" \
        test "$m" = "error node_lost"
    t_check "$what: message.failed and turn.failed {reason: node_lost} stored" \
        test "$(tc_sql "select string_agg(type || ':' || coalesce(action->>'reason', '-'), ' ' order by seq)
                        from events where conversation_id = '$c' and source->>'kind' = 'system'")" \
        = "message.failed:- turn.failed:node_lost"
    t_check "$what: the pending message got its reply" \
        test "$(tc_sql "select status || ':' || content from messages where conversation_id = '$c'
                        and role = 'assistant' order by seq desc limit 1")" = "completed:echo: second message"
    t_check "$what: the conversation is usable: one more turn completes" \
        eval "[[ -n \$(tc_post $c 'after recovery') ]] && bk_wait_for 10 eval '[[ \$(count_msgs $c assistant completed) == 2 ]]'"
    t_check "$what: ends idle" tc_wait_status "$c" idle 5
}

# ---------------------------------------------------------------- 1. kill -9 right after a 202

# One word a second: the first turn (5 words) is still running when the kill
# comes, however slow the machine is between the posts and the kill.
conv=$(tc_conv '{"title":"crash","metadata":{"echo":{"delay_ms":1000}}}')
owner=$(tc_owner "$conv")
old=$(tc_pid "$owner")
u1=$(tc_post "$conv" "first message of five")
u2=$(tc_post "$conv" "second message")
kill -KILL "$old"
t_check "two posts were 202 before kill -9 of the owner $owner" test -n "$u1" -a -n "$u2"
t_check "both acknowledged messages are in Postgres right after the kill" \
    test "$(tc_sql "select string_agg(status, ',' order by seq) from messages
                    where id in ('$u1', '$u2')")" = "completed,pending"
t_check "the conversation was left mid-turn (processing, reply streaming)" \
    test "$(tc_status "$conv") $(count_msgs "$conv" assistant streaming)" = "processing 1"
restart_missing "$owner" "$old"
t_check "$owner restarted and alive again" bk_wait_for 10 restarted "$owner" "$old"
t_check "the ring still gives the conversation to $owner" test "$(tc_owner "$conv")" = "$owner"
# Any read of the conversation activates it on its owner.
t_check "GET messages answers 200 after the restart" \
    bk_wait_for 10 eval 'tc_req GET /api/conversations/'"$conv"'/messages; [[ $TC_CODE == 200 ]]'
t_check "the pending message is answered within 10 s" \
    bk_wait_for 10 eval "[[ \$(count_msgs $conv assistant completed) == 1 ]]"
check_recovered "$conv" "restart in place"
t_check "$owner logged the recovery" grep -q 'recovering conversation: lost turns=1 pending messages=1' \
    "$TC_VAR/log/$owner.log"

# ---------------------------------------------------------------- 2. the owner stays down

conv2=$(tc_conv '{"title":"takeover","metadata":{"echo":{"delay_ms":1000}}}')
owner2=$(tc_owner "$conv2")
other=n1
[[ $owner2 == n1 ]] && other=n2
old=$(tc_pid "$owner2")
u1=$(tc_post "$conv2" "first message of five")
u2=$(tc_post "$conv2" "second message")
kill -KILL "$old"
t_check "two posts were 202 before kill -9 of $owner2" test -n "$u1" -a -n "$u2"
t_check "the registry declares $owner2 dead" bk_wait_for 8 tc_node_is "$owner2" dead
t_check "the conversation moves to $other" bk_wait_for 3 eval "[[ \$(tc_owner $conv2) == $other ]]"
t_check "GET messages answers 200 from the survivor" \
    bk_wait_for 5 eval 'tc_req GET /api/conversations/'"$conv2"'/messages; [[ $TC_CODE == 200 ]]'
t_check "the survivor answers the pending message" \
    bk_wait_for 10 eval "[[ \$(count_msgs $conv2 assistant completed) == 1 ]]"
t_check "the recovery names the survivor ($other) as source" \
    test "$(tc_sql "select distinct source->>'id' from events where conversation_id = '$conv2'
                    and source->>'kind' = 'system'")" = "$other"
check_recovered "$conv2" "takeover"
restart_missing "$owner2" "$old"
t_check "$owner2 back: alive, conversation owned by it again" \
    bk_wait_for 10 eval "restarted $owner2 $old && [[ \$(tc_owner $conv2) == $owner2 ]]"
t_check "after moving back, a post on it is answered" \
    eval "bk_wait_for 5 eval '[[ -n \$(tc_post $conv2 back) ]]' && bk_wait_for 10 eval '[[ \$(count_msgs $conv2 assistant completed) == 3 ]]'"

# ---------------------------------------------------------------- 3. load with kills

NW=16
NM=20
load=()
for w in $(seq 1 $NW); do
    load+=("$(tc_conv "{\"title\":\"load $w\",\"metadata\":{\"echo\":{\"delay_ms\":20}}}")")
done

# worker W CONV: posts NM messages with keys, retrying 503/504/409/000;
# writes "key message_id" per 202 to acks.W and the failures to fails.W.
worker() {
    local w=$1 c=$2 i try code key body
    for i in $(seq 1 $NM); do
        key="w$w-m$i"
        body="{\"content\":\"load $w $i\"}"
        for try in $(seq 1 40); do
            code=$(curl -s -m 6 -o "$TC_VAR/wb.$w" -w '%{http_code}' -X POST \
                -H "Authorization: Bearer $BICKY_TOKEN" -H "$TC_JSON" -H "Idempotency-Key: $key" \
                --data-binary "$body" "$BICKY_URL/api/conversations/$c/messages" 2>/dev/null)
            case $code in
                202)
                    echo "$key $(jq -r .message.id "$TC_VAR/wb.$w")" >>"$TC_VAR/acks.$w"
                    break
                    ;;
                503 | 504 | 409 | 000 | 502) sleep 0.2 ;;
                *)
                    echo "$key $code $(cat "$TC_VAR/wb.$w")" >>"$TC_VAR/fails.$w"
                    break
                    ;;
            esac
        done
        ((try < 40)) || echo "$key gave up" >>"$TC_VAR/fails.$w"
        sleep 0.05
    done
}

pids=()
for w in $(seq 1 $NW); do
    worker "$w" "${load[w - 1]}" &
    pids+=($!)
done
sleep 1
old1=$(tc_pid n1)
kill -KILL "$old1"
restart_missing n1 "$old1"
sleep 1.5
old2=$(tc_pid n2)
kill -KILL "$old2"
bk_wait_for 8 tc_node_is n2 dead
t_check "under load: n1 killed and restarted, n2 killed and declared dead" tc_node_is n2 dead
restart_missing n2 "$old2"
for p in "${pids[@]}"; do
    wait "$p"
done
t_check "n1 and n2 alive after the load" eval 'restarted n1 "$old1" && restarted n2 "$old2"'
fails=$(cat "$TC_VAR"/fails.* 2>/dev/null)
t_check "every post was eventually acknowledged (no other status, no give-up)" test -z "$fails"
[[ -z $fails ]] || head -n 5 <<<"$fails"
cat "$TC_VAR"/acks.* >"$TC_VAR/acks"
t_check "$((NW * NM)) acknowledgements" test "$(wc -l <"$TC_VAR/acks")" = $((NW * NM))
ids=$(awk '{ printf "%s'\''%s'\''", (NR > 1 ? "," : ""), $2 }' "$TC_VAR/acks")
t_check "every acknowledged message is in Postgres with its content (ack after commit)" \
    test "$(tc_sql "select count(*) from messages where id in ($ids) and role = 'user'
                    and content like 'load %'")" = $((NW * NM))
t_check "no message stored twice (retries were idempotent)" \
    test "$(tc_sql "select count(*) from messages where role = 'user' and content like 'load %'")" \
    = $((NW * NM))
# Reads activate the conversations (recovery of those left mid-turn).
settled() {
    local c
    for c in "${load[@]}"; do
        curl -s -o /dev/null -m 5 -H "Authorization: Bearer $BICKY_TOKEN" \
            "$BICKY_URL/api/conversations/$c" 2>/dev/null
    done
    [[ $(tc_sql "select count(*) from conversations where title like 'load %'
                 and status in ('idle', 'error')") == "$NW" &&
        $(tc_sql "select count(*) from messages where status in ('pending', 'streaming')") == 0 ]]
}
t_check "all conversations settle: none processing/queued, nothing pending or streaming" \
    bk_wait_for 30 settled
t_check "every user message started exactly one turn" \
    test "$(tc_sql "select count(*) from messages u where u.role = 'user' and u.content like 'load %'
                    and (select count(*) from events e where e.conversation_id = u.conversation_id
                         and e.type = 'turn.started' and e.action->>'user_message_id' = u.id::text) <> 1")" = 0
t_check "every turn ended (completed or failed node_lost)" \
    test "$(tc_sql "select count(*) from messages where role = 'assistant' and conversation_id in
                    (select id from conversations where title like 'load %')
                    and not (status = 'completed' or (status = 'error' and metadata->>'reason' = 'node_lost'))")" = 0
lost=$(tc_sql "select count(*) from events where type = 'turn.failed' and action->>'reason' = 'node_lost'")
echo "  (turns lost to the kills and recovered: $lost)"
t_check "global event ids only grow with each conversation's seq (checked with gaplessness)" tc_gapless

tc_finish conv_crash
