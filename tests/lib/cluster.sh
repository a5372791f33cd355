# shellcheck shell=bash
# cluster.sh — one real cluster per test script, and the helpers the
# conversation tests (tests/cluster/test_conv_*.sh) share: HTTP calls with
# status/body/headers, SQL checks on the cluster's Postgres (gapless seqs,
# row counts), conversation helpers, an SSE client, and the final checks
# (down, exit statuses, no sanitizer report). Functions are prefixed tc_.
#
# Use:
#   SRC=...; BK_TAG=name; source deploy/local/lib.sh tests/lib/assert.sh tests/lib/cluster.sh
#   export BICKY_MAILBOX_MAX=...   # any BICKY_* the cluster's processes should get
#   tc_start name                  # temp BICKY_VAR, free ports, up -d, source env
#   ... tc_req / t_check ...
#   tc_finish name                 # down, exit statuses, sanitizer reports, tally
# Env: BICKY_BIN (binaries under test), BICKY_SRC, BICKY_TEST_TMPDIR,
# BICKY_TEST_KEEP=1, BICKY_TEST_PORT_RANGE (ZeroMQ/Postgres block, like
# test_smoke.sh) and BICKY_TEST_HTTP_PORT_RANGE (HTTP port; default: the same).

TC_VAR=""
TC_NAME=""
TC_CODE=""   # status of the last tc_req
TC_BODY=""   # body of the last tc_req
TC_HDRS=""   # response headers of the last tc_req (CRLF removed)
TC_TOKEN=""  # token tc_req sends (default: the dev team's)
TC_JSON='Content-Type: application/json'

# ---------------------------------------------------------------- lifecycle

