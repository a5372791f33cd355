#!/usr/bin/env bash
# test_multihost_flow.sh — the conversation flow across hosts, through haproxy
# only (deploy/multihost/up: Postgres and two registries on host a, a node and
# a gateway on each of b and c, haproxy on d; this script runs on host cl):
#  - every process (Postgres too) listens on its own host's address only,
#    nothing on loopback or the wildcard, and the registry hands out those
#    addresses; both registries answer (one active, one standby);
#  - create, post and the reply on SSE (created → started → deltas →
#    completed → turn.completed, deltas adding up to "echo: …") through
#    haproxy; 12 conversations spread over both nodes, requests reach both
#    gateways (haproxy's counters); lists and reads;
#  - haproxy sees both gateways UP; with both put in maintenance through
#    its runtime API it answers 503 itself, as JSON with Retry-After;
#  - an attacker on host x (no key; a stolen gateway key) cannot register or
#    hijack a node, run admin ops, reach nb's ROUTER or subscribe to its PUB,
#    each attempt logged by its target; bickyctl on cl works with the admin
#    key and fails clearly without keys;
#  - gapless seqs in Postgres; down leaves nothing.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=multihost_flow
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=deploy/multihost/lib.sh
source "$SRC/deploy/multihost/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/multihost.sh
source "$SRC/tests/lib/multihost.sh"

export BICKY_ECHO_DELAY_MS=10
mht_main multihost_flow

# only_on HOST: every listening TCP socket of HOST is on HOST's address (and there is one).
only_on() {
    local l n=0
    for l in $(mh_in "$1" ss -Hltn | awk '{ print $4 }'); do
        [[ $l == "$(mh_ip "$1")":* ]] || {
            echo "host $1 listens on $l"
            return 1
        }
        n=$((n + 1))
    done
    ((n > 0))
}
for h in a b c d; do
    t_check "host $h listens only on $(mh_ip "$h"): $(mh_in "$h" ss -Hltn | awk '{ print $4 }' | sort | tr '\n' ' ')" \
        only_on "$h"
done
routers=$("$CTL" --json nodes | jq -c '[(if type == "array" then . else (.nodes // .data // []) end)[] | .router] | sort')
t_check "the registry hands out the hosts' addresses ($routers)" \
    test "$routers" = "[\"tcp://$(mh_ip b):7110\",\"tcp://$(mh_ip c):7110\"]"
t_check "both registries answer: one active, one standby" \
    bash -c "out=\$('$CTL' status 2>&1); grep -q active <<<\"\$out\" && grep -q standby <<<\"\$out\""

conv=$(tc_conv '{"title":"across hosts"}')
t_check "POST /api/conversations through haproxy: 201 ($conv)" test -n "$conv"
out=$(mht_post_sse "$conv" "one two three four five six")
types=$(jq -r 'select(.event) | .event' <<<"$out" | grep -v message.delta | tr '\n' ' ')
t_check "SSE through haproxy: message.created turn.started message.completed turn.completed ($types)" \
    test "$types" = "message.created turn.started message.completed turn.completed "
deltas=$(jq -r 'select(.event == "message.delta") | .data.text' <<<"$out" | tr -d '\n')
reply=$(jq -r 'select(.event == "message.completed" and .data.action.role == "assistant") | .data.action.content' <<<"$out")
[[ -n $reply ]] || reply=$(tc_sql "select content from messages where conversation_id = '$conv' and role = 'assistant'")
t_check "the deltas add up to the stored reply ('$deltas')" test "$deltas" = "$reply" -a -n "$deltas"
t_check "the reply is the echo" test "$reply" = "echo: one two three four five six"

ok=0
convs=()
for i in $(seq 1 12); do
    c=$(tc_conv) && [[ -n $(tc_post "$c" "message $i") ]] && ok=$((ok + 1)) && convs+=("$c")
done
t_check "12 conversations created and posted to through haproxy ($ok)" test "$ok" = 12
for c in "${convs[@]}"; do tc_wait_status "$c" idle 10; done
owners=$(tc_sql "select string_agg(distinct node_id, ',' order by node_id) from conversation_owners")
t_check "conversations live on both hosts' nodes ($owners)" test "$owners" = "nb,nc"
tc_req GET "/api/conversations/${convs[0]}/messages"
t_check "messages of a conversation: 200, user + assistant" \
    test "$TC_CODE" = 200 -a "$(tc_jq '.data | length')" = 2
tc_req GET "/api/conversations?limit=500"
t_check "the list has all 13" test "$(tc_jq '.data | length')" = 13
stot() { mh_haproxy "show stat" | awk -F, -v s="$1" '$1 == "gateways" && $2 == s { print $8 }'; }
b=$(stot gwb)
c=$(stot gwc)
t_check "haproxy sent requests to both gateways (gwb $b, gwc $c)" test "${b:-0}" -gt 0 -a "${c:-0}" -gt 0
t_check "haproxy sees gwb and gwc UP" test "$(mh_server_state gwb) $(mh_server_state gwc)" = "UP UP"

