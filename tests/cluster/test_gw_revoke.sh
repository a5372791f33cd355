#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_gw_revoke.sh — a revoked token stops working on every gateway within
# 1 s (issue 11). Two gateways (the cluster's and a second one) each cache a
# token (one 200); `bickyctl token revoke` sets revoked_at, Postgres notifies
# the active registry, which publishes the revocation: both gateways answer
# 401 within 1 s of bickyctl's return (polled, each answer timed by curl).
# Then a revocation both gateways miss: the registry is killed (-9), a
# second cached token is revoked while it is down (its notification is
# lost), and once the supervisor restarted it the counter in its ring
# publications makes both gateways flush their caches: 401 on both. A token
# nobody revoked keeps working throughout. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_revoke
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start gw_revoke

hr=${BICKY_TEST_HTTP_PORT_RANGE:-${BICKY_TEST_PORT_RANGE:-20000-32000}}
p2=$(bk_free_port "${hr%-*}" "${hr#*-}")
# The second gateway uses the cluster's gateway key (or --insecure).
BICKY_CERT=${BICKY_KEYS:+$BICKY_KEYS/secret/gateway-gateway.key} \
    env -u BICKY_DATABASE_URL "$BICKY_BIN/bicky-gateway" --port "$p2" --registry "$BICKY_REGISTRY" \
    >"$TC_VAR/gw2.log" 2>&1 &
GW2=$!
trap 'rc=$?; kill -TERM "$GW2" 2>/dev/null; wait "$GW2" 2>/dev/null; (exit $rc); tc_cleanup' EXIT
URL2=http://127.0.0.1:$p2
t_check "a second gateway is ready" bk_wait_for 15 bk_http_ok "$URL2/ready"

# token TEAM: creates a token, prints "id token".
token() {
    "$CTL" --database-url "$BICKY_DATABASE_URL" --json token create --team "$1" |
        jq -r '"\(.id) \(.token)"'
}

# code URL TOKEN: the status of GET /api/conversations with TOKEN.
code() {
    curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" \
        "$1/api/conversations?limit=1"
}

# both TOKEN WANT: both gateways answer WANT.
both() { [[ $(code "$BICKY_URL" "$1") == "$2" && $(code "$URL2" "$1") == "$2" ]]; }

# revoke ID: bickyctl token revoke.
revoke() { "$CTL" --database-url "$BICKY_DATABASE_URL" token revoke "$1" >/dev/null; }

# revoke_timed ID TOKEN URL...: runs `bickyctl token revoke ID`, then asks every URL
# (keep-alive connections opened beforehand, so no process start is timed) until it
# answers 401 for TOKEN; prints "URL ms" per gateway (ms from bickyctl's return to
# the first 401, or "URL never" after 5 s).
revoke_timed() {
    python3 - "$CTL" "$BICKY_DATABASE_URL" "$@" <<'EOF'
import http.client, subprocess, sys, time, urllib.parse
ctl, db, tid, token, urls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
conns = {}
def status(u):
    for _ in range(2):
        try:
            if u not in conns:
                p = urllib.parse.urlsplit(u)
                conns[u] = http.client.HTTPConnection(p.hostname, p.port, timeout=5)
            conns[u].request("GET", "/api/conversations?limit=1",
                             headers={"Authorization": "Bearer " + token})
            r = conns[u].getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            conns.pop(u, None)
    return 0
for u in urls:
    assert status(u) == 200, u
subprocess.run([ctl, "--database-url", db, "token", "revoke", tid], check=True,
               stdout=subprocess.DEVNULL)
t0 = time.monotonic()
left = list(urls)
while left and time.monotonic() - t0 < 5:
    for u in list(left):
        if status(u) == 401:
            print(u, int((time.monotonic() - t0) * 1000))
            left.remove(u)
for u in left:
    print(u, "never")
EOF
}

read -r id1 tok1 <<<"$(token revoke-a)"
read -r id2 tok2 <<<"$(token revoke-b)"
read -r _ keep <<<"$(token revoke-c)"
t_check "three tokens" test -n "$tok1" -a -n "$tok2" -a -n "$keep"
TC_TOKEN=$keep
t_check "a conversation (for the final checks)" test -n "$(tc_conv)"
t_check "each token works on both gateways (and is cached there)" \
    eval 'both "$tok1" 200 && both "$tok2" 200 && both "$keep" 200'
t_check "a second answer is still 200 (served from the cache)" both "$tok1" 200

out=$(revoke_timed "$id1" "$tok1" "$BICKY_URL" "$URL2")
echo "$out"
t_check "revoked: both gateways answer 401 within 1 s of bickyctl's return" \
    eval '[[ $(awk "\$2 != \"never\" && \$2 <= 1000" <<<"$out" | wc -l) == 2 ]]'
t_check "the registry published the revocation" \
    grep -q "token revoked seq=1 " "$TC_VAR/log/registry.log"
t_check "the other tokens still work" eval 'both "$tok2" 200 && both "$keep" 200'
t_check "the 401 carries WWW-Authenticate: Bearer" \
    eval '[[ $(curl -s -D - -o /dev/null -H "Authorization: Bearer $tok1" \
        "$URL2/api/conversations" | tr -d "\r") == *"WWW-Authenticate: Bearer"* ]]'

# A revocation nobody hears of: the registry is down while it happens.
reg=$(tc_pid registry)
starts=$(grep -c "registry started" "$TC_VAR/log/registry.log")
kill -KILL "$reg"
revoke "$id2"
t_check "the registry is restarted" \
    bk_wait_for 20 eval '(( $(grep -c "registry started" "$TC_VAR/log/registry.log") > starts ))'
t_check "missed revocation: both gateways answer 401 once the registry is back" \
    bk_wait_for 10 both "$tok2" 401
t_check "both gateways flushed their caches (gap in the counter)" \
    eval 'grep -q "auth cache flushed" "$TC_VAR/log/gateway.log" &&
        grep -q "auth cache flushed" "$TC_VAR/gw2.log"'
t_check "the token nobody revoked still works on both" both "$keep" 200
t_check "the first revoked token stays refused" both "$tok1" 401

kill -TERM "$GW2"
wait "$GW2"
t_check "the second gateway exits 0 on SIGTERM" test $? = 0
t_check "no sanitizer report in the second gateway's log" t_no_sanitizer_reports "$TC_VAR/gw2.log"
tc_finish gw_revoke
