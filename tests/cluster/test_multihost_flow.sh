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
t_check "gapless seqs in Postgres" tc_gapless
t_finish multihost_flow_inside
