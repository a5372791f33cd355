/*  reg_ctl_reg — bickyctl commands answered by the registry: nodes, ring,
    locate, drain/undrain/remove, status. Each request goes to the registries
    of the --registry list in turn (blocking DEALER, 1 s per registry; a
    standby registry's reg_ack state "standby" moves on at once). */
#include "common/ring.h"
#include "common/util.h"
#include "common/wire.h"
#include "registry/reg_ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- talking to the registry -------------------------------------------- */

uint64_t reg_ctl_req_id(void)
{
    int64_t seed[2] = {util_mono_us(), (int64_t)getpid()};
    return util_hash64(seed, sizeof seed) | 1;
}

/* 0 for the wanted reply, 1 for a standby registry's reg_ack (rep reset),
   -1 for anything else (rep reset: keep waiting). */
static int s_classify(const proto_msg_t *req, proto_type_t want, proto_msg_t *rep)
{
    if (rep->req_id == req->req_id && rep->type == want) {
        return 0;
    }
    int rc = -1;
    if (rep->req_id == req->req_id && rep->type == PROTO_REG_ACK && rep->state &&
        !strcmp(rep->state, REG_CTL_STANDBY)) {
        rc = 1;
    }
    proto_msg_reset(rep);
    return rc;
}

int reg_ctl_keys(reg_ctl_t *ctl)
{
    if (ctl->keys_open) {
        return 0;
    }
    const char *endpoints[] = {ctl->registry ? ctl->registry : "", NULL};
    keys_want_t want = {.prog = "bickyctl", .role = KEYS_ROLE_ADMIN, .endpoints = endpoints};
    char err[1024];
    if (keys_open(&ctl->kc, &want, &ctl->keys, err, sizeof err) < 0) {
        reg_ctl_fail("%s", err);
        return -1;
    }
    ctl->keys_open = true;
    return 0;
}

int reg_ctl_request_one(const reg_ctl_t *ctl,
                        const char *endpoint,
                        const proto_msg_t *req,
                        proto_type_t want,
                        proto_msg_t *rep)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (!dealer) {
        return -1;
    }
    zsock_set_linger(dealer, 0);
    int rc = -1;
    if (ctl->keys && keys_client(ctl->keys, dealer, KEYS_ROLE_REGISTRY, NULL) < 0) {
        fprintf(stderr, "bickyctl: no registry certificate in %s/public/registry\n", ctl->kc.keys);
    } else if (zsock_connect(dealer, "%s", endpoint) < 0) {
        fprintf(stderr, "bickyctl: invalid registry endpoint '%s'\n", endpoint);
    } else if (wire_send(dealer, NULL, req) == 0) {
        zpoller_t *poller = zpoller_new(dealer, NULL);
        int64_t deadline = util_mono_ms() + REG_CTL_TIMEOUT_MS;
        for (int64_t left; rc < 0 && (left = deadline - util_mono_ms()) > 0;) {
            if (zpoller_wait(poller, (int)left) != dealer) {
                break;
            }
            if (wire_recv(dealer, NULL, rep, endpoint) == 0) {
                rc = s_classify(req, want, rep);
            }
        }
        zpoller_destroy(&poller);
    }
    zsock_destroy(&dealer);
    return rc;
}

/* Tries each registry of the comma list in turn. On success *rep is filled
   and answered (when not NULL) names the registry; else a message is printed. */
