#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_limits.sh — "nothing unbounded" and "never block a loop" on a real
# cluster (mailboxes of 4, 2 s request timeout):
#  - request bodies: over 1 MiB is 413 (declared, chunked, or announced and
#    never sent) and writes nothing; just under it is accepted;
#  - a full turn queue is 429 with Retry-After, a full mailbox (the actor's
#    commit held by a row lock in Postgres) is 503 with Retry-After, and the
#    requests that were let in are acknowledged once the lock goes;
#  - a stalled SSE reader is disconnected (it takes nothing for 5 s while
#    output waits) and the gateway's memory stays bounded, while 3 readers
#    that keep up get every stored event of 40 turns of 200 KB messages
#    (events larger than its 64 KiB buffer: it catches up from the store);
#  - connections past --max-connections are refused, the gateway survives;
#  - a SIGSTOPped node: the gateway keeps answering /health, requests for the
#    node's conversations get 504 in time, the other node's work on; with
#    Postgres SIGSTOPped, gateway and registry loops still answer.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_limits
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_MAILBOX_MAX=4 BICKY_REQUEST_TIMEOUT_MS=2000 BICKY_DEAD_AFTER_MS=10000
export BICKY_MAX_CONNECTIONS=64 BICKY_SSE_KEEPALIVE_MS=1000
# Under AddressSanitizer freed memory sits in a quarantine (256 MB by default)
# and would hide what the RSS check looks for: keep it small here.
[[ -n ${ASAN_OPTIONS:-} ]] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"
tc_start conv_limits

F=$TC_VAR/bodies
mkdir -p "$F"
body_of() { python3 -c "import sys; sys.stdout.write('{\"content\":\"' + 'a' * $1 + '\"}')"; }
body_of $((1024 * 1024 + 100)) >"$F/over"
body_of 1000000 >"$F/under"

# Milliseconds a command takes.
took_ms() {
    local t0
    t0=$(bk_now_ms)
    "$@" >/dev/null 2>&1
    echo $(($(bk_now_ms) - t0))
}

# ---------------------------------------------------------------- request bodies

c=$(tc_conv)
before=$(tc_counts)
tc_req POST "/api/conversations/$c/messages" "@$F/over"
t_check "body over 1 MiB (Content-Length): 413 payload_too_large" \
    test "$TC_CODE $(tc_jq .code)" = "413 payload_too_large"
tc_req POST "/api/conversations/$c/messages" "@$F/over" -H 'Transfer-Encoding: chunked'
t_check "chunked body over 1 MiB: 413" test "$TC_CODE" = 413
# Announced but never sent: answered at once from the headers.
ms=$(took_ms python3 - "$BICKY_HTTP_PORT" "$c" "$BICKY_TOKEN" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(("POST /api/conversations/%s/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{" % (sys.argv[2], sys.argv[3])).encode())
answer = s.recv(4096).decode("latin-1")
sys.exit(0 if answer.startswith("HTTP/1.1 413") else 1)
EOF
)
t_check "Content-Length 2 MB, body never sent: 413 before reading (${ms} ms)" test "$ms" -lt 2000
t_check "the refused bodies wrote nothing" test "$(tc_counts)" = "$before"
tc_req POST "/api/conversations/$c/messages" "@$F/under"
t_check "a 1 000 000 byte message is accepted (202)" test "$TC_CODE" = 202
t_check "... stored whole and answered" bk_wait_for 10 eval \
    "[[ \$(tc_sql \"select sum(length(content)) from messages where conversation_id = '$c' and status = 'completed'\") == 2000006 ]]"

# ---------------------------------------------------------------- queue full → 429

q=$(tc_conv '{"metadata":{"echo":{"delay_ms":150}}}')
tc_post "$q" "one two three four five six seven eight nine ten" >/dev/null
ok=1
for i in 1 2 3 4; do
    [[ -n $(tc_post "$q" "queued $i") ]] || ok=0
done
t_check "a running turn and 4 queued messages (mailbox-max 4) are accepted" test "$ok" = 1
before=$(tc_counts)
tc_req POST "/api/conversations/$q/messages" '{"content":"one too many"}'
t_check "the 6th: 429 rate_limited with Retry-After" \
    test "$TC_CODE $(tc_jq .code) $(tc_header Retry-After)" = "429 rate_limited 1"
