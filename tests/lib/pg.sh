# shellcheck shell=bash
# pg.sh — a throwaway PostgreSQL server for tests (needs deploy/local/lib.sh).
# t_pg_start DIR starts one in DIR/pg on a free port (BICKY_TEST_PG_PORT
# overrides) with durability off, sockets in DIR/sock; t_pg_stop DIR stops it.
# After t_pg_start: T_PG_PORT, T_PG_SOCKDIR.

t_pg_start() {
    local dir=$1
    T_PG_PORT=${BICKY_TEST_PG_PORT:-$(bk_free_port)} || bk_die "no free port for PostgreSQL"
    T_PG_SOCKDIR=$dir/sock
    bk_pg_init "$dir/pg" || bk_die "a test PostgreSQL already exists in $dir/pg"
    bk_pg_start "$dir/pg" "$T_PG_SOCKDIR" "$T_PG_PORT" fsync=off synchronous_commit=off \
        full_page_writes=off max_connections=200
}

t_pg_stop() {
    if [[ -f $1/pg/data/PG_VERSION ]]; then
        bk_pg_stop "$1/pg" || true
    fi
}
