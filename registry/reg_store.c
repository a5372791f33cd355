/*  reg_store — the election and persistence thread (a zactor). Messages on
    the actor pipe carry copies of node arrays as byte frames, never
    pointers, so nothing leaks when one is left unread at shutdown.
      loop → thread: "SAVE" generation version bump nodes
                     "CHECK" check_id 0 0 sha256 (an admin request's API token)
      thread → loop: "ACTIVE"|"STANDBY"|"SAVED" generation epoch version ok nodes
                     "REVOKED" generation seq 0 1 sha256 (a token was revoked)
                     "REVSEQ" generation seq 0 1 - (the revocation counter, when it moved)
                     "TOKEN" generation check_id 0 1 reg_token_t (a check's answer)
    A check is answered as soon as it is read, between saves.
    The loop keeps at most one save in flight; the thread merges any that
    queue up (newest nodes, bump if any asked for one). */
#define LOG_MODULE "reg_store"
#include "registry/reg_store.h"

#include "common/log.h"
#include "common/util.h"
#include "registry/reg_server.h"
#include "registry/registry_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_PICTURE "s8881b" /* cmd, generation, epoch, version, ok, nodes */

struct reg_store_t {
    zactor_t *actor;       /* the thread */
    char *conninfo;        /* owned copy, read by the thread until it stops */
    int64_t dead_after_ms; /* grace period of restored nodes */
};

/* A queued save (thread side). */
typedef struct {
    uint64_t generation; /* activation it was made for */
    uint64_t version;    /* members version */
    bool bump;           /* ask for a new epoch */
    reg_node_t *nodes;   /* heap copy */
    size_t count;        /* nodes */
} s_save_t;

/* Thread state. */
typedef struct {
    const char *conninfo;  /* borrowed from reg_store_t */
    zsock_t *pipe;         /* to the loop */
    reg_db_t *db;          /* NULL while disconnected */
    bool active;           /* db holds the lock */
    uint64_t generation;   /* activations so far */
    int64_t next_check_ms; /* next lock attempt or session check */
    s_save_t save;         /* the queued save (nodes NULL when none) */
    bool unreachable;      /* the database could not be reached (log once per streak) */
    bool failing;          /* the last save failed (log once per streak) */
    uint64_t revoked_seq;  /* revocation counter last sent to the loop */
} s_elector_t;

/* ---- thread ------------------------------------------------------------- */

static void s_emit(s_elector_t *e, const char *cmd, uint64_t epoch, uint64_t version, bool ok)
{
    zsock_send(e->pipe, S_PICTURE, cmd, e->generation, epoch, version, (uint8_t)ok, NULL,
               (size_t)0);
}

static void s_emit_revoked(void *arg, uint64_t seq, const char *sha)
{
    s_elector_t *e = arg;
    zsock_send(e->pipe, S_PICTURE, "REVOKED", e->generation, seq, (uint64_t)0, (uint8_t)1, sha,
               strlen(sha));
    e->revoked_seq = seq;
}

/* Sends the revocation counter when it moved (a notification may have been missed, or
   this is a new activation), then any notifications that arrived. */
static void s_revocations(s_elector_t *e, uint64_t seq, bool force)
{
    if (force || seq != e->revoked_seq) {
        zsock_send(e->pipe, S_PICTURE, "REVSEQ", e->generation, seq, (uint64_t)0, (uint8_t)1, NULL,
                   (size_t)0);
        e->revoked_seq = seq;
    }
}

static void s_drop_save(s_elector_t *e)
{
    free(e->save.nodes);
    memset(&e->save, 0, sizeof e->save);
}

/* The session (and with it the lock) is gone or unusable: close it. */
static void s_lose(s_elector_t *e, const char *why)
{
    reg_db_close(&e->db);
    if (e->active) {
        LOG_W("lost the registry lock; standing by generation=%" PRIu64 " reason=\"%s\"",
              e->generation, why);
        e->active = false;
        s_drop_save(e);
        s_emit(e, "STANDBY", 0, 0, false);
    }
}

