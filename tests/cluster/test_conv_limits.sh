#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_limits.sh — "nothing unbounded" and "never block a loop" on a real
# cluster (mailboxes of 4, 2 s request timeout):
#  - request bodies: over 1 MiB is 413 (declared, chunked, or announced and
#    never sent) and writes nothing; just under it is accepted;
#  - a full turn queue is 429 with Retry-After, a full mailbox (the actor's
#    commit held by a row lock in Postgres) is 503 with Retry-After, and the
#    requests that were let in are acknowledged once the lock goes;
#  - a stalled SSE reader is disconnected (it takes nothing while output
#    waits) and the gateway's memory stays bounded, while 3 readers that keep
#    up get every stored event of 40 turns of 200 KB messages (events larger
#    than its 64 KiB buffer: it catches up from the store);
#  - connections past --max-connections are refused, the gateway survives;
#  - a SIGSTOPped node: the gateway keeps answering /health, requests for the
#    node's conversations get 504 in time, the other node's work on; with
#    Postgres SIGSTOPped, gateway and registry loops still answer.
# Every step waits for the state it needs (streams open, calls pending, turns
# stored, a disconnect counted) with generous deadlines, so a busy machine
# only makes it slower; timings are taken by the clients themselves.
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
TC_TIMEOUT=120 # curl's own limit: far past every answer the test waits for

F=$TC_VAR/bodies
mkdir -p "$F"
body_of() { python3 -c "import sys; sys.stdout.write('{\"content\":\"' + 'a' * $1 + '\"}')"; }
body_of $((1024 * 1024 + 100)) >"$F/over"
body_of 1000000 >"$F/under"


# Milliseconds GET /health takes as curl measures it (from its connect, so
# the start of the curl process on a busy machine does not count); 99999
# when it is not a 200.
health_ms() {
    curl -s -m 10 -o /dev/null -w '%{http_code} %{time_total}' "$BICKY_URL/health" |
        awk '{ printf "%d", $1 == 200 ? $2 * 1000 : 99999 }'
}

# ---------------------------------------------------------------- request bodies

c=$(tc_conv)
before=$(tc_counts)
tc_req POST "/api/conversations/$c/messages" "@$F/over"
t_check "body over 1 MiB (Content-Length): 413 payload_too_large" \
    test "$TC_CODE $(tc_jq .code)" = "413 payload_too_large"
tc_req POST "/api/conversations/$c/messages" "@$F/over" -H 'Transfer-Encoding: chunked'
t_check "chunked body over 1 MiB: 413 ($TC_CODE)" test "$TC_CODE" = 413
# Announced but never sent: answered at once from the headers. The client
# times the answer itself (from its send), so a slow start of python3 on a
# busy machine does not count; a gateway that waited for the body would not
# answer before the client's 30 s timeout.
ms=$(python3 - "$BICKY_HTTP_PORT" "$c" "$BICKY_TOKEN" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
t0 = time.monotonic()
s.sendall(("POST /api/conversations/%s/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{" % (sys.argv[2], sys.argv[3])).encode())
try:
    answer = s.recv(4096).decode("latin-1")
except OSError:
    answer = ""
print(int((time.monotonic() - t0) * 1000) if answer.startswith("HTTP/1.1 413") else "no-413")
EOF
)
t_check "Content-Length 2 MB, body never sent: 413 before reading (${ms} ms)" \
    eval "[[ '$ms' =~ ^[0-9]+$ ]] && ((ms < 20000))"
t_check "the refused bodies wrote nothing" test "$(tc_counts)" = "$before"
tc_post_keyed "/api/conversations/$c/messages" "@$F/under" "under-$c"
t_check "a 1 000 000 byte message is accepted (202; $TC_CODE)" test "$TC_CODE" = 202
t_check "... stored whole and answered" bk_wait_for 60 eval \
    "[[ \$(tc_sql \"select sum(length(content)) from messages where conversation_id = '$c' and status = 'completed'\") == 2000006 ]]"

# ---------------------------------------------------------------- queue full → 429

