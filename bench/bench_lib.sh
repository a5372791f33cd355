# shellcheck shell=bash
# bench_lib.sh — functions of bench/run: logging, the results table and JSON,
# cluster control (restart one process, drain), seeding rows with SQL, and the
# wrk / sse_clients wrappers. Sourced by bench/run after deploy/local/lib.sh.
# Every function is prefixed bn_.
# shellcheck disable=SC2153 # MODE, RES, BICKY_* come from bench/run

# ---------------------------------------------------------------- messages

bn_say() {
    local line
    printf -v line '%(%H:%M:%S)T bench: %s' -1 "$*"
    echo "$line" >&2
    [[ -n ${RES:-} ]] && echo "$line" >>"$RES/run.log"
    return 0
}

bn_die() {
    bn_say "error: $*"
    exit 1
}

# ---------------------------------------------------------------- results

# bn_row ID METRIC VALUE UNIT OP TARGET [TS] [NOTE]: one line of the table.
# OP: ge (value ≥ target passes), le (≤), info (no target). VALUE "n/a" = not measured.
bn_row() {
    local id=$1 metric=$2 value=$3 unit=$4 op=$5 target=$6 ts=${7:-} note=${8:-} status
    if [[ $value == n/a || -z $value ]]; then
        value=n/a
        status=n/a
    elif [[ $op == info ]]; then
        status=info
    elif awk -v v="$value" -v t="$target" -v op="$op" \
        'BEGIN { exit !((op == "ge" && v + 0 >= t + 0) || (op == "le" && v + 0 <= t + 0)) }'; then
        status=pass
    else
        status=short
    fi
    local shown=$target
    case $op in
        ge) shown="≥ $target" ;;
        le) shown="≤ $target" ;;
        info) shown="-" ;;
    esac
    jq -cn --arg id "$id" --arg metric "$metric" --arg value "$value" --arg unit "$unit" \
        --arg target "$shown" --arg status "$status" --arg ts "$ts" --arg note "$note" \
        '{id: $id, metric: $metric,
          value: (if $value == "n/a" then null else ($value | tonumber) end),
          unit: $unit, target: $target, status: $status, typescript: $ts, note: $note}' \
        >>"$RES/rows.jsonl"
    bn_say "$id $metric = $value $unit ($status)"
}

# bn_detail NAME JSON: keeps a raw measurement for results.json.
bn_detail() {
    printf '%s\n' "$2" >"$RES/raw/$1.json"
}

# Prints the table from rows.jsonl.
bn_table() {
    {
        printf '%-4s %-58s %12s %-8s %-10s %-6s %s\n' id metric value unit target result \
            "TypeScript server"
        printf '%s\n' "$(printf '%.0s-' {1..130})"
        jq -r '[.id, .metric, (if .value == null then "n/a" elif (.value | floor) == .value
                 then (.value | tostring) else ((.value * 100 | round) / 100 | tostring) end),
                .unit, .target, .status, .typescript] | @tsv' "$RES/rows.jsonl" |
            while IFS=$'\t' read -r id metric value unit target status ts; do
                printf '%-4s %-58s %12s %-8s %-10s %-6s %s\n' "$id" "$metric" "$value" "$unit" \
                    "$target" "$status" "$ts"
            done
    } | tee "$RES/table.txt"
}

