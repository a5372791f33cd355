/*  agent_sse — an incremental Server-Sent Events parser (the WHATWG
    text/event-stream format): bytes in, in any split; events (name, data)
    out. Lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at
    the start of the next are one line end); lines starting with ':' are
    comments; several data lines join with '\n'; "id" and "retry" are
    accepted and ignored. Lines and event data are bounded: exceeding a bound
    is an error, never unbounded growth. Single-threaded: call from the thread
    that owns the object. */
#ifndef BICKY_AGENT_SSE_H
#define BICKY_AGENT_SSE_H

#include <stddef.h>

#define AGENT_SSE_DEFAULT_MAX_LINE  (1024 * 1024)     /* default bound on one line */
#define AGENT_SSE_DEFAULT_MAX_EVENT (4 * 1024 * 1024) /* default bound on one event's data */

typedef struct agent_sse_t agent_sse_t;

/* Called once per dispatched event. event is the "event:" field ("message"
   when absent); data is the joined data lines, NUL-terminated, data_len bytes
   (it may contain NUL bytes from the stream). Both are borrowed for the call.
   Return 0 to go on, -1 to stop: agent_sse_feed then returns -1. The callback
   must not destroy the parser. */
typedef int(agent_sse_event_fn)(void *arg, const char *event, const char *data, size_t data_len);

/* Creates a parser. max_line bounds one line (0 gives the default), max_event
   bounds the data of one event (0 gives the default); fn is called for every
   event with arg. Returns NULL when out of memory. Caller destroys. */
agent_sse_t *agent_sse_new(size_t max_line, size_t max_event, agent_sse_event_fn *fn, void *arg);

/* Frees the parser; accepts NULL and nulls the caller's pointer. */
void agent_sse_destroy(agent_sse_t **self_p);

/* Feeds len bytes (borrowed). Dispatches every event completed by them.
   Returns 0, or -1 when a line or an event exceeded its bound (see
   agent_sse_error) or the callback returned -1. After -1 the parser stays
   failed: further feeds return -1 without parsing. */
int agent_sse_feed(agent_sse_t *self, const char *data, size_t len);

/* True (1) when bytes of an event that was not yet dispatched are buffered:
   at the end of a stream, that event was cut off. Otherwise 0. */
int agent_sse_pending(const agent_sse_t *self);

/* Why the parser failed ("line longer than 1048576 bytes", "event data longer
   than …", "stopped by callback"), or NULL when it has not. Borrowed. */
const char *agent_sse_error(const agent_sse_t *self);

#endif
