#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_agents_sandbox.sh — the escape matrix of the bash tool's sandbox (issue 12)
# through the real tool on a real cluster, the model being
# tests/fixtures/fake_llm.py: each command is a tool call the test approves. The
# node's environment holds marker secrets (the provider key variable, the database
# URL, BICKY_SANDBOX_MARKER); none may appear in any tool result or event. Refused
# or contained, with n1 unharmed (same pid, still answering): /proc/<n1>/environ
# and cmdline; another conversation's directory and a worktree; Postgres over TCP
# and its unix socket, n1's ROUTER; writes outside the worktree (checked on the
# host); a fork bomb (bounded by sandbox_processes); a file past sandbox_file_mb;
# many small files past sandbox_disk_mb (killed, the result says why, the next call
# refused, files under the quota written again); `setsid sleep` outliving the
# timeout and a cancel (checked with ps on the host); symlinks out of the worktree.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7600-7699).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_sandbox
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

if ! command -v bwrap >/dev/null; then
    echo "SKIP: bwrap is not installed (Debian package bubblewrap)"
    exit 77
fi

export BICKY_FAKE_LLM_PORTS=${BICKY_FAKE_LLM_PORTS:-7600-7699}
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_sandbox_fake.XXXXXX")
ta_setup "$TA_TMP"
cat >>"$TA_DIR/bicky.ini" <<EOF

[strategy.sbx]
kind = openai
base_url = http://127.0.0.1:$TA_FAKE_PORT/v1
model = fake-gpt
api_key_env = BICKY_TEST_OPENAI_KEY
tools = bash
timeout_s = 20
sandbox_file_mb = 4
sandbox_processes = 64
sandbox_disk_mb = 16
EOF
MARK=sbx-marker-$$-7c1e
export BICKY_SANDBOX_MARKER=$MARK
tc_start agents_sandbox
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc);
      tc_cleanup' EXIT

ta_node_targets n1
echo "n1=$N1 router=$ROUTER pg_port=$PG_PORT pg_sock=$PG_SOCK"
t_check "the markers are in n1's environment" \
    eval 'tr "\0" "\n" <"/proc/$N1/environ" | grep -q "^BICKY_SANDBOX_MARKER=$MARK$" &&
        tr "\0" "\n" <"/proc/$N1/environ" | grep -q "^BICKY_TEST_OPENAI_KEY=$TA_SECRET$" &&
        [[ -n $DBURL && -n $PG_PORT && -n $ROUTER_PORT && -S $PG_SOCK ]]'
t_check "n1 is not dumpable: its /proc files belong to root" \
    test "$(stat -c %U "/proc/$N1/environ")" = root
t_check "n1 logged the sandbox" grep -q "sandbox on bwrap=" "$TC_VAR/log/n1.log"

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

# bash_start CONV COMMAND [TIMEOUT_S]: a turn whose model runs COMMAND with the bash
# tool, approved; returns once tool.started is stored.
bash_start() {
    local n args
    n=$(ta_count "$1" tool.started)
    args=$(jq -cn --arg c "$2" --argjson t "${3:-20}" '{command: $c, timeout_s: $t}')
    ta_script "[$(ta_tool_call bash "$args"),{\"kind\":\"text\",\"text\":\"ok\"}]"
    tc_post "$1" "run it" >/dev/null
    bk_wait_for 15 eval "(( \$(tc_sql \"select count(*) from tool_permissions where
        conversation_id = '$1' and status = 'pending'\") == 1 ))" || return 1
    approve "$1" && ta_wait "$1" tool.started $((n + 1)) 15
}

# bash_call CONV COMMAND [TIMEOUT_S]: bash_start, then waits for the turn's end and
# prints the tool's result (the content of the last tool message).
bash_call() {
    local n
    n=$(ta_count "$1" turn.completed)
    bash_start "$@" || return 1
    ta_wait "$1" turn.completed $((n + 1)) 90 || return 1
    tc_sql "select content from messages where conversation_id = '$1' and role = 'tool'
            order by seq desc limit 1"
}

# host_has WORD: some process on the host runs `sleep WORD`.
host_has() { pgrep -f -x "sleep $1" >/dev/null; }

# n1_fine: n1 kept its pid and answers.
n1_fine() {
    [[ $(tc_pid n1) == "$N1" ]] && kill -0 "$N1" && tc_req GET "/api/conversations/$conv" &&
        [[ $TC_CODE == 200 ]]
}

