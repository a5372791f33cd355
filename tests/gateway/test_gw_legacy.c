/*  test_gw_legacy — the legacy shapes and the legacy SSE vocabulary
    (gw_legacy_shape.c): what old clients of the TypeScript server read.
    The routes themselves run against a real cluster in
    tests/cluster/test_legacy.sh. */
#include "gateway/gw_legacy.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gw_legacy, .timeout = 10);

static char *s_dump(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    return text;
}

Test(gw_legacy, statuses_map_to_the_old_ones)
{
    cr_assert_str_eq(gw_legacy_status("streaming"), "processing");
    cr_assert_str_eq(gw_legacy_status("error"), "failed");
    cr_assert_str_eq(gw_legacy_status("cancelled"), "failed");
    cr_assert_str_eq(gw_legacy_status("completed"), "completed");
    cr_assert_str_eq(gw_legacy_status("pending"), "pending");
    cr_assert_str_eq(gw_legacy_status(NULL), "pending");
}

Test(gw_legacy, interaction_keeps_five_fields)
{
    json_t *conv =
        json_loads("{\"id\":\"c1\",\"source\":\"api\",\"type\":\"query\",\"title\":\"t\","
                   "\"status\":\"idle\",\"metadata\":{\"a\":1},"
                   "\"created_at\":\"2026-01-01T00:00:00.000Z\"}",
                   0, NULL);
    char *text = s_dump(gw_legacy_interaction(conv));
    cr_assert_str_eq(text, "{\"createdAt\":\"2026-01-01T00:00:00.000Z\",\"id\":\"c1\","
                           "\"metadata\":{\"a\":1},\"source\":\"api\",\"type\":\"query\"}");
    free(text);
    json_decref(conv);
    cr_assert_null(gw_legacy_interaction(NULL));
}

Test(gw_legacy, assistant_metadata_in_the_old_spelling)
{
    json_t *msg = json_loads(
        "{\"id\":\"m1\",\"conversation_id\":\"c1\",\"seq\":2,\"role\":\"assistant\","
        "\"content\":\"hi\",\"status\":\"streaming\",\"created_at\":\"T\",\"metadata\":{"
        "\"model\":\"gpt\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4},\"duration_ms\":12,"
        "\"tool_calls\":[{\"name\":\"bash\"},{\"function\":{\"name\":\"grep\"}},{\"x\":1}]}}",
        0, NULL);
    json_t *out = gw_legacy_message(msg);
    json_t *meta = json_object_get(out, "metadata");
    cr_assert_str_eq(json_string_value(json_object_get(out, "interactionId")), "c1");
    cr_assert_str_eq(json_string_value(json_object_get(out, "timestamp")), "T");
    cr_assert_str_eq(json_string_value(json_object_get(out, "status")), "processing");
    cr_assert_null(json_object_get(out, "seq"));
    char *usage = s_dump(json_incref(json_object_get(meta, "usage")));
    cr_assert_str_eq(usage, "{\"inputTokens\":3,\"outputTokens\":4,\"totalTokens\":7}");
    char *tools = s_dump(json_incref(json_object_get(meta, "toolsUsed")));
    cr_assert_str_eq(tools, "[\"bash\",\"grep\"]");
    cr_assert_eq(json_integer_value(json_object_get(meta, "processingTimeMs")), 12);
    cr_assert_str_eq(json_string_value(json_object_get(meta, "model")), "gpt");
    free(usage);
    free(tools);
    json_decref(out);
    json_decref(msg);
}

Test(gw_legacy, empty_metadata_is_left_out)
{
    json_t *msg = json_loads("{\"id\":\"m1\",\"conversation_id\":\"c1\",\"role\":\"user\","
                             "\"content\":\"x\",\"status\":\"error\",\"metadata\":{}}",
                             0, NULL);
    json_t *out = gw_legacy_message(msg);
    cr_assert_null(json_object_get(out, "metadata"));
    cr_assert_str_eq(json_string_value(json_object_get(out, "status")), "failed");
    json_decref(out);
    json_decref(msg);
}