# The first turn streams 200 words 150 ms apart (30 s): it is still running
# when the next posts arrive, however slow the machine; the PATCH below
# takes the delay away and the queue drains.
q=$(tc_conv '{"metadata":{"echo":{"delay_ms":150}}}')
tc_post_keyed "/api/conversations/$q/messages" "{\"content\":\"$(printf 'word%d ' $(seq 1 200))\"}" \
    "long-$q"
ok=1
for i in 1 2 3 4; do
    tc_post_keyed "/api/conversations/$q/messages" "{\"content\":\"queued $i\"}" "queued-$i-$q"
    [[ $TC_CODE == 202 ]] || ok=0
done
t_check "a running turn and 4 queued messages (mailbox-max 4) are accepted" test "$ok" = 1
before=$(tc_counts)
tc_req POST "/api/conversations/$q/messages" '{"content":"one too many"}'
t_check "the 6th: 429 rate_limited with Retry-After" \
    test "$TC_CODE $(tc_jq .code) $(tc_header Retry-After)" = "429 rate_limited 1"
t_check "... and nothing written" test "$(tc_counts)" = "$before"
tc_req PATCH "/api/conversations/$q" '{"metadata":{"echo":{"delay_ms":0}}}'
t_check "the queue drains" tc_wait_status "$q" idle 120
tc_post_keyed "/api/conversations/$q/messages" '{"content":"room again"}' "again-$q"
t_check "then a post is accepted again ($TC_CODE)" test "$TC_CODE" = 202
tc_wait_status "$q" idle 60

# ---------------------------------------------------------------- mailbox full → 503

m=$(tc_conv)
# A session holding the conversation's row lock until we commit it.
coproc LOCKER { psql "$BICKY_DATABASE_URL" -X -q >/dev/null 2>&1; }
echo "begin; select 1 from conversations where id = '$m' for update; select 'e2e-locked';" \
    >&"${LOCKER[1]}"
bk_wait_for 60 eval "[[ \$(tc_sql \"select count(*) from pg_stat_activity where state = 'idle in transaction' and query like '%e2e-locked%'\") -ge 1 ]]"
# Six posts at once: five fit (one commit held by the lock, four waiting in
# the mailbox), one is refused 503. Which one depends on arrival order, so
# count the answers. The lock goes once the refusal came back: then the
# five are in. One that the gateway's 2 s timeout answered 504 on a busy
# machine gets its real answer again with its Idempotency-Key.
for i in 1 2 3 4 5 6; do
    curl -s -m 60 -o "$TC_VAR/held.$i.body" -D "$TC_VAR/held.$i.hdrs" -w '%{http_code}\n' \
        -X POST -H "Authorization: Bearer $BICKY_TOKEN" -H "$TC_JSON" \
        -H "Idempotency-Key: held-$i-$m" --data-binary "{\"content\":\"held $i\"}" \
        "$BICKY_URL/api/conversations/$m/messages" >"$TC_VAR/held.$i" &
done
refused() { grep -l '^503$' "$TC_VAR"/held.[1-6] 2>/dev/null | head -n 1; }
bk_wait_for 60 eval '[[ -n $(refused) ]]'
r=$(refused)
r=${r##*.}
t_check "a commit held by a row lock, 4 requests waiting: one more is 503 with Retry-After" \
    eval "[[ -n '$r' && \$(jq -r .code '$TC_VAR/held.$r.body') == unavailable &&
        \$(tr -d '\\r' <'$TC_VAR/held.$r.hdrs' | grep -ci '^retry-after: 1$') == 1 ]]"
lock_fd=${LOCKER[1]}
echo "commit;" >&"$lock_fd"
exec {lock_fd}>&-
wait
for i in 1 2 3 4 5 6; do
    if [[ $(cat "$TC_VAR/held.$i") == 504 ]]; then
        tc_post_keyed "/api/conversations/$m/messages" "{\"content\":\"held $i\"}" "held-$i-$m"
        echo "$TC_CODE" >"$TC_VAR/held.$i"
    fi
done
t_check "the 5 requests let in are all acknowledged once the lock goes" \
    test "$(cat "$TC_VAR"/held.[1-6] | sort | uniq -c | awk '{ printf "%sx%s ", $2, $1 }')" = "202x5 503x1 "
