/*  test_node_ops — the API ops against a real node and Postgres: team scoping
    (another team's conversation is 404 everywhere), idempotency keys, patch
    (metadata merged; a patch that changes nothing writes nothing),
    validation, conv.list keyset pagination and filters, msg.list,
    events.list (conversation and team), auth, status, and a create marked
    "fresh" (no lookup) that names a taken id. */
#include "tests/fixtures/node_test.h"

Test(node_ops, other_team_gets_404_everywhere, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16], other[16];
    char other_s[37];
    nt_create(&t, conv, "{}");
    nt_team_new(&t, other, other_s);
    const char *ops[][2] = {
        {"conv.get", "{}"},    {"conv.patch", "{\"title\":\"x\"}"},  {"conv.delete", "{}"},
        {"conv.cancel", "{}"}, {"msg.post", "{\"content\":\"hi\"}"}, {"msg.list", "{}"},
        {"events.list", "{}"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        nt_rep_t r = nt_recv(&t, nt_send(&t, ops[i][0], conv, other, ops[i][1]));
        cr_assert_eq(r.status, 404, "%s by another team: %d", ops[i][0], r.status);
        cr_assert_str_eq(nt_str(r.body, "code", NULL), "not_found");
        nt_rep_free(&r);
    }
    /* Unknown conversation, own team. */
    uint8_t nope[16];
    util_uuid_generate(nope);
    nt_rep_t r = nt_call(&t, "msg.post", nope, "{\"content\":\"hi\"}");
    cr_assert_eq(r.status, 404);
    nt_rep_free(&r);
    /* Lists never show another team's rows. */
    r = nt_recv(&t, nt_send(&t, "conv.list", NULL, other, "{}"));
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 0);
    nt_rep_free(&r);
    r = nt_recv(&t, nt_send(&t, "events.list", NULL, other, "{}"));
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 0);
    nt_rep_free(&r);
    /* The owner still sees it untouched. */
    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_null(json_object_get(r.body, "title")));
    nt_rep_free(&r);
    nt_stop(&t);
}

Test(node_ops, idempotency_replays_and_conflicts, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    const char *post = "{\"content\":\"once\",\"idempotency_key\":\"k1\",\"request_hash\":\"h1\"}";
    nt_rep_t a = nt_call(&t, "msg.post", conv, post);
    nt_rep_t b = nt_call(&t, "msg.post", conv, post);
    cr_assert_eq(a.status, 202);
    cr_assert_eq(b.status, 202);
    cr_assert_str_eq(nt_str(a.body, "message", "id"), nt_str(b.body, "message", "id"));
    cr_assert_eq(nt_int(b.body, "message", "seq"), 1);
    nt_rep_free(&a);
    nt_rep_free(&b);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND "
                           "role = 'user'",
                           c),
                 1);
    nt_rep_t x =
        nt_call(&t, "msg.post", conv,
                "{\"content\":\"other\",\"idempotency_key\":\"k1\",\"request_hash\":\"h2\"}");
    cr_assert_eq(x.status, 409);
    nt_rep_free(&x);
    /* conv.create retried with the same key under a fresh id replays the first. */
    uint8_t c1[16], c2[16];
    util_uuid_generate(c1);
    util_uuid_generate(c2);
    const char *create = "{\"title\":\"t\",\"idempotency_key\":\"k2\",\"request_hash\":\"h\"}";
    a = nt_call(&t, "conv.create", c1, create);
    b = nt_call(&t, "conv.create", c2, create);
    cr_assert_eq(a.status, 201);
    cr_assert_eq(b.status, 201);
    char c1s[37];
    util_uuid_format(c1, c1s);
    cr_assert_str_eq(nt_str(b.body, "id", NULL), c1s);
    nt_rep_free(&a);
    nt_rep_free(&b);
    /* Empty replies replay too (archive → 204). */
    const char *del = "{\"idempotency_key\":\"k3\",\"request_hash\":\"h\"}";
    a = nt_call(&t, "conv.delete", conv, del);
    b = nt_call(&t, "conv.delete", conv, del);
    cr_assert_eq(a.status, 204);
    cr_assert_eq(b.status, 204);
    nt_rep_free(&a);
    nt_rep_free(&b);
    x = nt_call(&t, "msg.post", conv,
                "{\"content\":\"x\",\"idempotency_key\":\"\",\"request_hash\":\"h\"}");
    cr_assert_eq(x.status, 400);
    nt_rep_free(&x);
    nt_stop(&t);
}

