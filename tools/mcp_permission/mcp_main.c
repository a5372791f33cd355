/*  bicky-mcp-permission — the MCP stdio server behind Claude Code's
    `--permission-prompt-tool mcp__perm__approval_prompt` (permission_channel
    = mcp): JSON-RPC 2.0 lines on stdin/stdout, one tool approval_prompt that
    asks the owning node over ZeroMQ (PROTO_API_REQ op permission.ask) and
    answers with its decision. stdout carries protocol only; logs go to
    stderr. main: flags, then one zloop (stdin, the DEALER, a 100 ms timer)
    until stdin ends or SIGTERM/SIGINT. */
#define LOG_MODULE "mcp_main"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "tools/mcp_permission/mcp_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TICK_MS    100
#define S_READ_CHUNK 65536

typedef struct {
    mcp_t mcp;       /* protocol state */
    char *line;      /* stdin bytes not yet split into lines */
    size_t len, cap; /* their length and capacity */
    bool skipping;   /* discarding the rest of an oversized line */
} s_server_t;

/* Blank lines (whitespace only) between messages are ignored. */
static bool s_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* Splits complete lines off the buffer and handles them; an oversized line
   is answered with a parse error and skipped up to its newline. */
static void s_lines(s_server_t *s, bool at_eof)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->line + start, '\n', s->len - start);
        if (!nl && !(at_eof && s->len > start && !s->skipping)) {
            break;
        }
        size_t end = nl ? (size_t)(nl - s->line) : s->len;
        if (!s->skipping && !s_blank(s->line + start, end - start)) {
            mcp_handle_line(&s->mcp, s->line + start, end - start);
        }
        s->skipping = false;
        start = nl ? end + 1 : end;
    }
    memmove(s->line, s->line + start, s->len - start);
    s->len -= start;
    if (s->len > MCP_MAX_LINE) {
        mcp_send_error(&s->mcp, NULL, MCP_ERR_PARSE, "Parse error: line too long");
        s->skipping = true;
        s->len = 0;
    } else if (s->skipping) {
        s->len = 0;
    }
}

static int s_on_stdin(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_server_t *s = arg;
    if (s->cap - s->len < S_READ_CHUNK) {
        size_t cap = s->cap ? s->cap * 2 : 4 * S_READ_CHUNK;
        char *grown = realloc(s->line, cap);
        if (!grown) {
            LOG_E("out of memory");
            return -1;
        }
        s->line = grown;
        s->cap = cap;
    }
    ssize_t n = read(item->fd, s->line + s->len, s->cap - s->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    if (n <= 0) {
        s_lines(s, true);
        LOG_I("stdin closed: stopping");
        return -1;
    }
    s->len += (size_t)n;
    s_lines(s, false);
    return s->mcp.out_broken ? -1 : 0;
}

static int s_on_node(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_server_t *s = arg;
    proto_msg_t msg;
    if (wire_recv(sock, NULL, &msg, "node") == 0) {
        mcp_handle_reply(&s->mcp, &msg);
        proto_msg_reset(&msg);
    }
    return s->mcp.out_broken ? -1 : 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_server_t *s = arg;
    if (util_interrupted) {
        return -1;
    }
    mcp_expire(&s->mcp, util_mono_ms());
    return s->mcp.out_broken ? -1 : 0;
}

static int s_run(s_server_t *s, const char *node)
{
    int rc = 1;
    zloop_t *loop = zloop_new();
    s->mcp.dealer = zsock_new(ZMQ_DEALER);
    if (!loop || !s->mcp.dealer) {
        LOG_E("cannot create the loop or the socket");
        goto out;
    }
    zsock_set_linger(s->mcp.dealer, 0);
    if (zsock_connect(s->mcp.dealer, "%s", node) < 0) {
        LOG_E("cannot connect to the node at %s", node);
        goto out;
    }
    zmq_pollitem_t item = {NULL, STDIN_FILENO, ZMQ_POLLIN, 0};
    if (zloop_poller(loop, &item, s_on_stdin, s) != 0 ||
        zloop_reader(loop, s->mcp.dealer, s_on_node, s) != 0 ||
        zloop_timer(loop, S_TICK_MS, 0, s_on_tick, s) < 0) {
        LOG_E("cannot set up the loop");
        goto out;
    }
    zloop_poller_set_tolerant(loop, &item);
    LOG_I("serving conversation=%s node=%s", s->mcp.conversation, node);
    zloop_start(loop);
    rc = 0;
out:
    zloop_destroy(&loop);
    zsock_destroy(&s->mcp.dealer);
    mcp_calls_free(&s->mcp);
    free(s->line);
    return rc;
}

int main(int argc, char **argv)
{
    const char *node = NULL, *conversation = NULL, *level_name = "notice";
    long timeout_s = 0;
    const cfg_opt_t opts[] = {
        {"--node", "BICKY_PERMISSION_ENDPOINT", CFG_STR, &node, 0, 0,
         "the owning node's ROUTER endpoint (required)"},
        {"--conversation", "BICKY_CONVERSATION_ID", CFG_STR, &conversation, 0, 0,
         "the conversation's UUID (required)"},
        {"--timeout-s", "BICKY_PERMISSION_TIMEOUT_S", CFG_INT, &timeout_s, 0, 86400,
         "bound on waiting for one decision; 0 waits"},
        {"--log-level", "BICKY_LOG_LEVEL", CFG_STR, &level_name, 0, 0,
         "error|warn|notice|info|debug (logs go to stderr)"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int prc = cfg_parse("bicky-mcp-permission", "[OPTIONS]  (an MCP server on stdin/stdout)", opts,
                        argc, argv, NULL, NULL);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    log_level_t level;
    s_server_t s = {
        .mcp = {.conversation = conversation, .timeout_s = timeout_s, .out_fd = STDOUT_FILENO}};
    if (log_level_parse(level_name, &level) < 0) {
        fprintf(stderr, "bicky-mcp-permission: invalid --log-level '%s'\n", level_name);
        return 2;
    }
    if (!node || !*node || !conversation || util_uuid_parse(conversation, s.mcp.conv_id) < 0) {
        fprintf(stderr, "bicky-mcp-permission: --node and --conversation (a UUID) are required\n");
        return 2;
    }
    log_init("mcp-permission", level);
    util_signals_install();
    zsys_set_logstream(stderr); /* czmq must never write to stdout: it is the protocol */
    return s_run(&s, node);
}
