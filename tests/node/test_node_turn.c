/*  test_node_turn — turns, one at a time per conversation: the state machine's
    decisions (unit), and against a real node and Postgres: on_busy enqueue /
    reject / interrupt, cancel (and 409 when idle), fail_every with back-off
    and recovery, per-conversation echo delay, archive, and passivation then
    reactivation keeping seqs gapless. */
#include "node/ops/node_ops.h"
#include "tests/fixtures/node_test.h"

/* ---- unit: decisions on a bare actor ----------------------------------------------------- */

Test(node_turn, status_after_plan)
{
    node_actor_t a;
    memset(&a, 0, sizeof a);
    node_plan_t p;
    memset(&p, 0, sizeof p);
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_IDLE);
    p.enqueue = true;
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_QUEUED);
    p.start = true;
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_PROCESSING);
    memset(&p, 0, sizeof p);
    node_turns_t *t = node_turns_get(&a);
    t->running = true;
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_PROCESSING);
    cr_assert(node_turn_running(&a));
    p.end = NODE_END_FAILED;
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_ERROR);
    p.end = NODE_END_COMPLETED;
    cr_assert_eq(node_turn_status_after(&a, &p), NODE_ST_IDLE);
    node_turns_free(a.turns);
}

Test(node_turn, posted_message_starts_only_when_free)
{
    node_cfg_t cfg;
    node_cfg_defaults(&cfg);
    node_t node;
    memset(&node, 0, sizeof node);
    node.cfg = &cfg;
    node_actor_t a;
    memset(&a, 0, sizeof a);
    cr_assert(node_turn_posted_starts(&node, &a, NODE_END_NONE));
    node_turns_t *t = node_turns_get(&a);
    t->running = true;
    cr_assert(!node_turn_posted_starts(&node, &a, NODE_END_NONE), "starts while running");
    cr_assert(node_turn_posted_starts(&node, &a, NODE_END_CANCELLED), "interrupt must start");
    cr_assert(!node_turn_posted_starts(&node, &a, NODE_END_FAILED), "no start during back-off");
    t->running = false;
    t->backoff = true;
    cr_assert(!node_turn_posted_starts(&node, &a, NODE_END_NONE));
    t->backoff = false;
    a.status = NODE_ST_ARCHIVED;
    cr_assert(!node_turn_posted_starts(&node, &a, NODE_END_NONE));
    a.status = NODE_ST_IDLE;
    node.stopping = true;
    cr_assert(!node_turn_posted_starts(&node, &a, NODE_END_NONE));
    node_turns_free(a.turns);
}

Test(node_turn, echo_word_count)
{
    cr_assert_eq(node_echo_words(""), 0);
    cr_assert_eq(node_echo_words("   "), 0);
    cr_assert_eq(node_echo_words("a"), 1);
    cr_assert_eq(node_echo_words("  a  b\tc\n"), 3);
}

/* ---- component --------------------------------------------------------------------------- */

static const char *s_post(nt_t *t, const uint8_t conv[16], const char *content, int want)
{
    char body[256];
    snprintf(body, sizeof body, "{\"content\":\"%s\"}", content);
    nt_rep_t r = nt_call(t, "msg.post", conv, body);
    cr_assert_eq(r.status, want, "msg.post '%s' status=%d want=%d", content, r.status, want);
    static char status[32];
    snprintf(status, sizeof status, "%s", r.body ? nt_str(r.body, "message", "status") ?: "" : "");
    nt_rep_free(&r);
    return status;
}

/* Waits until the conversation has n events of type. */
static void s_wait_events(nt_t *t, const uint8_t conv[16], const char *type, int n)
{
    char c[37];
    util_uuid_format(conv, c);
    long long got = 0;
    for (int i = 0; i < 200; i++) {
        got = nt_sql_ll(t,
                        "SELECT count(*) FROM events WHERE conversation_id = '%s' AND type = "
                        "'%s'",
                        c, type);
        if (got >= n) {
            return;
        }
        zclock_sleep(25);
    }
    cr_assert_fail("%s: %lld events, want %d", type, got, n);
}

