#!/usr/bin/env bash
# test_gw_ws.sh — GET /socket/websocket: Phoenix Channels v2 over WebSocket
# (gateway/gw_ws.c, gw_phx.c), driven by the real `phoenix` npm client (with
# the `ws` package as its transport, both pinned and installed by this test
# under the build tree) and by a raw client for what phoenix never sends:
#  - join a conversation, a turn's events pushed in order with their type as
#    event name (message.created, turn.started, message.delta…,
#    message.completed, turn.completed), deltas concatenating to the stored
#    reply; message:create answered ok with the message (stored in
#    Postgres), an invalid one answered with the API's error object, an
#    unknown event answered with an error and the socket kept; leave → ok,
#    then phx_close; conversation:cancel during a turn (ok, turn.cancelled)
#    and with nothing running (conflict); permission:approve of an unknown
#    request (not_found) and permission:deny without an id (invalid_field);
#  - a join with last_event_id 0 replays the stored log, then live events;
#    cut mid-turn and rejoined with the last id received: every stored event
#    of the conversation exactly once, in order (checked against Postgres);
#  - the "team" topic joined with last_event_id: the team's stored events
#    after it (another conversation's turn), then live ones of every
#    conversation of the team, each stored event exactly once, in id order
#    (checked against Postgres); message:create on it is an error reply;
#  - another team's conversation → {"reason":"unauthorized"}; an unknown
#    topic → {"reason":"unmatched topic"}; a bad token → refused at connect
#    (HTTP 401 before any upgrade);
#  - abuse, each a clean close code or an error reply, the gateway unharmed:
#    an unmasked frame (1002), a 2 MiB frame (1009), invalid UTF-8 (1007), a
#    binary frame (1003), garbage right after the handshake (1002), the
#    handshake one byte at a time (served), a message in 3 fragments
#    (served), a ping (pong), frames and a fragmented message cut byte by
#    byte after the socket came to rest (its framing state is freed at rest
#    and must not be mid-frame: served), 10,000 joins on one socket (error
#    replies, the socket still answers its heartbeat);
#  - 64 sockets held from one address: the next connection is refused
#    (--max-connections-per-ip 64), served again once they closed;
#  - a stalled reader on the team topic while ~24 MB of events flow: cut by
#    the gateway, whose memory stays bounded;
#  - the gateway is the same process at the end, and /health answers.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=gw_ws
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

# shellcheck source=tests/lib/phoenix.sh
source "$SRC/tests/lib/phoenix.sh"
tp_install

# A turn takes about 10 × 150 ms: long enough to be cancelled over the socket.
export BICKY_ECHO_DELAY_MS=150
# Low enough for the counted-connections check below to reach it.
export BICKY_MAX_CONNECTIONS_PER_IP=64
# ASan keeps freed blocks in a quarantine (256 MB by default), which shows as
# RSS growth under large events; a 1 MB one lets the stalled-reader check
# below see what the gateway itself holds.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1
tc_start gw_ws
gw=$(tc_pid gateway)
PHX=$TP_CLIENT
RAW=$SRC/tests/tools/ws_raw.py
step() { jq -c "select(.step == \"$1\")" "$2" | head -1; }

# ---------------------------------------------------------------- a turn over phoenix

c=$(tc_conv)
t_check "a conversation to work with" test -n "$c"
node "$PHX" turn "$BICKY_HTTP_PORT" "$TC_TOKEN" "$c" >"$TC_VAR/turn" 2>&1
t_check "the phoenix client ran the turn to its end" test "$(tail -1 "$TC_VAR/turn" | jq -r .step)" = socket_close
t_check "joined ok ($(step joined "$TC_VAR/turn"))" test -n "$(step joined "$TC_VAR/turn")"
events=$(jq -r 'select(.step == "event") | .event' "$TC_VAR/turn" | uniq | paste -sd' ')
t_check "events pushed in order ($events)" \
    test "$events" = "message.created turn.started message.delta message.completed turn.completed"