static int s_request(const reg_ctl_t *ctl,
                     proto_msg_t *req,
                     proto_type_t want,
                     proto_msg_t *rep,
                     char *answered,
                     size_t len)
{
    if (reg_ctl_keys((reg_ctl_t *)ctl) < 0) {
        return -1;
    }
    char *list = strdup(ctl->registry ? ctl->registry : "");
    if (!list) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    req->req_id = reg_ctl_req_id();
    int rc = -1;
    int standbys = 0;
    char *save = NULL;
    for (char *ep = strtok_r(list, ", ", &save); ep && rc != 0; ep = strtok_r(NULL, ", ", &save)) {
        /* A standby says so at once: ask the next registry of the list. */
        rc = reg_ctl_request_one(ctl, ep, req, want, rep);
        standbys += rc == 1;
        if (rc == 0 && answered) {
            snprintf(answered, len, "%s", ep);
        }
    }
    if (rc != 0 && standbys) {
        reg_ctl_fail("no active registry: %d standby, the others silent for %d ms (tried: %s)",
                     standbys, REG_CTL_TIMEOUT_MS, ctl->registry ? ctl->registry : "");
    } else if (rc != 0) {
        reg_ctl_fail("no registry answered within %d ms (tried: %s)", REG_CTL_TIMEOUT_MS,
                     ctl->registry ? ctl->registry : "");
    }
    rc = rc == 0 ? 0 : -1;
    free(list);
    return rc;
}

static int s_ring_get(const reg_ctl_t *ctl, proto_msg_t *rep, char *answered, size_t len)
{
    proto_msg_t req = {.type = PROTO_RING_GET};
    return s_request(ctl, &req, PROTO_RING, rep, answered, len);
}

/* ---- the ring as everyone builds it ------------------------------------- */

typedef struct {
    ring_t *ring;           /* built from the alive nodes sorted by id */
    ring_member_t *members; /* ring_set input */
    size_t *node_of;        /* member index → index in the RING message */
    size_t count;           /* members */
} s_ring_view_t;

static int s_cmp_member(const void *a, const void *b)
{
    return strcmp(((const ring_member_t *)a)->id, ((const ring_member_t *)b)->id);
}

static void s_view_free(s_ring_view_t *v)
{
    ring_destroy(&v->ring);
    free(v->members);
    free(v->node_of);
}

static int s_view_build(const proto_msg_t *rep, s_ring_view_t *v)
{
    memset(v, 0, sizeof *v);
    v->members = calloc(rep->nnodes + 1, sizeof *v->members);
    v->node_of = calloc(rep->nnodes + 1, sizeof *v->node_of);
    v->ring = ring_new(0);
    if (!v->members || !v->node_of || !v->ring) {
        s_view_free(v);
        reg_ctl_fail("out of memory");
        return -1;
    }
    for (size_t i = 0; i < rep->nnodes; i++) {
        if (!strcmp(rep->nodes[i].state, "alive")) {
            snprintf(v->members[v->count].id, RING_ID_MAX, "%s", rep->nodes[i].id);
            v->members[v->count++].weight = rep->nodes[i].weight;
        }
    }
    qsort(v->members, v->count, sizeof *v->members, s_cmp_member);
    for (size_t m = 0; m < v->count; m++) {
        for (size_t i = 0; i < rep->nnodes; i++) {
            if (!strcmp(rep->nodes[i].id, v->members[m].id)) {
                v->node_of[m] = i;
            }
        }
    }
    if (ring_set(v->ring, v->members, v->count) < 0) {
        s_view_free(v);
        reg_ctl_fail("the registry sent an invalid ring");
        return -1;
    }
    return 0;
}

/* ---- nodes -------------------------------------------------------------- */

static void s_nodes_json(const proto_msg_t *rep, const char *answered)
{
    printf("{\"registry\":");
    reg_ctl_json_str(stdout, answered);
    printf(",\"epoch\":%" PRIu64 ",\"nodes\":[", rep->ring_epoch);
    for (size_t i = 0; i < rep->nnodes; i++) {
        const proto_node_t *n = &rep->nodes[i];
        printf("%s{\"id\":", i ? "," : "");
        reg_ctl_json_str(stdout, n->id);
        printf(",\"state\":");
        reg_ctl_json_str(stdout, n->state);
        printf(",\"router\":");
        reg_ctl_json_str(stdout, n->router);
        printf(",\"pub\":");
        reg_ctl_json_str(stdout, n->pub);
        printf(",\"weight\":%u,\"actors\":%u,\"heartbeat_age_ms\":%" PRIu64 "}", n->weight,
               n->actors, n->age_ms);
    }
    printf("]}\n");
}

