/*  op_args — checks the JSON arguments of an API op against the shared op
    table (proto/proto_ops.h): unknown keys, types, null, lengths in
    characters, integer ranges, enum values, UUIDs, nested objects, required
    fields and the `when` conditions. The gateway runs it on client bodies and
    the node on every request it receives, so both refuse the same values with
    the same message. Pure functions; any thread. */
#ifndef BICKY_COMMON_OP_ARGS_H
#define BICKY_COMMON_OP_ARGS_H

#include "proto/proto_ops.h"

#include <jansson.h>

#define OP_ARGS_FIELD_MAX   64  /* bytes of err.field */
#define OP_ARGS_MESSAGE_MAX 320 /* bytes of err.message */

/* Check modes. */
#define OP_ARGS_CLIENT                                                                             \
    0x01 /* a client's body: PROTO_F_GATEWAY fields are unknown, and their                         \
            presence and the conditions on them are left to the full check                         \
            the gateway runs after adding them */

typedef struct {
    char field[OP_ARGS_FIELD_MAX];     /* the refused argument (JSON key), "" when none */
    char message[OP_ARGS_MESSAGE_MAX]; /* names the field and says what is allowed */
} op_args_err_t;

/* Sets err: field (NULL → "") and the formatted message, both cut on a UTF-8
   character boundary so they stay valid JSON strings. Returns -1, so a checker
   can `return op_args_err_set (...)`. */
int op_args_err_set(op_args_err_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks the value v (not NULL) of field f: type, null, length, range, enum
   and, for an object with member rows, its members. A valid UUID string is
   rewritten in lowercase (the only change made to v). Returns 0, or -1 with
   err set. v is borrowed. */
int op_args_check_value(const proto_field_t *f, json_t *v, unsigned flags, op_args_err_t *err);
/* Checks every member of obj against fields (ended by a NULL name), then the
   required fields and the conditions. Returns 0, or -1 with err naming the
   first refused field. obj is borrowed; UUID members may be lowercased. */
int op_args_check_fields(const proto_field_t *fields,
                         json_t *obj,
                         unsigned flags,
                         op_args_err_t *err);
/* op_args_check_fields on op's arguments. */
int op_args_check(const proto_op_t *op, json_t *args, unsigned flags, op_args_err_t *err);

#endif
