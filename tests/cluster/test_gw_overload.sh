#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_gw_overload.sh — the gateway's bound on calls in flight per node
# (--max-inflight, invariant 4): with BICKY_MAX_INFLIGHT=3 and n1 stopped
# (SIGSTOP), three posts to n1's conversation wait in the gateway; a fourth
# is answered 503 with Retry-After at once ("too many requests in flight")
# instead of joining the line, while n2's conversation is served as usual.
# When n1 resumes, the three waiting posts are 202; a second round shows the
# count went back to zero (three wait again, not two, and the fourth is 503).
# Token lookups (new tokens) wait for n1 like API calls but are never refused.
# Every 202 is stored. Without the bound the fourth post waits for n1 like the
# others (curl -m 20 gives up: 000). The request timeout (60 s) and the dead
# timeout (60 s) are far away. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_overload
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_MAX_INFLIGHT=3 BICKY_DEAD_AFTER_MS=60000 BICKY_REQUEST_TIMEOUT_MS=60000
tc_start gw_overload

# conv_on NODE: a new conversation that NODE owns.
conv_on() {
    local c
    for _ in $(seq 1 40); do
        c=$(tc_conv '{}')
        [[ -n $c && $(tc_owner "$c") == "$1" ]] && echo "$c" && return 0
    done
    return 1
}
a=$(conv_on n1)
b=$(conv_on n2)
t_check "a conversation on n1 and one on n2" test -n "$a" -a -n "$b"
n1=$(tc_pid n1)

# post NAME CONV: one post with its own key and content NAME; writes
# $TC_VAR/NAME.out ("status"), NAME.head and NAME.body.
post() {
    curl -s -m 20 -o "$TC_VAR/$1.body" -D "$TC_VAR/$1.head" -w '%{http_code}' \
        -H "Authorization: Bearer $TC_TOKEN" -H "$TC_JSON" -H "Idempotency-Key: ovl-$1" \
        --data-binary "{\"content\":\"$1\"}" "$BICKY_URL/api/conversations/$2/messages" \
        >"$TC_VAR/$1.out"
}
code() { cat "$TC_VAR/$1.out" 2>/dev/null; }

# round R: n1 stopped, three posts wait, the fourth is refused, n1 resumes.
round() {
    local r=$1 k pids=()
    kill -STOP "$n1"
    for k in 1 2 3; do
        post "r$r-$k" "$a" &
        pids+=($!)
    done
    t_check "round $r: three posts wait for the stopped n1" \
        bk_wait_for 10 eval '(( $(tc_metric bicky_gateway_upstream_pending) >= 3 ))'
    t_check "round $r: ... none of them answered yet" \
        test -z "$(code "r$r-1")$(code "r$r-2")$(code "r$r-3")"
    post "r$r-4" "$a"
    t_check "round $r: a fourth post to n1 is 503 (got $(code "r$r-4"))" test "$(code "r$r-4")" = 503
    t_check "round $r: ... with Retry-After, saying too many requests are in flight" \
        eval 'grep -qi "^retry-after: [1-9]" "$TC_VAR/r$r-4.head" &&
            grep -q "too many requests in flight" "$TC_VAR/r$r-4.body"'
    post "r$r-b" "$b"
    t_check "round $r: a post to n2's conversation is 202 (got $(code "r$r-b"))" \
        test "$(code "r$r-b")" = 202
    kill -CONT "$n1"
    wait "${pids[@]}"
    t_check "round $r: the three waiting posts are 202 once n1 resumes ($(code "r$r-1") $(code "r$r-2") $(code "r$r-3"))" \
        test "$(code "r$r-1")$(code "r$r-2")$(code "r$r-3")" = 202202202
    t_check "round $r: nothing is pending in the gateway afterwards" \
        bk_wait_for 10 eval '(( $(tc_metric bicky_gateway_upstream_pending) == 0 ))'
}
round 1
round 2

# Token lookups are counted but never refused: with n1 at its bound, posts
# to n2's conversation with tokens the gateway has not cached (their lookup
# goes to either node) all end 202; refused, a lookup's 503 would also close
# the connection, as once at every expiry of a busy token's cache entry.
kill -STOP "$n1"
pids=()
for k in 1 2 3; do
    post "t-$k" "$a" &
    pids+=($!)
done
bk_wait_for 10 eval '(( $(tc_metric bicky_gateway_upstream_pending) >= 3 ))'
for k in 1 2 3 4; do
    tok=$(tc_team_token dev)
    curl -s -m 30 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" -H "$TC_JSON" \
        --data-binary "{\"content\":\"f-$k\"}" "$BICKY_URL/api/conversations/$b/messages" \
        >"$TC_VAR/f-$k.out" &
    pids+=($!)
done
t_check "token lookups wait for n1 instead of being refused" \
    bk_wait_for 10 eval '(( $(tc_metric bicky_gateway_upstream_pending) >= 4 ))'
kill -CONT "$n1"
wait "${pids[@]}"
got="$(code t-1) $(code t-2) $(code t-3) $(code f-1) $(code f-2) $(code f-3) $(code f-4)"
t_check "... and every post is 202 once n1 resumes ($got)" \
    test "$got" = "202 202 202 202 202 202 202"

t_check "the refusals are counted (outcome overloaded)" \
    test "$(tc_metric 'bicky_gateway_upstream_replies_total{outcome="overloaded"}')" -ge 2
stored=$(tc_sql "select string_agg(content, ' ' order by content) from messages where role = 'user'
    and content like 'r_-_'")
t_check "every 202 is stored once, no refused post is ($stored)" \
    test "$stored" = "r1-1 r1-2 r1-3 r1-b r2-1 r2-2 r2-3 r2-b"
tc_finish gw_overload
