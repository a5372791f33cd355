#!/usr/bin/env bash
# test_agents_secrets.sh — no secret inside the Claude Code CLI's reach, end
# to end on a real cluster with the real CLI ($BICKY_CLAUDE; skipped without
# it) and tests/fixtures/fake_llm.py as the model. The node's environment
# holds the provider key (a marker, $TA_SECRET, named by api_key_env) and the
# database URL; the fake model makes the CLI run, through its Bash tool
# (every permission approved):
#   env; echo $ANTHROPIC_API_KEY / $ANTHROPIC_AUTH_TOKEN; cat ~/.claude.json
#   and every file under the CLI's HOME; the same via the CLI's Read tool
# and then, in a second conversation, `ps -eww e` and `cat /proc/*/environ`.
# Checked: the marker (and the database password) appears in no tool result,
# no stored event, no model request body and no file under the CLI's HOME
# or its working directory; the fake upstream received the real key
# (x-api-key) on every model call, and never the CLI's token as a key; the
# CLI's key is a 64-hex run token that the relay no longer accepts after
# the turn. ps and /proc inside the CLI's sandbox (its own PID namespace
# and /proc) show no process holding the key.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7900-7999).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_secrets
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

if [[ -z ${BICKY_CLAUDE:-} || ! -x ${BICKY_CLAUDE:-} ]]; then
    echo "skipped: BICKY_CLAUDE is not set (tests/lib/install_claude.sh)"
    exit 0
fi
export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-22000-22499}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18800-18899}
export BICKY_FAKE_LLM_PORTS=${BICKY_FAKE_LLM_PORTS:-7900-7999}
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_secrets_fake.XXXXXX")
ta_setup "$TA_TMP" # the [strategy.cc] of agents.sh: stdio channel, key $TA_SECRET
# Secrets a node may hold besides the key: none may reach the CLI either.
export ANTHROPIC_API_KEY=$TA_SECRET
tc_start agents_secrets
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT
DB_PASSWORD_MARKER=$(sed -n 's/.*password=\([^ ]*\).*/\1/p' <<<"$BICKY_DATABASE_URL")

bash_call() { ta_tool_call Bash "$(jq -cn --arg c "$1" '{command: $c, description: "look"}')"; }

