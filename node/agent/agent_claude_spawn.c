/*  agent_claude_spawn — the CLI's argv (an array, never a shell string), its
    environment (a short allow-list of the node's variables plus the offline
    settings; nothing else of the node's environment leaks into the CLI and
    its tools: the model key stays in the node's relay, agent_relay.c), and
    posix_spawn in a new process group with pipes for
    stdin/stdout/stderr. Loop thread only; nothing here blocks. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_TOOL_NAME 128
#define S_MAX_ARGS      96 /* argv entries of one CLI start, shim included */

/* The node's variables a CLI may need (locale, CA bundles). No proxy: the CLI
   talks to the node's model relay on loopback only, and a proxy URL may carry
   credentials; the relay uses the node's proxy settings itself. */
static const char *const s_passthrough[] = {
    "PATH", "LANG",    "LC_ALL", "LC_CTYPE",      "TZ",           "TMPDIR",
    "USER", "LOGNAME", "SHELL",  "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
    NULL,
};

/* Names params.env may not set: the relay's URL and token (a strategy could
   otherwise bypass the relay) and the node's secrets. */
static bool s_env_reserved(const char *entry, size_t name_len)
{
    static const char *const prefixes[] = {"ANTHROPIC_", "BICKY_", "DATABASE_URL", NULL};
    for (size_t i = 0; prefixes[i]; i++) {
        size_t n = strlen(prefixes[i]);
        if (name_len >= n && strncmp(entry, prefixes[i], n) == 0) {
            return true;
        }
    }
    return false;
}

/* Fixed settings: no traffic but the model API, no telemetry, few retries. */
static const char *const s_offline[] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    "DISABLE_TELEMETRY=1",
    "DISABLE_ERROR_REPORTING=1",
    "DISABLE_AUTOUPDATER=1",
    "CLAUDE_CODE_MAX_RETRIES=1",
    NULL,
};

typedef struct {
    char **v;   /* NULL-terminated once non-empty */
    size_t n;   /* entries */
    size_t cap; /* capacity (entries, not counting the NULL) */
    bool oom;   /* an allocation failed */
} s_strv_t;

static void s_strv_free(s_strv_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void s_strv_take(s_strv_t *s, char *item)
{
    if (!item || s->oom) {
        free(item);
        s->oom = true;
        return;
    }
    if (s->n + 1 >= s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(item);
            s->oom = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = item;
    s->v[s->n] = NULL;
}

static void s_strv_push(s_strv_t *s, const char *item)
{
    s_strv_take(s, strdup(item));
}

/* Sets NAME=value in an environment list, replacing an earlier NAME. */
static void s_env_set(s_strv_t *env, const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t name_len = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp(env->v[i], entry, name_len) == 0 && env->v[i][name_len] == '=') {
            char *copy = strdup(entry);
            if (!copy) {
                env->oom = true;
                return;
            }
            free(env->v[i]);
            env->v[i] = copy;
            return;
        }
    }
    s_strv_push(env, entry);
}

static void s_env_setf(s_strv_t *env, const char *name, const char *value)
{
    char *entry = NULL;
    if (asprintf(&entry, "%s=%s", name, value) < 0) {
        env->oom = true;
        return;
    }
    s_env_set(env, entry);
    free(entry);
}

static bool s_env_name_ok(const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry) {
        return false;
    }
    if (s_env_reserved(entry, (size_t)(eq - entry))) {
        return false;
    }
    for (const char *p = entry; p < eq; p++) {
        bool alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_';
        if (!alpha && !(p > entry && *p >= '0' && *p <= '9')) {
            return false;
        }
    }
    return true;
}

static int s_build_env(const agent_claude_params_t *p, s_strv_t *env, char *err, size_t errlen)
{
    for (size_t i = 0; s_passthrough[i]; i++) {
        const char *value = getenv(s_passthrough[i]);
        if (value) {
            s_env_setf(env, s_passthrough[i], value);
        }
    }
    if (!getenv("PATH")) {
        s_env_set(env, "PATH=/usr/local/bin:/usr/bin:/bin");
    }
    for (size_t i = 0; s_offline[i]; i++) {
        s_env_set(env, s_offline[i]);
    }
    s_env_setf(env, "HOME", p->home);
    if (p->base_url && *p->base_url) {
        s_env_setf(env, "ANTHROPIC_BASE_URL", p->base_url);
    }
    if (p->api_key && *p->api_key) {
        s_env_setf(env, "ANTHROPIC_API_KEY", p->api_key);
    }
    for (size_t i = 0; p->env && p->env[i]; i++) {
        if (!s_env_name_ok(p->env[i])) {
            snprintf(err, errlen,
                     "bad environment entry #%zu (expected NAME=value, not ANTHROPIC_*, "
                     "BICKY_* or DATABASE_URL)",
                     i);
            return -1;
        }
        s_env_set(env, p->env[i]);
    }
    return 0;
}

