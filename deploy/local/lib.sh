# shellcheck shell=bash
# lib.sh — bash functions shared by deploy/local/{up,down}, tests/run and the
# cluster tests. Source it; it defines functions and a few constants only.
# Every function is prefixed bk_. Nothing here calls `exit` except bk_die.

BK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Packages a build and a local cluster need (DEPS.md §1 plus script tools).
BK_PACKAGES=(libzmq3-dev libczmq-dev libmicrohttpd-dev libpq-dev postgresql libmsgpack-dev
    libcurl4-openssl-dev libcriterion-dev libjansson-dev libgit2-dev libssl-dev uuid-dev
    cmake pkg-config wrk haproxy libinih-dev python3 procps psmisc curl ca-certificates jq
    build-essential libwslay-dev bubblewrap libjsmn-dev)

# ---------------------------------------------------------------- messages

bk_say() { printf '%s %s\n' "${BK_TAG:-bicky}:" "$*"; }
bk_warn() { printf '%s warning: %s\n' "${BK_TAG:-bicky}:" "$*" >&2; }
bk_die() {
    printf '%s error: %s\n' "${BK_TAG:-bicky}:" "$*" >&2
    exit 1
}

# Milliseconds since the epoch, without forking.
bk_now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# ---------------------------------------------------------------- packages