Test(node_ops, patch_merges_and_validates, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"title\":\"a\",\"metadata\":{\"x\":1,\"y\":2},\"source\":\"web\"}");
    nt_rep_t r = nt_call(&t, "conv.patch", conv,
                         "{\"metadata\":{\"y\":3,\"z\":4},\"on_busy\":\"reject\",\"title\":null}");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(nt_int(r.body, "metadata", "x"), 1);
    cr_assert_eq(nt_int(r.body, "metadata", "y"), 3);
    cr_assert_eq(nt_int(r.body, "metadata", "z"), 4);
    cr_assert_str_eq(nt_str(r.body, "on_busy", NULL), "reject");
    cr_assert(json_is_null(json_object_get(r.body, "title")));
    cr_assert_str_eq(nt_str(r.body, "source", NULL), "web");
    nt_rep_free(&r);
    const char *bad[][2] = {{"{\"on_busy\":\"sometimes\"}", "on_busy"},
                            {"{\"strategy\":\"gpt-9\"}", "strategy"},
                            {"{\"metadata\":[1]}", "metadata"},
                            {"{\"title\":5}", "title"},
                            {"{\"worktree_id\":\"nope\"}", "worktree_id"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = nt_call(&t, "conv.patch", conv, bad[i][0]);
        cr_assert_eq(r.status, 400, "%s", bad[i][0]);
        cr_assert_str_eq(nt_str(r.body, "field", NULL), bad[i][1]);
        nt_rep_free(&r);
    }
    /* A worktree of nobody (or another team) is refused, by the database. */
    char body[128];
    uint8_t wt[16];
    char wts[37];
    util_uuid_generate(wt);
    util_uuid_format(wt, wts);
    snprintf(body, sizeof body, "{\"worktree_id\":\"%s\"}", wts);
    r = nt_call(&t, "conv.patch", conv, body);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(nt_str(r.body, "field", NULL), "worktree_id");
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", conv, "{}");
    cr_assert_eq(r.status, 409);
    nt_rep_free(&r);
    r = nt_call(&t, "conv.create", NULL, "{}");
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
    /* Two events so far: created, updated; the failed patches wrote nothing. */
    r = nt_call(&t, "events.list", conv, "{}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 2);
    nt_rep_free(&r);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

/* "updated_at|events" of the conversation, straight from Postgres. */
static char *s_patch_state(nt_t *t, const uint8_t conv[16])
{
    char c[37], sql[256];
    util_uuid_format(conv, c);
    snprintf(sql, sizeof sql,
             "SELECT c.updated_at::text || '|' || (SELECT count(*) FROM events e WHERE "
             "e.conversation_id = c.id) FROM conversations c WHERE c.id = '%s'",
             c);
    PGresult *r = PQexec(t->pg, sql);
    cr_assert_eq(PQntuples(r), 1, "%s", PQerrorMessage(t->pg));
    char *out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

Test(node_ops, patch_that_changes_nothing_writes_nothing, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"title\":\"a\",\"metadata\":{\"x\":1,\"n\":{\"k\":[1,\"two\"]}}}");
    nt_rep_t got = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_eq(got.status, 200);
    char *before = s_patch_state(&t, conv);
    const char *noops[] = {
        "{}",
        "{\"title\":\"a\"}",
        "{\"metadata\":{}}",
        "{\"metadata\":{\"n\":{\"k\":[1,\"two\"]}},\"strategy\":\"echo\",\"on_busy\":\"enqueue\"}",
        "{\"title\":\"a\",\"metadata\":{\"x\":1},\"worktree_id\":null}",
    };
    for (size_t i = 0; i < sizeof noops / sizeof noops[0]; i++) {
        nt_rep_t r = nt_call(&t, "conv.patch", conv, noops[i]);
        cr_assert_eq(r.status, 200, "%s: %d", noops[i], r.status);
        cr_assert(json_equal(r.body, got.body), "%s: answered the conversation as it is", noops[i]);
        nt_rep_free(&r);
        char *now = s_patch_state(&t, conv);
        cr_assert_str_eq(now, before, "%s: no event, updated_at kept", noops[i]);
        free(now);
    }
    /* One value that differs is a change: stored, one conversation.updated. */
    nt_rep_t r = nt_call(&t, "conv.patch", conv, "{\"title\":\"a\",\"metadata\":{\"x\":2}}");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(nt_int(r.body, "metadata", "x"), 2);
    cr_assert_str_neq(nt_str(r.body, "updated_at", NULL), nt_str(got.body, "updated_at", NULL));
    nt_rep_free(&r);
    char *after = s_patch_state(&t, conv);
    cr_assert_str_neq(after, before);
    cr_assert(strstr(after, "|2"), "created, updated: %s", after);
    r = nt_call(&t, "conv.patch", conv, "{\"title\":null}");
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_null(json_object_get(r.body, "title")));
    nt_rep_free(&r);
    r = nt_call(&t, "events.list", conv, "{}");
    json_t *data = json_object_get(r.body, "data");
    cr_assert_eq(json_array_size(data), 3, "conversation.created + two updates");
    cr_assert_str_eq(nt_str(json_array_get(data, 2), "type", NULL), "conversation.updated");
    nt_rep_free(&r);
    free(before);
    free(after);
    nt_rep_free(&got);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_ops, conv_list_pages_with_cursor, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    enum { N = 7 };
    uint8_t conv[N][16];
    for (int i = 0; i < N; i++) {
        nt_create(&t, conv[i], i % 2 ? "{\"source\":\"cli\"}" : "{\"source\":\"web\"}");
    }
    char seen[N][37];
    int n = 0;
    char body[256] = "{\"limit\":3}";
    for (int page = 0; page < 5; page++) {
        nt_rep_t r = nt_call(&t, "conv.list", NULL, body);
        cr_assert_eq(r.status, 200);
        json_t *data = json_object_get(r.body, "data");
        for (size_t i = 0; i < json_array_size(data); i++) {
            snprintf(seen[n++], 37, "%s", nt_str(json_array_get(data, i), "id", NULL));
        }
        const char *next = nt_str(r.body, "next_cursor", NULL);
        if (!next) {
            nt_rep_free(&r);
            break;
        }
        snprintf(body, sizeof body, "{\"limit\":3,\"cursor\":\"%s\"}", next);
        nt_rep_free(&r);
    }
    cr_assert_eq(n, N);
    /* Newest first: reverse creation order, no duplicates. */
    for (int i = 0; i < N; i++) {
        char c[37];
        util_uuid_format(conv[N - 1 - i], c);
        cr_assert_str_eq(seen[i], c, "position %d", i);
    }
    nt_rep_t r = nt_call(&t, "conv.list", NULL, "{\"source\":\"cli\"}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), N / 2);
    cr_assert(json_is_null(json_object_get(r.body, "next_cursor")));
    nt_rep_free(&r);
    r = nt_call(&t, "conv.list", NULL, "{\"status\":\"idle\",\"type\":\"chat\"}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), N);
    nt_rep_free(&r);
    const char *bad[] = {"{\"cursor\":\"!!\"}", "{\"cursor\":\"bm90IGEgY3Vyc29y\"}",
                         "{\"limit\":0}", "{\"limit\":501}", "{\"status\":\"weird\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = nt_call(&t, "conv.list", NULL, bad[i]);
        cr_assert_eq(r.status, 400, "%s", bad[i]);
        nt_rep_free(&r);
    }
    nt_stop(&t);
}

Test(node_ops, message_and_event_lists, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    nt_rep_t r = nt_call(&t, "msg.post", conv, "{\"content\":\"m1\",\"metadata\":{\"a\":1}}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    cr_assert_gt(nt_event_of(&t, "turn.completed", NULL, NULL), 0);
    r = nt_call(&t, "msg.post", conv, "{\"content\":\"m2\"}");
    nt_rep_free(&r);
    cr_assert_gt(nt_event_of(&t, "turn.completed", NULL, NULL), 0);
    /* Oldest first, paged by cursor, after_seq honoured. */
    r = nt_call(&t, "msg.list", conv, "{\"limit\":3}");
    json_t *data = json_object_get(r.body, "data");
    cr_assert_eq(json_array_size(data), 3);
    cr_assert_eq(nt_int(json_array_get(data, 0), "seq", NULL), 1);
    cr_assert_eq(nt_int(json_array_get(data, 0), "metadata", "a"), 1);
    char body[256];
    snprintf(body, sizeof body, "{\"cursor\":\"%s\"}", nt_str(r.body, "next_cursor", NULL));
    nt_rep_free(&r);
    r = nt_call(&t, "msg.list", conv, body);
    data = json_object_get(r.body, "data");
    cr_assert_eq(json_array_size(data), 1);
    cr_assert_eq(nt_int(json_array_get(data, 0), "seq", NULL), 4);
    cr_assert(json_is_null(json_object_get(r.body, "next_cursor")));
    nt_rep_free(&r);
    r = nt_call(&t, "msg.list", conv, "{\"after_seq\":2}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 2);
    nt_rep_free(&r);
    /* Events: the conversation's, oldest first with strictly growing ids and seqs 1..n. */
    r = nt_call(&t, "events.list", conv, "{}");
    data = json_object_get(r.body, "data");
    size_t n = json_array_size(data);
    cr_assert_eq(n, 9, "events=%zu", n);
    long long prev = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(data, i);
        cr_assert_gt(nt_int(e, "id", NULL), prev);
        prev = nt_int(e, "id", NULL);
        cr_assert_eq(nt_int(e, "seq", NULL), (long long)i + 1);
        cr_assert_not_null(nt_str(e, "source", "kind"));
        cr_assert(json_is_boolean(json_object_get(e, "reversible")));
        cr_assert_eq(strlen(nt_str(e, "created_at", NULL)), 24);
    }
    long long third = nt_int(json_array_get(data, 2), "id", NULL);
    nt_rep_free(&r);
    snprintf(body, sizeof body, "{\"after\":%lld,\"limit\":2}", third);
    r = nt_call(&t, "events.list", conv, body);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 2);
    cr_assert_not_null(nt_str(r.body, "next_cursor", NULL));
    nt_rep_free(&r);
    /* The team's log holds the same events. */
    r = nt_call(&t, "events.list", NULL, "{\"limit\":500}");
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 9);
    nt_rep_free(&r);
    r = nt_call(&t, "events.list", NULL, "{\"after\":-1}");
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
    nt_stop(&t);
}

Test(node_ops, auth_and_status, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    char hash[65], sql[512], token[48];
    cr_assert_eq(util_token_generate(token), 0);
    util_sha256_hex(token, strlen(token), hash);
    snprintf(sql, sizeof sql,
             "INSERT INTO api_tokens (id, team_id, token_sha256, prefix) VALUES "
             "(gen_random_uuid(), '%s', '%s', 'bk_sec')",
             t.team_s, hash);
    nt_sql(&t, sql);
    char body[128];
    snprintf(body, sizeof body, "{\"token_sha256\":\"%s\"}", hash);
    proto_msg_t m = {.v = PROTO_VERSION, .type = PROTO_API_REQ, .req_id = 77};
    m.op = "auth";
    m.body = body;
    cr_assert_eq(wire_send(t.gw, NULL, &m), 0);
    nt_rep_t r = nt_recv(&t, 77);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(nt_str(r.body, "team_id", NULL), t.team_s);
    cr_assert(json_is_false(json_object_get(r.body, "admin")), "a plain token is not admin");
    nt_rep_free(&r);
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET admin = true WHERE token_sha256 = '%s'", hash);
    nt_sql(&t, sql);
    m.req_id = 76;
    cr_assert_eq(wire_send(t.gw, NULL, &m), 0);
    r = nt_recv(&t, 76);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_true(json_object_get(r.body, "admin")), "an admin token says so");
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM api_tokens WHERE token_sha256 = '%s' AND "
                           "last_used_at IS NOT NULL",
                           hash),
                 1);
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = '%s'",
             hash);
    nt_sql(&t, sql);
    m.req_id = 78;
    wire_send(t.gw, NULL, &m);
    r = nt_recv(&t, 78);
    cr_assert_eq(r.status, 401);
    nt_rep_free(&r);
    m.req_id = 79;
    m.body = "{\"token_sha256\":\"XYZ\"}";
    wire_send(t.gw, NULL, &m);
    r = nt_recv(&t, 79);
    cr_assert_eq(r.status, 401);
    nt_rep_free(&r);

    uint8_t c1[16], c2[16];
    nt_create(&t, c1, "{}");
    nt_create(&t, c2, "{}");
    r = nt_call(&t, "conv.delete", c2, "{}");
    nt_rep_free(&r);
    r = nt_call(&t, "status", NULL, "{}");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(nt_int(r.body, "conversations_by_status", "idle"), 1);
    cr_assert_eq(nt_int(r.body, "conversations_by_status", "archived"), 1);
    cr_assert_geq(nt_int(r.body, "actors", NULL), 1);
    nt_rep_free(&r);
    /* Team-wide ops need a team. */
    m.req_id = 80;
    m.op = "status";
    m.body = "{}";
    wire_send(t.gw, NULL, &m);
    r = nt_recv(&t, 80);
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
    nt_stop(&t);
}

