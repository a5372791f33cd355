/*  agent_claude_box — the claude CLI's sandbox (docs/tools.md, "Sandbox"): its
    working directory and HOME writable, its install read-only, and no network of
    its own. The CLI needs one thing outside: the node's model relay. bicky-fwd
    (next to bicky-exec) runs first in the sandbox, listens on 127.0.0.1:<the
    relay's port> there and forwards to the relay's unix socket, bound in read-only;
    Postgres, the node's sockets and the rest of the host's network stay out of
    reach. There is no fallback to the node's network: without that socket or
    bicky-fwd, or with a permission endpoint (channel mcp) that is not a unix socket
    file, the CLI is not run and the reason says why. Loop thread; reads the file
    system only to find programs. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_FWD "bicky-fwd"

int agent_claude_fwd_path(const agent_guard_t *g, char out[PATH_MAX])
{
    const char *slash = g ? strrchr(g->shim, '/') : NULL;
    if (!slash) {
        out[0] = '\0';
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

/* Whether the sandboxed CLI can be given the relay-only network: 0 with bicky-fwd's
   path in fwd and the relay's port in *port, else -1 with the cause and its fix in err. */
static int
s_net(const agent_claude_params_t *p, char fwd[PATH_MAX], int *port, char *err, size_t errlen)
{
    const char *ep = p->mcp.endpoint;
    *port = s_relay_port(p->base_url);
    if (!*port || !p->relay_unix || !*p->relay_unix) {
        snprintf(err, errlen,
                 "the CLI's sandbox has no network but the model relay's unix socket, and the "
                 "relay has none (see the node's log at start); the CLI was not run");
        return -1;
    }
    if (agent_claude_fwd_path(p->guard, fwd) != 0) {
        snprintf(err, errlen,
                 "the CLI's sandbox reaches the model relay only through " S_FWD
                 ", which is missing next to bicky-exec (%.80s); install it there (or set "
                 "sandbox = false); the CLI was not run",
                 fwd);
        return -1;
    }
    if (p->permission_channel == AGENT_CLAUDE_PERM_MCP && p->mcp.command &&
        (!ep || strncmp(ep, "ipc:///", 7) != 0)) {
        snprintf(err, errlen,
                 "channel mcp: the permission endpoint %.60s is not a unix socket file, and the "
                 "CLI's sandbox has no network to reach it; the CLI was not run",
                 ep ? ep : "(none)");
        return -1;
    }
    return 0;
}

int agent_claude_box_check(const agent_claude_params_t *p, char *err, size_t errlen)
{
    char fwd[PATH_MAX];
    int port;
    bool boxed = p->sandbox && p->sandbox->enabled && !p->sandbox_off && p->sandbox->bwrap[0] &&
                 p->guard && p->guard->shim[0];
    if (!boxed || s_net(p, fwd, &port, err, errlen) == 0) {
        return 0;
    }
    LOG_W("claude CLI not run: %s", err);
    return -1;
}

char **agent_claude_box(const agent_claude_params_t *p, char **argv)
{
    char inst[PATH_MAX], fwd[PATH_MAX], port[16], why[512];
    int relay_port;
    if (s_net(p, fwd, &relay_port, why, sizeof why) < 0) {
        LOG_E("refusing to run the claude CLI with the node's network: %s", why);
        return NULL; /* never the node's network: agent_claude_box_check said why */
    }
    if (agent_sandbox_install_dir(argv[0], inst) < 0) {
        return NULL;
    }
    agent_sandbox_spec_t spec = {.bwrap = p->sandbox->bwrap,
                                 .rw = {p->cwd, p->home},
                                 .ro = {inst, fwd, p->relay_unix},
                                 .chdir = p->cwd,
                                 .network = false,
                                 .tmp_mb = p->rlimits.tmp_mb};
    if (p->permission_channel == AGENT_CLAUDE_PERM_MCP && p->mcp.command) {
        spec.ro[3] = p->mcp.command;
        spec.rw[2] = p->mcp.endpoint + 6; /* ipc:///path: the socket file (s_net) */
    }
    snprintf(port, sizeof port, "%d", relay_port);
    char **v = s_behind_fwd(fwd, port, (char *)p->relay_unix, argv);
    char **out = v ? agent_sandbox_argv(&spec, v) : NULL;
    free(v);
    return out;
}
