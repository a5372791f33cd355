#!/usr/bin/env bash
# test_gw_headers.sh — the gateway's per-connection memory pool (4 KiB, issue 6
# P7) and its head stage (gateway/gw_accept.c) against large requests:
#  - requests with 3 KiB of extra headers are served (API call, SSE stream);
#  - SSE answers carry Content-Type: text/event-stream; charset=utf-8;
#  - the gateway's own limits answer the API's JSON error: a head (request
#    line and headers) over 3584 bytes is 431 headers_too_large, a request
#    target over 2048 bytes is 414 uri_too_long; at the limits: 200;
#  - whatever their size, heads over the limits get the JSON error, never
#    libmicrohttpd's HTML: headers of 4 KiB, 16 KiB, 64 KiB and 1 MiB (raw
#    socket), 512 KiB (curl), an 8 KiB Authorization, four 2 KiB headers → 431; a
#    6 KiB request line and a 1 MiB URL → 414;
#  - each header field and query argument weighs 64 bytes more (what
#    libmicrohttpd's pool spends on it): 40 fields at the budget (3840) are
#    served, one byte more is 431 JSON; an SSE stream at the budget streams;
#  - a head sent one byte at a time is served;
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

# ---------------------------------------------------------------- any size: JSON
# The gateway peeks at every new connection's head before libmicrohttpd reads
# it (gateway/gw_accept.c), so heads of any size get the JSON error, never
# libmicrohttpd's HTML page, and quickly: the refused client may finish
# sending (the rest is read and dropped), then reads the answer.

# raw_head FILE: sends the request head in FILE on a raw socket, reads the
# answer to its end; prints the status, the Content-Type, the JSON code and
# the seconds taken, or "hang"/"error" (at most 60 s).
raw_head() {
    python3 - "$BICKY_HTTP_PORT" "$1" <<'EOF'
import json, socket, sys, time
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
try:
    s.sendall(open(sys.argv[2], "rb").read())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
        head, sep, body = data.partition(b"\r\n\r\n")
        length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        if sep and length and len(body) >= int(length[0].split(b":")[1]):
            break  # a whole answer (a kept-alive connection stays open)
except socket.timeout:
    print("hang")
    sys.exit()
except OSError as e:
    print("error", e)
    sys.exit()
head, _, body = data.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
hdrs = {k.lower(): v for k, _, v in (l.partition(": ") for l in lines[1:])}
try:
    code = json.loads(body)["code"]
except Exception:
    code = "not-json"
print(lines[0].split(" ")[1] if " " in lines[0] else "none", hdrs.get("content-type", "-"),
      code, "%.2f" % (time.monotonic() - t0))
EOF
}
H=$TC_VAR/heads
mkdir -p "$H"
for size in 4096 16384 65536 1048576; do
    printf 'GET /api/conversations/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\n\r\n' \
        "$c" "$TC_TOKEN" "$(pad "$size")" >"$H/h$size"
    got=$(raw_head "$H/h$size")
    t_check "a $size-byte header: 431 JSON headers_too_large ($got)" \
        eval '[[ $got =~ ^431\ application/json\ headers_too_large ]]'
done
printf 'GET /health?p=%s HTTP/1.1\r\nHost: x\r\n\r\n' "$(pad 1048576)" >"$H/url"
got=$(raw_head "$H/url")
t_check "a 1 MiB URL: 414 JSON uri_too_long ($got)" \
    eval '[[ $got =~ ^414\ application/json\ uri_too_long ]]'
# curl, a real client, sending one (from a file: one argument is limited to
# 128 KiB; curl 7.88 itself refuses to send a 1 MiB header, exit 27).
printf 'X-Pad: %s\n' "$(pad 524288)" >"$H/curl512k"
ms0=$(bk_now_ms)
TC_TIMEOUT=60 tc_req GET "/api/conversations/$c" "" -H "@$H/curl512k"
t_check "curl with a 512 KiB header: 431 JSON in $(($(bk_now_ms) - ms0)) ms ($TC_CODE)" \
    json_error 431 headers_too_large
