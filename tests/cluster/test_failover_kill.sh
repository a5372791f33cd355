#!/usr/bin/env bash
# test_failover_kill.sh — kill -9 a node under steady load, five times: 3 nodes
# (BICKY_SUPERVISE=0 so a killed node stays dead until we start it again, dead
# after 2 s of silence), a client posting to 150 conversations. After each kill
# the killed node's conversations answer again within 3 s, and the client sees
# only 202 and 503 with Retry-After. At the end every acknowledged message is in
# Postgres, none twice, seqs are gapless. Prints the failover times (median and
# max of 5 kills) and how many conversations each death moved.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_kill
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

KILLS=${FO_KILLS:-5}
export BICKY_NODES=3 BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=2000 BICKY_ECHO_DELAY_MS=5
export BICKY_LOG_LEVEL=notice
tc_start failover_kill
fo_load_start --convs 150 --workers 12 --max-retry-wait 0.1 || exit 1
sleep 2

times=()
for ((k = 1; k <= KILLS; k++)); do
    victim=n$(((k - 1) % 3 + 1))
    pid=$(tc_pid "$victim")
    owned=$(tc_sql "select count(*) from conversation_owners where node_id = '$victim'")
    t_kill=$(fo_now)
    kill -KILL "$pid"
    t_check "kill $k: $victim (pid $pid, $owned conversations) is dead for the registry" \
        bk_wait_for 5 fo_node_is "$victim" dead
    sleep 2.5
    t_end=$(fo_now)
    res=$(fo_analyze --event "$t_kill" --until "$t_end")
    rec=$(jq -r '.recovery_ms // "none"' <<<"$res")
    echo "kill $k: $victim owned=$owned $(jq -c '{affected, recovery_ms, errors_after_event, first_error_ms, last_error_ms}' <<<"$res")"
    t_check "kill $k: its conversations answer again within 3 s (${rec} ms)" \
        test "$rec" != none -a "${rec/none/99999}" -lt 3000
    times+=("$rec")
    moved=$(tc_sql "select count(*) from conversation_owners where node_id = '$victim'")
    t_check "kill $k: every conversation of $victim was taken over ($moved left)" test "$moved" = 0
    # Back to 3 nodes: up -d starts what the supervisor holds.
    "$SRC/deploy/local/up" -d >>"$TC_VAR/up.log" 2>&1
    t_check "kill $k: $victim alive again" bk_wait_for 15 fo_node_is "$victim" alive
    sleep 2
done

fo_load_stop
res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "the client saw only 202 and 503 with Retry-After ($(jq -c .bad_sample <<<"$res"))" \
    test "$(jq -r .bad <<<"$res")" = 0
t_check "acknowledged messages: $(jq -r .acked <<<"$res")" test "$(jq -r .acked <<<"$res")" -gt 1000
t_check "every acknowledged message is stored" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
t_check "fenced takeovers left no conversation stuck 'processing' for long" \
    bk_wait_for 10 eval "[[ \$(tc_sql \"select count(*) from conversations where status = 'processing' and updated_at < now() - interval '5 seconds'\") == 0 ]]"
echo "failover times (ms): ${times[*]}; median $(fo_median "${times[@]}"), max $(fo_max "${times[@]}")"
tc_finish failover_kill
