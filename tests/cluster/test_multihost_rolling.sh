#!/usr/bin/env bash
# test_multihost_rolling.sh — a rolling restart of the multi-host cluster under
# steady load, one process at a time, through haproxy only:
#  - each node (nb, then nc): `bickyctl drain` (its actors finish and move),
#    SIGTERM (exit 0), start again (it comes back draining), `bickyctl
#    undrain`, it owns conversations again;
#  - each gateway (gwb, then gwc): haproxy's runtime API `set server … state
#    drain` until no request is open on it, SIGTERM (it drains too: /ready
#    503 for --drain-ms, then exit 0), start again, `state ready`, UP;
#  - the client saw a 202 for every attempt: no 5xx, no 503, no connection
#    error; no turn was lost; every acknowledged message is in Postgres, none
#    twice; seqs gapless. Prints how long each step and the whole restart took.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=multihost_rolling
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=deploy/multihost/lib.sh
source "$SRC/deploy/multihost/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"
# shellcheck source=tests/lib/multihost.sh
source "$SRC/tests/lib/multihost.sh"

export BICKY_ECHO_DELAY_MS=10
mht_main multihost_rolling

claims() { tc_sql "select count(*) from conversation_owners where node_id = '$1'"; }
acks_after() { (($(fo_acks_since "$1") >= $2)); }
gw_is() { [[ $(mh_server_state "$1") == "$2" ]]; }
# open_on GW: requests haproxy has open on GW right now (scur).
open_on() { mh_haproxy "show stat" | awk -F, -v s="$1" '$1 == "gateways" && $2 == s { print $5 }'; }

fo_load_start --convs 80 --workers 10 || exit 1
t_check "steady load: 300 messages acknowledged" bk_wait_for 30 acks_after "$(fo_now)" 300

steps=()
t_all=$(bk_now_ms)
restart_node() {
    local n=$1 t0 st
    t0=$(bk_now_ms)
    t_check "bickyctl drain $n" "$CTL" drain "$n"
    t_check "$n holds no conversation within 15 s" bk_wait_for 15 eval "[[ \$(claims $n) == 0 ]]"
    st=$(mh_stop "$n" 10)
    t_check "$n stopped: $st" test "$st" = "status 0"
    mh_start "$n"
    t_check "$n is back, still draining" bk_wait_for 15 mh_node_is "$n" draining
    t_check "bickyctl undrain $n" "$CTL" undrain "$n"
    t_check "$n is alive and owns conversations again" \
        bk_wait_for 15 eval "mh_node_is $n alive && [[ \$(claims $n) -gt 0 ]]"
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 15 acks_after "$(fo_now)" 100
    steps+=("$n:$(($(bk_now_ms) - t0))ms")
}
restart_gateway() {
    local g=$1 t0 st
    t0=$(bk_now_ms)
    mh_haproxy "set server gateways/$g state drain" >/dev/null
    t_check "haproxy drains $g" bk_wait_for 5 gw_is "$g" DRAIN
    t_check "no request open on $g within 10 s" bk_wait_for 10 eval "[[ \$(open_on $g) == 0 ]]"
    st=$(mh_stop "$g" 15)
    t_check "$g stopped after its own drain: $st" test "$st" = "status 0"
    mh_start "$g"
    mh_haproxy "set server gateways/$g state ready" >/dev/null
    t_check "haproxy sees $g UP again" bk_wait_for 15 gw_is "$g" UP
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 15 acks_after "$(fo_now)" 100
    steps+=("$g:$(($(bk_now_ms) - t0))ms")
}
restart_node nb
restart_node nc
restart_gateway gwb
restart_gateway gwc
total=$(($(bk_now_ms) - t_all))
t_check "gwb and gwc both took requests after their restart" \
    bash -c "grep -q 'POST /api' <(tail -n 200 '$MH_VAR/log/haproxy.log' | grep gateways/gwb) && grep -q 'POST /api' <(tail -n 200 '$MH_VAR/log/haproxy.log' | grep gateways/gwc)"
fo_load_stop
res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "every attempt got 202: no 5xx, no 503, no connection error ($(jq -c .statuses <<<"$res"))" \
    test "$(jq -r '[.statuses | to_entries[] | select(.key != "202") | .value] | add // 0' <<<"$res")" = 0
lost=$(tc_sql "select count(*) from events where type = 'turn.failed' and action->>'reason' = 'node_lost'")
t_check "no turn lost ($lost)" test "$lost" = 0
t_check "every acknowledged message is stored ($(jq -r .acked <<<"$res"))" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
t_check "gapless seqs in Postgres" tc_gapless
echo "rolling restart: ${steps[*]}; total ${total} ms"
t_finish multihost_rolling_inside