conv=$(conv_on n1 '{"strategy":"sbx"}')
t_check "a sandboxed conversation on n1" test -n "$conv"
other=$(conv_on n2 '{"strategy":"sbx"}')
WD=$BICKY_WORK_DIR
mkdir -p "$WD/conversations/$other"
echo "other-conversation-secret" >"$WD/conversations/$other/secret"
tc_req POST /api/worktrees '{"branch":"sandbox/other"}'
t_check "another worktree exists (201)" test "$TC_CODE" = 201
wt_path=$(tc_jq .path)
echo "worktree-secret" >"$wt_path/wt-secret"

# ---------------------------------------------------------------- the node's secrets
res=$(bash_call "$conv" "cat /proc/$N1/environ; cat /proc/$N1/cmdline; \
grep -l BICKY_SANDBOX_MARKER /proc/*/environ; ls /proc | grep -c '^[0-9]'; env; echo done")
echo "--- /proc: $res"
t_check "/proc: the call ran" eval '[[ $(jq -r .stdout <<<"$res") == *done* ]]'
t_check "/proc/<n1>/environ and cmdline are not there" \
    eval '[[ $(jq -r .stderr <<<"$res") == *"/proc/$N1/environ: No such file"* ]]'
t_check "/proc lists only the sandbox's few processes" \
    eval '(( $(jq -r .stdout <<<"$res" | grep -x "[0-9]*" | head -n 1) <= 6 ))'

# ---------------------------------------------------------------- other trees
res=$(bash_call "$conv" "ls $WD; ls $WD/conversations; cat $WD/conversations/$other/secret; \
ls $wt_path; cat $wt_path/wt-secret; ls $WD/worktrees $WD/pids $WD/claude; echo done")
echo "--- trees: $res"
t_check "another conversation's directory and worktree are out of sight" \
    eval '[[ $res != *other-conversation-secret* && $res != *worktree-secret* &&
        $(jq -r .stdout <<<"$res") == *done* ]]'
t_check "the work dir shows only the way to this conversation" \
    eval '[[ $(jq -r .stdout <<<"$res" | head -n 2 | tr "\n" " ") == "conversations $conv " ]]'

# ---------------------------------------------------------------- the network
res=$(bash_call "$conv" "echo > /dev/tcp/127.0.0.1/$PG_PORT && echo pg-tcp-open; \
echo > /dev/tcp/127.0.0.1/$ROUTER_PORT && echo router-open; \
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
print(\"pg-unix-open\")' $PG_SOCK; echo done")
echo "--- network: $res"
t_check "Postgres (TCP and unix socket) and n1's ROUTER are unreachable" \
    eval '[[ $res != *-open* && $(jq -r .stdout <<<"$res") == *done* ]]'

# ---------------------------------------------------------------- writes and symlinks
W=sbxw-$$
res=$(bash_call "$conv" "touch /tmp/$W; echo x > $WD/pwn-$W; echo x > /usr/pwn-$W; \
echo x > $WD/conversations/$other/pwn; ln -s /etc/shadow shadow; cat shadow; \
ln -s $WD/conversations/$other/secret s; cat s; ln -s /proc/$N1/environ e; cat e; \
ln -s $wt_path w; ls w/; echo mine > mine; echo done")
echo "--- writes: $res"
t_check "nothing was written outside the worktree (on the host)" \
    eval '[[ ! -e /tmp/$W && ! -e $WD/pwn-$W && ! -e /usr/pwn-$W &&
        ! -e $WD/conversations/$other/pwn ]]'
t_check "symlinks out of the worktree lead nowhere" \
    eval '[[ $res != *other-conversation-secret* && $res != *wt-secret* && $res != *root:* &&
        $(jq -r .stdout <<<"$res") == *done* ]]'
t_check "the worktree itself is writable" test -f "$WD/conversations/$conv/mine"

# ---------------------------------------------------------------- limits
res=$(bash_call "$conv" "head -c 50000000 /dev/zero > big; echo rc=\$?")
size=$(stat -c %s "$WD/conversations/$conv/big")
echo "--- file size: $res (big: $size bytes)"
t_check "a file stops at sandbox_file_mb (4 MiB): $size bytes" \
    eval '[[ $(jq -r .stdout <<<"$res") == "rc=1"* ]] && (( size <= 4 * 1048576 ))'
