# shellcheck shell=bash
# bench_p.sh — the benchmarks of bench/run, one function each (P1–P9), and the
# latency plot. Sourced by bench/run once the cluster is up; uses bench_lib.sh.
# Reads the sizes bench/run set (D, P1_CONVS, P7_CLIENTS, BIG, ...).
# shellcheck disable=SC2153 # P7_RATE and the other sizes come from bench/run

WRK_POST=$BK_ROOT/bench/wrk_post.lua
WRK_GET=$BK_ROOT/bench/wrk_get.lua
P1_RATE=""

# Waits until the nodes have nothing left to write (echo turns finish after 202).
settle() {
    sleep "${1:-2}"
}

p8_health() {
    bn_say "P8: GET /health, wrk -t2 -c64 -d${D}s"
    local before after
    before=$(bn_cpu_snap)
    bn_wrk p8 -t2 -c64 -d"${D}s" -s "$WRK_GET" "$BICKY_URL/health"
    after=$(bn_cpu_snap)
    bn_row P8 "GET /health (wrk -t2 -c64)" "$(bn_wrk_rate)" "req/s" ge 100000 "≈52k req/s"
    cpu_rows P8 "$(bn_jq "$WRK_JSON" '.requests')" "$before" "$after" request
}

p1_messages() {
    bn_say "P1: seeding $P1_CONVS conversations, activating them, then posting for ${D}s"
    bn_seed "$TEAM_DEV" "$P1_CONVS" "$RES/p1.ids"
    bn_once p1-warmup "$BICKY_TOKEN" cancel "$RES/p1.ids" 64
    local before after n
    bn_pgss p1-before
    before=$(bn_cpu_snap)
    BENCH_IDS=$RES/p1.ids BENCH_MODE=messages BENCH_TOKEN=$BICKY_TOKEN BENCH_THREADS=2 \
        bn_wrk p1 -t2 -c"${BENCH_P1_CONNS:-128}" -d"${D}s" --timeout 10s -s "$WRK_POST" "$BICKY_URL"
    settle 2 # the echo turns of the last messages
    after=$(bn_cpu_snap)
    bn_pgss p1
    P1_RATE=$(bn_wrk_rate 202)
    n=$(jq -r '.["202"] // 0' <<<"$WRK_STATUS")
    bn_row P1 "durable messages/s, existing conversations (echo)" "$P1_RATE" "msg/s" ge 10000 \
        "136/s" "$P1_CONVS conversations; non-202: $(jq -c 'del(.["202"])' <<<"$WRK_STATUS")"
    bn_row P1l "  P1 request latency p99 (wrk)" \
        "$(bn_jq "$WRK_JSON" '.latency_us.p99 / 1000')" ms info ""
    cpu_rows P1 "$n" "$before" "$after" message
    settle 1
}

# cpu_rows ID OPS BEFORE AFTER NOUN: CPU per operation, by process, as info rows.
cpu_rows() {
    local id=$1 ops=$2 noun=$5
    ((ops > 0)) || return 0
    bn_cpu_report "${id,,}" "$ops" "$3" "$4"
    bn_row "${id}c" "  cluster CPU per $noun (gateway+nodes+postgres)" \
        "$(bn_jq "$CPU_JSON" '.cluster_us')" "µs" info "" \
        "postgres $(bn_jq "$CPU_JSON" '.postgres_us'), nodes $(bn_jq "$CPU_JSON" '.nodes_us'), gateway $(bn_jq "$CPU_JSON" '.gateway_us') µs; machine $(bn_jq "$CPU_JSON" '.machine_busy_pct')% busy, $(bn_jq "$CPU_JSON" '.others_busy_pct')% outside the cluster"
}

