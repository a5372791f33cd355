#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_agents_claude_sandbox.sh — the escape matrix of test_agents_sandbox.sh (issue
# 12), run through the real Claude Code CLI's Bash tool ($BICKY_CLAUDE; skipped
# without it): tests/fixtures/fake_llm.py asks for each command, every permission is
# approved. The node's environment holds marker secrets (the provider key, the
# database URL, BICKY_SANDBOX_MARKER); none may appear in any tool result, message or
# event. Refused or contained, with n1 unharmed (same pid, still answering):
# /proc/<n1>/environ and cmdline; another conversation's directory and a worktree;
# Postgres over TCP and its unix socket, n1's ROUTER and the model upstream itself
# (the CLI's sandbox has no network of its own: bicky-fwd to the relay's unix socket
# is its only way out, and the CLI still reaches the model through it); writes
# outside the worktree (checked on the host); symlinks out of it; a file past
# sandbox_file_mb; a fork bomb (the whole CLI run is killed by sandbox_processes); a
# `setsid sleep` outliving a cancel (pgrep on the host); many small files past
# sandbox_disk_mb (the run is killed, the turn's reason says why, the next turn is
# refused, and after cleaning up the CLI works again). The work dir's path is long
# (--work-dir/pids/relay-n1.sock would pass the 107 bytes of a unix socket path): the
# relay's socket and the permission socket live in private directories under /tmp,
# and every check above runs that way. Last, bicky-fwd is removed from beside
# bicky-exec (a copy of both, --exec-bin): the turn fails, saying why, and nothing runs
# (no model call, no command), where the CLI used to keep the host's network.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7500-7599).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_claude_sandbox
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
if ! command -v bwrap >/dev/null; then
    echo "SKIP: bwrap is not installed (Debian package bubblewrap)"
    exit 77
fi
export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-22500-22999}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18900-18999}
export BICKY_FAKE_LLM_PORTS=${BICKY_FAKE_LLM_PORTS:-7500-7599}
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_ccsbx_fake.XXXXXX")
ta_setup "$TA_TMP"
cat >>"$TA_DIR/bicky.ini" <<EOF

[strategy.ccs]
kind = claude-code
command = $BICKY_CLAUDE
base_url = http://127.0.0.1:$TA_FAKE_PORT
model = fake-model
api_key_env = BICKY_TEST_OPENAI_KEY
tools = Bash
timeout_s = 120
sandbox_file_mb = 4
sandbox_processes = 64
sandbox_disk_mb = 24
EOF
MARK=ccsbx-marker-$$-5d2b
export BICKY_SANDBOX_MARKER=$MARK
# A work dir too long for a unix socket under it, and bicky-exec with bicky-fwd in a
# directory of the test's, so that bicky-fwd can be taken away below.
BICKY_WORK_DIR=$TA_TMP/work-$(printf 'long%.0s' {1..25})
export BICKY_WORK_DIR
mkdir -p "$TA_TMP/bin"
cp "$BICKY_BIN/bicky-exec" "$BICKY_BIN/bicky-fwd" "$TA_TMP/bin/"
export BICKY_EXEC_BIN=$TA_TMP/bin/bicky-exec
tc_start agents_claude_sandbox
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc);
      tc_cleanup' EXIT

ta_node_targets n1
echo "n1=$N1 router=$ROUTER pg_port=$PG_PORT pg_sock=$PG_SOCK fake=$TA_FAKE_PORT"
t_check "the markers are in n1's environment" \
    eval '[[ -n $DBURL && -n $PG_PORT && -n $ROUTER_PORT && -S $PG_SOCK ]] &&
        tr "\0" "\n" <"/proc/$N1/environ" | grep -q "^BICKY_SANDBOX_MARKER=$MARK$"'
