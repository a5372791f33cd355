/*  agent_llm — a streaming chat client for the HTTP strategies (openai,
    anthropic). One call = one model request: the provider-neutral history
    goes out as the provider's JSON with "stream": true, and the streamed
    answer comes back as callbacks: text deltas as they arrive, then (only
    when the response completed) the assembled tool calls and on_done, or
    on_error. Transport is agent_http (curl multi on the zloop), so nothing
    here blocks. Loop thread only; callbacks run on it.

    Provider-neutral history (a JSON array, oldest first):
      {"role":"system",    "content":"extra instructions"}
      {"role":"user",      "content":"text"}
      {"role":"assistant", "content":"text (may be empty or absent)",
                           "tool_calls":[{"id":"call_1","name":"read_file",
                                          "arguments":{...object...}}]}
      {"role":"tool",      "tool_call_id":"call_1", "content":"result text",
                           "is_error":false}
    "content" is a string; "tool_calls" and "is_error" are optional. The
    strategy's system_prompt comes first. OpenAI gets messages with
    role system/user/assistant(+tool_calls with JSON-text arguments)/tool;
    Anthropic gets a top-level "system" (system_prompt and every system
    message joined by blank lines) and user/assistant messages whose content
    blocks are text, tool_use and tool_result (consecutive same-role messages
    merged, so tool results of one turn share one user message).

    Tools (optional JSON array): {"name", "description", "input_schema"}
    ("parameters" is accepted for input_schema), as agent_tools_schema gives. */
#ifndef BICKY_AGENT_LLM_H
#define BICKY_AGENT_LLM_H

#include "common/cfg_file.h"
#include "node/agent/agent_http.h"

#include <jansson.h>
#include <stddef.h>

#define AGENT_LLM_REASON_MAX     512           /* bytes of an error reason, with NUL */
#define AGENT_LLM_MAX_TOOL_CALLS 64            /* tool calls in one response */
#define AGENT_LLM_MAX_TOOL_ARGS  (1024 * 1024) /* bytes of one call's arguments */
#define AGENT_LLM_MAX_ERROR_BODY (64 * 1024)   /* bytes of an HTTP error body kept */
#define AGENT_LLM_MAX_SSE_LINE   (1024 * 1024) /* bytes of one SSE line */

typedef struct agent_llm_request_t agent_llm_request_t;

typedef enum {
    AGENT_LLM_ERR_REQUEST = 1, /* bad history, tools or strategy (nothing was sent) */
    AGENT_LLM_ERR_HTTP,        /* status >= 400 (or another non-2xx) from the provider */
    AGENT_LLM_ERR_TIMEOUT,     /* overall (timeout_s) or stall (stall_timeout_s) timeout */
    AGENT_LLM_ERR_NETWORK,     /* connect failure, reset, connection closed mid-body */
    AGENT_LLM_ERR_PROTOCOL,    /* malformed stream, or it ended before its end marker */
    AGENT_LLM_ERR_PROVIDER,    /* the provider sent an error inside the stream */
} agent_llm_err_kind_t;

typedef struct {
    agent_llm_err_kind_t kind;         /* what failed */
    long http_status;                  /* HTTP status when one arrived, else 0 */
    char reason[AGENT_LLM_REASON_MAX]; /* e.g. "HTTP 429: Rate limit reached" (no secrets) */
} agent_llm_error_t;

typedef struct {
    long input_tokens;  /* prompt tokens reported by the provider (0 when not reported) */
    long output_tokens; /* completion tokens reported by the provider */
} agent_llm_usage_t;

/* Callbacks; any may be NULL. All run on the loop thread. Pointers passed to
   them are borrowed for the duration of the call. Exactly one of on_done and
   on_error ends a request (unless it is cancelled first); the request is
   freed right after that callback returns. agent_llm_cancel may be called
   from any of them; agent_llm_start (for the next turn) too. */
typedef struct {
    /* A piece of the answer's text (NUL-terminated, len bytes). */
    void (*on_text)(void *arg, const char *text, size_t len);
    /* One complete tool call: id, name, and the arguments object (borrowed:
       json_incref to keep it). Called in the provider's order, only after
       the response completed, right before on_done. */
    void (*on_tool_call)(void *arg, const char *id, const char *name, json_t *args);
    /* The response completed. stop_reason: "end_turn", "tool_use",
       "max_tokens", "stop_sequence", or the provider's own word. */
    void (*on_done)(void *arg, const char *stop_reason, const agent_llm_usage_t *usage);
    /* The request failed; err->reason is safe to show and to store. */
    void (*on_error)(void *arg, const agent_llm_error_t *err);
} agent_llm_callbacks_t;

typedef struct {
    const cfg_strategy_t *strategy; /* kind openai or anthropic; borrowed, outlives the request */
    const char *api_key;    /* sent as the provider's auth header; may be NULL; never logged */
    const json_t *messages; /* provider-neutral history (above); borrowed, read at start */
    const json_t *tools;    /* tool definitions or NULL; borrowed, read at start */
} agent_llm_params_t;

/* Starts a streaming model call through http (borrowed; must outlive the
   request). cb is copied; arg is passed to every callback. Returns the
   request, or NULL when nothing could be sent (invalid history or tools, a
   strategy of another kind, an API key with control characters, out of
   memory) with the reason in *err when err is not NULL. */
agent_llm_request_t *agent_llm_start(agent_http_t *http,
                                     const agent_llm_params_t *params,
                                     const agent_llm_callbacks_t *cb,
                                     void *arg,
                                     agent_llm_error_t *err);

/* Cancels a request: no callback runs for it afterwards and its transfer is
   stopped. Nulls *req_p; accepts NULL. Do not call it for a request that
   already ended (its pointer is dead after on_done/on_error). */
void agent_llm_cancel(agent_llm_request_t **req_p);

/* Checks a provider-neutral history and tools array (tools may be NULL)
   without sending anything. Returns 0, or -1 with the reason in err. */
int agent_llm_check(const json_t *messages, const json_t *tools, char *err, size_t errlen);

/* "request", "http", "timeout", "network", "protocol" or "provider". */
const char *agent_llm_err_kind_name(agent_llm_err_kind_t kind);

#endif