/* Joins a NULL-terminated tool list with commas; NULL with err on a bad name. */
static char *s_join_tools(const char *const *tools, char *err, size_t errlen)
{
    size_t total = 1;
    for (size_t i = 0; tools[i]; i++) {
        size_t len = strlen(tools[i]);
        if (len == 0 || len > S_MAX_TOOL_NAME || strpbrk(tools[i], ", \t\r\n")) {
            snprintf(err, errlen, "bad tool name #%zu", i);
            return NULL;
        }
        total += len + 1;
    }
    char *out = calloc(1, total);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; tools[i]; i++) {
        if (i) {
            strcat(out, ",");
        }
        strcat(out, tools[i]);
    }
    return out;
}

static int
s_push_tools(s_strv_t *argv, const char *flag, const char *const *tools, char *err, size_t errlen)
{
    if (!tools) {
        return 0;
    }
    char *joined = s_join_tools(tools, err, errlen);
    if (!joined) {
        return -1;
    }
    s_strv_push(argv, flag);
    s_strv_take(argv, joined);
    return 0;
}

/* The --mcp-config JSON naming bicky-mcp-permission as server "perm". */
static char *s_mcp_config(const agent_claude_mcp_t *m)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", m->timeout_s > 0 ? m->timeout_s : 0);
    json_t *cfg =
        json_pack("{s:{s:{s:s, s:s, s:[s,s,s,s,s,s]}}}", "mcpServers", AGENT_CLAUDE_MCP_SERVER,
                  "type", "stdio", "command", m->command, "args", "--node", m->endpoint,
                  "--conversation", m->conversation_id, "--timeout-s", timeout);
    char *text = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
    json_decref(cfg);
    return text;
}

static int
s_push_permission(s_strv_t *argv, const agent_claude_params_t *p, char *err, size_t errlen)
{
    s_strv_push(argv, "--permission-prompt-tool");
    if (p->permission_channel != AGENT_CLAUDE_PERM_MCP) {
        s_strv_push(argv, "stdio");
        return 0;
    }
    const agent_claude_mcp_t *m = &p->mcp;
    if (!m->command || m->command[0] != '/' || !m->endpoint || !*m->endpoint ||
        !m->conversation_id || !*m->conversation_id) {
        snprintf(err, errlen, "channel mcp needs mcp.command (absolute), endpoint, conversation");
        return -1;
    }
    s_strv_push(argv, "mcp__" AGENT_CLAUDE_MCP_SERVER "__approval_prompt");
    s_strv_push(argv, "--mcp-config");
    s_strv_take(argv, s_mcp_config(m));
    return 0;
}

static int s_push_session(s_strv_t *argv, const agent_claude_params_t *p, char *err, size_t errlen)
{
    const char *flag = p->resume_session_id ? "--resume" : "--session-id";
    const char *id = p->resume_session_id ? p->resume_session_id : p->session_id;
    if (!id) {
        return 0;
    }
    if (!agent_claude_session_id_valid(id)) {
        snprintf(err, errlen, "bad session id for %s", flag);
        return -1;
    }
    s_strv_push(argv, flag);
    s_strv_push(argv, id);
    return 0;
}

static int s_build_argv(const agent_claude_params_t *p, s_strv_t *argv, char *err, size_t errlen)
{
    static const char *const fixed[] = {
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--strict-mcp-config",
        NULL,
    };
    s_strv_push(argv, p->command && *p->command ? p->command : "claude");
    for (size_t i = 0; fixed[i]; i++) {
        s_strv_push(argv, fixed[i]);
    }
    const char *sources = p->setting_sources ? p->setting_sources : "user";
    if (*sources) {
        s_strv_push(argv, "--setting-sources");
        s_strv_push(argv, sources);
    }
    if (s_push_permission(argv, p, err, errlen) < 0 || s_push_session(argv, p, err, errlen) < 0 ||
        s_push_tools(argv, "--tools", p->tools, err, errlen) < 0 ||
        s_push_tools(argv, "--allowedTools", p->allowed_tools, err, errlen) < 0) {
        return -1;
    }
    if (p->model && *p->model) {
        s_strv_push(argv, "--model");
        s_strv_push(argv, p->model);
    }
    if (p->system_prompt && *p->system_prompt) {
        s_strv_push(argv, p->replace_system_prompt ? "--system-prompt" : "--append-system-prompt");
        s_strv_push(argv, p->system_prompt);
    }
    if (p->max_turns > 0) {
        char turns[32];
        snprintf(turns, sizeof turns, "%ld", p->max_turns);
        s_strv_push(argv, "--max-turns");
        s_strv_push(argv, turns);
    }
    return 0;
}

