# shellcheck shell=bash
# bench_ts.sh — the side-by-side rows of bench/run (TS1–TS5): the old
# TypeScript server (a checkout of femtomc/bicamrl in $BENCH_TS_DIR, run with
# bun) and Bicky's legacy routes measured one after the other in the same run
# with the same wrk settings, and the ratios. Sourced by bench/run after
# bench_lib.sh; functions are prefixed ts_. Nothing of that server is in this
# repository: the checkout and bun are the user's.
# shellcheck disable=SC2153 # D, RES, BICKY_* come from bench/run

TS_PGID=""   # process group of the TypeScript server and its wake processes
TS_URL=""    # http://127.0.0.1:<port> of the TypeScript server
TS_BUN=""    # the bun that runs it
TS_LOG=""    # its stdout and stderr (and its wake processes')
TS_CONVS=${BENCH_TS_CONVS:-200}
TS_CONNS=${BENCH_TS_CONNS:-64}
TS_CONTENT='{"content":"hello from the bicky benchmark"}'

# ts_ratio A_RATE A_OK A_BAD B_RATE B_OK B_BAD: prints A_RATE / B_RATE with 2
# decimals, or n/a when a side has no good answer, more than 1% bad ones
# (errors, unexpected bodies, socket errors, timeouts) or a rate of n/a or 0:
# a run whose server answered errors is no throughput.
ts_ratio() {
    awk -v ar="$1" -v ao="$2" -v ab="$3" -v br="$4" -v bo="$5" -v bb="$6" 'BEGIN {
        if (ar == "n/a" || br == "n/a" || ar !~ /^[0-9.e+]+$/ || br !~ /^[0-9.e+]+$/ ||
            ao + 0 <= 0 || bo + 0 <= 0 || ab + 0 > ao / 100 || bb + 0 > bo / 100 || br + 0 <= 0) {
            print "n/a"
            exit
        }
        printf "%.2f\n", ar / br
    }'
}

