/*  test_mcp_permission — bicky-mcp-permission as a real process driven over
    its stdin/stdout pipes with JSON-RPC lines, against a ROUTER socket in
    the test standing in for the node: the MCP handshake, allow and deny
    decisions (with and without updatedInput), node errors, MOVED, the
    timeout, cancellation, garbage of every kind (answered, never a crash),
    and a clean exit on stdin EOF and on SIGTERM. (The run with the real CLI
    is in test_agent_claude.) */
#include "common/wire.h"
#include "tests/fixtures/claude_cli.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#define S_CONV "6f1c0a52-6a57-4a8e-9d7c-5f7d2e0b3b11"

typedef struct {
    pid_t pid;         /* the server */
    int in, out;       /* its stdin (we write), its stdout (we read) */
    char buf[1 << 16]; /* stdout bytes not yet returned */
    size_t len;        /* their length */
} s_srv_t;

static s_srv_t s_srv;
static zsock_t *s_router;
static zpoller_t *s_poller;
static char s_endpoint[128];

static void s_start_server(const char *timeout_s)
{
    const char *bin = cc_mcp_binary();
    cr_assert_not_null(bin, "bicky-mcp-permission not built next to the tests");
    int in[2], out[2];
    if (s_srv.out >= 0) {
        close(s_srv.out);
    }
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[] = {(char *)bin,   "--node",          s_endpoint,    "--conversation", S_CONV,
                    "--timeout-s", (char *)timeout_s, "--log-level", "debug",          NULL};
    cr_assert_eq(posix_spawn(&s_srv.pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    s_srv.in = in[1];
    s_srv.out = out[0];
    s_srv.len = 0;
}

static void s_setup(void)
{
    util_signals_install();
    snprintf(s_endpoint, sizeof s_endpoint, "ipc://@bicky-mcp-test-%d", (int)getpid());
    s_router = zsock_new_router(s_endpoint);
    cr_assert_not_null(s_router);
    s_poller = zpoller_new(s_router, NULL);
    memset(&s_srv, 0, sizeof s_srv);
    s_srv.in = s_srv.out = -1;
}

/* Waits for the server to exit; returns its status (or -1 after 5 s). */
static int s_wait_exit(int max_ms)
{
    for (int waited = 0; waited < max_ms; waited += 10) {
        int status;
        if (waitpid(s_srv.pid, &status, WNOHANG) == s_srv.pid) {
            s_srv.pid = 0;
            return status;
        }
        usleep(10000);
    }
    return -1;
}

static void s_teardown(void)
{
    if (s_srv.in >= 0) {
        close(s_srv.in);
    }
    if (s_srv.pid > 0) {
        kill(s_srv.pid, SIGKILL);
        waitpid(s_srv.pid, NULL, 0);
    }
    if (s_srv.out >= 0) {
        close(s_srv.out);
    }
    zpoller_destroy(&s_poller);
    zsock_destroy(&s_router);
}

TestSuite(mcp_permission, .init = s_setup, .fini = s_teardown, .timeout = 30);

static void s_send_raw(const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(s_srv.in, data + off, len - off);
        cr_assert_gt(n, 0, "write to the server: %s", strerror(errno));
        off += (size_t)n;
    }
}

static void s_send(const char *line)
{
    s_send_raw(line, strlen(line));
    s_send_raw("\n", 1);
}

/* The next stdout line as JSON (caller decrefs), or NULL after max_ms. */
static json_t *s_recv(int max_ms)
{
    for (;;) {
        char *nl = memchr(s_srv.buf, '\n', s_srv.len);
        if (nl) {
            json_error_t err;
            json_t *msg = json_loadb(s_srv.buf, (size_t)(nl - s_srv.buf), 0, &err);
            cr_assert_not_null(msg, "stdout carried a non-JSON line: %s", err.text);
            s_srv.len -= (size_t)(nl - s_srv.buf) + 1;
            memmove(s_srv.buf, nl + 1, s_srv.len);
            return msg;
        }
        struct pollfd p = {.fd = s_srv.out, .events = POLLIN};
        if (poll(&p, 1, max_ms) != 1) {
            return NULL;
        }
        ssize_t n = read(s_srv.out, s_srv.buf + s_srv.len, sizeof s_srv.buf - s_srv.len);
        if (n <= 0) {
            return NULL;
        }
        s_srv.len += (size_t)n;
    }
}

/* Expects a JSON-RPC error with code; returns its message (static copy). */
static const char *s_expect_error(json_int_t id, int code)
{
    static char message[512];
    json_t *msg = s_recv(5000);
    cr_assert_not_null(msg, "no answer (expected error %d)", code);
    json_t *err = json_object_get(msg, "error");
    cr_assert_not_null(err, "expected an error, got %s", json_dumps(msg, 0));
    cr_assert_eq(json_integer_value(json_object_get(err, "code")), code);
    json_t *jid = json_object_get(msg, "id");
    if (id < 0) {
        cr_assert(json_is_null(jid));
    } else {
        cr_assert_eq(json_integer_value(jid), id);
    }
    cr_assert_str_eq(json_string_value(json_object_get(msg, "jsonrpc")), "2.0");
    snprintf(message, sizeof message, "%s", json_string_value(json_object_get(err, "message")));
    json_decref(msg);
    return message;
}

/* Expects a result for id; returns it (caller decrefs the returned message). */
static json_t *s_expect_result(json_int_t id, json_t **msg_out)
{
    json_t *msg = s_recv(5000);
    cr_assert_not_null(msg, "no answer for id %lld", (long long)id);
    cr_assert_eq(json_integer_value(json_object_get(msg, "id")), id, "%s", json_dumps(msg, 0));
    json_t *result = json_object_get(msg, "result");
    cr_assert_not_null(result, "expected a result: %s", json_dumps(msg, 0));
    *msg_out = msg;
    return result;
}

static void s_call(int id, const char *tool_use_id)
{
    char line[512];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"approval_prompt\",\"arguments\":{\"tool_name\":\"Bash\",\"input\":{\"command\":"
             "\"rm -rf build\"}%s%s%s}}}",
             id, tool_use_id ? ",\"tool_use_id\":\"" : "", tool_use_id ? tool_use_id : "",
             tool_use_id ? "\"" : "");
    s_send(line);
}