t_check "... and stored, the refused one not" \
    test "$(tc_sql "select count(*) from messages where conversation_id = '$m' and role = 'user'") $(tc_sql "select count(*) from messages where conversation_id = '$m' and content = 'held ${r:-0}'")" = "5 0"
tc_wait_status "$m" idle 60

# ---------------------------------------------------------------- a stalled SSE reader

s=$(tc_conv '{"title":"flood"}')
gw=$(tc_pid gateway)
rss0=$(tc_rss "$gw")
slow0=$(tc_metric bicky_gateway_sse_slow_disconnects_total)
N=40
# Every stream is open before the first post. The stalled reader takes
# nothing until the test has seen it disconnected; the readers that keep up
# read until the N-th turn.completed, and give up only after 60 s without
# any event (a broken stream), or 10 minutes in all.
rm -f "$TC_VAR/ready" "$TC_VAR/unstall"
tc_sse "/api/conversations/$s/events" --stall 600 --stall-file "$TC_VAR/unstall" --rcvbuf 4096 \
    --timeout 30 --ready-file "$TC_VAR/ready" >"$TC_VAR/stall.out" &
staller=$!
bk_wait_for 60 test -e "$TC_VAR/ready"
readers=()
for r in 1 2 3; do
    rm -f "$TC_VAR/ready"
    tc_sse "/api/conversations/$s/events" --until turn.completed --until-count "$N" --idle 60 \
        --timeout 600 --ready-file "$TC_VAR/ready" >"$TC_VAR/reader.$r" &
    readers+=($!)
    bk_wait_for 60 test -e "$TC_VAR/ready"
done
t_check "the stalled reader and 3 readers are connected" \
    test "$(tc_metric bicky_gateway_sse_clients)" -ge 4
body_of 200000 >"$F/200k"
for i in $(seq 1 $N); do
    tc_post_keyed "/api/conversations/$s/messages" "@$F/200k" "flood-$i-$s"
done
turns() { tc_sql "select count(*) from events where conversation_id = '$s' and type = 'turn.completed'"; }
t_check "$N posts of 200 KB (about 16 MB of events): every turn completed" \
    bk_wait_for 300 eval '[[ $(turns) == "$N" ]]'
rss1=$(tc_rss "$gw")
t_check "the stalled reader was disconnected: slow disconnects counted" \
    bk_wait_for 60 eval "((\$(tc_metric bicky_gateway_sse_slow_disconnects_total) > $slow0))"
touch "$TC_VAR/unstall"
wait "$staller"
got=$(jq -r 'select(.end) | "\(.end) \(.bytes)"' "$TC_VAR/stall.out")
t_check "... its stream ended early ($got of ~16 MB)" \
    eval "[[ '$got' =~ ^(eof|reset)\ ([0-9]+)$ ]] && ((\${BASH_REMATCH[2]} < 8000000))"
t_check "gateway memory stayed bounded (RSS ${rss0} KiB → ${rss1} KiB: < +8 MiB for ~13 MB unsent)" \
    test $((rss1 - rss0)) -lt 8192
wait "${readers[@]}"
want=$(tc_sql "select id from events where conversation_id = '$s' and type <> 'conversation.created'
               order by id" | tr '\n' ' ')
for r in 1 2 3; do
    t_check "reader $r that keeps up got all $N turns ($(jq -r 'select(.end) | .end' "$TC_VAR/reader.$r"))" \
        test "$(jq -s '[.[] | select(.event == "turn.completed")] | length' "$TC_VAR/reader.$r")" = "$N"
    got=$(jq -r 'select(.id != null) | .id' "$TC_VAR/reader.$r" | tr '\n' ' ')
    t_check "... and every stored event once, in order" test "$got" = "$want"
    [[ $got == "$want" ]] || printf '  got  %s\n  want %s\n' "$got" "$want"
done
t_check "the gateway holds no SSE client afterwards" \
    bk_wait_for 60 eval '[[ $(tc_metric bicky_gateway_sse_clients) == 0 ]]'

# ---------------------------------------------------------------- connection limit

# The holder opens 100 connections, says so in a file, and keeps them open
# until the test has looked (or 120 s).
gw_socks() { find "/proc/$gw/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
socks0=$(gw_socks)
rm -f "$TC_VAR/conns.open" "$TC_VAR/conns.release"
python3 - "$BICKY_HTTP_PORT" "$TC_VAR/conns.open" "$TC_VAR/conns.release" >"$TC_VAR/conns.out" 2>&1 <<'EOF' &
import os, socket, sys, time
socks = []
for _ in range(100):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30))
    except OSError:
        pass
