/*  bench_sql — prints the SQL text of one of the node's named prepared statements
    (node/store/node_sql.c), so bench/run can EXPLAIN exactly what the node runs.
    It links node_sql.c alone and stands in for db_conn_prepare, recording the
    statements instead of sending them. Usage: bench_sql NAME (no NAME: list). */
#include "common/db_conn.h"
#include "node/ops/node_ops.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *want; /* statement asked for, NULL = list names */
    int found;        /* printed it */
} s_query_t;

static s_query_t s_query;

int db_conn_prepare(db_conn_t *self, const char *name, const char *sql, int nparams)
{
    if (!s_query.want) {
        printf("%s %d\n", name, nparams);
    } else if (strcmp(name, s_query.want) == 0) {
        printf("%s\n", sql);
        s_query.found = 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--help") == 0)) {
        printf("usage: bench_sql [NAME]   prints a node statement's SQL (no NAME: list them)\n");
        return argc == 2 ? 0 : 2;
    }
    s_query.want = argc == 2 ? argv[1] : NULL;
    node_sql_prepare(NULL);
    if (s_query.want && !s_query.found) {
        fprintf(stderr, "bench_sql: no statement named %s\n", s_query.want);
        return 1;
    }
    return 0;
}
