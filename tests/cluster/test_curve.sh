#!/usr/bin/env bash
# test_curve.sh — CURVE with ZAP and roles bound to keys (issue 11), on a real
# 2-node cluster started with keys by deploy/local/up. Attackers use
# curve_probe (tests/tools/curve_probe.c): with no key, with the stolen
# gateway key, with another node's key, with the admin key where it does not
# belong, and with a rogue key from another keys directory. None can register
# a node, hijack a live node id, or drain/undrain/remove (the stolen gateway key
# not even with a team token: only with an admin API token, which the registry
# checks in Postgres, and then drain/undrain only); a keyless client gets
# no reply from any socket and no event from a PUB; every attempt is logged by
# its target (the log lines are asserted). bickyctl works with the admin key
# and fails clearly without it; the daemons refuse to start without keys, and
# --insecure refuses non-loopback endpoints. The cluster keeps working.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=curve
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

export BICKY_NODES=2 BICKY_LOG_LEVEL=notice
unset BICKY_INSECURE
tc_start curve
PROBE=$(cd "$BICKY_BIN/../tests" && pwd)/curve_probe
[[ -x $PROBE ]] || bk_die "curve_probe not built next to $BICKY_BIN"
K=$BICKY_KEYS
LOG=$TC_VAR/log
REG=$BICKY_REGISTRY
B=$BICKY_ZMQ_BASE
REG_CERT=$K/public/registry/registry.cert
GW_KEY=$K/secret/gateway-gateway.key
FAKE_R=tcp://127.0.0.1:9
FAKE_P=tcp://127.0.0.1:10
TEAM=00000000-0000-4000-8000-000000000001

# n_router N / n_pub N: node N's endpoints as up gives them.
n_router() { echo "tcp://127.0.0.1:$((B + 10 + 2 * $1))"; }
n_pub() { echo "tcp://127.0.0.1:$((B + 11 + 2 * $1))"; }

# probe ARGS...: curve_probe's one line of output.
probe() { "$PROBE" --wait-ms 1500 "$@" 2>/dev/null; }

# logged FILE PATTERN: the log line appears (the target logs the attempt).
logged() { bk_wait_for 10 grep -q -F -e "$2" "$LOG/$1.log"; }

# n1's router as the registry lists it.
n1_router() {
    "$CTL" --json nodes 2>/dev/null | jq -r '.nodes[] | select(.id == "n1") | .router'
}
node_listed() { "$CTL" --json nodes 2>/dev/null | jq -e --arg id "$1" '.nodes[] | select(.id == $id)' >/dev/null; }

# ---------------------------------------------------------------- CURVE is on
for p in registry n1 n2 gateway; do
    t_check "$p runs with CURVE" grep -q "curve=on" "$LOG/$p.log"
done
t_check "keys: secret dir 700, secret keys 600" \
    eval '[[ $(stat -c %a "$K/secret") == 700 && $(stat -c %a "$K/secret/node-n1.key") == 600 ]]'
conv=$(tc_conv)
t_check "the API works over CURVE (conversation created)" test -n "$conv"
t_check "bickyctl nodes with the admin key: n1 and n2 alive" \
    bk_wait_for 10 eval 'tc_node_is n1 alive && tc_node_is n2 alive'
R1=$(n1_router)

# ---------------------------------------------------------------- no key
out=$(probe "$REG" register n1 "$FAKE_R" "$FAKE_P")
t_check "no key: register of live n1 gets no reply ($out)" test "$out" == "no reply"
out=$(probe "$REG" register evil "$FAKE_R" "$FAKE_P")
t_check "no key: register of a new node gets no reply ($out)" test "$out" == "no reply"
for a in drain undrain remove; do
    out=$(probe "$REG" admin "$a" n1)
    t_check "no key: admin $a gets no reply ($out)" test "$out" == "no reply"
done
out=$(probe "$REG" ring)
t_check "no key: ring_get gets no reply ($out)" test "$out" == "no reply"
out=$(probe "$(n_router 1)" api status "$TEAM")
t_check "no key: an API op to n1 gets no reply ($out)" test "$out" == "no reply"
out=$(probe "$(n_router 1)" api rule.create "$TEAM" - \
    '{"scope":"team","tool_pattern":"*","decision":"allow"}' || true)