# run_turn CONV SCRIPT_ITEMS...: scripts the model (the items, then a final text), posts
# a message and approves every permission request until the turn completes.
run_turn() {
    local conv=$1 items perm deadline=$((SECONDS + 90))
    shift
    items=$(printf '%s\n' "$@" '{"kind":"text","text":"Looked around."}' | jq -cs .)
    ta_script "$items"
    tc_post "$conv" "look around" >/dev/null || return 1
    while (($(ta_count "$conv" turn.completed) < 1)); do
        ((SECONDS < deadline)) || return 1
        (($(ta_count "$conv" turn.failed) == 0)) || return 1
        perm=$(tc_sql "select id from tool_permissions where conversation_id = '$conv'
                       and status = 'pending' order by created_at limit 1")
        if [[ -n $perm ]]; then
            tc_req POST "/api/permissions/$perm/approve" '{}'
        else
            sleep 0.2
        fi
    done
}

# results CONV [N]: the tool results of the conversation (its tool messages), or the Nth.
results() {
    local page=""
    [[ -n ${2:-} ]] && page="offset $(($2 - 1)) limit 1"
    tc_sql "select content from messages where conversation_id = '$1' and role = 'tool'
            order by seq $page"
}

# in_results CONV ERE: true when a tool result of the conversation matches (the output is
# taken whole first: grep -q in a pipe would stop psql with SIGPIPE, which pipefail reports).
in_results() {
    local out
    out=$(results "$1")
    grep -qE -- "$2" <<<"$out"
}

# leaks_in TEXT_CMD...: true when the command's output holds the key or the db password.
leaks_in() {
    local out
    out=$("$@" 2>/dev/null)
    grep -qF -- "$TA_SECRET" <<<"$out" && return 0
    [[ -n $DB_PASSWORD_MARKER ]] && grep -qF -- "$DB_PASSWORD_MARKER" <<<"$out"
}

# ---------------------------------------------------------------- what the CLI can see

conv=$(tc_conv '{"strategy":"cc"}')
home=$BICKY_WORK_DIR/claude/$conv
t_check "a claude-code conversation" test -n "$conv"
t_check "the turn ran every probe (all approved)" run_turn "$conv" \
    "$(bash_call 'env')" \
    "$(bash_call 'echo "key=[$ANTHROPIC_API_KEY] token=[$ANTHROPIC_AUTH_TOKEN] url=[$ANTHROPIC_BASE_URL]"')" \
    "$(bash_call 'cat ~/.claude.json ~/.claude/settings.json ~/.claude/.credentials.json 2>&1; true')" \
    "$(bash_call 'find ~ -type f -size -2M -print -exec cat {} + 2>&1 | head -c 200000')" \
    "$(ta_tool_call Read "$(jq -cn --arg p "$home/.claude.json" '{file_path: $p}')")"
t_check "five tool results" test "$(ta_count "$conv" tool.completed)" = 5
for i in 1 2 3 4 5; do # what each probe gave, for the log
    echo "  probe $i: $(results "$conv" "$i" | tr '\n' ' ' | cut -c1-160)"
done
t_check "env ran: its output is in a tool result" in_results "$conv" 'CLAUDE_CODE_MAX_RETRIES=1'
token=$(results "$conv" | grep -o 'key=\[[0-9a-f]*\]' | head -n 1 | sed 's/^key=\[\(.*\)\]$/\1/')
t_check "the CLI's key is a 64-hex run token" eval "[[ '$token' =~ ^[0-9a-f]{64}$ ]]"
t_check "its base URL is the node's relay on loopback" \
    in_results "$conv" 'url=\[http://127\.0\.0\.1:[0-9]+\]'
t_check "no key in any tool result" eval "! leaks_in results '$conv'"
t_check "no key in any event of the conversation" \
    eval "! leaks_in tc_sql \"select action from events where conversation_id = '$conv'\""
t_check "no key in any stored message" \
    eval "! leaks_in tc_sql \"select content from messages where conversation_id = '$conv'\""
t_check "no key in any file under the CLI's HOME" eval "! grep -rqF -- '$TA_SECRET' '$home'"
t_check "no key in the working directory" \
    eval "! grep -rqF -- '$TA_SECRET' '$BICKY_WORK_DIR/conversations/$conv'"
t_check "the CLI's HOME has its files (the probe read something)" test -s "$home/.claude.json"
reqs=$(ta_requests)
n=$(jq length <<<"$reqs")
t_check "the model was called for each step (6)" test "$n" -ge 6
t_check "every model call carried the real key upstream" \
    test "$(jq --arg k "$TA_SECRET" '[.[] | select(.headers["x-api-key"] == $k)] | length' <<<"$reqs")" = "$n"
t_check "no model call carried the token as a key" \
    test "$(jq --arg t "$token" '[.[] | .headers | to_entries[] | select(.value | contains($t))] | length' <<<"$reqs")" = 0
bodies() { jq -c '[.[] | .body]' <<<"$reqs"; }
t_check "no model request body holds the key" eval "! leaks_in bodies"
t_check "the tool results name no database URL" eval "! in_results '$conv' DATABASE_URL"
t_check "the tool results show no BICKY_ variable" eval "! in_results '$conv' BICKY_"
relay=$(grep -ho 'model relay listening url=http://127.0.0.1:[0-9]*' "$TC_VAR"/log/n*.log | head -n 1 |
    sed 's/.*url=//')
t_check "the node logs its relay" test -n "$relay"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST -H "x-api-key: $token" \
    -H 'Content-Type: application/json' --data '{}' "$relay/v1/messages")
t_check "the run's token is dead after the turn (401)" test "$code" = 401
t_check "the node's log never shows the key or a token" \
    eval "! grep -rqF -e '$TA_SECRET' -e '${token:-none}' '$TC_VAR/log'"

# ---------------------------------------------------------------- other processes

conv2=$(tc_conv '{"strategy":"cc"}')
# Filtered to what matters, so that the CLI's cut of long tool output cannot hide it.
t_check "ps and /proc probes ran" run_turn "$conv2" \
    "$(bash_call 'ps -eww e | grep -oE "[A-Z_]*(KEY|TOKEN|SECRET|PASSWORD|DATABASE_URL)[A-Z_]*=[^ ]*" | sort -u | head -c 100000')" \
    "$(bash_call 'for f in /proc/[0-9]*/environ; do tr "\0" "\n" < "$f"; done 2>/dev/null | grep -E "KEY|TOKEN|SECRET|DATABASE|PASSWORD" | sort -u | head -c 100000')"
for probe in 1 2; do
    name=$([[ $probe == 1 ]] && echo "ps -eww e" || echo "cat /proc/*/environ")
    out=$(results "$conv2" "$probe")
    t_check "$name ran (a tool result)" test -n "$out"
    t_check "$name shows no key (the sandbox's own PID namespace and /proc)" \
        eval '! leaks_in echo "$out"'
done

tc_finish agents_secrets
