#!/usr/bin/env bash
# test_build_rerun.sh — a second configure + build of an unchanged tree
# compiles nothing. deploy/local/up configures and builds on every run; a
# configure that changed the compile flags (FindPkgConfig moving libczmq's
# "-isystem /usr/include/mit-krb5" from the include dirs to the flags) made
# every run rebuild everything. Kept cheap: a fresh tree without the tests
# (-DBICKY_TESTS=OFF), only target bicky_common, built twice.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=build_rerun
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"

TMPD=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/build_rerun.XXXXXX")
trap 'rm -rf "$TMPD"' EXIT
B=$TMPD/build
FLAGS=$B/CMakeFiles/bicky_common.dir/flags.make

# build LOG: configure + build bicky_common as up does (bk_build), output in LOG.
build() {
    (bk_build "$B" -DBICKY_TESTS=OFF -- bicky_common) >"$TMPD/$1.log" 2>&1
}
compiled() { grep -c 'Building C object' "$TMPD/$1.log"; }

t_check "first configure + build of bicky_common" build first
t_check "the first build compiled $(compiled first) objects" test "$(compiled first)" -gt 0
cp "$FLAGS" "$TMPD/flags.first" 2>/dev/null
t_check "second configure + build of bicky_common" build second
t_check "the second configure left the compile flags as they were" \
    diff "$TMPD/flags.first" "$FLAGS"
t_check "the second build compiled nothing ($(compiled second) objects)" \
    test "$(compiled second)" = 0
if ((T_FAILED)); then
    tail -n 20 "$TMPD/first.log" "$TMPD/second.log"
fi
t_finish build_rerun