Test(node_turn, enqueue_runs_turns_in_order, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"metadata\":{\"echo\":{\"delay_ms\":30}}}");
    cr_assert_str_eq(s_post(&t, conv, "first turn here", 202), "completed");
    cr_assert_str_eq(s_post(&t, conv, "second", 202), "pending");
    cr_assert_str_eq(s_post(&t, conv, "third", 202), "pending");
    s_wait_events(&t, conv, "turn.completed", 3);
    char c[37];
    util_uuid_format(conv, c);
    /* Seqs follow accept order: the queued user messages were stored while turn 1 ran;
       each assistant row is stored when its turn starts. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT role, content, status FROM messages WHERE conversation_id = '%s' ORDER BY "
             "seq",
             c);
    PGresult *r = PQexec(t.pg, sql);
    cr_assert_eq(PQntuples(r), 6);
    const char *want[6][3] = {{"user", "first turn here", "completed"},
                              {"assistant", "echo: first turn here", "completed"},
                              {"user", "second", "completed"},
                              {"user", "third", "completed"},
                              {"assistant", "echo: second", "completed"},
                              {"assistant", "echo: third", "completed"}};
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 3; k++) {
            cr_assert_str_eq(PQgetvalue(r, i, k), want[i][k], "row %d col %d", i, k);
        }
    }
    PQclear(r);
    nt_assert_gapless(&t, conv);
    nt_rep_t g = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(g.body, "status", NULL), "idle");
    cr_assert_eq(nt_int(g.body, "message_count", NULL), 6);
    nt_rep_free(&g);
    nt_stop(&t);
}

Test(node_turn, queue_is_bounded, .timeout = 30)
{
    nt_t t;
    if (!nt_open(&t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    t.cfg.mailbox_max = 2;
    nt_start_node(&t);
    nt_connect(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"metadata\":{\"echo\":{\"delay_ms\":100}}}");
    s_post(&t, conv, "runs now", 202);
    s_post(&t, conv, "queued one", 202);
    s_post(&t, conv, "queued two", 202);
    nt_rep_t r = nt_call(&t, "msg.post", conv, "{\"content\":\"one too many\"}");
    cr_assert_eq(r.status, 429);
    cr_assert_eq(r.retry_after, 1);
    cr_assert_str_eq(nt_str(r.body, "code", NULL), "rate_limited");
    nt_rep_free(&r);
    s_wait_events(&t, conv, "turn.completed", 3);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, reject_while_busy, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"on_busy\":\"reject\",\"metadata\":{\"echo\":{\"delay_ms\":50}}}");
    s_post(&t, conv, "a b c d e f", 202);
    nt_rep_t r = nt_call(&t, "msg.post", conv, "{\"content\":\"too soon\"}");
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(nt_str(r.body, "code", NULL), "conflict");
    nt_rep_free(&r);
    s_wait_events(&t, conv, "turn.completed", 1);
    s_post(&t, conv, "now fine", 202);
    s_wait_events(&t, conv, "turn.completed", 2);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, interrupt_cancels_running_turn, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"on_busy\":\"interrupt\",\"metadata\":{\"echo\":{\"delay_ms\":100}}}");
    s_post(&t, conv, "w1 w2 w3 w4 w5 w6 w7 w8 w9", 202);
    zclock_sleep(250);
    cr_assert_str_eq(s_post(&t, conv, "new one", 202), "completed");
    s_wait_events(&t, conv, "turn.cancelled", 1);
    s_wait_events(&t, conv, "turn.completed", 1);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND "
                           "role = 'assistant' AND status = 'cancelled' AND content <> '' "
                           "AND content <> 'echo: w1 w2 w3 w4 w5 w6 w7 w8 w9'",
                           c),
                 1);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND "
                           "content = 'echo: new one' AND status = 'completed'",
                           c),
                 1);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, cancel_stores_partial_and_409_when_idle, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"metadata\":{\"echo\":{\"delay_ms\":100}}}");
    nt_rep_t r = nt_call(&t, "conv.cancel", conv, "{}");
    cr_assert_eq(r.status, 409);
    nt_rep_free(&r);
    s_post(&t, conv, "x1 x2 x3 x4 x5 x6 x7 x8", 202);
    json_t *b = NULL;
    int deltas = 0;
    cr_assert_gt(nt_event_of(&t, "turn.started", NULL, NULL), 0);
    zclock_sleep(220);
    r = nt_call(&t, "conv.cancel", conv, "{}");
    cr_assert_eq(r.status, 202);
    nt_rep_free(&r);
    cr_assert_gt(nt_event_of(&t, "turn.cancelled", &b, &deltas), 0);
    const json_t *msg = json_object_get(json_object_get(b, "action"), "message");
    cr_assert_str_eq(nt_str(msg, "status", NULL), "cancelled");
    const char *content = nt_str(msg, "content", NULL);
    cr_assert(strncmp(content, "echo:", 5) == 0, "partial content '%s'", content);
    cr_assert_lt(strlen(content), strlen("echo: x1 x2 x3 x4 x5 x6 x7 x8"));
    json_decref(b);
    /* No more deltas or completion for the cancelled turn. */
    char type[64];
    cr_assert_eq(nt_event(&t, type, NULL, 400), -1, "unexpected %s after cancel", type);
    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "idle");
    nt_rep_free(&r);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, fail_every_fails_then_recovers, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"metadata\":{\"echo\":{\"fail_every\":2}}}");
    s_post(&t, conv, "ok one", 202);
    cr_assert_gt(nt_event_of(&t, "turn.completed", NULL, NULL), 0);
    s_post(&t, conv, "this one fails half way", 202);
    json_t *b = NULL;
    cr_assert_gt(nt_event_of(&t, "turn.failed", &b, NULL), 0);
    cr_assert_not_null(nt_str(b, "action", "error"));
    json_decref(b);
    nt_rep_t r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "error");
    nt_rep_free(&r);
    /* Posted during the back-off: queued, then runs once the strategy restarted. */
    cr_assert_str_eq(s_post(&t, conv, "after failure", 202), "pending");
    cr_assert_gt(nt_event_of(&t, "turn.completed", NULL, NULL), 0);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND "
                           "status = 'error' AND metadata ? 'error'",
                           c),
                 1);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                           "type = 'message.failed'",
                           c),
                 1);
    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "idle");
    nt_rep_free(&r);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, archive_refuses_new_messages, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"metadata\":{\"echo\":{\"delay_ms\":100}}}");
    s_post(&t, conv, "long running turn here", 202);
    s_post(&t, conv, "queued", 202);
    nt_rep_t r = nt_call(&t, "conv.delete", conv, "{}");
    cr_assert_eq(r.status, 204);
    nt_rep_free(&r);
    s_post(&t, conv, "after archive", 409);
    r = nt_call(&t, "conv.delete", conv, "{}");
    cr_assert_eq(r.status, 204);
    nt_rep_free(&r);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                           "type = 'conversation.archived'",
                           c),
                 1);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM messages WHERE conversation_id = '%s' AND "
                           "content = 'queued' AND status = 'cancelled'",
                           c),
                 1);
    zclock_sleep(300);
    cr_assert_eq(nt_sql_ll(&t,
                           "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                           "type IN ('turn.completed', 'turn.started')",
                           c),
                 1);
    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "archived");
    nt_rep_free(&r);
    nt_assert_gapless(&t, conv);
    nt_stop(&t);
}

