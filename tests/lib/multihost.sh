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

# ---------------------------------------------------------------- steps under load
# Shared by the multi-host tests and bench/multihost. They need the load of
# failover.sh (fo_load_start) running, and report through t_check.

mht_claims() { tc_sql "select count(*) from conversation_owners where node_id = '$1'"; }
mht_acks_after() { (($(fo_acks_since "$1") >= $2)); }
mht_gw_is() { [[ $(mh_server_state "$1") == "$2" ]]; }
# mht_open_on GW: requests and streams haproxy has open on GW right now (scur).
mht_open_on() { mh_haproxy "show stat" | awk -F, -v s="$1" '$1 == "gateways" && $2 == s { print $5 }'; }

# mht_cut HOST NODE GW: pulls HOST's cable until haproxy marks GW down, the
# registry declares NODE dead and the other node claimed all of NODE's
# conversations, and the load moved on. Sets MHT_CUT_T (wall seconds of the
# cut), MHT_DOWN_T (GW seen DOWN), MHT_END_T, MHT_OWNED (NODE's conversations
# before) and MHT_RECOVERY_MS (loadgen's recovery time, "none" when nothing
# failed). The cable stays out (mht_plug puts it back).
mht_cut() {
    local host=$1 node=$2 gw=$3 res
    MHT_OWNED=$(mht_claims "$node")
    MHT_CUT_T=$(fo_now)
    mh_link "$host" down
    t_check "haproxy marks $gw DOWN" bk_wait_for 5 mht_gw_is "$gw" DOWN
    MHT_DOWN_T=$(fo_now)
    t_check "the registry declares $node dead" bk_wait_for 6 mh_node_is "$node" dead
    t_check "the other node claimed every conversation of $node" \
        bk_wait_for 10 eval "[[ \$(mht_claims $node) == 0 ]]"
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 10 mht_acks_after "$(fo_now)" 100
    MHT_END_T=$(fo_now)
    res=$(fo_analyze --event "$MHT_CUT_T" --until "$MHT_END_T")
    MHT_RECOVERY_MS=$(jq -r '.recovery_ms // "none"' <<<"$res")
    echo "cut $host: $node owned=$MHT_OWNED, $gw seen DOWN after" \
        "$(awk -v a="$MHT_CUT_T" -v b="$MHT_DOWN_T" 'BEGIN { printf "%d", (b - a) * 1000 }') ms;" \
        "$(jq -c '{affected, recovery_ms, errors_after_event, statuses}' <<<"$res")"
}

# mht_plug HOST NODE GW: the cable back; NODE alive and owning again, GW UP.
mht_plug() {
    local host=$1 node=$2 gw=$3
    mh_link "$host" up
    t_check "$node is alive again" bk_wait_for 15 mh_node_is "$node" alive
    t_check "haproxy marks $gw UP again" bk_wait_for 10 mht_gw_is "$gw" UP
    t_check "$node owns conversations again" bk_wait_for 15 eval "[[ \$(mht_claims $node) -gt 0 ]]"
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 15 mht_acks_after "$(fo_now)" 100
}

MHT_STEPS=() # "name:ms" of each restart step

# mht_restart_node NODE: drain, stop, start, undrain, owning again.
mht_restart_node() {
    local n=$1 t0 st
    t0=$(bk_now_ms)
    t_check "bickyctl drain $n" "$CTL" drain "$n"
    t_check "$n holds no conversation within 15 s" bk_wait_for 15 eval "[[ \$(mht_claims $n) == 0 ]]"
    st=$(mh_stop "$n" 10)
    t_check "$n stopped: $st" test "$st" = "status 0"
    mh_start "$n"
    t_check "$n is back, still draining" bk_wait_for 15 mh_node_is "$n" draining
    t_check "bickyctl undrain $n" "$CTL" undrain "$n"
    t_check "$n is alive and owns conversations again" \
        bk_wait_for 15 eval "mh_node_is $n alive && [[ \$(mht_claims $n) -gt 0 ]]"
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 15 mht_acks_after "$(fo_now)" 100
    MHT_STEPS+=("$n:$(($(bk_now_ms) - t0))ms")
}

# mht_restart_gateway GW: drained through haproxy's runtime API until nothing
# is open on it, stopped (after its own --drain-ms), started, set ready, UP.
mht_restart_gateway() {
    local g=$1 t0 st
    t0=$(bk_now_ms)
    mh_haproxy "set server gateways/$g state drain" >/dev/null
    t_check "haproxy drains $g" bk_wait_for 5 mht_gw_is "$g" DRAIN
    t_check "no request open on $g within 10 s" bk_wait_for 10 eval "[[ \$(mht_open_on $g) == 0 ]]"
    st=$(mh_stop "$g" 15)
    t_check "$g stopped after its own drain: $st" test "$st" = "status 0"
    mh_start "$g"
    mh_haproxy "set server gateways/$g state ready" >/dev/null
    t_check "haproxy sees $g UP again" bk_wait_for 15 mht_gw_is "$g" UP
    t_check "the load goes on: 100 more acknowledged" bk_wait_for 15 mht_acks_after "$(fo_now)" 100
    MHT_STEPS+=("$g:$(($(bk_now_ms) - t0))ms")
}
