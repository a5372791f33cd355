/*  agent_llm_internal — what agent_llm.c shares with the provider files
    (agent_llm_openai.c, agent_llm_anthropic.c): the request state, the
    provider table, and helpers for failing, emitting text and assembling
    tool calls. Loop thread only. Not for other modules. */
#ifndef BICKY_AGENT_LLM_INTERNAL_H
#define BICKY_AGENT_LLM_INTERNAL_H

#include "node/agent/agent_llm.h"
#include "node/agent/agent_sse.h"

#include <stdbool.h>

/* A tool call being assembled from stream fragments. */
typedef struct {
    int index;       /* provider's index (OpenAI tool index, Anthropic block index) */
    char *id;        /* call id, or NULL until seen */
    char *name;      /* tool name, or NULL until seen */
    char *args;      /* concatenated argument fragments (JSON text) */
    size_t args_len; /* bytes in args */
    size_t args_cap; /* allocation of args */
    json_t *input;   /* Anthropic: input from content_block_start, or NULL */
} agent_llm_tool_t;

typedef struct agent_llm_provider_t agent_llm_provider_t;

struct agent_llm_request_t {
    agent_http_t *http;               /* borrowed client */
    agent_http_req_t *xfer;           /* the transfer, NULL once it ended */
    const agent_llm_provider_t *prov; /* provider of the strategy's kind */
    agent_llm_callbacks_t cb;         /* caller's callbacks */
    void *arg;                        /* caller's argument */
    agent_sse_t *sse;                 /* stream parser */
    long status;                      /* HTTP status of the response */
    char *errbody;                    /* body of a non-2xx response (bounded) */
    size_t errbody_len;               /* bytes in errbody */
    bool finished;                    /* the provider's end marker arrived */
    bool failed;                      /* err holds the first failure */
    agent_llm_error_t err;            /* that failure */
    char stop_reason[32];             /* normalised stop reason */
    agent_llm_usage_t usage;          /* token counts */
    agent_llm_tool_t *tools;          /* tool calls being assembled */
    size_t ntools;                    /* entries in tools */
    int depth;                        /* > 0 while a caller callback runs */
    bool cancelled;                   /* cancelled from inside a callback */
};

struct agent_llm_provider_t {
    const char *name;       /* "openai", "anthropic" */
    const char *end_marker; /* what a complete stream ends with, for messages */
    const char *path;       /* appended to base_url */
    /* Builds the request body from valid params. NULL with err filled. */
    json_t *(*build)(const agent_llm_params_t *p, agent_llm_error_t *err);
    /* Adds the auth and version headers to lines (at most 3, NULL-
       terminated; each malloc'd, freed by the caller). -1 when out of memory. */
    int (*auth_headers)(const char *api_key, char **lines);
    /* Handles one SSE event. Returns 0, or -1 after agent_llm_fail (or when
       the request was cancelled from a callback). */
    int (*on_event)(agent_llm_request_t *self, const char *event, const char *data, size_t len);
};

extern const agent_llm_provider_t agent_llm_openai;
extern const agent_llm_provider_t agent_llm_anthropic;

/* Records the first failure; later ones are ignored. Returns -1. */
int agent_llm_fail(agent_llm_request_t *self, agent_llm_err_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills err (kind, reason). */
void agent_llm_error_set(agent_llm_error_t *err, agent_llm_err_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses one stream chunk as a JSON object; NULL after agent_llm_fail. */
json_t *agent_llm_parse_chunk(agent_llm_request_t *self, const char *data, size_t len);

/* Passes text to on_text. Returns -1 when the caller cancelled meanwhile. */
int agent_llm_emit_text(agent_llm_request_t *self, const char *text, size_t len);

/* The tool call with provider index, created when create is true. NULL after
   agent_llm_fail (too many calls, out of memory) or when absent. */
agent_llm_tool_t *agent_llm_tool(agent_llm_request_t *self, int index, bool create);

/* Sets a tool call's id or name (first value wins). -1 after agent_llm_fail. */
int agent_llm_tool_set(agent_llm_request_t *self, char **field, const char *value);

/* Appends an arguments fragment (bounded). -1 after agent_llm_fail. */
int agent_llm_tool_append(agent_llm_request_t *self,
                          agent_llm_tool_t *t,
                          const char *frag,
                          size_t len);

/* Sets the stop reason (truncated to fit). */
void agent_llm_set_stop(agent_llm_request_t *self, const char *reason);

/* The text of a neutral message's "content" ("" when absent). Borrowed. */
const char *agent_llm_content(const json_t *msg);

/* The tool's schema ("input_schema" or "parameters"), or NULL. Borrowed. */
json_t *agent_llm_tool_schema(const json_t *tool);

#endif