tc_cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n $TC_VAR && (-e $TC_VAR/run/supervisor.pid || -e $TC_VAR/run/registry.pid) ]]; then
        "$SRC/deploy/local/down" >>"$TC_VAR/down.log" 2>&1 || true
    fi
    if ((T_FAILED > 0)) && [[ -n $TC_VAR ]]; then
        local f
        for f in "$TC_VAR"/log/*.log; do
            [[ -f $f ]] || continue
            echo "--- $f (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    if [[ -n $TC_VAR ]]; then
        if [[ ${BICKY_TEST_KEEP:-0} == 1 ]]; then
            echo "kept $TC_VAR"
        else
            rm -rf "$TC_VAR"
        fi
    fi
    exit "$rc"
}

# tc_start NAME: starts a cluster of 2 nodes (BICKY_NODES; BICKY_REGISTRIES,
# BICKY_GATEWAYS as deploy/local/up) from $BICKY_BIN in a fresh
# BICKY_VAR and sources its env (BICKY_URL, BICKY_TOKEN, BICKY_DATABASE_URL,
# BICKY_REGISTRY). Sets CTL. Exits the script when up fails.
tc_start() {
    TC_NAME=$1
    : "${BICKY_BIN:?BICKY_BIN must name the directory of the binaries under test}"
    BICKY_BIN=$(cd "$BICKY_BIN" && pwd)
    CTL=$BICKY_BIN/bickyctl
    TC_VAR=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/$TC_NAME.XXXXXX")
    trap tc_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local zmq http hr=${BICKY_TEST_HTTP_PORT_RANGE:-${BICKY_TEST_PORT_RANGE:-20000-32000}}
    local ng=${BICKY_GATEWAYS:-1} # gateway k listens on http + k - 1 (deploy/local/up)
    zmq=$(bk_free_port_block 50) || bk_die "no 50 free consecutive ports"
    http=$(bk_free_port_block "$ng" "${hr%-*}" "${hr#*-}") || bk_die "no free port"
    while ((http + ng > zmq && http < zmq + 50)); do
        http=$(bk_free_port_block "$ng" "${hr%-*}" "${hr#*-}")
    done
    export BICKY_VAR=$TC_VAR BICKY_HTTP_PORT=$http BICKY_ZMQ_BASE=$zmq BICKY_BIN
    export BICKY_NODES=${BICKY_NODES:-2} BICKY_SKIP_BUILD=1 BICKY_SKIP_INSTALL=1
    # Postgres sized as up sizes it, for a 1 GB machine: many clusters run at once.
    export BICKY_PG_MEMORY_MB=${BICKY_PG_MEMORY_MB:-1024}
    unset BICKY_PG_PORT BICKY_DATABASE_URL BICKY_REGISTRY BICKY_URL BICKY_TOKEN BICKY_CERT BICKY_ADMIN_CERT BICKY_KEYS
    TC_T0=$(bk_now_ms)
    echo "$TC_NAME: BICKY_VAR=$TC_VAR http=$http zmq=$zmq bin=$BICKY_BIN"
    if ! "$SRC/deploy/local/up" -d >"$TC_VAR/up.log" 2>&1; then
        cat "$TC_VAR/up.log"
        t_fail "deploy/local/up -d"
        t_finish "$TC_NAME"
        exit 1
    fi
    # shellcheck disable=SC1091
    source "$TC_VAR/env"
    TC_TOKEN=$BICKY_TOKEN
    if ! bk_wait_for 15 bk_http_ok "$BICKY_URL/ready"; then
        t_fail "/ready is 200 within 15 s"
        exit 1
    fi
    t_pass "cluster up in $(($(bk_now_ms) - TC_T0)) ms"
}

# tc_finish NAME: gapless check, down, every process exited 0 on SIGTERM, no
# sanitizer report in any log, the tally. Returns the script's status.
tc_finish() {
    local name=$1 bad
    t_check "gapless seqs in Postgres at the end" tc_gapless
    if "$SRC/deploy/local/down" >"$TC_VAR/down.log" 2>&1; then
        t_pass "deploy/local/down"
    else
        cat "$TC_VAR/down.log"
        t_fail "deploy/local/down"
    fi
    bad=$(grep -E 'supervisor: stopped ' "$TC_VAR/log/supervisor.log" | grep -v '(status 0)')
    t_check "every process exited 0 on SIGTERM" test -z "$bad"
    [[ -z $bad ]] || echo "$bad"
    t_check "no sanitizer report in any log" t_no_sanitizer_reports "$TC_VAR"/log/*.log
    echo "$name: took $(($(bk_now_ms) - TC_T0)) ms"
    t_finish "$name"
}

# ---------------------------------------------------------------- HTTP

# tc_req METHOD PATH [BODY [curl args...]]: one request with the current
# token (TC_TOKEN; "-" sends none). Sets TC_CODE, TC_BODY, TC_HDRS. A
# non-empty BODY is sent as JSON (unless the args set Content-Type again);
# "@FILE" sends the file (for bodies too large for an argument).
tc_req() {
    local method=$1 path=$2 body=${3:-}
    shift 2
    (($#)) && shift
    local args=(-s -m "${TC_TIMEOUT:-10}" -o "$TC_VAR/body" -D "$TC_VAR/hdrs" -w '%{http_code}')
    if [[ $method == HEAD ]]; then
        args+=(--head)
    else
        args+=(-X "$method")
    fi
    if [[ $TC_TOKEN != - ]]; then
        args+=(-H "Authorization: Bearer $TC_TOKEN")
    fi
    if [[ -n $body ]]; then
        # A Content-Type among the extra args replaces the JSON one.
        [[ " ${*,,} " == *" content-type:"* ]] || args+=(-H "$TC_JSON")
        args+=(--data-binary "$body")
    fi
    TC_CODE=$(curl "${args[@]}" "$@" "$BICKY_URL$path" 2>/dev/null) || true
    TC_BODY=$(cat "$TC_VAR/body" 2>/dev/null)
    TC_HDRS=$(tr -d '\r' <"$TC_VAR/hdrs" 2>/dev/null)
}

# tc_header NAME: value of a header of the last response (case-insensitive).
tc_header() {
    awk -v n="${1,,}" -F': ' \
        'tolower($1) == n { sub(/^[^:]*: /, ""); print; exit }' <<<"$TC_HDRS"
}

# tc_jq FILTER: jq -r on the last body.
tc_jq() { jq -r "$1" <<<"$TC_BODY" 2>/dev/null; }

# ---------------------------------------------------------------- conversations

# tc_conv [BODY]: creates a conversation, prints its id (nothing on failure).
tc_conv() {
    local body=${1:-'{}'}
    tc_req POST /api/conversations "$body"
    [[ $TC_CODE == 201 ]] && tc_jq .id
}

# tc_post CONV CONTENT: posts a user message, prints the 202 body's message id.
tc_post() {
    local body
    body=$(jq -cn --arg c "$2" '{content: $c}')
    tc_req POST "/api/conversations/$1/messages" "$body"
    [[ $TC_CODE == 202 ]] && tc_jq .message.id
}

# tc_post_keyed PATH BODY KEY: POST with an Idempotency-Key, sent again while
# the answer is 504 (the gateway's 2 s timeout ran out on a busy machine:
# the write may still happen, and the same key then returns its first
# answer) or 503 (the mailbox is full for now), for up to 120 s. Leaves
# TC_CODE / TC_BODY of the last answer.
tc_post_keyed() {
    local deadline=$(($(bk_now_ms) + 120000))
    while :; do
        tc_req POST "$1" "$2" -H "Idempotency-Key: $3"
        if [[ $TC_CODE != 50[34] ]] || (($(bk_now_ms) >= deadline)); then
            return 0
        fi
        sleep 0.5
    done
}

# tc_status CONV: the conversation's stored status (from Postgres).
tc_status() { tc_sql "select status from conversations where id = '$1'"; }

# tc_wait_status CONV STATUS [TIMEOUT_S]
tc_wait_status() { bk_wait_for "${3:-10}" eval "[[ \$(tc_status $1) == $2 ]]"; }

# tc_owner CONV: the node that owns the conversation on the current ring.
tc_owner() { "$CTL" locate "$1" --json 2>/dev/null | jq -r .node_id; }

# tc_messages CONV: "seq role status content" lines, oldest first (Postgres).
tc_messages() {
    tc_sql "select seq, role, status, content from messages where conversation_id = '$1' order by seq" |
        tr '|' ' '
}

# tc_events CONV: "seq type" lines, oldest first (Postgres).
tc_events() {
    tc_sql "select seq, type from events where conversation_id = '$1' order by seq" | tr '|' ' '
}

# tc_team_token TEAM: creates a token for TEAM (created when new), prints it.
tc_team_token() {
    "$CTL" --database-url "$BICKY_DATABASE_URL" --json token create --team "$1" 2>/dev/null |
        jq -r .token
}

# ---------------------------------------------------------------- Postgres

# tc_sql SQL: runs SQL on the cluster's database, unaligned, tuples only.
tc_sql() { psql "$BICKY_DATABASE_URL" -X -q -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# tc_counts: row counts of every table a write touches, as one line.
tc_counts() {
    tc_sql "select (select count(*) from conversations) || ' ' || (select count(*) from messages)
        || ' ' || (select count(*) from events) || ' ' || (select count(*) from idempotency_keys)
        || ' ' || (select coalesce(max(updated_at)::text, '-') from conversations)"
}

# tc_gapless: per conversation, message and event seqs are 1..n without gap
# or duplicate, events ordered by id have consecutive seqs, and the
# conversation's counters match its rows. Prints the offenders; 0 when none.
tc_gapless() {
    local out
    out=$(tc_sql "
        with m as (select conversation_id c, count(*) n, count(distinct seq) d, min(seq) lo,
                          max(seq) hi from messages group by 1),
             e as (select conversation_id c, count(*) n, count(distinct seq) d, min(seq) lo,
                          max(seq) hi from events where conversation_id is not null group by 1)
        select 'messages ' || c from m where n <> d or lo <> 1 or hi <> n
        union all select 'events ' || c from e where n <> d or lo <> 1 or hi <> n
        union all select 'event seq null ' || id from events
            where conversation_id is not null and seq is null
        union all select 'id order ' || c from (select conversation_id c,
            seq - lag(seq) over (partition by conversation_id order by id) d
            from events where conversation_id is not null) x where d <> 1
        union all select 'counters ' || cv.id from conversations cv
            left join m on m.c = cv.id left join e on e.c = cv.id
            where cv.last_msg_seq <> coalesce(m.hi, 0) or cv.last_event_seq <> coalesce(e.hi, 0)
               or cv.message_count <> coalesce(m.n, 0)")
    if [[ -n $out ]]; then
        echo "$out" | head -n 20
        return 1
    fi
    [[ $(tc_sql "select count(*) from conversations") -gt 0 ]]
}

# ---------------------------------------------------------------- steady posts

# tc_post_loop FILE CONV...: posts to the conversations in turn until
# $TC_VAR/stop exists (each answer within 15 s, else 000), appending one
# line per post to FILE: "start_ms status message_id retry_after seconds"
# (retry_after "-" when the answer had none). Not a hammer: 50 ms of rest
# after an answer that is not 202. Run it in the background.
tc_post_loop() {
    local file=$1 i=0 c out t me=$BASHPID
    shift
    while [[ ! -e $TC_VAR/stop ]]; do
        c=${*:$((i % $# + 1)):1}
        i=$((i + 1))
        t=$(bk_now_ms)
        out=$(curl -s -m 15 -D "$TC_VAR/h.$me" -o "$TC_VAR/b.$me" \
            -w '%{http_code} %{time_total}' -H "Authorization: Bearer $TC_TOKEN" \
            -H "$TC_JSON" --data-binary "{\"content\":\"post $i\"}" \
            "$BICKY_URL/api/conversations/$c/messages")
        echo "$t ${out%% *} $(jq -r '.message.id // "-"' "$TC_VAR/b.$me" 2>/dev/null)" \
            "$(tr -d '\r' <"$TC_VAR/h.$me" | awk -F': ' 'tolower($1) == "retry-after" { r = $2 } END { print (r == "" ? "-" : r) }')" \
            "${out#* }" >>"$file"
        [[ ${out%% *} == 202 ]] || sleep 0.05
    done
}

# tc_posts_start N CLIENTS: N new conversations (TC_POST_CONVS) and CLIENTS
# tc_post_loops on them in the background, writing $TC_VAR/posts.<k>
# (pids in TC_POST_LOADS). Returns 1 when a conversation was not created.
TC_POST_LOADS=()
tc_posts_start() {
    local k c
    TC_POST_CONVS=()
    for ((k = 0; k < $1; k++)); do
        c=$(tc_conv '{}')
        [[ -n $c ]] || return 1
        TC_POST_CONVS+=("$c")
    done
    rm -f "$TC_VAR/stop"
    for ((k = 1; k <= $2; k++)); do
        tc_post_loop "$TC_VAR/posts.$k" "${TC_POST_CONVS[@]}" &
        TC_POST_LOADS+=($!)
    done
}

# tc_posts_stop: stops the loops of tc_posts_start and waits for them.
tc_posts_stop() {
    touch "$TC_VAR/stop"
    ((${#TC_POST_LOADS[@]} == 0)) || wait "${TC_POST_LOADS[@]}" 2>/dev/null
    TC_POST_LOADS=()
}

# tc_posts: every line the loops wrote so far.
tc_posts() { cat "$TC_VAR"/posts.* 2>/dev/null; }

# ---------------------------------------------------------------- SSE

# tc_sse PATH [sse_probe args...]: reads an SSE stream of the cluster with
# the current token (tests/tools/sse_probe.py); JSON lines on stdout.
tc_sse() {
    local path=$1
    shift
    python3 "$SRC/tests/tools/sse_probe.py" "$BICKY_URL$path" --token "$TC_TOKEN" "$@"
}

# ---------------------------------------------------------------- processes

# tc_pid NAME: pid of registry / n1 / n2 / gateway.
tc_pid() { bk_read_pid "$TC_VAR/run/$1.pid"; }

# tc_rss PID: resident set size in KiB.
tc_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# tc_node_state NODE: alive / dead / draining as bickyctl reports it.
tc_node_state() {
    "$CTL" --json nodes 2>/dev/null | jq -r --arg id "$1" \
        '(if type == "array" then . else (.nodes // .data // []) end) | .[]
         | select(.id == $id or .node_id == $id) | .state' 2>/dev/null
}

tc_node_is() { [[ $(tc_node_state "$1") == "$2" ]]; }

# tc_metric NAME_WITH_LABELS: value of a gateway metric (0 when absent).
tc_metric() {
    curl -s -m 5 "$BICKY_URL/metrics" 2>/dev/null | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
