#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_team_limits.sh — per-team limits (issue 12) on a real cluster, each
# set with `bickyctl team limits` and hit through the API with curl:
# bickyctl's show / set / reset and its refusals (nothing stored); the rate
# (429 rate_limited with Retry-After and RateLimit-* headers, a refused POST
# writes nothing); strategies (400 naming the allowed ones, nothing written;
# a new token sees a reset at once); streams (SSE and WebSocket share the
# bound, 429, a closed stream frees its slot); running turns per node (429,
# no message stored, the next post after the turn works); worktrees (409, no
# row, no branch, no directory); resident actors per node (429, no row);
# GET /api/status shows the limits and the usage; a noisy team at 10x its
# rate gets 429s while a quiet team's requests all succeed.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=team_limits
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/team_limits_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start team_limits
KIDS=()
trap 'rc=$?; for p in "${KIDS[@]}"; do kill "$p" 2>/dev/null; done; ta_teardown;
      [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

limits() { "$CTL" --database-url "$BICKY_DATABASE_URL" team limits "$@"; }
team_id() { tc_sql "select id from teams where name = '$1'"; }
rows() { tc_sql "select count(*) from $1 where team_id = '$(team_id "$2")'"; }

# ---------------------------------------------------------------- bickyctl

TOK_RATE=$(tc_team_token lim-rate)
t_check "bickyctl shows the defaults of a team without limits" \
    test "$(limits lim-rate --json | jq -c '[.rate, .burst, .turns, .strategies, (.defaults | length)]')" \
    = '["100000/s",200000,10000,null,7]'
limits nosuch >/dev/null 2>&1
t_check "an unknown team: exit 1" test $? = 1
for bad in "--rate 50" "--rate 0/s" "--rate 5/d" "--burst 0" "--turns -1" "--actors 1e3" \
    "--worktrees 2000000000" "--strategies Echo" "--strategies echo,,gpt" "--strategies echo,echo"; do
    # shellcheck disable=SC2086 # the case is two words
    limits lim-rate $bad >/dev/null 2>&1
    rc=$?
    t_check "bickyctl team limits $bad: usage error (exit $rc)" test "$rc" = 2
done
t_check "refused values stored nothing" test "$(tc_sql 'select count(*) from team_limits')" = 0
limits lim-rate --rate 1/m --burst 3 --turns 7 >/dev/null
t_check "set: shown as set, the rest default" \
    test "$(limits lim-rate --json | jq -c '[.rate, .burst, .turns, .defaults]')" \
    = '["1/m",3,7,["actors","streams","worktrees","strategies"]]'
limits lim-rate --turns default >/dev/null
t_check "reset one with \`default\`: NULL in Postgres, the others kept" \
    test "$(tc_sql "select rate || ' ' || burst || ' ' || coalesce(turns::text, 'null') from team_limits")" \
    = "1/m 3 null"
t_check "the text output marks defaults" bash -c "$(printf '%q ' "$CTL") --database-url '$BICKY_DATABASE_URL' \
    team limits lim-rate | grep -q '^turns *10000 (default)$'"

# ---------------------------------------------------------------- rate

TC_TOKEN=$TOK_RATE
codes=""
for i in 1 2 3; do
    tc_req GET /api/conversations
    codes+="$TC_CODE/$(tc_header RateLimit-Remaining) "
done
t_check "burst 3: three answers with RateLimit-Remaining 2, 1, 0 ($codes)" \
    test "$codes" = "200/2 200/1 200/0 "
t_check "RateLimit-Limit is the burst ($(tc_header RateLimit-Limit))" test "$(tc_header RateLimit-Limit)" = 3
before=$(rows conversations lim-rate)
tc_req POST /api/conversations '{"title":"over the rate"}'
ra=$(tc_header Retry-After)
t_check "the 4th request: 429 rate_limited ($TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "429 rate_limited"
t_check "with Retry-After in 1..60 ($ra) and RateLimit-Remaining 0, Reset > 0" \
    test "${ra:-0}" -ge 1 -a "${ra:-0}" -le 60 -a "$(tc_header RateLimit-Remaining)" = 0 \
    -a "$(tc_header RateLimit-Reset)" -gt 0
t_check "the refused POST wrote nothing" test "$(rows conversations lim-rate)" = "$before"
TC_TOKEN=$BICKY_TOKEN
tc_req GET /api/conversations
t_check "another team is not limited ($TC_CODE, remaining $(tc_header RateLimit-Remaining))" \
    test "$TC_CODE" = 200 -a "$(tc_header RateLimit-Remaining)" -gt 100

# ---------------------------------------------------------------- strategies

TOK_STRAT=$(tc_team_token lim-strat)
limits lim-strat --strategies echo,claude >/dev/null
TC_TOKEN=$TOK_STRAT
tc_req POST /api/conversations '{"strategy":"gpt"}'
t_check "a strategy not allowed: 400 invalid_field strategy ($TC_CODE $(tc_jq .code) $(tc_jq .field))" \
    test "$TC_CODE $(tc_jq .code) $(tc_jq .field)" = "400 invalid_field strategy"
t_check "the error names the allowed ones ($(tc_jq .error))" \
    bash -c "grep -q 'allowed: echo,claude' <<<'$(tc_jq .error)'"
tc_req POST /api/message '{"content":"hi","strategy":"gpt"}'
t_check "POST /api/message with it: 400" test "$TC_CODE" = 400
cs=$(tc_conv '{"strategy":"claude"}')
ce=$(tc_conv '{}')
t_check "allowed ones (and the default, echo) create" test -n "$cs" -a -n "$ce"
tc_req PATCH "/api/conversations/$ce" '{"strategy":"gpt"}'
t_check "PATCH to it: 400" test "$TC_CODE" = 400
t_check "nothing with strategy gpt was written" \
    test "$(tc_sql "select count(*) from conversations where team_id = '$(team_id lim-strat)'
        and strategy = 'gpt'") $(rows conversations lim-strat)" = "0 2"
limits lim-strat --strategies claude >/dev/null
TC_TOKEN=$(tc_team_token lim-strat)
tc_req POST /api/conversations '{}'
t_check "a new token sees the new list at once: the default (echo) refused ($TC_CODE)" \
    test "$TC_CODE" = 400
limits lim-strat --strategies default >/dev/null
TOK_STRAT=$(tc_team_token lim-strat) # older tokens keep their cached limits up to 60 s
TC_TOKEN=$TOK_STRAT
tc_req POST /api/conversations '{"strategy":"gpt"}'
t_check "reset to every strategy: gpt creates ($TC_CODE)" test "$TC_CODE" = 201

# ---------------------------------------------------------------- streams

TOK_STREAM=$(tc_team_token lim-streams)
limits lim-streams --streams 2 >/dev/null
TC_TOKEN=$TOK_STREAM
tc_sse /api/stream --timeout 120 --idle 120 --ready-file "$TC_VAR/s1.ready" >/dev/null 2>&1 &
S1=$!
KIDS+=("$S1")
bk_wait_for 10 test -e "$TC_VAR/s1.ready"
ws_hold() {
    exec python3 - "$BICKY_HTTP_PORT" "$1" "$2" <<'EOF'
import socket, sys, time
port, token, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("GET /socket/websocket?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % token).encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(4096)
    if not chunk:
        break
    head += chunk
open(out, "w").write(head.split(b"\r\n")[0].decode() + "\n")
time.sleep(120)
EOF
}
ws_hold "$TOK_STREAM" "$TC_VAR/ws1" &
W1=$!
KIDS+=("$W1")
bk_wait_for 10 test -s "$TC_VAR/ws1"
t_check "an SSE stream and a WebSocket open ($(cat "$TC_VAR/ws1"))" grep -q " 101 " "$TC_VAR/ws1"
got=$(tc_sse /api/stream --headers-only --timeout 5 | jq -r .status)
t_check "a third stream (SSE): 429 ($got)" test "$got" = 429
tc_req GET /api/stream
t_check "as JSON: rate_limited with Retry-After ($TC_CODE $(tc_jq .code) $(tc_header Retry-After))" \
    test "$TC_CODE $(tc_jq .code)" = "429 rate_limited" -a -n "$(tc_header Retry-After)"
ws_hold "$TOK_STREAM" "$TC_VAR/ws2" &
KIDS+=("$!")
bk_wait_for 10 test -s "$TC_VAR/ws2"
t_check "a third stream (WebSocket): 429 before the upgrade ($(cat "$TC_VAR/ws2"))" \
    grep -q " 429 " "$TC_VAR/ws2"
TC_TOKEN=$BICKY_TOKEN
got=$(tc_sse /api/stream --headers-only --timeout 5 | jq -r .status)
t_check "another team opens streams ($got)" test "$got" = 200
kill "$W1" 2>/dev/null
TC_TOKEN=$TOK_STREAM
t_check "the closed WebSocket frees its slot" \
    bk_wait_for 30 eval '[[ $(tc_sse /api/stream --headers-only --timeout 5 | jq -r .status) == 200 ]]'
kill "$S1" 2>/dev/null

# ---------------------------------------------------------------- turns

TOK_TURNS=$(tc_team_token lim-turns)
limits lim-turns --turns 1 >/dev/null
TC_TOKEN=$TOK_TURNS
slow='{"metadata":{"echo":{"delay_ms":150}}}'
ca=$(tc_conv "$slow")
# A second conversation on the same node (the bound is per node) and one on the other.
cb="" cother=""
for i in $(seq 1 16); do
    c=$(tc_conv "$slow")
    if [[ $(tc_owner "$c") == $(tc_owner "$ca") ]]; then
        [[ -z $cb ]] && cb=$c
    else
        [[ -z $cother ]] && cother=$c
    fi
    [[ -n $cb && -n $cother ]] && break
done
t_check "conversations on the same node and on the other" test -n "$cb" -a -n "$cother"
long=$(printf 'word%.0s ' $(seq 1 60))
tc_post "$ca" "$long" >/dev/null
t_check "a long turn runs" tc_wait_status "$ca" processing 10
tc_req POST "/api/conversations/$cb/messages" '{"content":"second"}'
t_check "a second turn on that node: 429 rate_limited ($TC_CODE $(tc_jq .code))" \
    test "$TC_CODE $(tc_jq .code)" = "429 rate_limited"
t_check "nothing stored for it" \
    test "$(tc_sql "select count(*) from messages where conversation_id = '$cb'") $(tc_status "$cb")" = "0 idle"
tc_req GET /api/status
t_check "status: turns limit 1, 1 running on the answering node or 0 on the other" \
    test "$(tc_jq '.team.limits.turns') $(tc_jq '.team.usage.turns <= 1')" = "1 true"
tc_req POST "/api/conversations/$cother/messages" '{"content":"elsewhere"}'
t_check "a turn on the other node runs ($TC_CODE)" test "$TC_CODE" = 202
t_check "the long turn ends" tc_wait_status "$ca" idle 60
tc_req POST "/api/conversations/$cb/messages" '{"content":"second"}'
t_check "then the second conversation's turn starts ($TC_CODE)" test "$TC_CODE" = 202

# ---------------------------------------------------------------- worktrees

TOK_WT=$(tc_team_token lim-wt)
limits lim-wt --worktrees 1 >/dev/null
TC_TOKEN=$TOK_WT
tc_req POST /api/worktrees '{"branch":"lim-one"}'
w1=$(tc_jq .id)
t_check "the first worktree: 201 ($TC_CODE)" test "$TC_CODE" = 201
tc_req POST /api/worktrees '{"branch":"lim-two"}'
t_check "the second: 409 conflict naming the limit ($TC_CODE $(tc_jq .code): $(tc_jq .error))" \
    test "$TC_CODE $(tc_jq .code)" = "409 conflict"
t_check "no row, no branch, no directory for it" \
    test "$(rows worktrees lim-wt) $(git -C "$BICKY_REPO" branch --list lim-two | wc -l) \
$(find "$BICKY_WORK_DIR/worktrees" -mindepth 1 -maxdepth 1 | wc -l)" = "1 0 1"
tc_req GET /api/status
t_check "status: worktrees 1 of 1 ($(jq -c .team <<<"$TC_BODY"))" \
    test "$(tc_jq '.team.usage.worktrees') $(tc_jq '.team.limits.worktrees')" = "1 1"
tc_req DELETE "/api/worktrees/$w1"
tc_req POST /api/worktrees '{"branch":"lim-two"}'
t_check "after a removal the next one is created ($TC_CODE)" test "$TC_CODE" = 201

# ---------------------------------------------------------------- actors

TOK_ACT=$(tc_team_token lim-actors)
limits lim-actors --actors 2 >/dev/null
TC_TOKEN=$TOK_ACT
made=0 refused=0 other=""
for i in 1 2 3 4 5; do
    tc_req POST /api/conversations '{}'
    case $TC_CODE in
        201) made=$((made + 1)) ;;
        429) refused=$((refused + 1)) other=$(tc_jq .error) ;;
    esac
