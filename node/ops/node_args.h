/*  node_args — the node's side of the shared op table (proto/proto_ops.h):
    every request's args are checked against its op's row in dispatch, before
    any op runs, with the checker the gateway uses (common/op_args.h); the ops
    then read the checked values and add only what the table cannot say
    (a configured strategy, a decodable cursor, a valid branch). Refusals name
    the field and what is allowed. Loop thread only. */
#ifndef BICKY_NODE_ARGS_H
#define BICKY_NODE_ARGS_H

#include "node/core/node_core.h"

/* Checks (*req_p)->args against its op's row. Returns 0, or -1 after
   answering (400 invalid_field naming the field; 401 for auth) and destroying
   the request. */
int node_args_check(node_t *node, node_req_t **req_p);

/* A checked string argument (borrowed from args), or NULL when absent or null. */
const char *node_args_str(const json_t *args, const char *key);

/* Answers 400 {"error": <formatted message>, "code": "invalid_field", "field"}
   and destroys the request. */
void node_reply_invalid(node_t *node, node_req_t **req_p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 400 for a cursor that is not one the node made. */
void node_reply_bad_cursor(node_t *node, node_req_t **req_p);
/* 400 for a strategy this node does not run, listing the ones it does. */
void node_reply_bad_strategy(node_t *node, node_req_t **req_p);

#endif
