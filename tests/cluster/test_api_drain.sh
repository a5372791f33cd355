#!/usr/bin/env bash
# test_api_drain.sh — drain and undrain over HTTP with an admin API token
# (POST /api/nodes/:id/drain, /undrain; issue 16), on a real 2-node cluster
# with CURVE keys. An admin token made by `bickyctl token create --admin`
# drains n2: 200 with its new state, the registry logs the token's id and
# team, n2 leaves the ring (bickyctl and /api/status agree) and the
# conversations it owned move to n1 (a new turn of one completes there and
# n1 holds its claim); undrain puts it back and they move home. A team token
# gets 403 and changes nothing; an unknown node 404; an id the registry would
# refuse 400 invalid_field; no token 401. The registry decides, not the
# gateway: a token whose admin flag is cleared in Postgres (still cached as
# admin by the gateway) is refused 403 by the registry, and a revoked admin
# token is 401 at once. /api/status tells the console whether the caller is
# admin. `bickyctl token list` shows the flag.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=api_drain
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_NODES=2 BICKY_LOG_LEVEL=notice
unset BICKY_INSECURE
tc_start api_drain
LOG=$TC_VAR/log
DEV=$BICKY_TOKEN

created=$("$CTL" --database-url "$BICKY_DATABASE_URL" --json token create --team dev --name ops \
    --admin 2>/dev/null)
ADMIN=$(jq -r .token <<<"$created")
ADMIN_ID=$(jq -r .id <<<"$created")
t_check "bickyctl token create --admin ($(jq -c '{admin, team}' <<<"$created"))" \
    test "$(jq -r .admin <<<"$created")" = true
t_check "bickyctl token list shows the flag" eval \
    '[[ $("$CTL" --database-url "$BICKY_DATABASE_URL" --json token list --team dev |
        jq -r --arg id "$ADMIN_ID" "[.[] | select(.id == \$id) | .admin] == [true]
            and ([.[] | select(.id != \$id) | .admin] | all(. == false))") == true ]]'

# drain_req TOKEN ACTION NODE: the request (sets TC_CODE, TC_BODY).
drain_req() {
    TC_TOKEN=$1
    tc_req POST "/api/nodes/$3/$2"
    TC_TOKEN=$DEV
}
# gw_is NODE "STATE IN_RING": the node as the gateway's /api/status shows it.
gw_is() { [[ $(jq -r --arg id "$1" '.nodes[] | select(.id == $id) | "\(.state) \(.in_ring)"' \
    <<<"$(curl -s -m 5 -H "Authorization: Bearer $DEV" "$BICKY_URL/api/status")") == "$2" ]]; }
# owner_claim CONV: the node holding the conversation's claim in Postgres.
owner_claim() { tc_sql "select node_id from conversation_owners where conversation_id = '$1'"; }

t_check "n1 and n2 alive" bk_wait_for 10 eval 'tc_node_is n1 alive && tc_node_is n2 alive'

# ---------------------------------------------------------------- /api/status says who is admin
TC_TOKEN=$ADMIN
tc_req GET /api/status
t_check "/api/status with the admin token: admin true" test "$TC_CODE $(tc_jq .admin)" = "200 true"
TC_TOKEN=$DEV
tc_req GET /api/status
t_check "/api/status with a team token: admin false" test "$TC_CODE $(tc_jq .admin)" = "200 false"

# ---------------------------------------------------------------- conversations on n2
convs=()
for _ in $(seq 1 24); do
    c=$(tc_conv '{"strategy":"echo"}')
    [[ -n $c ]] && convs+=("$c")
done
on_n2=()
for c in "${convs[@]}"; do
    [[ $(tc_owner "$c") == n2 ]] && on_n2+=("$c")
done
t_check "24 conversations, ${#on_n2[@]} of them on n2" test "${#convs[@]}" = 24 -a "${#on_n2[@]}" -gt 0
moved=${on_n2[0]}
t_check "a turn on $moved runs on n2 first" test -n "$(tc_post "$moved" 'before the drain')"
t_check "... and n2 holds its claim" bk_wait_for 10 eval '[[ $(owner_claim "$moved") == n2 ]]'

# ---------------------------------------------------------------- refusals
drain_req "$DEV" drain n2
t_check "a team token: 403 forbidden ($TC_BODY)" test "$TC_CODE $(tc_jq .code)" = "403 forbidden"
drain_req - drain n2
t_check "no token: 401" test "$TC_CODE" = 401
drain_req "$ADMIN" drain n9
t_check "an unknown node: 404 not_found ($TC_BODY)" test "$TC_CODE $(tc_jq .code)" = "404 not_found"
drain_req "$ADMIN" drain 'n$2'
t_check "an id the registry refuses (n\$2): 400 invalid_field id" \
    test "$TC_CODE $(tc_jq .code) $(tc_jq .field)" = "400 invalid_field id"
