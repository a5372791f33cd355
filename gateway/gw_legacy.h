/*  gw_legacy — the first (TypeScript) server's routes, kept for old clients
    and mapped onto the same node ops as /api (docs/api.md, "Legacy routes").
    gw_legacy.c holds the handlers, gw_legacy_shape.c the camelCase shapes,
    the legacy SSE vocabulary and the deprecation headers. Loop thread only. */
#ifndef BICKY_GATEWAY_LEGACY_H
#define BICKY_GATEWAY_LEGACY_H

#include "gateway/gateway_internal.h"

/* Adds `Deprecation: true` and `Link: <successor>; rel="successor-version"`
   to resp when req's route is a legacy one. resp is borrowed. */
void gw_legacy_headers(gw_req_t *req, struct MHD_Response *resp);
/* The configured legacy token when req is on a legacy route and sent no
   Authorization header (borrowed, *len set), else NULL. */
const char *gw_legacy_token(gw_req_t *req, size_t *len);

/* Shapes (new references; NULL when src is not an object). */
json_t *gw_legacy_interaction(const json_t *conv);
json_t *gw_legacy_message(const json_t *msg);
json_t *gw_legacy_worktree(const json_t *wt);
/* The legacy status of one of ours: streaming → processing, error and
   cancelled → failed, else unchanged. */
const char *gw_legacy_status(const char *status);
/* gw_sse_format_fn of GET /stream: `id: N` and one `data:` line holding
   {"type","timestamp","data"}; an event with no legacy meaning gives an
   empty frame (len 0), so the stream's position still moves. Caller frees. */
char *gw_legacy_sse_frame(uint64_t id, const char *type, const char *data, size_t *len);

void gw_h_legacy_status(gw_req_t *req);
void gw_h_legacy_message(gw_req_t *req);
void gw_h_legacy_list(gw_req_t *req);
void gw_h_legacy_get(gw_req_t *req);
void gw_h_legacy_perm_response(gw_req_t *req);
void gw_h_legacy_perm_status(gw_req_t *req);
void gw_h_legacy_perm_approve(gw_req_t *req);
void gw_h_legacy_perm_deny(gw_req_t *req);
void gw_h_legacy_wt_list(gw_req_t *req);
void gw_h_legacy_wt_create(gw_req_t *req);
void gw_h_legacy_stream(gw_req_t *req);

#endif
