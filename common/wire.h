/*  wire — proto messages on czmq sockets: one envelope frame, preceded by the
    peer identity on a ROUTER and by the topic on PUB/SUB. A frame that does
    not decode is logged (with the peer's socket name) and dropped; callers
    never see it. Call only from the thread that owns the socket. */
#ifndef BICKY_WIRE_H
#define BICKY_WIRE_H

#include "common/keys.h"
#include "proto/proto.h"

#include <czmq.h>

/* Sends msg on a DEALER (identity NULL) or ROUTER (identity = borrowed peer
   frame). Never blocks: a full pipe drops the message and returns -1. */
int wire_send(zsock_t *sock, zframe_t *identity, const proto_msg_t *msg);

/* Receives one message. On a ROUTER pass identity_p to get the peer frame
   (owned by the caller; destroy it). Returns 0 with *out filled (release it
   with proto_msg_reset), or -1 when the frames were malformed (logged with
   what, dropped) or nothing was readable. */
int wire_recv(zsock_t *sock, zframe_t **identity_p, proto_msg_t *out, const char *what);

/* wire_recv on a ROUTER that also fills *peer with the sender's certificate
   role, name and key (keys_peer; role NONE on a socket without CURVE). */
int wire_recv_peer(
    zsock_t *sock, zframe_t **identity_p, proto_msg_t *out, const char *what, keys_peer_t *peer);

/* Publishes msg under a binary topic (first frame) on a PUB socket. */
int wire_publish(zsock_t *pub, const void *topic, size_t topic_len, const proto_msg_t *msg);

/* Receives on a SUB socket: topic copied into topic (up to topic_cap bytes,
 *topic_len set), envelope decoded into *out. -1 on a malformed message. */
int wire_recv_sub(zsock_t *sub,
                  uint8_t *topic,
                  size_t topic_cap,
                  size_t *topic_len,
                  proto_msg_t *out,
                  const char *what);

#endif
