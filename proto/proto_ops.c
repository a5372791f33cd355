/*  proto_ops — the table of API operations and their arguments (see
    proto_ops.h; docs/protocol.md shows it and tests/proto/test_proto_ops.c
    checks that page against it). Why here and not in common/: the ops are
    part of the wire contract between gateway and node, like the envelope in
    proto.c, and as plain data they need no JSON library, so proto/ keeps its
    fence (msgpack only). The checker that applies these rows to jansson values
    lives in common/op_args.c, which both processes link. Any thread. */
#include "proto/proto_ops.h"

#include <string.h>

/* ---- values ---------------------------------------------------------------------------------- */

static const char *const s_on_busy[] = {"enqueue", "reject", "interrupt", NULL};
static const char *const s_conv_status[] = {
    "idle", "queued", "processing", "waiting_for_permission", "error", "archived", NULL};
static const char *const s_perm_status[] = {"pending", "approved", "denied", "expired", NULL};
static const char *const s_decisions[] = {"approve", "deny", NULL};
static const char *const s_remember[] = {"conversation", "team", NULL};
static const char *const s_scopes[] = {"team", "conversation", NULL};
static const char *const s_rule_decisions[] = {"allow", "deny", NULL};
static const char *const s_triggers[] = {"after_turn", "every_n_turns", "on_event_types", NULL};

/* ---- fields ---------------------------------------------------------------------------------- */

#define END                                                                                        \
    {                                                                                              \
        NULL, PROTO_FT_STRING, 0, 0, 0, NULL, NULL, NULL, NULL                                     \
    }
#define STR(n, fl, lo, hi)                                                                         \
    {                                                                                              \
        n, PROTO_FT_STRING, fl, lo, hi, NULL, NULL, NULL, NULL                                     \
    }
#define INT(n, fl, lo, hi)                                                                         \
    {                                                                                              \
        n, PROTO_FT_INT, fl, lo, hi, NULL, NULL, NULL, NULL                                        \
    }
#define ENUM(n, fl, v)                                                                             \
    {                                                                                              \
        n, PROTO_FT_ENUM, fl, 0, 0, v, NULL, NULL, NULL                                            \
    }
#define UUID(n, fl)                                                                                \
    {                                                                                              \
        n, PROTO_FT_UUID, fl, 0, 0, NULL, NULL, NULL, NULL                                         \
    }
#define BOOL(n, fl)                                                                                \
    {                                                                                              \
        n, PROTO_FT_BOOL, fl, 0, 0, NULL, NULL, NULL, NULL                                         \
    }
#define OBJ(n, fl, sub)                                                                            \
    {                                                                                              \
        n, PROTO_FT_OBJECT, fl, 0, 0, NULL, sub, NULL, NULL                                        \
    }

#define F_REQ  PROTO_F_REQUIRED
#define F_NULL PROTO_F_NULL
#define F_TEXT PROTO_F_NONBLANK
#define F_GW   PROTO_F_GATEWAY

/* Paging: every list takes these. */
#define F_LIMIT  INT("limit", 0, 1, PROTO_LIST_MAX)
#define F_CURSOR STR("cursor", 0, 1, 1024)
/* Conversation-bound writes: the gateway's Idempotency-Key and its hash of the request. */
#define F_IDEM STR("idempotency_key", F_GW, 1, 255), STR("request_hash", F_GW, 1, 128)
/* The gateway drew the conversation id at random: the node skips its lookup. */
#define F_FRESH BOOL("fresh", F_GW)
/* A conversation's settable fields (create and patch). */
#define F_CONV_PATCH                                                                               \
    STR("title", F_NULL, 0, 1000), OBJ("metadata", 0, NULL), STR("strategy", F_TEXT, 1, 64),       \
        UUID("worktree_id", F_NULL), ENUM("on_busy", 0, s_on_busy)
#define F_CONV STR("source", F_TEXT, 1, 64), STR("type", F_TEXT, 1, 64), F_CONV_PATCH
/* Message content: 1 MiB of characters (the gateway's --max-body binds first). */
#define F_CONTENT STR("content", F_REQ | F_TEXT, 1, 1024 * 1024)

static const proto_field_t s_none[] = {END};
static const proto_field_t s_idem_only[] = {F_IDEM, END};
static const proto_field_t s_auth[] = {STR("token_sha256", F_REQ, 64, 64), END};
static const proto_field_t s_conv_list[] = {F_LIMIT,
                                            F_CURSOR,
                                            STR("source", 0, 1, 64),
                                            STR("type", 0, 1, 64),
                                            ENUM("status", 0, s_conv_status),
                                            END};