p2_new_conversations() {
    bn_say "P2: POST /api/message (new conversation each) for ${D}s"
    local before after
    before=$(bn_cpu_snap)
    BENCH_MODE=new BENCH_TOKEN=$BICKY_TOKEN BENCH_THREADS=2 \
        bn_wrk p2 -t2 -c"${BENCH_P2_CONNS:-128}" -d"${D}s" --timeout 10s -s "$WRK_POST" "$BICKY_URL"
    settle 2
    after=$(bn_cpu_snap)
    bn_pgss p2
    bn_row P2 "new conversations/s (POST /api/message)" "$(bn_wrk_rate 202)" "conv/s" ge 5000 \
        "19.9/s" "non-202: $(jq -c 'del(.["202"])' <<<"$WRK_STATUS")"
    cpu_rows P2 "$(jq -r '.["202"] // 0' <<<"$WRK_STATUS")" "$before" "$after" conversation
    settle 1
}

p3_latency() {
    local rate=${P1_RATE:-}
    if [[ -z $rate || $rate == n/a ]]; then
        rate=1000
    fi
    rate=$(awk -v r="$rate" 'BEGIN { r = int(r / 2); print (r < 50 ? 50 : r) }')
    rate=${BENCH_P3_RATE:-$rate} # a fixed rate instead, for a latency-against-rate point
    bn_say "P3: $P3_CONVS listeners, $rate posts/s (half of P1) for ${D}s"
    bn_seed "$TEAM_DEV" "$P3_CONVS" "$RES/p3.ids"
    bn_pgss p3-before
    bn_sse p3 --convs "$RES/p3.ids" --nconvs "$P3_CONVS" --clients "$P3_CONVS" --rate "$rate" \
        --duration-s "$D" --post-conns 128 --settle-s 15 --samples "$RES/p3"
    local n
    n=$(bn_jq "$SSE_JSON" '.completed_ms.n')
    bn_row P3a "POST → message.completed on SSE, p50 (at $rate/s)" \
        "$(bn_jq "$SSE_JSON" '.completed_ms.p50')" ms le 2 "~75 ms" "$n samples"
    bn_row P3b "POST → message.completed on SSE, p99" \
        "$(bn_jq "$SSE_JSON" '.completed_ms.p99')" ms le 10 "" \
        "posts $(bn_jq "$SSE_JSON" '.posts'), errors $(bn_jq "$SSE_JSON" '.post_errors')"
    bn_pgss p3
    bn_restart gateway # drop P3's listeners before P7 measures the gateway
}

# P7 with --workers > 1: the supervised gateway is stopped and one with
# P7_WORKERS worker processes (SO_REUSEPORT) runs on the same port for P7 only,
# so that the other benchmarks keep the default single-process gateway. Sets P7_GW.
p7_gateway_up() {
    if ((P7_WORKERS <= 1)); then
        bn_restart gateway
        P7_GW=$(bn_pid gateway)
        return
    fi
    local pid
    pid=$(bn_pid gateway)
    kill -TERM "$pid" 2>/dev/null || true
    bk_wait_for 10 bk_dead "$pid" || bn_die "gateway (pid $pid) did not stop"
    bk_wait_for 5 grep -q "gateway pid=$pid exited" "$BICKY_VAR/log/supervisor.log" ||
        bn_say "warning: the supervisor did not log the exit of the gateway"
    # The same security flags as deploy/local/up gives its gateway.
    local sec=(--insecure)
    [[ $BICKY_INSECURE == 1 ]] ||
        sec=(--cert "$BICKY_VAR/keys/secret/gateway-gateway.key" --keys "$BICKY_VAR/keys")
    BICKY_GATEWAY_WORKERS=$P7_WORKERS BICKY_MAX_CONNECTIONS=$P7_GW_MAXCONN \
        "$BICKY_BIN/bicky-gateway" --listen 127.0.0.1 --port "$BICKY_HTTP_PORT" \
        --registry "$BICKY_REGISTRY" --log-level warn "${sec[@]}" >>"$BICKY_VAR/log/gateway-p7.log" 2>&1 &
    P7_GW=$!
    bk_wait_for 15 bk_http_ok "$BICKY_URL/ready" || bn_die "P7 gateway (workers) not ready"
}

