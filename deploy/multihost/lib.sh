# shellcheck shell=bash
# lib.sh — a multi-host Bicky cluster on one machine, hosts being Linux network
# namespaces on a private bridge: the functions of deploy/multihost/{up,down}
# and of the tests that drive it (tests/cluster/test_multihost_*.sh).
# Prefix mh_. Source it after deploy/local/lib.sh; set MH_VAR first.
#
# Hosts (namespace <prefix>-<host>, address $MH_SUBNET.<n>, interface eth0):
#   a  .1    Postgres, registry r1 (active) and r2 (standby)
#   b  .2    node nb, gateway gwb
#   c  .3    node nc, gateway gwc
#   d  .4    haproxy in front of gwb and gwc (port 80)
#   cl .100  clients (curl, load, bickyctl)
#   x  .66   an attacker: no process of the cluster, no key of its own
# The bridge lives in a namespace of its own (<prefix>-sw): nothing is added
# to the machine's own network namespace, and two clusters never share a
# link. A host's cable is its veth end in the switch (named after the host).

MH_SUBNET=${MH_SUBNET:-10.77.0}
MH_HOSTS=(a b c d cl x)
declare -gA MH_ADDR=([a]=1 [b]=2 [c]=3 [d]=4 [cl]=100 [x]=66)
MH_PG_PORT=5432
MH_HTTP_PORT=8080

