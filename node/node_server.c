/*  node_server — the node object: sockets (ROUTER for API requests, PUB for
    events), the Postgres connection, the registry client, the loop and its
    housekeeping timers, and the graceful stop (SIGTERM: new requests get 503,
    the open group commit is sent, in-flight work gets up to NODE_STOP_MS).
    Loop thread only. */
#define LOG_MODULE "node_server"
#include "common/cfg_file.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/sock_path.h"
#include "common/util.h"
#include "common/wire.h"
#include "node/ops/node_ops.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void node_cfg_defaults(node_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->registry = "tcp://127.0.0.1:7100";
    cfg->bind = "tcp://127.0.0.1:7110";
    cfg->pub_bind = "tcp://127.0.0.1:7111";
    cfg->weight = 1;
    cfg->actor_idle_s = 300;
    cfg->mailbox_max = 256;
    cfg->max_actors = 2000000;
    cfg->echo_delay_ms = 0;
    cfg->echo_fail_every = 0;
    cfg->work_dir = "./var/work";
    cfg->tool_workers = 4;
    cfg->sandbox = "auto";
    cfg->db_deadline_ms = DB_ANSWER_DEADLINE_MS;
}

int node_cfg_check_endpoints(const node_cfg_t *cfg, char *err, size_t errlen)
{
    if (endpoint_check("--bind", cfg->bind, "--advertise", cfg->advertise, err, errlen) < 0) {
        return -1;
    }
    return endpoint_check("--pub-bind", cfg->pub_bind, "--pub-advertise", cfg->pub_advertise, err,
                          errlen);
}

static int s_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
    node_t *self = arg;
    for (int i = 0; i < NODE_RECV_BURST; i++) {
        zframe_t *identity = NULL;
        proto_msg_t msg;
        keys_peer_t who;
        if (wire_recv_peer(sock, &identity, &msg, "api", &who) < 0) {
            zframe_destroy(&identity);
            /* A malformed message was dropped (logged); stop when nothing is left. */
            if (!(zsock_events(sock) & ZMQ_POLLIN)) {
                break;
            }
            continue;
        }
        node_dispatch(self, sock, &identity, &msg, &who);
        proto_msg_reset(&msg);
        zframe_destroy(&identity);
    }
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    node_t *self = arg;
    if (util_interrupted && !self->stopping) {
        LOG_N("stopping: refusing new requests, finishing in-flight writes");
        node_stop(self);
    }
    if (!self->stopping) {
        return 0;
    }
    bool drained = node_commit_idle(self->commit) && db_conn_in_flight(self->db) == 0;
    if (drained || util_mono_ms() >= self->stop_deadline) {
        if (!drained) {
            LOG_W("stop deadline reached with writes in flight; they will fail");
        }
        return -1;
    }
    return 0;
}

static int s_on_sweep(zloop_t *loop, int timer_id, void *arg)
{
    node_actors_sweep(arg);
    return 0;
}

void node_stop(node_t *self)
{
    if (self->stopping) {
        return;
    }
    self->stopping = true;
    self->stop_deadline = util_mono_ms() + NODE_STOP_MS;
    node_commit_flush(self->commit);
}

/* Binds endpoint; writes the endpoint to advertise to adv and, when local is not NULL, one a
   process on this host can connect to. */
