# shellcheck shell=bash
# multihost.sh — the multi-host tests (tests/cluster/test_multihost_*.sh): one
# cluster of deploy/multihost/up per script, and the test body run inside the
# client namespace, so that every request really crosses the bridge to
# haproxy (BICKY_URL = http://<subnet>.4). Prefix mht_.
#
# Use (after sourcing deploy/local/lib.sh, deploy/multihost/lib.sh,
# tests/lib/assert.sh, cluster.sh and failover.sh):
#   export BICKY_DEAD_AFTER_MS=...     # reaches every process
#   mht_main NAME                      # outside: up, run this script inside the
#                                      # client namespace, down, final checks; exits.
#                                      # inside: returns, with the env sourced
#   ... tc_req / fo_load_start / mh_link / t_check ...
#   t_finish NAME                      # the inside tally
# Exit status 77 (ctest: skipped) only when network namespaces cannot be made.

# mht_main NAME: see above.
mht_main() {
    local name=$1
    if [[ ${MHT_INSIDE:-0} == 1 ]]; then
        mht_inside
        return 0
    fi
    : "${BICKY_BIN:?BICKY_BIN must name the directory of the binaries under test}"
    export BICKY_BIN
    BICKY_BIN=$(cd "$BICKY_BIN" && pwd)
    local why
    if ! why=$(MH_PREFIX=bkmhprobe mh_ns_probe); then
        echo "SKIP: $name: network namespaces cannot be created here: $why"
        exit 77
    fi
    MH_VAR=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/$name.XXXXXX")
    export MH_VAR BICKY_SKIP_BUILD=1 BICKY_SKIP_INSTALL=1
    export MH_PG_SETTINGS=${MH_PG_SETTINGS:-fsync=off synchronous_commit=off full_page_writes=off}
    trap mht_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local t0
    t0=$(bk_now_ms)
    echo "$name: MH_VAR=$MH_VAR bin=$BICKY_BIN"
    if ! "$SRC/deploy/multihost/up" >"$MH_VAR/up.log" 2>&1; then
        cat "$MH_VAR/up.log"
        t_fail "deploy/multihost/up"
        t_finish "$name"
        exit 1
    fi
    t_pass "multi-host cluster up in $(($(bk_now_ms) - t0)) ms"
    mh_init
    local rc=0
    MHT_INSIDE=1 ip netns exec "$(mh_ns cl)" bash "$0" || rc=$?
    t_check "$name: the checks inside the client namespace passed" test "$rc" = 0
    mht_finish "$name"
    exit $?
}

# Inside the client namespace: the cluster's env, cluster.sh's variables.
mht_inside() {
    # shellcheck disable=SC1091
    source "$MH_VAR/env"
    mh_init
    TC_VAR=$MH_VAR
    TC_TOKEN=$BICKY_TOKEN
    CTL=$BICKY_BIN/bickyctl
    t_check "inside $(mh_ns cl): /ready through haproxy at $BICKY_URL" mh_ready
}

# mht_finish NAME: down, every process exited 0, nothing left, no sanitizer report.
mht_finish() {
    local name=$1 bad
    if "$SRC/deploy/multihost/down" >"$MH_VAR/down.out" 2>&1; then
        t_pass "deploy/multihost/down: no process, namespace or link left"
    else
        cat "$MH_VAR/down.out"
        t_fail "deploy/multihost/down"
    fi
    bad=$(grep 'multihost: stopped' "$MH_VAR/down.out" | grep -v '(status 0)')
    t_check "every process exited 0 when stopped" test -z "$bad"
    [[ -z $bad ]] || echo "$bad"
    t_check "no namespace of $MH_PREFIX is left" bash -c "! ip netns list | grep -q '^$MH_PREFIX-'"
    t_check "no sanitizer report in any log" t_no_sanitizer_reports "$MH_VAR"/log/*.log
    t_finish "$name"
}

mht_cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n ${MH_VAR:-} && -d $MH_VAR ]]; then
        if ip netns list 2>/dev/null | grep -q "^${MH_PREFIX:-none}-"; then
            "$SRC/deploy/multihost/down" >>"$MH_VAR/down.out" 2>&1 || true
        fi
        if ((rc != 0)); then
            local f
            for f in "$MH_VAR"/log/*.log; do
                [[ -f $f ]] || continue
                echo "--- $f (last 30 lines)"
                tail -n 30 "$f"
            done
        fi
        if [[ ${BICKY_TEST_KEEP:-0} == 1 ]]; then
            echo "kept $MH_VAR"
        else
            rm -rf "$MH_VAR"
        fi
    fi
    exit "$rc"
}

# mht_post_sse CONV CONTENT: posts a message and reads the conversation's SSE
# stream through haproxy until turn.completed; prints the probe's JSON lines.
mht_post_sse() {
    local conv=$1 content=$2 out=$MH_VAR/sse.$RANDOM
    tc_sse "/api/conversations/$conv/events" --until turn.completed --timeout 20 \
        --ready-file "$out.ready" >"$out" 2>&1 &
    local pid=$!
    bk_wait_for 10 test -e "$out.ready" || return 1
    tc_post "$conv" "$content" >/dev/null
    wait "$pid"
    cat "$out"
}