static const proto_field_t s_events_list[] = {INT("after", 0, 0, INT64_MAX), F_LIMIT, F_CURSOR,
                                              STR("types", 0, 1, 1024), END};
static const proto_field_t s_msg_list[] = {INT("after_seq", 0, 0, INT64_MAX), F_LIMIT, F_CURSOR,
                                           END};
static const proto_field_t s_conv[] = {F_CONV, END};
static const proto_field_t s_conv_create[] = {F_CONV, F_FRESH, F_IDEM, END};
static const proto_field_t s_conv_patch[] = {F_CONV_PATCH, F_IDEM, END};
static const proto_field_t s_msg_post[] = {
    F_CONTENT, OBJ("metadata", 0, NULL), OBJ("create", F_GW, s_conv), F_FRESH, F_IDEM, END};
static const proto_field_t s_perm_list[] = {ENUM("status", 0, s_perm_status),
                                            UUID("conversation_id", 0), F_LIMIT, F_CURSOR, END};
static const proto_field_t s_id[] = {UUID("id", F_REQ | F_GW), END};
static const proto_field_t s_perm_decide[] = {
    UUID("id", F_REQ | F_GW),
    ENUM("decision", F_REQ | F_GW, s_decisions),
    {"remember", PROTO_FT_ENUM, F_NULL, 0, 0, s_remember, NULL, "decision", "approve"},
    {"updated_input", PROTO_FT_OBJECT, F_NULL, 0, 0, NULL, NULL, "decision", "approve"},
    {"reason", PROTO_FT_STRING, F_NULL, 1, 1000, NULL, NULL, "decision", "deny"},
    END};
static const proto_field_t s_rule_list[] = {UUID("conversation_id", 0), F_LIMIT, F_CURSOR, END};
static const proto_field_t s_rule_create[] = {
    ENUM("scope", F_REQ | F_NULL, s_scopes),
    {"conversation_id", PROTO_FT_UUID, F_REQ | F_NULL, 0, 0, NULL, NULL, "scope", "conversation"},
    STR("tool_pattern", F_REQ | F_NULL, 1, 200),
    ENUM("decision", F_REQ | F_NULL, s_rule_decisions),
    END};
static const proto_field_t s_page[] = {F_LIMIT, F_CURSOR, END};
static const proto_field_t s_wt_create[] = {STR("branch", F_REQ | F_NULL, 1, 200),
                                            STR("base", F_NULL, 1, 256), END};
static const proto_field_t s_wt_delete[] = {UUID("id", F_REQ | F_GW), BOOL("force", F_GW), END};
static const proto_field_t s_event_id[] = {INT("id", F_REQ | F_GW, 1, INT64_MAX), END};
static const proto_field_t s_perm_ask[] = {
    UUID("conversation_id", 0), STR("tool_name", F_REQ, 1, 128), OBJ("input", F_REQ, NULL),
    STR("tool_use_id", 0, 1, 128), END};
/* An observer (actor.attach): its trigger and config. The node checks what the table
   cannot: the name's characters, the strategy, the event type names. */
static const proto_field_t s_trigger[] = {
    ENUM("type", F_REQ, s_triggers),
    {"n", PROTO_FT_INT, F_REQ, 1, 1000, NULL, NULL, "type", "every_n_turns"},
    {"types", PROTO_FT_STRING, F_REQ, 1, 1024, NULL, NULL, "type", "on_event_types"},
    END};
static const proto_field_t s_actor_config[] = {STR("prompt", F_TEXT, 1, 8000), BOOL("message", 0),
                                               BOOL("patch", 0), INT("timeout_s", 0, 1, 300), END};
static const proto_field_t s_actor_attach[] = {
    STR("name", F_REQ, 1, 32), STR("strategy", F_REQ | F_TEXT, 1, 64),
    OBJ("trigger", F_REQ, s_trigger), OBJ("config", 0, s_actor_config), END};
static const proto_field_t s_actor_detach[] = {STR("name", F_REQ | F_GW, 1, 64), END};

/* ---- ops ------------------------------------------------------------------------------------- */

#define TEAM(n, f)                                                                                 \
    {                                                                                              \
        n, PROTO_SCOPE_TEAM, true, false, 400, f                                                   \
    }
#define CONV(n, f)                                                                                 \
    {                                                                                              \
        n, PROTO_SCOPE_CONV, true, false, 400, f                                                   \
    }
#define CONV_WRITE(n, f)                                                                           \
    {                                                                                              \
        n, PROTO_SCOPE_CONV, true, true, 400, f                                                    \
    }

