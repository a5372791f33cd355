/*  gw_api_actors — the routes of a conversation's actors (issue 15):
    GET/POST /api/conversations/:id/actors, DELETE …/actors/:name. Each checks
    the path and body and hands the op (actor.list, actor.attach, actor.detach)
    to the conversation's owner. Loop thread only. */
#ifndef BICKY_GW_API_ACTORS_H
#define BICKY_GW_API_ACTORS_H

typedef struct gw_req_t gw_req_t;

/* GET /api/conversations/:id/actors: the responder and the observers. */
void gw_h_actor_list(gw_req_t *req);
/* POST /api/conversations/:id/actors: attaches an observer. */
void gw_h_actor_attach(gw_req_t *req);
/* DELETE /api/conversations/:id/actors/:name: detaches it. */
void gw_h_actor_detach(gw_req_t *req);

#endif
