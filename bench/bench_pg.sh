# shellcheck shell=bash
# bench/bench_pg.sh — sourced by bench/import.sh and bench/pgfloor.sh (after
# deploy/local/lib.sh): a private Postgres for one benchmark run.

# bench_pg_start DIR BIN [drop]: starts a Postgres in DIR/pg, sized and
# durable as deploy/local/up starts it (bk_pg_size), on a free port; creates
# the database bench, exports BICKY_DATABASE_URL and migrates it with
# BIN/bickyctl. Sets PGDIR; an EXIT trap stops the server and removes DIR/pg
# (with "drop", DIR too).
bench_pg_start() {
    local dir=$1 bin=$2 sock port
    PGDIR=$dir/pg
    BENCH_PG_DROP=
    [[ ${3:-} == drop ]] && BENCH_PG_DROP=$dir
    sock=$(bk_pg_sockdir "$dir")
    port=$(bk_free_port 20000 32000)
    trap 'bk_pg_stop "$PGDIR" || true; rm -rf "$PGDIR" ${BENCH_PG_DROP:+"$BENCH_PG_DROP"}' EXIT
    rm -rf "$PGDIR"
    bk_pg_init "$PGDIR" || true
    bk_pg_size "$PGDIR" >/dev/null
    bk_pg_start "$PGDIR" "$sock" "$port"
    bk_pg_createdb "$sock" "$port" bench
    export BICKY_DATABASE_URL
    BICKY_DATABASE_URL=$(bk_pg_conninfo "$sock" "$port" bench)
    "$bin/bickyctl" migrate >/dev/null
}

# bench_pg_cpu: CPU seconds (x100) the server has spent so far: the
# postmaster's own and its reaped children's (a client's backend is reaped
# once it disconnects).
bench_pg_cpu() {
    local pid
    pid=$(head -n 1 "$PGDIR/data/postmaster.pid")
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat"
}
