/*  gw_api_nodes — the cluster's admin routes for an admin API token:
    POST /api/nodes/:id/drain and POST /api/nodes/:id/undrain. The gateway
    forwards them to the registry with the caller's token, and the registry
    checks that token in Postgres before it acts (docs/api.md, Nodes); and
    the registry link's admin requests that carry them (gw_registry.c).
    Loop thread only. */
#ifndef BICKY_GW_API_NODES_H
#define BICKY_GW_API_NODES_H

#include <stdint.h>

typedef struct gw_req_t gw_req_t;
typedef struct gw_registry_t gw_registry_t;

/* POST /api/nodes/:id/drain: takes the node off the ring (its actors move). */
void gw_h_node_drain(gw_req_t *req);
/* POST /api/nodes/:id/undrain: puts a drained node back on the ring. */
void gw_h_node_undrain(gw_req_t *req);

/* ---- the registry link's admin requests (gw_registry.c) ---- */

/* An admin request's answer: the registry's admin_rep, or one made here. */
typedef struct {
    int status;        /* 200, 403, 404, … from the registry; 503/504 made here */
    const char *error; /* the reason (borrowed for the callback), NULL when none */
    const char *state; /* the node's state after the action (borrowed), NULL when unknown */
    uint64_t epoch;    /* the registry's ring epoch in the answer, 0 when made here */
} gw_admin_reply_t;

/* Called exactly once per accepted admin request, never from inside gw_registry_admin. */
typedef void(gw_admin_fn)(void *owner, const gw_admin_reply_t *reply);

/* Sends the admin request action (drain | undrain) on node_id to the registry in use,
   with token, the HTTP caller's API token (the registry checks it in Postgres; borrowed,
   copied into the message). fn(owner, …) runs once: with the registry's answer, or 503
   when the link to the registry is reset (failover) or the registry is a standby, or
   504 at deadline_ms (mono). Returns the request's id (> 0), or 0 when nothing was sent
   (too many in flight, or the send failed): fn never runs then. */
uint64_t gw_registry_admin(gw_registry_t *self,
                           const char *action,
                           const char *node_id,
                           const char *token,
                           int64_t deadline_ms,
                           gw_admin_fn *fn,
                           void *owner);
/* Forgets an admin request; its callback will not run. Accepts 0 and unknown ids. */
void gw_registry_cancel(gw_registry_t *self, uint64_t id);

#endif
