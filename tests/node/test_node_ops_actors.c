/*  test_node_ops_actors — what actor.attach checks before it writes (issue 15):
    an observer's name (a-z 0-9 _ -, a letter first, 1–32, not responder), the
    comma list of event types of an on_event_types trigger, and the shapes of
    trigger and config that actor.attach's row of the op table accepts (the
    gateway and the node check bodies against it). The writes themselves are
    tested on a cluster (tests/cluster/test_conv_actors.sh). */
#include "common/op_args.h"
#include "node/ops/node_ops.h"

#include <criterion/criterion.h>
#include <string.h>

Test(node_ops_actors, names)
{
    const char *good[] = {"a", "summarizer", "notes-2", "x_y", "abcdefghijabcdefghijabcdefghijab"};
    const char *bad[] = {NULL,         "",    "responder",
                         "Summarizer", "2nd", "-a",
                         "a b",        "é",   "abcdefghijabcdefghijabcdefghijabc",
                         "a/b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert(node_actor_name_ok(good[i]), "%s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(node_actor_name_ok(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
    }
}

Test(node_ops_actors, event_types)
{
    cr_assert(node_event_types_ok("turn.failed"));
    cr_assert(node_event_types_ok("turn.failed,permission.requested"));
    cr_assert_not(node_event_types_ok(""));
    cr_assert_not(node_event_types_ok("a,,b"));
    cr_assert_not(node_event_types_ok("a b"));
    cr_assert_not(node_event_types_ok("a,"));
}

/* Checks body against actor.attach's row: NULL when accepted, else the refused field. */
static const char *s_check(const char *body, char field[OP_ARGS_FIELD_MAX])
{
    json_t *args = json_loads(body, 0, NULL);
    cr_assert_not_null(args, "%s", body);
    op_args_err_t err;
    memset(&err, 0, sizeof err);
    int rc = op_args_check(&proto_ops[PROTO_OP_ACTOR_ATTACH], args, OP_ARGS_CLIENT, &err);
    json_decref(args);
    if (rc == 0) {
        return NULL;
    }
    memcpy(field, err.field, OP_ARGS_FIELD_MAX);
    return field;
}

Test(node_ops_actors, attach_shapes)
{
    static const struct {
        const char *body;
        const char *field; /* NULL: accepted */
    } cases[] = {
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\"}}", NULL},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"every_n_turns\","
         "\"n\":3},\"config\":{\"prompt\":\"p\",\"message\":true,\"patch\":false,"
         "\"timeout_s\":10}}",
         NULL},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"on_event_types\","
         "\"types\":\"turn.failed\"}}",
         NULL},
        {"{\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\"}}", "name"},
        {"{\"name\":\"s\",\"trigger\":{\"type\":\"after_turn\"}}", "strategy"},
        {"{\"name\":\"s\",\"strategy\":\"echo\"}", "trigger"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"never\"}}", "type"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"every_n_turns\"}}", "n"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"every_n_turns\","
         "\"n\":1001}}",
         "n"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\","
         "\"types\":\"x\"}}",
         "types"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\"},"
         "\"config\":{\"timeout_s\":0}}",
         "timeout_s"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\"},"
         "\"config\":{\"other\":1}}",
         "other"},
        {"{\"name\":\"s\",\"strategy\":\"echo\",\"trigger\":{\"type\":\"after_turn\"},"
         "\"x\":1}",
         "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char field[OP_ARGS_FIELD_MAX];
        const char *got = s_check(cases[i].body, field);
        if (!cases[i].field) {
            cr_assert_null(got, "%s refused (%s)", cases[i].body, got ? got : "");
        } else {
            cr_assert_not_null(got, "%s accepted", cases[i].body);
            cr_assert_str_eq(got, cases[i].field, "%s", cases[i].body);
        }
    }
}