const proto_op_t proto_ops[PROTO_OP_COUNT] = {
    /* A malformed token hash is just a token nobody has: 401 like an unknown one. */
    [PROTO_OP_AUTH] = {"auth", PROTO_SCOPE_TEAM, false, false, 401, s_auth},
    [PROTO_OP_STATUS] = TEAM("status", s_none),
    [PROTO_OP_CONV_LIST] = TEAM("conv.list", s_conv_list),
    [PROTO_OP_EVENTS_LIST] = {"events.list", PROTO_SCOPE_CONV_OPT, true, false, 400, s_events_list},
    [PROTO_OP_CONV_GET] = CONV("conv.get", s_none),
    [PROTO_OP_MSG_LIST] = CONV("msg.list", s_msg_list),
    [PROTO_OP_CONV_CREATE] = CONV_WRITE("conv.create", s_conv_create),
    [PROTO_OP_CONV_PATCH] = CONV_WRITE("conv.patch", s_conv_patch),
    [PROTO_OP_CONV_DELETE] = CONV_WRITE("conv.delete", s_idem_only),
    [PROTO_OP_CONV_CANCEL] = CONV_WRITE("conv.cancel", s_idem_only),
    [PROTO_OP_MSG_POST] = CONV_WRITE("msg.post", s_msg_post),
    [PROTO_OP_PERM_LIST] = TEAM("perm.list", s_perm_list),
    [PROTO_OP_PERM_GET] = TEAM("perm.get", s_id),
    [PROTO_OP_PERM_DECIDE] = CONV("perm.decide", s_perm_decide),
    [PROTO_OP_RULE_LIST] = TEAM("rule.list", s_rule_list),
    [PROTO_OP_RULE_CREATE] = TEAM("rule.create", s_rule_create),
    [PROTO_OP_RULE_DELETE] = TEAM("rule.delete", s_id),
    [PROTO_OP_WT_LIST] = TEAM("wt.list", s_page),
    [PROTO_OP_WT_GET] = TEAM("wt.get", s_id),
    [PROTO_OP_WT_CREATE] = TEAM("wt.create", s_wt_create),
    [PROTO_OP_WT_DELETE] = TEAM("wt.delete", s_wt_delete),
    [PROTO_OP_STRATEGIES] = TEAM("strategies", s_none),
    /* From bicky-mcp-permission (no team): the running claude-code turn on that node. */
    [PROTO_OP_PERMISSION_ASK] = {"permission.ask", PROTO_SCOPE_LOCAL, false, false, 400,
                                 s_perm_ask},
    [PROTO_OP_EVENT_GET] = TEAM("event.get", s_event_id),
    [PROTO_OP_EVENT_REVERT] = CONV("event.revert", s_event_id),
    [PROTO_OP_EVENT_REVERT_TEAM] = TEAM("event.revert_team", s_event_id),
    [PROTO_OP_ACTOR_LIST] = CONV("actor.list", s_none),
    [PROTO_OP_ACTOR_ATTACH] = CONV("actor.attach", s_actor_attach),
    [PROTO_OP_ACTOR_DETACH] = CONV("actor.detach", s_actor_detach),
};

const proto_op_t *proto_op_find(const char *name)
{
    for (size_t i = 0; name && i < PROTO_OP_COUNT; i++) {
        if (strcmp(proto_ops[i].name, name) == 0) {
            return &proto_ops[i];
        }
    }
    return NULL;
}

const proto_field_t *proto_field_find(const proto_field_t *fields, const char *name)
{
    for (const proto_field_t *f = fields; f && f->name && name; f++) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

const char *proto_ftype_name(proto_ftype_t type)
{
    switch (type) {
        case PROTO_FT_STRING:
            return "string";
        case PROTO_FT_INT:
            return "integer";
        case PROTO_FT_BOOL:
            return "boolean";
        case PROTO_FT_OBJECT:
            return "object";
        case PROTO_FT_UUID:
            return "uuid";
        case PROTO_FT_ENUM:
            return "enum";
    }
    return "unknown";
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Length of the sequence led by byte c, and the smallest code point it may
   encode (shorter forms are overlong); 0 for a byte that cannot lead. */
static int s_lead(unsigned char c, uint32_t *cp, uint32_t *min)
{
    if (c < 0x80) {
        *cp = c;
        *min = 0;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        *cp = c & 0x1fu;
        *min = 0x80;
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        *cp = c & 0x0fu;
        *min = 0x800;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        *cp = c & 0x07u;
        *min = 0x10000;
        return 4;
    }
    return 0;
}

int64_t proto_utf8_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    int64_t chars = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp, min;
        int n = s_lead(p[i], &cp, &min);
        if (n == 0 || (size_t)n > len - i) {
            return -1;
        }
        for (int k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return -1;
            }
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }
        if (cp == 0) {
            return -2;
        }
        i += (size_t)n;
        chars++;
    }
    return chars;
}