t_check "no key: rule.create to n1 gets no reply" test "$out" == "no reply"
t_check "the registry logged the keyless peers" logged registry "refused a connection socket=registry-router"
t_check "n1 logged the keyless peer" logged n1 "refused a connection socket=node-router"

# ---------------------------------------------------------------- stolen gateway key
G=(--cert "$GW_KEY" --server-cert "$REG_CERT")
out=$(probe "${G[@]}" "$REG" register n1 "$FAKE_R" "$FAKE_P")
t_check "gateway key: hijacking n1 is refused ($out)" \
    grep -q "state=unknown error=only the key of that node" <<<"$out"
t_check "... and logged by the registry" \
    logged registry "refused type=register node=n1 from role=gateway name=gateway"
out=$(probe "${G[@]}" "$REG" register evil "$FAKE_R" "$FAKE_P")
t_check "gateway key: registering a new node is refused ($out)" grep -q "state=unknown" <<<"$out"
t_check "... and logged" logged registry "refused type=register node=evil from role=gateway"
out=$(probe "${G[@]}" "$REG" heartbeat n1)
t_check "gateway key: a heartbeat for n1 is refused ($out)" grep -q "state=unknown" <<<"$out"
for a in drain undrain remove; do
    out=$(probe "${G[@]}" "$REG" admin "$a" n1)
    t_check "gateway key: admin $a is refused 403 ($out)" grep -q "admin_rep status=403" <<<"$out"
done
t_check "... and logged" logged registry "refused type=admin node=n1 from role=gateway"
# With an API token (what the gateway forwards for POST /api/nodes/:id/drain): the
# registry checks the token itself in Postgres, so the stolen key needs an admin token too.
plain=$(tc_team_token dev)
created=$("$CTL" --database-url "$BICKY_DATABASE_URL" --json token create --team dev --admin 2>/dev/null)
admin_tok=$(jq -r .token <<<"$created")
admin_id=$(jq -r .id <<<"$created")
t_check "a team token and an admin token" test -n "$plain" -a -n "$admin_tok"
for a in drain undrain; do
    out=$(probe "${G[@]}" "$REG" admin "$a" n1 "$plain")
    t_check "gateway key + a team token: admin $a is refused 403 ($out)" \
        grep -q "admin_rep status=403 error=the token is not an admin token" <<<"$out"
    out=$(probe "${G[@]}" "$REG" admin "$a" n1 "bk_not_a_token_at_all")
    t_check "gateway key + an unknown token: admin $a is refused 403 ($out)" \
        grep -q "admin_rep status=403 error=invalid or revoked token" <<<"$out"
done
t_check "... and logged with the token's id" logged registry "refused admin action=drain node=n1 by=token:"
out=$(probe "${G[@]}" "$REG" admin remove n1 "$admin_tok")
t_check "gateway key + an admin token: remove is refused 403 ($out)" \
    grep -q "admin_rep status=403 error=an API token may only drain or undrain" <<<"$out"
out=$(probe --cert "$K/secret/node-n2.key" --server-cert "$REG_CERT" "$REG" admin drain n2 "$admin_tok")
t_check "n2's key + an admin token: refused 403, only gateways forward tokens ($out)" \
    grep -q "admin_rep status=403" <<<"$out"
t_check "n1 still alive (nothing drained)" tc_node_is n1 alive
out=$(probe "${G[@]}" "$REG" admin drain n2 "$admin_tok")
t_check "gateway key + an admin token: drain n2 is done ($out)" \
    grep -q "admin_rep status=200 error= state=draining" <<<"$out"
t_check "... n2 draining" tc_node_is n2 draining
t_check "... logged with the token's id and team" \
    logged registry "admin action=drain node=n2 status=200 by=token:$admin_id team=dev"
out=$(probe "${G[@]}" "$REG" admin undrain n2 "$admin_tok")
t_check "gateway key + an admin token: undrain n2 ($out)" grep -q "admin_rep status=200 error= state=alive" <<<"$out"
"$CTL" --database-url "$BICKY_DATABASE_URL" token revoke "$admin_id" >/dev/null
out=$(probe "${G[@]}" "$REG" admin drain n2 "$admin_tok")
t_check "gateway key + the admin token once revoked: 403 ($out)" \
    grep -q "admin_rep status=403 error=invalid or revoked token" <<<"$out"