static int s_nodes_table(const proto_msg_t *rep)
{
    static const char *const headers[] = {"ID",     "STATE",  "ROUTER",    "PUB",
                                          "WEIGHT", "ACTORS", "LAST BEAT", NULL};
    reg_ctl_table_t *t = reg_ctl_table_new(headers);
    for (size_t i = 0; t && i < rep->nnodes; i++) {
        const proto_node_t *n = &rep->nodes[i];
        char weight[16], actors[16], age[32];
        snprintf(weight, sizeof weight, "%u", n->weight);
        snprintf(actors, sizeof actors, "%u", n->actors);
        snprintf(age, sizeof age, "%.1fs ago", (double)n->age_ms / 1000.0);
        const char *cells[] = {n->id, n->state, n->router, n->pub, weight, actors, age};
        if (reg_ctl_table_add(t, cells) < 0) {
            reg_ctl_table_destroy(&t);
        }
    }
    if (!t) {
        return reg_ctl_fail("out of memory");
    }
    printf("ring epoch %" PRIu64 ", %zu node%s\n", rep->ring_epoch, rep->nnodes,
           rep->nnodes == 1 ? "" : "s");
    reg_ctl_table_print(t, stdout);
    reg_ctl_table_destroy(&t);
    return REG_CTL_EXIT_OK;
}

int reg_ctl_nodes(reg_ctl_t *ctl, int argc, char **argv)
{
    int rc = reg_ctl_parse(ctl, "[--json] [--registry LIST]", NULL, argc, argv, 0, NULL);
    if (rc >= 0) {
        return rc;
    }
    proto_msg_t rep;
    char answered[256];
    if (s_ring_get(ctl, &rep, answered, sizeof answered) < 0) {
        return REG_CTL_EXIT_FAIL;
    }
    rc = REG_CTL_EXIT_OK;
    if (ctl->json) {
        s_nodes_json(&rep, answered);
    } else {
        rc = s_nodes_table(&rep);
    }
    proto_msg_reset(&rep);
    return rc;
}

/* ---- ring --------------------------------------------------------------- */

/* Resident actors (active conversations) of a ring member at its last beat. */
static uint32_t s_actors_of(const proto_msg_t *rep, const char *id)
{
    for (size_t i = 0; i < rep->nnodes; i++) {
        if (strcmp(rep->nodes[i].id, id) == 0) {
            return rep->nodes[i].actors;
        }
    }
    return 0;
}

/* Member m's share of the active conversations on the ring, in [0, 1]. */
static double s_active_share(const proto_msg_t *rep, const s_ring_view_t *v, size_t m)
{
    uint64_t total = 0;
    for (size_t k = 0; k < v->count; k++) {
        total += s_actors_of(rep, v->members[k].id);
    }
    return total ? (double)s_actors_of(rep, v->members[m].id) / (double)total : 0.0;
}

static void s_ring_json(const proto_msg_t *rep, const s_ring_view_t *v)
{
    printf("{\"epoch\":%" PRIu64 ",\"vnodes_per_weight\":%d,\"members\":[", rep->ring_epoch,
           RING_DEFAULT_VNODES);
    for (size_t m = 0; m < v->count; m++) {
        printf("%s{\"id\":", m ? "," : "");
        reg_ctl_json_str(stdout, v->members[m].id);
        printf(",\"weight\":%u,\"vnodes\":%u,\"share\":%.6f,\"actors\":%u,"
               "\"active_share\":%.6f}",
               v->members[m].weight, v->members[m].weight * RING_DEFAULT_VNODES,
               ring_share(v->ring, m), s_actors_of(rep, v->members[m].id),
               s_active_share(rep, v, m));
    }
    printf("],\"off_ring\":[");
    int k = 0;
    for (size_t i = 0; i < rep->nnodes; i++) {
        if (strcmp(rep->nodes[i].state, "alive")) {
            printf("%s{\"id\":", k++ ? "," : "");
            reg_ctl_json_str(stdout, rep->nodes[i].id);
            printf(",\"state\":");
            reg_ctl_json_str(stdout, rep->nodes[i].state);
            printf("}");
        }
    }
    printf("]}\n");
}