static int s_check_dir(const char *what, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (!path || path[0] != '/') {
        snprintf(err, errlen, "%s must be an absolute path", what);
        return -1;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s %s is not a directory", what, path);
        return -1;
    }
    return 0;
}

char *agent_claude_user_line(const agent_claude_params_t *p, char *err, size_t errlen)
{
    json_t *content = NULL;
    if (p->content && (json_is_array(p->content) || json_is_string(p->content))) {
        content = json_deep_copy(p->content);
    } else if (p->prompt) {
        content = json_string(p->prompt);
    }
    if (!content) {
        snprintf(err, errlen, "no prompt (or prompt not valid UTF-8)");
        return NULL;
    }
    json_t *line = json_pack("{s:s, s:{s:s, s:o}}", "type", "user", "message", "role", "user",
                             "content", content);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (!text) {
        snprintf(err, errlen, "out of memory");
    }
    return text;
}

typedef struct {
    int in[2], out[2], err[2]; /* pipes: [0] read end, [1] write end */
} s_pipes_t;

static void s_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void s_pipes_close(s_pipes_t *pp)
{
    int *fds = &pp->in[0];
    for (int i = 0; i < 6; i++) {
        s_close_fd(&fds[i]);
    }
}

static int s_pipes_open(s_pipes_t *pp)
{
    memset(pp, 0xff, sizeof *pp);
    if (pipe2(pp->in, O_CLOEXEC) < 0 || pipe2(pp->out, O_CLOEXEC) < 0 ||
        pipe2(pp->err, O_CLOEXEC) < 0) {
        s_pipes_close(pp);
        return -1;
    }
    int ours[3] = {pp->in[1], pp->out[0], pp->err[0]};
    for (int i = 0; i < 3; i++) {
        int fl = fcntl(ours[i], F_GETFL);
        if (fl < 0 || fcntl(ours[i], F_SETFL, fl | O_NONBLOCK) < 0) {
            s_pipes_close(pp);
            return -1;
        }
    }
    return 0;
}

/* The program a name without a slash stands for: the first executable PATH entry
   (the node's PATH, as posix_spawnp would search). 0, or ENOENT. */
static int s_which(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    path = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        snprintf(out, outlen, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", name);
        if (access(out, X_OK) == 0) {
            return 0;
        }
        p += len + (p[len] == ':');
    }
    return ENOENT;
}

/* The argv to spawn: argv, or through bicky-exec (with the limits) and in the sandbox.
   prog (PATH_MAX bytes) holds the resolved program and lim (AGENT_SANDBOX_LIMITS) the
   limits, both pointed to by the result; *boxed_p and *guarded_p are
   allocated here (the caller frees them after the spawn). NULL with an errno in *rc. */
static char **s_wrap(const agent_claude_params_t *p,
                     char **argv,
                     char *prog,
                     char *lim,
                     char ***boxed_p,
                     char ***guarded_p,
                     int *rc)
{
    const agent_guard_t *guard = p->guard;
    bool boxed = p->sandbox && p->sandbox->enabled && !p->sandbox_off;
    if (boxed && (!p->sandbox->bwrap[0] || !guard || !guard->shim[0])) {
        *rc = ENOSYS; /* required, but bwrap (or bicky-exec) is missing: no fallback */
        return NULL;
    }
    if (!guard || !guard->shim[0]) {
        return argv;
    }
    *rc = strchr(argv[0], '/') ? (access(argv[0], X_OK) == 0 ? 0 : errno)
                               : s_which(argv[0], prog, PATH_MAX);
    if (*rc != 0) {
        return NULL;
    }
    char *first = argv[0];
    argv[0] = strchr(first, '/') ? first : prog;
    char **inner = boxed ? (*boxed_p = agent_claude_box(p, argv)) : argv;
    size_t n = 0;
    while (inner && inner[n]) {
        n++;
    }
    *guarded_p = inner ? calloc(n + AGENT_GUARD_EXTRA_ARG + 1, sizeof **guarded_p) : NULL;
    char *const *run = NULL;
    if (*guarded_p) {
        /* No address-space limit for the CLI: V8 reserves far more address space
           than it uses (and a sanitized bicky-mcp-permission, as in the test
           builds, reserves terabytes of shadow), so RLIMIT_AS would stop the CLI
           or its permission server without bounding memory. */
        agent_sandbox_limits_t cli = p->rlimits;
        cli.memory_mb = 0;
        agent_sandbox_limits_format(&cli, lim, AGENT_SANDBOX_LIMITS);
        /* The disk quota covers both writable trees on disk: cwd and the CLI's HOME. */
        agent_guard_opts_t o = {.limits = lim, .disk_dirs = {p->cwd, p->home}};
        run = agent_guard_argv_opts(guard, &o, inner, *guarded_p, n + AGENT_GUARD_EXTRA_ARG + 1);
    }
    argv[0] = first; /* the copies keep their own pointers (prog outlives the spawn) */
    if (!run) {
        *rc = ENOMEM;
    }
    return (char **)run;
}