relay_tail=/pids/relay-n1.sock
t_check "n1's relay socket path would be $((${#BICKY_WORK_DIR} + ${#relay_tail})) bytes (> 107)" \
    test $((${#BICKY_WORK_DIR} + ${#relay_tail})) -gt 107
RSOCK=$(grep -o 'model relay listening unix=[^ ]*' "$TC_VAR/log/n1.log" | tail -n 1)
RSOCK=${RSOCK#*unix=}
echo "relay socket: $RSOCK"
t_check "n1 serves the relay on a unix socket in a private directory under /tmp" \
    eval '[[ $RSOCK == /tmp/bicky-*/relay-n1.sock && -S $RSOCK ]]'
t_check "only n1's user may use it (directory 700, socket 600)" \
    eval '[[ $(stat -c %a "${RSOCK%/*}") == 700 && $(stat -c %a "$RSOCK") == 600 &&
        $(stat -c %u "${RSOCK%/*}") == $(id -u) ]]'
if [[ ${BICKY_INSECURE:-0} != 1 ]]; then # without keys (and channel mcp) there is none
    t_check "and its permission socket too (the local ipc)" \
        grep -q "local=ipc:///tmp/bicky-[^/ ]*/perm-n1-[0-9]*\.ipc" "$TC_VAR/log/n1.log"
fi

conv_on() {
    local c _
    for _ in $(seq 1 40); do
        c=$(tc_conv "$2")
        [[ $(tc_owner "$c") == "$1" ]] && echo "$c" && return 0
    done
    return 1
}

# cc_start CONV COMMAND [TIMEOUT_MS]: scripts the model to run COMMAND with the CLI's
# Bash tool (then a final text) and posts a message; remembers the turn counts.
cc_start() {
    local args
    args=$(jq -cn --arg c "$2" --argjson t "${3:-120000}" \
        '{command: $c, description: "probe", timeout: $t}')
    CC_DONE=$(ta_count "$1" turn.completed)
    CC_FAILED=$(ta_count "$1" turn.failed)
    ta_script "[$(ta_tool_call Bash "$args"),{\"kind\":\"text\",\"text\":\"Done.\"}]"
    tc_post "$1" "probe" >/dev/null
}

# cc_wait CONV: approves every permission request until the turn ends; prints
# "completed" or "failed".
cc_wait() {
    local perm deadline=$((SECONDS + 150))
    while ((SECONDS < deadline)); do
        if (($(ta_count "$1" turn.completed) > CC_DONE)); then
            echo completed
            return 0
        fi
        if (($(ta_count "$1" turn.failed) > CC_FAILED)); then
            echo failed
            return 0
        fi
        perm=$(tc_sql "select id from tool_permissions where conversation_id = '$1'
                       and status = 'pending' order by created_at limit 1")
        if [[ -n $perm ]]; then
            tc_req POST "/api/permissions/$perm/approve" '{}'
        else
            sleep 0.2
        fi
    done
    echo timeout
}

# cc_call CONV COMMAND: runs COMMAND through the CLI; prints the end of the turn, then
# the tool result (the newest tool message).
cc_call() {
    local end
    cc_start "$@"
    end=$(cc_wait "$1")
    echo "$end"
    tc_sql "select content from messages where conversation_id = '$1' and role = 'tool'
            order by seq desc limit 1"
}

host_has() { pgrep -f -x "sleep $1" >/dev/null; }
n1_fine() {
    [[ $(tc_pid n1) == "$N1" ]] && kill -0 "$N1" && tc_req GET "/api/conversations/$conv" &&
        [[ $TC_CODE == 200 ]]
}

conv=$(conv_on n1 '{"strategy":"ccs"}')
t_check "a claude-code conversation on n1" test -n "$conv"
other=$(conv_on n2 '{"strategy":"ccs"}')
WD=$BICKY_WORK_DIR
CWD=$WD/conversations/$conv
mkdir -p "$WD/conversations/$other"
echo "other-conversation-secret" >"$WD/conversations/$other/secret"
tc_req POST /api/worktrees '{"branch":"ccsandbox/other"}'
t_check "another worktree exists (201)" test "$TC_CODE" = 201
wt_path=$(tc_jq .path)
echo "worktree-secret" >"$wt_path/wt-secret"

# ---------------------------------------------------------------- the node's secrets
res=$(cc_call "$conv" "cat /proc/$N1/environ; cat /proc/$N1/cmdline; \
grep -l BICKY_SANDBOX_MARKER /proc/*/environ; echo nprocs=\$(ls /proc | grep -c '^[0-9]'); \
env | grep -c . ; echo done-proc")
echo "--- /proc: $res"
t_check "/proc: the turn completed and the call ran" \
    eval '[[ $(head -n 1 <<<"$res") == completed && $res == *done-proc* ]]'
t_check "/proc/<n1>/environ is not there" eval '[[ $res == *"/proc/$N1/environ: No such file"* ]]'
t_check "/proc lists only the sandbox's few processes" \
    eval '(( $(grep -o "nprocs=[0-9]*" <<<"$res" | cut -d= -f2) <= 12 ))'

# ---------------------------------------------------------------- other trees
res=$(cc_call "$conv" "ls $WD; cat $WD/conversations/$other/secret; ls $wt_path; \
cat $wt_path/wt-secret; ls $WD/worktrees $WD/pids $WD/claude; echo done-trees")
echo "--- trees: $res"
t_check "another conversation's directory and worktree are out of sight" \
    eval '[[ $res != *other-conversation-secret* && $res != *worktree-secret* &&
        $res == *done-trees* ]]'

# ---------------------------------------------------------------- the network
res=$(cc_call "$conv" "echo > /dev/tcp/127.0.0.1/$PG_PORT && echo pg-tcp-open; \
echo > /dev/tcp/127.0.0.1/$ROUTER_PORT && echo router-open; \
echo > /dev/tcp/127.0.0.1/$TA_FAKE_PORT && echo upstream-open; \
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
print(\"pg-unix-open\")' $PG_SOCK; echo done-net")
echo "--- network: $res"
t_check "the CLI reached the model (through the relay) and ran the probe" \
    eval '[[ $(head -n 1 <<<"$res") == completed && $res == *done-net* ]]'
t_check "Postgres (TCP, unix socket), n1's ROUTER and the upstream are unreachable" \
    eval '[[ $res != *-open* ]]'

# ---------------------------------------------------------------- writes and symlinks
W=ccw-$$
res=$(cc_call "$conv" "touch /tmp/$W; echo x > $WD/pwn-$W; echo x > /usr/pwn-$W; \
echo x > $WD/conversations/$other/pwn; ln -s /etc/shadow shadow; cat shadow; \
ln -s $WD/conversations/$other/secret s; cat s; ln -s /proc/$N1/environ e; cat e; \
ln -s $wt_path w; ls w/; echo mine > mine; echo done-writes")
echo "--- writes: $res"
t_check "nothing was written outside the worktree (on the host)" \
    eval '[[ ! -e /tmp/$W && ! -e $WD/pwn-$W && ! -e /usr/pwn-$W &&
        ! -e $WD/conversations/$other/pwn && $res == *done-writes* ]]'