t_check "n2 alive again" tc_node_is n2 alive
out=$(probe "${G[@]}" "$REG" ring)
t_check "gateway key: ring_get is answered (a gateway's right) ($out)" grep -q "^ring epoch=" <<<"$out"
out=$(probe --cert "$GW_KEY" --server-cert "$K/public/node/n1.cert" "$(n_router 1)" \
    api permission.ask "$TEAM")
t_check "gateway key: permission.ask on n1's ROUTER is refused 403 ($out)" \
    grep -q "api_rep status=403" <<<"$out"
t_check "... and logged by n1" logged n1 "refused op=permission.ask from role=gateway"

# ---------------------------------------------------------------- other keys
out=$(probe --cert "$K/secret/node-n2.key" --server-cert "$REG_CERT" "$REG" register n1 "$FAKE_R" "$FAKE_P")
t_check "n2's key: registering n1 is refused ($out)" grep -q "state=unknown" <<<"$out"
t_check "... and logged" logged registry "refused type=register node=n1 from role=node name=n2"
out=$(probe --cert "$K/secret/node-n2.key" --server-cert "$REG_CERT" "$REG" admin drain n2)
t_check "n2's key: admin drain is refused 403 ($out)" grep -q "status=403" <<<"$out"
for who in node-n2 admin-admin; do
    out=$(probe --cert "$K/secret/$who.key" --server-cert "$K/public/node/n1.cert" "$(n_router 1)" \
        api status "$TEAM")
    t_check "$who key: n1's ROUTER admits gateways only: no reply ($out)" test "$out" == "no reply"
done
t_check "n1 logged the refused keys (ZAP 400)" logged n1 "key not admitted by this socket (ZAP 400)"
ROGUE=$TC_VAR/rogue
"$CTL" keys init "$ROGUE" >/dev/null && "$CTL" --keys "$ROGUE" keys add admin admin >/dev/null
out=$(probe --cert "$ROGUE/secret/admin-admin.key" --server-cert "$REG_CERT" "$REG" admin drain n1)
t_check "a rogue admin key (not the cluster's): no reply ($out)" test "$out" == "no reply"
t_check "... and logged by the registry" logged registry "key not admitted by this socket (ZAP 400)"

t_check "n1 still registered with its own endpoints" test "$(n1_router)" == "$R1"
t_check "no node 'evil'" eval '! node_listed evil'
t_check "n1 and n2 still alive" eval 'tc_node_is n1 alive && tc_node_is n2 alive'

