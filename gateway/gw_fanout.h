/*  gw_fanout.h — the gateway's event fan-out (gw_fanout.c) and the
    long-polls it wakes (gw_poll.c); included by gateway_internal.h, whose
    types it uses. Loop thread only. */
#ifndef BICKY_GW_FANOUT_H
#define BICKY_GW_FANOUT_H

/* ---- event fan-out (gw_fanout.c) ---------------------------------------- */

gw_fanout_t *gw_fanout_new(gw_server_t *srv);
void gw_fanout_destroy(gw_fanout_t **self_p);
/* Connects / disconnects the event SUB to a node's PUB endpoint (with CURVE,
   expecting node_id's key). */
void gw_fanout_connect(gw_fanout_t *self, const char *node_id, const char *endpoint);
void gw_fanout_disconnect(gw_fanout_t *self, const char *endpoint);
/* Adds a listener for a topic (32 bytes: one conversation; 16: a team). The
   SUB subscribes when the first listener of the topic arrives. */
int gw_fanout_add(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_sse_t *client);
/* Removes the listener; unsubscribes when it was the topic's last. */
void gw_fanout_remove(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_sse_t *client);
/* Number of topics currently subscribed. */
size_t gw_fanout_topics(const gw_fanout_t *self);
/* The same for a Phoenix channel of a WebSocket (gw_phx.c): its events go to
   gw_phx_deliver (chan). */
int gw_fanout_add_ws(gw_fanout_t *self, const uint8_t *topic, size_t len, void *chan);
void gw_fanout_remove_ws(gw_fanout_t *self, const uint8_t *topic, size_t len, void *chan);
/* The same for a long-poll (gw_poll.c): its events go to gw_poll_deliver. */
int gw_fanout_add_poll(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_poll_t *poll);
void gw_fanout_remove_poll(gw_fanout_t *self, const uint8_t *topic, size_t len, gw_poll_t *poll);

/* ---- long-poll of the team's log (gw_poll.c) ------------------------------ */

/* Answers req with the events.list page of args (taken) at once when it has
   events, else when the team's next stored event makes it non-empty, or
   after wait_s seconds with the empty page. */
void gw_poll_start(gw_req_t *req, json_t *args, long wait_s);
/* One live event of the poll's team. */
void gw_poll_deliver(gw_poll_t *poll, const proto_msg_t *event);
/* Stops listening and waiting; nulls *self_p (the request's end). */
void gw_poll_destroy(gw_poll_t **self_p);
/* Pushes one live event to a joined Phoenix channel (gw_phx.c). */
void gw_phx_deliver(void *chan, const proto_msg_t *event);

#endif