/* Receives the node question; returns the identity (caller destroys). */
static zframe_t *s_node_question(proto_msg_t *req)
{
    cr_assert_eq(zpoller_wait(s_poller, 5000), s_router, "no question reached the node");
    zframe_t *who = NULL;
    cr_assert_eq(wire_recv(s_router, &who, req, "test"), 0);
    cr_assert_eq(req->type, PROTO_API_REQ);
    cr_assert_str_eq(req->op, "permission.ask");
    return who;
}

static void
s_node_answer(zframe_t **who, const proto_msg_t *req, int type, int status, const char *body)
{
    proto_msg_t rep = {.v = PROTO_VERSION,
                       .type = type,
                       .req_id = req->req_id,
                       .status = (uint64_t)status,
                       .body = (char *)body};
    cr_assert_eq(wire_send(s_router, *who, &rep), 0);
    zframe_destroy(who);
}

/* The decision object inside a tools/call result (caller decrefs). */
static json_t *s_decision(json_int_t id)
{
    json_t *msg;
    json_t *result = s_expect_result(id, &msg);
    json_t *block = json_array_get(json_object_get(result, "content"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(block, "type")), "text");
    json_t *decision = json_loads(json_string_value(json_object_get(block, "text")), 0, NULL);
    cr_assert_not_null(decision);
    json_decref(msg);
    return decision;
}