static int s_ring_table(const proto_msg_t *rep, const s_ring_view_t *v)
{
    static const char *const headers[] = {"NODE",   "WEIGHT",       "VNODES", "SHARE",
                                          "ACTORS", "ACTIVE SHARE", NULL};
    reg_ctl_table_t *t = reg_ctl_table_new(headers);
    for (size_t m = 0; t && m < v->count; m++) {
        char weight[16], vnodes[16], share[16], actors[16], active[16];
        snprintf(weight, sizeof weight, "%u", v->members[m].weight);
        snprintf(vnodes, sizeof vnodes, "%u", v->members[m].weight * RING_DEFAULT_VNODES);
        snprintf(share, sizeof share, "%.2f%%", 100.0 * ring_share(v->ring, m));
        snprintf(actors, sizeof actors, "%u", s_actors_of(rep, v->members[m].id));
        snprintf(active, sizeof active, "%.2f%%", 100.0 * s_active_share(rep, v, m));
        const char *cells[] = {v->members[m].id, weight, vnodes, share, actors, active};
        if (reg_ctl_table_add(t, cells) < 0) {
            reg_ctl_table_destroy(&t);
        }
    }
    if (!t) {
        return reg_ctl_fail("out of memory");
    }
    printf("ring epoch %" PRIu64 ", %zu member%s, %d vnodes per weight unit\n", rep->ring_epoch,
           v->count, v->count == 1 ? "" : "s", RING_DEFAULT_VNODES);
    reg_ctl_table_print(t, stdout);
    for (size_t i = 0; i < rep->nnodes; i++) {
        if (strcmp(rep->nodes[i].state, "alive")) {
            printf("off the ring: %s (%s)\n", rep->nodes[i].id, rep->nodes[i].state);
        }
    }
    reg_ctl_table_destroy(&t);
    return REG_CTL_EXIT_OK;
}

int reg_ctl_ring(reg_ctl_t *ctl, int argc, char **argv)
{
    int rc = reg_ctl_parse(ctl, "[--json] [--registry LIST]", NULL, argc, argv, 0, NULL);
    if (rc >= 0) {
        return rc;
    }
    proto_msg_t rep;
    s_ring_view_t view;
    if (s_ring_get(ctl, &rep, NULL, 0) < 0) {
        return REG_CTL_EXIT_FAIL;
    }
    if (s_view_build(&rep, &view) < 0) {
        proto_msg_reset(&rep);
        return REG_CTL_EXIT_FAIL;
    }
    rc = REG_CTL_EXIT_OK;
    if (ctl->json) {
        s_ring_json(&rep, &view);
    } else {
        rc = s_ring_table(&rep, &view);
    }
    s_view_free(&view);
    proto_msg_reset(&rep);
    return rc;
}

/* ---- locate ------------------------------------------------------------- */

static int s_print_owner(
    const reg_ctl_t *ctl, const proto_msg_t *rep, const char *conv, const s_ring_view_t *v, int idx)
{
    if (idx < 0) {
        return reg_ctl_fail("no alive node with weight on the ring (epoch %" PRIu64 ")",
                            rep->ring_epoch);
    }
    const proto_node_t *n = &rep->nodes[v->node_of[idx]];
    if (ctl->json) {
        printf("{\"conversation_id\":");
        reg_ctl_json_str(stdout, conv);
        printf(",\"node_id\":");
        reg_ctl_json_str(stdout, n->id);
        printf(",\"router\":");
        reg_ctl_json_str(stdout, n->router);
        printf(",\"epoch\":%" PRIu64 "}\n", rep->ring_epoch);
    } else {
        printf("conversation %s -> node %s (%s) at ring epoch %" PRIu64 "\n", conv, n->id,
               n->router, rep->ring_epoch);
    }
    return REG_CTL_EXIT_OK;
}

