/*  reg_server_role — active and standby. The store thread reports ACTIVE
    (lock acquired, membership loaded, epoch bumped), STANDBY (lock lost)
    and SAVED (a snapshot written, with a new epoch when one was asked for).
    While active, a membership change is not published until Postgres has
    stored it and handed out its epoch: until then RING replies and
    publications show the frozen ring of the last stored epoch, and the
    replies to the requests that made the change are held (reg_pending).
    Loop thread only. */
#define LOG_MODULE "reg_server"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "registry/registry_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- ring views --------------------------------------------------------- */

void reg_view_free(reg_view_t *view)
{
    free(view->nodes);
    memset(view, 0, sizeof *view);
}

/* Builds the ring's node list from members (id order). -1 on OOM. */
static int s_view_build(reg_view_t *view, const reg_members_t *members)
{
    size_t n = reg_members_size(members);
    int64_t now = util_mono_ms();
    memset(view, 0, sizeof *view);
    view->nodes = calloc(n ? n : 1, sizeof *view->nodes);
    if (!view->nodes) {
        LOG_E("out of memory building the ring");
        return -1;
    }
    view->count = n;
    for (size_t i = 0; i < n; i++) {
        const reg_node_t *src = reg_members_at(members, i);
        proto_node_t *dst = &view->nodes[i];
        snprintf(dst->id, sizeof dst->id, "%s", src->id);
        snprintf(dst->state, sizeof dst->state, "%s", reg_node_state_name(src->state));
        snprintf(dst->router, sizeof dst->router, "%s", src->router);
        snprintf(dst->pub, sizeof dst->pub, "%s", src->pub);
        dst->weight = src->weight;
        dst->actors = src->actors;
        dst->age_ms = now > src->beat_ms ? (uint64_t)(now - src->beat_ms) : 0;
    }
    return 0;
}

int reg_server_ring_msg(reg_server_t *self, uint64_t req_id, proto_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    msg->type = PROTO_RING;
    msg->req_id = req_id;
    msg->ring_epoch = self->epoch;
    msg->pub = self->pub_ep;
    msg->revoked_seq = self->revoked_seq;
    reg_view_t view;
    if (reg_members_version(self->members) == self->saved_version) {
        /* Nothing waits for an epoch: the live table, with fresh actor counts and ages. */
        if (s_view_build(&view, self->members) < 0) {
            return -1;
        }
    } else {
        size_t n = self->frozen.count;
        view.count = n;
        if (!(view.nodes = malloc((n ? n : 1) * sizeof *view.nodes))) {
            LOG_E("out of memory building the ring");
            return -1;
        }
        memcpy(view.nodes, self->frozen.nodes, n * sizeof *view.nodes);
    }
    msg->nodes = view.nodes;
    msg->nnodes = view.count;
    return 0;
}

void reg_server_publish(reg_server_t *self)
{
    if (!self->active) {
        return;
    }
    proto_msg_t msg;
    if (reg_server_ring_msg(self, 0, &msg) == 0) {
        wire_publish(self->pub, REG_RING_TOPIC, strlen(REG_RING_TOPIC), &msg);
    }
    free(msg.nodes);
    self->next_publish_ms = util_mono_ms() + REG_PUBLISH_EVERY_MS;
}

/* ---- the save cycle ----------------------------------------------------- */

void reg_server_changed(reg_server_t *self, const char *reason, const char *node_id)
{
    LOG_I("membership changed reason=%s node=%s version=%" PRIu64, reason, node_id ? node_id : "-",
          reg_members_version(self->members));
    size_t len = strlen(self->reason), cap = sizeof self->reason;
    if (len + 4 < cap) {
        snprintf(self->reason + len, cap - len, "%s%s%s%s", len ? "," : "", reason,
                 node_id ? ":" : "", node_id ? node_id : "");
    }
    if (strlen(self->reason) + 4 >= cap) {
        snprintf(self->reason + cap - 4, 4, "...");
    }
    reg_server_maybe_save(self);
}

void reg_server_maybe_save(reg_server_t *self)
{
    int64_t now = util_mono_ms();
    if (!self->active || self->inflight || now < self->save_backoff_ms) {
        return;
    }
    uint64_t version = reg_members_version(self->members);
    bool bump = version != self->saved_version;
    if (!bump && now < self->next_save_ms) {
        return;
    }
    reg_view_free(&self->candidate);
    if (bump && s_view_build(&self->candidate, self->members) < 0) {
        return;
    }
    if (reg_store_save(self->store, self->members, self->generation, bump) < 0) {
        LOG_D("store queue full; the save waits for the next tick");
        return;
    }
    self->inflight = true;
    self->inflight_version = version;
    self->inflight_bump = bump;
    snprintf(self->inflight_reason, sizeof self->inflight_reason, "%s", self->reason);
    self->reason[0] = 0;
    self->next_save_ms = now + REG_SAVE_EVERY_MS;
}

/* Sends every held reply whose change is now stored. */
static void s_release(reg_server_t *self, uint64_t version)
{
    reg_reply_t r;
    while (reg_pending_pop(self->pending, version, &r) == 0) {
        reg_server_answer(self, &r);
        zframe_destroy(&r.peer);
    }
}

