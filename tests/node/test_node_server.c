/*  test_node_server — the node end to end in one process: a standalone node in
    a thread, a DEALER as the gateway and a SUB as the listener, real Postgres.
    The main path (create → post → 202 → deltas, message.completed,
    turn.completed in order, seqs gapless), malformed frames, and a graceful
    SIGTERM of the real binary. */
#include "tests/fixtures/node_test.h"

#include <signal.h>
#include <sys/wait.h>

Test(node_server, create_post_echo_stream, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    uint8_t conv[16];
    nt_create(&t, conv, "{\"title\":\"hello\",\"metadata\":{\"k\":1}}");
    char type[64];
    json_t *ev = NULL;
    cr_assert_gt(nt_event(&t, type, &ev, NT_TIMEOUT), 0);
    cr_assert_str_eq(type, "conversation.created");
    cr_assert(json_is_object(json_object_get(json_object_get(ev, "action"), "conversation")));
    json_decref(ev);

    nt_rep_t r = nt_call(&t, "msg.post", conv, "{\"content\":\"one two three\"}");
    cr_assert_eq(r.status, 202);
    cr_assert_str_eq(nt_str(r.body, "message", "role"), "user");
    cr_assert_eq(nt_int(r.body, "message", "seq"), 1);
    cr_assert_str_eq(nt_str(r.body, "message", "content"), "one two three");
    nt_rep_free(&r);

    /* Exact order on the wire: stored events and live deltas. */
    const char *want[] = {"message.created",   "turn.started",  "message.delta",
                          "message.delta",     "message.delta", "message.delta",
                          "message.completed", "turn.completed"};
    char text[256] = "";
    long long last_id = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *b = NULL;
        long long id = nt_event(&t, type, &b, NT_TIMEOUT);
        cr_assert_geq(id, 0, "event %zu missing", i);
        cr_assert_str_eq(type, want[i], "event %zu is %s, expected %s", i, type, want[i]);
        if (id > 0) {
            cr_assert_gt(id, last_id, "event ids must grow");
            last_id = id;
            cr_assert_str_eq(nt_str(b, "type", NULL), type);
        } else {
            cr_assert_eq(nt_int(b, "index", NULL), (long long)i - 2);
            strncat(text, nt_str(b, "text", NULL), sizeof text - strlen(text) - 1);
        }
        if (strcmp(type, "message.completed") == 0) {
            const json_t *msg = json_object_get(json_object_get(b, "action"), "message");
            cr_assert_str_eq(nt_str(msg, "content", NULL), "echo: one two three");
            cr_assert_str_eq(nt_str(msg, "status", NULL), "completed");
            cr_assert(json_is_object(msg));
            const json_t *usage = json_object_get(json_object_get(msg, "metadata"), "usage");
            cr_assert_eq(json_integer_value(json_object_get(usage, "input_tokens")), 3);
            cr_assert_eq(json_integer_value(json_object_get(usage, "output_tokens")), 4);
            cr_assert_str_eq(nt_str(msg, "metadata", "model"), "echo");
        }
        json_decref(b);
    }
    cr_assert_str_eq(text, "echo: one two three");
    nt_assert_gapless(&t, conv);

    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(nt_str(r.body, "status", NULL), "idle");
    cr_assert_eq(nt_int(r.body, "message_count", NULL), 2);
    cr_assert_eq(nt_int(r.body, "last_event_id", NULL), last_id);
    cr_assert_str_eq(nt_str(r.body, "title", NULL), "hello");
    nt_rep_free(&r);
    nt_stop(&t);
}

Test(node_server, many_conversations_one_loop_turn, .timeout = 60)
{
    nt_t t;
    nt_start(&t);
    enum { N = 40 };
    uint8_t conv[N][16];
    uint64_t ids[N];
    /* All requests are queued before the node reads them: they share group commits. */
    for (int i = 0; i < N; i++) {
        util_uuid_generate(conv[i]);
        ids[i] = nt_send(&t, "msg.post", conv[i], NULL,
                         "{\"content\":\"hi\",\"create\":{\"source\":\"cli\"}}");
    }
    for (int i = 0; i < N; i++) {
        nt_rep_t r = nt_recv(&t, ids[i]);
        cr_assert_eq(r.status, 202, "post %d status=%d", i, r.status);
        cr_assert(json_is_true(json_object_get(r.body, "created")));
        nt_rep_free(&r);
    }
    /* Every turn completes; every conversation is gapless. */
    for (int i = 0; i < N; i++) {
        char c[37];
        util_uuid_format(conv[i], c);
        for (int k = 0; k < 100; k++) {
            if (nt_sql_ll(&t,
                          "SELECT count(*) FROM events WHERE conversation_id = '%s' AND "
                          "type = 'turn.completed'",
                          c) == 1) {
                break;
            }
            zclock_sleep(50);
        }
        cr_assert_eq(nt_sql_ll(&t,
                               "SELECT count(*) FROM events WHERE conversation_id = '%s' "
                               "AND type = 'turn.completed'",
                               c),
                     1);
        nt_assert_gapless(&t, conv[i]);
    }
    nt_stop(&t);
}