# Stops P7's own gateway and brings the supervised one back.
p7_gateway_down() {
    if ((P7_WORKERS <= 1)); then
        bn_restart gateway
        return
    fi
    kill -TERM "$P7_GW" 2>/dev/null || true
    wait "$P7_GW" 2>/dev/null || bn_say "P7 gateway exited with status $?"
    "$BK_ROOT/deploy/local/up" -d >>"$RES/up.log" 2>&1 || bn_die "up -d failed (see $RES/up.log)"
    bk_wait_for 15 bk_http_ok "$BICKY_URL/ready" || bn_die "gateway not ready after P7"
}

p7_sse() {
    bn_say "P7: restarting the gateway (clean memory baseline; $P7_WORKERS worker(s)), then $P7_CLIENTS SSE clients from $P7_PROCS process(es)"
    p7_gateway_up
    bn_pgss p7-before
    bn_seed "$TEAM_DEV" "$P7_CONVS" "$RES/p7.ids"
    bn_sse p7 --convs "$RES/p7.ids" --nconvs "$P7_CONVS" --clients "$P7_CLIENTS" \
        --sources "$SOURCES" --rate "$P7_RATE" --duration-s "$P7_D" --post-conns 32 \
        --connect-parallel 2000 --connect-timeout-s 300 --settle-s 30 --procs "$P7_PROCS" \
        --gateway-pid "$P7_GW" --samples "$RES/p7"
    local ready complete why
    ready=$(bn_jq "$SSE_JSON" '.ready')
    complete=$(bn_jq "$SSE_JSON" '.complete_clients')
    why=""
    if ((P7_CLIENTS < P7_TARGET)); then
        why="; $P7_CLIENTS attempted: open-file hard limit $(ulimit -Hn) (no CAP_SYS_RESOURCE)"
    fi
    ((P7_WORKERS > 1)) && why+="; $P7_WORKERS gateway worker processes (SO_REUSEPORT), $P7_PROCS client processes"
    bn_row P7a "SSE clients connected to one gateway" "$ready" clients ge "$P7_TARGET" \
        "10,000 clients" "in $(bn_jq "$SSE_JSON" '.connect_s') s$why"
    bn_row P7b "  clients that got every event of their conversation" "$complete" clients ge \
        "$P7_CLIENTS" "" "$(bn_jq "$SSE_JSON" '.events') events, $(bn_jq "$SSE_JSON" '.posts') posts"
    bn_row P7c "  fan-out delay commit → client, p99" "$(bn_jq "$SSE_JSON" '.fanout_ms.p99')" ms \
        le 50 "230 ms p99 (140 p50)" "p50 $(bn_jq "$SSE_JSON" '.fanout_ms.p50') ms; commit = the 202 reaching the poster; POST written → client p99 $(bn_jq "$SSE_JSON" '.fanout_from_send_ms.p99') ms"
    bn_row P7d "  gateway memory per SSE client" "$(bn_jq "$SSE_JSON" '.gw_kb_per_client')" KiB \
        le 10 "" "idle $(bn_jq "$SSE_JSON" '.gw_kb_per_client_idle') KiB; all gateway processes"
    bn_pgss p7
    # The gateway notices departed SSE clients only at their next keep-alive:
    # start the next benchmarks on a fresh one.
    p7_gateway_down
}

