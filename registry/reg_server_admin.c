/*  reg_server_admin — the registry's admin requests: drain, undrain and
    remove a node. bickyctl sends them with the cluster's admin key (or, on an
    insecure cluster, with no key) and the registry acts at once. A gateway
    sends drain and undrain for an HTTP caller with the caller's API token:
    its own key proves nothing about the caller, so the registry asks its
    store thread whether that token is live, not revoked and admin in
    Postgres (a stolen gateway key without an admin token drains nothing),
    and acts only then, logging the token's id and team. The role check
    itself is reg_server_reply.c's. Loop thread only. */
#define LOG_MODULE "reg_server"
#include "common/log.h"
#include "common/util.h"
#include "registry/registry_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Applies action to node_id and answers: 200 once stored when membership
   changed, at once otherwise (200 unchanged, 404, 400). by names who asked,
   for the log. */
static void s_act(reg_server_t *self,
                  zframe_t *peer,
                  uint64_t req_id,
                  const char *action,
                  const char *node_id,
                  const char *by)
{
    int status = 500;
    const char *why = NULL;
    reg_change_t rc = reg_members_admin(self->members, action, node_id, &status, &why);
    LOG_N("admin action=%s node=%s status=%d by=%s", action, node_id, status, by);
    if (rc == REG_CHANGED) {
        /* Acknowledged once stored: an accepted drain survives any crash. */
        reg_server_changed(self, action, node_id);
        reg_reply_t reply = {.type = PROTO_ADMIN_REP, .req_id = req_id, .status = 200};
        snprintf(reply.node_id, sizeof reply.node_id, "%s", node_id);
        reg_server_hold(self, peer, &reply);
        return;
    }
    const reg_node_t *n = status == 200 ? reg_members_find(self->members, node_id) : NULL;
    reg_server_admin_rep(self, peer, req_id, (uint64_t)status, why,
                         n ? reg_node_state_name(n->state) : NULL);
}

static reg_check_t *s_free_slot(reg_server_t *self)
{
    for (size_t i = 0; i < REG_CHECKS_MAX; i++) {
        if (!self->checks[i].id) {
            return &self->checks[i];
        }
    }
    return NULL;
}

static void s_release(reg_check_t *c)
{
    zframe_destroy(&c->peer);
    memset(c, 0, sizeof *c);
}

/* A request with a token: drain and undrain only (remove stays with the
   admin key), then the token goes to the store thread as its SHA-256 (the
   form Postgres keeps). */
static void s_check(reg_server_t *self, zframe_t *peer, const proto_msg_t *msg)
{
    if (strcmp(msg->action, "drain") != 0 && strcmp(msg->action, "undrain") != 0) {
        LOG_W("refused admin action=%s node=%s with an API token: only drain and undrain"
              " req=%" PRIu64,
              msg->action, msg->node_id, msg->req_id);
        reg_server_admin_rep(self, peer, msg->req_id, 403,
                             "an API token may only drain or undrain; remove needs the admin key",
                             NULL);
        return;
    }
    reg_check_t *c = s_free_slot(self);
    if (!c || !(c->peer = zframe_dup(peer))) {
        LOG_W("too many admin requests waiting for a token check; answering 503 req=%" PRIu64,
              msg->req_id);
        reg_server_admin_rep(self, peer, msg->req_id, 503, "too many admin requests; retry", NULL);
        return;
    }
    char sha[65];
    util_sha256_hex(msg->token, strlen(msg->token), sha);
    c->id = ++self->next_check_id;
    c->req_id = msg->req_id;
    c->since_ms = util_mono_ms();
    snprintf(c->action, sizeof c->action, "%s", msg->action);
    snprintf(c->node_id, sizeof c->node_id, "%s", msg->node_id);
    if (reg_store_check_token(self->store, c->id, sha) < 0) {
        LOG_W("the store thread's queue is full; answering 503 req=%" PRIu64, msg->req_id);
        reg_server_admin_rep(self, peer, msg->req_id, 503, "the registry is busy; retry", NULL);
        s_release(c);
    }
}

void reg_server_admin(reg_server_t *self,
                      zframe_t *peer,
                      const proto_msg_t *msg,
                      const keys_peer_t *who)
{
    if (self->keys && who->role == KEYS_ROLE_ADMIN) {
        char by[128];
        snprintf(by, sizeof by, "admin-key:%s", who->name);
        s_act(self, peer, msg->req_id, msg->action, msg->node_id, by);
    } else if (msg->token && msg->token[0]) {
        s_check(self, peer, msg);
    } else {
        /* No keys (an --insecure cluster: loopback only) and no token: as bickyctl --insecure. */
        s_act(self, peer, msg->req_id, msg->action, msg->node_id, "insecure");
    }
}

void reg_server_on_token(reg_server_t *self, const reg_token_t *tok)
{
    reg_check_t *c = NULL;
    for (size_t i = 0; i < REG_CHECKS_MAX && !c; i++) {
        if (self->checks[i].id && self->checks[i].id == tok->check_id) {
            c = &self->checks[i];
        }
    }
    if (!c) {
        return; /* answered 503 already (expired) */
    }
    char by[256];
    snprintf(by, sizeof by, "token:%s team=%s team_id=%s", tok->id[0] ? tok->id : "-",
             tok->team[0] ? tok->team : "-", tok->team_id[0] ? tok->team_id : "-");
    if (!self->active) {
        reg_server_standby_ack(self, c->peer, c->req_id);
    } else if (tok->result == REG_TOKEN_ADMIN) {
        s_act(self, c->peer, c->req_id, c->action, c->node_id, by);
    } else if (tok->result == REG_TOKEN_ERROR) {
        reg_server_admin_rep(self, c->peer, c->req_id, 503, "cannot check the token now; retry",
                             NULL);
    } else {
        bool unknown = tok->result == REG_TOKEN_UNKNOWN;
        LOG_W("refused admin action=%s node=%s by=%s: %s req=%" PRIu64, c->action, c->node_id, by,
              unknown ? "invalid or revoked token" : "not an admin token", c->req_id);
        reg_server_admin_rep(
            self, c->peer, c->req_id, 403,
            unknown ? "invalid or revoked token" : "the token is not an admin token", NULL);
    }
    s_release(c);
}

void reg_server_checks_expire(reg_server_t *self, int64_t before_ms)
{
    for (size_t i = 0; i < REG_CHECKS_MAX; i++) {
        reg_check_t *c = &self->checks[i];
        if (c->id && c->since_ms < before_ms) {
            LOG_W("no answer to a token check within %d ms; answering 503 req=%" PRIu64,
                  REG_CHECK_WAIT_MS, c->req_id);
            reg_server_admin_rep(self, c->peer, c->req_id, 503, "cannot check the token now; retry",
                                 NULL);
            s_release(c);
        }
    }
}
