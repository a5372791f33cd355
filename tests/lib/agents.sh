# shellcheck shell=bash
# agents.sh — what the agent cluster tests (tests/cluster/test_agents_*.sh)
# share, on top of cluster.sh: the fake LLM (tests/fixtures/fake_llm.py on a
# port of 7700–7799, BICKY_FAKE_LLM_PORTS overrides), a strategies config
# naming it, a scratch git repository for the worktrees, and helpers to
# script the model, wait for events and find permission requests.
# Functions are prefixed ta_.
#
# Use (before tc_start, so that the cluster's processes get the env):
#   ta_setup DIR     # fake LLM up, $DIR/bicky.ini, $DIR/repo; exports BICKY_CONFIG,
#                    # BICKY_REPO, BICKY_WORK_DIR, BICKY_TEST_OPENAI_KEY
#   tc_start name
#   ...
#   ta_teardown      # stops the fake LLM (also from the EXIT trap)

TA_DIR=""
TA_FAKE_PID=""
TA_FAKE_PORT=""
TA_SECRET="sk-bicky-test-secret-4f9a1c"

ta_teardown() {
    if [[ -n $TA_FAKE_PID ]]; then
        kill -TERM "$TA_FAKE_PID" 2>/dev/null
        wait "$TA_FAKE_PID" 2>/dev/null
        TA_FAKE_PID=""
    fi
}

# ta_setup DIR: starts the fake LLM, writes the config and the repository.
ta_setup() {
    TA_DIR=$1
    mkdir -p "$TA_DIR"
    local ports=${BICKY_FAKE_LLM_PORTS:-7700-7799}
    python3 "$SRC/tests/fixtures/fake_llm.py" --port-range "$ports" >"$TA_DIR/fake.port" \
        2>"$TA_DIR/fake.log" &
    TA_FAKE_PID=$!
    bk_wait_for 10 test -s "$TA_DIR/fake.port" || bk_die "fake_llm did not start"
    TA_FAKE_PORT=$(head -n 1 "$TA_DIR/fake.port")
    cat >"$TA_DIR/bicky.ini" <<EOF
; strategies of the agent cluster tests
default_strategy = echo

[strategy.echo]
kind = echo

[strategy.gpt]
kind = openai
base_url = http://127.0.0.1:$TA_FAKE_PORT/v1
model = fake-gpt
api_key_env = BICKY_TEST_OPENAI_KEY
system_prompt = You are a test model.
tools = read_file, write_file, list_directory, grep, bash, todo_write
stall_timeout_s = 2
timeout_s = 20

[strategy.claude]
kind = anthropic
base_url = http://127.0.0.1:$TA_FAKE_PORT
model = fake-claude
tools = read_file, write_file, list_directory, bash

[strategy.gpt-expiring]
kind = openai
base_url = http://127.0.0.1:$TA_FAKE_PORT/v1
model = fake-gpt
tools = read_file, list_directory
permission_timeout_s = 2
EOF
    # claude-code, when the CLI is there (tests/run exports BICKY_CLAUDE).
    if [[ -n ${BICKY_CLAUDE:-} && -x ${BICKY_CLAUDE:-} ]]; then
        cat >>"$TA_DIR/bicky.ini" <<EOF

[strategy.cc]
kind = claude-code
command = $BICKY_CLAUDE
base_url = http://127.0.0.1:$TA_FAKE_PORT
model = fake-model
api_key_env = BICKY_TEST_OPENAI_KEY
tools = Bash, Read
timeout_s = 60
EOF
    fi
    # A scratch repository with one commit (git on a temporary directory only).
    mkdir -p "$TA_DIR/repo"
    git -C "$TA_DIR/repo" init -q -b main
    echo "hello from the repo" >"$TA_DIR/repo/README.md"
    git -C "$TA_DIR/repo" add README.md
    git -C "$TA_DIR/repo" -c user.name=test -c user.email=test@example.com commit -q -m init
    export BICKY_CONFIG=$TA_DIR/bicky.ini BICKY_REPO=$TA_DIR/repo BICKY_WORK_DIR=$TA_DIR/work
    export BICKY_TEST_OPENAI_KEY=$TA_SECRET
}

# ta_fake METHOD PATH [BODY]: a control call to the fake LLM; prints the body.
ta_fake() {
    local args=(-s -m 10 -X "$1")
    [[ -n ${3:-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}" "http://127.0.0.1:$TA_FAKE_PORT$2"
}

# ta_script JSON: replaces the fake's script and clears what it recorded.
ta_script() {
    ta_fake POST /_reset >/dev/null
    ta_fake POST /_script "$1" >/dev/null
}

# ta_requests: the model requests the fake received (JSON array).
ta_requests() { ta_fake GET /_requests; }

# ta_count CONV TYPE: stored events of TYPE in the conversation (Postgres).
ta_count() {
    tc_sql "select count(*) from events where conversation_id = '$1' and type = '$2'"
}

# ta_wait CONV TYPE [N [TIMEOUT_S]]: waits until the conversation has N events of TYPE.
ta_wait() {
    local n=${3:-1}
    bk_wait_for "${4:-15}" eval "(( \$(ta_count $1 $2) >= $n ))"
}

# ta_perm CONV [N]: id of the conversation's Nth permission request (1 = oldest).
ta_perm() {
    tc_sql "select id from tool_permissions where conversation_id = '$1'
            order by created_at, id offset $((${2:-1} - 1)) limit 1"
}

# ta_perm_of_tool CONV TOOL: id of the newest request of the conversation for TOOL.
ta_perm_of_tool() {
    tc_sql "select id from tool_permissions where conversation_id = '$1' and tool_name = '$2'
            order by created_at desc limit 1"
}

# ta_last_action CONV TYPE JQ: jq filter on the action of the last event of TYPE.
ta_last_action() {
    tc_sql "select action from events where conversation_id = '$1' and type = '$2'
            order by id desc limit 1" | jq -r "$3"
}

# ta_assistant CONV: content of the last assistant message.
ta_assistant() {
    tc_sql "select content from messages where conversation_id = '$1' and role = 'assistant'
            order by seq desc limit 1"
}

# ta_tool_call NAME ARGS_JSON [TEXT]: a script item asking for one tool call.
ta_tool_call() {
    jq -cn --arg n "$1" --argjson a "$2" --arg t "${3:-}" \
        '{kind: "tool_call", name: $n, arguments: $a} + (if $t == "" then {} else {text: $t} end)'
}

# ta_node_targets NODE: what a sandboxed tool must not reach on NODE, read from
# the running process: sets N1 (its pid), DBURL (its database URL), ROUTER and
# ROUTER_PORT (its ROUTER's --bind), PG_PORT and PG_SOCK (Postgres's port and
# unix socket).
# shellcheck disable=SC2034,SC2010 # the variables are read by the test scripts; ls names one socket
ta_node_targets() {
    N1=$(tc_pid "$1")
    DBURL=$(tr '\0' '\n' <"/proc/$N1/environ" | sed -n 's/^BICKY_DATABASE_URL=//p')
    ROUTER=$(tr '\0' '\n' <"/proc/$N1/cmdline" | grep -A1 -x -- --bind | tail -n 1)
    ROUTER_PORT=${ROUTER##*:}
    PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$DBURL")
    PG_SOCK=$(ls "$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"$DBURL")"/.s.PGSQL.* 2>/dev/null |
        grep -v lock | head -n 1)
}
