#!/usr/bin/env bash
# test_gw_headers.sh — the gateway's per-connection memory pool (4 KiB, issue 6
# P7) against large requests:
#  - requests with 3 KiB of extra headers are served (API call, SSE stream);
#  - SSE answers carry Content-Type: text/event-stream; charset=utf-8;
#  - the gateway's own limits answer the API's JSON error: a head (request
#    line and headers) over 3584 bytes is 431 headers_too_large, a request
#    target over 2048 bytes is 414 uri_too_long; at the limits: 200;
#  - an 8 KiB Authorization header, four 2 KiB headers, 16 KiB and 64 KiB of
#    headers are either served or refused cleanly (431/414/413/400/401), quickly,
#    never a hang or a crash; a request line of 6 KiB likewise;
#  - POST bodies up to --max-body (1 MiB, declared and chunked) are accepted
#    and stored whole, with 3 KiB of extra headers too; over it is 413;
#  - the gateway process is the same one at the end (no crash, no restart).
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_headers
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

# A 1 MiB message to an echo conversation is answered after its whole turn
# (several MB of rows and events) is committed: on a busy machine, under
# AddressSanitizer, that takes seconds. Wait for it (generous deadlines
# below) rather than let the 10 s request timeout turn it into a 504.
export BICKY_REQUEST_TIMEOUT_MS=120000
tc_start gw_headers
gw=$(tc_pid gateway)

pad() { python3 -c "import sys; sys.stdout.write('x' * $1)"; }
P2K=$(pad 2048)
P3K=$(pad 3072)
TC_TIMEOUT=150

# A clean refusal or an answer: an HTTP status, no timeout (curl gives 000).
clean() { [[ $TC_CODE =~ ^(200|201|202|400|401|413|414|431)$ ]]; }

c=$(tc_conv)
t_check "a conversation to work with" test -n "$c"

# ---------------------------------------------------------------- served

tc_req GET "/api/conversations/$c" "" -H "X-Pad: $P3K"
t_check "GET with a 3 KiB header: 200" test "$TC_CODE" = 200
tc_req GET "/api/conversations/$c" "" -H "X-Pad-A: $P2K" -H "X-Pad-B: $(pad 1024)"
t_check "GET with two headers of 2 KiB and 1 KiB: 200" test "$TC_CODE" = 200
tc_sse "/api/conversations/$c/events?after=0" --stored 1 --timeout 60 >"$TC_VAR/sse0" &
sse=$!
mid=$(tc_post "$c" "hello with big headers around")
wait "$sse"
t_check "SSE stream (plain) gets the stored events" grep -q '"end":"stored"' "$TC_VAR/sse0"
tc_sse "/api/conversations/$c/events?after=0" --header "X-Pad: $P3K" --until message.created \
    --timeout 60 >"$TC_VAR/sse1"
t_check "SSE stream with a 3 KiB header: served, stored events arrive" \
    grep -q '"end":"until"' "$TC_VAR/sse1"
t_check "a post went through ($mid)" test -n "$mid"
# The media type of every SSE answer names its charset.
sse_type() { tc_sse "$1" --headers-only --timeout 60 | jq -r '.headers["content-type"]'; }
for p in "/api/conversations/$c/events?after=0" /api/stream; do
    ct=$(sse_type "$p")
    t_check "SSE $p: Content-Type: text/event-stream; charset=utf-8 ($ct)" \
        test "$ct" = "text/event-stream; charset=utf-8"
done

# ---------------------------------------------------------------- the gateway's own limits: JSON