# Installs the packages of BK_PACKAGES (plus any given as arguments) that
# dpkg does not list as installed. Does nothing when all are present, when
# BICKY_SKIP_INSTALL=1, or on a system without dpkg.
bk_install_packages() {
    if [[ ${BICKY_SKIP_INSTALL:-0} == 1 ]]; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null; then
        bk_warn "no dpkg-query: not a Debian system, install the packages of docs/deploy.md yourself"
        return 0
    fi
    local missing=() p st
    for p in "${BK_PACKAGES[@]}" "$@"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        if [[ $st != installed ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || bk_die "missing packages (${missing[*]}) and not root"
        sudo=(sudo)
    fi
    bk_say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q >/dev/null
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- build

# bk_build BUILD_DIR [cmake -D options...] [-- TARGET...]: configures and
# builds TARGETs (default: everything, tests included). A configure of an
# unchanged tree changes no compile flags, so a re-run rebuilds nothing.
# The daemon targets, all that deploy/local/up runs:
# shellcheck disable=SC2034 # used by deploy/local/up
BK_DAEMON_TARGETS=(bicky-registry bicky-node bicky-gateway bickyctl bicky-mcp-permission)
bk_build() {
    local dir=$1 opts=() targets=()
    shift
    while (($#)) && [[ $1 != -- ]]; do
        opts+=("$1")
        shift
    done
    if (($#)); then
        shift
        targets=(--target "$@")
    fi
    bk_say "building $dir${targets[*]:+ (${targets[*]:1})}"
    cmake -S "$BK_ROOT" -B "$dir" "${opts[@]}" >"$dir.configure.log" 2>&1 || {
        cat "$dir.configure.log" >&2
        bk_die "cmake configure failed for $dir"
    }
    rm -f "$dir.configure.log"
    cmake --build "$dir" -j "${BICKY_JOBS:-2}" "${targets[@]}"
}

# ---------------------------------------------------------------- processes

# True when pid exists and is not a zombie.
bk_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

bk_dead() { ! bk_alive "$1"; }

# True when pid is alive and its command line contains every given word.
bk_pid_is() {
    local pid=$1 cmd w
    shift
    bk_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    for w in "$@"; do
        [[ $cmd == *"$w"* ]] || return 1
    done
}

# Prints the pid stored in a pid file (nothing when absent or garbage).
bk_read_pid() {
    local p=""
    [[ -r $1 ]] && read -r p <"$1" 2>/dev/null
    [[ $p =~ ^[0-9]+$ ]] && echo "$p"
    return 0
}

# bk_stop_pids TIMEOUT_S PID...: SIGTERM to all, wait up to TIMEOUT_S for them
# to exit, then SIGKILL the rest. Reaps our own children and records how each
# ended in BK_STATUS[pid]: "status N", "signal N", "killed" (needed SIGKILL) or
# "gone" (not our child, so its status is unknown).
declare -gA BK_STATUS=()
# shellcheck disable=SC2034 # BK_STATUS is read by the callers (deploy/local/up)
bk_stop_pids() {
    local timeout=$1 p deadline rc
    shift
    local pids=()
    for p in "$@"; do
        bk_alive "$p" && pids+=("$p")
    done
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$(($(bk_now_ms) + timeout * 1000))
    while (($(bk_now_ms) < deadline)); do
        local left=0
        for p in "${pids[@]}"; do
            bk_alive "$p" && left=1
        done
        ((left)) || break
        sleep 0.05
    done
    local killed=()
    for p in "${pids[@]}"; do
        if bk_alive "$p"; then
            bk_warn "pid $p ignored SIGTERM for ${timeout}s: SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
            killed+=("$p")
        fi
    done
    for p in "${pids[@]}"; do
        rc=0
        wait "$p" 2>/dev/null || rc=$?
        if [[ " ${killed[*]} " == *" $p "* ]]; then
            BK_STATUS[$p]=killed
        elif ((rc == 127)); then
            BK_STATUS[$p]=gone
        elif ((rc > 128)); then
            BK_STATUS[$p]="signal $((rc - 128))"
        else
            BK_STATUS[$p]="status $rc"
        fi
    done
    return 0
}

# Pids of processes whose environment holds BICKY_OWNER=$1 (everything up
# starts gets it), excluding the caller. Postgres rewrites its environment
# area for its process title, so it is looked for separately (bk_pg_pids).
bk_owned_pids() {
    local want="BICKY_OWNER=$1" d pid env=()
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        mapfile -d '' -t env 2>/dev/null <"$d/environ" || continue
        local e
        for e in "${env[@]}"; do
            if [[ $e == "$want" ]]; then
                echo "$pid"
                break
            fi
        done
    done
}

# ---------------------------------------------------------------- waiting

# bk_wait_for TIMEOUT_S COMMAND...: runs COMMAND every 100 ms until it
# succeeds (returns 0) or TIMEOUT_S passes (returns 1).
bk_wait_for() {
    local timeout=$1 deadline
    shift
    deadline=$(($(bk_now_ms) + timeout * 1000))
    while true; do
        "$@" >/dev/null 2>&1 && return 0
        (($(bk_now_ms) >= deadline)) && return 1
        sleep 0.1
    done
}

# True when an HTTP GET of $1 answers 200.
bk_http_ok() {
    [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null) == 200 ]]
}

# ---------------------------------------------------------------- ports

# True when every given TCP port can be bound on 127.0.0.1 right now.
bk_ports_free() {
    python3 - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}

# bk_free_port_block COUNT [LO HI]: prints the first port of COUNT consecutive
# free ports, chosen at random in [LO, HI] (default BICKY_TEST_PORT_RANGE or
# 20000-32000). Random so that parallel runs rarely race for the same ports.
bk_free_port_block() {
    local count=$1 range=${BICKY_TEST_PORT_RANGE:-20000-32000}
    local lo=${2:-${range%-*}} hi=${3:-${range#*-}} base ports=()
    for _ in $(seq 1 200); do
        base=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo - count + 2)))
        mapfile -t ports < <(seq "$base" $((base + count - 1)))
        if bk_ports_free "${ports[@]}"; then
            echo "$base"
            return 0
        fi
    done
    return 1
}

bk_free_port() { bk_free_port_block 1 "$@"; }

# ---------------------------------------------------------------- postgres

# Prints the bin directory of the newest installed PostgreSQL server
# (BICKY_PG_BIN overrides). /usr/lib/postgresql/N/bin is not on PATH.
bk_pg_bin() {
    if [[ -n ${BICKY_PG_BIN:-} ]]; then
        echo "$BICKY_PG_BIN"
        return 0
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -x $d/initdb ]] || bk_die "no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)"
    echo "$d"
}

# Runs a command as the postgres user when we are root (initdb refuses root).
bk_as_pg() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Gives a directory to the postgres user when we are root.
bk_pg_own() {
    if ((EUID == 0)); then
        chown postgres:postgres "$@"
    fi
}

# Unix socket directory for a cluster whose files live under $1. The socket
# path (dir + "/.s.PGSQL.NNNNN") must stay under 107 bytes and the directory
# is passed through pg_ctl -o, so a long or unusual path gets a stable
# directory under /tmp named after a hash of $1 instead.
bk_pg_sockdir() {
    local base=$1 dir="$1/run/pg"
    if ((${#dir} > 80)) || [[ ! $dir =~ ^[A-Za-z0-9/._-]+$ ]]; then
        dir=/tmp/bicky-pg-$(printf '%s' "$base" | sha256sum | cut -c1-12)
    fi
    echo "$dir"
}

# bk_pg_init PGDIR: creates PGDIR/data with initdb unless it exists.
# Returns 0 when it created the cluster, 2 when it existed already.
bk_pg_init() {
    local pgdir=$1 bin
    bin=$(bk_pg_bin)
    if [[ -f $pgdir/data/PG_VERSION ]]; then
        return 2
    fi
    mkdir -p "$pgdir"
    bk_pg_own "$pgdir"
    chmod 700 "$pgdir"
    if ((EUID == 0)) && ! runuser -u postgres -- test -w "$pgdir"; then
        bk_die "the postgres user cannot write $pgdir (a parent directory is not searchable by others); choose another BICKY_VAR"
    fi
    bk_as_pg "$bin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        >"$pgdir/initdb.log" 2>&1 || {
        cat "$pgdir/initdb.log" >&2
        bk_die "initdb failed for $pgdir/data"
    }
    return 0
}

# bk_pg_size PGDIR: sizes a new cluster for this machine (appended to its
# postgresql.conf, marked): shared_buffers a quarter of the RAM (128 MB to
# 8 GB; the RAM is BICKY_PG_MEMORY_MB when set, else MemTotal), effective_cache_size half of it, wal_buffers 64 MB, checkpoints
# every 15 min or 4 GB of WAL, 200 connections. Durable: fsync and
# synchronous_commit stay on. Prints the settings, one a line.
bk_pg_size() {
    local conf=$1/data/postgresql.conf kb mb sb s
    kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)
    mb=${BICKY_PG_MEMORY_MB:-$((${kb:-4194304} / 1024))}
    [[ $mb =~ ^[0-9]+$ ]] && ((mb > 0)) || bk_die "BICKY_PG_MEMORY_MB must be a positive number of MB"
    sb=$((mb / 4))
    ((sb < 128)) && sb=128
    ((sb > 8192)) && sb=8192
    local set=("shared_buffers=${sb}MB" "effective_cache_size=$((mb / 2))MB" "wal_buffers=64MB"
        "max_wal_size=4GB" "min_wal_size=1GB" "checkpoint_timeout=15min"
        "checkpoint_completion_target=0.9" "max_connections=200" "fsync=on"
        "synchronous_commit=on" "full_page_writes=on")
    {
        echo "# bicky: sized for this machine by deploy/local/up (docs/deploy.md)"
        for s in "${set[@]}"; do
            echo "${s%%=*} = '${s#*=}'"
        done
    } >>"$conf"
    printf '%s\n' "${set[@]}"
}

# True when the cluster in PGDIR/data runs.
bk_pg_running() {
    local bin
    bin=$(bk_pg_bin)
    bk_as_pg "$bin/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

# bk_pg_start PGDIR SOCKDIR PORT [postgres -c options...]: starts the cluster
# (listening on 127.0.0.1:PORT and SOCKDIR), server log in PGDIR/server.log.
bk_pg_start() {
    local pgdir=$1 sockdir=$2 port=$3 bin opts
    shift 3
    bin=$(bk_pg_bin)
    mkdir -p "$sockdir"
    bk_pg_own "$sockdir"
    opts="-p $port -k $sockdir -c listen_addresses=127.0.0.1"
    local o
    for o in "$@"; do
        opts+=" -c $o"
    done
    bk_as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 -o "$opts" start \
        >"$pgdir/pg_ctl.log" 2>&1 || {
        tail -n 20 "$pgdir/server.log" >&2 2>/dev/null || true
        cat "$pgdir/pg_ctl.log" >&2
        bk_die "PostgreSQL did not start (port $port, data $pgdir/data)"
    }
}

# bk_pg_stop PGDIR: fast shutdown when it runs.
bk_pg_stop() {
    local bin
    bin=$(bk_pg_bin)
    if bk_pg_running "$1"; then
        bk_as_pg "$bin/pg_ctl" -D "$1/data" -m fast -w -t 30 stop >/dev/null 2>&1 || {
            bk_warn "pg_ctl stop failed for $1/data"
            return 1
        }
    fi
    return 0
}

# Port and socket directory of a running cluster, from postmaster.pid
# (lines 4 and 5): prints "PORT SOCKDIR".
bk_pg_running_addr() {
    local f=$1/data/postmaster.pid
    [[ -r $f ]] || return 1
    echo "$(sed -n 4p "$f") $(sed -n 5p "$f")"
}

# Pids of postgres processes serving PGDIR/data.
bk_pg_pids() {
    pgrep -f -- "-D $1/data" 2>/dev/null || true
}

# bk_pg_conninfo SOCKDIR PORT DBNAME: libpq conninfo (key=value form).
bk_pg_conninfo() {
    echo "host=$1 port=$2 user=postgres dbname=$3"
}

# bk_pg_createdb SOCKDIR PORT DBNAME: creates the database unless it exists.
bk_pg_createdb() {
    local bin conn exists
    bin=$(bk_pg_bin)
    conn=$(bk_pg_conninfo "$1" "$2" postgres)
    exists=$("$bin/psql" "$conn" -XtAq -v name="$3" <<<"select 1 from pg_database where datname = :'name'")
    if [[ $exists != 1 ]]; then
        "$bin/psql" "$conn" -Xq -v ON_ERROR_STOP=1 -v name="$3" <<<'create database :"name"' >/dev/null
    fi
}
