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

# haproxy drained each gateway already: its own drain can be short.
export BICKY_ECHO_DELAY_MS=10 MH_DRAIN_MS=1500
mht_main multihost_rolling

fo_load_start --convs 80 --workers 10 || exit 1
t_check "steady load: 300 messages acknowledged" bk_wait_for 30 mht_acks_after "$(fo_now)" 300

t_all=$(bk_now_ms)
mht_restart_node nb
mht_restart_node nc
mht_restart_gateway gwb
mht_restart_gateway gwc
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
echo "rolling restart: ${MHT_STEPS[*]}; total ${total} ms"
t_finish multihost_rolling_inside