/* The change of the save in flight is stored under epoch: publish it. */
static void s_confirm(reg_server_t *self, uint64_t version, uint64_t epoch)
{
    if (epoch <= self->epoch) {
        LOG_E("Postgres handed out epoch=%" PRIu64 " after epoch=%" PRIu64
              " (ring_state was rewritten?)",
              epoch, self->epoch);
    }
    self->epoch = epoch;
    self->saved_version = version;
    reg_view_free(&self->frozen);
    self->frozen = self->candidate;
    memset(&self->candidate, 0, sizeof self->candidate);
    LOG_N("ring changed epoch=%" PRIu64 " changes=%s", epoch,
          self->inflight_reason[0] ? self->inflight_reason : "-");
    reg_server_publish(self);
    s_release(self, version);
}

static void s_saved(reg_server_t *self, const reg_store_event_t *ev)
{
    if (!self->active || ev->generation != self->generation || !self->inflight) {
        return;
    }
    self->inflight = false;
    if (!ev->ok) {
        /* The thread logged why; the changes go into the next attempt. */
        self->save_backoff_ms = util_mono_ms() + REG_SAVE_RETRY_MS;
        if (!self->reason[0]) {
            snprintf(self->reason, sizeof self->reason, "%s", self->inflight_reason);
        }
        return;
    }
    if (self->inflight_bump && ev->epoch > 0 && ev->version == self->inflight_version) {
        s_confirm(self, ev->version, ev->epoch);
    } else if (self->inflight_bump) {
        /* Not expected (one save in flight): skip that epoch, bump again. */
        LOG_W("stored version=%" PRIu64 " epoch=%" PRIu64 " does not match the save in flight"
              " version=%" PRIu64,
              ev->version, ev->epoch, self->inflight_version);
    }
    reg_server_maybe_save(self);
}

/* ---- roles -------------------------------------------------------------- */

/* Forgets everything of the current activation; held replies get a standby
   ack so that their senders ask the next registry at once. */
static void s_drop_activation(reg_server_t *self)
{
    reg_reply_t r;
    self->active = false;
    while (reg_pending_pop(self->pending, UINT64_MAX, &r) == 0) {
        reg_server_standby_ack(self, r.peer, r.req_id);
        zframe_destroy(&r.peer);
    }
    reg_members_destroy(&self->members);
    reg_view_free(&self->frozen);
    reg_view_free(&self->candidate);
    self->epoch = 0;
    self->saved_version = 0;
    self->inflight = false;
    self->reason[0] = 0;
}

static int s_activate(reg_server_t *self, reg_store_event_t *ev)
{
    if (!ev->members) {
        LOG_E("out of memory taking over membership; exiting to give the lock back");
        return -1;
    }
    s_drop_activation(self);
    self->members = ev->members;
    ev->members = NULL;
    self->active = true;
    self->generation = ev->generation;
    self->epoch = ev->epoch;
    self->saved_version = reg_members_version(self->members);
    self->save_backoff_ms = 0;
    self->next_save_ms = util_mono_ms() + REG_SAVE_EVERY_MS;
    if (s_view_build(&self->frozen, self->members) < 0) {
        return -1;
    }
    size_t counts[3];
    reg_members_counts(self->members, counts);
    LOG_N("active: took over membership epoch=%" PRIu64 " alive=%zu draining=%zu dead=%zu",
          self->epoch, counts[0], counts[1], counts[2]);
    reg_server_publish(self);
    return 0;
}

static void s_stand_by(reg_server_t *self, const reg_store_event_t *ev)
{
    if (!self->active) {
        LOG_N("standing by: another registry holds the lock (or the database is unreachable);"
              " every request gets state=%s",
              REG_STATE_STANDBY);
        return;
    }
    if (ev->generation != self->generation) {
        return;
    }
    LOG_W("standing by: lost the registry lock at epoch=%" PRIu64 "; clients move on", self->epoch);
    s_drop_activation(self);
}

/* A revoked token goes out at once (topic "revoked"); the counter rides on every ring
   publication, so a gateway that missed the message sees the gap. */
static void s_revoked(reg_server_t *self, const reg_store_event_t *ev)
{
    if (!self->active || ev->generation != self->generation) {
        return;
    }
    self->revoked_seq = ev->revoked_seq;
    if (ev->type == REG_STORE_REVSEQ) {
        LOG_I("token revocations seq=%" PRIu64, ev->revoked_seq);
        return;
    }
    LOG_N("token revoked seq=%" PRIu64 " sha256=%.12s", ev->revoked_seq, ev->token_sha256);
    proto_msg_t msg = {.type = PROTO_REVOKED,
                       .ring_epoch = self->epoch,
                       .seq = ev->revoked_seq,
                       .token_sha256 = (char *)ev->token_sha256};
    wire_publish(self->pub, REG_REVOKED_TOPIC, strlen(REG_REVOKED_TOPIC), &msg);
}

int reg_server_on_store_events(reg_server_t *self)
{
    reg_store_event_t ev;
    while (reg_store_recv(self->store, &ev) == 0) {
        if (ev.type == REG_STORE_ACTIVE && s_activate(self, &ev) < 0) {
            reg_members_destroy(&ev.members);
            return -1;
        }
        if (ev.type == REG_STORE_STANDBY) {
            s_stand_by(self, &ev);
        } else if (ev.type == REG_STORE_SAVED) {
            s_saved(self, &ev);
        } else if (ev.type == REG_STORE_REVOKED || ev.type == REG_STORE_REVSEQ) {
            s_revoked(self, &ev);
        } else if (ev.type == REG_STORE_TOKEN) {
            reg_server_on_token(self, &ev.token);
        }
    }
    return 0;
}
