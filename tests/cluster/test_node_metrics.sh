#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_node_metrics.sh — every node serves GET /metrics (--metrics-bind, here
# BICKY_NODE_METRICS_BIND=127.0.0.1:0 so each picks a free port, read from its
# log): after echo turns written whole with their message and echo turns that
# stream, the nodes' histograms count them — group commits and their sizes,
# queue waits, turns under strategy="echo" — with cumulative buckets whose +Inf
# equals _count; other paths answer 404. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=node_metrics
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_NODE_METRICS_BIND=127.0.0.1:0
tc_start node_metrics

# metrics_port NODE: the port NODE logged for its metrics endpoint.
metrics_port() {
    sed -n 's/.*serving GET \/metrics bind=[^ ]* port=\([0-9]*\).*/\1/p' "$TC_VAR/log/$1.log" | tail -n 1
}
P1=$(metrics_port n1)
P2=$(metrics_port n2)
t_check "both nodes logged their metrics port ($P1, $P2)" test -n "$P1" -a -n "$P2"

# total SERIES: the sum of SERIES (name with labels, exactly) over both nodes.
total() {
    local p sum=0 v
    for p in "$P1" "$P2"; do
        v=$(curl -s -m 5 "http://127.0.0.1:$p/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }')
        sum=$((sum + ${v%.*}))
    done
    echo "$sum"
}

# Whole turns: echo with no delay is written with the posted message.
fast=()
for i in 1 2 3 4; do
    fast+=("$(tc_conv '{}')")
done
for c in "${fast[@]}"; do
    tc_post "$c" "hello metrics" >/dev/null
    t_check "POST to $c is 202" test "$TC_CODE" = 202
done
for c in "${fast[@]}"; do
    t_check "whole turn of $c completed" tc_wait_status "$c" idle
done
t_check "turns of strategy echo counted: 4 whole turns" \
    bk_wait_for 10 eval '(( $(total "bicky_node_turn_seconds_count{strategy=\"echo\"}") >= 4 ))'

# Streamed turns: a delay per word makes the turn run across several commits.
slow=$(tc_conv '{"metadata":{"echo":{"delay_ms":20}}}')
before=$(total 'bicky_node_turn_seconds_count{strategy="echo"}')
tc_post "$slow" "one two three" >/dev/null
t_check "POST to the streaming conversation is 202" test "$TC_CODE" = 202
t_check "its turn completes" bk_wait_for 15 eval '[[ $(tc_events "$slow" | grep -c turn.completed) -ge 1 ]]'
t_check "the streamed turn is counted too" \
    bk_wait_for 10 eval '(( $(total "bicky_node_turn_seconds_count{strategy=\"echo\"}") > before ))'

commits=$(total bicky_node_commit_seconds_count)
t_check "group commits counted ($commits)" test "$commits" -ge 6
t_check "group sizes counted once per commit" \
    test "$(total bicky_node_commit_group_size_count)" -eq "$commits"
t_check "queue waits counted for every write set (at least one per commit)" \
    test "$(total bicky_node_queue_wait_seconds_count)" -ge "$commits"

# Each histogram: buckets never decrease and +Inf equals _count.
for p in "$P1" "$P2"; do
    curl -s -m 5 "http://127.0.0.1:$p/metrics" >"$TC_VAR/metrics.$p"
    t_check "node metrics on $p are well formed" python3 - "$TC_VAR/metrics.$p" <<'EOF'
import re, sys
series = {}
for line in open(sys.argv[1]):
    if line.startswith('#') or not line.strip():
        continue
    name, value = line.rsplit(' ', 1)
    series[name] = float(value)
hists = {}
for name, v in series.items():
    m = re.match(r'(\w+)_bucket\{(.*?)le="([^"]+)"\}$', name)
    if m:
        key = (m.group(1), m.group(2).rstrip(','))
        hists.setdefault(key, []).append((float('inf') if m.group(3) == '+Inf' else float(m.group(3)), v))
assert hists, 'no histogram'
for (base, labels), buckets in hists.items():
    buckets.sort()
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), (base, labels, counts)
    lab = '{' + labels + '}' if labels else ''
    assert buckets[-1][0] == float('inf'), (base, labels)
    assert series[base + '_count' + lab] == counts[-1], (base, labels)
    assert base + '_sum' + lab in series, (base, labels)
EOF
done

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P1/other")
t_check "other paths are 404 (got $code)" test "$code" = 404

tc_finish node_metrics