deltas=$(jq -r 'select(.event == "message.delta") | .text' "$TC_VAR/turn" | paste -sd '')
reply=$(jq -r 'select(.event == "message.completed") | .content' "$TC_VAR/turn")
t_check "deltas concatenate to the reply ($deltas)" test "$deltas" = "$reply" -a "$reply" = "echo: hello over phoenix"
mid=$(step created "$TC_VAR/turn" | jq -r .message.id)
t_check "message:create answered ok with the message ($mid)" \
    test "$(tc_sql "select content from messages where id = '$mid'")" = "hello over phoenix"
ids=$(jq -r 'select(.step == "event" and .id != null) | .id' "$TC_VAR/turn" | paste -sd' ')
last=$(tc_sql "select string_agg(id::text, ' ' order by id) from events where conversation_id = '$c' and id > (select min(id) from events where conversation_id = '$c' and type = 'message.created' and action->'message'->>'id' = '$mid')")
first=$(tc_sql "select id from events where conversation_id = '$c' and type = 'message.created' and action->'message'->>'id' = '$mid'")
t_check "every stored event of the turn pushed once, in order ($ids)" test "$ids" = "$first $last"
t_check "an invalid message:create: the API's error object ($(step create_invalid "$TC_VAR/turn"))" \
    test "$(step create_invalid "$TC_VAR/turn" | jq -r '.reply.code + " " + .reply.field')" = "invalid_field content"
t_check "an unknown event: error reply, socket kept" \
    test "$(step unknown_event "$TC_VAR/turn" | jq -r .reply.reason)" = "unknown event"
t_check "leave: ok, then phx_close" \
    test -n "$(step left "$TC_VAR/turn")" -a -n "$(step channel_closed "$TC_VAR/turn")"

# ---------------------------------------------------------------- resume

# The conversation of the first turn has a stored log; a join with
# last_event_id 0 replays it, a cut mid-turn and a rejoin with the last id
# received gets the rest: every stored event exactly once, in order.
node "$PHX" resume "$BICKY_HTTP_PORT" "$TC_TOKEN" "$c" >"$TC_VAR/resume" 2>&1
got=$(jq -r 'select(.step == "stored") | .id' "$TC_VAR/resume" | paste -sd' ')
want=$(tc_sql "select string_agg(id::text, ' ' order by id) from events where conversation_id = '$c'")
t_check "cut and rejoin with last_event_id: every stored event once, in order" test "$got" = "$want"
t_check "both sockets took part ($(jq -r 'select(.step == "stored") | .socket' "$TC_VAR/resume" | uniq -c | paste -sd' '))" \
    test "$(jq -r 'select(.step == "stored") | .socket' "$TC_VAR/resume" | uniq | paste -sd' ')" = "a b"
t_check "the rejoin ended with the turn's turn.completed" \
    test "$(jq -r 'select(.step == "stored") | .event' "$TC_VAR/resume" | tail -1)" = turn.completed

# ---------------------------------------------------------------- the team topic

# Another conversation's turn lands in the store first; the team channel,
# joined with the last id before it, replays it and then gets the live turn
# of $c: exactly the team's stored events after that id, in order.
team_id=$(tc_sql "select team_id from conversations where id = '$c'")
before=$(tc_sql "select coalesce(max(id), 0) from events where team_id = '$team_id'")
k2=$(tc_conv)
tc_post "$k2" "stored before the join" >/dev/null
t_check "the other conversation's turn completed" tc_wait_status "$k2" idle 30
node "$PHX" team "$BICKY_HTTP_PORT" "$TC_TOKEN" "$c" "$before" >"$TC_VAR/team" 2>&1
got=$(jq -r 'select(.step == "team_event" and .id != null) | .id' "$TC_VAR/team" | paste -sd' ')
want=$(tc_sql "select string_agg(id::text, ' ' order by id) from events where team_id = '$team_id' and id > $before")
t_check "team topic: the team's stored events after last_event_id, once, in order" \
    test -n "$got" -a "$got" = "$want"
convs=$(jq -r 'select(.step == "team_event" and .id != null) | .conversation' "$TC_VAR/team" | sort -u | paste -sd' ')
t_check "team topic: events of both conversations ($convs)" \
    test "$convs" = "$(printf '%s\n' "$c" "$k2" | sort | paste -sd' ')"