static void s_acquired(s_elector_t *e)
{
    char err[512];
    reg_node_t *nodes = NULL;
    size_t count = 0;
    uint64_t epoch = 0;
    if (reg_db_take_over(e->db, &nodes, &count, &epoch, err, sizeof err) < 0) {
        /* Closing the session gives the lock back; the next attempt retries. */
        LOG_W("cannot take over membership (retrying): %s", err);
        reg_db_close(&e->db);
        return;
    }
    e->active = true;
    e->generation++;
    LOG_N("holding the registry lock: active generation=%" PRIu64 " epoch=%" PRIu64 " nodes=%zu",
          e->generation, epoch, count);
    zsock_send(e->pipe, S_PICTURE, "ACTIVE", e->generation, epoch, (uint64_t)0, (uint8_t)1,
               (void *)nodes, count * sizeof *nodes);
    free(nodes);
    /* Revoked tokens reach the gateways through the active registry's PUB. Without it they
       expire from the gateways' caches only (a warning, not a reason to stand by). */
    uint64_t seq = 0;
    if (reg_db_listen(e->db, &seq, err, sizeof err) < 0) {
        LOG_W("cannot listen for token revocations: %s", err);
        return;
    }
    s_revocations(e, seq, true);
}

/* Standby: (re)connect when needed and try the lock once. */
static void s_attempt(s_elector_t *e)
{
    char err[512];
    if (!e->db && !(e->db = reg_db_connect(e->conninfo, err, sizeof err))) {
        if (!e->unreachable) {
            LOG_W("standby cannot reach the database (retrying every %d ms): %s",
                  REG_STORE_RETRY_MS, err);
        }
        e->unreachable = true;
        return;
    }
    if (e->unreachable) {
        LOG_N("database reachable again");
        e->unreachable = false;
    }
    int got = reg_db_try_lock(e->db, err, sizeof err);
    if (got < 0) {
        LOG_W("lock attempt failed: %s", err);
        reg_db_close(&e->db);
    } else if (got > 0) {
        s_acquired(e);
    }
}

static void s_check(s_elector_t *e)
{
    char err[512];
    uint64_t seq = 0;
    if (reg_db_check_lock(e->db, err, sizeof err) < 0) {
        s_lose(e, err);
    } else if (reg_db_revoked_seq(e->db, &seq, err, sizeof err) == 0) {
        reg_db_notifies(e->db, s_emit_revoked, e);
        s_revocations(e, seq, false);
    }
}

/* Waits for the loop's pipe or, while active, for a notification on the session.
   Returns true when the pipe is readable. */
static bool s_wait(s_elector_t *e, int64_t wait_ms)
{
    int fd = e->active ? reg_db_socket(e->db) : -1;
    zmq_pollitem_t items[2] = {{zsock_resolve(e->pipe), 0, ZMQ_POLLIN, 0},
                               {NULL, fd, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, fd >= 0 ? 2 : 1, (long)wait_ms) <= 0) {
        return false;
    }
    if (fd >= 0 && (items[1].revents & ZMQ_POLLIN) &&
        reg_db_notifies(e->db, s_emit_revoked, e) < 0) {
        e->next_check_ms = 0; /* the session broke: check (and lose) it now */
    }
    return (items[0].revents & ZMQ_POLLIN) != 0;
}

static void s_write(s_elector_t *e)
{
    char err[512];
    uint64_t epoch = 0;
    s_save_t *s = &e->save;
    if (!e->active || s->generation != e->generation) {
        s_drop_save(e); /* made for an activation that is over */
        return;
    }
    int rc = reg_db_write(e->db, s->nodes, s->count, s->bump, &epoch, err, sizeof err);
    uint64_t version = s->version;
    s_drop_save(e);
    if (rc < 0 && !reg_db_usable(e->db)) {
        s_lose(e, err);
        return;
    }
    if (rc < 0 && !e->failing) {
        LOG_W("cannot store membership (retrying every %d ms): %s", REG_SAVE_RETRY_MS, err);
    } else if (rc == 0 && e->failing) {
        LOG_N("membership is being stored again epoch=%" PRIu64, epoch);
    }
    LOG_D("stored membership version=%" PRIu64 " epoch=%" PRIu64 " ok=%d", version, epoch, rc == 0);
    e->failing = rc < 0;
    s_emit(e, "SAVED", epoch, version, rc == 0);
}

/* Answers one token check: only the active session reads tokens (a standby's
   loop answers admin requests with the standby signal anyway). */