t_check "... and nothing written" test "$(tc_counts)" = "$before"
tc_req PATCH "/api/conversations/$q" '{"metadata":{"echo":{"delay_ms":0}}}'
t_check "the queue drains" tc_wait_status "$q" idle 10
t_check "then a post is accepted again" test -n "$(tc_post "$q" "room again")"
tc_wait_status "$q" idle 5

# ---------------------------------------------------------------- mailbox full → 503

m=$(tc_conv)
# A session holding the conversation's row lock until we commit it.
coproc LOCKER { psql "$BICKY_DATABASE_URL" -X -q >/dev/null 2>&1; }
echo "begin; select 1 from conversations where id = '$m' for update; select 'e2e-locked';" \
    >&"${LOCKER[1]}"
bk_wait_for 5 eval "[[ \$(tc_sql \"select count(*) from pg_stat_activity where state = 'idle in transaction' and query like '%e2e-locked%'\") -ge 1 ]]"
for i in 1 2 3 4 5; do
    curl -s -m 10 -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $BICKY_TOKEN" \
        -H "$TC_JSON" --data-binary "{\"content\":\"held $i\"}" \
        "$BICKY_URL/api/conversations/$m/messages" >"$TC_VAR/held.$i" &
    sleep 0.05
done
sleep 0.1
tc_req POST "/api/conversations/$m/messages" '{"content":"mailbox full"}'
t_check "a commit held by a row lock, 4 requests waiting: the next is 503 with Retry-After" \
    test "$TC_CODE $(tc_jq .code) $(tc_header Retry-After)" = "503 unavailable 1"
lock_fd=${LOCKER[1]}
echo "commit;" >&"$lock_fd"
exec {lock_fd}>&-
wait
t_check "the 5 requests let in are all acknowledged once the lock goes" \
    test "$(cat "$TC_VAR"/held.* | sort | uniq -c | awk '{ print $2 "x" $1 }')" = 202x5
t_check "... and stored, the refused one not" \
    test "$(tc_sql "select count(*) from messages where conversation_id = '$m' and role = 'user'") $(tc_sql "select count(*) from messages where content = 'mailbox full'")" = "5 0"
tc_wait_status "$m" idle 10

# ---------------------------------------------------------------- a stalled SSE reader

s=$(tc_conv '{"title":"flood"}')
gw=$(tc_pid gateway)
rss0=$(tc_rss "$gw")
slow0=$(tc_metric bicky_gateway_sse_slow_disconnects_total)
tc_sse "/api/conversations/$s/events" --stall 6 --rcvbuf 4096 --timeout 5 >"$TC_VAR/stall.out" &
staller=$!
readers=()
for r in 1 2 3; do
    rm -f "$TC_VAR/ready"
    tc_sse "/api/conversations/$s/events" --idle 3 --timeout 40 --ready-file "$TC_VAR/ready" \
        >"$TC_VAR/reader.$r" &
    readers+=($!)
    bk_wait_for 5 test -e "$TC_VAR/ready"
done
sleep 0.3
body_of 200000 >"$F/200k"
N=40
for i in $(seq 1 $N); do
    tc_req POST "/api/conversations/$s/messages" "@$F/200k"
done
t_check "$N posts of 200 KB (about 16 MB of events) accepted" tc_wait_status "$s" idle 30
rss1=$(tc_rss "$gw")
wait "$staller"
t_check "the stalled reader was disconnected: slow disconnects counted" \
    test "$(tc_metric bicky_gateway_sse_slow_disconnects_total)" -gt "$slow0"
got=$(jq -r 'select(.end) | "\(.end) \(.bytes)"' "$TC_VAR/stall.out")
t_check "... its stream ended early ($got of ~16 MB)" \
    eval "[[ '$got' =~ ^(eof|reset)\ ([0-9]+)$ ]] && ((\${BASH_REMATCH[2]} < 8000000))"
t_check "gateway memory stayed bounded (RSS ${rss0} KiB → ${rss1} KiB: < +8 MiB for ~13 MB unsent)" \
    test $((rss1 - rss0)) -lt 8192
wait "${readers[@]}"
want=$(tc_sql "select id from events where conversation_id = '$s' and type <> 'conversation.created'
               order by id" | tr '\n' ' ')
for r in 1 2 3; do
    t_check "reader $r that keeps up got all $N turns" \
        test "$(jq -s '[.[] | select(.event == "turn.completed")] | length' "$TC_VAR/reader.$r")" = "$N"
    got=$(jq -r 'select(.id != null) | .id' "$TC_VAR/reader.$r" | tr '\n' ' ')
    t_check "... and every stored event once, in order" test "$got" = "$want"
    [[ $got == "$want" ]] || printf '  got  %s\n  want %s\n' "$got" "$want"
done
t_check "the gateway holds no SSE client afterwards" \
    bk_wait_for 15 eval '[[ $(tc_metric bicky_gateway_sse_clients) == 0 ]]'

# ---------------------------------------------------------------- connection limit

python3 - "$BICKY_HTTP_PORT" >"$TC_VAR/conns.out" 2>&1 <<'EOF' &
import socket, sys, time
socks = []
for _ in range(100):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(2.5)
EOF
holder=$!
sleep 1
open_now=$(tc_metric bicky_gateway_open_connections)
t_check "100 idle connections: the gateway holds at most 64 ($open_now)" test "$open_now" -le 64
wait "$holder"
t_check "after they close, /health is 200" bk_wait_for 5 bk_http_ok "$BICKY_URL/health"

# ---------------------------------------------------------------- a SIGSTOPped node

a=$(tc_conv)
owner=$(tc_owner "$a")
b=""
for _ in $(seq 1 30); do
    b=$(tc_conv)
    [[ $(tc_owner "$b") != "$owner" ]] && break
done
node=$(tc_pid "$owner")
kill -STOP "$node"
health=$(took_ms bk_http_ok "$BICKY_URL/health")
t_check "$owner stopped: /health answers at once (${health} ms)" test "$health" -lt 500
t0=$(bk_now_ms)
tc_req GET "/api/conversations/$a"
dt=$(($(bk_now_ms) - t0))
t_check "a request for its conversation: 504 timeout after the 2 s timeout (${dt} ms)" \
    eval "[[ '$TC_CODE $(tc_jq .code)' == '504 timeout' ]] && ((dt >= 1900 && dt < 4000))"
tc_req GET "/api/conversations/$b"
t_check "the other node's conversation still answers 200" test "$TC_CODE" = 200
t_check "/health stayed fast during the wait" bk_http_ok "$BICKY_URL/health"
kill -CONT "$node"
t_check "after SIGCONT the conversation answers again" \
    bk_wait_for 5 eval 'tc_req GET /api/conversations/'"$a"'; [[ $TC_CODE == 200 ]]'

# ---------------------------------------------------------------- a SIGSTOPped Postgres

pm=$(bk_pg_pids "$TC_VAR/pg" | head -n 1)
mapfile -t pg < <(echo "$pm"; pgrep -P "$pm")
kill -STOP "${pg[@]}"
health=$(took_ms bk_http_ok "$BICKY_URL/health")
t_check "Postgres stopped: /health answers at once (${health} ms)" test "$health" -lt 500
t_check "... the registry loop answers (bickyctl nodes: both alive)" \
    eval 'timeout 3 true && tc_node_is n1 alive && tc_node_is n2 alive'
tc_req GET "/api/conversations/$a"
t_check "... a request needing the database: 504 in time, no hang" test "$TC_CODE" = 504
t_check "... /ready still 200 (nodes keep heartbeating)" bk_http_ok "$BICKY_URL/ready"
kill -CONT "${pg[@]}"
t_check "Postgres back: requests work again" \
    bk_wait_for 10 eval 'tc_req GET /api/conversations/'"$a"'; [[ $TC_CODE == 200 ]]'
t_check "and writes too" bk_wait_for 10 eval '[[ -n $(tc_post '"$a"' "after the freeze") ]]'

tc_finish conv_limits