# ---------------------------------------------------------------- the local permission socket
LOCAL=$(grep -o 'local=ipc://[^ ]*' "$LOG/n1.log" | tail -n 1)
LOCAL=${LOCAL#local=}
t_check "n1 has its permission socket (ipc, mode 600): $LOCAL" \
    eval '[[ $LOCAL == ipc://* && $(stat -c %a "${LOCAL#ipc://}") == 600 ]]'
out=$(probe "$LOCAL" api permission.ask "$TEAM" "$conv" \
    '{"conversation_id":"'"$conv"'","tool_name":"Bash","input":{}}')
t_check "permission.ask on it reaches the op (no claude turn here: 409) ($out)" \
    grep -q "api_rep status=409" <<<"$out"
out=$(probe "$LOCAL" api status "$TEAM")
t_check "any other op on it is refused 403 ($out)" grep -q "api_rep status=403" <<<"$out"
t_check "... and logged" logged n1 "the local socket takes permission.ask only"

# ---------------------------------------------------------------- PUB
owner=$(tc_owner "$conv")
i=${owner#n}
STOP=$TC_VAR/sub.stop
"$PROBE" "$(n_pub "$i")" sub "$STOP" >"$TC_VAR/sub.nokey" 2>&1 &
p1=$!
"$PROBE" --cert "$K/secret/admin-admin.key" --server-cert "$K/public/node/$owner.cert" \
    "$(n_pub "$i")" sub "$STOP" >"$TC_VAR/sub.admin" 2>&1 &
p2=$!
"$PROBE" --cert "$GW_KEY" --server-cert "$K/public/node/$owner.cert" \
    "$(n_pub "$i")" sub "$STOP" >"$TC_VAR/sub.gateway" 2>&1 &
p3=$!
# events_of FILE: events the probe has printed.
events_of() { grep -c '^event' "$1"; }
# The gateway key (a control) sees events once its subscription is through;
# the others were started first and would see the same ones if admitted.
got_one() {
    tc_post "$conv" "ping $(bk_now_ms)" >/dev/null
    (($(events_of "$TC_VAR/sub.gateway") > 0))
}
t_check "a gateway key subscribes to $owner's PUB and gets events" bk_wait_for 20 got_one
n=$(events_of "$TC_VAR/sub.gateway")
tc_post "$conv" "one more" >/dev/null
t_check "... and the next turn's events" \
    bk_wait_for 10 eval '(($(events_of "$TC_VAR/sub.gateway") > n))'
touch "$STOP"
wait "$p1" "$p2" "$p3"
t_check "no key: subscribed to $owner's PUB, got no event ($(tail -n 1 "$TC_VAR/sub.nokey"))" \
    grep -q "^received 0$" "$TC_VAR/sub.nokey"
t_check "admin key: the PUB admits gateways only, no event ($(tail -n 1 "$TC_VAR/sub.admin"))" \
    grep -q "^received 0$" "$TC_VAR/sub.admin"
t_check "$owner logged the refused subscribers" logged "$owner" "refused a connection socket=node-pub"

# ---------------------------------------------------------------- bickyctl
t_check "bickyctl drain n2 with the admin key" "$CTL" drain n2
t_check "bickyctl undrain n2 with the admin key" "$CTL" undrain n2
for cmd in nodes ring status "drain n1" "undrain n1" "remove n1"; do
    # shellcheck disable=SC2086
    out=$(env -u BICKY_ADMIN_CERT -u BICKY_KEYS "$CTL" $cmd 2>&1)
    rc=$?
    t_check "bickyctl $cmd without keys fails clearly (rc=$rc)" \
        eval '((rc != 0)) && grep -q "refuses to start without keys" <<<"$out"'
done
out=$(BICKY_ADMIN_CERT=$GW_KEY "$CTL" drain n1 2>&1)
t_check "bickyctl with the gateway key is refused ($out)" grep -q "needs a key of role admin" <<<"$out"
out=$(env -u BICKY_ADMIN_CERT -u BICKY_KEYS "$CTL" --insecure drain n1 2>&1)
t_check "bickyctl --insecure gets no answer from a CURVE registry" grep -q "no registry answered" <<<"$out"
t_check "n1 still alive after all that" tc_node_is n1 alive

# ---------------------------------------------------------------- secure by default
E=(env -u BICKY_CERT -u BICKY_ADMIN_CERT -u BICKY_KEYS -u BICKY_INSECURE)
out=$("${E[@]}" "$BICKY_BIN/bicky-registry" --bind tcp://127.0.0.1:1 --pub-bind tcp://127.0.0.1:2 2>&1)
rc=$?
t_check "bicky-registry without keys refuses to start (rc=$rc)" \
    eval '((rc == 2)) && grep -q "refuses to start without keys" <<<"$out"'
out=$("${E[@]}" "$BICKY_BIN/bicky-registry" --insecure --bind tcp://0.0.0.0:1 2>&1)
t_check "bicky-registry --insecure refuses tcp://0.0.0.0" \
    grep -q -- "--insecure refuses endpoint tcp://0.0.0.0:1" <<<"$out"
out=$("${E[@]}" "$BICKY_BIN/bicky-node" --id n9 --insecure --bind tcp://10.9.9.9:1 2>&1)
t_check "bicky-node --insecure refuses a non-loopback bind" grep -q -- "--insecure refuses endpoint tcp://10.9.9.9:1" <<<"$out"
out=$("${E[@]}" "$BICKY_BIN/bicky-node" --id n9 --cert "$K/secret/node-n1.key" --keys "$K" 2>&1)
t_check "bicky-node refuses another node's key" grep -q "is the key of node 'n1', not of 'n9'" <<<"$out"
out=$("${E[@]}" "$BICKY_BIN/bicky-gateway" --insecure --registry tcp://192.0.2.1:7100 2>&1)
t_check "bicky-gateway --insecure refuses a remote registry" grep -q -- "--insecure refuses endpoint" <<<"$out"

# ---------------------------------------------------------------- still working
t_check "the cluster still answers: a message is accepted" test -n "$(tc_post "$conv" 'after the attacks')"
tc_finish curve
