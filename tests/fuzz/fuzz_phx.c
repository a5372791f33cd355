/*  fuzz_phx — a WebSocket text message through the Phoenix Channels v2
    decoder (gw_phx_decode, what gw_phx_on_text runs first), then the checks
    the join and push handlers make on what it decoded before any node is
    asked: the join's last_event_id (gw_phx_resume_point), and the push
    payloads against their ops' rows (gw_json_args), permission ids
    (gw_parse_uuid). The sending side needs a socket and is not fuzzed. */
#include "common/util.h"
#include "gateway/gw_ws.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

/* The payload of a push, checked as s_push / s_permission in gw_phx.c do. */
static void s_push(const char *event, const json_t *payload)
{
    gw_error_t err;
    json_t *body = json_is_object(payload) ? json_deep_copy(payload) : json_object();
    if (strcmp(event, "message:create") == 0 || strcmp(event, "conversation:cancel") == 0) {
        proto_op_id_t op = event[0] == 'm' ? PROTO_OP_MSG_POST : PROTO_OP_CONV_CANCEL;
        json_decref(gw_json_args(body, op, NULL, &err));
    } else if (strncmp(event, "permission:", 11) == 0) {
        uint8_t id[16];
        const char *text = json_string_value(json_object_get(body, "id"));
        if (text && gw_parse_uuid(text, "id", id, &err) == 0) {
            char lower[UTIL_UUID_STR_LEN + 1];
            util_uuid_format(id, lower); /* before the del frees text */
            json_object_del(body, "id");
            json_t *preset = json_pack("{s:s, s:s}", "decision", "approve", "id", lower);
            json_decref(gw_json_args(body, PROTO_OP_PERM_DECIDE, preset, &err));
        } else {
            json_decref(body);
        }
    } else {
        json_decref(body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_phx_msg_t m;
    if (gw_phx_decode((const char *)data, size, &m) < 0) {
        FUZZ_CHECK(m.msg == NULL);
        return 0;
    }
    FUZZ_CHECK(m.topic && m.event && m.payload && strlen(m.topic) < 80);
    FUZZ_CHECK(json_is_string(m.join_ref) || json_is_null(m.join_ref));
    if (strcmp(m.event, "phx_join") == 0) {
        gw_phx_chan_t c;
        memset(&c, 0, sizeof c);
        if (gw_phx_resume_point(&c, m.payload) == 0 && c.resume) {
            FUZZ_CHECK(c.last_id <= INT64_MAX);
        }
    } else {
        s_push(m.event, m.payload);
    }
    json_decref(m.msg);
    return 0;
}
