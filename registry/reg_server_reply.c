/*  reg_server_reply — the registry's request handlers: register,
    heartbeat, ring_get, and the role check of every request (admin itself
    is in reg_server_admin.c). A standby answers all four with a reg_ack
    whose state is "standby" (ring_epoch 0, no pub). An active registry
    answers at once, except that a request which changed membership is
    answered only after the change is stored with its own epoch
    (reg_pending), so the epoch in that reply already covers it.
    Loop thread only. */
#define LOG_MODULE "reg_server"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "registry/registry_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_STANDBY_ERROR "standby registry: not active; ask the next registry endpoint"

/* Sends a REG_ACK. state and error are borrowed; the encoder only reads them. */
static void
s_ack(reg_server_t *self, zframe_t *peer, uint64_t req_id, const char *state, const char *error)
{
    proto_msg_t ack = {.type = PROTO_REG_ACK,
                       .req_id = req_id,
                       .ring_epoch = self->epoch,
                       .state = (char *)state,
                       .pub = self->pub_ep,
                       .error = (char *)error};
    if (wire_send(self->router, peer, &ack) < 0) {
        LOG_D("reg_ack dropped req=%" PRIu64, req_id);
    }
}

void reg_server_standby_ack(reg_server_t *self, zframe_t *peer, uint64_t req_id)
{
    /* No pub and epoch 0: nothing in it may be mistaken for the active's view. */
    proto_msg_t ack = {.type = PROTO_REG_ACK,
                       .req_id = req_id,
                       .state = REG_STATE_STANDBY,
                       .error = S_STANDBY_ERROR};
    if (wire_send(self->router, peer, &ack) < 0) {
        LOG_D("standby reg_ack dropped req=%" PRIu64, req_id);
    }
}

void reg_server_admin_rep(reg_server_t *self,
                          zframe_t *peer,
                          uint64_t req_id,
                          uint64_t status,
                          const char *error,
                          const char *state)
{
    proto_msg_t rep = {.type = PROTO_ADMIN_REP,
                       .req_id = req_id,
                       .ring_epoch = self->epoch,
                       .status = status,
                       .error = (char *)error,
                       .state = (char *)state};
    if (wire_send(self->router, peer, &rep) < 0) {
        LOG_D("admin_rep dropped req=%" PRIu64, req_id);
    }
}

void reg_server_answer(reg_server_t *self, reg_reply_t *reply)
{
    const reg_node_t *n = reg_members_find(self->members, reply->node_id);
    if (reply->type == PROTO_ADMIN_REP) {
        /* The node's state now (none after a remove). */
        reg_server_admin_rep(self, reply->peer, reply->req_id, reply->status, NULL,
                             n ? reg_node_state_name(n->state) : NULL);
        return;
    }
    /* Removed meanwhile: it must register again. */
    s_ack(self, reply->peer, reply->req_id, n ? reg_node_state_name(n->state) : "unknown", NULL);
}

/* The request from peer changed membership: hold its reply until the change
   is stored, or answer at once when too many replies are held already. */
void reg_server_hold(reg_server_t *self, zframe_t *peer, reg_reply_t *reply)
{
    reply->version = reg_members_version(self->members);
    reply->since_ms = util_mono_ms();
    reply->peer = zframe_dup(peer);
    if (reply->peer && reg_pending_add(self->pending, reply) == 0) {
        return;
    }
    LOG_W("too many held replies; answering req=%" PRIu64 " before its change is stored",
          reply->req_id);
    zframe_destroy(&reply->peer);
    reply->peer = peer;
    reg_server_answer(self, reply);
}

static void s_hold_ack(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    reg_reply_t reply = {.type = PROTO_REG_ACK, .req_id = msg->req_id};
    snprintf(reply.node_id, sizeof reply.node_id, "%s", msg->node_id);
    reg_server_hold(self, peer, &reply);
}

static void s_on_register(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    reg_join_t join = {msg->node_id, msg->router, msg->pub, msg->weight};
    const char *why = NULL;
    reg_now_t now = {.mono_ms = util_mono_ms(), .wall_ms = util_wall_ms()};
    reg_change_t rc = reg_members_register(self->members, &join, now, &why);
    if (rc == REG_REJECTED) {
        LOG_W("register rejected node=%s error=\"%s\"", msg->node_id, why);
        s_ack(self, peer, msg->req_id, "unknown", why);
        return;
    }
    const reg_node_t *n = reg_members_find(self->members, msg->node_id);
    LOG_I("register node=%s router=%s pub=%s weight=%u state=%s", n->id, n->router, n->pub,
          n->weight, reg_node_state_name(n->state));
    if (rc == REG_CHANGED) {
        reg_server_changed(self, "join", n->id);
        s_hold_ack(self, peer, msg);
        return;
    }
    s_ack(self, peer, msg->req_id, reg_node_state_name(n->state), NULL);
}