t_check "team topic: live deltas pushed too" \
    test -n "$(jq -r 'select(.step == "team_event" and .event == "message.delta")' "$TC_VAR/team")"
t_check "team topic: message:create is an error reply ($(step team_create "$TC_VAR/team" | jq -c .reply))" \
    test "$(step team_create "$TC_VAR/team" | jq -r .reply.reason)" = "needs a conversation topic"

t_check "team topic: permission:approve of an unknown request: not_found" \
    test "$(step team_approve_unknown "$TC_VAR/team" | jq -r .reply.code)" = not_found

# ---------------------------------------------------------------- cancel, permissions

k=$(tc_conv)
node "$PHX" cancel "$BICKY_HTTP_PORT" "$TC_TOKEN" "$k" >"$TC_VAR/cancel" 2>&1
t_check "conversation:cancel during a turn: ok ($(step cancelled "$TC_VAR/cancel"))" \
    test -n "$(step cancelled "$TC_VAR/cancel")"
t_check "then turn.cancelled is pushed" test -n "$(step event "$TC_VAR/cancel")"
t_check "conversation:cancel with nothing running: conflict ($(step cancel_idle "$TC_VAR/cancel" | jq -r .reply.code))" \
    test "$(step cancel_idle "$TC_VAR/cancel" | jq -r .reply.code)" = conflict
t_check "permission:approve of an unknown request: not_found" \
    test "$(step approve_unknown "$TC_VAR/cancel" | jq -r .reply.code)" = not_found
t_check "permission:deny without an id: invalid_field id" \
    test "$(step deny_without_id "$TC_VAR/cancel" | jq -r '.reply.code + " " + .reply.field')" = "invalid_field id"

# ---------------------------------------------------------------- refusals

other=$(tc_team_token "ws-other-$$")
t_check "a token of another team" test -n "$other"
node "$PHX" refused "$BICKY_HTTP_PORT" "$other" "$c" >"$TC_VAR/refused" 2>&1
t_check "another team's conversation: unauthorized ($(step foreign_refused "$TC_VAR/refused"))" \
    test "$(step foreign_refused "$TC_VAR/refused" | jq -r .reply.reason)" = unauthorized
t_check "an unknown topic: unmatched topic" \
    test "$(step odd_refused "$TC_VAR/refused" | jq -r .reply.reason)" = "unmatched topic"
node "$PHX" badtoken "$BICKY_HTTP_PORT" "bk_not_a_token" >"$TC_VAR/badtoken" 2>&1
t_check "a bad token: refused at connect, never opened" \
    bash -c "grep -q refused_at_connect '$TC_VAR/badtoken' && ! grep -q opened '$TC_VAR/badtoken'"
t_check "a bad token: HTTP 401 before the upgrade ($(python3 "$RAW" "$BICKY_HTTP_PORT" bk_nope unmasked))" \
    test "$(python3 "$RAW" "$BICKY_HTTP_PORT" bk_nope unmasked)" = "status 401"
TC_TOKEN=$TC_TOKEN tc_req GET "/socket/websocket?vsn=2.0.0"
t_check "no upgrade headers: 400 JSON ($TC_CODE $(tc_jq .code))" test "$TC_CODE" = 400

# ---------------------------------------------------------------- abuse

raw() { timeout 90 python3 "$RAW" "$BICKY_HTTP_PORT" "$TC_TOKEN" "$1" 2>&1 | tail -1; }
for case in "unmasked:close 1002" "oversized:close 1009" "badutf8:close 1007" \
    "binary:close 1003" "garbage:close 1002" "trickle:reply ok" "fragments:reply ok" "ping:pong"; do
    got=$(raw "${case%%:*}")
    t_check "${case%%:*}: ${case#*:} ($got)" test "$got" = "${case#*:}"
done
got=$(raw pieces)
t_check "frames and a fragmented message cut across reads after a rest: 3 replies, the pong ($got)" \
    test "$got" = "replies 3 pong 1"
got=$(raw joins)
t_check "10,000 joins on one socket: error replies, then the heartbeat is ok ($got)" \
    eval '[[ $got =~ ^reply\ ok\ errors\ [0-9]+$ && ${got##* } -gt 0 ]]'