# Writes results.json: mode, machine, configuration, rows, raw details.
bn_json() {
    local details='{}' f next
    for f in "$RES"/raw/*.json; do
        [[ -e $f ]] || continue
        if next=$(jq -c --arg k "$(basename "$f" .json)" --slurpfile v "$f" \
            '. + {($k): $v[0]}' <<<"$details" 2>/dev/null); then
            details=$next
        else
            bn_say "warning: $f is not JSON; left out of results.json"
        fi
    done
    jq -n --arg mode "$MODE" --arg started "$STARTED" --arg finished "$(date -u +%FT%TZ)" \
        --slurpfile machine "$RES/raw-machine.json" --slurpfile rows <(jq -c . "$RES/rows.jsonl") \
        --argjson details "$details" --arg cmd "$CMDLINE" \
        '{mode: $mode, command: $cmd, started: $started, finished: $finished,
          machine: $machine[0], metrics: $rows, details: $details}' >"$RES/results.json"
}

# Machine state: cores, memory, load, what else runs.
bn_machine() {
    local when=$1
    {
        echo "== $when $(date -u +%FT%TZ)"
        uname -a
        grep -m1 'model name' /proc/cpuinfo || true
        echo "cores: $(nproc)"
        echo "curve: $([[ ${BENCH_INSECURE:-${BICKY_INSECURE:-0}} == 1 ]] && echo off || echo on)"
        free -m
        uptime
        # The second iteration of top has real %CPU figures (the first is since boot).
        top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && shown++ < 22' || true
    } >>"$RES/machine.txt"
}

bn_machine_json() {
    jq -n --arg kernel "$(uname -r)" --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
        --argjson cores "$(nproc)" --argjson mem_mb "$(free -m | awk '/^Mem:/ {print $2}')" \
        --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
        --arg wrk "$(wrk -v 2>&1 | head -n 1)" --arg pg "$PG_SETTINGS" \
        '{kernel: $kernel, cpu: $cpu, cores: $cores, mem_mb: $mem_mb,
          loadavg_start: $load_start, loadavg_end: $load_end, wrk: $wrk, postgres: $pg}' \
        >"$RES/raw-machine.json"
}

# ---------------------------------------------------------------- cluster

bn_psql() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$BICKY_DATABASE_URL" "$@"
}

bn_pid() {
    bk_read_pid "$BICKY_VAR/run/$1.pid"
}

bn_rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

bn_status_json() {
    curl -s -m 5 -H "Authorization: Bearer $BICKY_TOKEN" "$BICKY_URL/api/status"
}

# Actors resident on node $1 (from its heartbeats, via the gateway).
bn_actors() {
    bn_status_json | jq -r --arg n "$1" '.nodes[] | select(.id == $n) | .actors' 2>/dev/null || echo 0
}

# True when the gateway's ring has exactly the alive nodes named (sorted, space-separated).
bn_ring_is() {
    local got
    got=$(bn_status_json | jq -r '[.nodes[] | select(.in_ring) | .id] | sort | join(" ")')
    [[ $got == "$1" ]]
}

# Restarts process $1 (gateway, n1, …): SIGTERM, wait, then up -d starts it again.
bn_restart() {
    local name=$1 pid
    pid=$(bn_pid "$name")
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        bk_wait_for 10 bk_dead "$pid" || bn_die "$name (pid $pid) did not stop"
        # The supervisor must have seen the exit first, or the SIGUSR1 of up -d
        # finds it still "running" and it stays down (BICKY_SUPERVISE=0).
        bk_wait_for 5 grep -q "$name pid=$pid exited" "$BICKY_VAR/log/supervisor.log" ||
            bn_say "warning: the supervisor did not log the exit of $name"
    fi
    "$BK_ROOT/deploy/local/up" -d >>"$RES/up.log" 2>&1 || bn_die "up -d failed (see $RES/up.log)"
    bk_wait_for 15 bk_http_ok "$BICKY_URL/ready" || bn_die "gateway not ready after restarting $name"
}

# Seeds N conversations for a team with SQL; prints nothing, writes the ids to FILE.
# bn_seed TEAM_ID N FILE: created_at spread 1 ms apart (newest = now), status idle.
bn_seed() {
    local team=$1 n=$2 file=$3
    bn_psql -c "INSERT INTO conversations (id, team_id, created_at, updated_at)
                SELECT gen_random_uuid(), '$team', now() - g * interval '1 millisecond', now()
                FROM generate_series(1, $n) AS g RETURNING id" >"$file"
    [[ $(wc -l <"$file") -eq $n ]] || bn_die "seeding $n conversations gave $(wc -l <"$file")"
}

bn_team_id() {
    bn_psql -c "SELECT id FROM teams WHERE name = '$1'"
}

# bn_token TEAM: creates a token for TEAM (and the team) and prints it.
bn_token() {
    "$BICKY_BIN/bickyctl" --database-url "$BICKY_DATABASE_URL" --json token create --team "$1" \
        --name bench 2>>"$RES/run.log" | jq -r .token
}

# ---------------------------------------------------------------- where the time goes

# CPU ticks used so far by each part of the cluster, and by the whole machine:
# prints "gateway nodes postgres registry machine_busy machine_total".
bn_cpu_snap() {
    local pm pids g n p r
    pm=$(head -n 1 "$BICKY_VAR/pg/data/postmaster.pid" 2>/dev/null || true)
    ticks() {
        local s=0 x
        for x in "$@"; do
            [[ -r /proc/$x/stat ]] && s=$((s + $(awk '{print $14 + $15}' "/proc/$x/stat")))
        done
        echo "$s"
    }
    g=$(ticks "$(bn_pid gateway)")
    mapfile -t pids < <(for f in "$BICKY_VAR"/run/n*.pid; do bk_read_pid "$f"; done)
    n=$(ticks "${pids[@]}")
    # shellcheck disable=SC2046 # one pid per word
    p=$(ticks "$pm" $(pgrep -P "${pm:-1}" 2>/dev/null))
    r=$(ticks "$(bn_pid registry)")
    echo "$g $n $p $r $(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
}

# bn_cpu_report NAME OPS BEFORE AFTER: CPU µs per operation for each part, and
# how busy the machine was (everything else = the load generator + other tenants).
bn_cpu_report() {
    local name=$1 ops=$2 json
    json=$(awk -v ops="$ops" -v hz="$(getconf CLK_TCK)" -v a="$3" -v b="$4" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        us = 1e6 / hz / ops
        busy = y[5] - x[5]; total = y[6] - x[6]
        ours = (y[1] - x[1]) + (y[2] - x[2]) + (y[3] - x[3]) + (y[4] - x[4])
        bpct = 0; opct = 0
        if (total > 0) { bpct = 100 * busy / total; opct = 100 * (busy - ours) / total }
        fmt = "{\"ops\":%d,\"gateway_us\":%.1f,\"nodes_us\":%.1f,\"postgres_us\":%.1f,"
        fmt = fmt "\"registry_us\":%.1f,\"cluster_us\":%.1f,\"machine_busy_pct\":%.1f,"
        fmt = fmt "\"others_busy_pct\":%.1f}"
        printf fmt, ops, (y[1] - x[1]) * us, (y[2] - x[2]) * us, (y[3] - x[3]) * us,
            (y[4] - x[4]) * us, ours * us, bpct, opct }')
    bn_detail "$name-cpu" "$json"
    # shellcheck disable=SC2034 # read by the callers (bench_p.sh)
    CPU_JSON=$json
}

# Top statements by execution time since the last reset (pg_stat_statements), then reset.
bn_pgss() {
    bn_psql -c "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
                       round((total_exec_time / calls * 1000)::numeric, 1) AS us_per_call,
                       left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
                FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 20" \
        -P footer=off -F ' | ' >"$RES/raw/$1.statements.txt" 2>&1 || true
    bn_psql -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- load generators

# bn_wrk NAME [wrk args...]: runs wrk with our report; output in raw/NAME.wrk.txt;
# sets WRK_JSON (totals) and WRK_STATUS ({"202": n, ...}, or {} for wrk_get.lua).
bn_wrk() {
    local name=$1
    shift
    BENCH_DIR=$BK_ROOT/bench wrk "$@" >"$RES/raw/$name.wrk.txt" 2>&1 ||
        bn_say "wrk $name exited with status $?"
    WRK_JSON=$(sed -n 's/^WRK_JSON //p' "$RES/raw/$name.wrk.txt" | tail -n 1)
    WRK_STATUS=$(sed -n 's/^WRK_STATUS //p' "$RES/raw/$name.wrk.txt" | tail -n 1)
    [[ -n $WRK_JSON ]] || WRK_JSON='{}'
    [[ -n $WRK_STATUS ]] || WRK_STATUS='{}'
    bn_detail "$name" "$(jq -cn --argjson w "$WRK_JSON" --argjson s "$WRK_STATUS" \
        --arg cmd "wrk $*" '{command: $cmd, wrk: $w, statuses: $s}')"
}

# Requests/s of the last bn_wrk counting only status $1 (all non-error when empty).
bn_wrk_rate() {
    if [[ -n ${1:-} ]]; then
        jq -rn --argjson w "$WRK_JSON" --argjson s "$WRK_STATUS" --arg st "$1" \
            'if ($w.duration_us // 0) > 0 then (($s[$st] // 0) / ($w.duration_us / 1e6)) else "n/a" end'
    else
        jq -rn --argjson w "$WRK_JSON" \
            'if ($w.duration_us // 0) > 0 then
               (($w.requests - $w.status_errors) / ($w.duration_us / 1e6)) else "n/a" end'
    fi
}

# bn_sse NAME [sse_clients args...]: runs sse_clients; sets SSE_JSON.
bn_sse() {
    local name=$1
    shift
    "$BICKY_BIN/sse_clients" "$@" >"$RES/raw/$name.sse.txt" 2>"$RES/raw/$name.sse.err" ||
        bn_say "sse_clients $name exited with status $?"
    SSE_JSON=$(sed -n 's/^SSE_JSON //p' "$RES/raw/$name.sse.txt" | tail -n 1)
    [[ -n $SSE_JSON ]] || SSE_JSON='{}'
    bn_detail "$name" "$(jq -cn --argjson s "$SSE_JSON" --arg cmd "sse_clients $*" \
        '{command: $cmd, result: $s}')"
}

# bn_phx_rtt NAME IDS_FILE SOCKETS SECONDS: message:create round trips with the
# real phoenix npm client (installed under the build tree); sets PHX_JSON.
bn_phx_rtt() {
    local name=$1 ids=$2 sockets=$3 secs=$4 npm
    npm=$(cd "$BICKY_BIN/.." && pwd)/npm-phoenix
    if [[ ! -f $npm/node_modules/phoenix/package.json ]]; then
        mkdir -p "$npm"
        (cd "$npm" && npm install --no-audit --no-fund --silent phoenix@1.8.16 ws@8.18.3 \
            >npm.log 2>&1) || bn_say "npm install phoenix failed (see $npm/npm.log)"
    fi
    NODE_PATH=$npm/node_modules node "$BK_ROOT/bench/phx_rtt.js" "$BICKY_HTTP_PORT" \
        "$BICKY_TOKEN" "$ids" "$sockets" "$secs" >"$RES/raw/$name.phx.txt" 2>&1 ||
        bn_say "phx_rtt $name exited with status $?"
    PHX_JSON=$(sed -n 's/^PHX_JSON //p' "$RES/raw/$name.phx.txt" | tail -n 1)
    [[ -n $PHX_JSON ]] || PHX_JSON='{}'
    bn_detail "$name" "$(jq -cn --argjson s "$PHX_JSON" \
        --arg cmd "phx_rtt.js $(basename "$ids") $sockets $secs" '{command: $cmd, result: $s}')"
}

# bn_once NAME TOKEN MODE IDS_FILE [CONNS [MAX_S]]: one request per id (http_once), sending
# for at most MAX_S seconds (0 = until the list ends); sets ONCE_JSON.
bn_once() {
    local name=$1 token=$2 mode=$3 ids=$4 conns=${5:-64} max_s=${6:-0}
    BICKY_TOKEN=$token "$BICKY_BIN/http_once" --ids "$ids" --mode "$mode" --conns "$conns" \
        --max-s "$max_s" >"$RES/raw/$name.once.txt" 2>&1 ||
        bn_say "http_once $name exited with status $?"
    ONCE_JSON=$(sed -n 's/^HTTP_JSON //p' "$RES/raw/$name.once.txt" | tail -n 1)
    [[ -n $ONCE_JSON ]] || ONCE_JSON='{}'
    bn_detail "$name" "$(jq -cn --argjson s "$ONCE_JSON" \
        --arg cmd "http_once --ids $(basename "$ids") --mode $mode --conns $conns" \
        '{command: $cmd, result: $s}')"
}

# bn_jq JSON FILTER: a number from JSON, or n/a.
bn_jq() {
    jq -r "($2) // \"n/a\"" <<<"$1" 2>/dev/null || echo n/a
}
