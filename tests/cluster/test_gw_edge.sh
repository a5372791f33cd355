#!/usr/bin/env bash
# test_gw_edge.sh — the gateway refuses before it works (issue 12, item 5),
# with real clients (curl, python sockets: tests/tools/edge_probe.py,
# sse_probe.py) against a gateway run with small limits:
#  - the token is checked on the head: a POST declaring a 10 MiB body, with
#    no token or a bad one, is answered 401 while not one byte of the body
#    was sent; with a good token the same head is 413, still unread; a small
#    authenticated POST is served;
#  - --max-connections-per-ip 8: a 9th connection from one address is closed
#    before a byte is read, another address is served meanwhile, and once
#    the 8 close the address is served again;
#  - --request-deadline-ms 5000: a head trickled byte by byte gets the JSON
#    408 at the deadline, so does a body trickled byte by byte, and a
#    kept-alive connection trickling its next head is closed; a slowish
#    request within the deadline is served;
#  - --auth-fail-max 5 in --auth-fail-window-ms 8000: the 6th failure from an
#    address is 429 with Retry-After, and so is a valid token never seen
#    before (no node is asked), while a token the gateway already knows
#    passes and other addresses are untouched; after the window, 401 again;
#  - --sse-frame-max 65536: a stream due a 100 KiB event is closed (no
#    buffer growth) after the events before it; resuming from its
#    Last-Event-ID is closed again at the same place; the event is stored
#    and readable by REST; the gateway's RSS stays small;
#  - the gateway process is the same one at the end.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_edge
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_MAX_CONNECTIONS_PER_IP=8 BICKY_REQUEST_DEADLINE_MS=5000 BICKY_AUTH_FAIL_MAX=5
export BICKY_AUTH_FAIL_WINDOW_MS=8000 BICKY_SSE_FRAME_MAX=65536
tc_start gw_edge
gw=$(tc_pid gateway)
PROBE="python3 $SRC/tests/tools/edge_probe.py"
PORT=$BICKY_HTTP_PORT
between() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x <= hi) }'; }

c=$(tc_conv)
t_check "a conversation to work with" test -n "$c"

# ---------------------------------------------------------------- auth before the body

out=$($PROBE unauth-big "$PORT")
t_check "no token, 10 MiB declared, no body sent: 401 ($out)" \
    test "$(jq -r '"\(.status) \(.body | fromjson | .code)"' <<<"$out")" = "401 unauthorized"
out=$($PROBE unauth-big "$PORT" bk_not_a_token)
t_check "bad token, 10 MiB declared, no body sent: 401 ($out)" \
    test "$(jq -r .status <<<"$out")" = 401
out=$($PROBE unauth-big "$PORT" "$BICKY_TOKEN")
t_check "good token, 10 MiB declared, no body sent: 413 ($out)" \
    test "$(jq -r '"\(.status) \(.body | fromjson | .code)"' <<<"$out")" = "413 payload_too_large"
head -c 10485760 /dev/zero | tr '\0' x >"$TC_VAR/big"
# curl asks "Expect: 100-continue" for a body this big: the 401 comes
# instead of the 100, so curl never sends the body.
got=$(curl -s -o /dev/null -w '%{http_code} %{size_upload}' -m 20 -H "$TC_JSON" \
    --data-binary @"$TC_VAR/big" "$BICKY_URL/api/conversations")
t_check "curl: an unauthenticated 10 MiB POST is 401, no body byte sent ($got)" \
    test "$got" = "401 0"
tc_req POST /api/conversations '{"title":"small"}'
t_check "an authenticated small POST: 201" test "$TC_CODE" = 201

# ---------------------------------------------------------------- connections per address

coproc CONNS { $PROBE conns "$PORT" 8 127.0.0.1; }
read -r -t 20 line <&"${CONNS[0]}"
t_check "8 connections held from 127.0.0.1, the 9th closed at once ($line)" \
    test "$(jq -r .extra <<<"$line")" = closed
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 --interface 127.0.0.2 "$BICKY_URL/health")
t_check "meanwhile 127.0.0.2 is served ($code)" test "$code" = 200
exec {CONNS[1]}>&-
wait "$CONNS_PID" 2>/dev/null
t_check "after the 8 closed, 127.0.0.1 is served again" \
    bk_wait_for 5 bk_http_ok "$BICKY_URL/health"

# ---------------------------------------------------------------- the request deadline

$PROBE trickle-head "$PORT" 0.2 >"$TC_VAR/th" &
th=$!
$PROBE trickle-body "$PORT" "$BICKY_TOKEN" 0.2 >"$TC_VAR/tb" &
tb=$!
$PROBE trickle-next "$PORT" 0.2 >"$TC_VAR/tn" &
tn=$!
wait "$th" "$tb" "$tn"
# "STATUS CODE SECS" of an edge_probe answer.
answer() { jq -r '"\(.status) \(.body | fromjson? | .code) \(.secs)"' "$1"; }
read -r st ecode secs <<<"$(answer "$TC_VAR/th")"
t_check "a head trickled byte by byte: JSON 408 at the 5 s deadline ($st $ecode ${secs}s)" \
    eval '[[ "$st $ecode" == "408 request_timeout" ]] && between "$secs" 4.5 7.5'
read -r st ecode secs <<<"$(answer "$TC_VAR/tb")"
t_check "a body trickled byte by byte: JSON 408 at the 5 s deadline ($st $ecode ${secs}s)" \
    eval '[[ "$st $ecode" == "408 request_timeout" ]] && between "$secs" 4 7.5'