t_check "symlinks out of the worktree lead nowhere" \
    eval '[[ $res != *other-conversation-secret* && $res != *wt-secret* && $res != *root:* ]]'
t_check "the worktree itself is writable" test -f "$CWD/mine"

# ---------------------------------------------------------------- file size, fork bomb
res=$(cc_call "$conv" 'head -c 50000000 /dev/zero > big; echo rc=$?')
size=$(stat -c %s "$CWD/big")
echo "--- file size: $res (big: $size bytes)"
t_check "a file stops at sandbox_file_mb (4 MiB): $size bytes" \
    eval '[[ $res == *rc=1* ]] && (( size <= 4 * 1048576 ))'
rm -f "$CWD/big"

res=$(cc_call "$conv" 'b() { b | b & }; b; sleep 60; echo bomb-survived')
echo "--- fork bomb: $(head -c 300 <<<"$res")"
t_check "a fork bomb kills the whole CLI run (sandbox_processes), the turn fails" \
    eval '[[ $(head -n 1 <<<"$res") == failed && $res != *bomb-survived* ]]'
t_check "nothing of it is left under n1" \
    bk_wait_for 10 eval '[[ -z $(pgrep -P "$N1" -f bicky-exec) ]]'
t_check "n1 unharmed after the fork bomb" n1_fine
t_check "the conversation shows the failed turn (error)" tc_wait_status "$conv" error 30

