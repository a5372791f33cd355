#!/usr/bin/env bash
# test_deploy_files.sh — the deployment files are valid for the tools that
# read them, and name only options the binaries have:
#  - deploy/haproxy/render writes a config `haproxy -c` accepts (2 and 5
#    gateways), with leastconn, /ready checks and stream timeouts, and
#    refuses input that would inject config lines;
#  - deploy/systemd units pass `systemd-analyze verify` without a single
#    warning (ExecStart pointed at the binaries under test), a broken copy
#    does not, and `systemd-analyze security --offline` rates each one OK;
#  - every BICKY_* variable of deploy/systemd/env/*.env is one the binary of
#    that file reads (its --help lists it), and the gateway's files give it
#    no database URL.
# Needs haproxy and systemd (tests/run installs both). Env: BICKY_BIN, BICKY_SRC.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=deploy_files
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"

: "${BICKY_BIN:?BICKY_BIN must name the directory of the binaries under test}"
BICKY_BIN=$(cd "$BICKY_BIN" && pwd)
for tool in haproxy systemd-analyze; do
    command -v "$tool" >/dev/null || bk_die "$tool is missing (apt-get install haproxy systemd)"
done
T=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/deploy_files.XXXXXX")
trap 'rm -rf "$T"' EXIT
RENDER=$SRC/deploy/haproxy/render
SD=$SRC/deploy/systemd

# ---------------------------------------------------------------- haproxy

t_check "render --help" bash -c "'$RENDER' --help | grep -q 'NAME=ADDRESS:PORT'"
"$RENDER" --bind 127.0.0.1:18080 --stats-socket "$T/admin.sock" \
    gw1=10.0.0.2:8080 gw2=10.0.0.3:8080 >"$T/h2.cfg"
t_check "haproxy -c accepts the config for 2 gateways" \
    bash -c "haproxy -c -f '$T/h2.cfg' | grep -q 'Configuration file is valid'"
"$RENDER" --check-inter 500 --maxconn 5000 a=10.0.0.2:8080 b=10.0.0.3:8080 c=10.0.0.4:8081 \
    'd=[fd00::5]:8080' e=localhost:8080 >"$T/h5.cfg"
t_check "haproxy -c accepts the config for 5 gateways (IPv6, host names)" \
    bash -c "haproxy -c -f '$T/h5.cfg' | grep -q 'Configuration file is valid'"
t_check "5 server lines" test "$(grep -c '^    server ' "$T/h5.cfg")" = 5
for want in 'balance leastconn' 'http-check send meth GET uri /ready' 'http-check expect status 200' \
    'timeout tunnel 1h' 'timeout server 60s' 'timeout client 60s' 'level admin' 'inter 500ms'; do
    t_check "the config has '$want'" grep -qF "$want" "$T/h5.cfg"
done
t_check "no @marker@ left" bash -c "! grep -q '@[A-Z_]*@' '$T/h5.cfg'"
for bad in 'gw1=10.0.0.2:8080;x' $'gw1=10.0.0.2:8080\n    server evil 1.2.3.4:1' 'gw 1=10.0.0.2:8080' \
    'gw1=10.0.0.2' '=10.0.0.2:80' 'gw1=*:80'; do
    t_check "render refuses $(printf '%q' "$bad")" bash -c "! '$RENDER' \"\$1\" >/dev/null 2>&1" _ "$bad"
done
t_check "render refuses a bad --bind" bash -c "! '$RENDER' --bind 'x y:80' a=1.2.3.4:80 >/dev/null 2>&1"
t_check "render refuses a gateway name given twice" \
    bash -c "! '$RENDER' a=1.2.3.4:80 a=1.2.3.5:80 >/dev/null 2>&1"

# ---------------------------------------------------------------- systemd

mkdir -p "$T/units"
for f in "$SD"/*.service "$SD"/*.target; do
    sed "s|/usr/local/bin/|$BICKY_BIN/|" "$f" >"$T/units/${f##*/}"
done
units=(bicky-registry.service bicky-gateway.service bicky-node@n1.service bicky.target)
verify() { (cd "$T/units" && systemd-analyze verify "${units[@]/#/./}" >"$T/verify.out" 2>&1); }
t_check "systemd-analyze verify: exit 0" verify
t_check "systemd-analyze verify: no warning at all" test ! -s "$T/verify.out"
cat "$T/verify.out"
for u in bicky-registry.service bicky-gateway.service bicky-node@n1.service; do
    score=$(cd "$T/units" && systemd-analyze security --offline=yes "./$u" 2>/dev/null |
        awk '/Overall exposure level/ { print $(NF-2) }')
    t_check "$u: security exposure $score is below 2.5" awk -v s="${score:-99}" 'BEGIN { exit !(s < 2.5) }'
done
# The check catches mistakes: a misspelt value, then a missing binary.
sed -i 's/^ProtectSystem=strict/ProtectSystem=strct/' "$T/units/bicky-registry.service"
(cd "$T/units" && systemd-analyze verify ./bicky-registry.service >"$T/bad.out" 2>&1)
t_check "a misspelt value is reported" grep -q 'ProtectSystem\|protect system' "$T/bad.out"
sed "s|^ExecStart=.*|ExecStart=$T/no-such-binary|" "$SD/bicky-gateway.service" >"$T/units/bicky-gateway.service"
t_check "a missing ExecStart binary fails verify" \
    bash -c "cd '$T/units' && ! systemd-analyze verify ./bicky-gateway.service >/dev/null 2>&1"
t_check "the node's id is the instance name" grep -qx 'ExecStart=/usr/local/bin/bicky-node --id %i' \
    "$SD/bicky-node@.service"
t_check "the gateway unit unsets the database URL" grep -qx 'UnsetEnvironment=BICKY_DATABASE_URL' \
    "$SD/bicky-gateway.service"
drain=$(sed -n 's/^BICKY_GATEWAY_DRAIN_MS=//p' "$SD/env/gateway.env")
stop=$(sed -n 's/^TimeoutStopSec=//p' "$SD/bicky-gateway.service")
t_check "gateway TimeoutStopSec ($stop s) covers the drain ($drain ms) + 5 s" test $((drain / 1000 + 5)) -le "$stop"

# ---------------------------------------------------------------- env files

# vars FILE: the BICKY_* names a file sets.
vars() { sed -n 's/^\(BICKY_[A-Z_]*\)=.*/\1/p' "$1"; }
check_env() {
    local bin=$1 file v help
    shift
    help=$("$BICKY_BIN/$bin" --help 2>&1)
    for file in "$@"; do
        for v in $(vars "$SD/env/$file"); do
            t_check "$file: $v is read by $bin" grep -qw "$v" <<<"$help"
        done
    done
}
check_env bicky-registry registry.env
check_env bicky-node bicky.env node.env node-n1.env
check_env bicky-gateway bicky.env gateway.env
t_check "no database URL in the files the gateway reads" \
    bash -c "! grep -q '^BICKY_DATABASE_URL' '$SD/env/bicky.env' '$SD/env/gateway.env'"

t_finish deploy_files