# P10: as P7, with the listeners on WebSockets (Phoenix v2, one conversation
# topic each, joined with last_event_id 0); then message:create round trips
# over 128 sockets with the real phoenix client (bench/phx_rtt.js), beside P1.
p10_ws() {
    bn_say "P10: restarting the gateway, then $P7_CLIENTS WebSocket clients from $P7_PROCS process(es)"
    p7_gateway_up
    bn_seed "$TEAM_DEV" "$P7_CONVS" "$RES/p10.ids"
    bn_sse p10 --ws --convs "$RES/p10.ids" --nconvs "$P7_CONVS" --clients "$P7_CLIENTS" \
        --sources "$SOURCES" --rate "$P7_RATE" --duration-s "$P7_D" --post-conns 32 \
        --connect-parallel 2000 --connect-timeout-s 300 --settle-s 30 --procs "$P7_PROCS" \
        --gateway-pid "$P7_GW" --samples "$RES/p10"
    bn_row P10a "WebSocket clients connected to one gateway" "$(bn_jq "$SSE_JSON" '.ready')" \
        clients ge "$P7_TARGET" "" "in $(bn_jq "$SSE_JSON" '.connect_s') s (Phoenix join with last_event_id 0)"
    bn_row P10b "  clients that got every event of their conversation" \
        "$(bn_jq "$SSE_JSON" '.complete_clients')" clients ge "$P7_CLIENTS" "" \
        "$(bn_jq "$SSE_JSON" '.events') events, $(bn_jq "$SSE_JSON" '.posts') posts"
    bn_row P10c "  fan-out delay commit → socket, p99" "$(bn_jq "$SSE_JSON" '.fanout_ms.p99')" ms \
        le 50 "" "p50 $(bn_jq "$SSE_JSON" '.fanout_ms.p50') ms; commit = the 202 reaching the poster"
    bn_row P10d "  gateway memory per WebSocket" "$(bn_jq "$SSE_JSON" '.gw_kb_per_client')" KiB \
        le 10 "" "idle $(bn_jq "$SSE_JSON" '.gw_kb_per_client_idle') KiB; all gateway processes"
    p7_gateway_down
    bn_seed "$TEAM_DEV" 128 "$RES/p10e.ids"
    bn_phx_rtt p10e "$RES/p10e.ids" 128 "$D"
    bn_row P10e "message:create round trips over 128 WebSockets" \
        "$(bn_jq "$PHX_JSON" '.per_s')" msg/s ge 0 "" \
        "p50 $(bn_jq "$PHX_JSON" '.p50_ms') ms, p99 $(bn_jq "$PHX_JSON" '.p99_ms') ms, errors $(bn_jq "$PHX_JSON" '.errors'); beside P1 over HTTP"
}

seed_big() {
    local t0
    t0=$(bk_now_ms)
    BIG_TOKEN=$(bn_token big)
    TEAM_BIG=$(bn_team_id big)
    bn_say "seeding $BIG conversations for team big (SQL generate_series)"
    bn_seed "$TEAM_BIG" "$BIG" "$RES/big.ids"
    bn_psql -c "VACUUM ANALYZE conversations" >/dev/null
    bn_say "seeded in $((($(bk_now_ms) - t0) / 1000)) s"
}

# Activates ids FROM..TO (1-based lines of big.ids) with POST …/cancel (409 each),
# for at most MAX_S seconds (the full run must end within 20 minutes).
activate() {
    local from=$1 to=$2 name=$3 max_s=$4
    sed -n "${from},${to}p" "$RES/big.ids" >"$RES/$name.ids"
    bn_once "$name" "$BIG_TOKEN" cancel "$RES/$name.ids" 64 "$max_s"
}

actors_at_least() {
    local n
    n=$(bn_actors n1)
    [[ $n =~ ^[0-9]+$ ]] && ((n >= $1))
}

