/*  node_ws_stmt — private to the write-set code (node_commit.c, node_ws_merge.c):
    one statement of a write set, and the merged statements that send several
    inserts (of one write set, or of a whole group) as one. Loop thread only. */
#ifndef BICKY_NODE_WS_STMT_H
#define BICKY_NODE_WS_STMT_H

#include "node/store/node_store.h"

#define STMT_COLS_MAX 6 /* row-0 columns kept per statement */

typedef struct node_stmt_t {
    const char *name;          /* prepared statement (static string) */
    uint8_t kind;              /* node_stmt_kind_t */
    uint8_t status;            /* 0 = ok on the last attempt, 1 = failed here */
    bool merged;               /* sent inside a write set's node_merged_t, not alone */
    int nparams;               /* entries in params */
    char **params;             /* owned copies; NULL entries are SQL NULL */
    int rows;                  /* rows of the last successful attempt, -1 unknown */
    char *cols[STMT_COLS_MAX]; /* row-0 values of the last successful attempt */
    node_ws_t *ws;             /* owner */
} node_stmt_t;

/* Several message inserts, event inserts or touches sent as one multi-row statement
   (node_ws_merge.c): NODE_Q_MSG_MULTI, NODE_Q_EVT_MULTI or NODE_Q_TOUCH_MULTI. Each
   member statement still gets its own row of the result, matched by conversation and
   seq (or conversation for touches), so readers of a write set see no difference. */
struct node_merged_t {
    const char *name;      /* the multi-row statement */
    int kind;              /* what it merges (node_ws_merge.c s_kind_t) */
    int at;                /* write-set merge: sent just before statement `at` */
    bool group;            /* merges write sets of a group: a failure is not attributed */
    int nparams;           /* entries in params */
    char **params;         /* owned; Postgres array literals */
    node_stmt_t **members; /* the statements it stands for, in order */
    int n;                 /* members */
    node_merged_t *next;   /* next merged statement, in sending order */
};

/* Frees a statement's result of the last attempt. */
void node_stmt_clear_result(node_stmt_t *s);
/* Merges the runs of message and event inserts of ws (2 or more of a kind), sent in
   place of those statements. On OOM nothing is merged. */
void node_ws_merge(node_ws_t *ws);
/* Frees a list of merged statements (clears the members' merged flags when ws merge). */
void node_merged_free_list(node_merged_t **list_p);
/* Whether ws can have its inserts and touch sent with those of other write sets: its
   message and event inserts are one run followed by its (lite) touch, and no other
   statement inserts events. *run and *touch get the run's first index and the touch's. */
bool node_ws_groupable(const node_ws_t *ws, size_t *run, size_t *touch);
/* The merged statements of the groupable write sets of a group (messages, events,
   touches; 1 to 3 statements), or NULL (none, or OOM: the sets go one by one). */
node_merged_t *node_group_merge(node_ws_t *const *sets, size_t n);
/* Result callback of a merged statement (arg: node_merged_t). */
void node_merged_result(void *arg, db_status_t status, const db_result_t *res);

#endif
