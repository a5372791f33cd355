/*  proto_ops — the one table of API operations (api_req.op, docs/protocol.md):
    each op's name, where it runs (conversation-bound or team-wide), whether it
    needs a team and takes an idempotency key, and its JSON arguments with
    their type, presence and limits. Plain const data plus pure functions over
    bytes (no JSON library): the gateway checks client bodies and the node
    checks the args it receives against these same rows, through
    common/op_args.c. String limits count characters (Unicode code points),
    measured by proto_utf8_len on both sides. Any thread. */
#ifndef BICKY_PROTO_OPS_H
#define BICKY_PROTO_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_LIST_DEFAULT 50  /* list limit when none is given */
#define PROTO_LIST_MAX     500 /* largest list limit */

/* Every op, in table order (proto_ops[id]). */
typedef enum {
    PROTO_OP_AUTH,
    PROTO_OP_STATUS,
    PROTO_OP_CONV_LIST,
    PROTO_OP_EVENTS_LIST,
    PROTO_OP_CONV_GET,
    PROTO_OP_MSG_LIST,
    PROTO_OP_CONV_CREATE,
    PROTO_OP_CONV_PATCH,
    PROTO_OP_CONV_DELETE,
    PROTO_OP_CONV_CANCEL,
    PROTO_OP_MSG_POST,
    PROTO_OP_PERM_LIST,
    PROTO_OP_PERM_GET,
    PROTO_OP_PERM_DECIDE,
    PROTO_OP_RULE_LIST,
    PROTO_OP_RULE_CREATE,
    PROTO_OP_RULE_DELETE,
    PROTO_OP_WT_LIST,
    PROTO_OP_WT_GET,
    PROTO_OP_WT_CREATE,
    PROTO_OP_WT_DELETE,
    PROTO_OP_STRATEGIES,
    PROTO_OP_PERMISSION_ASK,
    PROTO_OP_EVENT_GET,
    PROTO_OP_EVENT_REVERT,
    PROTO_OP_EVENT_REVERT_TEAM,
    PROTO_OP_ACTOR_LIST,
    PROTO_OP_ACTOR_ATTACH,
    PROTO_OP_ACTOR_DETACH,
    PROTO_OP_COUNT
} proto_op_id_t;

/* Which node answers an op. */
typedef enum {
    PROTO_SCOPE_TEAM,     /* team-wide: any live node */
    PROTO_SCOPE_CONV,     /* conversation-bound: envelope conv_id required, the ring owner */
    PROTO_SCOPE_CONV_OPT, /* bound with a conv_id, team-wide without (events.list) */
    PROTO_SCOPE_LOCAL,    /* the node the caller already talks to (permission.ask) */
} proto_scope_t;

/* The JSON type of an argument. */
typedef enum {
    PROTO_FT_STRING, /* string of min..max characters */
    PROTO_FT_INT,    /* integer in min..max */
    PROTO_FT_BOOL,   /* true or false */
    PROTO_FT_OBJECT, /* object; its members checked against `fields` when set */
    PROTO_FT_UUID,   /* UUID text, either case */
    PROTO_FT_ENUM,   /* one string of `values` */
} proto_ftype_t;

#define PROTO_F_REQUIRED 0x01 /* present and not null (while `when` holds) */
#define PROTO_F_NULL     0x02 /* null accepted: clears the value, or means absent */
#define PROTO_F_NONBLANK 0x04 /* strings: whitespace only is refused */
#define PROTO_F_GATEWAY  0x08 /* set by the gateway; never taken from a client body */

typedef struct proto_field_t proto_field_t;
struct proto_field_t {
    const char *name;            /* JSON key; NULL ends a list */
    proto_ftype_t type;          /* accepted JSON type */
    unsigned flags;              /* PROTO_F_* */
    int64_t min, max;            /* STRING: characters; INT: value */
    const char *const *values;   /* ENUM: allowed values, NULL-terminated */
    const proto_field_t *fields; /* OBJECT: its members (NULL: any object) */
    const char *when;            /* accepted only when argument `when` ... */
    const char *when_is;         /* ... equals this value (NULL `when`: always) */
};

typedef struct {
    const char *name;            /* "conv.create" */
    proto_scope_t scope;         /* which node answers */
    bool team;                   /* envelope team_id required (all but auth, permission.ask) */
    bool write;                  /* takes idempotency_key and request_hash */
    int refuse_status;           /* status of a refused argument: 400 (401 for auth) */
    const proto_field_t *fields; /* arguments, ended by a NULL name */
} proto_op_t;

/* The table, indexed by proto_op_id_t. */
extern const proto_op_t proto_ops[PROTO_OP_COUNT];

/* The op named name (NULL-safe), or NULL when there is none. Borrowed, static. */
const proto_op_t *proto_op_find(const char *name);
/* The field named name in the list fields (ended by a NULL name), or NULL. */
const proto_field_t *proto_field_find(const proto_field_t *fields, const char *name);
/* Number of characters (Unicode code points) of the len bytes at s when
   they are valid UTF-8 (shortest forms, no surrogates, ≤ U+10FFFF) and hold
   no NUL; -1 for invalid UTF-8, -2 for a NUL. The one length function of the
   table's limits, used by gateway and node alike. s is borrowed. */
int64_t proto_utf8_len(const char *s, size_t len);
/* Human name of a field type ("string", "integer", …), for messages and docs. */
const char *proto_ftype_name(proto_ftype_t type);

#endif
