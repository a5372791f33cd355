#!/usr/bin/env bash
# test_guard_rails.sh — the checks tests/run makes before building:
# tools/check-lines and tools/check-format pass on a clone of the tree (its
# committed HEAD, with the scripts of the tree under test), then fail and name
# the file once a hand-written .c file of 601 lines and a badly formatted
# file are added, while generated files (first line "GENERATED, DO NOT
# EDIT") of 700 lines, badly formatted, stay exempt; tools/check-layers passes,
# then fails and names both edges once a lower node/ folder includes a higher
# one's header. Starts no cluster.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=guard_rails
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"

TMPD=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/guard_rails.XXXXXX")
trap 'rm -rf "$TMPD"' EXIT
R=$TMPD/repo
git clone -q "$SRC" "$R" || bk_die "cannot clone $SRC"
cp "$SRC/tools/check-lines" "$SRC/tools/check-format" "$SRC/tools/check-layers" "$R/tools/"

# run NAME SCRIPT: runs the check on the clone, output in $TMPD/NAME.
run() { "$R/tools/$2" "$R" >"$TMPD/$1" 2>&1; }

t_check "check-lines passes on the tree" run lines.clean check-lines
t_check "check-format passes on the tree" run format.clean check-format

{
    echo "/* GENERATED, DO NOT EDIT: a table */"
    for i in $(seq 1 700); do echo "X($i)"; done
} >"$R/common/table.inc"
{
    echo "/* GENERATED, DO NOT EDIT: more */"
    for i in $(seq 1 700); do echo "int  generated_$i ;"; done
} >"$R/common/generated.c"
git -C "$R" add common/table.inc common/generated.c
t_check "700-line generated files are exempt from check-lines" run lines.gen check-lines
t_check "... and from check-format" run format.gen check-format

for i in $(seq 1 601); do echo "int line_$i;"; done >"$R/common/too_long.c"
printf 'int  ugly( void ){return 0;}\n' >"$R/gateway/gw_ugly.c"
git -C "$R" add common/too_long.c gateway/gw_ugly.c
t_check "check-lines fails on a 601-line .c file" eval '! run lines.bad check-lines'
t_check "... naming it and its length" grep -q 'common/too_long.c has 601 lines' "$TMPD/lines.bad"
t_check "... and only it" test "$(grep -c 'lines, more than 600' "$TMPD/lines.bad")" = 1
t_check "check-format fails on a badly formatted file" eval '! run format.bad check-format'
t_check "... naming it with the fix" \
    grep -q 'check-format: 1 file(s) differ from .clang-format; fix: clang-format-14 -i gateway/gw_ugly.c' \
    "$TMPD/format.bad"
t_check "check-layers passes on the tree" run layers.clean check-layers
t_check "... and lists the layers, core lowest, ops highest" \
    grep -qE 'lowest first: .*core.* < store < .* < ops$' "$TMPD/layers.clean"
# The store reaching up into the turns closes a cycle (turns include the store).
printf '#include "node/turns/node_turns.h"\n' >>"$R/node/store/node_write.c"
t_check "check-layers fails on an include from store up to turns" \
    eval '! run layers.bad check-layers'
t_check "... naming the cycle and the include that closes it" \
    grep -q 'store -> turns  (node/store/node_write.c: #include "node/turns/node_turns.h")' \
    "$TMPD/layers.bad"
if ((T_FAILED)); then
    tail -n 20 "$TMPD"/lines.* "$TMPD"/format.* "$TMPD"/layers.*
fi
t_finish guard_rails
