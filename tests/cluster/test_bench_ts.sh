#!/usr/bin/env bash
# test_bench_ts.sh — the logic of bench/run's side-by-side rows (TS1–TS5,
# bench/bench_ts.sh) that needs neither bun nor the old server:
#  - ts_ratio gives Bicky ÷ TypeScript only when both sides have good answers
#    and at most 1% bad ones (an erroring server is no throughput);
#  - ts_counts splits a wrk run into good answers and everything else;
#  - bench/wrk_post.lua in mode legacy posts {content, interactionId} to
#    /message over the ids, sends no Authorization header without a token,
#    and with BENCH_EXPECT counts a 200 whose body lacks it apart from the
#    good ones; wrk_get.lua with BENCH_EXPECT reports statuses too.
# The wrk part runs against a small Python server for 1 s each. Needs wrk, jq,
# python3. Env: BICKY_SRC (the bench itself is not part of tests/run).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=bench_ts
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
BK_ROOT=$SRC
RES=""
# shellcheck source=bench/bench_lib.sh
source "$SRC/bench/bench_lib.sh"
# shellcheck source=bench/bench_ts.sh
source "$SRC/bench/bench_ts.sh"

for tool in wrk jq python3; do
    command -v "$tool" >/dev/null || bk_die "$tool is missing (apt-get install $tool)"
done
T=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/bench_ts.XXXXXX")
SERVER=""
cleanup() {
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

jqe() {
    jq -e "$@" >/dev/null
}

# ---------------------------------------------------------------- ts_ratio

t_check "ratio of two clean runs" [ "$(ts_ratio 2368 35520 0 727 10905 0)" == 3.26 ]
t_check "1% bad answers still count" [ "$(ts_ratio 1000 1000 10 100 100 1)" == 10.00 ]
t_check "over 1% bad on the TypeScript side: n/a" [ "$(ts_ratio 1000 1000 0 100 100 2)" == n/a ]
t_check "over 1% bad on Bicky's side: n/a" [ "$(ts_ratio 1000 1000 11 100 100 0)" == n/a ]
t_check "no good answer: n/a" [ "$(ts_ratio 1000 1000 0 0 0 0)" == n/a ]
t_check "a rate of n/a: n/a" [ "$(ts_ratio n/a 0 0 100 100 0)" == n/a ]

# ---------------------------------------------------------------- ts_counts

WRK_JSON='{"requests":120,"duration_us":2000000,"connect_errors":1,"read_errors":2,"write_errors":0,"status_errors":7,"timeouts":3}'
WRK_STATUS='{"200":100,"500":7,"200-unexpected-body":5}'
t_check "ts_counts: 100 good, 18 other" [ "$(ts_counts 200)" == "100 18" ]
t_check "bn_wrk_rate 200 counts only the good ones" [ "$(bn_wrk_rate 200)" == 50 ]

# ---------------------------------------------------------------- wrk scripts

cat >"$T/server.py" <<'EOF'
import http.server, json, sys, threading
seen = {"auth": 0, "posts": 0, "bad_body": 0}
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path == "/_seen":
            return self.answer(200, seen)
        self.answer(200, {"status": "ok"})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        bad = self.path != "/message" or body.get("content") != "hello from the bicky benchmark"
        with lock:
            seen["posts"] += 1
            seen["auth"] += "Authorization" in self.headers
            seen["bad_body"] += bad
        if bad:
            return self.answer(400, {"error": "Content is required"})
        i = body.get("interactionId")
        if i == "fails":
            return self.answer(500, {"error": "Failed to create message"})
        if i == "odd":
            return self.answer(200, {"what": "no id"})
        self.answer(200, {"id": i or "new", "type": "message" if i else "query", "messageId": "m"})
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
python3 "$T/server.py" "$T/port" 2>"$T/server.err" & # wrk resets its connections at the end
SERVER=$!
bk_wait_for 10 test -s "$T/port" || bk_die "the test server did not start"
URL=http://127.0.0.1:$(cat "$T/port")
printf '%s\n' good fails odd good >"$T/ids"

BENCH_DIR=$SRC/bench BENCH_MODE=legacy BENCH_IDS=$T/ids BENCH_THREADS=1 BENCH_TOKEN="" \
    BENCH_EXPECT='"messageId"' wrk -t1 -c2 -d1s -s "$SRC/bench/wrk_post.lua" "$URL" >"$T/post.txt" 2>&1
STATUS=$(sed -n 's/^WRK_STATUS //p' "$T/post.txt")
t_check "legacy: WRK_STATUS is JSON ($STATUS)" jqe . <<<"$STATUS"
t_check "legacy: good answers counted as 200" jqe '.["200"] > 0' <<<"$STATUS"
t_check "legacy: a 500 is counted apart, as a 500" jqe '.["500"] > 0 and (has("500-unexpected-body") | not)' <<<"$STATUS"
t_check "legacy: a 200 without messageId is counted apart" \
    jqe '.["200-unexpected-body"] > 0' <<<"$STATUS"
t_check "legacy: about twice as many good as unexpected (ids good, fails, odd, good)" \
    jqe '.["200"] >= .["200-unexpected-body"] * 3 / 2' <<<"$STATUS"
SEEN=$(curl -s "$URL/_seen")
t_check "legacy: every post was {content, interactionId} to /message ($SEEN)" \
    jqe '.posts > 0 and .bad_body == 0' <<<"$SEEN"
t_check "legacy: no Authorization header without a token" jqe '.auth == 0' <<<"$SEEN"

BENCH_DIR=$SRC/bench BENCH_MODE=legacy-new BENCH_THREADS=1 BENCH_TOKEN=secret \
    BENCH_EXPECT='"query"' wrk -t1 -c2 -d1s -s "$SRC/bench/wrk_post.lua" "$URL" >"$T/new.txt" 2>&1
STATUS=$(sed -n 's/^WRK_STATUS //p' "$T/new.txt")
t_check "legacy-new: every answer a new conversation ($STATUS)" \
    jqe 'keys == ["200"]' <<<"$STATUS"
SEEN2=$(curl -s "$URL/_seen")
# shellcheck disable=SC2016 # $a is jq's
t_check "legacy-new: the token is sent" \
    jqe --argjson a "$SEEN" '.auth > 0 and .auth == .posts - $a.posts' <<<"$SEEN2"

BENCH_DIR=$SRC/bench BENCH_EXPECT='"ok"' wrk -t1 -c2 -d1s -s "$SRC/bench/wrk_get.lua" \
    "$URL/health" >"$T/get.txt" 2>&1
STATUS=$(sed -n 's/^WRK_STATUS //p' "$T/get.txt")
t_check "wrk_get with BENCH_EXPECT: statuses reported ($STATUS)" jqe 'keys == ["200"]' <<<"$STATUS"
t_check "wrk_get with BENCH_EXPECT: WRK_JSON too" grep -q '^WRK_JSON {' "$T/get.txt"
BENCH_DIR=$SRC/bench wrk -t1 -c2 -d1s -s "$SRC/bench/wrk_get.lua" "$URL/health" >"$T/get0.txt" 2>&1
t_check "wrk_get without BENCH_EXPECT: no statuses (P8, P9 as before)" \
    bash -c "! grep -q '^WRK_STATUS' '$T/get0.txt' && grep -q '^WRK_JSON {' '$T/get0.txt'"

t_finish bench_ts