/* posix_spawn(p) with the pipes on fds 0–2, cwd, a new process group, an
   empty signal mask and default dispositions; through bicky-exec with a guard
   (the program is then looked up here: the shim cannot report ENOENT), in the
   sandbox when the node has one. Returns 0 or an errno. */
static int
s_spawn(pid_t *pid, const agent_claude_params_t *p, s_pipes_t *pp, char **argv, char **envp)
{
    char **boxed = NULL, **guarded = NULL, prog[PATH_MAX], lim[AGENT_SANDBOX_LIMITS];
    int rc = 0;
    argv = s_wrap(p, argv, prog, lim, &boxed, &guarded, &rc);
    if (!argv) {
        agent_sandbox_argv_free(&boxed);
        free(guarded);
        return rc ? rc : ENOMEM;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t mask, def;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, pp->in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pp->out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pp->err[1], STDERR_FILENO);
    posix_spawn_file_actions_addchdir_np(&fa, p->cwd);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigemptyset(&mask);
    sigemptyset(&def);
    int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaddset(&def, sigs[i]);
    }
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &mask);
    posix_spawnattr_setsigdefault(&at, &def);
    rc = strchr(argv[0], '/') ? posix_spawn(pid, argv[0], &fa, &at, argv, envp)
                              : posix_spawnp(pid, argv[0], &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    agent_sandbox_argv_free(&boxed);
    free(guarded);
    return rc;
}

int agent_claude_spawn(agent_claude_run_t *run,
                       const agent_claude_params_t *p,
                       char *err,
                       size_t errlen)
{
    s_strv_t argv = {0}, env = {0};
    s_pipes_t pp;
    int rc = -1;
    if (s_check_dir("cwd", p->cwd, err, errlen) < 0 ||
        s_check_dir("home", p->home, err, errlen) < 0 || s_build_argv(p, &argv, err, errlen) < 0 ||
        s_build_env(p, &env, err, errlen) < 0) {
        goto out;
    }
    if (argv.oom || env.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (agent_claude_box_check(p, err, errlen) < 0) {
        goto out; /* sandboxed, but not to be kept off the node's network: not run */
    }
    if (s_pipes_open(&pp) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    int sp = s_spawn(&run->pid, p, &pp, argv.v, env.v);
    if (sp == ENOSYS) {
        snprintf(err, errlen,
                 "the sandbox is required but bwrap (or bicky-exec) is not "
                 "installed on this node (install bubblewrap); the CLI was not run");
        s_pipes_close(&pp);
        goto out;
    }
    if (sp != 0) {
        snprintf(err, errlen, "cannot run %s: %s", argv.v[0], strerror(sp));
        s_pipes_close(&pp);
        goto out;
    }
    s_close_fd(&pp.in[0]);
    s_close_fd(&pp.out[1]);
    s_close_fd(&pp.err[1]);
    run->in_fd = pp.in[1];
    run->out_fd = pp.out[0];
    run->err_fd = pp.err[0];
    run->disk_mb = p->rlimits.disk_mb;
    run->pidfd = pidfd_open(run->pid, 0);
    if (run->pidfd >= 0) {
        fcntl(run->pidfd, F_SETFD, FD_CLOEXEC);
    }
    LOG_I("claude started pid=%d cwd=%s pidfd=%d", (int)run->pid, p->cwd, run->pidfd);
    rc = 0;
out:
    s_strv_free(&argv);
    s_strv_free(&env);
    return rc;
}
