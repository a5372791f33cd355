#!/usr/bin/env bash
# test_gw_workers.sh — bicky-gateway --workers (BICKY_GATEWAY_WORKERS=3):
#  - the parent forks 3 workers that share the port (SO_REUSEPORT), each logs
#    as gw.<index>; POSTs on fresh connections and SSE streams all work;
#  - kill -9 of the worker that holds a stream: the parent starts another one,
#    the stream's client reconnects (Last-Event-ID) and gets what it missed;
#  - SIGTERM to the parent (deploy/local/down) stops every worker, exit 0;
#  - a second gateway with --workers 2 on the same port exits non-zero with a
#    clear message; a standalone one stops on SIGTERM within 5 s, leaving no
#    process; --workers 0 / abc / 65 exit 2 with a message.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_workers
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_GATEWAY_WORKERS=3 BICKY_SSE_KEEPALIVE_MS=1000
tc_start gw_workers
GW=$BICKY_BIN/bicky-gateway
# Gateways started here use the cluster's gateway key (or --insecure).
export BICKY_CERT=${BICKY_KEYS:+$BICKY_KEYS/secret/gateway-gateway.key}
parent=$(tc_pid gateway)
workers() { pgrep -P "$parent" | sort; }
nworkers() { workers | wc -l; }

t_check "3 workers under the gateway parent $parent" test "$(nworkers)" = 3
t_check "each worker logs with its index (gw.1, gw.2, gw.3)" bash -c \
    "for i in 1 2 3; do grep -q \"gw.\$i\\[.*listening\" '$TC_VAR/log/gateway.log' || exit 1; done"

# ---------------------------------------------------------------- requests spread

ok=0
for _ in $(seq 1 30); do
    c=$(tc_conv) && [[ -n $(tc_post "$c" "hi") ]] && ok=$((ok + 1))
done
t_check "30 create + post pairs on fresh connections: all answered ($ok)" test "$ok" = 30
# The kernel spreads new connections over the workers: hold 40 at once and
# see which processes own the server ends.
python3 - "$BICKY_HTTP_PORT" "$TC_VAR/spread" <<'EOF'
import socket, subprocess, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(40)]
time.sleep(0.5)
out = subprocess.run(["ss", "-tnpH", "state", "established", "( sport = :%s )" % sys.argv[1]],
                     capture_output=True, text=True).stdout
open(sys.argv[2], "w").write(out)
EOF
spread=$(grep -o 'bicky-gateway",pid=[0-9]*' "$TC_VAR/spread" | sort -u | wc -l)
t_check "40 connections held at once reached more than one worker ($spread)" test "$spread" -ge 2

# ---------------------------------------------------------------- kill -9 a worker

c=$(tc_conv)
tc_post "$c" "before the kill" >/dev/null
t_check "first turn completed" tc_wait_status "$c" idle 10
stored=$(tc_sql "select count(*) from events where conversation_id = '$c'")
PYTHONUNBUFFERED=1 tc_sse "/api/conversations/$c/events?after=0" --timeout 20 --idle 15 \
    >"$TC_VAR/s1" &
sse=$!
t_check "the stream replayed the $stored stored events" bk_wait_for 5 eval \
    "[[ \$(grep -c '\"id\":[0-9]' '$TC_VAR/s1') -ge $stored ]]"
# The worker that holds this stream: the one whose socket has the client's port.
cport=$(ss -tnpH state established "( dport = :$BICKY_HTTP_PORT )" | grep python3 |
    awk '{ print $3 }' | sed 's/.*://' | head -n 1)
victim=$(ss -tnpH state established "( sport = :$BICKY_HTTP_PORT and dport = :$cport )" |
    grep -o 'bicky-gateway",pid=[0-9]*' | cut -d= -f2 | head -n 1)