open(sys.argv[2], "w").write("%d\n" % len(socks))
end = time.monotonic() + 120
while time.monotonic() < end and not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
EOF
holder=$!
bk_wait_for 120 test -s "$TC_VAR/conns.open"
# Counted from the gateway's file descriptors: at its limit /metrics itself
# cannot get in. The gateway takes the connections as its loop gets to them:
# wait until it holds 64 more sockets and the count stops moving, then look.
bk_wait_for 60 eval '(($(gw_socks) - socks0 >= 64))'
prev=-1
for _ in $(seq 1 100); do
    now=$(gw_socks)
    ((now == prev)) && break
    prev=$now
    sleep 0.2
done
held=$(($(gw_socks) - socks0))
t_check "100 idle connections: the gateway holds at most 64 ($held)" test "$held" -le 64
touch "$TC_VAR/conns.release"
wait "$holder"
t_check "after they close, /health is 200" bk_wait_for 60 bk_http_ok "$BICKY_URL/health"

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
health=$(health_ms)
t_check "$owner stopped: /health answers at once (${health} ms)" test "$health" -lt 5000
# curl's own clock, from its connect: the start of curl does not count.
tc_req GET "/api/conversations/$a" "" -w '%{http_code}\n%{time_total}'
dt=$(awk 'END { printf "%d", $1 * 1000 }' <<<"$TC_CODE")
TC_CODE=$(head -n 1 <<<"$TC_CODE")
t_check "a request for its conversation: 504 timeout after the 2 s timeout (${dt} ms)" \
    eval "[[ '$TC_CODE $(tc_jq .code)' == '504 timeout' ]] && ((dt >= 1900 && dt < 10000))"
t_check "the other node's conversation still answers 200" \
    bk_wait_for 60 eval 'tc_req GET /api/conversations/'"$b"'; [[ $TC_CODE == 200 ]]'
health=$(health_ms)
t_check "/health stayed fast during the wait (${health} ms)" test "$health" -lt 5000
kill -CONT "$node"
t_check "after SIGCONT the conversation answers again" \
    bk_wait_for 60 eval 'tc_req GET /api/conversations/'"$a"'; [[ $TC_CODE == 200 ]]'

# ---------------------------------------------------------------- a SIGSTOPped Postgres

pm=$(bk_pg_pids "$TC_VAR/pg" | head -n 1)
mapfile -t pg < <(echo "$pm"; pgrep -P "$pm")
kill -STOP "${pg[@]}"
health=$(health_ms)
t_check "Postgres stopped: /health answers at once (${health} ms)" test "$health" -lt 5000
# Active, or a standby once its store missed the 2 s query deadline (by
# design): either way the registry's loop answered.
t_check "... the registry loop answers (bickyctl status: reachable)" \
    bk_wait_for 30 eval '[[ $(BICKY_DATABASE_URL= "$CTL" status --json | jq -r ".registries[0].reachable") == true ]]'
tc_req GET "/api/conversations/$a"
# The gateway's 10 s request timeout (504) and the node's 10 s database answer
# deadline (503, docs/db.md) end it at about the same time: either is in time.
t_check "... a request needing the database: 504 or 503 in time, no hang ($TC_CODE)" \
    eval '[[ $TC_CODE == 504 || $TC_CODE == 503 ]]'
t_check "... /ready still 200 (nodes keep heartbeating)" bk_wait_for 30 bk_http_ok "$BICKY_URL/ready"
kill -CONT "${pg[@]}"
t_check "Postgres back: requests work again" \
    bk_wait_for 60 eval 'tc_req GET /api/conversations/'"$a"'; [[ $TC_CODE == 200 ]]'
tc_post_keyed "/api/conversations/$a/messages" '{"content":"after the freeze"}' "thaw-$a"
t_check "and writes too ($TC_CODE)" test "$TC_CODE" = 202

tc_finish conv_limits
