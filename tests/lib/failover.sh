# shellcheck shell=bash
# failover.sh — helpers of the failover cluster tests (tests/cluster/test_failover_*.sh),
# on top of cluster.sh: the steady load of tests/tools/loadgen.py (start, stop,
# analyze), the database checks (every acknowledged message stored, no message
# stored twice), node processes started outside the supervisor (a 4th node, nodes
# following several registries), and node facts from bickyctl. Prefix fo_.
# Needs: SRC, TC_VAR, CTL, BICKY_* from cluster.sh's tc_start.

FO_LOAD_PID=""
FO_OUT=""      # loadgen's directory
FO_EXTRA=()    # "name pid" of processes started here (stopped by fo_stop_extra)
FO_REGISTRY="" # --registry of processes started here (default: the cluster's)

# fo_load_start [loadgen run args...]: starts the load in the background and waits
# until it runs (conversations created).
fo_load_start() {
    FO_OUT=$TC_VAR/load
    rm -rf "$FO_OUT" "$TC_VAR/load.stop"
    python3 "$SRC/tests/tools/loadgen.py" run --url "$BICKY_URL" --token "$BICKY_TOKEN" \
        --out "$FO_OUT" --stop-file "$TC_VAR/load.stop" "$@" >"$TC_VAR/loadgen.log" 2>&1 &
    FO_LOAD_PID=$!
    if ! bk_wait_for 60 test -e "$FO_OUT/ready"; then
        cat "$TC_VAR/loadgen.log"
        t_fail "the load did not start"
        return 1
    fi
    t_pass "load running ($(wc -l <"$FO_OUT/convs.txt") conversations)"
}

fo_load_stop() {
    touch "$TC_VAR/load.stop"
    wait "$FO_LOAD_PID" 2>/dev/null
    FO_LOAD_PID=""
}

# fo_analyze [--event T --since T]: loadgen's analysis as JSON (also writes acked.txt).
fo_analyze() { python3 "$SRC/tests/tools/loadgen.py" analyze --out "$FO_OUT" "$@"; }

# fo_now: wall clock seconds with microseconds (loadgen's clock).
fo_now() { echo "${EPOCHREALTIME}"; }

# fo_acks_since T: 202 answers that came after T (wall seconds; a progress probe).
fo_acks_since() {
    awk -v t="$1" -F'"t1":' '/"s":202/ { split($2, a, ","); if (a[1] + 0 >= t) n++ } END { print n + 0 }' \
        "$FO_OUT/attempts.jsonl"
}

# fo_acked_stored: every message id loadgen saw acknowledged (acked.txt) is in Postgres.
fo_acked_stored() {
    local missing
    missing=$(psql "$BICKY_DATABASE_URL" -X -q -At -v ON_ERROR_STOP=1 <<EOF
create temp table acked (id uuid);
\\copy acked from '$FO_OUT/acked.txt'
select count(*) from acked a where not exists (select 1 from messages m where m.id = a.id);
EOF
)
    [[ $missing == 0 ]] || {
        echo "acknowledged messages missing: $missing"
        return 1
    }
}

# fo_no_duplicate: no user message content stored twice (each carries its own key).
fo_no_duplicate() {
    local dup
    dup=$(tc_sql "select count(*) from (select conversation_id, content from messages
        where role = 'user' group by 1, 2 having count(*) > 1) d")
    [[ $dup == 0 ]] || {
        echo "user messages stored twice: $dup"
        return 1
    }
}

# fo_owner_counts: "node count" lines of conversation_owners (claims of resident actors).
fo_owner_counts() { tc_sql "select node_id, count(*) from conversation_owners group by 1 order by 1"; }

# fo_node_actors NODE: actor count of NODE as the registry reports it.
fo_node_actors() {
    "$CTL" --registry "${FO_REGISTRY:-$BICKY_REGISTRY}" --json nodes 2>/dev/null | jq -r --arg id "$1" \
        '(if type == "array" then . else (.nodes // .data // []) end) | .[]
         | select(.id == $id) | .actors' 2>/dev/null
}

fo_node_state() {
    "$CTL" --registry "${FO_REGISTRY:-$BICKY_REGISTRY}" --json nodes 2>/dev/null | jq -r --arg id "$1" \
        '(if type == "array" then . else (.nodes // .data // []) end) | .[]
         | select(.id == $id) | .state' 2>/dev/null
}