# No gateway at all: haproxy's own answer is the API's 503.
mh_haproxy "set server gateways/gwb state maint" >/dev/null
mh_haproxy "set server gateways/gwc state maint" >/dev/null
tc_req GET /api/conversations
t_check "no gateway: haproxy answers 503 ($TC_CODE) with Retry-After ($(tc_header retry-after)) and JSON code unavailable" \
    test "$TC_CODE" = 503 -a "$(tc_header retry-after)" = 1 -a "$(tc_jq .code)" = unavailable
mh_haproxy "set server gateways/gwb state ready" >/dev/null
mh_haproxy "set server gateways/gwc state ready" >/dev/null
t_check "back: /ready 200 through haproxy" bk_wait_for 10 mh_ready
# ---------------------------------------------------------------- an attacker on host x
# From its own host, with no key and then with a stolen gateway key, against
# the registry (host a) and node nb (host b); each attempt is logged there.
PROBE=$(cd "$BICKY_BIN/../tests" && pwd)/curve_probe
REG=tcp://$(mh_ip a):7100
NB_R=tcp://$(mh_ip b):7110
NB_P=tcp://$(mh_ip b):7111
FAKE_R=tcp://$(mh_ip x):7110
FAKE_P=tcp://$(mh_ip x):7111
TEAM=00000000-0000-4000-8000-000000000001
xprobe() { mh_in x "$PROBE" --wait-ms 2000 "$@" 2>/dev/null; }
xlogged() { bk_wait_for 10 grep -q -F -e "$2" "$MH_VAR/log/$1.log"; }
nb_router() { "$CTL" --json nodes 2>/dev/null | jq -r '.nodes[] | select(.id == "nb") | .router'; }
out=$(xprobe "$REG" register nb "$FAKE_R" "$FAKE_P")
t_check "host x, no key: hijacking nb gets no reply ($out)" test "$out" == "no reply"
out=$(xprobe "$REG" register evil "$FAKE_R" "$FAKE_P")
t_check "host x, no key: registering a node gets no reply ($out)" test "$out" == "no reply"
out=$(xprobe "$REG" admin drain nb)
t_check "host x, no key: admin drain gets no reply ($out)" test "$out" == "no reply"
out=$(xprobe "$NB_R" api rule.create "$TEAM" - '{"scope":"team","tool_pattern":"*","decision":"allow"}')
t_check "host x, no key: an API op to nb gets no reply ($out)" test "$out" == "no reply"
t_check "... logged by r1" xlogged r1 "refused a connection socket=registry-router"
t_check "... and by nb" xlogged nb "refused a connection socket=node-router"
G=(--cert "$MH_KEYS/secret/gateway-gwb.key" --server-cert "$MH_KEYS/public/registry/registry.cert")
out=$(xprobe "${G[@]}" "$REG" register nb "$FAKE_R" "$FAKE_P")
t_check "host x, stolen gateway key: hijacking nb is refused ($out)" \
    grep -q "state=unknown error=only the key of that node" <<<"$out"
t_check "... and logged by r1" xlogged r1 "refused type=register node=nb from role=gateway name=gwb"
out=$(xprobe "${G[@]}" "$REG" register evil "$FAKE_R" "$FAKE_P")
t_check "host x, stolen gateway key: registering a node is refused ($out)" grep -q "state=unknown" <<<"$out"
for a in drain undrain remove; do
    out=$(xprobe "${G[@]}" "$REG" admin "$a" nb)
    t_check "host x, stolen gateway key: admin $a is refused 403 ($out)" grep -q "admin_rep status=403" <<<"$out"
done
t_check "... and logged by r1" xlogged r1 "refused type=admin node=nb from role=gateway"
STOP=$MH_VAR/x-sub.stop
mh_in x "$PROBE" "$NB_P" sub "$STOP" >"$MH_VAR/x-sub.nokey" 2>&1 &
xs=$!
# Events that do pass through nb's PUB meanwhile: posts to a conversation nb owns.
for xc in "${convs[@]}"; do [[ $(tc_owner "$xc") == nb ]] && break; done
t_check "a conversation on nb to post to ($xc)" test "$(tc_owner "$xc")" = nb
for i in 1 2 3; do tc_post "$xc" "while x listens $i" >/dev/null; done
tc_wait_status "$xc" idle 20
touch "$STOP"
wait "$xs"
t_check "host x, no key: subscribed to nb's PUB, got no event ($(tail -n 1 "$MH_VAR/x-sub.nokey"))" \
    grep -q "^received 0$" "$MH_VAR/x-sub.nokey"
t_check "... logged by nb" xlogged nb "refused a connection socket=node-pub"
t_check "nb still registered with its own router ($(nb_router))" test "$(nb_router)" = "tcp://$(mh_ip b):7110"
t_check "no node 'evil'; nb and nc alive" \
    eval '! "$CTL" --json nodes | jq -e ".nodes[] | select(.id == \"evil\")" >/dev/null && mh_node_is nb alive && mh_node_is nc alive'
t_check "bickyctl from host cl with the admin key: nodes" "$CTL" nodes
out=$(env -u BICKY_ADMIN_CERT -u BICKY_KEYS "$CTL" drain nb 2>&1)
t_check "bickyctl from host cl without keys fails clearly ($out)" grep -q "refuses to start without keys" <<<"$out"

t_check "gapless seqs in Postgres" tc_gapless
t_finish multihost_flow_inside
