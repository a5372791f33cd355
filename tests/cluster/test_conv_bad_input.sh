#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_conv_bad_input.sh — the bad-input matrix on a real cluster: invalid
# JSON (syntax, not an object, trailing data, duplicate keys, NUL, bad
# UTF-8), wrong types, empty / blank / over-long / huge values, unknown
# fields, unknown and malformed ids, bad query arguments and headers. Each
# case must get its 4xx with the documented code (and the field it names),
# never a 5xx, and write nothing: the row counts of conversations, messages,
# events and idempotency keys do not move. Then lengths in characters end to
# end (1000 and 501 "é" titles, 40 "é" sources) and refusals that say what
# is allowed. Env: see tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=conv_bad_input
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

tc_start conv_bad_input

C=$(tc_conv '{"title":"target"}')
tc_post "$C" "a first message" >/dev/null
tc_wait_status "$C" idle 5
R=$(cat /proc/sys/kernel/random/uuid) # an id nobody has
CONV=/api/conversations/$C
MSGS=$CONV/messages

# Bodies that cannot be written as shell arguments.
F=$TC_VAR/bodies
mkdir -p "$F"
printf '{"content":"bad \xff\xfe utf-8"}' >"$F/utf8"
printf '{"content":"overlong \xc0\xaf"}' >"$F/overlong"
printf '{"content":"nul \\u0000 inside"}' >"$F/nul"
python3 -c 'import sys; sys.stdout.write("{\"content\":\"" + "a" * (1024 * 1024 + 10) + "\"}")' >"$F/huge"
python3 -c 'import sys; sys.stdout.write("{\"title\":\"" + "t" * 1001 + "\"}")' >"$F/title1001"
python3 -c 'import sys; sys.stdout.write("{\"source\":\"" + "s" * 65 + "\"}")' >"$F/source65"
python3 -c 'import sys; sys.stdout.write("{\"title\":\"" + "\u00e9" * 1001 + "\"}")' >"$F/title1001u"
long_key=$(printf 'k%.0s' $(seq 1 256))