long=$(printf 'n%.0s' $(seq 1 64))
drain_req "$ADMIN" undrain "$long"
t_check "a 64-character id: 400 invalid_field" test "$TC_CODE $(tc_jq .code)" = "400 invalid_field"
tc_req GET /api/nodes/n2/drain
t_check "GET on the route: 405" test "$TC_CODE" = 405
t_check "n2 still alive after all that" tc_node_is n2 alive

# ---------------------------------------------------------------- drain
drain_req "$ADMIN" drain n2
t_check "the admin token drains n2: 200 draining ($TC_BODY)" \
    test "$TC_CODE $(tc_jq .id) $(tc_jq .action) $(tc_jq .state)" = "200 n2 drain draining"
epoch=$(tc_jq .ring_epoch)
t_check "... with the ring epoch of the change ($epoch)" test "${epoch:-0}" -gt 0
t_check "bickyctl: n2 draining" tc_node_is n2 draining
t_check "the gateway's ring: n2 draining, off the ring" bk_wait_for 10 gw_is n2 "draining false"
t_check "the registry logged the act with the token's id and team" \
    grep -q "admin action=drain node=n2 status=200 by=token:$ADMIN_ID team=dev" "$LOG/registry.log"
t_check "every conversation of n2 is n1's on the ring now" \
    eval 'for c in "${on_n2[@]}"; do [[ $(tc_owner "$c") == n1 ]] || exit 1; done'
t_check "n2 releases its claims" \
    bk_wait_for 15 eval '[[ $(tc_sql "select count(*) from conversation_owners where node_id = '"'n2'"'") == 0 ]]'
t_check "a new turn of $moved is accepted" test -n "$(tc_post "$moved" 'after the drain')"
t_check "... it completes" bk_wait_for 20 eval \
    '[[ $(tc_sql "select count(*) from messages where conversation_id = '"'$moved'"' and role = '"'assistant'"' and status = '"'completed'"'") == 2 ]]'
t_check "... on n1, which holds the claim now" bk_wait_for 10 eval '[[ $(owner_claim "$moved") == n1 ]]'
drain_req "$ADMIN" drain n2
t_check "draining it again: 200, still draining (the registry's no-op)" \
    test "$TC_CODE $(tc_jq .state)" = "200 draining"

# ---------------------------------------------------------------- undrain
drain_req "$ADMIN" undrain n2
t_check "undrain n2: 200 alive ($TC_BODY)" test "$TC_CODE $(tc_jq .action) $(tc_jq .state)" = "200 undrain alive"
t_check "bickyctl: n2 alive" tc_node_is n2 alive
t_check "the gateway's ring: n2 alive and on the ring" bk_wait_for 10 gw_is n2 "alive true"
t_check "its conversations are n2's again" \
    eval 'for c in "${on_n2[@]}"; do [[ $(tc_owner "$c") == n2 ]] || exit 1; done'
t_check "a turn of $moved completes again" test -n "$(tc_post "$moved" 'after the undrain')"
t_check "... on n2" bk_wait_for 15 eval '[[ $(owner_claim "$moved") == n2 ]]'
drain_req "$ADMIN" undrain n2
t_check "undrain of an alive node: 200 alive (the registry's no-op)" test "$TC_CODE $(tc_jq .state)" = "200 alive"
t_check "the registry logged the undrain" \
    grep -q "admin action=undrain node=n2 status=200 by=token:$ADMIN_ID team=dev" "$LOG/registry.log"

# ---------------------------------------------------------------- the registry decides
tc_sql "update api_tokens set admin = false where id = '$ADMIN_ID'" >/dev/null
drain_req "$ADMIN" drain n1
t_check "admin flag cleared in Postgres (the gateway still caches it): the registry refuses 403 ($TC_BODY)" \
    test "$TC_CODE $(tc_jq .code)" = "403 forbidden"
t_check "... with its reason" grep -q "not an admin token" <<<"$(tc_jq .error)"
t_check "... logged by the registry" \
    grep -q "refused admin action=drain node=n1 by=token:$ADMIN_ID team=dev" "$LOG/registry.log"
t_check "n1 still alive" tc_node_is n1 alive
tc_sql "update api_tokens set admin = true where id = '$ADMIN_ID'" >/dev/null
"$CTL" --database-url "$BICKY_DATABASE_URL" token revoke "$ADMIN_ID" >/dev/null
# (undrain of an alive node: even a request racing the revocation changes nothing.)
t_check "a revoked admin token: 401 within 5 s" \
    bk_wait_for 5 eval 'drain_req "$ADMIN" undrain n1; [[ $TC_CODE == 401 ]]'
t_check "n1 and n2 alive at the end" eval 'tc_node_is n1 alive && tc_node_is n2 alive'
tc_finish api_drain
