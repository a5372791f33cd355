#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_net_advertise.sh — bind versus advertise (issue 11). First the command
# lines: a wildcard --bind/--pub-bind without its --advertise/--pub-advertise,
# or a bad advertised address, is exit 2 with a clear message and binds
# nothing. Then a real cluster whose registry and nodes bind 0.0.0.0 and
# advertise 127.0.0.2 (a loopback alias): the registry lists the advertised
# endpoints, the gateway and the nodes connect to 127.0.0.2 (seen with ss), and
# a message goes through with its live deltas (which only travel over the
# node's PUB). Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=net_advertise
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

: "${BICKY_BIN:?BICKY_BIN must name the directory of the binaries under test}"

# refused WHAT BIN ARGS...: the binary exits 2, names the flag, and leaves
# nothing running (it never got as far as binding).
refused() {
    local what=$1 bin=$2 out rc
    shift 2
    out=$(timeout 10 "$BICKY_BIN/$bin" "$@" --database-url 'host=/nonexistent' 2>&1)
    rc=$?
    t_check "$what: exit 2 (got $rc)" test "$rc" = 2
    t_check "$what: the message names the flag ($out)" eval '[[ $out == *advertise* ]]'
}

refused "node, wildcard --bind" bicky-node --id n1 --bind 'tcp://*:7110'
refused "node, 0.0.0.0 --pub-bind" bicky-node --id n1 --bind tcp://127.0.0.1:7110 \
    --pub-bind tcp://0.0.0.0:7111
refused "node, wildcard --advertise" bicky-node --id n1 --bind tcp://0.0.0.0:7110 \
    --advertise 'tcp://*:7110'
refused "node, --advertise without tcp://" bicky-node --id n1 --bind tcp://0.0.0.0:7110 \
    --advertise 10.0.0.2:7110
refused "node, bad --pub-advertise port" bicky-node --id n1 --pub-bind tcp://0.0.0.0:7111 \
    --pub-advertise tcp://10.0.0.2:99999
refused "registry, wildcard --pub-bind" bicky-registry --pub-bind 'tcp://*:7101'
refused "registry, [::] --pub-bind" bicky-registry --pub-bind 'tcp://[::]:7101'
t_check "BICKY_NODE_ADVERTISE is read from the environment" \
    eval '[[ $(BICKY_NODE_ADVERTISE=tcp://0.0.0.0:1 "$BICKY_BIN/bicky-node" --id n1 \
        --database-url x 2>&1) == *"--advertise"*wildcard* ]]'
t_check "BICKY_REGISTRY_PUB_ADVERTISE is read from the environment" \
    eval '[[ $(BICKY_REGISTRY_PUB_ADVERTISE=bad "$BICKY_BIN/bicky-registry" \
        --database-url x 2>&1) == *"--pub-advertise"* ]]'

export BICKY_ZMQ_HOST=0.0.0.0 BICKY_ZMQ_ADVERTISE=127.0.0.2
tc_start net_advertise
B=$BICKY_ZMQ_BASE

t_check "bickyctl reaches the registry at its advertised address ($BICKY_REGISTRY)" \
    test "$BICKY_REGISTRY" = "tcp://127.0.0.2:$B"
nodes=$("$CTL" nodes --json 2>&1)
t_check "the registry lists the advertised endpoints ($nodes)" \
    test "$(jq -r '[.nodes[] | .router, .pub] | join(" ")' <<<"$nodes")" \
    = "tcp://127.0.0.2:$((B + 12)) tcp://127.0.0.2:$((B + 13)) tcp://127.0.0.2:$((B + 14)) tcp://127.0.0.2:$((B + 15))"
t_check "the node logs what it binds and what it advertises" \
    grep -q "node started id=n1 router=tcp://127.0.0.2:$((B + 12)) .*bind=tcp://0.0.0.0:$((B + 12))" \
    "$TC_VAR/log/n1.log"
t_check "the registry logs its advertised PUB" \
    grep -q "registry started .*pub=tcp://127.0.0.2:$((B + 1)) pub_bind=tcp://0.0.0.0:$((B + 1))" \
    "$TC_VAR/log/registry.log"
t_check "the sockets are bound on 0.0.0.0" \
    eval '[[ $(ss -Htln "sport = :$((B + 12))") == *0.0.0.0:$((B + 12))* ]]'

# A conversation on each node: its deltas travel over its owner's PUB only.
for want in n1 n2; do
    conv=""
    for _ in $(seq 1 40); do
        c=$(tc_conv '{"metadata":{"echo":{"delay_ms":5}}}')
        if [[ $(tc_owner "$c") == "$want" ]]; then
            conv=$c
            break
        fi
    done
    t_check "a conversation owned by $want" test -n "$conv"
    sse=$TC_VAR/$want.sse
    rm -f "$TC_VAR/ready"
    tc_sse "/api/conversations/$conv/events" --until turn.completed --timeout 15 \
        --ready-file "$TC_VAR/ready" >"$sse" &
    probe=$!
    t_check "SSE stream open ($want)" bk_wait_for 5 test -e "$TC_VAR/ready"
    tc_req POST "/api/conversations/$conv/messages" '{"content":"over the advertised address"}'
    t_check "POST message to $want is 202 (got $TC_CODE)" test "$TC_CODE" = 202
    wait "$probe"
    joined=$(jq -j 'select(.event == "message.delta") | .data.text' "$sse")
    t_check "the live deltas from $want arrived ('$joined')" \
        test "$joined" = "echo: over the advertised address"
done

# Who connects where: every connection to these ports goes to 127.0.0.2.
# conns PORT: established connections whose destination is that port.
conns() { ss -Htn state established "dport = :$1"; }
for p in $((B + 1)) $((B + 12)) $((B + 13)) $((B + 14)) $((B + 15)); do
    t_check "peers are connected to 127.0.0.2:$p" eval '[[ $(conns $p) == *127.0.0.2:$p* ]]'
    t_check "no peer uses another address for port $p" \
        eval '[[ -z $(conns $p | grep -v "127.0.0.2:$p") ]]'
done

tc_finish net_advertise