# mh_init [--no-bin]: derives names and paths from MH_VAR (made absolute);
# checks the binaries' directory unless --no-bin.
mh_init() {
    : "${MH_VAR:?MH_VAR must name the state directory}"
    mkdir -p "$MH_VAR"
    MH_VAR=$(cd "$MH_VAR" && pwd)
    # Short and stable per state directory: two clusters never collide.
    MH_PREFIX=${MH_PREFIX:-bkmh$(printf '%s' "$MH_VAR" | sha256sum | cut -c1-6)}
    [[ $MH_PREFIX =~ ^[a-z0-9]{1,12}$ ]] || bk_die "MH_PREFIX must be 1-12 of a-z0-9"
    [[ $MH_SUBNET =~ ^(10|172\.(1[6-9]|2[0-9]|3[01])|192\.168)(\.[0-9]{1,3}){0,2}$ ]] &&
        [[ $MH_SUBNET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
        bk_die "MH_SUBNET must be the first three octets of a private /24 (e.g. 10.77.0)"
    MH_BIN=${MH_BIN:-${BICKY_BIN:-$BK_ROOT/build/bin}}
    if [[ ${1:-} != --no-bin ]]; then
        MH_BIN=$(cd "$MH_BIN" 2>/dev/null && pwd) || bk_die "no binaries in ${MH_BIN} (build first)"
    fi
    MH_REGISTRY="tcp://$(mh_ip a):7100,tcp://$(mh_ip a):7102"
    MH_URL="http://$(mh_ip d):80"
    MH_SOCKDIR=$(bk_pg_sockdir "$MH_VAR")
    MH_DB_LOCAL=$(bk_pg_conninfo "$MH_SOCKDIR" "$MH_PG_PORT" bicky)
    MH_DB_NET="host=$(mh_ip a) port=$MH_PG_PORT user=postgres dbname=bicky connect_timeout=3 keepalives_idle=5 keepalives_interval=2 keepalives_count=2"
    MH_KEYS=$MH_VAR/keys
    mkdir -p "$MH_VAR/log" "$MH_VAR/run"
}

# The CURVE key of each process (role name), and the admin key of bickyctl.
declare -gA MH_KEY_OF=([r1]="registry registry" [r2]="registry registry" [nb]="node nb"
    [nc]="node nc" [gwb]="gateway gwb" [gwc]="gateway gwc")

# mh_keys: the cluster's keys in $MH_KEYS (bickyctl keys), made once: one registry
# key both registries share, one per node and gateway, an admin key for bickyctl.
# On real hosts each would get public/ and only its own secret/ files.
mh_keys() {
    local ctl=$MH_BIN/bickyctl k
    "$ctl" keys init "$MH_KEYS" >/dev/null || bk_die "bickyctl keys init $MH_KEYS failed"
    for k in "registry registry" "node nb" "node nc" "gateway gwb" "gateway gwc" "admin admin"; do
        set -- $k
        [[ -e $MH_KEYS/secret/$1-$2.key ]] && continue
        "$ctl" --keys "$MH_KEYS" keys add "$1" "$2" >/dev/null || bk_die "bickyctl keys add $k failed"
    done
}

# mh_sec NAME: the --cert/--keys flags of process NAME, one word a line.
mh_sec() {
    local k=${MH_KEY_OF[$1]}
    printf '%s\n' --cert "$MH_KEYS/secret/${k% *}-${k#* }.key" --keys "$MH_KEYS"
}

mh_ns() { echo "$MH_PREFIX-$1"; }
mh_ip() { echo "$MH_SUBNET.${MH_ADDR[$1]}"; }

# mh_in HOST CMD...: runs CMD in HOST's namespace.
mh_in() {
    local h=$1
    shift
    ip netns exec "$(mh_ns "$h")" "$@"
}

mh_ns_exists() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "$1"; }

# mh_ns_probe: true when this machine lets us create a network namespace;
# otherwise prints why.
mh_ns_probe() {
    local ns=${MH_PREFIX:-bkmh}-probe$$ out
    if ((EUID != 0)); then
        echo "not root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
        return 1
    fi
    command -v ip >/dev/null || {
        echo "no ip command (apt-get install iproute2)"
        return 1
    }
    if ! out=$(ip netns add "$ns" 2>&1); then
        echo "ip netns add failed: $out"
        return 1
    fi
    if ! out=$(ip -n "$ns" link add p0 type veth peer name p1 2>&1); then
        ip netns del "$ns" 2>/dev/null
        echo "no veth pairs in a namespace: $out"
        return 1
    fi
    ip netns del "$ns"
}

# ---------------------------------------------------------------- network

mh_net_up() {
    local sw h ns
    sw=$(mh_ns sw)
    for h in sw "${MH_HOSTS[@]}"; do
        ! mh_ns_exists "$(mh_ns "$h")" || bk_die "namespace $(mh_ns "$h") exists: run deploy/multihost/down first"
    done
    ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    for h in "${MH_HOSTS[@]}"; do
        ns=$(mh_ns "$h")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add eth0 netns "$ns" type veth peer name "$h" netns "$sw"
        ip -n "$sw" link set dev "$h" master br0
        ip -n "$sw" link set dev "$h" up
        ip -n "$ns" addr add "$(mh_ip "$h")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

# mh_link HOST up|down: plugs or pulls HOST's cable (its port on the switch).
mh_link() { ip -n "$(mh_ns sw)" link set dev "$1" "$2"; }

# mh_net_down: kills whatever still runs in our namespaces and deletes them
# (their veth pairs go with them). Prints what it removed.
mh_net_down() {
    local h ns pids
    for h in "${MH_HOSTS[@]}" sw; do
        ns=$(mh_ns "$h")
        mh_ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [[ -n $pids ]]; then
            bk_warn "still running in $ns: $(echo $pids): killing"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null
        fi
        ip netns del "$ns" && echo "removed namespace $ns"
    done
}

# ---------------------------------------------------------------- processes

# The processes, by name: host, then how to start it (mh_cmd).
declare -gA MH_HOST_OF=([r1]=a [r2]=a [nb]=b [nc]=c [gwb]=b [gwc]=c [haproxy]=d)
MH_PROCS=(r1 r2 nb nc gwb gwc haproxy)

# mh_cmd NAME: prints the command line of NAME, one word a line.
mh_cmd() {
    local name=$1 host=${MH_HOST_OF[$1]} ip
    ip=$(mh_ip "$host")
    case $name in
        r1 | r2)
            local p=7100
            [[ $name == r2 ]] && p=7102
            printf '%s\n' "$MH_BIN/bicky-registry" --bind "tcp://$ip:$p" --pub-bind "tcp://$ip:$((p + 1))"
            mh_sec "$name"
            ;;
        nb | nc)
            printf '%s\n' "$MH_BIN/bicky-node" --id "$name" --registry "$MH_REGISTRY" \
                --bind "tcp://$ip:7110" --pub-bind "tcp://$ip:7111" --work-dir "$MH_VAR/work/$name"
            mh_sec "$name"
            ;;
        gwb | gwc)
            printf '%s\n' "$MH_BIN/bicky-gateway" --listen "$ip" --port "$MH_HTTP_PORT" \
                --registry "$MH_REGISTRY" --drain-ms "${MH_DRAIN_MS:-3000}"
            mh_sec "$name"
            ;;
        haproxy) printf '%s\n' haproxy -db -f "$MH_VAR/haproxy.cfg" ;;
        *) bk_die "unknown process '$name'" ;;
    esac
}

