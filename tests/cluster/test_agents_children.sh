#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_agents_children.sh — children die with their node (issue 11) on a real
# cluster with tests/fixtures/fake_llm.py as the model. A bash tool call
# (`sleep 1000` in bash's group and one escaped with setsid) and, when the
# CLI is installed ($BICKY_CLAUDE), a claude-code turn whose Bash tool runs
# `sleep 1000` are running on n1; `kill -9` of n1 takes every process it
# started with it (each one gone within 10 s, checked by pid and start
# time). Then a leftover: a live bicky-exec recorded in n1's pid directory
# (started by this script, so no parent death ever reaches it) is killed
# with its tree by the next n1 at startup, and a decoy (a pid file naming a
# live process that is not a bicky-exec) is left alone.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7900-7999).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_children
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

export BICKY_FAKE_LLM_PORTS=${BICKY_FAKE_LLM_PORTS:-7900-7999}
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_children_fake.XXXXXX")
ta_setup "$TA_TMP"
STRAY=() # processes this script started; killed at the end whatever happens
tc_start agents_children
trap 'rc=$?; ((${#STRAY[@]})) && kill -KILL "${STRAY[@]}" 2>/dev/null; ta_teardown;
      [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

# tree PID: "pid start comm" of every descendant of PID (from /proc).
tree() {
    python3 - "$1" <<'EOF'
import os, sys
procs = {}
for d in os.listdir('/proc'):
    if not d.isdigit():
        continue
    try:
        s = open('/proc/%s/stat' % d).read()
    except OSError:
        continue
    r = s.rindex(')')
    f = s[r + 2:].split()
    procs[int(d)] = (int(f[1]), f[19], s[s.index('(') + 1:r])
front = [int(sys.argv[1])]
while front:
    p = front.pop()
    for c, (pp, start, comm) in procs.items():
        if pp == p:
            print(c, start, comm.replace(' ', '_'))
            front.append(c)
EOF
}

# same PID START: the process PID is still the one that started at START (not a zombie).
same() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    read -r -a f <<<"$s"
    [[ ${f[0]} != Z && ${f[19]} == "$2" ]]
}

# all_gone FILE: none of the "pid start comm" lines of FILE is still alive.
all_gone() {
    local pid start comm
    while read -r pid start comm; do
        if same "$pid" "$start"; then
            return 1
        fi
    done <"$1"
}

# conv_on NODE BODY: a new conversation owned by NODE.
conv_on() {
    local c _
    for _ in $(seq 1 40); do
        c=$(tc_conv "$2")
        [[ $(tc_owner "$c") == "$1" ]] && echo "$c" && return 0
    done
    return 1
}

