/*  bicky-mcp-permission internals: the server state shared by mcp_main.c
    (flags, zloop, stdin lines, the node's DEALER) and mcp_rpc.c (JSON-RPC
    2.0 requests → replies or questions to the node). One thread. */
#ifndef BICKY_MCP_INTERNAL_H
#define BICKY_MCP_INTERNAL_H

#include "proto/proto.h"
#include "proto/proto_ops.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCP_MAX_LINE     (4u * 1024 * 1024) /* longest JSON-RPC line read from stdin */
#define MCP_MAX_CALLS    64                 /* tools/call requests waiting for the node */
#define MCP_PROTOCOL     "2025-11-25"       /* newest MCP revision spoken */
#define MCP_TOOL_NAME    "approval_prompt"  /* the one tool */
#define MCP_ERR_PARSE    -32700
#define MCP_ERR_REQUEST  -32600
#define MCP_ERR_METHOD   -32601
#define MCP_ERR_PARAMS   -32602
#define MCP_ERR_INTERNAL -32603
#define MCP_ERR_NODE     -32000 /* the node failed, refused or did not answer in time */

typedef struct mcp_call_t mcp_call_t;

/* A tools/call waiting for the node's decision. */
struct mcp_call_t {
    json_t *id;          /* the JSON-RPC id (owned) */
    uint64_t req_id;     /* PROTO_API_REQ req_id */
    json_t *input;       /* the tool input asked about (owned): default updatedInput */
    int64_t deadline_ms; /* mono ms; 0 = wait forever */
    mcp_call_t *next;    /* list link */
};

typedef struct {
    zsock_t *dealer;          /* DEALER connected to the node's ROUTER */
    const char *conversation; /* conversation id text (borrowed from argv/env) */
    uint8_t conv_id[16];      /* the same, binary, for the envelope */
    long timeout_s;           /* bound on one question; 0 = none */
    uint64_t next_req;        /* last req_id used */
    mcp_call_t *calls;        /* waiting calls */
    size_t ncalls;            /* their number */
    int out_fd;               /* where protocol lines go (stdout) */
    bool out_broken;          /* writing stdout failed: stop */
} mcp_t;

/* Handles one JSON-RPC line from stdin (any bytes): answers on out_fd, or
   asks the node and records the call. Never fails: errors are answered. */
void mcp_handle_line(mcp_t *self, const char *line, size_t len);

/* Answers the call a node reply (API_REP or MOVED) belongs to; others are dropped. */
void mcp_handle_reply(mcp_t *self, const proto_msg_t *msg);

/* Answers calls whose deadline passed with an error. */
void mcp_expire(mcp_t *self, int64_t now_ms);

/* Writes a JSON-RPC error with id (borrowed; NULL = null). */
void mcp_send_error(mcp_t *self, json_t *id, int code, const char *message);

/* Frees every waiting call without answering. */
void mcp_calls_free(mcp_t *self);

#endif