# ts_counts EXPECTED: from the last bn_wrk, prints "OK BAD": answers with
# status EXPECTED (and the expected body), and everything else (other
# statuses, unexpected bodies, connect/read/write errors, timeouts).
ts_counts() {
    jq -rn --argjson w "$WRK_JSON" --argjson s "$WRK_STATUS" --arg st "$1" '
        [($s[$st] // 0),
         (($s | to_entries | map(select(.key != $st) | .value) | add // 0)
          + ($w.connect_errors // 0) + ($w.read_errors // 0) + ($w.write_errors // 0)
          + ($w.timeouts // 0))] | "\(.[0]) \(.[1])"'
}

# ts_side NAME EXPECTED: rate, counts and a detail line of the last bn_wrk;
# sets SIDE_RATE, SIDE_OK, SIDE_BAD, SIDE_NOTE.
ts_side() {
    read -r SIDE_OK SIDE_BAD < <(ts_counts "$2")
    SIDE_RATE=$(bn_wrk_rate "$2")
    SIDE_NOTE="$SIDE_OK × $2, $SIDE_BAD other $(jq -c --arg st "$2" 'del(.[$st])' <<<"$WRK_STATUS")"
    SIDE_NOTE+=", p99 $(bn_jq "$WRK_JSON" '.latency_us.p99 / 1000') ms"
    bn_detail "$1-counts" "$(jq -cn --arg r "$SIDE_RATE" --argjson ok "$SIDE_OK" \
        --argjson bad "$SIDE_BAD" '{rate: $r, ok: $ok, bad: $bad}')"
}

# Prints the bun to run (BENCH_BUN, else bun on PATH); fails when there is none.
ts_bun() {
    local b=${BENCH_BUN:-}
    [[ -n $b ]] || b=$(command -v bun) || return 1
    [[ -x $b ]] || return 1
    (cd "$(dirname "$b")" && echo "$PWD/$(basename "$b")")
}

# Checks, before anything is built, what the side-by-side rows need.
ts_check() {
    [[ -n ${BENCH_TS_DIR:-} ]] || return 0
    [[ -f $BENCH_TS_DIR/packages/server/src/index.ts ]] ||
        bn_die "BENCH_TS_DIR=$BENCH_TS_DIR is not a checkout of femtomc/bicamrl (no packages/server/src/index.ts)"
    BENCH_TS_DIR=$(cd "$BENCH_TS_DIR" && pwd)
    TS_BUN=$(ts_bun) || bn_die "no bun: set BENCH_BUN or put bun on PATH (npm install --prefix DIR bun gives DIR/node_modules/.bin/bun; docs/performance.md)"
    bn_say "TS: the TypeScript server in $BENCH_TS_DIR with bun $("$TS_BUN" --version 2>/dev/null)"
}

# Installs the server's dependencies into the checkout (bun install, from the
# npm registry) when they are missing. --ignore-scripts: the only install
# script is @anthropic-ai/claude-code's, which the mock provider never runs.
ts_install() {
    if [[ -d $BENCH_TS_DIR/packages/server/node_modules/hono || -d $BENCH_TS_DIR/node_modules/hono ]]; then
        return 0
    fi
    bn_say "TS: bun install in $BENCH_TS_DIR"
    (cd "$BENCH_TS_DIR" && "$TS_BUN" install --ignore-scripts) >"$RES/raw/ts-install.log" 2>&1 ||
        bn_die "bun install failed in $BENCH_TS_DIR (see $RES/raw/ts-install.log)"
}

ts_gone() {
    ! pgrep -g "$TS_PGID" >/dev/null
}

ts_alive() {
    [[ -n $TS_PGID ]] && ! ts_gone
}

# Starts the TypeScript server on a free port as `bun run start` does, in its
# own process group (its wake processes join it), with the mock provider:
# each conversation gets a wake process that polls GET /interactions/:id every
# 500 ms and answers each user message after 100 ms, no model needed.
ts_up() {
    local port pid="" pidfile=$BICKY_VAR/run/ts-server.pid
    port=${BENCH_TS_PORT:-$(bk_free_port 18600 18699)}
    TS_URL=http://127.0.0.1:$port
    TS_LOG=$BICKY_VAR/log/ts-server.log
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$ and $TS_* are the inner shell's
    # setsid (which forks when it must) runs a shell that leads the new session
    # and process group, writes its pid and becomes the server. The server
    # spawns `bun run …/wake-process.ts` by name: bun goes on its PATH.
    (cd "$BENCH_TS_DIR/packages/server" &&
        PATH="$(dirname "$TS_BUN"):$PATH" PORT=$port DEFAULT_PROVIDER=mock TS_BUN=$TS_BUN \
            TS_PIDFILE=$pidfile exec setsid bash -c 'echo $$ >"$TS_PIDFILE"; exec "$TS_BUN" run src/index.ts') \
        >"$TS_LOG" 2>&1 &
    disown # ts_down ends it by its group, possibly with SIGKILL: no job report from bash
    bk_wait_for 10 test -s "$pidfile" && pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || bn_die "the TypeScript server did not start (see $TS_LOG)"
    TS_PGID=$pid
    if ! bk_wait_for 60 bk_http_ok "$TS_URL/health"; then
        tail -n 20 "$TS_LOG" >&2
        ts_down
        bn_die "the TypeScript server did not answer $TS_URL/health (log above)"
    fi
    bn_say "TS: the TypeScript server answers on $TS_URL (pid $pid)"
}

# Stops the TypeScript server and every wake process it started (its group).
ts_down() {
    [[ -n $TS_PGID ]] || return 0
    kill -TERM -- "-$TS_PGID" 2>/dev/null || true
    kill -CONT -- "-$TS_PGID" 2>/dev/null || true # stopped by ts_pair when interrupted there
    if ! bk_wait_for 10 ts_gone; then
        kill -KILL -- "-$TS_PGID" 2>/dev/null || true
        bk_wait_for 5 ts_gone || bn_say "warning: processes of group $TS_PGID are still there"
    fi
    TS_PGID=""
}

# Sum over the server's processes: prints "pss_kb rss_kb processes".
ts_mem() {
    local p pss=0 rss=0 n=0 a b
    for p in $(pgrep -g "$TS_PGID"); do
        read -r a b < <(awk '/^Pss:/ {p = $2} /^Rss:/ {r = $2} END {print p + 0, r + 0}' \
            "/proc/$p/smaps_rollup" 2>/dev/null || echo "0 0")
        pss=$((pss + a)) rss=$((rss + b)) n=$((n + 1))
    done
    echo "$pss $rss $n"
}

# Wake processes that are up: agent made, polling their conversation (the
# first message is answered after that, at "Ready and listening").
ts_ready() {
    grep -c '^\[SSE\] Starting polling' "$TS_LOG" 2>/dev/null || true
}

ts_ready_at_least() {
    (($(ts_ready) >= $1))
}

# ts_wait_ready N SECONDS: waits for N ready wake processes, looking every
# 10 ms (bk_wait_for looks every 100 ms, too coarse for a process start).
ts_wait_ready() {
    local deadline=$(($(bk_now_ms) + $2 * 1000))
    until ts_ready_at_least "$1"; do
        (($(bk_now_ms) < deadline)) || return 1
        sleep 0.01
    done
}

# ts_new URL [TOKEN]: POST /message without interactionId; prints the new
# interaction's id; fails unless the answer is 200 with type "query".
ts_new() {
    local out code auth=()
    [[ -n ${2:-} ]] && auth=(-H "Authorization: Bearer $2")
    out=$(curl -s -m 10 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        "${auth[@]}" -d "$TS_CONTENT" "$1/message") || return 1
    code=${out##*$'\n'}
    [[ $code == 200 ]] || return 1
    jq -er 'select(.type == "query") | .id' <<<"${out%$'\n'*}"
}

# ts_create_some URL TOKEN N: N conversations through POST /message, one after
# the other on one keep-alive connection (one curl for all, its requests in a
# config file, which keeps the token off the command line); prints the ids of
# those answered 200 with type "query".
ts_create_some() {
    local url=$1 token=$2 n=$3 i cfg=$BICKY_VAR/ts-create.curl
    for ((i = 0; i < n; i++)); do
        ((i == 0)) || echo next
        echo "url = \"$url/message\""
        echo 'request = "POST"'
        echo 'header = "Content-Type: application/json"'
        [[ -n $token ]] && echo "header = \"Authorization: Bearer $token\""
        echo "data = \"${TS_CONTENT//\"/\\\"}\""
        printf '%s\n' 'write-out = "\n%{http_code}\n"'
        echo 'max-time = 60'
    done >"$cfg"
    # Each answer is its body then its status on the next line.
    curl -s -K "$cfg" | awk 'NR % 2 == 1 { body = $0 } NR % 2 == 0 && $0 == "200" { print body }' |
        jq -r 'select(.type == "query") | .id' 2>/dev/null
    rm -f "$cfg"
}

# ts_create NAME URL TOKEN N FILE: N conversations, ids to FILE; what was not
# answered is asked for again, twice at most (the old server, busy starting a
# process per conversation, can take seconds to answer one).
ts_create() {
    local name=$1 url=$2 token=$3 n=$4 file=$5 try got=0
    : >"$file"
    for try in 1 2 3; do
        ((got < n)) || break
        ((try == 1)) || bn_say "TS: $((n - got)) of $n conversations not created on the $name server; again"
        ts_create_some "$url" "$token" $((n - got)) >>"$file"
        got=$(wc -l <"$file")
    done
    ((got == n)) || bn_die "TS: $((n - got)) of $n conversations could not be created on the $name server"
}

# The TypeScript server's first conversations one at a time: from the POST to
# its wake process being ready (the `bun run` of a process per conversation),
# median of 5; then the rest of TS_CONVS, and its memory per conversation.
ts_conversations() {
    local i t0 id times=() before after file=$RES/ts-ts.ids
    : >"$file"
    sleep 1
    before=$(ts_mem)
    for ((i = 1; i <= 5 && i <= TS_CONVS; i++)); do
        t0=$(bk_now_ms)
        id=$(ts_new "$TS_URL") || bn_die "TS: the TypeScript server did not create a conversation"
        echo "$id" >>"$file"
        ts_wait_ready "$i" 30 || bn_die "TS: no wake process became ready (see $TS_LOG)"
        times+=($(($(bk_now_ms) - t0)))
    done
    bn_say "TS: TypeScript server: ${times[*]} ms from POST to the process polling; $((TS_CONVS - ${#times[@]})) more"
    ts_create TypeScript "$TS_URL" "" $((TS_CONVS - ${#times[@]})) "$RES/ts-ts.rest"
    cat "$RES/ts-ts.rest" >>"$file"
    bn_say "TS: waiting for $TS_CONVS wake processes"
    bk_wait_for 120 ts_ready_at_least "$TS_CONVS" ||
        bn_say "warning: $(ts_ready) of $TS_CONVS wake processes ready after 120 s"
    sleep 2 # their first messages answered
    after=$(ts_mem)
    TS_START_MS=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    TS_START_NOTE="$(printf '%s ' "${times[@]}")ms, one at a time, the server otherwise idle"
    # Per wake process started: a POST that timed out on our side may still
    # have made a conversation (ts_create asks again).
    read -r TS_MEM_MB TS_MEM_NOTE < <(awk -v a="$before" -v b="$after" -v n="$(ts_ready)" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%.2f PSS %d → %d KiB, RSS %d → %d KiB (%.1f MB each), %d → %d processes\n",
            (y[1] - x[1]) / 1024 / n, x[1], y[1], x[2], y[2], (y[2] - x[2]) / 1024 / n, x[3], y[3] }')
    bn_detail ts-memory "$(jq -cn --arg before "$before" --arg after "$after" \
        --argjson n "$TS_CONVS" '{pss_rss_procs_before: $before, pss_rss_procs_after: $after, conversations: $n}')"
}

# ts_pair ID METRIC UNIT OP TARGET ISSUE18 EXPECTED B_NAME T_NAME HOW WRK_ARGS... PATH:
# one wrk run against Bicky, then the same against the TypeScript server, each
# at its URL + PATH; BENCH_MODE, BENCH_EXPECT etc. come from the caller,
# BENCH_IDS from TS_IDS_BICKY and TS_IDS_TS. The TypeScript server's processes
# are stopped (SIGSTOP) while Bicky is measured: its wake processes poll all
# the time and would take CPU from Bicky's run; Bicky's cluster is idle during
# the other. Rows ID (Bicky ÷ TypeScript), IDa (Bicky), IDb (TypeScript).
ts_pair() {
    local id=$1 metric=$2 unit=$3 op=$4 target=$5 ref=$6 st=$7 bname=$8 tname=$9 how=${10}
    shift 10
    local args=("${@:1:$#-1}") path=${*: -1} br bo bb bn tr to tb tn ratio
    kill -STOP -- "-$TS_PGID"
    BENCH_IDS=${TS_IDS_BICKY:-} BENCH_TOKEN=$BICKY_TOKEN bn_wrk "$bname" "${args[@]}" "$BICKY_URL$path"
    kill -CONT -- "-$TS_PGID"
    ts_side "$bname" "$st"
    br=$SIDE_RATE bo=$SIDE_OK bb=$SIDE_BAD bn=$SIDE_NOTE
    sleep 1
    BENCH_IDS=${TS_IDS_TS:-} BENCH_TOKEN="" bn_wrk "$tname" "${args[@]}" "$TS_URL$path"
    ts_side "$tname" "$st"
    tr=$SIDE_RATE to=$SIDE_OK tb=$SIDE_BAD tn=$SIDE_NOTE
    ratio=$(ts_ratio "$br" "$bo" "$bb" "$tr" "$to" "$tb")
    local why="Bicky $br, TypeScript $tr $unit"
    [[ $ratio == n/a ]] && why+="; no ratio: a side has no good answer or over 1% errors"
    bn_row "$id" "$metric" "$ratio" "×" "$op" "$target" "$ref" "$why"
    bn_row "${id}a" "  Bicky: $how" "$br" "$unit" info "" "$bn"
    bn_row "${id}b" "  TypeScript server: the same, same run" "$tr" "$unit" info "" "$tn"
}

# The rows without a checkout: n/a, nothing measured.
ts_skipped() {
    local why="skipped: BENCH_TS_DIR not set"
    bn_row TS1 "POST /message, existing conversations: Bicky ÷ TS server" n/a "×" ge 20 "$why"
    bn_row TS2 "POST /message, new conversations: Bicky ÷ TS server" n/a "×" info "" "$why"
    bn_row TS3 "GET /health: Bicky ÷ TS server" n/a "×" info "" "$why"
}

# TS1–TS5: both servers side by side. GET /health first (no conversations
# yet), then TS_CONVS conversations on each, messages to them, and new
# conversations last (each one leaves a process on the TypeScript server).
ts_side_by_side() {
    if [[ -z ${BENCH_TS_DIR:-} ]]; then
        ts_skipped
        return 0
    fi
    ts_install
    ts_up
    local c=$TS_CONNS
    bn_say "TS: GET /health, wrk -t2 -c$c -d${D}s, Bicky then the TypeScript server"
    BENCH_EXPECT='"ok"' ts_pair TS3 "GET /health: Bicky ÷ TS server" \
        "req/s" info "" "issue 18: 63–70k vs 31–43k req/s" 200 ts3-bicky ts3-ts "wrk -t2 -c$c" \
        -t2 -c"$c" -d"${D}s" -s "$WRK_GET" /health
    bn_say "TS: $TS_CONVS conversations on each server (POST /message)"
    ts_create Bicky "$BICKY_URL" "$BICKY_TOKEN" "$TS_CONVS" "$RES/ts-bicky.ids"
    ts_conversations
    bn_say "TS: POST /message to $TS_CONVS existing conversations, wrk -t2 -c$c -d${D}s, Bicky then TypeScript"
    TS_IDS_BICKY=$RES/ts-bicky.ids TS_IDS_TS=$RES/ts-ts.ids BENCH_MODE=legacy BENCH_THREADS=2 \
        BENCH_EXPECT='"messageId"' ts_pair TS1 \
        "POST /message, existing conversations: Bicky ÷ TS server" "msg/s" ge 20 \
        "issue 18: 3.3× (2,368 vs 727/s)" 200 ts1-bicky ts1-ts "$TS_CONVS conversations, wrk -t2 -c$c" \
        -t2 -c"$c" -d"${D}s" --timeout 10s -s "$WRK_POST" ""
    bn_say "TS: POST /message creating a conversation each, wrk -t2 -c$c -d${D}s, Bicky then TypeScript"
    BENCH_MODE=legacy-new BENCH_THREADS=2 BENCH_EXPECT='"query"' ts_pair TS2 \
        "POST /message, new conversations: Bicky ÷ TS server" "conv/s" info "" \
        "issue 18: 136× (1,681 vs 12.3/s)" 200 ts2-bicky ts2-ts "wrk -t2 -c$c" \
        -t2 -c"$c" -d"${D}s" --timeout 10s -s "$WRK_POST" ""
    bn_row TS4 "  TS server: memory per conversation (PSS)" "$TS_MEM_MB" MB info "" \
        "$TS_MEM_NOTE"
    bn_row TS5 "  TS server: POST → its process polling, median of 5" "$TS_START_MS" ms \
        info "" "$TS_START_NOTE"
    ts_down
}