static void s_on_heartbeat(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    reg_now_t now = {.mono_ms = util_mono_ms(), .wall_ms = util_wall_ms()};
    reg_change_t rc = reg_members_heartbeat(self->members, msg->node_id, msg->actors, now);
    if (rc == REG_REJECTED) {
        LOG_D("heartbeat from unknown node=%s", msg->node_id);
        s_ack(self, peer, msg->req_id, "unknown", "unknown node: register again");
        return;
    }
    if (rc == REG_CHANGED) {
        reg_server_changed(self, "back", msg->node_id);
        s_hold_ack(self, peer, msg);
        return;
    }
    const reg_node_t *n = reg_members_find(self->members, msg->node_id);
    s_ack(self, peer, msg->req_id, reg_node_state_name(n->state), NULL);
}

static void s_on_ring_get(reg_server_t *self, zframe_t *peer, uint64_t req_id)
{
    proto_msg_t msg;
    if (reg_server_ring_msg(self, req_id, &msg) == 0 && wire_send(self->router, peer, &msg) < 0) {
        LOG_D("ring reply dropped req=%" PRIu64, req_id);
    }
    free(msg.nodes);
}

/* With CURVE, what each key may ask: a node's key registers and beats for
   that node id only, admin actions need an admin key, and the ring is for
   every role. NULL when allowed, else why not. */
static const char *
s_forbidden(const reg_server_t *self, const proto_msg_t *msg, const keys_peer_t *who)
{
    if (!self->keys) {
        return NULL;
    }
    switch (msg->type) {
        case PROTO_REGISTER:
        case PROTO_HEARTBEAT:
            return who->role == KEYS_ROLE_NODE && !strcmp(who->name, msg->node_id)
                       ? NULL
                       : "only the key of that node may register it or beat for it";
        case PROTO_ADMIN:
            /* A gateway may forward an admin request with its caller's API token;
               reg_server_admin then acts only if Postgres says the token is admin. */
            if (who->role == KEYS_ROLE_ADMIN ||
                (who->role == KEYS_ROLE_GATEWAY && msg->token && msg->token[0])) {
                return NULL;
            }
            return who->role == KEYS_ROLE_GATEWAY
                       ? "admin actions need an admin key, or an admin API token"
                       : "admin actions need an admin key";
        default:
            return who->role != KEYS_ROLE_NONE ? NULL : "a key without a role";
    }
}

/* Logs and answers a refused request (register and heartbeat: reg_ack state
   unknown with the reason; admin: admin_rep 403; ring_get: nothing). */
static void s_refuse(reg_server_t *self,
                     zframe_t *peer,
                     const proto_msg_t *msg,
                     const keys_peer_t *who,
                     const char *why)
{
    LOG_W("refused type=%s node=%s from role=%s name=%s key=%s: %s req=%" PRIu64,
          proto_type_name(msg->type), msg->node_id ? msg->node_id : "-", keys_role_name(who->role),
          who->name, who->key, why, msg->req_id);
    if (msg->type == PROTO_ADMIN) {
        reg_server_admin_rep(self, peer, msg->req_id, 403, why, NULL);
    } else if (msg->type != PROTO_RING_GET) {
        s_ack(self, peer, msg->req_id, "unknown", why);
    }
}

void reg_server_dispatch(reg_server_t *self,
                         zframe_t *peer,
                         const proto_msg_t *msg,
                         const keys_peer_t *who)
{
    bool request = msg->type == PROTO_REGISTER || msg->type == PROTO_HEARTBEAT ||
                   msg->type == PROTO_RING_GET || msg->type == PROTO_ADMIN;
    if (!request) {
        LOG_W("dropped unexpected message type=%s req=%" PRIu64, proto_type_name(msg->type),
              msg->req_id);
        return;
    }
    const char *why = s_forbidden(self, msg, who);
    if (why) {
        s_refuse(self, peer, msg, who, why);
        return;
    }
    if (!self->active) {
        LOG_D("standby answered type=%s req=%" PRIu64, proto_type_name(msg->type), msg->req_id);
        reg_server_standby_ack(self, peer, msg->req_id);
        return;
    }
    switch (msg->type) {
        case PROTO_REGISTER:
            s_on_register(self, peer, msg);
            break;
        case PROTO_HEARTBEAT:
            s_on_heartbeat(self, peer, msg);
            break;
        case PROTO_RING_GET:
            s_on_ring_get(self, peer, msg->req_id);
            break;
        default:
            reg_server_admin(self, peer, msg, who);
            break;
    }
}