Test(mcp_permission, handshake_and_tools_list)
{
    s_start_server("0");
    json_t *msg;
    s_send("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"roots\":{}},"
           "\"clientInfo\":{\"name\":\"claude-code\",\"version\":\"2.1.197\"}}}");
    json_t *r = s_expect_result(0, &msg);
    cr_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
    cr_assert(json_is_object(json_object_get(json_object_get(r, "capabilities"), "tools")));
    json_decref(msg);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2099-01-01\"}}");
    r = s_expect_result(1, &msg);
    cr_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-11-25");
    json_decref(msg);
    s_send("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    s_send("{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"tools/list\"}");
    msg = s_recv(5000);
    cr_assert_str_eq(json_string_value(json_object_get(msg, "id")), "two", "no notification reply");
    json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
    cr_assert_eq(json_array_size(tools), 1);
    json_t *tool = json_array_get(tools, 0);
    cr_assert_str_eq(json_string_value(json_object_get(tool, "name")), "approval_prompt");
    json_t *schema = json_object_get(tool, "inputSchema");
    cr_assert_str_eq(json_string_value(json_object_get(schema, "type")), "object");
    cr_assert_not_null(json_object_get(json_object_get(schema, "properties"), "tool_use_id"));
    json_decref(msg);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    json_decref(s_expect_result(3, &msg) ? msg : NULL);
}

Test(mcp_permission, allow_and_deny_from_the_node)
{
    s_start_server("0");
    proto_msg_t req;
    s_call(7, "toolu_1");
    zframe_t *who = s_node_question(&req);
    uint8_t conv[16];
    util_uuid_parse(S_CONV, conv);
    cr_assert(req.has_conv);
    cr_assert_eq(memcmp(req.conv_id, conv, 16), 0);
    json_t *body = json_loads(req.body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(body, "conversation_id")), S_CONV);
    cr_assert_str_eq(json_string_value(json_object_get(body, "tool_name")), "Bash");
    cr_assert_str_eq(json_string_value(json_object_get(body, "tool_use_id")), "toolu_1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "input"), "command")),
                     "rm -rf build");
    json_decref(body);
    s_node_answer(&who, &req, PROTO_API_REP, 200,
                  "{\"behavior\":\"allow\",\"updatedInput\":{\"command\":\"rm -rf build/tmp\"}}");
    proto_msg_reset(&req);
    json_t *d = s_decision(7);
    cr_assert_str_eq(json_string_value(json_object_get(d, "behavior")), "allow");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(d, "updatedInput"), "command")),
        "rm -rf build/tmp");
    json_decref(d);
    /* allow without updatedInput: the input as asked */
    s_call(8, NULL);
    who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_API_REP, 200, "{\"behavior\":\"allow\"}");
    proto_msg_reset(&req);
    d = s_decision(8);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(d, "updatedInput"), "command")),
        "rm -rf build");
    json_decref(d);
    s_call(9, NULL);
    who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_API_REP, 200, "{\"behavior\":\"deny\",\"message\":\"no\"}");
    proto_msg_reset(&req);
    d = s_decision(9);
    cr_assert_str_eq(json_string_value(json_object_get(d, "behavior")), "deny");
    cr_assert_str_eq(json_string_value(json_object_get(d, "message")), "no");
    cr_assert_null(json_object_get(d, "updatedInput"));
    json_decref(d);
}

Test(mcp_permission, node_errors_become_jsonrpc_errors)
{
    s_start_server("0");
    proto_msg_t req;
    s_call(1, NULL);
    zframe_t *who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_API_REP, 404,
                  "{\"error\":\"no such conversation\",\"code\":\"not_found\"}");
    proto_msg_reset(&req);
    cr_assert_not_null(strstr(s_expect_error(1, -32000), "404: no such conversation"));
    s_call(2, NULL);
    who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_API_REP, 200, "{\"behavior\":\"maybe\"}");
    proto_msg_reset(&req);
    s_expect_error(2, -32000);
    s_call(3, NULL);
    who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_API_REP, 200, "not json");
    proto_msg_reset(&req);
    s_expect_error(3, -32000);
    s_call(4, NULL);
    who = s_node_question(&req);
    s_node_answer(&who, &req, PROTO_MOVED, 0, NULL);
    proto_msg_reset(&req);
    cr_assert_not_null(strstr(s_expect_error(4, -32000), "moved"));
}

