#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_db_partition.sh — a node cut off from Postgres without a word (issue
# 11): a third node, n3, reaches the database through
# tests/fixtures/tcp_relay.py over TCP. Under load (posts to conversations
# n3 owns), the relay goes silent (bytes swallowed, no RST, no FIN): n3
# declares the connection lost within a few seconds (its answer deadline,
# --db-deadline-ms 2000, logged `connection lost: no answer from the
# database within 2000 ms`), the posts get 503 with Retry-After instead of
# hanging, and once the relay forwards again n3 reconnects and posts get
# 202. Every message acknowledged with 202 is stored. Env: see
# tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=db_partition
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start db_partition

pg_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$BICKY_DATABASE_URL")
python3 "$SRC/tests/fixtures/tcp_relay.py" --target "127.0.0.1:$pg_port" \
    --port-file "$TC_VAR/relay.port" >/dev/null 2>"$TC_VAR/relay.log" &
RELAY=$!
N3=""
trap 'rc=$?; [[ -n $N3 ]] && kill -TERM "$N3" 2>/dev/null; kill -TERM "$RELAY" 2>/dev/null;
      wait 2>/dev/null; (exit $rc); tc_cleanup' EXIT
t_check "the relay listens" bk_wait_for 10 test -s "$TC_VAR/relay.port"
rport=$(cat "$TC_VAR/relay.port")
p=$((BICKY_ZMQ_BASE + 40))
# n3 gets its own node key (made here), or --insecure like the cluster.
if [[ ${BICKY_INSECURE:-0} == 1 ]]; then
    N3_SEC=(--insecure)
else
    [[ -e $BICKY_KEYS/secret/node-n3.key ]] || "$CTL" --keys "$BICKY_KEYS" keys add node n3 >/dev/null
    N3_SEC=(--cert "$BICKY_KEYS/secret/node-n3.key" --keys "$BICKY_KEYS")
fi
"$BICKY_BIN/bicky-node" --id n3 "${N3_SEC[@]}" --registry "$BICKY_REGISTRY" \
    --bind "tcp://127.0.0.1:$p" --pub-bind "tcp://127.0.0.1:$((p + 1))" \
    --database-url "host=127.0.0.1 port=$rport user=postgres dbname=bicky" \
    --db-deadline-ms 2000 --work-dir "$TC_VAR/n3work" >"$TC_VAR/n3.log" 2>&1 &
N3=$!
t_check "n3 joins the ring" bk_wait_for 20 tc_node_is n3 alive

# Conversations owned by n3 (created through the gateway, so stored by n3 itself).
convs=()
for _ in $(seq 1 60); do
    c=$(tc_conv '{}')
    [[ -n $c && $(tc_owner "$c") == n3 ]] && convs+=("$c")
    ((${#convs[@]} >= 4)) && break
done
t_check "four conversations on n3" test "${#convs[@]}" -ge 4

# post_loop FILE: posts to n3's conversations until $TC_VAR/stop exists; one line per
# post: "status message_id retry_after ms".
post_loop() {
    local i=0 c out code me=$BASHPID
    while [[ ! -e $TC_VAR/stop ]]; do
        c=${convs[i % ${#convs[@]}]}
        i=$((i + 1))
        out=$(curl -s -m 15 -D "$TC_VAR/h.$me" -o "$TC_VAR/b.$me" \
            -w '%{http_code} %{time_total}' -H "Authorization: Bearer $TC_TOKEN" \
            -H "$TC_JSON" --data-binary "{\"content\":\"post $i\"}" \
            "$BICKY_URL/api/conversations/$c/messages")
        code=${out%% *}
        echo "$code $(jq -r '.message.id // "-"' "$TC_VAR/b.$me" 2>/dev/null)" \
            "$(tr -d '\r' <"$TC_VAR/h.$me" | awk -F': ' 'tolower($1) == "retry-after" { print $2 }')" \
            "${out#* }" >>"$1"
    done
}
rm -f "$TC_VAR/stop"
post_loop "$TC_VAR/posts" &
LOAD=$!
t_check "posts are accepted (202) before the partition" \
    bk_wait_for 20 eval '(( $(grep -c "^202 " "$TC_VAR/posts") >= 10 ))'

before=$(grep -c "^" "$TC_VAR/posts")
kill -USR1 "$RELAY"
t0=$(bk_now_ms)
t_check "n3 declares the connection lost within 10 s" \
    bk_wait_for 10 grep -q "connection lost: no answer from the database within 2000 ms" \
    "$TC_VAR/n3.log"
echo "detected after $(($(bk_now_ms) - t0)) ms"
t_check "posts get 503 with Retry-After during the partition" \
    bk_wait_for 20 eval '[[ -n $(tail -n +$((before + 1)) "$TC_VAR/posts" |
        awk "\$1 == 503 && \$3 != \"\"") ]]'
t_check "no post hangs: each answered within 15 s (curl -m 15 gives 000)" \
    eval '! grep -q "^000 " "$TC_VAR/posts"'

kill -USR2 "$RELAY"
mark=$(grep -c "^" "$TC_VAR/posts")
t_check "after the relay forwards again, posts are accepted again" \
    bk_wait_for 30 eval '(( $(tail -n +$((mark + 1)) "$TC_VAR/posts" | grep -c "^202 ") >= 5 ))'
touch "$TC_VAR/stop"
wait "$LOAD"
echo "posts: $(awk '{ print $1 }' "$TC_VAR/posts" | sort | uniq -c | tr '\n' ' ')"
t_check "only 202 and 503 were answered" \
    eval '[[ -z $(awk "\$1 != 202 && \$1 != 503" "$TC_VAR/posts") ]]'
ids=$(awk '$1 == 202 { printf "%s'"'"'%s'"'"'", (n++ ? "," : ""), $2 }' "$TC_VAR/posts")
acked=$(grep -c "^202 " "$TC_VAR/posts")
t_check "every acknowledged message is stored ($acked)" \
    test "$(tc_sql "select count(*) from messages where id in ($ids)")" = "$acked"

kill -TERM "$N3"
wait "$N3"
t_check "n3 exits 0 on SIGTERM" test $? = 0
N3=""
t_check "no sanitizer report in n3's log" t_no_sanitizer_reports "$TC_VAR/n3.log"
tc_finish db_partition
