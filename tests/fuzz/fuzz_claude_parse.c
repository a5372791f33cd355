/*  fuzz_claude_parse — the claude CLI's stdout (stream-json, one JSON object
    per line) through agent_claude_parse_line, line by line on one run as
    agent_claude_io.c feeds it, until a line is malformed (the run fails
    there); then the kept result line through agent_claude_result_read, as
    on_done gets it. The run has no pipes: control responses it would write
    are refused, as on a CLI that has gone. */
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz", LOG_LEVEL_ERROR); /* unanswerable control requests log warnings */
    return 0;
}

static void s_on_init(void *arg, const char *session_id)
{
    FUZZ_CHECK(strlen(session_id) < SIZE_MAX);
}

static void s_on_text(void *arg, const char *text, size_t len)
{
    FUZZ_CHECK(len > 0 && text[len] == 0);
}

static void s_on_tool_started(void *arg, const char *id, const char *name, json_t *input)
{
    FUZZ_CHECK(id && name && input);
}

static void s_on_tool_completed(void *arg, const char *id, const char *content, bool is_error)
{
    FUZZ_CHECK(id && strlen(content) < SIZE_MAX);
}

static void s_on_permission(void *arg, const agent_claude_perm_t *req)
{
    FUZZ_CHECK(req->request_id[0] && json_is_object(req->input) && req->tool_name &&
               req->tool_use_id && req->description && req->blocked_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent_claude_run_t *run = calloc(1, sizeof *run);
    run->pid = -1;
    run->in_fd = run->out_fd = run->err_fd = run->pidfd = -1;
    run->pending = json_object();
    run->cb =
        (agent_claude_callbacks_t){.on_init = s_on_init,
                                   .on_text = s_on_text,
                                   .on_tool_started = s_on_tool_started,
                                   .on_tool_completed = s_on_tool_completed,
                                   .on_permission = size && data[0] & 1 ? s_on_permission : NULL};
    const char *p = (const char *)data, *end = p + size;
    char err[256];
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *le = lf ? lf : end;
        err[0] = 0;
        if (agent_claude_parse_line(run, p, (size_t)(le - p), err, sizeof err) < 0) {
            FUZZ_CHECK(err[0]);
            break;
        }
        p = le + 1;
    }
    if (run->result) {
        agent_claude_result_t res;
        agent_claude_result_read(run->result, 0, &res);
        FUZZ_CHECK(res.text && res.session_id && res.subtype && res.stop_reason);
    }
    json_decref(run->result);
    json_decref(run->pending);
    free(run->q);
    free(run);
    return 0;
}