# mh_start NAME: starts NAME in its host's namespace, in its own session, with
# BICKY_OWNER=$MH_VAR in its environment; log in log/NAME.log, pid in
# run/NAME.pid, and its exit status, once it ended, in run/NAME.status (a
# small bash parent waits for it). Registries and nodes get the database URL
# from the environment, never on a command line; gateways and haproxy get none.
mh_start() {
    local name=$1 cmd=() pid
    mapfile -t cmd < <(mh_cmd "$name")
    pid=$(mh_pid "$name")
    [[ -z $pid ]] || bk_die "$name runs already (pid $pid)"
    [[ $name == n* ]] && mkdir -p "$MH_VAR/work/$name"
    rm -f "$MH_VAR/run/$name.pid" "$MH_VAR/run/$name.status"
    (
        export BICKY_OWNER=$MH_VAR BICKY_LOG_LEVEL=${BICKY_LOG_LEVEL:-notice}
        if [[ $name == r* || $name == n* ]]; then
            export BICKY_DATABASE_URL=$MH_DB_NET
        else
            unset BICKY_DATABASE_URL
        fi
        # shellcheck disable=SC2016 # expanded by the inner bash
        exec ip netns exec "$(mh_ns "${MH_HOST_OF[$name]}")" setsid bash -c \
            '"$@" & echo $! >"$0.pid"; wait $!; echo $? >"$0.status"' \
            "$MH_VAR/run/$name" "${cmd[@]}" >>"$MH_VAR/log/$name.log" 2>&1 </dev/null
    ) &
    bk_wait_for 5 test -s "$MH_VAR/run/$name.pid" || bk_die "$name did not start"
}

# mh_pid NAME: its pid (nothing when not running).
mh_pid() {
    local pid
    pid=$(bk_read_pid "$MH_VAR/run/$1.pid")
    [[ -n $pid ]] && bk_alive "$pid" && echo "$pid"
    return 0
}

# mh_stop NAME [TIMEOUT_S]: SIGTERM (haproxy: SIGUSR1), SIGKILL after TIMEOUT_S (default 10);
# prints how it ended: "status N" (its exit status; 137 after SIGKILL,
# 128+N after signal N) or "gone" (it was not running).
mh_stop() {
    local name=$1 pid
    pid=$(mh_pid "$name")
    if [[ -z $pid ]]; then
        rm -f "$MH_VAR/run/$name.pid"
        echo gone
        return 0
    fi
    if [[ $name == haproxy ]]; then
        # SIGUSR1 is haproxy's graceful stop (exit 0); SIGTERM is its hard stop.
        kill -USR1 "$pid" 2>/dev/null
        bk_wait_for "${2:-10}" bk_dead "$pid"
    fi
    bk_stop_pids "${2:-10}" "$pid"
    bk_wait_for 5 test -s "$MH_VAR/run/$name.status"
    rm -f "$MH_VAR/run/$name.pid"
    echo "status $(cat "$MH_VAR/run/$name.status" 2>/dev/null || echo unknown)"
}

# ---------------------------------------------------------------- checks

# mh_ctl ARGS...: bickyctl in the client namespace, following both registries.
mh_ctl() {
    mh_in cl env BICKY_KEYS="$MH_KEYS" BICKY_ADMIN_CERT="$MH_KEYS/secret/admin-admin.key" \
        "$MH_BIN/bickyctl" --registry "$MH_REGISTRY" "$@"
}

# mh_node_state ID: alive / draining / dead, as the registry reports it.
mh_node_state() {
    mh_ctl --json nodes 2>/dev/null | jq -r --arg id "$1" \
        '(if type == "array" then . else (.nodes // .data // []) end) | .[]
         | select(.id == $id) | .state' 2>/dev/null
}

mh_node_is() { [[ $(mh_node_state "$1") == "$2" ]]; }

# mh_ready: GET /ready through haproxy, from the client namespace, is 200.
mh_ready() { [[ $(mh_in cl curl -s -o /dev/null -m 2 -w '%{http_code}' "$MH_URL/ready") == 200 ]]; }

# mh_haproxy CMD: one command on haproxy's runtime API (its stats socket),
# with socat as haproxy's documentation does; prints the answer.
mh_haproxy() { printf '%s\n' "$1" | socat -t 5 stdio "unix-connect:$MH_VAR/run/haproxy.sock"; }

# mh_server_state GW: haproxy's view of a gateway: UP, DOWN, DRAIN, MAINT, NOLB...
mh_server_state() {
    mh_haproxy "show stat" | awk -F, -v s="$1" '$1 == "gateways" && $2 == s { print $18 }'
}

# mh_registry_role NAME: active / standby, from its log.
mh_registry_role() {
    grep -oE 'role=(active|standby)|took over membership|standing by' "$MH_VAR/log/$1.log" |
        tail -n 1 | sed 's/took over membership/role=active/; s/standing by/role=standby/; s/role=//'
}

# When run rather than sourced (ip netns exec bash lib.sh FUNCTION ARGS...):
# calls one function of deploy/local/lib.sh in the current namespace.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    # shellcheck source=deploy/local/lib.sh
    source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"
    "$@"
fi
