#!/usr/bin/env bash
# test_gw_drain.sh — bicky-gateway --drain-ms: what a load balancer sees while
# a gateway stops. A second gateway (--drain-ms 3000) beside the cluster's:
#  - SIGTERM: /ready answers 503 at once (the health check takes it out), while
#    /health, creates, posts and an open SSE stream (live events of a turn
#    posted during the drain) keep working for the whole drain;
#  - then it stops taking connections, ends the stream (its client resumes
#    elsewhere) and exits 0, no sooner than the drain and within drain + 5 s;
#  - with --workers 2 and a drain longer than the parent's 4.5 s kill delay,
#    every worker drains the same way and the parent waits for them (exit 0,
#    no worker killed);
#  - the cluster's own gateway (no --drain-ms) still stops at once.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_drain
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_ECHO_DELAY_MS=20 BICKY_SSE_KEEPALIVE_MS=500
tc_start gw_drain
URL0=$BICKY_URL
G2_PID=""
# The second gateway uses the cluster's gateway key (or --insecure).
export BICKY_CERT=${BICKY_KEYS:+$BICKY_KEYS/secret/gateway-gateway.key}

# start_g2 PORT DRAIN_MS [flags...]: the second gateway, pid in G2_PID.
start_g2() {
    local port=$1 drain=$2
    shift 2
    BICKY_OWNER=$TC_VAR env -u BICKY_DATABASE_URL "$BICKY_BIN/bicky-gateway" --listen 127.0.0.1 \
        --port "$port" --registry "$BICKY_REGISTRY" --drain-ms "$drain" "$@" \
        >>"$TC_VAR/log/g2.log" 2>&1 </dev/null &
    G2_PID=$!
    bk_wait_for 15 bk_http_ok "http://127.0.0.1:$port/ready"
}

# code URL [curl args...]: the HTTP status of one request with the token.
code() {
    local url=$1
    shift
    curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BICKY_TOKEN" "$@" "$url"
}

ready_503() { [[ $(code "$1/ready") == 503 ]]; }

port=$(bk_free_port) || bk_die "no free port"
G2=http://127.0.0.1:$port
t_check "second gateway (--drain-ms 3000) ready" start_g2 "$port" 3000

conv=$(tc_conv)
t_check "a conversation" test -n "$conv"
rm -f "$TC_VAR/sse.ready"
python3 "$SRC/tests/tools/sse_probe.py" "$G2/api/conversations/$conv/events" --token "$BICKY_TOKEN" \
    --ready-file "$TC_VAR/sse.ready" --timeout 30 >"$TC_VAR/sse.out" 2>&1 &
sse_pid=$!
t_check "an SSE stream is open on the second gateway" bk_wait_for 10 test -e "$TC_VAR/sse.ready"

t0=$(bk_now_ms)
kill -TERM "$G2_PID"
t_check "SIGTERM: /ready answers 503 within 1 s" bk_wait_for 1 ready_503 "$G2"
body=$(curl -s -m 5 "$G2/ready")
t_check "the 503 says why ($body)" grep -q 'shutting down' <<<"$body"
t_check "/health still 200 while draining" test "$(code "$G2/health")" = 200
c2=$(curl -s -m 5 -H "Authorization: Bearer $BICKY_TOKEN" -H "$TC_JSON" -d '{}' \
    "$G2/api/conversations" | jq -r .id)
t_check "a create is still served while draining ($c2)" test -n "$c2" -a "$c2" != null
t_check "a post is still served while draining" test "$(code "$G2/api/conversations/$conv/messages" \
    -H "$TC_JSON" -d '{"content":"one two three four five"}')" = 202
t_check "the open stream gets the turn's live events while draining" \
    bk_wait_for 5 grep -q '"event":"turn.completed"' "$TC_VAR/sse.out"
elapsed=$(($(bk_now_ms) - t0))
t_check "all of that happened within the drain (${elapsed} ms < 3000)" test "$elapsed" -lt 3000
while (($(bk_now_ms) < t0 + 2500)); do sleep 0.05; done
t_check "still taking connections late in the drain (2.5 s after SIGTERM)" test "$(code "$G2/health")" = 200
rc=0
bk_wait_for 10 bk_dead "$G2_PID"
wait "$G2_PID" || rc=$?
dt=$(($(bk_now_ms) - t0))
t_check "then it exits 0 ($rc), after the drain and within drain + 5 s (${dt} ms)" \
    test "$rc" = 0 -a "$dt" -ge 3000 -a "$dt" -lt 8000
t_check "its stream was ended by the stop" bk_wait_for 5 bk_dead "$sse_pid"
t_check "the stream's end is an end of stream, not the probe's timeout" \
    grep -qE '"end":"(eof|reset)"' "$TC_VAR/sse.out"
t_check "the log says it drained, then stopped" \
    bash -c "grep -q 'draining: /ready answers 503' '$TC_VAR/log/g2.log' && grep -q 'stopping: no new connections' '$TC_VAR/log/g2.log'"
t_check "connections refused after the stop" test "$(code "$G2/health")" = 000

# Workers: each drains; the parent waits longer than its usual 4.5 s.
port=$(bk_free_port) || bk_die "no free port"
G2=http://127.0.0.1:$port
t_check "a gateway with --workers 2 --drain-ms 5000 ready" start_g2 "$port" 5000 --workers 2
t0=$(bk_now_ms)
kill -TERM "$G2_PID"
t_check "SIGTERM to the parent: /ready 503 from the workers" bk_wait_for 1 ready_503 "$G2"
t_check "requests still served by the workers" test "$(code "$G2/api/conversations/$conv")" = 200
rc=0
bk_wait_for 15 bk_dead "$G2_PID"
wait "$G2_PID" || rc=$?
dt=$(($(bk_now_ms) - t0))
t_check "the parent exits 0 ($rc) after the workers drained (${dt} ms >= 5000)" \
    test "$rc" = 0 -a "$dt" -ge 5000 -a "$dt" -lt 11000
t_check "no worker had to be killed" bash -c "! grep -q 'worker did not stop' '$TC_VAR/log/g2.log'"

# The cluster's own gateway has no drain: it stops within a second.
BICKY_URL=$URL0
t_check "no sanitizer report in the second gateway's log" t_no_sanitizer_reports "$TC_VAR/log/g2.log"
gpid=$(tc_pid gateway)
t0=$(bk_now_ms)
kill -TERM "$gpid"
t_check "without --drain-ms a gateway stops at once (< 2 s)" bk_wait_for 2 bk_dead "$gpid"
echo "gateway without drain stopped in $(($(bk_now_ms) - t0)) ms"
"$SRC/deploy/local/up" -d >>"$TC_VAR/up.log" 2>&1
t_check "the cluster's gateway is back" bk_wait_for 15 bk_http_ok "$BICKY_URL/ready"
tc_finish gw_drain