static void s_check_token(s_elector_t *e, uint64_t check_id, const byte *sha, size_t size)
{
    char err[512] = "the database session is gone", hex[65];
    reg_token_t tok = {.check_id = check_id, .result = REG_TOKEN_ERROR};
    if (size == 64 && e->active && reg_db_usable(e->db)) {
        memcpy(hex, sha, 64);
        hex[64] = 0;
        if (reg_db_token(e->db, hex, &tok, err, sizeof err) < 0) {
            tok.result = REG_TOKEN_ERROR;
            LOG_W("cannot check an admin request's token: %s", err);
        }
    }
    zsock_send(e->pipe, S_PICTURE, "TOKEN", e->generation, check_id, (uint64_t)0, (uint8_t)1,
               (void *)&tok, sizeof tok);
    if (e->active && !reg_db_usable(e->db)) {
        s_lose(e, err);
    }
}

/* Reads every queued command; true when $TERM was among them. */
static bool s_read(s_elector_t *e)
{
    bool term = false;
    do {
        char *cmd = NULL;
        uint64_t generation = 0, version = 0;
        uint8_t bump = 0;
        byte *data = NULL;
        size_t size = 0;
        if (zsock_recv(e->pipe, "s881b", &cmd, &generation, &version, &bump, &data, &size) < 0) {
            return true;
        }
        if (cmd && !strcmp(cmd, "SAVE") && size % sizeof(reg_node_t) == 0) {
            bool bumped = e->save.nodes && e->save.bump;
            s_drop_save(e);
            e->save = (s_save_t){generation, version, bump || bumped, (reg_node_t *)data,
                                 size / sizeof(reg_node_t)};
            data = NULL;
            if (!e->save.nodes) {
                /* An empty table travels as no bytes; keep "a save is queued" visible. */
                e->save.nodes = calloc(1, sizeof(reg_node_t));
            }
        } else if (cmd && !strcmp(cmd, "CHECK")) {
            s_check_token(e, generation, data, size);
        } else if (cmd && !strcmp(cmd, "$TERM")) {
            term = true;
        }
        free(data);
        zstr_free(&cmd);
    } while (zsock_events(e->pipe) & ZMQ_POLLIN);
    return term;
}

static void s_elector_actor(zsock_t *pipe, void *args)
{
    s_elector_t e = {.conninfo = args, .pipe = pipe};
    zsock_signal(pipe, 0);
    s_attempt(&e);
    if (!e.active) {
        s_emit(&e, "STANDBY", 0, 0, false);
    }
    e.next_check_ms = util_mono_ms() + REG_STORE_RETRY_MS;
    bool term = false;
    while (!term) {
        int64_t wait = e.save.nodes ? 0 : e.next_check_ms - util_mono_ms();
        if (s_wait(&e, wait < 0 ? 0 : wait)) {
            term = s_read(&e);
        }
        if (!term && e.save.nodes) {
            s_write(&e);
        }
        if (!term && util_mono_ms() >= e.next_check_ms) {
            if (e.active) {
                s_check(&e);
            } else {
                s_attempt(&e);
            }
            e.next_check_ms = util_mono_ms() + REG_STORE_RETRY_MS;
        }
    }
    /* The last snapshot the loop handed over, while the lock is still ours. */
    if (e.save.nodes) {
        s_write(&e);
    }
    s_drop_save(&e);
    /* Closing alone frees the lock only once the server has noticed, after
       a successor may already have tried and stood by: hand it over now. */
    if (e.active && reg_db_usable(e.db)) {
        char err[512];
        if (reg_db_unlock(e.db, err, sizeof err) < 0) {
            LOG_W("cannot release the registry lock on shutdown: %s", err);
        }
    }
    reg_db_close(&e.db);
}

/* ---- loop side ---------------------------------------------------------- */

reg_store_t *reg_store_new(const char *conninfo, int64_t dead_after_ms)
{
    reg_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->conninfo = strdup(conninfo))) {
        LOG_E("out of memory");
        reg_store_destroy(&self);
        return NULL;
    }
    self->dead_after_ms = dead_after_ms;
    self->actor = zactor_new(s_elector_actor, self->conninfo);
    if (!self->actor) {
        LOG_E("cannot start the registry store thread");
        reg_store_destroy(&self);
        return NULL;
    }
    /* The loop must never wait on the thread: a full pipe fails the send. */
    zsock_set_sndtimeo(zactor_sock(self->actor), 0);
    return self;
}