# One case per line, fields separated by " | ":
#   METHOD | PATH | BODY ('-' none, '@file') | STATUS | CODE | FIELD ('-' none) | extra curl args
CASES=$(
    cat <<EOF
POST | $MSGS | { | 400 | invalid_json | -
POST | $MSGS | [] | 400 | invalid_json | -
POST | $MSGS | "just a string" | 400 | invalid_json | -
POST | $MSGS | 42 | 400 | invalid_json | -
POST | $MSGS | null | 400 | invalid_json | -
POST | $MSGS | {"content":"a",} | 400 | invalid_json | -
POST | $MSGS | {"content":"a"} trailing | 400 | invalid_json | -
POST | $MSGS | {"content":"a"}{"content":"b"} | 400 | invalid_json | -
POST | $MSGS | {"content":"a","content":"b"} | 400 | invalid_json | -
POST | $MSGS | {'content':'a'} | 400 | invalid_json | -
POST | $MSGS | {"content":"\\x"} | 400 | invalid_json | -
POST | $MSGS | @$F/nul | 400 | invalid_json | -
POST | $MSGS | @$F/utf8 | 400 | invalid_json | -
POST | $MSGS | @$F/overlong | 400 | invalid_json | -
POST | $MSGS | - | 400 | invalid_field | content
POST | $MSGS | {} | 400 | invalid_field | content
POST | $MSGS | {"content":1} | 400 | invalid_field | content
POST | $MSGS | {"content":null} | 400 | invalid_field | content
POST | $MSGS | {"content":true} | 400 | invalid_field | content
POST | $MSGS | {"content":["a"]} | 400 | invalid_field | content
POST | $MSGS | {"content":{"text":"a"}} | 400 | invalid_field | content
POST | $MSGS | {"content":""} | 400 | invalid_field | content
POST | $MSGS | {"content":"   \\n\\t  "} | 400 | invalid_field | content
POST | $MSGS | {"content":"a","metadata":"x"} | 400 | invalid_field | metadata
POST | $MSGS | {"content":"a","metadata":[1]} | 400 | invalid_field | metadata
POST | $MSGS | {"content":"a","metadata":null} | 400 | invalid_field | metadata
POST | $MSGS | {"content":"a","extra":1} | 400 | invalid_field | extra
POST | $MSGS | {"content":"a","Content":"b"} | 400 | invalid_field | Content
POST | $MSGS | {"content":"a","create":{}} | 400 | invalid_field | create
POST | $MSGS | @$F/huge | 413 | payload_too_large | -
POST | $MSGS | {"content":"a"} | 415 | unsupported_media_type | - | -H Content-Type:text/plain
POST | $MSGS | {"content":"a"} | 415 | unsupported_media_type | - | -H Content-Type:application/jsonx
POST | $MSGS | {"content":"a"} | 400 | invalid_field | Idempotency-Key | -H Idempotency-Key:$long_key
POST | $MSGS | {"content":"a"} | 400 | invalid_field | Idempotency-Key | -H Idempotency-Key;
POST | /api/conversations | {"source":""} | 400 | invalid_field | source
POST | /api/conversations | {"source":"  "} | 400 | invalid_field | source
POST | /api/conversations | @$F/source65 | 400 | invalid_field | source
POST | /api/conversations | {"type":5} | 400 | invalid_field | type
POST | /api/conversations | {"title":5} | 400 | invalid_field | title
POST | /api/conversations | @$F/title1001 | 400 | invalid_field | title
POST | /api/conversations | @$F/title1001u | 400 | invalid_field | title
POST | /api/conversations | {"strategy":"no-such-strategy"} | 400 | invalid_field | strategy
POST | /api/conversations | {"strategy":""} | 400 | invalid_field | strategy
POST | /api/conversations | {"on_busy":"sometimes"} | 400 | invalid_field | on_busy
POST | /api/conversations | {"on_busy":null} | 400 | invalid_field | on_busy
POST | /api/conversations | {"worktree_id":"not-a-uuid"} | 400 | invalid_field | worktree_id
POST | /api/conversations | {"worktree_id":"$R"} | 400 | invalid_field | worktree_id
POST | /api/conversations | {"metadata":"x"} | 400 | invalid_field | metadata
POST | /api/conversations | {"id":"$R"} | 400 | invalid_field | id
POST | /api/conversations | {"status":"idle"} | 400 | invalid_field | status
PATCH | $CONV | {"source":"cli"} | 400 | invalid_field | source
PATCH | $CONV | {"type":"other"} | 400 | invalid_field | type
PATCH | $CONV | {"on_busy":1} | 400 | invalid_field | on_busy
PATCH | $CONV | {"title":[]} | 400 | invalid_field | title
PATCH | $CONV | {"strategy":"nope"} | 400 | invalid_field | strategy
PATCH | $CONV | {"worktree_id":"$R"} | 400 | invalid_field | worktree_id
PATCH | $CONV | {"metadata":[]} | 400 | invalid_field | metadata
PATCH | $CONV | {"bogus":1} | 400 | invalid_field | bogus
PATCH | $CONV | [ | 400 | invalid_json | -
POST | $CONV/cancel | {"x":1} | 400 | invalid_field | x
POST | /api/message | {"content":"x","conversation_id":"nope"} | 400 | invalid_field | conversation_id
POST | /api/message | {"content":"x","conversation_id":5} | 400 | invalid_field | conversation_id
POST | /api/message | {"conversation_id":"$C"} | 400 | invalid_field | content
POST | /api/message | {"content":" "} | 400 | invalid_field | content
POST | /api/message | {"content":"x","on_busy":"never"} | 400 | invalid_field | on_busy
POST | /api/message | {"content":"x","strategy":"nope"} | 400 | invalid_field | strategy
POST | /api/message | {"content":"x","bogus":true} | 400 | invalid_field | bogus
POST | /api/message | @$F/huge | 413 | payload_too_large | -
GET | /api/conversations/not-a-uuid | - | 400 | invalid_field | id
GET | /api/conversations/${C}0 | - | 400 | invalid_field | id
GET | /api/conversations/${C:0:35}g | - | 400 | invalid_field | id
GET | /api/conversations/${C//-/} | - | 400 | invalid_field | id
POST | /api/conversations/not-a-uuid/messages | {"content":"x"} | 400 | invalid_field | id
DELETE | /api/conversations/00000000-0000-0000-0000-00000000000z | - | 400 | invalid_field | id
GET | /api/conversations/$R | - | 404 | not_found | -
PATCH | /api/conversations/$R | {"title":"x"} | 404 | not_found | -
DELETE | /api/conversations/$R | - | 404 | not_found | -
GET | /api/conversations/$R/messages | - | 404 | not_found | -
POST | /api/conversations/$R/messages | {"content":"x"} | 404 | not_found | -
POST | /api/conversations/$R/cancel | - | 404 | not_found | -
GET | /api/conversations/$R/events | - | 404 | not_found | -
GET | /api/conversations/00000000-0000-0000-0000-000000000000 | - | 404 | not_found | -
GET | /api/conversations?limit=0 | - | 400 | invalid_field | limit
GET | /api/conversations?limit=501 | - | 400 | invalid_field | limit
GET | /api/conversations?limit=abc | - | 400 | invalid_field | limit
GET | /api/conversations?limit=-1 | - | 400 | invalid_field | limit
GET | /api/conversations?limit=1e3 | - | 400 | invalid_field | limit
GET | /api/conversations?cursor=%01 | - | 400 | invalid_field | cursor
GET | /api/conversations?cursor=garbage | - | 400 | invalid_field | cursor
GET | /api/conversations?status=bogus | - | 400 | invalid_field | status
GET | $MSGS?after_seq=-5 | - | 400 | invalid_field | after_seq
GET | $MSGS?after_seq=abc | - | 400 | invalid_field | after_seq
GET | $MSGS?cursor=%%% | - | 400 | invalid_field | cursor
GET | $CONV/events?after=x | - | 400 | invalid_field | after
GET | /api/events?after=-1 | - | 400 | invalid_field | after
GET | /api/events?limit=100000 | - | 400 | invalid_field | limit
PUT | $CONV | {"title":"x"} | 405 | method_not_allowed | -
POST | /api/conversations/$C/nope | {"content":"x"} | 404 | not_found | -
EOF
)

before=$(tc_counts)
bad=()
n=0
while IFS= read -r line; do
    [[ -z $line ]] && continue
    IFS='|' read -r method path body status code field extra <<<"$line"
    method=$(xargs <<<"$method")
    path=$(sed 's/^ *//; s/ *$//' <<<"$path")
    body=$(sed 's/^ //; s/ $//' <<<"$body")
    status=$(xargs <<<"$status")
    code=$(xargs <<<"$code")
    field=$(xargs <<<"$field")
    args=()
    if [[ -n ${extra// /} ]]; then
        read -r -a words <<<"$extra"
        for w in "${words[@]}"; do
            args+=("${w/:/: }")
        done
        # "-H Name;" sends an empty header in curl: keep it as written.
        [[ $extra == *"Idempotency-Key;"* ]] && args=(-H 'Idempotency-Key;')
    fi
    [[ $body == - ]] && body=""
    tc_req "$method" "$path" "$body" "${args[@]}"
    n=$((n + 1))
    got="$TC_CODE $(tc_jq '.code // "-"') $(tc_jq '.field // "-"')"
    want="$status $code $field"
    if [[ $got != "$want" ]]; then
        bad+=("$method $path ${body:0:60} → $got (want $want) ${TC_BODY:0:160}")
    elif [[ $TC_CODE == 5* ]]; then
        bad+=("$method $path: a 5xx")
    fi
    now=$(tc_counts)
    if [[ $now != "$before" ]]; then
        bad+=("$method $path ${body:0:60}: wrote something ($before → $now)")
        before=$now
    fi
done <<<"$CASES"
t_check "bad-input matrix: $n cases, each the right 4xx, code and field, nothing written" \
    test "${#bad[@]}" = 0
((${#bad[@]})) && printf '  %s\n' "${bad[@]}"

# The errors explain themselves: a message, the parser's position for JSON.
tc_req POST "$MSGS" '{"content": "a",}'
t_check "invalid_json names line and column" \
    test "$(tc_jq '"\(.line) \(.column) \(.error | length > 10)"')" = "1 17 true"
tc_req POST "$MSGS" '{"content":5}'
t_check "invalid_field has a human message naming the field" \
    eval "tc_jq .error | grep -q content"

# Things that look odd but are fine.
tc_req GET "/api/conversations/${C^^}"
t_check "an upper-case id is the same conversation (200)" test "$TC_CODE $(tc_jq .id)" = "200 $C"
tc_req GET "/api/conversations/$C/"
t_check "a trailing slash is tolerated (200)" test "$TC_CODE" = 200
tc_req GET "/api/conversations?limit=500&unknown=1"
t_check "unknown query arguments are ignored (200)" test "$TC_CODE" = 200
tc_req PATCH "$CONV" '{}'
t_check "PATCH {} is accepted (200)" test "$TC_CODE" = 200
tc_req POST "$MSGS" '{"content":"ünïcödé ✓ 🎉","metadata":{"k":[1,{"n":null}]}}' \
    -H 'Content-Type: application/json; charset=utf-8'
t_check "UTF-8 content with a charset parameter and nested metadata is accepted (202)" \
    test "$TC_CODE $(tc_jq .message.content)" = "202 ünïcödé ✓ 🎉"
t_check "... and stored exactly" \
    test "$(tc_sql "select content || ' ' || (metadata->'k'->1->>'n' is null)::text from messages
                    where conversation_id = '$C' and role = 'user' order by seq desc limit 1")" \
    = "ünïcödé ✓ 🎉 true"
# Lengths are characters, counted the same way by the gateway and the nodes
# (proto/proto_ops.c): a title of 1000 "é" is 2000 bytes and fits; 501 "é"
# (1002 bytes) used to pass the gateway and be refused by the node.
for n in 1000 501; do
    python3 -c "import sys; sys.stdout.write('{\"title\":\"' + '\u00e9' * $n + '\"}')" >"$F/title$n"
    tc_req POST /api/conversations "@$F/title$n"
    t_check "a title of $n \"é\" ($((2 * n)) bytes) is accepted (201)" test "$TC_CODE" = 201
    id=$(tc_jq .id)
    t_check "... and stored whole" \
        test "$(tc_sql "select char_length(title) from conversations where id = '$id'")" = "$n"
done
tc_req PATCH "$CONV" "@$F/title501"
t_check "PATCH with a title of 501 \"é\" is accepted (200)" test "$TC_CODE" = 200
python3 -c 'import sys; sys.stdout.write("{\"source\":\"" + "\u00e9" * 40 + "\",\"type\":\"chat\"}")' >"$F/source40u"
tc_req POST /api/conversations "@$F/source40u"
t_check "a source of 40 \"é\" (80 bytes) is accepted (201)" test "$TC_CODE" = 201
tc_req POST /api/message "{\"content\":\"hi\",\"source\":\"$(printf 'é%.0s' $(seq 1 40))\"}"
t_check "... also through POST /api/message (202)" test "$TC_CODE" = 202
tc_req GET "/api/conversations?source=$(printf '%%C3%%A9%.0s' $(seq 1 40))"
t_check "... and as a list filter (200)" test "$TC_CODE" = 200
# Refusals say what is allowed.
tc_req POST /api/conversations "@$F/title1001u"
t_check "a title of 1001 \"é\": 'title is longer than 1000 characters'" \
    test "$(tc_jq .error)" = "title is longer than 1000 characters"
tc_req POST /api/conversations '{"on_busy":"sometimes"}'
t_check "an unknown on_busy lists the values" \
    test "$(tc_jq .error)" = "on_busy must be one of: enqueue, reject, interrupt"
tc_req POST /api/conversations '{"strategy":"no-such-strategy"}'
t_check "an unknown strategy lists the node's strategies" \
    eval '[[ $(tc_jq .error) == "strategy must be one of: "*echo* ]]'
tc_req GET "/api/conversations?status=bogus"
t_check "an unknown status filter lists the statuses" \
    test "$(tc_jq .error)" = "status must be one of: idle, queued, processing, waiting_for_permission, error, archived"
tc_req POST "$MSGS" "@$F/utf8"
t_check "bytes that are not UTF-8: invalid_json naming the parser's complaint" \
    eval '[[ $TC_CODE == 400 && $(tc_jq .code) == invalid_json && $(tc_jq .error) == *UTF-8* ]]'

t_check "gateway and nodes still answer" bk_http_ok "$BICKY_URL/ready"
fives=$(curl -s "$BICKY_URL/metrics" | grep -E 'http_requests_total\{.*status="5' | grep -v '"/ready"')
t_check "the gateway answered no 5xx on an API route (metrics)" test -z "$fives"
[[ -z $fives ]] || echo "$fives"

tc_finish conv_bad_input
