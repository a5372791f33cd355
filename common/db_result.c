/*  db_result — read-only accessors over the PGresult a statement callback
    borrows. Owner-thread only; valid only during that callback. */
#include "common/db_conn_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int db_result_rows(const db_result_t *res)
{
    assert(res);
    return PQntuples(res->pg);
}

int db_result_cols(const db_result_t *res)
{
    assert(res);
    return PQnfields(res->pg);
}

const char *db_result_value(const db_result_t *res, int row, int col)
{
    assert(res);
    if (row < 0 || col < 0 || row >= PQntuples(res->pg) || col >= PQnfields(res->pg)) {
        return NULL;
    }
    if (PQgetisnull(res->pg, row, col)) {
        return NULL;
    }
    return PQgetvalue(res->pg, row, col);
}

long db_result_affected(const db_result_t *res)
{
    assert(res);
    /* PQcmdTuples also counts SELECT/FETCH/MOVE rows; only writes are "affected". */
    static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY "};
    const char *tag = PQcmdStatus(res->pg);
    for (size_t i = 0; tag && i < sizeof writes / sizeof writes[0]; i++) {
        if (strncmp(tag, writes[i], strlen(writes[i])) == 0) {
            const char *n = PQcmdTuples(res->pg);
            return n && *n ? strtol(n, NULL, 10) : 0;
        }
    }
    return 0;
}