rm -f "$WD/conversations/$conv/big"

t0=$(bk_now_ms)
# bash stays (sleep 30) while the bomb grows: only the process cap can end it early.
res=$(bash_call "$conv" 'b() { b | b & }; b; sleep 30' 60)
echo "--- fork bomb ($(($(bk_now_ms) - t0)) ms for the turn): $res"
t_check "a fork bomb is killed by sandbox_processes, before the sleep and the timeout" \
    eval '[[ $(jq -r ".timed_out, .signal" <<<"$res" | xargs) == "false 9" ]] &&
        (( $(jq -r .duration_ms <<<"$res") < 30000 ))'
t_check "nothing of it is left under n1" \
    bk_wait_for 10 eval '[[ -z $(pgrep -P "$N1" -f bicky-exec) ]]'
t_check "n1 unharmed after the fork bomb" n1_fine

# ---------------------------------------------------------------- setsid vs timeout and cancel
w1=8881.$$
res=$(bash_call "$conv" "setsid sleep $w1 > /dev/null 2>&1 & sleep 100" 2)
t_check "timeout: timed_out" eval '[[ $(jq -r .timed_out <<<"$res") == true ]]'
t_check "timeout: no setsid sleep left on the host" bk_wait_for 5 eval '! host_has $w1'

w2=8882.$$
bash_start "$conv" "setsid sleep $w2 > /dev/null 2>&1 & sleep 300" 600
t_check "cancel: the escaped sleep runs (host)" bk_wait_for 10 host_has "$w2"
tc_req POST "/api/conversations/$conv/cancel"
t_check "cancel: 202 (got $TC_CODE)" test "$TC_CODE" = 202
t_check "cancel: no setsid sleep left on the host within 5 s" bk_wait_for 5 eval '! host_has $w2'
t_check "cancel: the conversation is idle again" tc_wait_status "$conv" idle 15

w3=8883.$$
res=$(bash_call "$conv" "setsid sleep $w3 > /dev/null 2>&1 & echo started")
t_check "exit: no setsid sleep outlives bash" bk_wait_for 5 eval '! host_has $w3'

# ---------------------------------------------------------------- the disk quota
# Files of 10 bytes, far below sandbox_file_mb: only the quota on the worktree stops it.
res=$(bash_call "$conv" 'i=0; while :; do i=$((i+1)); echo 123456789 > q$i; done' 60)
echo "--- disk quota: $(jq -c 'del(.stdout)' <<<"$res" | cut -c1-400)"
t_check "many small files are killed at sandbox_disk_mb, not by the timeout" \
    eval '[[ $(jq -r ".disk_quota_exceeded, .timed_out, .signal" <<<"$res" | xargs) == "true false 9" ]]'
t_check "the result says why" \
    eval '[[ $(jq -r .stderr <<<"$res") == *"disk quota of 16 MiB (sandbox_disk_mb)"* ]]'
t_check "n1 unharmed after the disk quota" n1_fine
res=$(bash_call "$conv" "touch after-quota")
echo "--- over the quota: $res"
t_check "the next call is refused with a clear error" \
    eval '[[ $res == *"disk quota"*"the command was not run"* ]]'
t_check "and it did not run (host)" test ! -e "$WD/conversations/$conv/after-quota"
find "$WD/conversations/$conv" -name 'q*' -delete
res=$(bash_call "$conv" 'for i in $(seq 1 200); do echo x > s$i; done; echo wrote')
t_check "under the quota, files are written again" \
    eval '[[ $(jq -r .stdout <<<"$res") == wrote* && -f $WD/conversations/$conv/s200 ]]'

# ---------------------------------------------------------------- nothing leaked
leaks=$(tc_sql "select (select count(*) from events where action::text like '%$MARK%'
                or action::text like '%$TA_SECRET%' or action::text like '%$DBURL%')
              + (select count(*) from messages where content like '%$MARK%'
                or content like '%$TA_SECRET%' or content like '%$DBURL%')")
t_check "no marker, key or database URL in any event or message ($leaks)" test "$leaks" = 0
t_check "n1 kept its pid and answers" n1_fine
t_check "no process of the sandbox is left under n1" \
    eval '[[ -z $(pgrep -P "$N1" -f bicky-exec) ]]'

ta_teardown
tc_finish agents_sandbox
