#!/usr/bin/env bash
# test_failover_split.sh — split brain, for real: under steady load, one of 3 nodes
# is paused with SIGSTOP past the dead timeout (the others take its conversations
# over and keep writing them), then resumed with SIGCONT: it wakes up with its old
# ring and believes it still owns those conversations, with actors, queued
# requests and turns in flight. Its writes must fail on the ownership fence (the
# node logs "fence: ... held by another node"), its actors are dropped, it
# re-registers and the conversations move back. Afterwards every conversation's
# seqs are gapless without duplicates, every acknowledged message is stored (once),
# and the client saw only 202 and 503 with Retry-After.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=failover_split
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"

# Turns of ~8 words x 15 ms: the paused node has turns streaming when it stops.
export BICKY_NODES=3 BICKY_SUPERVISE=0 BICKY_DEAD_AFTER_MS=2000 BICKY_ECHO_DELAY_MS=15
export BICKY_LOG_LEVEL=notice
tc_start failover_split
fo_load_start --convs 120 --workers 12 --max-retry-wait 0.2 || exit 1
sleep 3

for round in 1 2; do
    victim=n$((round + 1))
    pid=$(tc_pid "$victim")
    owned=$(tc_sql "select count(*) from conversation_owners where node_id = '$victim'")
    fenced_before=$(grep -c 'fence: conversation=' "$TC_VAR/log/$victim.log")
    t_stop=$(fo_now)
    kill -STOP "$pid"
    t_check "round $round: paused $victim (pid $pid, $owned conversations) is dead for the registry" \
        bk_wait_for 6 fo_node_is "$victim" dead
    # The others take the paused node's conversations over while clients keep writing.
    sleep 2
    t_check "round $round: the others took its conversations over (claims: $(fo_owner_counts | tr '\n' ' '))" \
        test "$(tc_sql "select count(*) from conversation_owners where node_id = '$victim'")" -lt "$owned"
    kill -CONT "$pid"
    t_cont=$(fo_now)
    t_check "round $round: $victim is alive again after SIGCONT" bk_wait_for 10 fo_node_is "$victim" alive
    sleep 3
    fenced=$(($(grep -c 'fence: conversation=' "$TC_VAR/log/$victim.log") - fenced_before))
    refused=$(grep -c 'claim refused' "$TC_VAR/log/$victim.log")
    echo "round $round: $victim woke up: $fenced writes refused by the fence, $refused claims refused, claims now: $(fo_owner_counts | tr '\n' ' ')"
    t_check "round $round: the woken node's writes were refused by the fence ($fenced)" test "$fenced" -gt 0
    res=$(fo_analyze --event "$t_stop" --until "$(fo_now)")
    echo "round $round: $(jq -c '{affected, recovery_ms, errors_after_event}' <<<"$res") (stopped for $(awk -v a="$t_stop" -v b="$t_cont" 'BEGIN { printf "%.1f", b - a }') s)"
done

fo_load_stop
res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "the client saw only 202 and 503 with Retry-After ($(jq -c .bad_sample <<<"$res"))" \
    test "$(jq -r .bad <<<"$res")" = 0
t_check "every acknowledged message is stored ($(jq -r .acked <<<"$res"))" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
t_check "every conversation is gapless, without duplicate seqs" tc_gapless
t_check "no turn is left streaming for long" bk_wait_for 10 eval \
    "[[ \$(tc_sql \"select count(*) from messages where status = 'streaming' and updated_at < now() - interval '5 seconds'\") == 0 ]]"
tc_finish failover_split
