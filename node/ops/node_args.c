/*  node_args — the args check of every request against the op table, the
    readers of checked args, and the refusals that explain themselves (see
    node_args.h). Loop thread only. */
#include "node/ops/node_args.h"

#include "common/op_args.h"
#include "node/ops/node_ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Sends status {"error": message, "code", "field"}; message and field are valid UTF-8. */
static void
s_reply(node_t *node, node_req_t **req_p, int status, const char *code, const op_args_err_t *err)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "error", err->message, "code", code, "field", err->field);
    char *body = j ? node_json_text(j) : NULL;
    node_reply(node, req_p, status,
               body ? body : "{\"error\":\"invalid field\",\"code\":\"invalid_field\"}", 0);
    free(body);
    json_decref(j);
}

int node_args_check(node_t *node, node_req_t **req_p)
{
    node_req_t *req = *req_p;
    op_args_err_t err;
    const proto_op_t *spec = req->op->spec;
    if (op_args_check(spec, req->args, 0, &err) == 0) {
        return 0;
    }
    s_reply(node, req_p, spec->refuse_status,
            spec->refuse_status == 401 ? "unauthorized" : "invalid_field", &err);
    return -1;
}

const char *node_args_str(const json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));
}

void node_reply_invalid(node_t *node, node_req_t **req_p, const char *field, const char *fmt, ...)
{
    op_args_err_t err;
    va_list ap;
    va_start(ap, fmt);
    char message[OP_ARGS_MESSAGE_MAX];
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    op_args_err_set(&err, field, "%s", message);
    s_reply(node, req_p, 400, "invalid_field", &err);
}

void node_reply_bad_cursor(node_t *node, node_req_t **req_p)
{
    node_reply_invalid(node, req_p, "cursor",
                       "cursor must be the opaque next_cursor of a previous page");
}

void node_reply_bad_strategy(node_t *node, node_req_t **req_p)
{
    const cfg_file_t *cfg = node->agents ? node->agents->cfg : NULL;
    char list[OP_ARGS_MESSAGE_MAX] = "";
    size_t n = 0;
    for (size_t i = 0; i < cfg_file_count(cfg) && n < sizeof list; i++) {
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                              cfg_file_at(cfg, i)->name);
    }
    if (!n) {
        node_reply_invalid(node, req_p, "strategy", "strategy must name a configured strategy");
        return;
    }
    node_reply_invalid(node, req_p, "strategy", "strategy must be one of: %s", list);
}
