#!/usr/bin/env bash
# test_failover_join.sh — a 4th node joins a 3-node cluster under steady load
# (200 conversations, every one active): about a quarter of the conversations
# move to it (claims in conversation_owners, counted before and after), the
# others stay where they were, and every conversation keeps working: each gets
# acknowledged messages after the join, and the client sees no error. Prints the
# ring balance (conversations per node with 3 and with 4 nodes) and the share
# that moved. The 4th node runs outside the supervisor and is stopped (exit 0)
# before the cluster goes down.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_join
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

CONVS=200
export BICKY_NODES=3 BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=3000 BICKY_ECHO_DELAY_MS=10
export BICKY_LOG_LEVEL=notice
tc_start failover_join
fo_load_start --convs "$CONVS" --workers 12 || exit 1
sleep 3
t_check "every active conversation is claimed once" \
    bk_wait_for 10 eval "[[ \$(tc_sql 'select count(*) from conversation_owners') == $CONVS ]]"
tc_sql "create table fo_before as select conversation_id, node_id from conversation_owners" >/dev/null
echo "3 nodes: $(fo_owner_counts | tr '\n' ' ')"

t_join=$(fo_now)
fo_start_node n4 4
t_check "n4 is alive" bk_wait_for 10 fo_node_is n4 alive
sleep 3
t_check "every conversation is claimed once" \
    bk_wait_for 10 eval "[[ \$(tc_sql 'select count(*) from conversation_owners') == $CONVS ]]"
echo "4 nodes: $(fo_owner_counts | tr '\n' ' ')"
to_n4=$(tc_sql "select count(*) from conversation_owners where node_id = 'n4'")
moved=$(tc_sql "select count(*) from conversation_owners o join fo_before b using (conversation_id)
    where o.node_id <> b.node_id")
elsewhere=$(tc_sql "select count(*) from conversation_owners o join fo_before b using (conversation_id)
    where o.node_id <> b.node_id and o.node_id <> 'n4'")
pct=$((100 * moved / CONVS))
echo "join: $moved of $CONVS conversations moved (${pct}%), $to_n4 to n4, $elsewhere elsewhere"
t_check "about a quarter of the conversations moved to n4 (${pct}%)" test "$pct" -ge 12 -a "$pct" -le 40
t_check "only conversations going to n4 moved ($elsewhere elsewhere)" test "$elsewhere" = 0
sleep 2
fo_load_stop

res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "no error at all while n4 joined ($(jq -c .statuses <<<"$res"))" \
    test "$(jq -r '[.statuses | to_entries[] | select(.key != "202") | .value] | add // 0' <<<"$res")" = 0
late=$(jq -r --argjson t "$t_join" 'select(.s == 202 and .t0 > $t + 4) | .c' "$FO_OUT/attempts.jsonl" | sort -u | wc -l)
t_check "every conversation got acknowledged messages after the join ($late of $CONVS)" \
    test "$late" = "$CONVS"
t_check "every acknowledged message is stored ($(jq -r .acked <<<"$res"))" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
t_check "n4 exits 0 on SIGTERM" fo_stop_extra
tc_sql "drop table fo_before" >/dev/null
tc_finish failover_join