Test(mcp_permission, timeout_and_cancel)
{
    s_start_server("1");
    proto_msg_t req;
    int64_t t0 = util_mono_ms();
    s_call(1, NULL);
    zframe_t *who = s_node_question(&req);
    cr_assert_not_null(strstr(s_expect_error(1, -32000), "within 1 s"));
    int64_t ms = util_mono_ms() - t0;
    cr_assert(ms >= 900 && ms < 3000, "timed out after %lld ms", (long long)ms);
    /* A late answer is dropped: the next line belongs to the ping. */
    s_node_answer(&who, &req, PROTO_API_REP, 200, "{\"behavior\":\"allow\"}");
    proto_msg_reset(&req);
    s_call(2, NULL);
    who = s_node_question(&req);
    s_send("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
           "{\"requestId\":2,\"reason\":\"user\"}}");
    usleep(100000);
    s_node_answer(&who, &req, PROTO_API_REP, 200, "{\"behavior\":\"allow\"}");
    proto_msg_reset(&req);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}");
    json_t *msg;
    s_expect_result(5, &msg);
    json_decref(msg);
}

Test(mcp_permission, garbage_is_answered_never_a_crash)
{
    s_start_server("0");
    s_send("garbage");
    s_expect_error(-1, -32700);
    s_send("{\"unterminated\": ");
    s_expect_error(-1, -32700);
    s_send("\xff\xfe{\"jsonrpc\":\"2.0\"}");
    s_expect_error(-1, -32700);
    s_send("{\"a\":1,\"a\":2}");
    s_expect_error(-1, -32700);
    s_send("[]");
    s_expect_error(-1, -32600);
    s_send("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
    s_expect_error(-1, -32600);
    s_send("42");
    s_expect_error(-1, -32600);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}");
    s_expect_error(-1, -32600);
    s_send("{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"ping\"}");
    s_expect_error(5, -32600);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":7}");
    s_expect_error(6, -32600);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":7}");
    s_expect_error(7, -32600);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/list\"}");
    s_expect_error(8, -32601);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\"}");
    s_expect_error(9, -32602);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}");
    s_expect_error(10, -32602);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"approval_prompt\",\"arguments\":{\"tool_name\":\"Bash\",\"input\":\"rm\"}}}");
    s_expect_error(11, -32602);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"approval_prompt\",\"arguments\":{\"tool_name\":7,\"input\":{}}}}");
    s_expect_error(12, -32602);
    s_send("{\"jsonrpc\":\"2.0\",\"method\":\"no/such/notification\"}");
    s_send("{\"jsonrpc\":\"2.0\",\"id\":13,\"result\":{}}"); /* a response: ignored */
    s_send("");
    s_send("\r");
    /* Deep nesting and an oversized line. */
    size_t deep = 200000;
    char *big = malloc(deep * 2);
    memset(big, '[', deep);
    memset(big + deep, ']', deep);
    s_send_raw(big, deep * 2);
    s_send_raw("\n", 1);
    s_expect_error(-1, -32700);
    free(big);
    size_t huge = 5u * 1024 * 1024;
    big = malloc(huge);
    memset(big, 'x', huge);
    s_send_raw(big, huge);
    free(big);
    s_send("{\"tail of the huge line\":1}");
    s_expect_error(-1, -32700);
    s_send("{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"ping\"}");
    json_t *msg;
    s_expect_result(14, &msg);
    json_decref(msg);
    cr_assert_null(s_recv(200), "nothing else was written");
    cr_assert_eq(zpoller_wait(s_poller, 0), NULL, "no question reached the node");
}

Test(mcp_permission, exits_cleanly)
{
    s_start_server("0");
    s_call(1, NULL); /* still waiting when stdin ends */
    proto_msg_t req;
    zframe_t *who = s_node_question(&req);
    zframe_destroy(&who);
    proto_msg_reset(&req);
    close(s_srv.in);
    s_srv.in = -1;
    int status = s_wait_exit(5000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    s_start_server("0");
    s_send("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    json_t *msg;
    s_expect_result(1, &msg);
    json_decref(msg);
    kill(s_srv.pid, SIGTERM);
    status = s_wait_exit(5000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

Test(mcp_permission, flags)
{
    const char *bin = cc_mcp_binary();
    cr_assert_not_null(bin);
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "%s --help >/dev/null", bin);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --node tcp://127.0.0.1:7690 </dev/null 2>/dev/null", bin);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2, "--conversation is required");
    snprintf(cmd, sizeof cmd, "%s --node x --conversation not-a-uuid </dev/null 2>/dev/null", bin);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
}
