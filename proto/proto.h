/*  proto — the msgpack wire format between Bicky processes (docs/protocol.md).
    Every message is one msgpack map, the envelope:
      v (uint, = PROTO_VERSION), type (uint), req_id (uint), conv_id (bin 16 or nil),
      team_id (bin 16 or nil), ring_epoch (uint), payload (map, keys by type).
    proto_decode validates every field and returns an error value for any
    malformed input (truncated, wrong type, unknown version or type, missing
    or oversized field); it never asserts on peer data. Only this module
    includes <msgpack.h>. Pure functions: any thread. */
#ifndef BICKY_PROTO_H
#define BICKY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION   1
#define PROTO_MAX_FRAME (24u * 1024 * 1024) /* largest encoded message accepted */
#define PROTO_MAX_BODY  (16u * 1024 * 1024) /* largest body/JSON string field */
#define PROTO_MAX_NODES 1024                /* nodes in one RING message */
#define PROTO_TOPIC_LEN 32                  /* PUB topic: team id (16) + conversation id (16) */

typedef enum {
    PROTO_NONE = 0,
    /* Registry: DEALER (node, gateway, bickyctl) → registry ROUTER, reply on the same pair. */
    PROTO_REGISTER = 1,  /* node → reg: node_id, router, pub, weight */
    PROTO_HEARTBEAT = 2, /* node → reg: node_id, actors */
    PROTO_REG_ACK =
        3, /* reg → node: state, pub (registry PUB endpoint), error; epoch in envelope */
    PROTO_RING_GET = 4, /* any → reg: (empty payload) */
    PROTO_RING = 5,  /* reg → any, reply and PUB topic "ring": pub, nodes[]; epoch in envelope */
    PROTO_ADMIN = 6, /* bickyctl/gw → reg: action (drain|undrain|remove), node_id, token */
    PROTO_ADMIN_REP = 7, /* reg → bickyctl/gw: status (HTTP-like code), error, state */
    PROTO_REVOKED = 8,   /* reg PUB topic "revoked": seq, token_sha256 (a token was revoked) */
    /* API: gateway DEALER → node ROUTER, reply on the same pair. */
    PROTO_API_REQ = 10, /* op, body (JSON text), team_turns/actors/worktrees (team limits) */
    PROTO_API_REP = 11, /* status, body (JSON text), retry_after */
    PROTO_MOVED = 12,   /* node → gw: not the owner; envelope ring_epoch = the node's epoch */
    /* Events: node PUB → gateway SUB; frame 1 is the 32-byte topic, frame 2 the envelope. */
    PROTO_EVENT = 20, /* event_id (0 for live-only deltas), event_type, body (event JSON) */
    PROTO_TYPE_END
} proto_type_t;

typedef enum {
    PROTO_OK = 0,
    PROTO_ERR_TRUNCATED = -1, /* not a complete msgpack object, or trailing bytes */
    PROTO_ERR_SHAPE = -2,     /* not a map, a field of the wrong msgpack type */
    PROTO_ERR_VERSION = -3,   /* v is not PROTO_VERSION */
    PROTO_ERR_TYPE = -4,      /* unknown message type */
    PROTO_ERR_MISSING = -5,   /* a required field is absent */
    PROTO_ERR_RANGE = -6,     /* a field is too long, too large, or a bad id length */
    PROTO_ERR_NOMEM = -7,     /* allocation failed */
} proto_err_t;

typedef struct {
    char id[64];      /* node id */
    char state[16];   /* alive | draining | dead */
    char router[256]; /* ROUTER endpoint for API requests */
    char pub[256];    /* PUB endpoint for events */
    uint32_t weight;  /* ring weight */
    uint32_t actors;  /* resident actors at the last heartbeat */
    uint64_t age_ms;  /* ms since the last heartbeat */
} proto_node_t;

typedef struct {
    /* envelope */
    uint32_t v;          /* protocol version (PROTO_VERSION when encoding) */
    proto_type_t type;   /* message type */
    uint64_t req_id;     /* request id, echoed in the reply; 0 when none */
    bool has_conv;       /* conv_id present */
    uint8_t conv_id[16]; /* conversation id */
    bool has_team;       /* team_id present */
    uint8_t team_id[16]; /* team id */
    uint64_t ring_epoch; /* sender's ring epoch */
    /* payload; owned heap strings (NULL when absent), see the table in proto.c */
    char *node_id;           /* REGISTER, HEARTBEAT, ADMIN */
    char *router;            /* REGISTER */
    char *pub;               /* REGISTER, REG_ACK, RING */
    char *state;             /* REG_ACK; ADMIN_REP: the node's state after the action */
    char *action;            /* ADMIN */
    char *op;                /* API_REQ */
    char *body;              /* API_REQ, API_REP, EVENT (JSON text) */
    char *error;             /* REG_ACK, ADMIN_REP */
    char *event_type;        /* EVENT */
    uint64_t weight;         /* REGISTER */
    uint64_t actors;         /* HEARTBEAT */
    uint64_t status;         /* ADMIN_REP, API_REP */
    uint64_t retry_after;    /* API_REP: seconds, 0 when none */
    uint64_t event_id;       /* EVENT */
    uint64_t seq;            /* EVENT: per-conversation seq of a stored event, 0 when none;
                                REVOKED: the revocation counter after this revocation */
    uint64_t revoked_seq;    /* RING: the revocation counter (0 = none yet, or not known) */
    char *token_sha256;      /* REVOKED: SHA-256 hex of the revoked token */
    char *token;             /* ADMIN: the HTTP caller's API token, forwarded by a gateway */
    uint64_t team_turns;     /* API_REQ: the team's running-turn limit per node (0 = default) */
    uint64_t team_actors;    /* API_REQ: the team's resident-actor limit per node (0 = default) */
    uint64_t team_worktrees; /* API_REQ: the team's active-worktree limit (0 = default) */
    proto_node_t *nodes;     /* RING: owned array */
    size_t nnodes;           /* RING: count */
} proto_msg_t;

/* Encodes msg into a new heap buffer (*data, freed by the caller with free)
   of *size bytes. Returns PROTO_OK, or an error when a required field of
   msg's type is NULL or too long (a programmer error worth reporting). */
/* A node id: 1 to PROTO_NODE_ID_MAX characters of A-Z a-z 0-9 . _ : - (the
   registry's rule; the gateway checks HTTP path ids with it too). */
#define PROTO_NODE_ID_MAX 63
bool proto_node_id_valid(const char *id);

int proto_encode(const proto_msg_t *msg, uint8_t **data, size_t *size);

/* Decodes data into *out (zeroed first; release with proto_msg_reset).
   Returns PROTO_OK or a proto_err_t; on error *out holds nothing to free and,
   when err is not NULL, a short reason is written to err. */
int proto_decode(const void *data, size_t size, proto_msg_t *out, char *err, size_t errlen);

/* Frees the payload strings and nodes of msg and zeroes it. Accepts NULL. */
void proto_msg_reset(proto_msg_t *msg);

/* Name of a message type ("api_req"), or "unknown". */
const char *proto_type_name(proto_type_t type);

/* Builds the 32-byte PUB topic for a team and conversation. */
void proto_topic(const uint8_t team[16], const uint8_t conv[16], uint8_t out[PROTO_TOPIC_LEN]);

#endif
