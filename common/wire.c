/*  wire — proto messages on czmq sockets. Socket-owner thread only. */
#define LOG_MODULE "wire"
#include "common/wire.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>

static int s_send_frames(zsock_t *sock, const void *first, size_t first_len, const proto_msg_t *msg)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = proto_encode(msg, &data, &size);
    if (rc != PROTO_OK) {
        LOG_E("cannot encode type=%s rc=%d", proto_type_name(msg->type), rc);
        return -1;
    }
    void *handle = zsock_resolve(sock);
    if (first && zmq_send(handle, first, first_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        free(data);
        return -1;
    }
    int n = zmq_send(handle, data, size, ZMQ_DONTWAIT);
    free(data);
    return n < 0 ? -1 : 0;
}

int wire_send(zsock_t *sock, zframe_t *identity, const proto_msg_t *msg)
{
    if (identity) {
        return s_send_frames(sock, zframe_data(identity), zframe_size(identity), msg);
    }
    return s_send_frames(sock, NULL, 0, msg);
}

int wire_publish(zsock_t *pub, const void *topic, size_t topic_len, const proto_msg_t *msg)
{
    return s_send_frames(pub, topic, topic_len, msg);
}

/* Dropped-frame warnings are rate limited so a flood of garbage cannot
   flood the log: at most WIRE_LOG_BURST lines a second per thread, then one
   line counting what was suppressed. Thread-local, the one mutable static
   state here, because the sockets of a thread share one log. */
#define WIRE_LOG_BURST 10
static _Thread_local int64_t s_log_second;
static _Thread_local unsigned s_log_count, s_log_suppressed;

static bool s_log_allowed(void)
{
    int64_t now = util_mono_ms() / 1000;
    if (now != s_log_second) {
        if (s_log_suppressed) {
            LOG_W("suppressed %u further bad-frame warnings", s_log_suppressed);
        }
        s_log_second = now;
        s_log_count = 0;
        s_log_suppressed = 0;
    }
    if (s_log_count < WIRE_LOG_BURST) {
        s_log_count++;
        return true;
    }
    s_log_suppressed++;
    return false;
}

/* Reads one whole message without waiting; NULL when none is there, or when
   reading its first frame failed (a signal: the message stays whole for the
   next call). ZeroMQ delivers a message's frames together, so once the first
   is read the others are there: a read of them that a signal interrupts
   (EINTR) is retried. zmsg_recv_nowait instead drops what it read and
   leaves the rest of the message to be read as the next one. */
static zmsg_t *s_recv_whole(zsock_t *sock)
{
    void *handle = zsock_resolve(sock);
    zmsg_t *zm = NULL;
    for (;;) {
        zframe_t *f = zframe_recv_nowait(handle);
        while (!f && zm && zmq_errno() == EINTR) {
            f = zframe_recv_nowait(handle);
        }
        if (!f) {
            zmsg_destroy(&zm);
            return NULL;
        }
        bool more = zframe_more(f);
        if (!zm) {
            zm = zmsg_new();
        }
        if (!zm || zmsg_append(zm, &f) < 0) {
            zframe_destroy(&f);
            zmsg_destroy(&zm);
            return NULL;
        }
        if (!more) {
            return zm;
        }
    }
}

/* Takes the frames of one message; the first `lead` frames are returned
   separately. Any frame count other than lead + 1 is malformed. */
static zmsg_t *s_recv_msg(zsock_t *sock, size_t lead, const char *what)
{
    zmsg_t *zm = s_recv_whole(sock);
    if (!zm) {
        return NULL;
    }
    if (zmsg_size(zm) != lead + 1) {
        if (s_log_allowed()) {
            LOG_W("dropped malformed message socket=%s frames=%zu expected=%zu", what,
                  zmsg_size(zm), lead + 1);
        }
        zmsg_destroy(&zm);
    }
    return zm;
}

static int s_decode_last(zmsg_t *zm, proto_msg_t *out, const char *what)
{
    zframe_t *f = zmsg_last(zm);
    char err[96];
    int rc = proto_decode(zframe_data(f), zframe_size(f), out, err, sizeof err);
    if (rc != PROTO_OK) {
        if (s_log_allowed()) {
            LOG_W("dropped bad frame socket=%s bytes=%zu error=\"%s\"", what, zframe_size(f), err);
        }
        return -1;
    }
    return 0;
}

int wire_recv(zsock_t *sock, zframe_t **identity_p, proto_msg_t *out, const char *what)
{
    return wire_recv_peer(sock, identity_p, out, what, NULL);
}

int wire_recv_peer(
    zsock_t *sock, zframe_t **identity_p, proto_msg_t *out, const char *what, keys_peer_t *peer)
{
    zmsg_t *zm = s_recv_msg(sock, identity_p ? 1 : 0, what);
    if (!zm) {
        return -1;
    }
    int rc = s_decode_last(zm, out, what);
    if (rc == 0 && peer) {
        keys_peer(zmsg_last(zm), peer);
    }
    if (rc == 0 && identity_p) {
        *identity_p = zmsg_pop(zm);
    }
    zmsg_destroy(&zm);
    return rc;
}

int wire_recv_sub(zsock_t *sub,
                  uint8_t *topic,
                  size_t topic_cap,
                  size_t *topic_len,
                  proto_msg_t *out,
                  const char *what)
{
    zmsg_t *zm = s_recv_msg(sub, 1, what);
    if (!zm) {
        return -1;
    }
    zframe_t *t = zmsg_first(zm);
    if (zframe_size(t) > topic_cap) {
        if (s_log_allowed()) {
            LOG_W("dropped message with oversized topic socket=%s bytes=%zu", what, zframe_size(t));
        }
        zmsg_destroy(&zm);
        return -1;
    }
    memcpy(topic, zframe_data(t), zframe_size(t));
    *topic_len = zframe_size(t);
    int rc = s_decode_last(zm, out, what);
    zmsg_destroy(&zm);
    return rc;
}