Test(node_turn, passivation_then_reactivation_keeps_seqs, .timeout = 30)
{
    nt_t t;
    if (!nt_open(&t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    t.cfg.actor_idle_s = 1;
    nt_start_node(&t);
    nt_connect(&t);
    zclock_sleep(100);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    s_post(&t, conv, "before", 202);
    s_wait_events(&t, conv, "turn.completed", 1);
    nt_rep_t r = nt_call(&t, "status", NULL, "{}");
    cr_assert_eq(nt_int(r.body, "actors", NULL), 1);
    nt_rep_free(&r);
    for (int i = 0; i < 60; i++) {
        r = nt_call(&t, "status", NULL, "{}");
        long long actors = nt_int(r.body, "actors", NULL);
        nt_rep_free(&r);
        if (actors == 0) {
            break;
        }
        zclock_sleep(100);
    }
    r = nt_call(&t, "status", NULL, "{}");
    cr_assert_eq(nt_int(r.body, "actors", NULL), 0, "actor not passivated");
    nt_rep_free(&r);
    s_post(&t, conv, "after", 202);
    s_wait_events(&t, conv, "turn.completed", 2);
    nt_assert_gapless(&t, conv);
    char c[37];
    util_uuid_format(conv, c);
    cr_assert_eq(nt_sql_ll(&t, "SELECT max(seq) FROM messages WHERE conversation_id = '%s'", c), 4);
    nt_stop(&t);
}

/* Published events of one turn until turn.completed: types in order ("delta" for each
   message.delta) into types, the deltas' text concatenated into text. */
static void s_turn_events(nt_t *t, char *types, size_t tcap, char *text, size_t xcap)
{
    types[0] = text[0] = '\0';
    char type[64];
    for (int i = 0; i < 200; i++) {
        json_t *b = NULL;
        cr_assert_geq(nt_event(t, type, &b, NT_TIMEOUT), 0, "no turn.completed published");
        bool delta = strcmp(type, "message.delta") == 0;
        if (delta) {
            strncat(text, nt_str(b, "text", NULL), xcap - strlen(text) - 1);
        }
        strncat(types, delta ? "delta " : type, tcap - strlen(types) - 1);
        strncat(types, delta ? "" : " ", tcap - strlen(types) - 1);
        json_decref(b);
        if (strcmp(type, "turn.completed") == 0) {
            return;
        }
    }
    cr_assert_fail("too many events");
}

/* A conversation's stored rows in a comparable form (ids left out). */
static char *s_rows(nt_t *t, const uint8_t conv[16])
{
    char c[37], sql[600];
    util_uuid_format(conv, c);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT string_agg(format('%%s|%%s|%%s|%%s|%%s', seq, role, content, status, "
             "metadata - 'user_message_id'), E'\\n' ORDER BY seq) FROM messages WHERE "
             "conversation_id = '%s') || E'\\n' || (SELECT string_agg(format('%%s|%%s|%%s', seq, "
             "type, action - 'message_id' - 'user_message_id' - 'message' - 'conversation'), "
             "E'\\n' ORDER BY "
             "seq) FROM events WHERE conversation_id = '%s')",
             c, c);
    PGresult *r = PQexec(t->pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(t->pg));
    char *out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* With no delay, an echo turn is written with its message in one commit (node_turn.c
   s_add_folded): the same rows, events and deltas as the streamed turn, and the same
   transaction for both messages. */
Test(node_turn, folded_echo_turn_matches_streamed_turn, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t streamed[16], folded[16];
    nt_create(&t, streamed, "{\"metadata\":{\"echo\":{\"delay_ms\":1}}}");
    nt_create(&t, folded, "{}");
    char types[2][1024], text[2][256];
    const uint8_t *convs[2] = {streamed, folded};
    for (int k = 0; k < 2; k++) {
        /* Drain what conv.create published. */
        json_t *b = NULL;
        char type[64];
        while (nt_event(&t, type, &b, 50) >= 0) {
            json_decref(b);
            b = NULL;
        }
        s_post(&t, convs[k], "alpha beta  gamma", 202);
        s_turn_events(&t, types[k], sizeof types[k], text[k], sizeof text[k]);
    }
    cr_assert_str_eq(types[1], types[0]);
    cr_assert_str_eq(types[1], "message.created turn.started delta delta delta delta "
                               "message.completed turn.completed ");
    cr_assert_str_eq(text[1], "echo: alpha beta  gamma");
    cr_assert_str_eq(text[0], text[1]);
    char *rows[2] = {s_rows(&t, streamed), s_rows(&t, folded)};
    cr_assert_str_eq(rows[1], rows[0]);
    free(rows[0]);
    free(rows[1]);
    char c[2][37];
    util_uuid_format(streamed, c[0]);
    util_uuid_format(folded, c[1]);
#define XMINS "SELECT count(DISTINCT xmin::text) FROM messages WHERE conversation_id = '%s'"
    cr_assert_eq(nt_sql_ll(&t, XMINS, c[0]), 2, "the streamed turn commits twice");
    cr_assert_eq(nt_sql_ll(&t, XMINS, c[1]), 1, "the folded turn commits with its message");
    for (int k = 0; k < 2; k++) {
        nt_assert_gapless(&t, convs[k]);
        nt_rep_t g = nt_call(&t, "conv.get", convs[k], "{}");
        cr_assert_str_eq(nt_str(g.body, "status", NULL), "idle");
        cr_assert_eq(nt_int(g.body, "message_count", NULL), 2);
        nt_rep_free(&g);
    }
    nt_stop(&t);
}

/* The node renders what a write set inserts (node_write.c, node_render.c): the published
   events and the 202's message equal what the store gives back afterwards. */
Test(node_turn, rendered_rows_equal_stored_rows, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{}");
    char type[64];
    json_t *b = NULL, *created = NULL;
    while (nt_event(&t, type, &b, 50) >= 0) {
        if (strcmp(type, "conversation.created") == 0) {
            created = json_incref(b);
        }
        json_decref(b);
        b = NULL;
    }
    cr_assert_not_null(created, "conversation.created not published");
    nt_rep_t r = nt_call(
        &t, "msg.post", conv,
        "{\"content\":\"q \\\"x\\\" \\\\ \\u00e9\\n\",\"metadata\":{\"b\":1,\"a\":[true]}}");
    cr_assert_eq(r.status, 202);
    json_t *posted = json_deep_copy(json_object_get(r.body, "message"));
    nt_rep_free(&r);
    json_t *live = json_array();
    for (;;) {
        long long id = nt_event(&t, type, &b, NT_TIMEOUT);
        cr_assert_geq(id, 0, "turn.completed not published");
        if (id > 0) {
            json_array_append(live, b);
        }
        json_decref(b);
        b = NULL;
        if (strcmp(type, "turn.completed") == 0) {
            break;
        }
    }
    nt_rep_t ev = nt_call(&t, "events.list", conv, "{\"limit\":100}");
    json_t *stored = json_object_get(ev.body, "data");
    /* conversation.created, then the four events of the post and its turn */
    cr_assert_eq(json_array_size(stored), 5);
    cr_assert_eq(json_array_size(live), 4);
    char *l0 = json_dumps(created, JSON_SORT_KEYS);
    char *s0 = json_dumps(json_array_get(stored, 0), JSON_SORT_KEYS);
    cr_assert_str_eq(l0, s0, "conversation.created differs");
    free(l0);
    free(s0);
    json_decref(created);
    for (size_t i = 0; i < 4; i++) {
        char *l = json_dumps(json_array_get(live, i), JSON_SORT_KEYS);
        char *s = json_dumps(json_array_get(stored, i + 1), JSON_SORT_KEYS);
        cr_assert_str_eq(l, s, "event %zu differs", i);
        free(l);
        free(s);
    }
    nt_rep_t ml = nt_call(&t, "msg.list", conv, "{\"limit\":10}");
    json_t *first = json_array_get(json_object_get(ml.body, "data"), 0);
    cr_assert(json_equal(first, posted), "the 202's message differs from the stored one");
    cr_assert_str_eq(nt_str(first, "content", NULL), "q \"x\" \\ \xc3\xa9\n");
    nt_rep_free(&ml);
    nt_rep_free(&ev);
    json_decref(live);
    json_decref(posted);
    nt_stop(&t);
}
