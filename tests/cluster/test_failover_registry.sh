#!/usr/bin/env bash
# test_failover_registry.sh — the active registry dies with a standby running:
# a second registry stands by on the same database (its answers are "standby"),
# the 3 nodes and the gateway follow the list "active,standby". Under steady
# load, kill -9 the active one: the standby takes the advisory lock and serves,
# nodes and gateway move to it, every node stays registered and alive (none is
# declared dead), and the client sees no error at all. The nodes and the gateway
# of this test run outside the supervisor (deploy/local/up passes one registry
# endpoint), on the ports up gives them; all exit 0 on SIGTERM at the end.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_registry
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

export BICKY_NODES=3 BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=3000 BICKY_ECHO_DELAY_MS=5
export BICKY_LOG_LEVEL=notice
tc_start failover_registry
R1=$BICKY_REGISTRY

# reg_role ENDPOINT: active / standby as bickyctl status reports it.
reg_role() {
    "$CTL" --registry "$1" --json status 2>/dev/null |
        jq -r --arg ep "$1" '.registries[] | select(.endpoint == $ep) | .role // "unreachable"'
}

R2=tcp://127.0.0.1:$((BICKY_ZMQ_BASE + 2))
fo_start_registry registry2 "$R2" "tcp://127.0.0.1:$((BICKY_ZMQ_BASE + 3))"
FO_REGISTRY="$R1,$R2"
t_check "the second registry stands by" bk_wait_for 10 eval "[[ \$(reg_role $R2) == standby ]]"

# Nodes and gateway again, following both registries; n3 and the gateway list the
# standby first: its "standby" answer sends them on to the active one at once.
for n in gateway n1 n2 n3; do
    fo_stop_supervised "$n"
done
t0=$(bk_now_ms)
FO_REGISTRY="$R1,$R2" fo_start_node n1 1
FO_REGISTRY="$R1,$R2" fo_start_node n2 2
FO_REGISTRY="$R2,$R1" fo_start_node n3 3
FO_REGISTRY="$R2,$R1" fo_start_gateway
t_check "gateway ready, nodes following both registries" bk_wait_for 15 bk_http_ok "$BICKY_URL/ready"
t_check "n1 n2 n3 alive" bk_wait_for 10 eval 'fo_node_is n1 alive && fo_node_is n2 alive && fo_node_is n3 alive'
ms=$(($(bk_now_ms) - t0))
t_check "n3 and the gateway skipped the standby at once (all up in $ms ms)" bash -c \
    "grep -q 'is a standby; trying the next one' '$TC_VAR/log/n3.log' && grep -q 'is a standby; trying the next one' '$TC_VAR/log/gateway.log'"
t_check "n3 registered in less than the 1 s silence timeout" bash -c \
    "! grep -q 'registry silent' '$TC_VAR/log/n3.log'"
fo_load_start --convs 120 --workers 12 || exit 1
sleep 3

epoch_before=$(tc_sql "select epoch from ring_state")
t_kill=$(fo_now)
kill -KILL "$(tc_pid registry)"
t_check "the standby took over (bickyctl status via $R2)" \
    bk_wait_for 10 eval "[[ \$(reg_role $R2) == active ]]"
took=$(awk -v a="$t_kill" -v b="$(fo_now)" 'BEGIN { printf "%d", (b - a) * 1000 }')
# Longer than the dead timeout: a node the new registry did not hear from would be dead.
sleep 5
for n in n1 n2 n3; do
    t_check "$n is still alive for the new registry" fo_node_is "$n" alive
done
t_check "the new registry declared no node dead" \
    bash -c "! grep -q 'node dead' '$TC_VAR/log/registry2.log'"
t_check "nodes and gateway moved to the standby" bash -c \
    "grep -q 'registered with registry endpoint=$R2' '$TC_VAR/log/n1.log' && grep -q 'registry answers endpoint=$R2' '$TC_VAR/log/gateway.log'"
epoch_after=$(tc_sql "select epoch from ring_state")
acks=$(fo_acks_since "$(awk -v n="$(fo_now)" 'BEGIN { printf "%.3f", n - 2 }')")
t_check "service continues: $acks acknowledged in the last 2 s" test "$acks" -gt 50
fo_load_stop
res=$(fo_analyze --event "$t_kill")
echo "registry failover: standby active after ${took} ms, epoch $epoch_before -> $epoch_after; load $(jq -c '{attempts, acked, statuses, bad, errors_after_event}' <<<"$res")"
t_check "no error at all across the registry failover ($(jq -c .statuses <<<"$res"))" \
    test "$(jq -r '[.statuses | to_entries[] | select(.key != "202") | .value] | add // 0' <<<"$res")" = 0
t_check "every acknowledged message is stored" fo_acked_stored
t_check "every process of this test exits 0 on SIGTERM" fo_stop_extra
tc_finish failover_registry