int reg_ctl_locate(reg_ctl_t *ctl, int argc, char **argv)
{
    char **pos = NULL;
    int rc = reg_ctl_parse(ctl, "CONV_ID [--json] [--registry LIST]", NULL, argc, argv, 1, &pos);
    if (rc >= 0) {
        return rc;
    }
    uint8_t conv[16];
    if (util_uuid_parse(pos[0], conv) < 0) {
        fprintf(stderr, "bickyctl: '%s' is not a conversation id (a UUID)\n", pos[0]);
        return REG_CTL_EXIT_USAGE;
    }
    char text[UTIL_UUID_STR_LEN + 1];
    util_uuid_format(conv, text);
    proto_msg_t rep;
    s_ring_view_t view;
    if (s_ring_get(ctl, &rep, NULL, 0) < 0) {
        return REG_CTL_EXIT_FAIL;
    }
    if (s_view_build(&rep, &view) == 0) {
        rc = s_print_owner(ctl, &rep, text, &view, ring_lookup(view.ring, conv));
        s_view_free(&view);
    } else {
        rc = REG_CTL_EXIT_FAIL;
    }
    proto_msg_reset(&rep);
    return rc;
}

/* ---- drain / undrain / remove ------------------------------------------- */

static int s_admin(reg_ctl_t *ctl, const char *action, int argc, char **argv)
{
    char **pos = NULL;
    int rc = reg_ctl_parse(ctl, "NODE [--json] [--registry LIST]", NULL, argc, argv, 1, &pos);
    if (rc >= 0) {
        return rc;
    }
    if (!*pos[0] || strlen(pos[0]) > 63) {
        fprintf(stderr, "bickyctl: invalid node id '%s'\n", pos[0]);
        return REG_CTL_EXIT_USAGE;
    }
    proto_msg_t req = {.type = PROTO_ADMIN, .action = (char *)action, .node_id = pos[0]}, rep;
    if (s_request(ctl, &req, PROTO_ADMIN_REP, &rep, NULL, 0) < 0) {
        return REG_CTL_EXIT_FAIL;
    }
    if (rep.status == 404) {
        rc = reg_ctl_fail("no such node: %s", pos[0]);
    } else if (rep.status != 200) {
        rc = reg_ctl_fail("the registry refused %s %s: %s (status %" PRIu64 ")", action, pos[0],
                          rep.error ? rep.error : "no reason given", rep.status);
    } else if (ctl->json) {
        printf("{\"node_id\":");
        reg_ctl_json_str(stdout, pos[0]);
        printf(",\"action\":\"%s\",\"status\":200,\"epoch\":%" PRIu64 "}\n", action,
               rep.ring_epoch);
        rc = REG_CTL_EXIT_OK;
    } else {
        printf("%s %s: done (ring epoch %" PRIu64 ")\n", action, pos[0], rep.ring_epoch);
        rc = REG_CTL_EXIT_OK;
    }
    proto_msg_reset(&rep);
    return rc;
}

int reg_ctl_drain(reg_ctl_t *ctl, int argc, char **argv)
{
    return s_admin(ctl, "drain", argc, argv);
}

int reg_ctl_undrain(reg_ctl_t *ctl, int argc, char **argv)
{
    return s_admin(ctl, "undrain", argc, argv);
}

int reg_ctl_remove(reg_ctl_t *ctl, int argc, char **argv)
{
    return s_admin(ctl, "remove", argc, argv);
}