/* "fresh" (the gateway drew the id at random) skips the activation's lookup; an id that is
   taken after all is refused by the insert, nothing is overwritten, and the conversation
   is found again afterwards. */
Test(node_ops, fresh_create_never_overwrites, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t fresh[16], taken[16];
    util_uuid_generate(fresh);
    nt_rep_t r =
        nt_call(&t, "msg.post", fresh, "{\"content\":\"hi\",\"create\":{},\"fresh\":true}");
    cr_assert_eq(r.status, 202, "fresh create: %d", r.status);
    nt_rep_free(&r);
    /* A row the node has not seen (no resident actor), then a lying "fresh" create. */
    util_uuid_generate(taken);
    char id[37];
    util_uuid_format(taken, id);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO conversations (id, team_id, title) VALUES ('%s', '%s', 'kept')", id,
             t.team_s);
    nt_sql(&t, sql);
    r = nt_call(&t, "conv.create", taken, "{\"title\":\"overwrite\",\"fresh\":true}");
    cr_assert_eq(r.status, 409, "lying fresh create: %d", r.status);
    nt_rep_free(&r);
    /* The refusal made the actor look again: the row is found, the post goes to it. */
    r = nt_call(&t, "msg.post", taken, "{\"content\":\"x\",\"create\":{},\"fresh\":true}");
    cr_assert_eq(r.status, 202, "post after the refusal: %d", r.status);
    cr_assert(json_is_false(json_object_get(r.body, "created")));
    nt_rep_free(&r);
    r = nt_call(&t, "conv.get", taken, "{}");
    cr_assert_eq(r.status, 200, "the row must be found again: %d", r.status);
    cr_assert_str_eq(nt_str(r.body, "title", NULL), "kept");
    nt_rep_free(&r);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND type = "
                           "'conversation.created'",
                           id),
                 0);
    nt_stop(&t);
}