fo_node_is() { [[ $(fo_node_state "$1") == "$2" ]]; }

# fo_sec ROLE NAME: FO_SEC = the security flags of a process started here: its
# key from the cluster's keys (made when missing, e.g. a node up did not start),
# or --insecure for a cluster started with BICKY_INSECURE=1.
fo_sec() {
    if [[ ${BICKY_INSECURE:-0} == 1 ]]; then
        FO_SEC=(--insecure)
        return 0
    fi
    local key=$BICKY_KEYS/secret/$1-$2.key
    [[ -e $key ]] || "$CTL" --keys "$BICKY_KEYS" keys add "$1" "$2" >/dev/null
    FO_SEC=(--cert "$key" --keys "$BICKY_KEYS")
}

# fo_start_node NAME INDEX: a node outside the supervisor, on the ports up would give
# node INDEX, following FO_REGISTRY (or the cluster's registry); pid in run/NAME.pid.
fo_start_node() {
    local name=$1 i=$2 b=$BICKY_ZMQ_BASE
    fo_sec node "$name"
    BICKY_OWNER=$TC_VAR setsid "$BICKY_BIN/bicky-node" --id "$name" "${FO_SEC[@]}" \
        --registry "${FO_REGISTRY:-$BICKY_REGISTRY}" \
        --bind "tcp://127.0.0.1:$((b + 10 + 2 * i))" --pub-bind "tcp://127.0.0.1:$((b + 11 + 2 * i))" \
        --database-url "$BICKY_DATABASE_URL" --log-level "${BICKY_LOG_LEVEL:-notice}" \
        >>"$TC_VAR/log/$name.log" 2>&1 </dev/null &
    echo $! >"$TC_VAR/run/$name.pid"
    FO_EXTRA+=("$name $!")
}

# fo_start_gateway: the gateway outside the supervisor (same port), following FO_REGISTRY.
fo_start_gateway() {
    fo_sec gateway gateway
    BICKY_OWNER=$TC_VAR setsid "$BICKY_BIN/bicky-gateway" "${FO_SEC[@]}" \
        --listen 127.0.0.1 --port "$BICKY_HTTP_PORT" \
        --registry "${FO_REGISTRY:-$BICKY_REGISTRY}" --log-level "${BICKY_LOG_LEVEL:-notice}" \
        >>"$TC_VAR/log/gateway.log" 2>&1 </dev/null &
    echo $! >"$TC_VAR/run/gateway.pid"
    FO_EXTRA+=("gateway $!")
}

# fo_start_registry NAME BIND PUB: a (standby) registry outside the supervisor.
fo_start_registry() {
    fo_sec registry registry
    BICKY_OWNER=$TC_VAR setsid "$BICKY_BIN/bicky-registry" "${FO_SEC[@]}" --bind "$2" --pub-bind "$3" \
        --database-url "$BICKY_DATABASE_URL" --log-level "${BICKY_LOG_LEVEL:-notice}" \
        >>"$TC_VAR/log/$1.log" 2>&1 </dev/null &
    FO_EXTRA+=("$1 $!")
}

# fo_stop_supervised NAME: SIGTERM to a process the supervisor started (BICKY_SUPERVISE=0
# keeps it stopped); waits for its exit.
fo_stop_supervised() {
    local pid
    pid=$(tc_pid "$1")
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null
    bk_wait_for 10 bk_dead "$pid"
}

# fo_stop_extra: SIGTERM to every process started here (gateway first, registries
# last); each must exit 0 within 5 s.
fo_stop_extra() {
    local entry name pid rc ok=1 order=() tier
    for tier in gateway node registry; do
        for entry in "${FO_EXTRA[@]}"; do
            name=${entry% *}
            case $tier:$name in
                gateway:gateway | registry:reg* | node:n*) order+=("$entry") ;;
            esac
        done
    done
    for entry in "${order[@]}"; do
        name=${entry% *}
        pid=${entry#* }
        if bk_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null
            bk_wait_for 6 bk_dead "$pid" || kill -KILL "$pid" 2>/dev/null
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            [[ $rc == 0 ]] || {
                echo "$name (pid $pid) exited with $rc on SIGTERM"
                ok=0
            }
        fi
        rm -f "$TC_VAR/run/$name.pid"
    done
    FO_EXTRA=()
    ((ok))
}

# fo_median A B C...: the median of integers.
fo_median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
fo_max() { printf '%s\n' "$@" | sort -n | tail -n 1; }
