/*  node_claude_ask — the MCP permission channel of the claude-code strategy
    (permission_channel = mcp). The CLI starts bicky-mcp-permission (found
    next to the running bicky-node, or --mcp-permission-bin), which asks this
    node over its ROUTER: op permission.ask, envelope conv_id, no team, body
    {conversation_id, tool_name, input, tool_use_id?}. The question joins the
    conversation's running claude-code turn exactly like a can_use_tool
    prompt of the stdio channel (rules first, else a durable request and
    waiting_for_permission), and the request's ZeroMQ identity and req_id
    stay with the call until the decision is stored; then the answer is the
    CLI's documented behavior JSON. Loop thread only. */
#define LOG_MODULE "node_claude"
#include "common/log.h"
#include "common/util.h"
#include "node/strategies/node_strategies.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_ASK_MAX AGENT_CLAUDE_MAX_PENDING /* open permission.ask per run */

void node_claude_mcp_init(node_agents_t *agents)
{
    const char *want = agents->node->cfg->mcp_permission_bin;
    char exe[PATH_MAX];
    agents->mcp_bin[0] = '\0';
    if (want && *want) {
        if (!realpath(want, agents->mcp_bin)) {
            LOG_W("--mcp-permission-bin not found path=%s", want);
            snprintf(agents->mcp_bin, sizeof agents->mcp_bin, "%s", want);
        }
        return;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        snprintf(agents->mcp_bin, sizeof agents->mcp_bin, "%.*s/bicky-mcp-permission",
                 PATH_MAX - 32, exe);
    }
}

void node_claude_ask_reply(
    node_run_t *run, node_call_t *c, bool allow, const json_t *input, const char *msg)
{
    json_t *j = allow ? json_pack("{s:s, s:O}", "behavior", "allow", "updatedInput",
                                  json_is_object(input) ? input : c->args)
                      : json_pack("{s:s, s:s}", "behavior", "deny", "message",
                                  msg ? msg : "Permission denied");
    char *body = j ? node_json_text(j) : NULL;
    json_decref(j);
    if (!body) {
        node_reply_busy(node_run_node(run), &c->ask, "out of memory");
        return;
    }
    node_reply(node_run_node(run), &c->ask, 200, body, 0);
    free(body);
}

/* The run of conv that may ask on the MCP channel now, or NULL. */
static node_run_t *s_asking_run(node_t *node, const uint8_t conv[16])
{
    node_actor_t *a = node_actors_find(node->actors, conv);
    node_run_t *run = a && a->turns && a->turns->running ? a->turns->run : NULL;
    if (!run || !run->cc || !run->cc->proc || run->phase != NODE_RUN_CLAUDE ||
        a->turns->end_ready != NODE_END_NONE || !run->strategy ||
        run->strategy->permission_channel != CFG_PERM_MCP) {
        return NULL;
    }
    size_t open = 0;
    for (size_t i = 0; i < run->ncalls; i++) {
        open += run->calls[i].ask != NULL;
    }
    return open < S_ASK_MAX ? run : NULL;
}

/* Validates the question; NULL or the bad field. */
static const char *s_check(const node_req_t *req, const char **tool, const json_t **input)
{
    const char *conv = NULL, *tuid = NULL;
    uint8_t raw[16];
    if (!req->has_conv || util_uuid_is_nil(req->conv_id)) {
        return "conversation_id";
    }
    int rc = node_arg_str(req->args, "conversation_id", 36, 36, &conv);
    if (rc < 0 || (rc == 1 && (util_uuid_parse(conv, raw) < 0 || memcmp(raw, req->conv_id, 16)))) {
        return "conversation_id";
    }
    if (node_arg_str(req->args, "tool_name", 1, 128, tool) != 1) {
        return "tool_name";
    }
    if (node_arg_object(req->args, "input", input) != 1) {
        return "input";
    }
    return node_arg_str(req->args, "tool_use_id", 1, 128, &tuid) < 0 ? "tool_use_id" : NULL;
}

void node_op_perm_ask(node_t *node, node_req_t *req)
{
    const char *tool = NULL, *tuid = NULL;
    const json_t *input = NULL;
    const char *field = s_check(req, &tool, &input);
    if (field) {
        node_reply_field(node, &req, field);
        return;
    }
    node_run_t *run = s_asking_run(node, req->conv_id);
    if (!run) {
        node_reply_error(node, &req, 409, "conflict",
                         "no claude-code turn of this conversation asks on the mcp channel here");
        return;
    }
    node_arg_str(req->args, "tool_use_id", 1, 128, &tuid);
    LOG_I("permission asked over mcp tool=%s", tool);
    /* The names point into req->args, which the call keeps alive until it is answered. */
    if (node_claude_add_call(run, tuid, tool, input, NULL, req) < 0) {
        node_reply_busy(node, &req, "out of memory");
    }
}