done
t_check "2 actors per node, 2 nodes, 5 creates: at most 4 made, the rest 429 ($made made, $refused refused)" \
    test "$made" -le 4 -a "$refused" -ge 1 -a $((made + refused)) = 5
t_check "the 429 says why ($other)" bash -c "grep -q 'active conversations on this node' <<<'$other'"
t_check "only the made ones are rows" test "$(rows conversations lim-actors)" = "$made"

# ---------------------------------------------------------------- status

TC_TOKEN=$TOK_STRAT
tc_req GET /api/status
t_check "status: limits and usage of the caller's team ($(jq -c .team <<<"$TC_BODY"))" \
    test "$(jq -c '[.team.limits.strategies, .team.limits.rate, (.team.usage | keys)]' <<<"$TC_BODY")" \
    = '[null,"100000/s",["actors","node","rate_remaining","streams","turns","worktrees"]]'

# ---------------------------------------------------------------- noisy and quiet

TOK_NOISY=$(tc_team_token lim-noisy)
TOK_QUIET=$(tc_team_token lim-quiet)
limits lim-noisy --rate 20/s --burst 20 >/dev/null
# The noisy team sends 400 requests as fast as one client can (far above 20/s);
# a quiet team sends 40 beside it.
urls=()
for i in $(seq 1 400); do urls+=(-o /dev/null "$BICKY_URL/api/conversations?limit=1"); done
curl -s -m 120 -H "Authorization: Bearer $TOK_NOISY" -w '%{http_code}\n' "${urls[@]}" \
    >"$TC_VAR/noisy" &
NOISY=$!
KIDS+=("$NOISY")
quiet=$(for i in $(seq 1 40); do
    curl -s -m 10 -H "Authorization: Bearer $TOK_QUIET" -o /dev/null -w '%{http_code}\n' \
        "$BICKY_URL/api/conversations?limit=1"
done | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
wait "$NOISY"
noisy=$(sort "$TC_VAR/noisy" | uniq -c | tr -s ' ' | tr '\n' ' ')
t_check "the noisy team gets 429s and some 200s ($noisy)" \
    bash -c "grep -q ' 429' <<<'$noisy' && grep -q ' 200' <<<'$noisy'"
t_check "the quiet team's 40 requests all succeed ($quiet)" test "$quiet" = " 40 200 "

ta_teardown
tc_finish team_limits