p4_memory() {
    bn_say "P4: restarting n1, draining n2: n1 owns every conversation"
    bn_restart n1
    bk_wait_for 20 bn_ring_is "$(seq -f 'n%g' 1 "$BICKY_NODES" | sort | xargs)" || true
    "$BICKY_BIN/bickyctl" --registry "$BICKY_REGISTRY" drain n2 >>"$RES/run.log" 2>&1 || true
    bk_wait_for 20 bn_ring_is "n1" || bn_die "n2 did not leave the ring"
    sleep 2
    local pid rss0 rss act0 act prev=0 prev_rss prev_act point per
    pid=$(bn_pid n1)
    rss0=$(bn_rss_kb "$pid")
    act0=$(bn_actors n1)
    prev_rss=$rss0 prev_act=$act0
    for point in $P4_POINTS; do
        bn_say "P4: activating conversations $((prev + 1))..$point"
        activate $((prev + 1)) "$point" "p4-$point" "$(((point - prev) / 1500 + 60))"
        if [[ $(bn_jq "$ONCE_JSON" '.not_sent') != 0 ]]; then
            bn_say "P4: stopped at the time budget, $(bn_jq "$ONCE_JSON" '.not_sent') left inactive"
        fi
        bk_wait_for 10 actors_at_least "$((point - $(bn_jq "$ONCE_JSON" '.not_sent // 0')))" || true
        sleep 1
        rss=$(bn_rss_kb "$pid")
        act=$(bn_actors n1)
        per=$(awk -v a="$rss" -v b="$rss0" -v n="$act" -v m="$act0" \
            'BEGIN { print (n > m ? (a - b) * 1024 / (n - m) : "n/a") }')
        bn_row "P4" "node RSS growth per resident idle actor, at $act actors" "$per" bytes le 1024 \
            "≈9.5 MB per conversation" "RSS $rss0 → $rss KiB"
        if ((prev > 0)); then
            bn_row "P4s" "  marginal, from $prev_act to $act actors" "$(awk -v a="$rss" \
                -v b="$prev_rss" -v n="$act" -v m="$prev_act" \
                'BEGIN { print (n > m ? (a - b) * 1024 / (n - m) : "n/a") }')" bytes le 1024 ""
        fi
        bn_row "P4r" "  activations/s (POST …/cancel → 409, 64 connections)" \
            "$(bn_jq "$ONCE_JSON" '.rate')" "act/s" info "70–80 ms each" \
            "statuses $(jq -c '.statuses' <<<"$ONCE_JSON"), p99 $(bn_jq "$ONCE_JSON" '.latency_ms.p99') ms"
        prev=$point prev_rss=$rss prev_act=$act
    done
    if ((P6)); then
        p6_sample "$pid"
    fi
    "$BICKY_BIN/bickyctl" --registry "$BICKY_REGISTRY" undrain n2 >>"$RES/run.log" 2>&1 || true
    bk_wait_for 20 bn_ring_is "$(seq -f 'n%g' 1 "$BICKY_NODES" | sort | xargs)" || true
}

p6_sample() {
    local pid=$1 ok act
    bn_say "P6: posting to 1,000 of the $BIG resident conversations"
    shuf -n 1000 "$RES/big.ids" >"$RES/p6.ids"
    bn_once p6 "$BIG_TOKEN" messages "$RES/p6.ids" 16
    ok=$(bn_jq "$ONCE_JSON" '.statuses["202"]')
    act=$(bn_actors n1)
    bn_row P6a "resident conversations on one node" "$act" actors ge 1000000 \
        "≈1,000 (2 cores saturated)" "n1 RSS $(bn_rss_kb "$pid") KiB"
    bn_row P6b "  sampled conversations answering a post (202)" "$ok" "of 1000" ge 1000 "" \
        "p99 $(bn_jq "$ONCE_JSON" '.latency_ms.p99') ms"
}

