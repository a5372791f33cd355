#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_gw_node_lost.sh — a node restarted before the registry sees it dead
# (found by tests/chaos/run): n1 is stopped (SIGSTOP) with a post to one of
# its conversations in flight, then killed (-9); the supervisor restarts it
# under the same id long before the registry would declare it dead
# (BICKY_DEAD_AFTER_MS=20000), so no ring changes. The gateway's connection
# to the old process dropped, so the call can get no answer: it is answered
# 503 with Retry-After ("the connection to the node was lost") as soon as the
# connection drops, not at the request timeout (BICKY_REQUEST_TIMEOUT_MS=30000,
# which would be a 504). The retry with the same Idempotency-Key is 202 from
# the restarted n1, and the message is stored once. Env: see
# tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_node_lost
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_DEAD_AFTER_MS=20000 BICKY_REQUEST_TIMEOUT_MS=30000
tc_start gw_node_lost

conv=""
for _ in $(seq 1 40); do
    c=$(tc_conv '{}')
    [[ -n $c && $(tc_owner "$c") == n1 ]] && conv=$c && break
done
t_check "a conversation on n1" test -n "$conv"
epoch=$(curl -s "$BICKY_URL/ready" | jq -r .ring_epoch)
n1=$(tc_pid n1)
key="node-lost-$RANDOM$RANDOM"

# post: one post with the key; writes "status seconds" and the body.
post() {
    curl -s -m 60 -o "$TC_VAR/post.body" -D "$TC_VAR/post.head" -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $TC_TOKEN" -H "$TC_JSON" -H "Idempotency-Key: $key" \
        --data-binary '{"content":"sent while n1 stops"}' \
        "$BICKY_URL/api/conversations/$conv/messages" >"$TC_VAR/post.out"
}

kill -STOP "$n1"
post &
POST=$!
t_check "the post waits for the stopped n1 (a call pending in the gateway)" \
    bk_wait_for 10 eval '(( $(tc_metric bicky_gateway_upstream_pending) >= 1 ))'
t_kill=$(bk_now_ms)
kill -KILL "$n1"
wait "$POST"
took=$(($(bk_now_ms) - t_kill))
read -r code _ <"$TC_VAR/post.out"
echo "answer: $code after $took ms: $(cat "$TC_VAR/post.body")"
t_check "it is answered 503 once the connection drops (got $code)" test "$code" = 503
t_check "... well before the request timeout (${took} ms)" test "$took" -lt 15000
t_check "... saying the connection was lost, with Retry-After" \
    eval 'grep -q "connection to the node was lost" "$TC_VAR/post.body" &&
        grep -qi "^retry-after:" "$TC_VAR/post.head"'
t_check "n1 is restarted under its id, no ring change (epoch $epoch)" \
    bk_wait_for 30 eval '[[ -n $(tc_pid n1) && $(tc_pid n1) != '"$n1"' ]] &&
        [[ $(curl -s "$BICKY_URL/ready" | jq -r .ring_epoch) == '"$epoch"' ]] && tc_node_is n1 alive'
t_check "the retry with the same key is 202" \
    bk_wait_for 30 eval 'post && [[ $(cut -d" " -f1 "$TC_VAR/post.out") == 202 ]]'
t_check "the message is stored once" \
    test "$(tc_sql "select count(*) from messages where conversation_id = '$conv' and content = 'sent while n1 stops'")" = 1
tc_finish gw_node_lost
