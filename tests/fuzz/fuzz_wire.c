/*  fuzz_wire — peer bytes through the msgpack envelope decoder as the
    processes receive them: a multi-frame message is sent on an inproc PAIR
    and read back with wire_recv (one frame: DEALER), wire_recv with an
    identity (ROUTER) or wire_recv_sub (topic + envelope), which check the
    frame count and call proto_decode on the last frame; or (mode 3, ten
    times faster) straight to proto_decode. Byte 0 picks the receiver (and,
    bit 2, one frame too many), byte 1 where the leading frame ends; the
    rest is the message. A decoded message must encode again
    (proto_encode) and decode to the same envelope. */
#include "common/log.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

static zsock_t *s_tx, *s_rx;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz", LOG_LEVEL_ERROR); /* each dropped frame logs a warning */
    zsys_init();
    zsys_set_linger(0);
    s_rx = zsock_new_pair("@inproc://fuzz-wire");
    s_tx = zsock_new_pair(">inproc://fuzz-wire");
    FUZZ_CHECK(s_rx && s_tx);
    return 0;
}

/* The same message again through proto_encode and proto_decode. */
static void s_round_trip(const proto_msg_t *msg)
{
    uint8_t *data = NULL;
    size_t size = 0;
    FUZZ_CHECK(proto_encode(msg, &data, &size) == PROTO_OK);
    proto_msg_t again;
    char err[96];
    FUZZ_CHECK(proto_decode(data, size, &again, err, sizeof err) == PROTO_OK);
    FUZZ_CHECK(again.type == msg->type && again.req_id == msg->req_id &&
               again.ring_epoch == msg->ring_epoch && again.has_conv == msg->has_conv &&
               again.has_team == msg->has_team && again.nnodes == msg->nnodes);
    FUZZ_CHECK(!msg->body == !again.body && (!msg->body || strcmp(msg->body, again.body) == 0));
    proto_msg_reset(&again);
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    int mode = data[0] % 4; /* 0 wire_recv, 1 + identity, 2 wire_recv_sub, 3 proto_decode */
    bool extra = data[0] & 4;
    size_t rest = size - 2;
    if (mode == 3) {
        proto_msg_t msg;
        char err[96];
        if (proto_decode(data + 2, rest, &msg, err, sizeof err) == PROTO_OK) {
            s_round_trip(&msg);
            proto_msg_reset(&msg);
        }
        return 0;
    }
    size_t lead = mode ? data[1] % (rest + 1) : 0;
    const uint8_t *p = data + 2;
    zmsg_t *zm = zmsg_new();
    if (mode) {
        zmsg_addmem(zm, p, lead);
    }
    zmsg_addmem(zm, p + lead, rest - lead);
    if (extra) {
        zmsg_addmem(zm, NULL, 0);
    }
    size_t frames = zmsg_size(zm);
    FUZZ_CHECK(zmsg_send(&zm, s_tx) == 0);
    /* inproc delivery is asynchronous: wait until the message can be read
       (wire_recv itself does not wait), so that it reads this one. */
    zmq_pollitem_t item = {zsock_resolve(s_rx), 0, ZMQ_POLLIN, 0};
    FUZZ_CHECK(zmq_poll(&item, 1, 5000) == 1);
    proto_msg_t msg;
    memset(&msg, 0, sizeof msg);
    int rc;
    if (mode == 2) {
        uint8_t topic[PROTO_TOPIC_LEN];
        size_t topic_len = 0;
        rc = wire_recv_sub(s_rx, topic, sizeof topic, &topic_len, &msg, "fuzz");
        FUZZ_CHECK(rc < 0 || topic_len <= sizeof topic);
    } else {
        zframe_t *identity = NULL;
        rc = wire_recv(s_rx, mode ? &identity : NULL, &msg, "fuzz");
        FUZZ_CHECK(rc < 0 || !mode || identity);
        zframe_destroy(&identity);
    }
    /* wire_recv took the whole message (or dropped it whole), or, when a
       signal interrupted its first read (libFuzzer's timer), left it whole:
       never a part of it for the next read. */
    if (zmq_poll(&item, 1, 0) == 1) {
        FUZZ_CHECK(rc < 0);
        zmsg_t *left = zmsg_recv(s_rx);
        FUZZ_CHECK(left && zmsg_size(left) == frames);
        zmsg_destroy(&left);
        FUZZ_CHECK(zmq_poll(&item, 1, 0) == 0);
    }
    if (rc == 0) {
        FUZZ_CHECK(!extra);
        s_round_trip(&msg);
        proto_msg_reset(&msg);
    }
    return 0;
}