big=$(pad 8192)
TC_TOKEN="$big" tc_req GET "/api/conversations/$c"
t_check "8 KiB Authorization: 431 JSON ($TC_CODE)" json_error 431 headers_too_large
tc_req GET "/api/conversations/$c" "" -H "X-A: $P2K" -H "X-B: $P2K" -H "X-C: $P2K" -H "X-D: $P2K"
t_check "four 2 KiB headers: 431 JSON ($TC_CODE)" json_error 431 headers_too_large
tc_req GET "/health?pad=$(pad 6144)" ""
t_check "6 KiB request line: 414 JSON ($TC_CODE)" json_error 414 uri_too_long
# Many small fields cost libmicrohttpd 64 bytes each: at the budget the
# answer is served, one byte over it is the JSON 431 (libmicrohttpd alone
# closed such a connection without an answer).
many_fields() { # SIZE: GET /health with Host, 38 X-Fnn fields and a filler, SIZE bytes
    python3 - "$1" <<'EOF'
import sys
size = int(sys.argv[1])
head = "GET /health HTTP/1.1\r\nHost: x\r\n" + "".join("X-F%02d: 1\r\n" % i for i in range(38))
head += "X-Fill: "
head += "f" * (size - len(head) - 4) + "\r\n\r\n"
assert len(head) == size
sys.stdout.write(head)
EOF
}
many_fields $((3840 - 40 * 64)) >"$H/fields_ok"
many_fields $((3840 - 40 * 64 + 1)) >"$H/fields_over"
got=$(raw_head "$H/fields_ok")
t_check "40 fields at the budget (bytes + 64 each = 3840): 200 ($got)" eval '[[ $got =~ ^200\  ]]'
got=$(raw_head "$H/fields_over")
t_check "40 fields one byte over the budget: 431 JSON ($got)" \
    eval '[[ $got =~ ^431\ application/json\ headers_too_large ]]'
# An SSE stream whose head weighs exactly the budget still gets its stream
# (the answer's headers and its chunk buffer fit the pool beside the head).
python3 - "$c" "$TC_TOKEN" >"$H/sse" <<'EOF'
import sys
conv, tok = sys.argv[1], sys.argv[2]
def head(pad):
    return ("GET /api/conversations/%s/events?after=0 HTTP/1.1\r\nHost: x\r\n"
            "Authorization: Bearer %s\r\nAccept: text/event-stream\r\nX-Pad: %s\r\n\r\n"
            % (conv, tok, "p" * pad))
base = len(head(0)) + 5 * 64  # 4 fields and 1 query argument
sys.stdout.write(head(3840 - base))
EOF
python3 - "$BICKY_HTTP_PORT" "$H/sse" >"$TC_VAR/sse_budget" 2>&1 <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(open(sys.argv[2], "rb").read())
data, deadline = b"", time.monotonic() + 60
while time.monotonic() < deadline:
    head, sep, chunked = data.partition(b"\r\n\r\n")
    body, rest = b"", chunked  # undo the chunked framing read so far
    while b"\r\n" in rest:
        size, _, after = rest.partition(b"\r\n")
        n = int(size, 16)
        if len(after) < n + 2:
            break
        body, rest = body + after[:n], after[n + 2:]
    if b"event: message.created" in body:
        break
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    if not d:
        break
    data += d
print(data.split(b"\r\n")[0].decode(), "stored-event" if b"event: message.created" in body else "no-event")
EOF
t_check "SSE with a head of 3840 by weight: streamed ($(cat "$TC_VAR/sse_budget"))" \
    grep -q '^HTTP/1.1 200 OK stored-event' "$TC_VAR/sse_budget"
# A head sent one byte at a time is judged once it is complete.
python3 - "$BICKY_HTTP_PORT" >"$TC_VAR/trickle" 2>&1 <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for b in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
    s.send(bytes([b]))
print(s.recv(200).split(b"\r\n")[0].decode())
EOF
t_check "a head sent one byte at a time: 200 ($(cat "$TC_VAR/trickle"))" grep -q ' 200 ' "$TC_VAR/trickle"

# ---------------------------------------------------------------- bodies

F=$TC_VAR/bodies
mkdir -p "$F"
body_of() { python3 -c "import sys; sys.stdout.write('{\"content\":\"' + 'b' * $1 + '\"}')"; }
body_of 1048000 >"$F/max"
body_of $((1024 * 1024 + 100)) >"$F/over"
b=$(tc_conv)
tc_req POST "/api/conversations/$b/messages" "@$F/max" -H "X-Pad: $P3K"
t_check "1 MiB body (Content-Length) with a 3 KiB header: 202 ($TC_CODE $(tc_jq .code))" test "$TC_CODE" = 202
tc_req POST "/api/conversations/$b/messages" "@$F/max" -H 'Transfer-Encoding: chunked'
t_check "1 MiB body (chunked): 202 ($TC_CODE $(tc_jq .code))" test "$TC_CODE" = 202
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
