#!/usr/bin/env bash
# team_limits.sh — what a noisy team does to a quiet one (issue 12): the
# quiet team's latency (GET /api/conversations?limit=1, one keep-alive
# client) alone, then while a noisy team limited to --rate RATE/s sends
# flat out from several clients (at least 10x its rate). Prints p50 / p90 /
# p99 / max of the quiet team in both phases, the noisy team's attempted
# rate and its 200 / 429 counts. Numbers only, no pass/fail: the figures go
# to docs/performance.md.
#
#   bench/team_limits.sh [--bin DIR] [--requests N] [--noisy-clients N] [--rate N]
#
# Starts its own 2-node cluster (deploy/local/up, under $BICKY_TEST_TMPDIR or
# /tmp) on free ports and stops it at the end. Default binaries: build/bin.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$SRC/build/bin
N=2000
CLIENTS=4
RATE=40
while (($#)); do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --requests) N=$2; shift 2 ;;
        --noisy-clients) CLIENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "team_limits.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

BK_TAG=bench_team_limits
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

BICKY_BIN=$BIN tc_start bench_team_limits >&2
limits() { "$CTL" --database-url "$BICKY_DATABASE_URL" team limits "$@" >/dev/null; }
QUIET=$(tc_team_token bench-quiet)
NOISY=$(tc_team_token bench-noisy)
limits bench-noisy --rate "$RATE/s" --burst "$RATE"
URL="$BICKY_URL/api/conversations?limit=1"

# times TOKEN N: one curl, N requests on one keep-alive connection; prints
# "status seconds" per request.
times() {
    local args=() i
    for ((i = 0; i < $2; i++)); do args+=(-o /dev/null "$URL"); done
    curl -s -m 600 -H "Authorization: Bearer $1" -w '%{http_code} %{time_total}\n' "${args[@]}"
}

# summary FILE: p50 p90 p99 max of the times (ms) of the 200s, and their count.
summary() {
    awk '$1 == 200 { print $2 * 1000 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        function at(q,  i) { i = int(NR * q + 0.5); if (i < 1) i = 1; return v[i] }
        END {
            if (NR == 0) { print "no 200s"; exit }
            printf "n=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms\n", NR,
                at(0.50), at(0.90), at(0.99), v[NR]
        }'
}

OUT=$TC_VAR/bench
mkdir -p "$OUT"
times "$QUIET" 200 >/dev/null # warm: auth cache, connections
times "$QUIET" "$N" >"$OUT/alone"

t0=$(bk_now_ms)
pids=()
for ((c = 0; c < CLIENTS; c++)); do
    times "$NOISY" $((N * 4)) >"$OUT/noisy.$c" &
    pids+=($!)
done
times "$QUIET" "$N" >"$OUT/beside"
quiet_ms=$(($(bk_now_ms) - t0))
for p in "${pids[@]}"; do wait "$p"; done
noisy_ms=$(($(bk_now_ms) - t0))
cat "$OUT"/noisy.* >"$OUT/noisy"

total=$(wc -l <"$OUT/noisy")
ok=$(awk '$1 == 200' "$OUT/noisy" | wc -l)
limited=$(awk '$1 == 429' "$OUT/noisy" | wc -l)
echo "team_limits bench ($(nproc) cores, $(date -u +%FT%TZ), bin=$BIN)"
echo "noisy team: --rate $RATE/s --burst $RATE, $CLIENTS clients flat out"
echo "  attempted $total in $noisy_ms ms = $((total * 1000 / (noisy_ms > 0 ? noisy_ms : 1)))/s" \
    "($(((total * 1000 / (noisy_ms > 0 ? noisy_ms : 1)) / RATE))x its rate): $ok 200, $limited 429"
echo "quiet team alone:          $(summary "$OUT/alone") ($(awk '$1 != 200' "$OUT/alone" | wc -l) not 200)"
echo "quiet team beside noisy:   $(summary "$OUT/beside") ($(awk '$1 != 200' "$OUT/beside" | wc -l) not 200, ${quiet_ms} ms)"