p9_listing() {
    bn_say "P9: GET /api/conversations?limit=50 with $SMALL and with $BIG conversations"
    local small_token small_team r_small r_big
    small_token=$(bn_token small)
    small_team=$(bn_team_id small)
    bn_seed "$small_team" "$SMALL" "$RES/small.ids"
    bn_psql -c "VACUUM ANALYZE conversations" >/dev/null
    # Alternate the two sizes twice and keep each one's best run: the machine's
    # noise moves single runs by more than the difference we look for.
    local half=$(((D + 1) / 2)) i r before after deep r_deep big_cpu=()
    r_small=0 r_big=0
    for i in 1 2; do
        bn_wrk "p9-small-$i" -t2 -c32 -d"${half}s" -s "$WRK_GET" \
            -H "Authorization: Bearer $small_token" "$BICKY_URL/api/conversations?limit=50"
        r=$(bn_wrk_rate)
        r_small=$(awk -v a="$r_small" -v b="$r" 'BEGIN { print (b + 0 > a + 0 ? b : a) }')
        before=$(bn_cpu_snap)
        bn_wrk "p9-big-$i" -t2 -c32 -d"${half}s" -s "$WRK_GET" \
            -H "Authorization: Bearer $BIG_TOKEN" "$BICKY_URL/api/conversations?limit=50"
        after=$(bn_cpu_snap)
        r=$(bn_wrk_rate)
        if awk -v a="$r_big" -v b="$r" 'BEGIN { exit !(b + 0 > a + 0) }'; then
            r_big=$r
            big_cpu=("$(bn_jq "$WRK_JSON" '.requests')" "$before" "$after")
        fi
    done
    bn_row P9a "GET /api/conversations (50) with $BIG conversations" "$r_big" "req/s" ge 5000 \
        "19 req/s at 10,000" "best of 2 × ${half} s; p99 $(bn_jq "$WRK_JSON" '.latency_us.p99 / 1000') ms"
    bn_row P9b "  same with $SMALL conversations" "$r_small" "req/s" info ""
    bn_row P9r "  speed at $BIG relative to $SMALL" \
        "$(awk -v a="$r_big" -v b="$r_small" 'BEGIN { print (b > 0 ? a * 100 / b : "n/a") }')" \
        "%" ge 90 "" "100% = as fast; 90% allows for the machine's noise"
    if ((${#big_cpu[@]} == 3)); then
        cpu_rows P9 "${big_cpu[@]}" request
    fi
    # A page far down the list: the keyset cursor must keep it as fast as the first.
    deep=$(bn_psql -c "SELECT to_char(created_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || id
                       FROM conversations WHERE team_id = '$TEAM_BIG'
                       ORDER BY created_at DESC, id DESC OFFSET $((BIG / 2)) LIMIT 1" |
        tr -d '\n' | base64 -w0 | tr '+/' '-_' | tr -d '=')
    bn_wrk p9-deep -t2 -c32 -d"${half}s" -s "$WRK_GET" -H "Authorization: Bearer $BIG_TOKEN" \
        "$BICKY_URL/api/conversations?limit=50&cursor=$deep"
    r_deep=$(bn_wrk_rate)
    bn_row P9d "  page at row $((BIG / 2)) of $BIG (cursor)" "$r_deep" "req/s" info "" \
        "first page $r_big req/s; non-2xx $(bn_jq "$WRK_JSON" '.status_errors')"
    local sql sql_after ts id
    sql=$("$BICKY_BIN/bench_sql" node_conv_list)
    sql_after=$("$BICKY_BIN/bench_sql" node_conv_list_after)
    {
        IFS='|' read -r ts id < <(printf '%s' "$deep" | tr -- '-_' '+/' | base64 -d 2>/dev/null)
        echo "-- the node's statement node_conv_list (node/store/node_sql.c), first page, team with $BIG rows"
        echo "$sql"
        echo
        echo "-- custom plan (first executions of the prepared statement)"
        bn_psql -c "PREPARE q AS $sql" -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q('$TEAM_BIG', NULL, NULL, NULL, 51)"
        echo
        echo "-- generic plan (what a prepared statement may switch to after 5 executions)"
        bn_psql -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE q AS $sql" \
            -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q('$TEAM_BIG', NULL, NULL, NULL, 51)"
        echo
        echo "-- the node's statement node_conv_list_after (next pages)"
        echo "$sql_after"
        echo
        echo "-- page at row $((BIG / 2)) (cursor $ts|$id), custom plan"
        bn_psql -c "PREPARE q AS $sql_after" -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q('$TEAM_BIG', '$ts', '$id', NULL, NULL, NULL, 51)"
        echo
        echo "-- same page, generic plan"
        bn_psql -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE q AS $sql_after" \
            -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q('$TEAM_BIG', '$ts', '$id', NULL, NULL, NULL, 51)"
    } >"$RES/explain-p9.txt" 2>&1 || true
}

p5_actor() {
    if [[ ! -x $BICKY_BIN/bench_actor ]]; then
        bn_row P5 "actor activation without DB (bench_actor)" n/a "µs" le 1 "70–80 ms" "bench_actor not built"
        return 0
    fi
    bn_say "P5: bench_actor 1000000"
    "$BICKY_BIN/bench_actor" 1000000 >"$RES/raw/p5.txt" 2>&1 || true
    local us bytes
    us=$(awk '/^activate/ {print $2}' "$RES/raw/p5.txt")
    bytes=$(awk '/^resident/ {print $2}' "$RES/raw/p5.txt")
    bn_detail p5 "$(jq -Rsc '{command: "bench_actor 1000000", output: .}' <"$RES/raw/p5.txt")"
    bn_row P5 "actor activation without DB (bench_actor, 1M)" "${us:-n/a}" "µs" le 1 \
        "70–80 ms (a process each)" "find/passivate: see raw/p5.txt"
    bn_row P5m "  actor table memory per actor (bench_actor)" "${bytes:-n/a}" bytes info ""
}

# P3's latency against time (a stall and a build-up look different here).
plot_time() {
    [[ -s $RES/p3.completed.ts ]] || return 0
    local f term
    for f in svg png; do
        term="svg size 900,400 dynamic"
        [[ $f == png ]] && term="png size 900,400"
        gnuplot <<EOF >>"$RES/run.log" 2>&1 || bn_say "gnuplot ($f) failed"
set terminal $term
set output '$RES/latency-time.$f'
set title 'P3: POST → message.completed on SSE, per post ($MODE run)'
set xlabel 'seconds since the first post'
set ylabel 'milliseconds (log scale)'
set logscale y
set grid
plot '$RES/p3.completed.ts' using 1:(\$2 < 0.01 ? 0.01 : \$2) with dots notitle
EOF
    done
}

# Latency CDFs (P3 post → completed, P7 commit → client) as SVG and PNG.
plot() {
    plot_time
    local files=() titles=() f
    [[ -s $RES/p3.completed.cdf ]] && files+=("$RES/p3.completed.cdf") &&
        titles+=("P3 POST → message.completed on SSE")
    [[ -s $RES/p7.fanout.cdf ]] && files+=("$RES/p7.fanout.cdf") &&
        titles+=("P7 202 received → each SSE client ($P7_CLIENTS clients; ≤ 0 shown at 0.001)")
    [[ -s $RES/p7.fromsend.cdf ]] && files+=("$RES/p7.fromsend.cdf") &&
        titles+=("P7 POST written → each SSE client (includes the commit)")
    ((${#files[@]})) || return 0
    local plots="" i
    for i in "${!files[@]}"; do
        plots+="${plots:+, }'${files[$i]}' using (\$1 < 0.001 ? 0.001 : \$1):2 with lines lw 2 title '${titles[$i]}'"
    done
    for f in svg png; do
        local term="svg size 900,540 dynamic"
        [[ $f == png ]] && term="png size 900,540"
        gnuplot <<EOF >>"$RES/run.log" 2>&1 || bn_say "gnuplot ($f) failed"
set terminal $term
set output '$RES/latency.$f'
set title 'Bicky latency distribution ($MODE run, $(date -u +%F))'
set xlabel 'milliseconds (log scale)'
set ylabel 'fraction of samples ≤ x'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot $plots
EOF
    done
}
