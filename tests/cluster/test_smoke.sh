#!/usr/bin/env bash
# test_smoke.sh — end to end: deploy/local/up -d starts a real cluster (own
# Postgres, registry, 2 nodes, gateway) from $BICKY_BIN in a temporary
# BICKY_VAR; we check --help masks the database password, readiness,
# membership, the database URL passed only in the environment, a node crash
# and its restart, hostile bytes on every ZeroMQ and HTTP port, then
# deploy/local/down leaves no process behind, every process exited 0 on
# SIGTERM and no sanitizer spoke.
# Env: BICKY_BIN (binaries under test), BICKY_SRC (source tree), optional
# BICKY_TEST_TMPDIR (parent of the temporary dir), BICKY_TEST_KEEP=1.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=smoke
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/zmtp.sh
source "$SRC/tests/lib/zmtp.sh"

: "${BICKY_BIN:?BICKY_BIN must name the directory of the binaries under test}"
BICKY_BIN=$(cd "$BICKY_BIN" && pwd)
CTL=$BICKY_BIN/bickyctl

VAR=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/smoke.XXXXXX")
ZMQ=$(bk_free_port_block 50) || bk_die "no 50 free consecutive ports"
HTTP=$(bk_free_port) || bk_die "no free port"
while ((HTTP >= ZMQ && HTTP < ZMQ + 50)); do
    HTTP=$(bk_free_port)
done
export BICKY_VAR=$VAR BICKY_HTTP_PORT=$HTTP BICKY_ZMQ_BASE=$ZMQ BICKY_NODES=2 BICKY_BIN
export BICKY_SKIP_BUILD=1 BICKY_SKIP_INSTALL=1
# A first restart after 6 s lets the registry (dead after 3 s of silence) see
# the killed node dead first; notice level keeps the "dropped" warnings.
export BICKY_RESTART_BACKOFF_MS=6000 BICKY_DEAD_AFTER_MS=3000 BICKY_LOG_LEVEL=notice
export BICKY_SUPERVISE=1
# The hostile-bytes checks below talk ZMTP with the NULL mechanism to reach the
# parsers, so this cluster runs without keys, on loopback (--insecure); CURVE
# and its refusals are cluster/test_curve's.
export BICKY_INSECURE=1
unset BICKY_PG_PORT BICKY_DATABASE_URL BICKY_REGISTRY BICKY_URL BICKY_TOKEN BICKY_CERT BICKY_ADMIN_CERT BICKY_KEYS
REG_PORT=$ZMQ
N1_PORT=$((ZMQ + 12))
N2_PORT=$((ZMQ + 14))

cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -e $VAR/run/supervisor.pid || -e $VAR/run/registry.pid ]]; then
        "$SRC/deploy/local/down" >>"$VAR/down.log" 2>&1 || true
    fi
    if ((T_FAILED > 0)); then
        local f
        for f in "$VAR"/log/*.log; do
            [[ -f $f ]] || continue
            echo "--- $f (last 25 lines)"
            tail -n 25 "$f"
        done
    fi
    if [[ ${BICKY_TEST_KEEP:-0} == 1 ]]; then
        echo "kept $VAR"
    else
        rm -rf "$VAR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# State of a node as bickyctl reports it (nothing when unknown).
node_state() {
    "$CTL" --json nodes 2>/dev/null | jq -r --arg id "$1" \
        '(if type == "array" then . else (.nodes // .data // []) end) | .[]
         | select(.id == $id or .node_id == $id) | .state' 2>/dev/null
}

node_is() { [[ $(node_state "$1") == "$2" ]]; }

# HTTP status of a request: http_status METHOD PATH BODY [curl args...]
# (BODY may be empty; when not, it is sent as JSON).
http_status() {
    local method=$1 path=$2 body=$3
    shift 3
    local args=(-s -o /dev/null -w '%{http_code}' -m 5 -X "$method" "$@")
    if [[ -n $body ]]; then
        args+=(-H 'Content-Type: application/json' -d "$body")
    fi
    curl "${args[@]}" "$BICKY_URL$path" 2>/dev/null
}

# authed METHOD PATH [BODY]: the same with the dev team's token.
authed() { http_status "$1" "$2" "${3:-}" -H "Authorization: Bearer $BICKY_TOKEN"; }

# Cluster answers: ready, both nodes alive, and authenticated API calls work.
cluster_answers() {
    local what=$1 i ok=1 s
    t_check "$what: GET /ready is 200" bk_http_ok "$BICKY_URL/ready"
    t_check "$what: n1 alive" node_is n1 alive
    t_check "$what: n2 alive" node_is n2 alive
    # Four creations: with two nodes some land on each node's actors.
    for i in 1 2 3 4; do
        s=$(authed POST /api/conversations '{"title":"smoke"}')
        [[ $s == 201 ]] || ok=0
    done
    t_check "$what: 4 x POST /api/conversations are 201" test "$ok" = 1
    s=$(authed GET '/api/conversations?limit=5')
    t_check "$what: GET /api/conversations is 200 (got $s)" test "$s" = 200
}

# True when no process of the cluster has the database URL on its command
# line (ps shows it to every user): registry and nodes get it in their
# environment, the gateway not at all.
url_only_in_env() {
    local n pid env
    for n in registry n1 n2 gateway; do
        pid=$(bk_read_pid "$VAR/run/$n.pid")
        [[ -n $pid ]] || return 1
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -e --database-url -e "$BICKY_DATABASE_URL"; then
            echo "$n (pid $pid) has the database URL on its command line"
            return 1
        fi
        env=$(tr '\0' '\n' <"/proc/$pid/environ" | grep -c '^BICKY_DATABASE_URL=')
        if [[ $n == gateway && $env != 0 ]] || [[ $n != gateway && $env != 1 ]]; then
            echo "$n (pid $pid): $env BICKY_DATABASE_URL in its environment"
            return 1
        fi
    done
}

# True when `$1 --help` with a password in BICKY_DATABASE_URL (both forms)
# shows the URL masked and never the password.
help_masks_password() {
    local url out
    for url in 'host=/tmp/x port=1 user=u password=s3cretpw dbname=d' \
        'postgresql://u:s3cretpw@127.0.0.1:1/d'; do
        out=$(BICKY_DATABASE_URL=$url "$BICKY_BIN/$1" --help 2>&1)
        if [[ $out == *s3cretpw* || ($out != *"password=***"* && $out != *"u:***@"*) ]]; then
            echo "$1 --help: $(grep -F -e s3cretpw -e -database-url <<<"$out")"
            return 1
        fi
    done
}

# ---------------------------------------------------------------- --help

for b in bicky-registry bicky-node bickyctl; do
    t_check "$b --help masks the database password" help_masks_password "$b"
done

# ---------------------------------------------------------------- up

echo "smoke: BICKY_VAR=$VAR http=$HTTP zmq=$ZMQ bin=$BICKY_BIN"
if "$SRC/deploy/local/up" -d >"$VAR/up.log" 2>&1; then
    t_pass "deploy/local/up -d"
else
    cat "$VAR/up.log"
    t_fail "deploy/local/up -d"
    t_finish smoke
    exit 1
fi
# shellcheck disable=SC1091
source "$VAR/env"
t_check "/ready is 200 within 15 s" bk_wait_for 15 bk_http_ok "$BICKY_URL/ready"
t_check "bickyctl nodes shows n1 and n2 alive" bk_wait_for 5 eval 'node_is n1 alive && node_is n2 alive'
t_check "GET /health is 200" bk_http_ok "$BICKY_URL/health"
s=$(http_status GET /api/conversations '')
t_check "no token: 401 (got $s)" test "$s" = 401
cluster_answers "after start"
t_check "the database URL is in no command line, only in the environment" url_only_in_env

# ---------------------------------------------------------------- a node dies

old=$(bk_read_pid "$VAR/run/n1.pid")
kill -KILL "$old" 2>/dev/null
t_check "killed n1 (pid $old) is dead within 5 s" bk_wait_for 5 node_is n1 dead
t_check "n1 alive again within 15 s (supervisor restart)" bk_wait_for 15 node_is n1 alive
new=$(bk_read_pid "$VAR/run/n1.pid")
t_check "n1 runs under a new pid ($old -> $new)" test -n "$new" -a "$new" != "$old"
t_check "supervisor logged the restart" grep -q "n1 pid=$old exited (signal 9)" \
    "$VAR/log/supervisor.log"
bk_wait_for 10 bk_http_ok "$BICKY_URL/ready" >/dev/null
cluster_answers "after the restart"
t_check "after the restart, the database URL is still in no command line" url_only_in_env

# ---------------------------------------------------------------- hostile bytes

declare -A before=()
for n in registry n1 n2 gateway; do
    before[$n]=$(bk_read_pid "$VAR/run/$n.pid")
done
# Bytes that are not a message: broken greetings, bad msgpack, bad framing,
# sizes that ask for absurd allocations. Each case is one connection.
hostile_frames() {
    local port=$1
    t_tcp_random "$port" 300 1                # no greeting: ZMTP 1.0 garbage
    t_tcp_random "$port" 70000 2              # more than a read buffer
    t_tcp_send "$port" '\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x00' # ZMTP 1.0, 2^63 B
    t_zmtp_send "$port" '@raw:\x02\x7f\xff\xff\xff\xff\xff\xff\xff' # frame of 2^63 B
    t_zmtp_send "$port" '\xdd\x7f\xff\xff\xff'  # array32 claiming 2^31 items
    t_zmtp_send "$port" '\xdf\x7f\xff\xff\xff'  # map32 claiming 2^31 pairs
    t_zmtp_send "$port" '\x81\xa7payload\xdd\x00\xff\xff\xff' # nested: 16M items
    t_zmtp_send "$port" '\xdb\x7f\xff\xff\xff'  # str32 claiming 2 GB
    t_zmtp_send "$port" '\x81'                # map header, nothing else
    t_zmtp_send "$port" '\x87\xa1v\x01\xa4type\x01\xa6req_i' # cut mid-key
    t_zmtp_send "$port" '\x83\xa1v\xa3abc\xa4type\x01\xa6req_id\x01' # v is a string
    t_zmtp_send "$port" '\x83\xa1v\x01\xa4type\xcc\xfa\xa6req_id\x01' # type 250
    t_zmtp_send "$port" '\x82\xa1v\x01\xa4type\x0a' # API_REQ without the rest
    t_zmtp_send "$port" '\x93\x01\x02\x03'   # an array, not a map
    t_zmtp_send "$port" ''                   # empty frame
    t_zmtp_send "$port" '@random:200:3'      # pseudo-random frame
    t_zmtp_send "$port" '\x81\xa1v\x01' '@random:50:4' '\xc0' # three frames
}

# Well-formed envelopes a node must refuse: no team, unknown op, bad JSON,
# wrong shapes, strangers' ids, a message type meant for the registry.
hostile_node() {
    local port=$1 c t
    c=$(t_mp_bin16)
    t=$(t_mp_bin16)
    t_zmtp_send "$port" "$(t_mp_api_req nope '{{{')"
    t_zmtp_send "$port" "$(t_mp_api_req conv.list '{"limit":5}')"
    t_zmtp_send "$port" "$(t_mp_api_req conv.get '{}' "$c")"
    t_zmtp_send "$port" "$(t_mp_api_req conv.get '{}' "$c" "$t")"
    t_zmtp_send "$port" "$(t_mp_api_req msg.post '{"content":1}' "$c" "$t")"
    t_zmtp_send "$port" "$(t_mp_api_req msg.post '[]' "$c" "$t")"
    t_zmtp_send "$port" "$(t_mp_api_req conv.create 'null' "$c" "$t")"
    t_zmtp_send "$port" "$(t_mp_api_req events.list '{"after":-1,"limit":1e300}' '\xc0' "$t")"
    t_zmtp_send "$port" "$(t_mp_api_req auth '{"token_sha256":"x"}')"
    t_zmtp_send "$port" "$(t_mp_api_req auth '[]')"
    t_zmtp_send "$port" "$(t_mp_envelope 4 '\x80')" # RING_GET: not a node's job
}

# Well-formed envelopes the registry must refuse or answer harmlessly.
hostile_registry() {
    local port=$1
    t_zmtp_send "$port" "$(t_mp_api_req conv.list '{}')"
    t_zmtp_send "$port" "$(t_mp_envelope 6 "\\x82$(t_mp_str action)$(t_mp_str explode)$(t_mp_str node_id)$(t_mp_str n1)")"
    t_zmtp_send "$port" "$(t_mp_envelope 2 "\\x82$(t_mp_str node_id)$(t_mp_str ghost)$(t_mp_str actors)\\x05")"
}

for port in $REG_PORT $N1_PORT $N2_PORT; do
    hostile_frames "$port"
done
hostile_registry "$REG_PORT"
hostile_node "$N1_PORT"
hostile_node "$N2_PORT"
t_tcp_random "$HTTP" 300
if exec {fd}<>"/dev/tcp/127.0.0.1/$HTTP"; then
    printf 'POST /api/conversations HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{' >&"$fd"
    sleep 0.2
    exec {fd}>&-
fi
sleep 1
for n in registry n1 n2 gateway; do
    t_check "$n survived hostile bytes (pid ${before[$n]})" bk_pid_is "${before[$n]}" bicky-
done
t_check "registry logged the dropped frames" grep -q 'dropped' "$VAR/log/registry.log"
t_check "n2 logged the dropped frames" grep -q 'dropped' "$VAR/log/n2.log"
cluster_answers "after hostile bytes"

# ---------------------------------------------------------------- down

declare -a pids=()
for f in "$VAR"/run/*.pid; do
    pids+=("$(bk_read_pid "$f")")
done
if "$SRC/deploy/local/down" >"$VAR/down.log" 2>&1; then
    t_pass "deploy/local/down"
else
    cat "$VAR/down.log"
    t_fail "deploy/local/down"
fi
left=0
for p in "${pids[@]}"; do
    bk_alive "$p" && left=1
done
t_check "no recorded pid is alive after down" test "$left" = 0
t_check "no process carries BICKY_OWNER=$VAR" test -z "$(bk_owned_pids "$VAR")"
t_check "no postgres serves $VAR/pg/data" test -z "$(bk_pg_pids "$VAR/pg")"
t_check "down reported no leftovers" grep -q 'no process of .* is left' "$VAR/down.log"
bad=$(grep -E 'supervisor: stopped ' "$VAR/log/supervisor.log" | grep -v '(status 0)')
t_check "every process exited 0 on SIGTERM" test -z "$bad"
[[ -z $bad ]] || echo "$bad"
t_check "no sanitizer report in the logs" t_no_sanitizer_reports "$VAR"/log/*.log

t_finish smoke
