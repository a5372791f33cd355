/*  node_perm_rules — reads the permission rules that apply to a run's
    conversation (its own and its team's) for any strategy. Loop thread only. */
#include "common/util.h"
#include "node/perm/node_perm.h"

#include <stdlib.h>

typedef char s_uuid_t[UTIL_UUID_STR_LEN + 1];

typedef struct {
    node_run_t *run;     /* referenced */
    json_t *rules;       /* rows */
    node_rules_fn *done; /* the reader's continuation */
} s_rules_t;

static void s_on_rules_row(void *arg, db_status_t status, const db_result_t *res)
{
    s_rules_t *r = arg;
    const char *text = status == DB_OK ? db_result_value(res, 0, 0) : NULL;
    r->rules = text ? json_loads(text, 0, NULL) : NULL;
}

static void s_on_rules(void *arg, db_status_t status, const char *error, const char *sqlstate)
{
    s_rules_t *r = arg;
    if (r->run->actor) {
        r->done(r->run, status == DB_OK && json_is_array(r->rules) ? r->rules : NULL);
    }
    json_decref(r->rules);
    node_run_unref(r->run);
    free(r);
}

int node_perm_read_rules(node_run_t *run, node_rules_fn *done)
{
    node_t *node = node_run_node(run);
    s_uuid_t conv, team;
    util_uuid_format(run->actor->conv_id, conv);
    util_uuid_format(run->actor->team_id, team);
    const char *params[] = {team, conv};
    s_rules_t *r = calloc(1, sizeof *r);
    db_batch_t *b = r && !node->closing ? db_batch_new(node->db, false) : NULL;
    if (!b || db_batch_add(b, NODE_Q_RULES, NULL, 2, params, s_on_rules_row, r) < 0) {
        db_batch_destroy(&b);
        free(r);
        return -1;
    }
    r->run = run;
    r->done = done;
    node_run_ref(run);
    db_batch_submit(&b, s_on_rules, r);
    return 0;
}