static int
s_bind(zsock_t *sock, const char *endpoint, const char *advertise, char *adv, char *local)
{
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        LOG_E("cannot bind endpoint=%s error=\"%s\"", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    char *ep = zsock_last_endpoint(sock); /* resolves wildcard ports; caller frees */
    const char *bound = ep ? ep : endpoint;
    int rc = endpoint_advertised(bound, advertise, adv, 256);
    if (rc == 0 && local) {
        rc = endpoint_local(bound, local, 256);
    }
    if (rc < 0) {
        LOG_E("endpoint too long bound=%s advertise=%s", bound, advertise ? advertise : "");
    }
    free(ep);
    return rc;
}

static int s_on_monitor(zloop_t *loop, zsock_t *reader, void *arg)
{
    return keys_monitor_log((zactor_t *)reader, arg);
}

/* The local ROUTER of this node's permission servers: an ipc file in the work dir,
   mode 600, so only this node's user can ask; when that path is too long for a unix
   socket, the same name in a private directory under /tmp (sock_path.h). Named with
   the pid: two nodes (of two clusters) may share a work dir and an id. A sandboxed
   claude CLI (no network) reaches it by its file, bound into the sandbox. */
static int s_local(node_t *self)
{
    char dir[PATH_MAX];
    const char *wd = self->cfg->work_dir && *self->cfg->work_dir ? self->cfg->work_dir : ".";
    if (!realpath(wd, dir)) {
        LOG_E("cannot resolve work_dir=%s for the permission socket", wd);
        return -1;
    }
    char path[PATH_MAX + 96];
    snprintf(path, sizeof path, "%s/perm-%s-%d.ipc", dir, self->cfg->id, (int)getpid());
    /* libzmq's ipc paths are bounded by sockaddr_un (108 bytes); 100 leaves it room. */
    if (sock_path_make(&self->local_path, path, 101) < 0) {
        LOG_E("no permission socket path=%s error=\"%s\"", path, strerror(errno));
        return -1;
    }
    self->local = zsock_new(ZMQ_ROUTER);
    if (!self->local) {
        return -1;
    }
    zsock_set_linger(self->local, 0);
    zsock_set_maxmsgsize(self->local, (int64_t)PROTO_MAX_FRAME);
    char ep[sizeof self->local_path.path + 8];
    snprintf(ep, sizeof ep, "ipc://%s", self->local_path.path);
    if (s_bind(self->local, ep, NULL, self->local_ep, NULL) < 0 ||
        chmod(self->local_path.path, 0600) < 0) {
        return -1;
    }
    return zloop_reader(self->loop, self->local, s_on_router, self);
}

/* Without CURVE the permission servers could ask on the ROUTER, but a sandboxed
   claude CLI has no network: a TCP (or abstract ipc) ROUTER is out of its reach. So
   the local socket is made whenever a claude-code strategy asks over channel mcp. */
static bool s_wants_local(const node_cfg_t *cfg)
{
    for (size_t i = 0; cfg->strategies && i < cfg_file_count(cfg->strategies); i++) {
        const cfg_strategy_t *s = cfg_file_at(cfg->strategies, i);
        if (s->kind == CFG_STRATEGY_CLAUDE_CODE && s->permission_channel == CFG_PERM_MCP) {
            return true;
        }
    }
    return false;
}

/* CURVE: the ZAP handler admits gateway keys only, so only gateways reach the
   ROUTER and subscribe to the PUB (a PUB cannot check roles per message). */
static int s_secure(node_t *self)
{
    keys_t *keys = self->cfg->keys;
    if (keys_serve(keys, KEYS_ROLE_GATEWAY) < 0) {
        return -1;
    }
    keys_server(keys, self->router);
    keys_server(keys, self->pub);
    self->mon_router = keys_monitor_new(self->router);
    self->mon_pub = keys_monitor_new(self->pub);
    if (!self->mon_router || !self->mon_pub ||
        zloop_reader(self->loop, (zsock_t *)self->mon_router, s_on_monitor, "node-router") < 0 ||
        zloop_reader(self->loop, (zsock_t *)self->mon_pub, s_on_monitor, "node-pub") < 0) {
        LOG_E("cannot start the socket monitors");
        return -1;
    }
    return s_local(self);
}

static int s_sockets(node_t *self)
{
    self->router = zsock_new(ZMQ_ROUTER);
    self->pub = zsock_new(ZMQ_PUB);
    if (!self->router || !self->pub) {
        LOG_E("cannot create sockets");
        return -1;
    }
    if (self->cfg->keys && s_secure(self) < 0) {
        return -1;
    }
    if (!self->cfg->keys && s_wants_local(self->cfg) && s_local(self) < 0) {
        return -1;
    }
    zsock_set_linger(self->router, 0);
    /* A peer must not make libzmq allocate more than one frame may hold. */
    zsock_set_maxmsgsize(self->router, (int64_t)PROTO_MAX_FRAME);
    zsock_set_linger(self->pub, 0);
    zsock_set_sndhwm(self->router, NODE_ROUTER_HWM);
    zsock_set_rcvhwm(self->router, NODE_ROUTER_HWM);
    zsock_set_sndhwm(self->pub, NODE_ROUTER_HWM);
    const node_cfg_t *cfg = self->cfg;
    if (s_bind(self->router, cfg->bind, cfg->advertise, self->router_ep, self->router_local) < 0 ||
        s_bind(self->pub, cfg->pub_bind, cfg->pub_advertise, self->pub_ep, NULL) < 0) {
        return -1;
    }
    return zloop_reader(self->loop, self->router, s_on_router, self);
}

static int s_check_cfg(const node_cfg_t *cfg)
{
    if (!cfg->id || !*cfg->id || strlen(cfg->id) >= RING_ID_MAX) {
        LOG_E("--id is required (1..63 characters)");
        return -1;
    }
    if (!cfg->database_url || !*cfg->database_url) {
        LOG_E("--database-url is required");
        return -1;
    }
    char err[300];
    if (node_cfg_check_endpoints(cfg, err, sizeof err) < 0) {
        LOG_E("%s", err);
        return -1;
    }
    return 0;
}

static int s_start(node_t *self)
{
    self->loop = zloop_new();
    self->actors = node_actors_new(node_turns_free);
    self->ring = ring_new(0);
    self->metrics = node_metrics_new();
    if (!self->loop || !self->actors || !self->ring || !self->metrics) {
        return -1;
    }
    if (self->cfg->metrics_bind && *self->cfg->metrics_bind &&
        !(self->metrics_http =
              metrics_http_start(self->cfg->metrics_bind, node_metrics_render, self->metrics))) {
        return -1;
    }
    self->sched = node_sched_new(self);
    self->engine = &node_turn_engine;
    self->fence = node_fence_new(self, &node_runtime_actors);
    self->commit =
        self->fence ? node_commit_new(self, node_actor_committed, &node_fence_guard) : NULL;
    self->db = db_conn_new(self->loop, self->cfg->database_url);
    if (self->db) {
        db_conn_set_deadline(self->db, (int)self->cfg->db_deadline_ms);
    }
    if (!self->sched || !self->commit || !self->db || node_sql_prepare(self->db) < 0) {
        return -1;
    }
    self->agents = node_agents_new(self);
    if (!self->agents || node_wt_init(self->agents) < 0 || node_agents_sql_prepare(self->db) < 0 ||
        node_wt_sql_prepare(self->db) < 0 || node_ops_perm_sql_prepare(self->db) < 0 ||
        node_ops_revert_sql_prepare(self->db) < 0 || node_ops_rules_sql_prepare(self->db) < 0 ||
        node_ops_actors_sql_prepare(self->db) < 0) {
        return -1;
    }
    if (s_sockets(self) < 0) {
        return -1;
    }
    self->tick_timer = zloop_timer(self->loop, NODE_TICK_MS, 0, s_on_tick, self);
    self->sweep_timer = zloop_timer(self->loop, NODE_SWEEP_MS, 0, s_on_sweep, self);
    if (self->cfg->standalone) {
        proto_node_t me = {.weight = 1};
        snprintf(me.id, sizeof me.id, "%s", self->cfg->id);
        snprintf(me.state, sizeof me.state, "alive");
        return node_ring_apply(self, &me, 1, 0);
    }
    self->reg = node_reg_new(self);
    return self->reg ? 0 : -1;
}

node_t *node_new(const node_cfg_t *cfg)
{
    if (s_check_cfg(cfg) < 0) {
        return NULL;
    }
    node_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    if (s_start(self) < 0) {
        LOG_E("node start failed id=%s", cfg->id);
        node_destroy(&self);
        return NULL;
    }
    LOG_N("node started id=%s router=%s pub=%s mode=%s bind=%s pub_bind=%s curve=%s%s%s", cfg->id,
          self->router_ep, self->pub_ep, cfg->standalone ? "standalone" : "registry", cfg->bind,
          cfg->pub_bind, cfg->keys ? "on" : "off", self->local_ep[0] ? " local=" : "",
          self->local_ep);
    return self;
}

void node_destroy(node_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_t *self = *self_p;
    self->stopping = true;
    /* Fail the open group and everything in flight while the ROUTER can still answer. */
    if (self->commit) {
        node_commit_flush(self->commit);
    }
    self->closing = true;
    db_conn_destroy(&self->db);
    node_commit_destroy(&self->commit);
    node_fence_destroy(&self->fence);
    node_reg_destroy(&self->reg);
    node_sched_destroy(&self->sched);
    node_actors_destroy(&self->actors);
    /* After the actors: their turns release their runs into it. */
    if (self->agents) {
        node_wt_destroy(self->agents);
    }
    node_agents_destroy(&self->agents);
    ring_destroy(&self->ring);
    free(self->members);
    zactor_destroy(&self->mon_router);
    zactor_destroy(&self->mon_pub);
    zsock_destroy(&self->router);
    zsock_destroy(&self->pub);
    zsock_destroy(&self->local);
    sock_path_remove(&self->local_path); /* the ipc file, and its private directory if any */
    zloop_destroy(&self->loop);
    metrics_http_stop(&self->metrics_http); /* its thread reads the histograms */
    node_metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}

int node_run(node_t *self)
{
    /* zloop_start returns 0 when a signal interrupts its poll (EINTR): the loop is
       re-entered and the tick timer runs the graceful stop; it returns -1 only when
       the tick timer says the stop is complete. zsys_interrupted (czmq's own
       handler, when util_signals_install was not called) ends at once. */
    while (zloop_start(self->loop) == 0 && !zsys_interrupted) {
        if (util_interrupted && !self->stopping) {
            LOG_N("stopping: refusing new requests, finishing in-flight writes");
            node_stop(self);
        }
    }
    LOG_N("node stopped id=%s actors=%zu", self->cfg->id, node_actors_count(self->actors));
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    char *cmd = zstr_recv(pipe);
    bool term = !cmd || strcmp(cmd, "$TERM") == 0;
    zstr_free(&cmd);
    if (term) {
        node_stop(arg);
    }
    return 0;
}

void node_zactor(zsock_t *pipe, void *args)
{
    node_t *node = node_new(args);
    if (!node) {
        zsock_signal(pipe, 1);
        return;
    }
    zloop_reader(node->loop, pipe, s_on_pipe, node);
    zsock_signal(pipe, 0);
    node_run(node);
    zloop_reader_end(node->loop, pipe);
    node_destroy(&node);
}
