#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted strings are eval'd by the checks
# test_db_promote.sh — the primary lost, its synchronous standby promoted,
# under load (issue 17). Two Postgres servers: a primary and a streaming
# standby made with pg_basebackup, synchronous (synchronous_standby_names =
# '*', synchronous_commit on), so a commit returns only once the standby has
# the WAL. The cluster is started on the libpq multi-host conninfo of both
# (BICKY_EXTERNAL_DATABASE_URL, target_session_attrs=read-write). While two
# clients post, the primary is crashed (pg_ctl -m immediate) and the standby
# promoted: posts are refused (503 with Retry-After) and then accepted again
# by the promoted server without restarting any process; every message
# acknowledged with 202 is on the promoted server, and seqs are gapless.
# The time from the promotion to the first 202 is printed. Env: see
# tests/lib/cluster.sh.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=db_promote
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"

# ---------------------------------------------------------------- primary and standby
PGT=$(mktemp -d "${BICKY_TEST_TMPDIR:-/tmp}/db_promote_pg.XXXXXX")
chmod 755 "$PGT" # as root, the servers run as postgres
pg_cleanup() {
    bk_pg_stop "$PGT/a" >/dev/null 2>&1
    bk_pg_stop "$PGT/b" >/dev/null 2>&1
    if ((T_FAILED > 0)); then
        echo "--- primary log"
        tail -n 20 "$PGT/a/server.log" 2>/dev/null
        echo "--- standby log"
        tail -n 20 "$PGT/b/server.log" 2>/dev/null
    fi
    [[ ${BICKY_TEST_KEEP:-0} == 1 ]] || rm -rf "$PGT"
}
trap 'pg_cleanup' EXIT
pa=$(bk_free_port) || bk_die "no free port"
pb=$(bk_free_port) || bk_die "no free port"
while ((pb == pa)); do pb=$(bk_free_port); done
bk_pg_init "$PGT/a" >/dev/null
bk_pg_size "$PGT/a" >/dev/null
bk_pg_start "$PGT/a" "$PGT/sa" "$pa" "shared_buffers=128MB"
bin=$(bk_pg_bin)
mkdir -p "$PGT/b"
bk_pg_own "$PGT/b"
chmod 700 "$PGT/b"
bk_as_pg "$bin/pg_basebackup" -D "$PGT/b/data" -R -X stream -c fast \
    -d "host=127.0.0.1 port=$pa user=postgres application_name=standby" >"$PGT/basebackup.log" 2>&1 ||
    {
        cat "$PGT/basebackup.log"
        bk_die "pg_basebackup failed"
    }
bk_pg_start "$PGT/b" "$PGT/sb" "$pb" "shared_buffers=128MB"
psql_a() { psql "host=127.0.0.1 port=$pa user=postgres dbname=postgres" -X -q -At -c "$1" 2>&1; }
t_check "the standby streams from the primary" \
    bk_wait_for 30 eval '[[ $(psql_a "select state from pg_stat_replication") == streaming ]]'
psql_a "alter system set synchronous_standby_names = '*'" >/dev/null
psql_a "select pg_reload_conf()" >/dev/null
t_check "and is synchronous" \
    bk_wait_for 30 eval '[[ $(psql_a "select sync_state from pg_stat_replication") == sync ]]'
bk_pg_createdb "$PGT/sa" "$pa" bicky

# ---------------------------------------------------------------- the cluster on both
export BICKY_EXTERNAL_DATABASE_URL="host=127.0.0.1,127.0.0.1 port=$pa,$pb user=postgres dbname=bicky target_session_attrs=read-write connect_timeout=3"
tc_start db_promote
trap 'rc=$?; tc_posts_stop; pg_cleanup; (exit $rc); tc_cleanup' EXIT
t_check "six conversations, two clients posting to them" tc_posts_start 6 2
t_check "posts are accepted (202) on the primary" \
    bk_wait_for 90 eval '(( $(tc_posts | grep -c "^[0-9]* 202 ") >= 20 ))'

pids_before=$(for p in registry n1 n2 gateway; do echo "$p=$(tc_pid $p)"; done)
t_crash=$(bk_now_ms)
pg_ctl_q() { bk_as_pg "$bin/pg_ctl" "$@" &>/dev/null; }
t_check "the primary crashes (pg_ctl -m immediate)" pg_ctl_q -D "$PGT/a/data" -m immediate -w stop
t_check "posts are refused (503 with Retry-After) without a primary" \
    bk_wait_for 60 eval '[[ -n $(tc_posts | awk -v t='"$t_crash"' "\$1 > t && \$2 == 503 && \$4 != \"-\"") ]]'
t_check "the standby is promoted" pg_ctl_q -D "$PGT/b/data" -w promote
t_prom=$(bk_now_ms)
t_check "posts are accepted again, by the promoted server" \
    bk_wait_for 60 eval '[[ -n $(tc_posts | awk -v t='"$t_prom"' "\$1 >= t && \$2 == 202") ]]'
first=$(tc_posts | awk -v t="$t_prom" '$1 >= t && $2 == 202 { print $1 }' | sort -n | head -n 1)
echo "failover: first 202 of a post sent $((first - t_prom)) ms after the promotion" \
    "($((t_prom - t_crash)) ms from the crash to the promotion)"
t_check "and keep being accepted (20 more 202)" \
    bk_wait_for 90 eval '(( $(tc_posts | awk -v t='"$first"' "\$1 > t && \$2 == 202" | wc -l) >= 20 ))'
tc_posts_stop
pids_after=$(for p in registry n1 n2 gateway; do echo "$p=$(tc_pid $p)"; done)
t_check "no process died or was restarted" test "$pids_before" = "$pids_after"

echo "posts: $(tc_posts | awk '{ print $2 }' | sort | uniq -c | tr '\n' ' ')"
t_check "no post hung (curl -m 15 gives 000)" eval '! tc_posts | grep -q "^[0-9]* 000 "'
t_check "every answer was 202, or 503/504 with Retry-After" \
    eval '[[ -z $(tc_posts | awk "!(\$2 == 202 || ((\$2 == 503 || \$2 == 504) && \$4 != \"-\"))") ]]'
ids=$(tc_posts | awk '$2 == 202 { printf "%s'"'"'%s'"'"'", (n++ ? "," : ""), $3 }')
acked=$(tc_posts | grep -c "^[0-9]* 202 ")
t_check "the database answering is the promoted standby" \
    test "$(tc_sql "select pg_is_in_recovery()::text || ' ' || current_setting('port')")" = "false $pb"
t_check "every acknowledged message is on the promoted server ($acked)" \
    test "$(tc_sql "select count(*) from messages where id in ($ids)")" = "$acked"
tc_finish db_promote