Test(node_server, bad_frames_do_not_crash, .timeout = 30)
{
    nt_t t;
    nt_start(&t);
    zsock_t *raw = zsock_new_dealer(t.bind);
    cr_assert_not_null(raw);
    /* Random bytes, truncated msgpack, wrong frame counts, a valid non-request type. */
    zstr_send(raw, "garbage");
    uint8_t trunc[] = {0x87, 0xa1, 0x76, 0x01, 0xa4, 0x74, 0x79};
    void *h = zsock_resolve(raw);
    zmq_send(h, trunc, sizeof trunc, 0);
    zstr_sendx(raw, "a", "b", "c", NULL);
    for (int i = 0; i < 200; i++) {
        uint8_t junk[64];
        for (size_t k = 0; k < sizeof junk; k++) {
            junk[k] = (uint8_t)rand();
        }
        zmq_send(h, junk, (size_t)(i % 64) + 1, 0);
    }
    proto_msg_t ring = {.v = PROTO_VERSION, .type = PROTO_RING_GET};
    wire_send(raw, NULL, &ring);
    /* An API request with a body that is not JSON, and an unknown op. */
    uint8_t conv[16];
    util_uuid_generate(conv);
    nt_rep_t r = nt_call(&t, "conv.get", conv, "{not json");
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(nt_str(r.body, "code", NULL), "invalid_json");
    nt_rep_free(&r);
    r = nt_call(&t, "no.such.op", conv, "{}");
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
    r = nt_call(&t, "msg.post", conv, "[1,2]");
    cr_assert_eq(r.status, 400);
    nt_rep_free(&r);
    /* Still serving. */
    nt_create(&t, conv, "{}");
    zsock_destroy(&raw);
    nt_stop(&t);
}

/* The real binary: graceful stop on SIGTERM within 5 s, exit 0. */
static char *s_binary(void)
{
    const char *bin = getenv("BICKY_BIN");
    char path[1024];
    if (bin && *bin) {
        snprintf(path, sizeof path, "%s/bicky-node", bin);
    } else {
        char self[900];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            return NULL;
        }
        self[n] = 0;
        char *slash = strrchr(self, '/');
        *slash = 0;
        snprintf(path, sizeof path, "%s/../bin/bicky-node", self);
    }
    return access(path, X_OK) == 0 ? strdup(path) : NULL;
}

/* SIGTERM while a commit is in flight (blocked on a row lock held by the test):
   new requests get 503 + retry_after, the in-flight write still commits and is
   acknowledged, and the process exits 0 within 5 s. */
Test(node_server, sigterm_finishes_commit_and_exits_zero, .timeout = 30)
{
    nt_t t;
    if (!nt_open(&t)) {
        cr_skip_test("BICKY_TEST_DATABASE_URL is not set");
    }
    char *bin = s_binary();
    if (!bin) {
        cr_skip_test("bicky-node binary not found (set BICKY_BIN)");
    }
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "--id", "sig1", "--standalone", "--database-url", t.conninfo, "--bind",
              t.bind, "--pub-bind", t.pub, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    free(bin);
    nt_connect(&t);
    uint8_t conv[16];
    util_uuid_generate(conv);
    nt_rep_t r = {.status = -1};
    for (int i = 0; i < 50 && r.status != 201; i++) {
        r = nt_call(&t, "conv.create", conv, "{}"); /* waits until the binary serves */
        nt_rep_free(&r);
    }
    cr_assert_eq(r.status, 201);
    char c[37], sql[256];
    util_uuid_format(conv, c);
    nt_sql(&t, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT 1 FROM conversations WHERE id = '%s' FOR UPDATE", c);
    nt_sql(&t, sql);
    uint64_t blocked = nt_send(&t, "conv.patch", conv, NULL, "{\"title\":\"late\"}");
    zclock_sleep(200);
    int64_t t0 = zclock_mono();
    kill(pid, SIGTERM);
    zclock_sleep(200);
    r = nt_call(&t, "conv.get", conv, "{}");
    cr_assert_eq(r.status, 503, "request during stop: %d", r.status);
    cr_assert_eq(r.retry_after, 1);
    cr_assert_str_eq(nt_str(r.body, "code", NULL), "unavailable");
    nt_rep_free(&r);
    nt_sql(&t, "COMMIT");
    r = nt_recv(&t, blocked);
    cr_assert_eq(r.status, 200, "in-flight write status=%d", r.status);
    cr_assert_str_eq(nt_str(r.body, "title", NULL), "late");
    nt_rep_free(&r);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    int64_t ms = zclock_mono() - t0;
    cr_assert(WIFEXITED(status), "not a clean exit");
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_lt(ms, 5000, "took %lld ms", (long long)ms);
    nt_stop(&t);
}
