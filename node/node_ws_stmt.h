/*  node_ws_stmt — private to the write-set code (node_commit.c, node_ws_merge.c):
    one statement of a write set, and the merged statements that send several
    inserts of a set as one. Loop thread only. */
#ifndef BICKY_NODE_WS_STMT_H
#define BICKY_NODE_WS_STMT_H

#include "node/node_internal.h"

#define STMT_COLS_MAX 6 /* row-0 columns kept per statement */

typedef struct node_stmt_t {
    const char *name;          /* prepared statement (static string) */
    uint8_t kind;              /* node_stmt_kind_t */
    uint8_t status;            /* 0 = ok on the last attempt, 1 = failed here */
    bool merged;               /* sent inside a node_merged_t, not on its own */
    int nparams;               /* entries in params */
    char **params;             /* owned copies; NULL entries are SQL NULL */
    int rows;                  /* rows of the last successful attempt, -1 unknown */
    char *cols[STMT_COLS_MAX]; /* row-0 values of the last successful attempt */
    node_ws_t *ws;             /* owner */
} node_stmt_t;

/* Several message inserts, or several event inserts, of one write set sent as one
   multi-row INSERT (node_ws_merge.c). Each member statement still gets its own row of
   the result (matched by seq), so readers of the write set see no difference. */
struct node_merged_t {
    node_ws_t *ws;       /* owner */
    const char *name;    /* NODE_Q_MSG_MULTI or NODE_Q_EVT_MULTI */
    int at;              /* sent just before statement `at` (the first of its run) */
    int nparams;         /* entries in params */
    char **params;       /* owned; arrays as Postgres array literals */
    int *members;        /* statement indexes, in order */
    int n;               /* members */
    node_merged_t *next; /* next merged statement of the set, in sending order */
};

/* Frees a statement's result of the last attempt. */
void node_stmt_clear_result(node_stmt_t *s);
/* Merges the runs of message and event inserts of ws (2 or more of a kind). On OOM
   nothing is merged: the set is sent statement by statement. */
void node_ws_merge(node_ws_t *ws);
/* Frees ws's merged statements. */
void node_ws_merge_free(node_ws_t *ws);
/* Result callback of a merged statement (arg: node_merged_t). */
void node_ws_merge_result(void *arg, db_status_t status, const db_result_t *res);

#endif
