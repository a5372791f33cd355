#!/usr/bin/env bash
# test_agents_wt.sh — /api/worktrees end to end on a real cluster whose nodes
# share one repository (BICKY_REPO): create (201, the branch and directory
# exist; base_ref HEAD when no base is given, the same in the row, GET and
# the list), list, get, a second create of the branch (409), branch injection
# attempts (400 naming "branch", no ref and no directory created), creates
# racing on both nodes (serialised, all succeed), a conversation bound to a
# worktree running its tools there, a vanished directory shown "inactive",
# ids stable across a node restart, another team (404 for A's worktree; its
# own refs namespace: A's branch, full ref name, commit or prefix as base are
# 404, a branch named like A's is its own, the list shows only its own),
# delete (204, then 404), and the worktree.created / worktree.removed events.
# Env: see tests/lib/cluster.sh; BICKY_FAKE_LLM_PORTS (7700-7799).
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=agents_wt
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/agents.sh
source "$SRC/tests/lib/agents.sh"

export BICKY_TEST_PORT_RANGE=${BICKY_TEST_PORT_RANGE:-21000-21499}
export BICKY_TEST_HTTP_PORT_RANGE=${BICKY_TEST_HTTP_PORT_RANGE:-18800-18899}
export BICKY_RESTART_BACKOFF_MS=500
TA_TMP=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/agents_wt_fake.XXXXXX")
ta_setup "$TA_TMP"
tc_start agents_wt
trap 'rc=$?; ta_teardown; [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$TA_TMP"; (exit $rc); tc_cleanup' EXIT

