/*  reg_ctl_status — `bickyctl status`: asks every registry of the list
    (not just the first that answers) whether it is active or standby,
    reports the epoch and node counts by state from the first active one,
    and the database schema when --database-url is given. */
#include "common/db_schema.h"
#include "registry/reg_ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_REGISTRIES 16

typedef struct {
    char endpoint[256]; /* registry ROUTER endpoint */
    bool reachable;     /* answered RING_GET in time */
    bool standby;       /* it answered as a standby */
    uint64_t epoch;     /* its ring epoch (active only) */
} s_probe_t;

typedef struct {
    s_probe_t probes[S_MAX_REGISTRIES]; /* one per registry of the list */
    size_t nprobes;                     /* registries asked */
    bool any;                           /* some registry answered as active */
    uint64_t epoch;                     /* epoch of the first active one */
    size_t counts[3];                   /* nodes alive, draining, dead (first active) */
    bool db_checked;                    /* --database-url was given */
    bool db_ok;                         /* schema is exactly at this binary's version */
    char db_error[768];                 /* why not, when checked and not ok */
} s_status_t;

static void s_count(const proto_msg_t *rep, size_t counts[3])
{
    static const char *const names[] = {"alive", "draining", "dead"};
    for (size_t i = 0; i < rep->nnodes; i++) {
        for (int s = 0; s < 3; s++) {
            if (!strcmp(rep->nodes[i].state, names[s])) {
                counts[s]++;
            }
        }
    }
}

static void s_probe_all(const reg_ctl_t *ctl, s_status_t *st)
{
    char *list = strdup(ctl->registry ? ctl->registry : "");
    char *save = NULL;
    for (char *ep = list ? strtok_r(list, ", ", &save) : NULL; ep && st->nprobes < S_MAX_REGISTRIES;
         ep = strtok_r(NULL, ", ", &save)) {
        s_probe_t *p = &st->probes[st->nprobes++];
        snprintf(p->endpoint, sizeof p->endpoint, "%s", ep);
        proto_msg_t req = {.type = PROTO_RING_GET, .req_id = reg_ctl_req_id()}, rep;
        int rc = reg_ctl_request_one(ctl, ep, &req, PROTO_RING, &rep);
        p->reachable = rc >= 0;
        p->standby = rc == 1;
        if (rc != 0) {
            continue;
        }
        p->epoch = rep.ring_epoch;
        if (!st->any) {
            st->any = true;
            st->epoch = rep.ring_epoch;
            s_count(&rep, st->counts);
        }
        proto_msg_reset(&rep);
    }
    free(list);
}

static void s_print_json(const s_status_t *st)
{
    printf("{\"registries\":[");
    for (size_t i = 0; i < st->nprobes; i++) {
        printf("%s{\"endpoint\":", i ? "," : "");
        reg_ctl_json_str(stdout, st->probes[i].endpoint);
        printf(",\"reachable\":%s", st->probes[i].reachable ? "true" : "false");
        if (st->probes[i].reachable) {
            printf(",\"role\":\"%s\"", st->probes[i].standby ? "standby" : "active");
        }
        if (st->probes[i].reachable && !st->probes[i].standby) {
            printf(",\"epoch\":%" PRIu64, st->probes[i].epoch);
        }
        printf("}");
    }
    printf("],\"reachable\":%s", st->any ? "true" : "false");
    if (st->any) {
        printf(",\"epoch\":%" PRIu64 ",\"nodes\":{\"alive\":%zu,\"draining\":%zu,\"dead\":%zu}",
               st->epoch, st->counts[0], st->counts[1], st->counts[2]);
    }
    if (st->db_checked) {
        printf(",\"database\":{\"ok\":%s,\"schema_version\":%d,\"error\":",
               st->db_ok ? "true" : "false", db_schema_latest());
        reg_ctl_json_str(stdout, st->db_ok ? NULL : st->db_error);
        printf("}");
    }
    printf("}\n");
}

static void s_print_text(const s_status_t *st)
{
    for (size_t i = 0; i < st->nprobes; i++) {
        const s_probe_t *p = &st->probes[i];
        if (p->standby) {
            printf("registry  %s  standby\n", p->endpoint);
        } else if (p->reachable) {
            printf("registry  %s  active, ring epoch %" PRIu64 "\n", p->endpoint, p->epoch);
        } else {
            printf("registry  %s  UNREACHABLE\n", p->endpoint);
        }
    }
    if (st->any) {
        printf("nodes     %zu alive, %zu draining, %zu dead\n", st->counts[0], st->counts[1],
               st->counts[2]);
    }
    if (st->db_checked && st->db_ok) {
        printf("database  schema version %d (up to date)\n", db_schema_latest());
    } else if (st->db_checked) {
        printf("database  ERROR: %s\n", st->db_error);
    }
}

int reg_ctl_status(reg_ctl_t *ctl, int argc, char **argv)
{
    int rc = reg_ctl_parse(ctl, "[--json] [--registry LIST] [--database-url URL]", NULL, argc, argv,
                           0, NULL);
    if (rc >= 0) {
        return rc;
    }
    if (reg_ctl_keys(ctl) < 0) {
        return REG_CTL_EXIT_FAIL;
    }
    s_status_t *st = calloc(1, sizeof *st);
    if (!st) {
        return reg_ctl_fail("out of memory");
    }
    s_probe_all(ctl, st);
    if (ctl->database_url && *ctl->database_url) {
        st->db_checked = true;
        st->db_ok = db_schema_check(ctl->database_url, st->db_error, sizeof st->db_error) == 0;
    }
    if (ctl->json) {
        s_print_json(st);
    } else {
        s_print_text(st);
    }
    rc = st->any && (!st->db_checked || st->db_ok) ? REG_CTL_EXIT_OK : REG_CTL_EXIT_FAIL;
    if (!st->any) {
        reg_ctl_fail("no active registry reachable (tried: %s)",
                     ctl->registry ? ctl->registry : "");
    }
    free(st);
    return rc;
}
