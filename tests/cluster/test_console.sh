#!/usr/bin/env bash
# test_console.sh — the web console (console/, gateway/gw_console.c) in real
# headless Chromium (Debian's chromium driven by puppeteer-core, both
# installed by tests/run / tests/lib/puppeteer.sh) against a real cluster
# with the fake LLM (tests/lib/agents.sh). First the serving rules with curl:
# / and /console/<name> with their Content-Type, ETag (304), Cache-Control,
# a strict CSP and nosniff; unknown names and traversal are 404 JSON; the API
# routes are untouched. Then tests/tools/console_test.js signs in; starts a
# conversation and watches the reply stream in; reverts a title change;
# approves and denies a permission raised by the fake LLM and sees the
# tool's result; creates and deletes a worktree (an invalid branch refused);
# the cluster page (no drain button for a team token); stops the gateway mid-reply (the supervisor restarts it)
# and sees the transcript complete with no duplicate; a second team sees none
# of the first's data; an XSS matrix renders as text; an admin token drains
# n2 with the keyboard (confirm step), sees it draining and off the ring, and
# undrains it with a click; the console asks no host but the gateway. Screenshots of every page at 360 and 1280 px go to
# $BICKY_TEST_LOG_DIR/console (default: test-logs/console in the build tree).
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=console
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"
# shellcheck source=tests/lib/puppeteer.sh
source "$SRC/tests/lib/puppeteer.sh"
tpp_install

# Echo replies word by word, 100 ms apart: slow enough to see them stream
# and to stop the gateway in the middle of one.
export BICKY_ECHO_DELAY_MS=100
# The stopped gateway is started again 2 s after it exits.
export BICKY_RESTART_BACKOFF_MS=2000
SHOTS=${BICKY_TEST_LOG_DIR:-$(cd "$BICKY_BIN/.." && pwd)/test-logs}/console
rm -rf "$SHOTS"
mkdir -p "$SHOTS"
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/console_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start console
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

# ---------------------------------------------------------------- serving

TC_TOKEN=-
tc_req GET /
t_check "GET / is 200 text/html" test "$TC_CODE $(tc_header content-type)" = "200 text/html; charset=utf-8"
t_check "... it loads the console's module" grep -q '<script type="module" src="/console/app.js">' "$TC_VAR/body"
csp=$(tc_header content-security-policy)
t_check "... a strict CSP: self only, nothing inline ($csp)" \
    bash -c '[[ $1 == *"default-src '"'self'"'"* && $1 == *"connect-src '"'self'"'"* && $1 != *unsafe-inline* && $1 == *"frame-ancestors '"'none'"'"* ]]' _ "$csp"
t_check "... nosniff" test "$(tc_header x-content-type-options)" = nosniff
t_check "... Cache-Control: no-cache" test "$(tc_header cache-control)" = no-cache
etag=$(tc_header etag)
t_check "... a strong ETag ($etag)" bash -c '[[ $1 =~ ^\"[0-9a-f]{20}\"$ ]]' _ "$etag"
# curl leaves the output file alone when no body comes: count what it downloaded.
got=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{size_download}' -H "If-None-Match: $etag" "$BICKY_URL/")
t_check "If-None-Match with it: 304, no body ($got)" test "$got" = "304 0"
got=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{size_download}' -H 'If-None-Match: "0000"' "$BICKY_URL/")
t_check "another ETag: 200 and the page ($got)" bash -c '[[ $1 == "200 "[1-9]* ]]' _ "$got"
got=$(curl -s -m 10 -I -o /dev/null -w '%{http_code} %{size_download}' "$BICKY_URL/")
t_check "HEAD /: 200, no body ($got)" test "$got" = "200 0"
tc_req GET /console/app.js
t_check "GET /console/app.js is JavaScript" test "$TC_CODE $(tc_header content-type)" = "200 text/javascript; charset=utf-8"
tc_req GET /console/style.css
t_check "GET /console/style.css is CSS" test "$TC_CODE $(tc_header content-type)" = "200 text/css; charset=utf-8"
for p in /console/nope.js /console/ /console/../gateway/gw_console.c /console/%2e%2e%2fCMakeLists.txt /console/CMakeLists.txt; do
    tc_req GET "$p" "" --path-as-is
    t_check "GET $p: 404 JSON" test "$TC_CODE $(tc_jq .code)" = "404 not_found"
done
tc_req POST / '{}'
t_check "POST /: 405" test "$TC_CODE" = 405
tc_req GET /api/status
t_check "the API still wants a token: 401" test "$TC_CODE" = 401
TC_TOKEN=$BICKY_TOKEN
tc_req GET /api/status
t_check "... and answers with one" test "$TC_CODE" = 200

# ---------------------------------------------------------------- the browser

other=$(tc_team_token other-team)
t_check "a token of another team" test -n "$other"
admin=$("$CTL" --database-url "$BICKY_DATABASE_URL" --json token create --team dev --name console-admin \
    --admin 2>/dev/null | jq -r .token)
t_check "an admin token of the dev team" test -n "$admin"
gw_before=$(tc_pid gateway)
CONSOLE_URL=$BICKY_URL CONSOLE_TOKEN=$BICKY_TOKEN CONSOLE_TOKEN2=$other CONSOLE_ADMIN_TOKEN=$admin \
    CONSOLE_FAKE_PORT=$TA_FAKE_PORT CONSOLE_GATEWAY_PID=$TC_VAR/run/gateway.pid \
    CONSOLE_SHOTS=$SHOTS CONSOLE_CHROMIUM=$TPP_CHROMIUM \
    timeout 900 node "$SRC/tests/tools/console_test.js" >"$SHOTS/console_test.jsonl" 2>"$SHOTS/console_test.err"
rc=$?
while IFS= read -r line; do
    name=$(jq -r '.check // empty' <<<"$line" 2>/dev/null)
    [[ -n $name ]] || continue
    if [[ $(jq -r .ok <<<"$line") == true ]]; then
        t_pass "console: $name"
    else
        t_fail "console: $name $(jq -c '.detail // empty' <<<"$line" | cut -c1-1500)"
    fi
done <"$SHOTS/console_test.jsonl"
t_check "the browser run ended cleanly (exit $rc)" test "$rc" = 0
[[ $rc == 0 ]] || tail -n 20 "$SHOTS/console_test.err"
t_check "the browser run reached its end" grep -q '"done":true' "$SHOTS/console_test.jsonl"
t_check "the gateway was stopped once and started again" \
    test -n "$gw_before" -a "$(tc_pid gateway)" != "$gw_before"
t_check "it is ready again" bk_wait_for 30 bk_http_ok "$BICKY_URL/ready"
n=$(find "$SHOTS" -name '*-360.png' | wc -l)
t_check "screenshots of 6 pages at 360 px ($n) and 1280 px, in $SHOTS" \
    test "$n" -ge 6 -a "$(find "$SHOTS" -name '*-1280.png' | wc -l)" -ge 6
TC_TOKEN=$other
tc_req GET /api/conversations
t_check "the other team still sees no conversation" test "$TC_CODE $(tc_jq '.data | length')" = "200 0"
TC_TOKEN=$BICKY_TOKEN

tc_finish console
