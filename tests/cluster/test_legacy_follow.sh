#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_legacy_follow.sh — `bickyctl import --follow URL` (docs/bickyctl.md,
# "import --follow") against a fake of the old server
# (tests/tools/fake_legacy_server.py: its read routes, its SSE and its
# bearer token): the initial pass, live changes (new interactions and
# messages, a message's status and content, an interaction's metadata), a
# stream dropped and held down while more changes happen (a malformed record
# among them: reported and skipped; an interaction deleted: archived in
# Bicky, with its reversible event, and no other conversation of the team
# touched),
# then Bicky's own legacy GET /interactions/:id answers exactly what the
# fake does, and the team's live conversations are exactly the fake's;
# SIGTERM stops the follower with exit 0. Bad inputs: an unreachable URL, a
# wrong token, a missing --team, an unknown team. The haproxy example that
# splits legacy reads from writes passes `haproxy -c` and, pointed at this
# cluster and the fake, sends reads to Bicky and writes to the fake.
# Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=legacy_follow
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start legacy_follow
W=$TC_VAR/work
mkdir -p "$W"
FAKE_PID=""
FOLLOW_PID=""
HAPROXY_PID=""
stop_mine() {
    [[ -n $HAPROXY_PID ]] && kill "$HAPROXY_PID" 2>/dev/null && wait "$HAPROXY_PID" 2>/dev/null
    [[ -n $FOLLOW_PID ]] && kill "$FOLLOW_PID" 2>/dev/null && wait "$FOLLOW_PID" 2>/dev/null
    [[ -n $FAKE_PID ]] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
    return 0
}
trap 'rc=$?; stop_mine; (exit $rc); tc_cleanup' EXIT

OLD_SECRET=old-server-secret
MIRROR_TOKEN=$(tc_team_token mirror)
python3 "$SRC/tests/tools/fake_legacy_server.py" --port-file "$W/fake.port" \
    --token "$OLD_SECRET" --keepalive 1 >"$W/fake.log" 2>&1 &
FAKE_PID=$!
bk_wait_for 20 test -s "$W/fake.port" || bk_die "the fake old server did not start"
FAKE=http://127.0.0.1:$(cat "$W/fake.port")

# fake PATH JSON: one control request to the fake.
fake() {
    local code
    code=$(curl -s -m 5 -o "$W/fake.body" -w '%{http_code}' -X POST -H "$TC_JSON" \
        --data-binary "$2" "$FAKE/_ctl/$1")
    [[ $code == 200 ]] || { echo "fake $1 $2: $code $(cat "$W/fake.body")" >&2; return 1; }
}
uid() { printf '%08x-0000-4000-8000-%012x' "$1" "$2"; }
T0=1735689600 # 2025-01-01T00:00:00Z
ts() { date -u -d "@$((T0 + $1))" +%Y-%m-%dT%H:%M:%S.000Z; }
add_inter() { fake interaction "{\"id\":\"$(uid "$1" 0)\",\"createdAt\":\"$(ts "$1")\",\"metadata\":{\"n\":$1}}"; }
# add_msg I J ROLE STATUS: message J of interaction I.
add_msg() {
    fake message "{\"id\":\"$(uid "$1" "$2")\",\"interactionId\":\"$(uid "$1" 0)\",\"role\":\"$3\",
        \"content\":\"message $2 of $1, with a tab\\tand é\",\"timestamp\":\"$(ts $(($1 + $2)))\",\"status\":\"$4\"}"
}
set_msg() { fake message_update "{\"interactionId\":\"$(uid "$1" 0)\",\"id\":\"$(uid "$1" "$2")\",$3}"; }

# The data the fake serves, as its GET /interactions/:id answers it.
project='{interaction: (.interaction | {id, source, type, createdAt, metadata}),
          messages: [.messages[] | {id, interactionId, role, content, timestamp, status}]}'