t_check "the stream's worker is found ($victim)" eval "[[ -n '$victim' ]] && workers | grep -qx '$victim'"
kill -9 "$victim" 2>/dev/null
wait "$sse"
t_check "the stream ended with its worker" grep -Eq '"end":"(eof|reset)"' "$TC_VAR/s1"
t_check "the parent started a new worker (3 again, not $victim)" bk_wait_for 5 eval \
    "[[ \$(nworkers) == 3 ]] && ! workers | grep -qx '$victim'"
last=$(grep -o '^{"id":[0-9]*' "$TC_VAR/s1" | tail -n 1 | grep -o '[0-9]*')
tc_post "$c" "after the kill" >/dev/null
t_check "second turn completed" tc_wait_status "$c" idle 10
total=$(tc_sql "select count(*) from events where conversation_id = '$c'")
tc_sse "/api/conversations/$c/events" --last-event-id "$last" --stored $((total - stored)) \
    --timeout 10 >"$TC_VAR/s2"
t_check "the client reconnected and got the $((total - stored)) events it missed" \
    grep -q '"end":"stored"' "$TC_VAR/s2"
t_check "the parent logged the restart" grep -q 'worker died.*signal=9' "$TC_VAR/log/gateway.log"
t_check "/ready 200 after the restart" bk_http_ok "$BICKY_URL/ready"

# ---------------------------------------------------------------- port in use, bad values

out=$(timeout 20 "$GW" --workers 2 --port "$BICKY_HTTP_PORT" --registry "$BICKY_REGISTRY" 2>&1)
rc=$?
t_check "a second gateway on the same port exits 1 ($rc)" test "$rc" = 1
t_check "... saying why (cannot bind ... Address already in use)" \
    grep -q 'cannot bind.*in use' <<<"$out"
for bad in 0 abc 65; do
    out=$("$GW" --workers "$bad" 2>&1)
    rc=$?
    t_check "--workers $bad exits 2 ($rc) with a message" \
        bash -c "[[ $rc == 2 ]] && grep -q -- '--workers' <<<'$out'"
done
out=$(BICKY_GATEWAY_WORKERS=x "$GW" 2>&1)
t_check "BICKY_GATEWAY_WORKERS=x exits 2 with a message" \
    bash -c "[[ $? == 2 ]] && grep -q 'BICKY_GATEWAY_WORKERS' <<<'$out'"

# A standalone gateway with 2 workers on another port: SIGTERM stops it all.
hr=${BICKY_TEST_HTTP_PORT_RANGE:-${BICKY_TEST_PORT_RANGE:-20000-32000}}
p2=$(bk_free_port "${hr%-*}" "${hr#*-}")
"$GW" --workers 2 --port "$p2" --registry "$BICKY_REGISTRY" >"$TC_VAR/gw2.log" 2>&1 &
g2=$!
t_check "standalone --workers 2 answers /ready" bk_wait_for 15 bk_http_ok "http://127.0.0.1:$p2/ready"
kids=$(pgrep -P "$g2" | tr '\n' ' ')
t_check "it has 2 workers ($kids)" test "$(wc -w <<<"$kids")" = 2
t0=$(bk_now_ms)
kill -TERM "$g2"
wait "$g2"
rc=$?
dt=$(($(bk_now_ms) - t0))
t_check "SIGTERM: the parent exits 0 ($rc) within 5 s ($dt ms)" bash -c "[[ $rc == 0 && $dt -lt 5000 ]]"
left=0
for k in $kids; do
    kill -0 "$k" 2>/dev/null && left=$((left + 1))
done
t_check "no worker left behind" test "$left" = 0
t_check "no sanitizer report in the standalone gateway log" t_no_sanitizer_reports "$TC_VAR/gw2.log"

wk=$(workers | tr '\n' ' ')
tc_finish gw_workers
rc=$?
left=0
for k in $wk; do
    kill -0 "$k" 2>/dev/null && left=$((left + 1))
done
if [[ $left != 0 ]]; then
    echo "FAIL: $left workers of the cluster's gateway left after down"
    exit 1
fi
exit "$rc"
