/*  gw_limits — a team's limits at the gateway (issue 12, docs/api.md "Limits"):
    the token bucket per team (rate), the count of open streams per team (SSE
    and WebSocket), the strategy allow-list, and the RateLimit-* headers.
    The limits themselves come with the token's auth answer and live in the
    auth cache. Per gateway: N gateways let a team through N times its rate
    and streams. Loop thread only. */
#ifndef BICKY_GW_LIMITS_H
#define BICKY_GW_LIMITS_H

#include "gateway/gateway_internal.h"

#define GW_LIMITS_TEAMS 65536 /* teams tracked at once (an idle team's entry goes first) */

/* A bounded table team → bucket and stream count. NULL on OOM. */
gw_limits_t *gw_limits_new(size_t max_teams);
void gw_limits_destroy(gw_limits_t **self_p);
/* Takes one token of team's bucket at now_ms (lim: the team's limits); fills
   q. True when allowed. A full table that cannot drop an idle team refuses. */
bool gw_limits_take(gw_limits_t *self,
                    const uint8_t team[16],
                    const limits_t *lim,
                    int64_t now_ms,
                    limits_quota_t *q);
/* Streams the team has open on this gateway. */
uint32_t gw_limits_streams(gw_limits_t *self, const uint8_t team[16]);
/* Counts one more open stream of team: refused (-1) when it would pass
   lim->streams, unless force (a WebSocket whose 101 already went out). */
int gw_limits_stream_open(gw_limits_t *self,
                          const uint8_t team[16],
                          const limits_t *lim,
                          bool force);
/* Counts one stream of team closed. */
void gw_limits_stream_close(gw_limits_t *self, const uint8_t team[16]);

/* Request helpers (the req is authenticated: req->limits set). */
/* Rate check of an authenticated request; answers 429 itself and returns -1
   when the team's bucket is empty. */
int gw_limits_admit(gw_req_t *req);
/* Checks the strategy a create or patch names (obj may hold "strategy"; a
   create without one uses the configured default): -1 after answering 400
   naming the allowed ones. */
int gw_limits_strategy(gw_req_t *req, const json_t *obj, bool create);
/* Opens a stream slot for req's team, or answers 429 and returns -1. */
int gw_limits_stream_take(gw_req_t *req);
/* Adds the RateLimit-* headers of req's quota to resp (nothing before auth). */
void gw_limits_headers(const gw_req_t *req, struct MHD_Response *resp);
/* Fills lim from the "limits" object of an auth answer: a member missing or
   out of range keeps its default (obj may be NULL). */
void gw_limits_from_json(limits_t *lim, const json_t *obj);
/* The limits a node applies (turns, actors, worktrees) as three numbers, and back
   (the rest default): what a long-lived client keeps for its calls. */
void gw_limits_pack(const limits_t *lim, uint32_t out[3]);
void gw_limits_unpack(const uint32_t in[3], limits_t *lim);
/* The caller's limits and this gateway's usage, as GET /api/status shows them. */
json_t *gw_limits_json(gw_req_t *req);

#endif
