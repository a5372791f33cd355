#!/usr/bin/env bash
# bench/import.sh — the `bickyctl import` rate (issue 14): starts a private
# Postgres on a free port, sized and durable as `deploy/local/up` starts it
# (bk_pg_size), migrates it, generates a file of CONVS x MSGS messages with
# bench/gen_import.py (kept in the work directory, reused when present),
# imports it into a fresh team, and prints the wall time, messages/s and the
# importer's peak RSS; then imports it again (everything skipped) and prints
# that time too. --streams N is passed to `bickyctl import` (its default when
# absent). docs/performance.md, "Import".
#
#   bench/import.sh [--bin DIR] [--convs N] [--msgs N] [--format legacy|bicky] [--streams N]
#                   [--dir DIR]
set -euo pipefail

BK_TAG=bench-import
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/lib.sh"
# shellcheck source=bench/bench_pg.sh
source "$BK_ROOT/bench/bench_pg.sh"

BIN=$BK_ROOT/build/bin CONVS=1000 MSGS=1000 FORMAT=legacy DIR="" STREAMS=()
while (($#)); do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --convs) CONVS=$2; shift 2 ;;
        --msgs) MSGS=$2; shift 2 ;;
        --format) FORMAT=$2; shift 2 ;;
        --streams) STREAMS=(--streams "$2"); shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) bk_die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -x $BIN/bickyctl ]] || bk_die "no bickyctl in $BIN (build first, or --bin DIR)"
if [[ -z ${DIR:-} ]]; then
    DIR=$(mktemp -d /tmp/bench-import.XXXXXX)
    chmod 755 "$DIR" # as root, Postgres runs as postgres and must reach DIR/pg
fi
mkdir -p "$DIR"
FILE=$DIR/import-$FORMAT-${CONVS}x$MSGS.jsonl
if [[ ! -s $FILE ]]; then
    bk_say "generating $FILE"
    python3 "$BK_ROOT/bench/gen_import.py" --convs "$CONVS" --msgs "$MSGS" --format "$FORMAT" \
        --seed bench >"$FILE.tmp" && mv "$FILE.tmp" "$FILE"
fi
bench_pg_start "$DIR" "$BIN"
"$BIN/bickyctl" token create --team bench >/dev/null
run() {
    local t0 t1
    t0=$(bk_now_ms)
    /usr/bin/time -f '%M %U %S' -o "$DIR/rss" "$BIN/bickyctl" import --team bench --json \
        "${STREAMS[@]}" "$FILE" >"$DIR/report.json"
    t1=$(bk_now_ms)
    echo $((t1 - t0))
}
cpu0=$(bench_pg_cpu)
ms=$(run)
sleep 1 # the backend is reaped
cpu=$(($(bench_pg_cpu) - cpu0))
msgs=$(jq -r .imported.messages "$DIR/report.json")
read -r rss cu cs <"$DIR/rss"
printf 'import: %s messages (%s, %s) in %.1f s = %d messages/s, peak RSS %d MB, load %s\n' \
    "$msgs" "$FORMAT" "${STREAMS[*]:-default streams}" "$(bc -l <<<"$ms/1000")" $((msgs * 1000 / ms)) $((rss / 1024)) \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'cpu:    bickyctl %.1f s, Postgres %.1f s = %d messages per CPU second\n' \
    "$(bc -l <<<"$cu+$cs")" "$(bc -l <<<"$cpu/100")" \
    "$(bc <<<"$msgs / ($cu + $cs + $cpu / 100)")"
ms=$(run)
printf 'again:  %s conversations skipped in %.1f s\n' "$(jq -r .skipped "$DIR/report.json")" \
    "$(bc -l <<<"$ms/1000")"