# Whether the last answer is the API's JSON error with this status and code.
json_error() {
    [[ $TC_CODE == "$1" && $(tc_header Content-Type) == application/json* &&
        $(tc_jq .code) == "$2" && -n $(tc_jq .error) ]]
}
# req_head SIZE PATH: GET PATH whose head is SIZE bytes as the gateway counts
# it (request line, "name: value" CRLF per header, final CRLF). curl's own
# User-Agent and Accept are removed: Host, X-Pad and (unless TC_TOKEN is -)
# Authorization remain.
req_head() {
    local host=${BICKY_URL#http://} fixed
    # "GET " PATH " HTTP/1.1" CRLF, "Host: " host CRLF, "X-Pad: " CRLF, CRLF.
    fixed=$((4 + ${#2} + 11 + 8 + ${#host} + 9 + 2))
    if [[ $TC_TOKEN != - ]]; then
        fixed=$((fixed + 24 + ${#TC_TOKEN})) # "Authorization: Bearer " CRLF
    fi
    tc_req GET "$2" "" -H 'User-Agent:' -H 'Accept:' -H "X-Pad: $(pad $(($1 - fixed)))"
}
TC_TOKEN=- req_head 3584 /health
t_check "a head of 3584 bytes (the limit): 200 ($TC_CODE)" test "$TC_CODE" = 200
TC_TOKEN=- req_head 3585 /health
t_check "a head of 3585 bytes: 431 JSON headers_too_large ($TC_CODE $(head -c 80 <<<"$TC_BODY"))" \
    json_error 431 headers_too_large
req_head 3584 "/api/conversations/$c"
t_check "an API call with a head of 3584 bytes: 200 ($TC_CODE)" test "$TC_CODE" = 200
req_head 3585 "/api/conversations/$c"
t_check "an API call with a head of 3585 bytes: 431 JSON ($TC_CODE $(head -c 80 <<<"$TC_BODY"))" \
    json_error 431 headers_too_large
TC_TOKEN=- tc_req GET "/health?p=$(pad 2038)"
t_check "a request target of 2048 bytes (the limit): 200 ($TC_CODE)" test "$TC_CODE" = 200
TC_TOKEN=- tc_req GET "/health?p=$(pad 2039)"
t_check "a request target of 2049 bytes: 414 JSON uri_too_long ($TC_CODE $(head -c 80 <<<"$TC_BODY"))" \
    json_error 414 uri_too_long
tc_req GET "/api/conversations?cursor=$(pad 3000)"
t_check "a 3 KiB query on an API route: 414 JSON ($TC_CODE $(head -c 80 <<<"$TC_BODY"))" \
    json_error 414 uri_too_long

# ---------------------------------------------------------------- refused cleanly
# Past the 4 KiB pool libmicrohttpd answers 431/414 itself (HTML body) or
# closes: still a clean refusal.

big=$(pad 8192)
ms0=$(bk_now_ms)
TC_TOKEN="$big" tc_req GET "/api/conversations/$c"
t_check "8 KiB Authorization: clean answer ($TC_CODE) in $(($(bk_now_ms) - ms0)) ms" clean
tc_req GET "/api/conversations/$c" "" -H "X-A: $P2K" -H "X-B: $P2K" -H "X-C: $P2K" -H "X-D: $P2K"
t_check "four 2 KiB headers: clean answer ($TC_CODE)" clean
tc_req GET "/api/conversations/$c" "" -H "X-Pad: $(pad 16384)"
t_check "16 KiB header: clean answer ($TC_CODE)" clean
tc_req GET "/health?pad=$(pad 6144)" ""
t_check "6 KiB request line: clean answer ($TC_CODE)" clean
# 64 KiB of headers on a raw socket: an answer or a close, not a hang (no
# answer within 60 s).
python3 - "$BICKY_HTTP_PORT" >"$TC_VAR/raw64" 2>&1 <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
try:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"y" * 65536 + b"\r\n\r\n")
except socket.timeout:
    pass  # nothing read for 60 s: the recv below times out as well
except OSError:
    pass  # closed by the server while sending: also clean
try:
    print(s.recv(200).decode("latin-1").split("\r\n")[0] or "closed")
except socket.timeout:
    print("hang: no answer in 60 s")
except OSError as e:
    print("closed", e)
EOF
t_check "64 KiB of headers: an answer or a close ($(head -c 40 "$TC_VAR/raw64"))" \
    grep -Eq '^(HTTP/1.1 4[0-9][0-9]|closed)' "$TC_VAR/raw64"

# ---------------------------------------------------------------- bodies

F=$TC_VAR/bodies
mkdir -p "$F"
body_of() { python3 -c "import sys; sys.stdout.write('{\"content\":\"' + 'b' * $1 + '\"}')"; }
body_of 1048000 >"$F/max"
body_of $((1024 * 1024 + 100)) >"$F/over"
b=$(tc_conv)
tc_req POST "/api/conversations/$b/messages" "@$F/max" -H "X-Pad: $P3K"
t_check "1 MiB body (Content-Length) with a 3 KiB header: 202" test "$TC_CODE" = 202
tc_req POST "/api/conversations/$b/messages" "@$F/max" -H 'Transfer-Encoding: chunked'
t_check "1 MiB body (chunked): 202" test "$TC_CODE" = 202
tc_req POST "/api/conversations/$b/messages" "@$F/over" -H 'Transfer-Encoding: chunked'
t_check "chunked body over 1 MiB: 413" test "$TC_CODE" = 413
t_check "both 1 MiB messages stored whole" bk_wait_for 120 eval \
    "[[ \$(tc_sql \"select count(*) from messages where conversation_id = '$b' and role = 'user' and length(content) = 1048000\") == 2 ]]"

# ---------------------------------------------------------------- still the same process

t_check "/health still 200" bk_http_ok "$BICKY_URL/health"
t_check "the gateway did not restart (pid $gw)" test "$(tc_pid gateway)" = "$gw"
t_check "no libmicrohttpd panic in the gateway log" \
    bash -c "! grep -q 'panic' '$TC_VAR/log/gateway.log'"
tc_finish gw_headers