Test(gw_legacy, worktree_branch_without_refs_heads)
{
    json_t *wt = json_loads("{\"id\":\"w\",\"branch\":\"refs/heads/feat\",\"path\":\"/p\","
                            "\"head\":\"abc\",\"status\":\"active\",\"created_at\":\"T\"}",
                            0, NULL);
    char *text = s_dump(gw_legacy_worktree(wt));
    cr_assert_str_eq(text, "{\"baseCommit\":\"abc\",\"branch\":\"feat\",\"createdAt\":\"T\","
                           "\"id\":\"w\",\"path\":\"/p\",\"status\":\"active\"}");
    free(text);
    json_decref(wt);
}

/* The data JSON of a legacy frame ("id: N\ndata: {...}\n\n"). */
static json_t *s_frame_data(const char *frame, const char *id_line)
{
    cr_assert_eq(strncmp(frame, id_line, strlen(id_line)), 0, "frame: %s", frame);
    const char *d = strstr(frame, "data: ");
    cr_assert_not_null(d);
    cr_assert_null(strstr(frame, "event:"));
    cr_assert_eq(strcmp(frame + strlen(frame) - 2, "\n\n"), 0);
    return json_loadb(d + 6, strlen(d + 6) - 2, 0, NULL);
}

Test(gw_legacy, sse_vocabulary)
{
    static const struct {
        const char *type, *legacy, *key;
    } cases[] = {
        {"conversation.created", "interaction:created", "interaction"},
        {"conversation.updated", "interaction:updated", "interaction"},
        {"turn.completed", "interaction:updated", "interaction"},
        {"message.created", "message:added", "message"},
        {"message.completed", "message:updated", "message"},
        {"message.failed", "message:updated", "message"},
    };
    const char *ev = "{\"id\":9,\"conversation_id\":\"c1\",\"seq\":3,\"created_at\":\"T\","
                     "\"action\":{\"conversation\":{\"id\":\"c1\",\"type\":\"query\"},"
                     "\"message\":{\"id\":\"m1\",\"conversation_id\":\"c1\",\"role\":\"user\","
                     "\"content\":\"x\",\"status\":\"completed\"}}}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = 0;
        char *frame = gw_legacy_sse_frame(9, cases[i].type, ev, &len);
        cr_assert_eq(len, strlen(frame));
        json_t *d = s_frame_data(frame, "id: 9\n");
        cr_assert_str_eq(json_string_value(json_object_get(d, "type")), cases[i].legacy);
        cr_assert_str_eq(json_string_value(json_object_get(d, "timestamp")), "T");
        json_t *inner = json_object_get(json_object_get(d, "data"), cases[i].key);
        cr_assert_str_eq(json_string_value(json_object_get(inner, "id")),
                         strcmp(cases[i].key, "message") == 0 ? "m1" : "c1");
        if (strcmp(cases[i].key, "message") == 0) {
            cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(d, "data"), "interactionId")),
                "c1");
        }
        json_decref(d);
        free(frame);
    }
}

Test(gw_legacy, events_without_a_legacy_form_are_empty_frames)
{
    const char *types[] = {"permission.requested", "tool.started", "worktree.created",
                           "message.delta", "event.reverted"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t len = 7;
        char *frame = gw_legacy_sse_frame(5, types[i], "{\"action\":{}}", &len);
        cr_assert_not_null(frame);
        cr_assert_eq(len, 0);
        cr_assert_str_eq(frame, "");
        free(frame);
    }
    size_t len = 7;
    char *frame = gw_legacy_sse_frame(5, "message.created", "not json", &len);
    cr_assert_eq(len, 0);
    free(frame);
    frame = gw_legacy_sse_frame(5, "message.created", NULL, &len);
    cr_assert_eq(len, 0);
    free(frame);
}