# mirror_same: Bicky's legacy GET /interactions/:id equals the fake's record for
# every interaction, and the team has no other live (not archived) mirrored
# conversation or message ($NATIVE, created through the API, is not the mirror's).
mirror_same() {
    local dump id got want n
    dump=$(curl -s -m 5 "$FAKE/_ctl/dump") || return 1
    for id in $(jq -r '.[].interaction.id' <<<"$dump"); do
        got=$(curl -s -m 5 -H "Authorization: Bearer $MIRROR_TOKEN" "$BICKY_URL/interactions/$id" |
            jq -S -c "$project" 2>/dev/null)
        want=$(jq -S -c ".[] | select(.interaction.id == \"$id\") | $project" <<<"$dump")
        [[ $got == "$want" ]] || { echo "$id: got  $got"; echo "$id: want $want"; return 1; }
    done
    n=$(tc_sql "select (select count(*) from conversations c join teams t on t.id = c.team_id
                        where t.name = 'mirror' and c.status <> 'archived' and c.id <> '$NATIVE')
                        || ' ' || (select count(*) from messages x join conversations c
                        on c.id = x.conversation_id join teams t on t.id = x.team_id
                        where t.name = 'mirror' and c.status <> 'archived' and c.id <> '$NATIVE')")
    [[ $n == "$(jq -r '"\(length) \([.[].messages | length] | add // 0)"' <<<"$dump")" ]] ||
        { echo "conversations and messages in the team: $n"; return 1; }
}
wait_same() { bk_wait_for "${2:-30}" mirror_same || { mirror_same; return 1; }; }

# ---------------------------------------------------------------- the old server's data

for i in 1 2 3; do
    add_inter "$i"
    add_msg "$i" 1 user completed
    add_msg "$i" 2 assistant completed
done
add_msg 3 3 user completed
add_msg 3 4 assistant processing

# ---------------------------------------------------------------- bad inputs

port=$(bk_free_port 20000 32000)
"$CTL" import --team mirror --follow "http://127.0.0.1:$port" >"$W/unreach.out" 2>"$W/unreach.err"
rc=$?
t_check "an unreachable URL: exit 1, with curl's reason on stderr" \
    eval '[[ $rc == 1 && $(cat "$W/unreach.err") == "bickyctl: cannot follow http://127.0.0.1:$port: "*"onnect"* ]]'
"$CTL" import --team mirror --follow "$FAKE" --token wrong --once >"$W/tok.out" 2>"$W/tok.err"
rc=$?
t_check "a wrong token: exit 1, the 401 reported, nothing written" \
    eval '[[ $rc == 1 && $(grep -c "failed: HTTP 401" "$W/tok.out") == 1 && $(tc_sql "select count(*) from conversations c join teams t on t.id = c.team_id where t.name = '"'mirror'"'") == 0 ]]'
"$CTL" import --follow "$FAKE" >/dev/null 2>&1
t_check "--follow without --team exits 2" test $? = 2
"$CTL" import --team nobody --follow "$FAKE" --token "$OLD_SECRET" >/dev/null 2>&1
t_check "--follow into an unknown team exits 1" test $? = 1
"$CTL" import --help >"$W/help.txt" 2>&1
t_check "import --help names --follow" grep -q -- "--follow" "$W/help.txt"

# ---------------------------------------------------------------- the initial pass, then live

# A conversation of the team's own: the follower never archives it.
NATIVE=$(TC_TOKEN=$MIRROR_TOKEN tc_conv '{"title":"native"}')

BICKY_LEGACY_TOKEN=$OLD_SECRET "$CTL" import --team mirror --follow "$FAKE" \
    >"$W/follow.out" 2>"$W/follow.err" &
FOLLOW_PID=$!
t_check "the initial pass: Bicky answers the fake's 3 interactions, 8 messages" wait_same
t_check "… as one pass on the open stream (its token from BICKY_LEGACY_TOKEN)" \
    bk_wait_for 10 grep -q "^follow: pass 1: 3 interactions; 3 new conversations, 8 new messages" "$W/follow.out"

add_inter 4
add_msg 4 1 user pending
add_msg 1 3 user completed
set_msg 3 4 '"status":"completed","content":"the final answer"'
fake interaction_update "{\"id\":\"$(uid 2 0)\",\"metadata\":{\"n\":2,\"renamed\":true}}"
add_msg 4 2 assistant processing
t_check "live: a new interaction, new messages, a status and content, metadata" wait_same
fake junk '{"bytes": 3000000}'
add_msg 4 3 user completed
t_check "a 3 MB SSE line is dropped (bounded buffer); the next event still arrives" wait_same
t_check "… on the same stream" eval '! grep -q "^follow: stream dropped" "$W/follow.out"'
t_check "… each from a stream event (no second pass)" \
    eval '[[ $(grep -c "^follow: pass" "$W/follow.out") == 1 && $(grep -c "^follow: message:added" "$W/follow.out") -ge 3 ]]'

# ---------------------------------------------------------------- a dropped stream, held down

fake drop '{"hold":true}'
bk_wait_for 10 grep -q "stream cannot be opened" "$W/follow.out"
t_check "the stream dropped; reopening fails while the fake holds it" \
    eval '[[ $(grep -c "^follow: stream dropped" "$W/follow.out") == 1 ]]'
t_check "… the 3 MB line reported when that stream ended" \
    grep -q "^follow: stream dropped: .*(1 line(s) over 1048576 bytes dropped)" "$W/follow.out"
add_inter 5
add_msg 5 1 user completed
add_msg 5 2 assistant completed
set_msg 4 1 '"status":"completed"'
set_msg 4 2 '"status":"failed","content":"it broke"'
add_msg 2 3 user completed
gone=$(uid 3 0)
fake delete "{\"id\":\"$gone\"}"
bad=$(uid 6 0)
fake raw "{\"id\":\"$bad\",\"body\":{\"interaction\":{\"id\":\"$bad\",\"createdAt\":\"$(ts 6)\"},
    \"messages\":[{\"id\":\"$(uid 6 1)\",\"role\":\"robot\",\"content\":\"x\",\"timestamp\":\"$(ts 7)\",\"status\":\"completed\"}]}}"
t_check "while down, Bicky has not seen the new changes" eval '! mirror_same >/dev/null'
fake release '{}'
t_check "reopened: the pass catches up, Bicky answers exactly the fake's data" wait_same 60
t_check "… the malformed record reported with its reason, and skipped" \
    grep -q "^refused  line 5 conversation $bad: messages\[0\]: role must be user, assistant, system or tool" "$W/follow.out"
t_check "… nothing of it written" test "$(tc_sql "select count(*) from conversations where id = '$bad'")" = 0
t_check "the interaction deleted while down: its conversation archived, its 4 messages kept" \
    test "$(tc_sql "select status || ' ' || message_count || ' ' || (select count(*) from messages where conversation_id = c.id) from conversations c where id = '$gone'")" = "archived 4 4"
arch=$(tc_sql "select e.type || ' ' || e.reversible || ' ' || (e.source->>'id') || ' ' || (c.last_event_id = e.id) from events e join conversations c on c.id = e.conversation_id where e.conversation_id = '$gone'")
t_check "… by one reversible conversation.archived event, the last of its log ($arch)" \
    test "$arch" = "conversation.archived true import-follow true"
t_check "… reported by the pass that saw it gone" \
    grep -q "^follow: pass 2: .*, 1 archived$" "$W/follow.out"
t_check "… and the team's own conversation left alone" \
    test "$(tc_sql "select status from conversations where id = '$NATIVE'")" = idle

fake drop '{}'
add_msg 5 3 user completed
add_msg 5 4 assistant completed
t_check "a plain drop: reconnected at once, the rest arrives" wait_same
t_check "… 3 passes in all, the follower still running" \
    eval 'bk_wait_for 10 eval "[[ \$(grep -c \"^follow: pass\" \"$W/follow.out\") == 3 ]]" && kill -0 $FOLLOW_PID'
before=$(tc_counts)
"$CTL" import --team mirror --follow "$FAKE" --token "$OLD_SECRET" --once >"$W/once.out" 2>&1
rc=$?
t_check "--once over the mirror: nothing new or changed (exit 1: the malformed record)" \
    eval '[[ $rc == 1 && $(tc_counts) == "$before" ]] && grep -q "0 new conversations, 0 new messages, 0 conversations and 0 messages changed, 1 refused, 0 archived" "$W/once.out"'

kill -TERM "$FOLLOW_PID"
wait "$FOLLOW_PID"
rc=$?
FOLLOW_PID=""
t_check "SIGTERM: the follower exits 0 with its totals" \
    eval '[[ $rc == 0 ]] && grep -q "^follow: stopped after 3 passes" "$W/follow.out"'
t_check "… and nothing on stderr (no sanitizer report)" test ! -s "$W/follow.err"
t_check "every mirrored message keeps the fake's order (seq = position)" \
    test "$(tc_sql "select count(*) from messages x join teams t on t.id = x.team_id where t.name = 'mirror' and x.id::text <> format('%s-0000-4000-8000-%s', left(x.conversation_id::text, 8), lpad(to_hex(x.seq), 12, '0'))")" = 0

# ---------------------------------------------------------------- the haproxy example

# via METHOD PATH: the status and the Deprecation header (Bicky's legacy routes
# send it, the fake does not) of one request through haproxy, e.g. "200 true".
via() {
    local code
    code=$(curl -s -m 5 -o /dev/null -D "$W/via.h" -w '%{http_code}' -X "$1" \
        -H "Authorization: Bearer $MIRROR_TOKEN" -H "$TC_JSON" ${3:+--data-binary "$3"} \
        "http://127.0.0.1:$HP$2")
    echo "$code $(tr -d '\r' <"$W/via.h" | awk -F': ' 'tolower($1) == "deprecation" {print $2}')"
}
if command -v haproxy >/dev/null; then
    t_check "deploy/haproxy/legacy-split.cfg passes haproxy -c" \
        bash -c "haproxy -c -f '$SRC/deploy/haproxy/legacy-split.cfg' 2>&1 | grep -q 'Configuration file is valid'"
    # The example with this test's addresses: Bicky's gateway and the fake.
    HP=$(bk_free_port 20000 32000)
    sed -e "s/127.0.0.1:8000/127.0.0.1:$HP/" -e "s|127.0.0.1:8080|${BICKY_URL#http://}|" \
        -e "s|127.0.0.1:3000|${FAKE#http://}|" "$SRC/deploy/haproxy/legacy-split.cfg" >"$W/split.cfg"
    haproxy -db -f "$W/split.cfg" >"$W/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    bk_wait_for 20 eval '[[ $(via GET /interactions) == "200 true" ]]'
    one=$(uid 1 0)
    t_check "through haproxy: GET /interactions and /interactions/:id are Bicky's" \
        eval '[[ $(via GET /interactions) == "200 true" && $(via GET /interactions/$one) == "200 true" ]]'
    t_check "… GET /status and /worktrees too" \
        eval '[[ $(via GET /status) == "200 true" && $(via GET /worktrees) == "200 true" ]]'
    t_check "… GET /stream goes to the old server (its 401: the fake wants its own token)" \
        eval '[[ $(via GET /stream) == "401 " ]]'
    t_check "… POST /message and a permission answer go to the old server" \
        eval '[[ $(via POST /message "{\"content\":\"hi\"}") == "404 " && $(via POST /interactions/$one/permission/response "{\"approved\":true}") == "404 " ]]'
fi

tc_finish legacy_follow
