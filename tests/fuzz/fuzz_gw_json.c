/*  fuzz_gw_json — a request body through the gateway's JSON validators: the
    first byte picks the op (its row of proto/proto_ops.c), the second a
    variant, the rest is the body. gw_json_parse, then gw_json_args (with the
    preset a handler adds for permission decisions) or, for POST /api/message,
    gw_json_message_args; what passes is checked again as the node checks it
    (op_args_check without OP_ARGS_CLIENT); every refusal must render as the
    API's JSON error body. */
#include "common/op_args.h"
#include "gateway/gateway_internal.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

/* The error body a refusal becomes is a JSON object with error and code. */
static void s_error(const gw_error_t *err)
{
    char *text = gw_error_body(err);
    FUZZ_CHECK(text);
    json_t *o = json_loads(text, 0, NULL);
    FUZZ_CHECK(json_is_object(o) && json_is_string(json_object_get(o, "code")));
    json_decref(o);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    proto_op_id_t op = (proto_op_id_t)(data[0] % PROTO_OP_COUNT);
    uint8_t variant = data[1];
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    gw_error_t err;
    memset(&err, 0, sizeof err);
    json_t *obj = gw_json_parse(len ? body : NULL, len, &err);
    if (!obj) {
        /* A syntax error has a position; valid JSON that is not an object has none. */
        bool syntax = strncmp(err.message, "invalid JSON at line", 20) == 0;
        FUZZ_CHECK(err.status == 400 && (!syntax || (err.line > 0 && err.column > 0)));
        s_error(&err);
        return 0;
    }
    json_t *args;
    if (op == PROTO_OP_MSG_POST && (variant & 1)) {
        uint8_t conv[16];
        bool has_conv = false;
        args = gw_json_message_args(obj, conv, &has_conv, &err);
    } else {
        json_t *preset = NULL;
        if (op == PROTO_OP_PERM_DECIDE) {
            preset = json_pack("{s:s, s:s}", "decision", variant & 1 ? "approve" : "deny", "id",
                               "0b0e7d5e-8b1a-4c57-9d3b-2f6f1f8c9a10");
        }
        args = gw_json_args(obj, op, preset, &err);
    }
    if (!args) {
        FUZZ_CHECK(err.status == 400 && err.code);
        s_error(&err);
        return 0;
    }
    op_args_err_t e;
    op_args_check(&proto_ops[op], args, 0, &e);
    char *text = json_dumps(args, JSON_COMPACT);
    FUZZ_CHECK(text);
    free(text);
    json_decref(args);
    return 0;
}
