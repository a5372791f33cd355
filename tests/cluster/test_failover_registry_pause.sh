#!/usr/bin/env bash
# test_failover_registry_pause.sh — the active registry is paused (SIGSTOP) for
# longer than the nodes' dead timeout, then resumed, under steady load. While it
# sleeps the nodes' heartbeats wait unread in its socket (and the nodes try the
# standby, which answers "standby"); when it wakes it must not count that time
# as the nodes' silence. It did: it declared every node dead at once, published
# a ring without nodes and the clients got 503s (found by tests/chaos/run).
# Now: no node is declared dead, the ring epoch does not move, the registry
# logs the pause, and the client sees no error at all. Cluster from
# deploy/local/up with BICKY_REGISTRIES=2 (active + standby, supervised).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_registry_pause
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

export BICKY_NODES=3 BICKY_REGISTRIES=2 BICKY_DEAD_AFTER_MS=2000 BICKY_ECHO_DELAY_MS=5
export BICKY_LOG_LEVEL=notice
tc_start failover_registry_pause
IFS=, read -r -a REGS <<<"$BICKY_REGISTRY"

reg_role() {
    "$CTL" --registry "$1" --json status 2>/dev/null |
        jq -r --arg ep "$1" '.registries[] | select(.endpoint == $ep) | .role // "unreachable"'
}

# Both registries start at once and either may take the lock: the one that
# did (registry for REGS[0], registry2 for REGS[1]) is the one paused.
active_name() {
    local i
    for i in "${!REGS[@]}"; do
        if [[ $(reg_role "${REGS[$i]}") == active ]]; then
            ACTIVE=registry$((i + 1))
            ACTIVE=${ACTIVE%1}
            return 0
        fi
    done
    return 1
}
ACTIVE=
t_check "a registry is the active one" bk_wait_for 10 active_name
active_name
t_check "n1 n2 n3 alive" bk_wait_for 10 eval 'fo_node_is n1 alive && fo_node_is n2 alive && fo_node_is n3 alive'
fo_load_start --convs 60 --workers 6 || exit 1
sleep 2

epoch_before=$(tc_sql "select epoch from ring_state")
pid=$(tc_pid "${ACTIVE:-registry}")
t_stop=$(fo_now)
kill -STOP "$pid"
# Longer than --dead-after-ms (2 s), shorter than the lock session's idle kill (5 s):
# the paused registry is still the active one when it wakes.
sleep 3.5
kill -CONT "$pid"
t_check "the woken registry (${ACTIVE:-none}) logged its pause" \
    bk_wait_for 5 grep -q 'did not run for' "$TC_VAR/log/${ACTIVE:-registry}.log"
sleep 3 # past the dead timeout again: a node it did not hear from would be dead now
for n in n1 n2 n3; do
    t_check "$n is alive" fo_node_is "$n" alive
done
t_check "no node was declared dead" bash -c \
    "! grep -q 'node dead' '$TC_VAR/log/registry.log' '$TC_VAR/log/registry2.log'"
epoch_after=$(tc_sql "select epoch from ring_state")
t_check "the ring did not change (epoch $epoch_before -> $epoch_after)" test "$epoch_before" = "$epoch_after"
fo_load_stop
res=$(fo_analyze --event "$t_stop")
echo "registry paused 3.5 s: load $(jq -c '{attempts, acked, statuses, errors_after_event}' <<<"$res")"
t_check "no error at all across the pause ($(jq -c .statuses <<<"$res"))" \
    test "$(jq -r '[.statuses | to_entries[] | select(.key != "202") | .value] | add // 0' <<<"$res")" = 0
t_check "every acknowledged message is stored" fo_acked_stored
tc_finish failover_registry_pause