# ---------------------------------------------------------------- setsid vs cancel
w2=8892.$$
cc_start "$conv" "setsid sleep $w2 > /dev/null 2>&1 & sleep 300" 600000
(for _ in $(seq 1 300); do # approvals, in the background, while the test waits
    perm=$(tc_sql "select id from tool_permissions where conversation_id = '$conv'
                   and status = 'pending' order by created_at limit 1")
    [[ -n $perm ]] && tc_req POST "/api/permissions/$perm/approve" '{}'
    host_has "$w2" && break
    sleep 0.2
done) &
approver=$!
t_check "cancel: the escaped sleep runs (host)" bk_wait_for 60 host_has "$w2"
kill "$approver" 2>/dev/null
wait "$approver" 2>/dev/null
tc_req POST "/api/conversations/$conv/cancel"
t_check "cancel: 202 (got $TC_CODE)" test "$TC_CODE" = 202
t_check "cancel: no setsid sleep left on the host" bk_wait_for 15 eval '! host_has $w2'
t_check "cancel: the conversation is idle again" tc_wait_status "$conv" idle 30

# ---------------------------------------------------------------- the disk quota
res=$(cc_call "$conv" 'i=0; while :; do i=$((i+1)); echo 123456789 > q$i; done')
reason=$(ta_last_action "$conv" turn.failed '.error // .reason // empty')
echo "--- disk quota: $(head -n 1 <<<"$res"); reason: $reason"
t_check "many small files kill the CLI run at sandbox_disk_mb, the turn fails" \
    eval '[[ $(head -n 1 <<<"$res") == failed ]]'
t_check "the reason names the disk quota" \
    eval '[[ $reason == *"disk quota of 24 MiB (sandbox_disk_mb)"* ]]'
t_check "n1 unharmed after the disk quota" n1_fine
t_check "the conversation shows the failed turn (error)" tc_wait_status "$conv" error 30
res=$(cc_call "$conv" "touch after-quota")
reason=$(ta_last_action "$conv" turn.failed '.error // .reason // empty')
echo "--- over the quota: $(head -n 1 <<<"$res"); reason: $reason"
t_check "the next turn is refused, saying why" \
    eval '[[ $(head -n 1 <<<"$res") == failed && $reason == *"disk quota"*"not run"* ]]'
t_check "and nothing ran (host)" test ! -e "$CWD/after-quota"
find "$CWD" -name 'q*' -delete
res=$(cc_call "$conv" 'for i in $(seq 1 200); do echo x > s$i; done; echo wrote')
t_check "under the quota, the CLI writes files again" \
    eval '[[ $(head -n 1 <<<"$res") == completed && $res == *wrote* && -f $CWD/s200 ]]'

# ---------------------------------------------------------------- no bicky-fwd
rm -f "$TA_TMP/bin/bicky-fwd"
res=$(cc_call "$conv" "touch $CWD/nofwd-ran; echo > /dev/tcp/127.0.0.1/$PG_PORT && echo pg-open")
reason=$(ta_last_action "$conv" turn.failed '.error // .reason // empty')
echo "--- no bicky-fwd: $(head -n 1 <<<"$res"); reason: $reason"
t_check "without bicky-fwd the turn fails, naming it and the fix" \
    eval '[[ $(head -n 1 <<<"$res") == failed &&
        $reason == *"bicky-fwd, which is missing next to bicky-exec"*"install it"*"not run"* ]]'
t_check "and nothing ran with the host's network: no model call, no command (host)" \
    eval '[[ $(ta_requests | jq length) == 0 && ! -e $CWD/nofwd-ran ]]'
t_check "n1 unharmed without bicky-fwd" n1_fine

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
tc_finish agents_claude_sandbox