REPO=$BICKY_REPO
branches() { git -C "$REPO" for-each-ref --format='%(refname:short)' refs/heads | sort | tr '\n' ' '; }
wt_dirs() { find "$BICKY_WORK_DIR/worktrees" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- create, list, get

tc_req GET /api/worktrees
t_check "GET /api/worktrees: 200, empty" test "$TC_CODE $(tc_jq '.data | length')" = "200 0"
tc_req POST /api/worktrees '{"branch":"feature/one"}'
t_check "POST /api/worktrees: 201" test "$TC_CODE" = 201
wt=$(tc_jq .id)
path=$(tc_jq .path)
got="$(tc_jq '"\(.branch) \(.status) \(.head | length)"') ${path#"$BICKY_WORK_DIR"/worktrees/}"
t_check "the answer: branch, active, a head, path under the work dir ($got)" \
    test "$got" = "feature/one active 40 $wt"
t_check "the branch exists in the repository" eval "[[ '$(branches)' == *feature/one* ]]"
t_check "the worktree directory has the checkout" test -f "$path/README.md"
created_base=$(tc_jq .base_ref)
t_check "no base given: the answer says base_ref HEAD ($created_base)" test "$created_base" = HEAD
tc_req GET "/api/worktrees/$wt"
t_check "GET /api/worktrees/:id: 200 active" test "$TC_CODE $(tc_jq .status)" = "200 active"
t_check "GET agrees with the create on base_ref ($(tc_jq .base_ref))" \
    test "$(tc_jq .base_ref)" = "$created_base"
t_check "the row stores it" \
    test "$(tc_sql "select coalesce(base_ref, 'NULL') from worktrees where id = '$wt'")" = HEAD
tc_req GET /api/worktrees
t_check "the list has it" test "$(tc_jq '[.data[].id] | join(",")')" = "$wt"
t_check "the list agrees on base_ref" test "$(tc_jq '.data[0].base_ref')" = HEAD
tc_req POST /api/worktrees '{"branch":"feature/one"}'
t_check "the same branch again: 409" test "$TC_CODE $(tc_jq .code)" = "409 conflict"
tc_req POST /api/worktrees '{"branch":"feature/two","base":"no-such-ref"}'
t_check "an unknown base: 404 (got $TC_CODE)" test "$TC_CODE" = 404
tc_req POST /api/worktrees '{"base":"main"}'
t_check "no branch: 400" test "$TC_CODE $(tc_jq .field)" = "400 branch"

# ---------------------------------------------------------------- branch injection

before_b=$(branches)
before_d=$(wt_dirs)
inject_ok=1
for b in 'a b' '../x' '-rf' 'x;rm -rf /' '$(touch pwned)' 'a..b' 'HEAD' '@' 'a~1' 'a^' 'a:b' \
    'a?' 'a*' 'a[' 'x.lock' '.hidden' 'a//b' 'a/' '/abs' 'a@{1}' "$(printf 'a\tb')" \
    "$(printf 'a\033b')"; do
    body=$(jq -cn --arg b "$b" '{branch: $b}')
    tc_req POST /api/worktrees "$body"
    if [[ $TC_CODE != 400 || $(tc_jq .field) != branch ]]; then
        echo "branch '$b': $TC_CODE $TC_BODY"
        inject_ok=0
    fi
done
t_check "22 hostile branch names: all 400 naming branch" test "$inject_ok" = 1
tc_req POST /api/worktrees "{\"branch\":\"$(head -c 300 /dev/zero | tr '\0' a)\"}"
t_check "a 300-character branch: 400" test "$TC_CODE" = 400
t_check "no branch was created" test "$(branches)" = "$before_b"
t_check "no directory was created" test "$(wt_dirs)" = "$before_d"
t_check "nothing was touched in the cwd of the nodes" test ! -e pwned -a ! -e "$TC_VAR/pwned"

# ---------------------------------------------------------------- creates racing on both nodes

racers=()
for i in 1 2 3 4 5 6; do
    curl -s -o "$TC_VAR/race$i" -w '%{http_code}\n' -m 20 -H "Authorization: Bearer $BICKY_TOKEN" \
        -H "$TC_JSON" -d "{\"branch\":\"race/$i\"}" "$BICKY_URL/api/worktrees" >"$TC_VAR/race$i.code" &
    racers+=($!)
done
wait "${racers[@]}"
codes=$(cat "$TC_VAR"/race*.code | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
t_check "6 concurrent creates (round robin on 2 nodes): all 201 ($codes)" test "$codes" = "201x6 "
tc_req GET '/api/worktrees?limit=3'
t_check "paging: 3 items and a cursor" test "$(tc_jq '(.data | length) | tostring')$(tc_jq '.next_cursor != null')" = "3true"
cursor=$(tc_jq .next_cursor)
tc_req GET "/api/worktrees?limit=10&cursor=$cursor"
t_check "the second page has the other 4" test "$(tc_jq '.data | length')" = 4
t_check "git knows 7 worktrees" test "$(git -C "$REPO" worktree list | wc -l)" = 8

# ---------------------------------------------------------------- a conversation works in its worktree

conv=$(tc_conv "{\"strategy\":\"gpt\",\"worktree_id\":\"$wt\"}")
t_check "a conversation bound to the worktree" test -n "$conv"
ta_script "[$(ta_tool_call write_file '{"path":"from-model.txt","content":"written in the worktree"}'),$(ta_tool_call read_file '{"path":"README.md"}'),{\"kind\":\"text\",\"text\":\"done\"}]"
tc_post "$conv" "write a file" >/dev/null
ta_wait "$conv" permission.requested
tc_req POST "/api/permissions/$(ta_perm "$conv")/approve" '{}'
ta_wait "$conv" permission.requested 2
tc_req POST "/api/permissions/$(ta_perm "$conv" 2)/approve" '{}'
t_check "the turn completes" ta_wait "$conv" turn.completed
t_check "write_file wrote into the worktree" \
    test "$(cat "$path/from-model.txt" 2>/dev/null)" = "written in the worktree"
t_check "read_file read the worktree's README" \
    eval "ta_requests | jq -r '.[2].body | tostring' | grep -q 'hello from the repo'"
tc_req POST /api/conversations '{"worktree_id":"6f1c1a4e-0000-4000-8000-000000000000"}'
t_check "an unknown worktree_id: 400" test "$TC_CODE $(tc_jq .field)" = "400 worktree_id"

# ---------------------------------------------------------------- teams, restarts, vanished dirs

other=$(tc_team_token wt-other-team)
TC_TOKEN=$other
tc_req GET "/api/worktrees/$wt"
t_check "another team: GET is 404" test "$TC_CODE" = 404
tc_req DELETE "/api/worktrees/$wt"
t_check "another team: DELETE is 404" test "$TC_CODE" = 404
tc_req GET /api/worktrees
t_check "another team: empty list" test "$(tc_jq '.data | length')" = 0

# Team A's branch gets a commit of its own; team B can neither see it, nor
# branch from it, nor learn its name; its own branch of the same name is
# independent. Both live in the one repository, each in its namespace.
team_a=$(tc_sql "select team_id from worktrees where id = '$wt'")
git -C "$path" -c user.name=a -c user.email=a@example.com commit -q --allow-empty -m "team A work"
a_head=$(git -C "$REPO" rev-parse "refs/heads/team/$team_a/feature/one")
main_head=$(git -C "$REPO" rev-parse HEAD)
t_check "team A's branch lives in its namespace, ahead of HEAD" \
    test -n "$a_head" -a "$a_head" != "$main_head"
t_check "no branch outside a team namespace was made" \
    test -z "$(git -C "$REPO" for-each-ref --format='%(refname)' refs/heads | grep -v '^refs/heads/team/' | grep -v '^refs/heads/main$')"
b_refused=1
for base in feature/one "team/$team_a/feature/one" "$a_head" "${a_head:0:7}" race/1; do
    tc_req POST /api/worktrees "$(jq -cn --arg b "$base" '{branch: "b/x", base: $b}')"
    if [[ $TC_CODE != 404 || $TC_BODY == *"$team_a"* || $TC_BODY == *feature* ]]; then
        echo "team B, base '$base': $TC_CODE $TC_BODY"
        b_refused=0
    fi
done
t_check "team B: team A's branch, its full name, its commit, a prefix as base: 404" \
    test "$b_refused" = 1
tc_req POST /api/worktrees '{"branch":"b/x","base":":/team A work"}'
t_check "team B: a revparse search as base: 400 base" test "$TC_CODE $(tc_jq .field)" = "400 base"
tc_req POST /api/worktrees '{"branch":"feature/one"}'
t_check "team B: a branch named like team A's: 201, at HEAD (not A's work)" \
    test "$TC_CODE $(tc_jq .branch) $(tc_jq .head)" = "201 feature/one $main_head"
b_wt=$(tc_jq .id)
b_path=$(tc_jq .path)
team_b=$(tc_sql "select team_id from worktrees where id = '$b_wt'")
t_check "… in team B's namespace" \
    test "$(git -C "$REPO" rev-parse "refs/heads/team/$team_b/feature/one")" = "$main_head"
tc_req POST /api/worktrees '{"branch":"feature/one"}'
t_check "team B: its own branch again: 409" test "$TC_CODE" = 409
git -C "$b_path" -c user.name=b -c user.email=b@example.com commit -q --allow-empty -m "team B work"
b_head=$(git -C "$b_path" rev-parse HEAD)
tc_req POST /api/worktrees '{"branch":"b/from-own","base":"feature/one"}'
t_check "team B: base = its own feature/one gives its own commit" \
    test "$TC_CODE $(tc_jq .head)" = "201 $b_head"
tc_req POST /api/worktrees '{"branch":"b/from-main","base":"main"}'
t_check "team B: base = HEAD's branch (main), shared by every team: 201" \
    test "$TC_CODE $(tc_jq .head)" = "201 $main_head"
tc_req GET /api/worktrees
t_check "team B lists only its own 3 worktrees" \
    test "$(tc_jq '[.data[].branch] | sort | join(",")')" = "b/from-main,b/from-own,feature/one"
TC_TOKEN=$BICKY_TOKEN
tc_req GET "/api/worktrees/$wt"
t_check "team A's worktree still has its own head" test "$TC_CODE $(tc_jq .head)" = "200 $a_head"
tc_req POST /api/worktrees '{"branch":"a/from-own","base":"feature/one"}'
t_check "team A: base = its feature/one gives A's commit" \
    test "$TC_CODE $(tc_jq .head)" = "201 $a_head"
tc_req DELETE "/api/worktrees/$(tc_jq .id)"
t_check "… removed again (204)" test "$TC_CODE" = 204

kill -KILL "$(tc_pid n1)" "$(tc_pid n2)"
t_check "both nodes come back" bk_wait_for 30 eval 'tc_node_is n1 alive && tc_node_is n2 alive'
bk_wait_for 10 bk_http_ok "$BICKY_URL/ready" >/dev/null
tc_req GET "/api/worktrees/$wt"
t_check "after both nodes restarted: same id, same path, active" \
    test "$TC_CODE $(tc_jq '"\(.id) \(.path) \(.status)"')" = "200 $wt $path active"

race_wt=$(tc_sql "select id from worktrees where branch = 'race/1'")
race_path=$(tc_sql "select path from worktrees where branch = 'race/1'")
rm -rf "$race_path"
tc_req GET "/api/worktrees/$race_wt"
t_check "a vanished directory: inactive" test "$TC_CODE $(tc_jq .status)" = "200 inactive"
tc_req DELETE "/api/worktrees/$race_wt"
t_check "deleting an inactive worktree: 204" test "$TC_CODE" = 204

# ---------------------------------------------------------------- delete

echo dirty >"$path/dirty.txt"
tc_req DELETE "/api/worktrees/$wt"
t_check "delete with uncommitted files: 409" test "$TC_CODE" = 409
t_check "… nothing removed" test -d "$path"
tc_req DELETE "/api/worktrees/$wt?force=true"
t_check "delete with force: 204" test "$TC_CODE" = 204
t_check "the directory is gone" test ! -e "$path"
t_check "the branch stays" eval "[[ '$(branches)' == *feature/one* ]]"
tc_req GET "/api/worktrees/$wt"
t_check "GET after delete: 404" test "$TC_CODE" = 404
tc_req DELETE "/api/worktrees/$wt"
t_check "DELETE again: 404" test "$TC_CODE" = 404
tc_req GET '/api/events?limit=500'
t_check "events: 8 worktree.created, 3 worktree.removed (team A's only)" \
    test "$(tc_jq '[.data[] | select(.type | startswith("worktree.")) | .type] | group_by(.) | map("\(.[0])x\(length)") | join(" ")')" \
    = "worktree.createdx8 worktree.removedx3"
t_check "the events have no conversation" \
    test "$(tc_jq '[.data[] | select(.type | startswith("worktree.")) | .conversation_id] | unique | tostring')" = "[null]"

tc_finish agents_wt
