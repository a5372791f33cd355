/*  node_sql — the node's prepared statements: their names, and the function
    that registers them on a connection (node_sql.c). Loop thread only. */
#ifndef BICKY_NODE_SQL_H
#define BICKY_NODE_SQL_H

#include "common/db_conn.h"

/* Registers every prepared statement on db. -1 on failure. */
int node_sql_prepare(db_conn_t *db);
/* Statement names. */
#define NODE_Q_CONV_LOAD       "node_conv_load"
#define NODE_Q_CONV_INSERT     "node_conv_insert"
#define NODE_Q_CONV_PATCH      "node_conv_patch"
#define NODE_Q_CONV_TOUCH      "node_conv_touch"
#define NODE_Q_CONV_TOUCH_LITE "node_conv_touch_lite" /* without the conversation JSON */
#define NODE_Q_CONV_GET        "node_conv_get"
#define NODE_Q_CONV_EXISTS     "node_conv_exists"
#define NODE_Q_CONV_LIST       "node_conv_list"       /* first page */
#define NODE_Q_CONV_LIST_AFTER "node_conv_list_after" /* page after a cursor */
#define NODE_Q_WT_CHECK        "node_wt_check"
#define NODE_Q_MSG_INSERT      "node_msg_insert"
#define NODE_Q_MSG_FINISH      "node_msg_finish"
#define NODE_Q_MSG_START       "node_msg_start"
#define NODE_Q_MSG_CANCEL      "node_msg_cancel_pending"
#define NODE_Q_MSG_LIST        "node_msg_list"
#define NODE_Q_EVT             "node_evt"
#define NODE_Q_EVT_EMBED       "node_evt_embed"   /* embeds a row the same set inserts */
#define NODE_Q_EVT_MSG_DB      "node_evt_msg_db"  /* message stored earlier */
#define NODE_Q_MSG_MULTI       "node_msg_multi"   /* several NODE_Q_MSG_INSERT (node_ws_merge.c) */
#define NODE_Q_EVT_MULTI       "node_evt_multi"   /* several NODE_Q_EVT / _EMBED */
#define NODE_Q_TOUCH_MULTI     "node_touch_multi" /* touches of several write sets */
#define NODE_Q_EVT_CONV        "node_evt_conv"
#define NODE_Q_EVT_LIST        "node_evt_list"
#define NODE_Q_EVT_TEAM        "node_evt_team"
#define NODE_Q_IDEM_GET        "node_idem_get"
#define NODE_Q_IDEM_DEL        "node_idem_del"
#define NODE_Q_IDEM_CONV       "node_idem_conv"
#define NODE_Q_IDEM_MSG        "node_idem_msg"
#define NODE_Q_IDEM_TEXT       "node_idem_text"
#define NODE_Q_AUTH            "node_auth"
#define NODE_Q_STATUS          "node_status"
#define NODE_Q_OWN_TIMEOUT     "node_own_timeout" /* claim: lock_timeout of its transaction */
#define NODE_Q_OWN_CLAIMS      "node_own_claims"  /* claims of one loop turn's activations */
#define NODE_Q_OWN_CHECK       "node_own_check"   /* guard: 22012 unless the claim is ours */
#define NODE_Q_OWN_CHECK_MULTI "node_own_check_m" /* one guard for a whole group */
#define NODE_Q_OWN_CREATE      "node_own_create"  /* claim of a conversation created by us */
#define NODE_Q_OWN_RELEASE     "node_own_release" /* passivation: delete our claims */
#define NODE_Q_OWN_CLEANUP     "node_own_cleanup" /* start: delete claims of an earlier run */

#endif
