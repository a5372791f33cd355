#!/usr/bin/env bash
# test_failover_drain.sh — bickyctl drain under steady load: 3 nodes, a client
# posting to 150 conversations whose turns stream for ~100 ms. Draining n2 takes
# it off the ring; its idle actors are released at once, those with a turn
# running finish it there first; requests meanwhile are answered MOVED and retried
# by the gateway on the new owner, whose claim waits for the release. The client
# sees no 5xx at all, n2 ends with no actors, and the drain duration (drain
# command → n2 holds no actor) is printed. Then undrain n2 (conversations move
# back, again without 5xx) and drain n3. At the end: every acknowledged message
# stored once, gapless seqs.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_drain
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

# FO_ECHO_DELAY_MS: ms per streamed word (turns of ~8 words); longer turns, longer drains.
export BICKY_NODES=3 BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=3000
export BICKY_ECHO_DELAY_MS=${FO_ECHO_DELAY_MS:-12}
export BICKY_LOG_LEVEL=notice
tc_start failover_drain
fo_load_start --convs 150 --workers 12 || exit 1
sleep 3

# no_claims NODE: the node holds no ownership claim (every actor of it was released).
no_claims() { [[ $(tc_sql "select count(*) from conversation_owners where node_id = '$1'") == 0 ]]; }

durations=()
drain() {
    local node=$1 owned t0 ms done_line before
    owned=$(tc_sql "select count(*) from conversation_owners where node_id = '$node'")
    before=$(grep -c 'hand-off done' "$TC_VAR/log/$node.log")
    t0=$(bk_now_ms)
    t_check "bickyctl drain $node" "$CTL" drain "$node"
    t_check "$node holds no claim within 10 s (held $owned)" bk_wait_for 10 no_claims "$node"
    ms=$(($(bk_now_ms) - t0))
    bk_wait_for 5 eval "(( \$(grep -c 'hand-off done' '$TC_VAR/log/$node.log') > $before ))"
    done_line=$(grep 'hand-off done' "$TC_VAR/log/$node.log" | tail -n 1)
    echo "drain $node: $owned conversations released in ${ms} ms (node: ${done_line##*hand-off done: })"
    durations+=("$ms")
    t_check "$node reports 0 actors to the registry" bk_wait_for 5 eval "[[ \$(fo_node_actors $node) == 0 ]]"
    t_check "$node is draining" fo_node_is "$node" draining
}

drain n2
sleep 2
t_check "bickyctl undrain n2" "$CTL" undrain n2
t_check "n2 holds conversations again" bk_wait_for 10 eval "! no_claims n2"
sleep 2
drain n3
sleep 2

fo_load_stop
res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "no 5xx and no error at all during drains and undrain ($(jq -c .statuses <<<"$res"))" \
    test "$(jq -r '[.statuses | to_entries[] | select(.key != "202") | .value] | add // 0' <<<"$res")" = 0
lost=$(tc_sql "select count(*) from events where type = 'turn.failed' and action->>'reason' = 'node_lost'")
completed=$(tc_sql "select count(*) from events where type = 'turn.completed'")
t_check "every turn running on a drained node finished there: no turn lost ($lost lost, $completed completed)" \
    test "$lost" = 0
t_check "every acknowledged message is stored ($(jq -r .acked <<<"$res"))" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
echo "drain durations (ms): ${durations[*]}"
tc_finish failover_drain