# approve CONV: approves the conversation's newest pending request.
approve() {
    local perm
    perm=$(tc_sql "select id from tool_permissions where conversation_id = '$1'
                   and status = 'pending' order by created_at desc limit 1")
    tc_req POST "/api/permissions/$perm/approve" '{}'
    [[ $TC_CODE == 200 ]]
}

# started NODE: how many times NODE logged its start.
started() { grep -c "node started id=$1 " "$TC_VAR/log/$1.log"; }

# kill_and_back NODE: kill -9, then waits until a new NODE started (its startup sweep is
# done by then) and is alive on the ring.
kill_and_back() {
    local n
    n=$(started "$1")
    kill -KILL "$(tc_pid "$1")"
    bk_wait_for 30 eval "(( \$(started $1) > $n ))" && bk_wait_for 20 tc_node_is "$1" alive &&
        bk_wait_for 10 bk_http_ok "$BICKY_URL/ready"
}

PIDS=$BICKY_WORK_DIR/pids/node-n1

# ---------------------------------------------------------------- kill -9 takes the children

conv=$(conv_on n1 '{"strategy":"gpt"}')
t_check "a gpt conversation on n1" test -n "$conv"
dir=$BICKY_WORK_DIR/conversations/$conv
ta_script "[$(ta_tool_call bash '{"command":"sleep 1000 & echo $! > bg.pid; setsid sleep 1000 & echo $! > esc.pid; wait","timeout_s":600}'),{\"kind\":\"text\",\"text\":\"never\"}]"
tc_post "$conv" "run the sleeps" >/dev/null
t_check "bash: permission.requested" ta_wait "$conv" permission.requested
t_check "bash: approved" approve "$conv"
t_check "bash: tool.started" ta_wait "$conv" tool.started
t_check "bash: both sleeps run" bk_wait_for 10 test -s "$dir/bg.pid" -a -s "$dir/esc.pid"
# The pids in bg.pid and esc.pid are the sandbox's own (its PID namespace): from the
# host, the tool is a bicky-exec child of n1 running bwrap.
t_check "bash: the tool runs in bwrap under bicky-exec, which has a pid file" \
    eval 'shim=$(pgrep -P "$(tc_pid n1)" -f "^$BICKY_BIN/bicky-exec --parent ") &&
        [[ -n $shim ]] && pgrep -P "$shim" -x bwrap >/dev/null &&
        ls "$PIDS" | grep -q "^[0-9]*$"'

if [[ -n ${BICKY_CLAUDE:-} && -x ${BICKY_CLAUDE:-} ]]; then
    cc=$(conv_on n1 '{"strategy":"cc"}')
    t_check "a claude-code conversation on n1" test -n "$cc"
    ta_script '[{"kind":"tool_call","name":"Bash","text":"Sleeping.","arguments":{"command":"sleep 1000 & echo $! > cc.pid; wait","description":"sleep"}},{"kind":"text","text":"never"}]'
    tc_post "$cc" "sleep a while" >/dev/null
    t_check "claude: permission.requested" ta_wait "$cc" permission.requested 1 30
    t_check "claude: approved" approve "$cc"
    t_check "claude: its Bash tool runs" \
        bk_wait_for 30 test -s "$BICKY_WORK_DIR/conversations/$cc/cc.pid"
else
    echo "claude part skipped: BICKY_CLAUDE is not set (tests/lib/install_claude.sh)"
fi

n1=$(tc_pid n1)
tree "$n1" >"$TC_VAR/tree"
echo "--- descendants of n1 (pid $n1)"
cat "$TC_VAR/tree"
t_check "the bash tool's sleeps are n1's descendants" \
    eval '[[ $(grep -c " sleep$" "$TC_VAR/tree") -ge 2 ]]'
if [[ -n ${cc:-} ]]; then
    t_check "the claude CLI and its Bash tool's sleep are n1's descendants" \
        eval '[[ $(grep -c " sleep$" "$TC_VAR/tree") -ge 3 ]]'
fi
n=$(started n1)
kill -KILL "$n1"
t_check "kill -9 of n1: every process it started is gone within 10 s" \
    bk_wait_for 10 all_gone "$TC_VAR/tree"
t_check "n1 is back" eval 'bk_wait_for 30 eval "(( \$(started n1) > $n ))" &&
    bk_wait_for 20 tc_node_is n1 alive'

# The gpt turn was lost between two model calls (its bash tool running, no
# message streaming): its new owner fails it when the conversation is activated.
lost_turn() {
    tc_sql "select action->>'reason', action->>'user_message_id' is not null, source->>'kind'
            from events where conversation_id = '$conv' and type = 'turn.failed'"
}
tc_req GET "/api/conversations/$conv"
t_check "the gpt turn lost with n1 gets turn.failed node_lost, naming its user message, from the system" \
    bk_wait_for 20 eval '[[ $(lost_turn) == "node_lost|t|system" ]]'
t_check "the conversation is usable again (status error, then a turn completes)" \
    eval 'tc_wait_status "$conv" error 10 && tc_post "$conv" "again" >/dev/null &&
        ta_wait "$conv" turn.completed'

# ---------------------------------------------------------------- leftovers are killed at start

left=$TC_VAR/left.pids
# A shim whose parent (a subshell) dies while the shim is stopped: the death signal
# stays pending, as for a shim that could not act on it. The subshell prints its pid.
shim=$(
    p=$BASHPID
    "$BICKY_BIN/bicky-exec" --parent "$p" --pid-dir "$PIDS" -- \
        bash -c "setsid sleep 1000 & echo \$! > '$left'; sleep 1000 & echo \$! >> '$left'; wait" \
        >/dev/null 2>&1 &
    s=$!
    bk_wait_for 10 eval '[[ $(wc -l <"$left" 2>/dev/null) == 2 ]]'
    kill -STOP "$s"
    echo "$s"
)
STRAY+=("$shim")
sleep 1000 &
decoy=$!
STRAY+=("$decoy")
t_check "a leftover shim runs with two sleeps" bk_wait_for 10 eval '[[ $(wc -l <"$left") == 2 ]]'
t_check "its pid file is in n1's directory" test -s "$PIDS/$shim"
read -r -a f <<<"$(cut -d ')' -f 2- "/proc/$decoy/stat")"
echo "bicky-exec $decoy ${f[19]} $(cat /proc/sys/kernel/random/boot_id)" >"$PIDS/$decoy"
tree "$shim" >"$TC_VAR/left.tree"
echo "$shim $(cut -d ')' -f 2- "/proc/$shim/stat" | awk '{ print $20 }') bicky-exec" \
    >>"$TC_VAR/left.tree"
t_check "the leftover tree is the shim, bash and two sleeps" \
    test "$(wc -l <"$TC_VAR/left.tree")" = 4
before=$(grep -c "killed a child left by a previous node" "$TC_VAR/log/n1.log")
t_check "n1 is killed and back" kill_and_back n1
t_check "the new n1 killed the leftover tree" bk_wait_for 10 all_gone "$TC_VAR/left.tree"
t_check "n1 logged it" \
    test "$(grep -c "killed a child left by a previous node shim_pid=$shim processes=4" \
        "$TC_VAR/log/n1.log")" = 1
t_check "one leftover killed in all" \
    test "$(grep -c "killed a child left by a previous node" "$TC_VAR/log/n1.log")" = $((before + 1))
t_check "the decoy (not a bicky-exec) is alive" kill -0 "$decoy"
t_check "its pid file is removed" test ! -e "$PIDS/$decoy"
kill -KILL "$decoy"
wait "$decoy" 2>/dev/null
STRAY=()

ta_teardown
tc_finish agents_children