# ---------------------------------------------------------------- counted connections

# An upgraded socket leaves libmicrohttpd (gw_ws_upgrade.c) but still counts
# against --max-connections-per-ip: with 64 held, the next connection from
# the address is refused; once they close, it is served again.
rm -f "$TC_VAR/held" "$TC_VAR/release"
python3 "$RAW" "$BICKY_HTTP_PORT" "$TC_TOKEN" hold 64 "$TC_VAR/held" "$TC_VAR/release" \
    >"$TC_VAR/hold.out" 2>&1 &
holder=$!
t_check "64 WebSockets open and served" bk_wait_for 60 test -e "$TC_VAR/held"
t_check "the 65th connection of the address is refused (--max-connections-per-ip 64)" \
    bash -c "! curl -s -m 5 -o /dev/null '$BICKY_URL/health'"
touch "$TC_VAR/release"
wait "$holder"
t_check "the holder ended ($(cat "$TC_VAR/hold.out"))" test "$(cat "$TC_VAR/hold.out")" = "held 64"
t_check "once they closed, the address is served again" bk_wait_for 30 bk_http_ok "$BICKY_URL/health"

# ---------------------------------------------------------------- a stalled reader

# A socket on the team topic that reads nothing while ~24 MB of events flow:
# the gateway cuts it (output over its cap) and its memory stays bounded.
rss0=$(tc_rss "$gw")
slow0=$(tc_metric bicky_gateway_ws_slow_closes_total)
rm -f "$TC_VAR/ready" "$TC_VAR/unstall"
python3 "$RAW" "$BICKY_HTTP_PORT" "$TC_TOKEN" stall "$TC_VAR/ready" "$TC_VAR/unstall" \
    >"$TC_VAR/stall.out" 2>&1 &
staller=$!
t_check "the stalled socket joined the team topic" bk_wait_for 60 test -e "$TC_VAR/ready"
f=$(tc_conv)
N=40
codes=""
for i in $(seq 1 $N); do
    # One word of 200 KB (too long for an argument): one delta per turn.
    python3 -c "import json, sys; print(json.dumps({'content': 'w' * 200000 + sys.argv[1]}))" \
        "$i" >"$TC_VAR/big.json"
    tc_post_keyed "/api/conversations/$f/messages" "@$TC_VAR/big.json" "big-$i-$f"
    codes+=" $TC_CODE"
done
t_check "the posts were accepted ($codes)" test "${codes// 202/}" = ""
turns() { tc_sql "select count(*) from events where conversation_id = '$f' and type = 'turn.completed'"; }
t_check "$N posts of 200 KB (about 24 MB of team events): every turn completed" \
    bk_wait_for 300 eval '[[ $(turns) == "$N" ]]'
rss1=$(tc_rss "$gw")
t_check "the gateway closed the slow socket (counted)" \
    bk_wait_for 60 eval "((\$(tc_metric bicky_gateway_ws_slow_closes_total) > $slow0))"
touch "$TC_VAR/unstall"
wait "$staller"
got=$(cat "$TC_VAR/stall.out")
t_check "... the stalled client's socket ended early ($got of ~24 MB)" \
    eval "[[ '$got' =~ ^(eof|reset)\ ([0-9]+)$ ]] && ((\${BASH_REMATCH[2]} < 4000000))"
t_check "gateway memory stayed bounded (RSS ${rss0} KiB → ${rss1} KiB: < +8 MiB for ~24 MB unsent)" \
    test $((rss1 - rss0)) -lt 8192

# ---------------------------------------------------------------- unharmed

t_check "/health still 200" bk_http_ok "$BICKY_URL/health"
t_check "the gateway did not restart (pid $gw)" test "$(tc_pid gateway)" = "$gw"
node "$PHX" turn "$BICKY_HTTP_PORT" "$TC_TOKEN" "$c" >"$TC_VAR/turn2" 2>&1
t_check "a second turn over phoenix after the abuse" test -n "$(step created "$TC_VAR/turn2")"
tc_finish gw_ws