void reg_store_destroy(reg_store_t **self_p)
{
    if (self_p && *self_p) {
        reg_store_t *self = *self_p;
        if (self->actor) {
            /* $TERM itself must not be dropped by the non-blocking setting. */
            zsock_set_sndtimeo(zactor_sock(self->actor), -1);
        }
        zactor_destroy(&self->actor);
        free(self->conninfo);
        free(self);
        *self_p = NULL;
    }
}

zsock_t *reg_store_sock(reg_store_t *self)
{
    return zactor_sock(self->actor);
}

/* A members table from the takeover's rows, each with a fresh grace period. */
static reg_members_t *s_restore(const reg_store_t *self, const byte *data, size_t size)
{
    reg_members_t *members = reg_members_new(self->dead_after_ms);
    int64_t now = util_mono_ms();
    size_t count = size / sizeof(reg_node_t);
    for (size_t i = 0; members && i < count; i++) {
        reg_node_t n;
        memcpy(&n, data + i * sizeof n, sizeof n);
        if (reg_members_restore(members, &n, now) < 0) {
            LOG_W("ignored a bad row of table nodes id=%.63s", n.id);
        } else {
            LOG_I("restored node id=%s state=%s", n.id, reg_node_stored_state(&n));
        }
    }
    return members;
}

int reg_store_recv(reg_store_t *self, reg_store_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    zsock_t *sock = zactor_sock(self->actor);
    if (!(zsock_events(sock) & ZMQ_POLLIN)) {
        return -1;
    }
    char *cmd = NULL;
    uint8_t ok = 0;
    byte *data = NULL;
    size_t size = 0;
    if (zsock_recv(sock, S_PICTURE, &cmd, &ev->generation, &ev->epoch, &ev->version, &ok, &data,
                   &size) < 0) {
        return -1;
    }
    int rc = 0;
    ev->ok = ok != 0;
    if (cmd && !strcmp(cmd, "ACTIVE")) {
        ev->type = REG_STORE_ACTIVE;
        ev->members = s_restore(self, data, size);
    } else if (cmd && !strcmp(cmd, "STANDBY")) {
        ev->type = REG_STORE_STANDBY;
    } else if (cmd && !strcmp(cmd, "SAVED")) {
        ev->type = REG_STORE_SAVED;
    } else if (cmd && !strcmp(cmd, "TOKEN") && data && size == sizeof ev->token) {
        ev->type = REG_STORE_TOKEN;
        memcpy(&ev->token, data, sizeof ev->token);
        ev->token.check_id = ev->epoch;
        ev->epoch = 0;
    } else if (cmd && (!strcmp(cmd, "REVOKED") || !strcmp(cmd, "REVSEQ"))) {
        ev->type = cmd[3] == 'O' ? REG_STORE_REVOKED : REG_STORE_REVSEQ;
        ev->revoked_seq = ev->epoch;
        ev->epoch = 0;
        if (data && size == 64) {
            memcpy(ev->token_sha256, data, 64);
        }
    } else {
        rc = -1;
    }
    free(data);
    zstr_free(&cmd);
    return rc;
}

int reg_store_save(reg_store_t *self, const reg_members_t *members, uint64_t generation, bool bump)
{
    size_t n = reg_members_size(members);
    reg_node_t *nodes = malloc((n ? n : 1) * sizeof *nodes);
    if (!nodes) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        nodes[i] = *reg_members_at(members, i);
    }
    int rc =
        zsock_send(zactor_sock(self->actor), "s881b", "SAVE", generation,
                   reg_members_version(members), (uint8_t)bump, (void *)nodes, n * sizeof *nodes);
    free(nodes);
    return rc < 0 ? -1 : 0;
}

int reg_store_check_token(reg_store_t *self, uint64_t check_id, const char *sha256)
{
    int rc = zsock_send(zactor_sock(self->actor), "s881b", "CHECK", check_id, (uint64_t)0,
                        (uint8_t)0, (void *)sha256, (size_t)64);
    return rc < 0 ? -1 : 0;
}
