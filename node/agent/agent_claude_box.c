/*  agent_claude_box — the claude CLI's sandbox (docs/tools.md, "Sandbox"): its
    working directory and HOME writable, its install read-only, and no network of
    its own. The CLI needs one thing outside: the node's model relay. bicky-fwd
    (next to bicky-exec) runs first in the sandbox, listens on 127.0.0.1:<the
    relay's port> there and forwards to the relay's unix socket, bound in read-only;
    Postgres, the node's sockets and the rest of the host's network stay out of
    reach. Without that socket or bicky-fwd (or for channel mcp over TCP) the CLI
    keeps the node's network, logged. Loop thread; reads the file system only to
    find programs. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_FWD "bicky-fwd"

/* bicky-fwd in the directory of bicky-exec. 0, or -1 when there is none. */
static int s_fwd_path(const agent_guard_t *g, char out[PATH_MAX])
{
    const char *slash = g ? strrchr(g->shim, '/') : NULL;
    if (!slash) {
        return -1;
    }
    snprintf(out, PATH_MAX, "%.*s/" S_FWD, (int)(slash - g->shim), g->shim);
    return access(out, X_OK);
}

/* PORT of "http://127.0.0.1:PORT" (the relay's URL); 0 for anything else. */
static int s_relay_port(const char *url)
{
    const char *prefix = "http://127.0.0.1:";
    if (!url || strncmp(url, prefix, strlen(prefix)) != 0) {
        return 0;
    }
    char *end = NULL;
    long port = strtol(url + strlen(prefix), &end, 10);
    return end && *end == '\0' && port > 0 && port < 65536 ? (int)port : 0;
}

/* argv behind `bicky-fwd --listen PORT --to SOCKET --` in a new array (strings
   borrowed; port is copied into the caller's buffer). NULL on OOM. */
static char **s_behind_fwd(char *fwd, char *port, char *sock, char **argv)
{
    size_t n = 0;
    while (argv[n]) {
        n++;
    }
    char **v = calloc(n + 7, sizeof *v);
    if (!v) {
        return NULL;
    }
    char *head[] = {fwd, "--listen", port, "--to", sock, "--"};
    memcpy(v, head, sizeof head);
    memcpy(v + 6, argv, (n + 1) * sizeof *v);
    return v;
}

char **agent_claude_box(const agent_claude_params_t *p, char **argv)
{
    char inst[PATH_MAX], fwd[PATH_MAX], port[16];
    if (agent_sandbox_install_dir(argv[0], inst) < 0) {
        return NULL;
    }
    agent_sandbox_spec_t spec = {.bwrap = p->sandbox->bwrap,
                                 .rw = {p->cwd, p->home},
                                 .ro = {inst},
                                 .chdir = p->cwd,
                                 .network = true,
                                 .tmp_mb = p->rlimits.tmp_mb};
    size_t ro = 1;
    bool mcp_tcp = false;
    if (p->permission_channel == AGENT_CLAUDE_PERM_MCP && p->mcp.command) {
        spec.ro[ro++] = p->mcp.command;
        const char *ep = p->mcp.endpoint;
        if (ep && !strncmp(ep, "ipc:///", 7)) {
            spec.rw[2] = ep + 6; /* a unix socket: reachable without the network */
        } else {
            mcp_tcp = true;
        }
    }
    int relay_port = s_relay_port(p->base_url);
    if (mcp_tcp || !p->relay_unix || !*p->relay_unix || !relay_port ||
        s_fwd_path(p->guard, fwd) != 0) {
        LOG_W("the claude CLI's sandbox keeps the node's network (%s)",
              mcp_tcp ? "channel mcp over TCP" : "no relay socket or no " S_FWD);
        return agent_sandbox_argv(&spec, argv);
    }
    spec.network = false;
    spec.ro[ro++] = fwd;
    spec.ro[ro++] = p->relay_unix;
    snprintf(port, sizeof port, "%d", relay_port);
    char **v = s_behind_fwd(fwd, port, (char *)p->relay_unix, argv);
    char **out = v ? agent_sandbox_argv(&spec, v) : NULL;
    free(v);
    return out;
}