out=$(cat "$TC_VAR/tn")
t_check "a kept-alive connection trickling its next head: closed at the deadline ($out)" \
    eval '[[ $(jq -r .first <<<"$out") == 200 ]] && between "$(jq -r .secs <<<"$out")" 3.5 7.5'
code=$(
    {
        printf 'GET /health HTTP/1.1\r\nHost: x\r\n'
        sleep 1
        printf 'Connection: close\r\n\r\n'
    } | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for chunk in iter(lambda: sys.stdin.buffer.read1(4096), b""):
    s.sendall(chunk)
print(s.recv(12)[9:12].decode())' "$PORT"
)
t_check "a head sent over 1 s (within the deadline) is served ($code)" test "$code" = 200

# ---------------------------------------------------------------- failed authentications

ip3() { curl -s -o "$TC_VAR/ab" -D "$TC_VAR/ah" -w '%{http_code}' -m 5 --interface 127.0.0.3 "$@"; }
# A token the gateway has just cached as valid (its cache keeps it 60 s).
known=$(tc_team_token edge-known)
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 --interface 127.0.0.4 \
    -H "Authorization: Bearer $known" "$BICKY_URL/api/conversations")
t_check "a second team's token, from 127.0.0.4: 200 ($code)" test "$code" = 200
codes=""
for i in 1 2 3 4; do
    codes+="$(ip3 -H "Authorization: Bearer bk_wrong_$i" "$BICKY_URL/api/conversations") "
done
codes+="$(ip3 "$BICKY_URL/api/conversations")"
t_check "5 failures from 127.0.0.3 (4 bad tokens, 1 missing): 401 each ($codes)" \
    test "$codes" = "401 401 401 401 401"
code=$(ip3 -H "Authorization: Bearer bk_wrong_6" "$BICKY_URL/api/conversations")
ra=$(tr -d '\r' <"$TC_VAR/ah" | awk -F': ' 'tolower($1) == "retry-after" { print $2 }')
t_check "the 6th: 429 rate_limited with Retry-After 1..8 ($code, $ra)" \
    eval '[[ $code == 429 && $(jq -r .code "$TC_VAR/ab") == rate_limited ]] && between "$ra" 1 8'
fresh=$(tc_team_token edge-fresh)
code=$(ip3 -H "Authorization: Bearer $fresh" "$BICKY_URL/api/conversations")
t_check "a valid token the gateway never saw, from 127.0.0.3: 429, no node asked ($code)" \
    test "$code" = 429
code=$(ip3 -H "Authorization: Bearer $known" "$BICKY_URL/api/conversations")
t_check "a token the gateway already knows, from 127.0.0.3: 200 ($code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 --interface 127.0.0.4 \
    -H "Authorization: Bearer $fresh" "$BICKY_URL/api/conversations")
t_check "the new token from 127.0.0.4: 200 ($code)" test "$code" = 200
t_check "after Retry-After, 127.0.0.3 gets 401 again" \
    bk_wait_for 12 eval '[[ $(ip3 -H "Authorization: Bearer bk_wrong_7" "$BICKY_URL/api/conversations") == 401 ]]'

# ---------------------------------------------------------------- one SSE frame over the cap

c2=$(tc_conv '{"strategy":"echo"}')
tc_post "$c2" "small one" >/dev/null
tc_wait_status "$c2" idle 30 >/dev/null
small_last=$(tc_sql "select max(id) from events where conversation_id = '$c2'")
tc_sse "/api/conversations/$c2/events?after=0" --timeout 60 --ready-file "$TC_VAR/ready" \
    >"$TC_VAR/sse" &
sse=$!
bk_wait_for 20 test -e "$TC_VAR/ready"
big=$(python3 -c "print('y' * 102400)")
tc_req POST "/api/conversations/$c2/messages" "{\"content\":\"$big\"}"
t_check "a 100 KiB message is accepted (202)" test "$TC_CODE" = 202
wait "$sse"
end=$(tail -n 1 "$TC_VAR/sse" | jq -r .end)
last=$(grep '"id"' "$TC_VAR/sse" | jq -r 'select(.id != null) | .id' | tail -n 1)
t_check "the stream is closed by the gateway ($end), not by its timeout" \
    eval '[[ $end == eof || $end == reset ]]'
t_check "… after every event before the big one (last id $last >= $small_last)" \
    test "${last:-0}" -ge "$small_last"
t_check "… and without the big event" \
    test "$(grep -c yyyyyyyyyyyyyyyy "$TC_VAR/sse")" = 0
tc_sse "/api/conversations/$c2/events" --header "Last-Event-ID: $last" --timeout 30 >"$TC_VAR/sse2"
t_check "resuming from Last-Event-ID $last: closed again at the same event" \
    eval '[[ $(tail -n 1 "$TC_VAR/sse2" | jq -r .end) == eof || $(tail -n 1 "$TC_VAR/sse2" | jq -r .end) == reset ]]'
tc_req GET "/api/conversations/$c2/messages"
t_check "the big message is stored and readable by REST ($TC_CODE)" \
    test "$(tc_jq 'any(.data[]; (.content | length) == 102400)')" = true
rss=$(tc_rss "$gw")
t_check "the gateway's RSS stays small (${rss} KiB < 200000)" test "${rss:-999999}" -lt 200000

t_check "the gateway is the same process" test "$(tc_pid gateway)" = "$gw"
tc_finish gw_edge
