/*  test_agent_claude_spawn — what the CLI's process gets: a stand-in for the
    CLI (a shell script that dumps its environment, then waits on stdin like
    the CLI) shows that the environment is the allow-list plus the relay's
    URL and a run token: no provider key (not even the node's own
    ANTHROPIC_API_KEY), no database URL, no BICKY_* variable, no proxy URL;
    the token is live while the run is and dies when it ends; params.env
    cannot put the key back or point the CLI elsewhere; without a relay a
    key is refused. In the sandbox the CLI has no network but the relay's unix
    socket through bicky-fwd: without that socket, without bicky-fwd, or with a
    channel mcp endpoint that is not a socket file, it is not run at all (never
    with the node's network), and the reason says why. */
#include "tests/fixtures/claude_cli.h"

#include <criterion/criterion.h>
#include <sys/stat.h>

#define S_KEY "sk-real-key-SPAWN-MARKER"

static zloop_t *s_loop;
static agent_relay_t *s_relay;
static agent_claude_t *s_cc;
static cc_dirs_t s_dirs;
static cc_rec_t s_rec;
static char s_script[PATH_MAX + 32], s_dump[PATH_MAX + 32];

static void s_setup(void)
{
    util_signals_install();
    cc_dirs_make(&s_dirs);
    /* What a node may hold in its environment; none of it may reach the CLI. */
    setenv("ANTHROPIC_API_KEY", "sk-node-env-MARKER", 1);
    setenv("ANTHROPIC_AUTH_TOKEN", "tok-node-env-MARKER", 1);
    setenv("DATABASE_URL", "postgres://u:pw-MARKER@db/x", 1);
    setenv("BICKY_DATABASE_URL", "host=db password=pw-MARKER", 1);
    setenv("HTTPS_PROXY", "http://u:proxy-MARKER@proxy:3128", 1);
    s_loop = zloop_new();
    s_relay = agent_relay_new(NULL);
    cr_assert_not_null(s_relay);
    s_cc = agent_claude_new(s_loop, s_relay);
    cr_assert_not_null(s_cc);
    memset(&s_rec, 0, sizeof s_rec);
    s_rec.loop = s_loop;
    snprintf(s_dump, sizeof s_dump, "%s/env.txt", s_dirs.home);
    snprintf(s_script, sizeof s_script, "%s/fake-claude", s_dirs.root);
    FILE *f = fopen(s_script, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\nenv > \"$HOME/env.tmp\" && mv \"$HOME/env.tmp\" \"$HOME/env.txt\"\n"
               "cat > /dev/null\n");
    fclose(f);
    chmod(s_script, 0755);
}

static void s_teardown(void)
{
    agent_claude_destroy(&s_cc);
    cr_assert_null(s_cc);
    agent_relay_destroy(&s_relay);
    cr_assert_null(s_relay);
    zloop_destroy(&s_loop);
    cc_rm_rf(s_dirs.root);
}

TestSuite(agent_claude_spawn, .init = s_setup, .fini = s_teardown, .timeout = 60);

static agent_claude_params_t s_params(void)
{
    return (agent_claude_params_t){.command = s_script,
                                   .cwd = s_dirs.wd,
                                   .home = s_dirs.home,
                                   .prompt = "hi",
                                   .base_url = "https://model.example",
                                   .api_key = S_KEY};
}

static bool s_dumped(void *arg)
{
    return access(s_dump, R_OK) == 0;
}

static char *s_read_dump(void)
{
    FILE *f = fopen(s_dump, "r");
    cr_assert_not_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The value of NAME in the dump (a static buffer), or NULL. */
static const char *s_var(const char *env, const char *name)
{
    static char value[512];
    size_t len = strlen(name);
    for (const char *l = env; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, name, len) == 0 && l[len] == '=') {
            size_t vlen = strcspn(l + len + 1, "\n");
            snprintf(value, sizeof value, "%.*s", (int)vlen, l + len + 1);
            return value;
        }
    }
    return NULL;
}

Test(agent_claude_spawn, the_cli_gets_the_relay_and_a_run_token_only)
{
    agent_claude_params_t p = s_params();
    char err[512] = "";
    s_rec.run = agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, s_dumped, NULL, 10000);
    cr_assert_eq(agent_relay_live(s_relay), 1, "the run's token is live while it runs");
    const char *env = s_read_dump();
    cr_assert_null(strstr(env, "MARKER"), "no secret of the node or the run:\n%s", env);
    cr_assert_null(strstr(env, "model.example"), "the real upstream stays in the relay");
    cr_assert_str_eq(s_var(env, "ANTHROPIC_BASE_URL"), agent_relay_url(s_relay));
    const char *token = s_var(env, "ANTHROPIC_API_KEY");
    cr_assert_not_null(token);
    cr_assert_eq(strlen(token), AGENT_RELAY_TOKEN_LEN);
    cr_assert_eq(strspn(token, "0123456789abcdef"), AGENT_RELAY_TOKEN_LEN);
    char saved[AGENT_RELAY_TOKEN_LEN + 1];
    snprintf(saved, sizeof saved, "%s", token);
    cr_assert_null(s_var(env, "ANTHROPIC_AUTH_TOKEN"));
    cr_assert_null(s_var(env, "DATABASE_URL"));
    cr_assert_null(s_var(env, "HTTPS_PROXY"));
    cr_assert_null(strstr(env, "BICKY_"), "%s", env);
    cr_assert_str_eq(s_var(env, "HOME"), s_dirs.home);
    agent_claude_cancel(&s_rec.run);
    cr_assert_eq(agent_relay_live(s_relay), 0, "the token dies with the run");
    /* A second run gets a token of its own. */
    unlink(s_dump);
    s_rec.run = agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, s_dumped, NULL, 10000);
    cr_assert_str_neq(s_var(s_read_dump(), "ANTHROPIC_API_KEY"), saved);
    agent_claude_cancel(&s_rec.run);
    cr_assert_eq(agent_relay_live(s_relay), 0);
}

Test(agent_claude_spawn, a_run_that_fails_loses_its_token)
{
    agent_claude_params_t p = s_params();
    p.command = "/bin/false";
    char err[512] = "";
    s_rec.run = agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cr_assert_eq(agent_relay_live(s_relay), 1);
    cc_drive(s_loop, cc_rec_ended, &s_rec, 10000);
    cr_assert(s_rec.failed);
    cr_assert_eq(agent_relay_live(s_relay), 0);
    /* Spawn failures and bad upstreams leave no token behind either. */
    p.command = "/nonexistent/claude";
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    p = s_params();
    p.base_url = "ftp://model.example";
    cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err));
    cr_assert_not_null(strstr(err, "relay"), "%s", err);
    cr_assert_eq(agent_relay_live(s_relay), 0);
}

Test(agent_claude_spawn, params_env_cannot_bring_secrets_back)
{
    const char *names[] = {"ANTHROPIC_API_KEY=" S_KEY, "ANTHROPIC_BASE_URL=http://evil",
                           "ANTHROPIC_AUTH_TOKEN=x", "BICKY_DATABASE_URL=x", "DATABASE_URL=x"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *env[] = {names[i], NULL};
        agent_claude_params_t p = s_params();
        p.env = env;
        char err[512] = "";
        cr_assert_null(agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err),
                       "%s accepted", names[i]);
        cr_assert_not_null(strstr(err, "environment entry"), "%s", err);
    }
    cr_assert_eq(agent_relay_live(s_relay), 0);
    /* Other entries still go through. */
    const char *ok[] = {"MY_SETTING=1", NULL};
    agent_claude_params_t p = s_params();
    p.env = ok;
    char err[512] = "";
    s_rec.run = agent_claude_start(s_cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, s_dumped, NULL, 10000);
    cr_assert_str_eq(s_var(s_read_dump(), "MY_SETTING"), "1");
    agent_claude_cancel(&s_rec.run);
}

Test(agent_claude_spawn, without_a_relay_no_key_is_given)
{
    agent_claude_t *bare = agent_claude_new(s_loop, NULL);
    cr_assert_not_null(bare);
    agent_claude_params_t p = s_params();
    char err[512] = "";
    cr_assert_null(agent_claude_start(bare, &p, &cc_callbacks, &s_rec, err, sizeof err));
    cr_assert_not_null(strstr(err, "relay"), "%s", err);
    p.api_key = NULL; /* a keyless local model: the CLI goes there directly */
    s_rec.run = agent_claude_start(bare, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, s_dumped, NULL, 10000);
    const char *env = s_read_dump();
    cr_assert_str_eq(s_var(env, "ANTHROPIC_BASE_URL"), "https://model.example");
    cr_assert_null(s_var(env, "ANTHROPIC_API_KEY"));
    agent_claude_cancel(&s_rec.run);
    agent_claude_destroy(&bare);
    cr_assert_null(bare);
}

/* A file at dir/name that runs (0755) and does what body says. */
static void s_exe(const char *dir, const char *name, const char *body)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
}

/* Starts p on cc: must fail with why in err, run nothing, leave no token. */
static void
s_refused(agent_claude_t *cc, agent_relay_t *relay, agent_claude_params_t *p, const char *why)
{
    char err[512] = "";
    cr_assert_null(agent_claude_start(cc, p, &cc_callbacks, &s_rec, err, sizeof err),
                   "started although: %s", why);
    cr_assert_not_null(strstr(err, why), "%s", err);
    cr_assert_not_null(strstr(err, "not run"), "%s", err);
    cr_assert_eq(agent_relay_live(relay), 0);
    cr_assert_neq(access(s_dump, F_OK), 0, "the CLI ran");
}

Test(agent_claude_spawn, a_sandboxed_cli_never_keeps_the_node_network)
{
    /* bicky-exec stand-ins in a directory of their own: never run below. */
    char bin[PATH_MAX + 16], shim[PATH_MAX + 32], sock[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/bin", s_dirs.root);
    cr_assert_eq(mkdir(bin, 0700), 0);
    s_exe(bin, "bicky-exec", "exit 99");
    snprintf(shim, sizeof shim, "%s/bicky-exec", bin);
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, shim, NULL), 0);
    agent_sandbox_t sb = {.bwrap = "/usr/bin/bwrap", .enabled = true};
    snprintf(sock, sizeof sock, "%s/relay.sock", s_dirs.root);
    agent_relay_t *relay = agent_relay_new(&(agent_relay_cfg_t){.unix_path = sock});
    cr_assert_not_null(relay);
    cr_assert_str_eq(agent_relay_unix_path(relay), sock);
    agent_claude_t *cc = agent_claude_new(s_loop, relay);
    cr_assert_not_null(cc);
    agent_claude_params_t p = s_params();
    p.guard = &g;
    p.sandbox = &sb;
    s_refused(cc, relay, &p, "bicky-fwd, which is missing next to bicky-exec");
    s_exe(bin, "bicky-fwd", "exit 99");
    /* The suite's relay has no unix socket. */
    s_refused(s_cc, s_relay, &p, "the relay has none");
    p.permission_channel = AGENT_CLAUDE_PERM_MCP;
    /* TCP, and an abstract socket (it lives in the network namespace): out of reach. */
    const char *eps[] = {"tcp://127.0.0.1:7110", "ipc://@/bicky-abstract"};
    for (size_t i = 0; i < 2; i++) {
        p.mcp = (agent_claude_mcp_t){.command = "/bin/true",
                                     .endpoint = eps[i],
                                     .conversation_id = "0c5f4e52-4a3b-4f0e-9d1a-7e2b8c9d0a1b"};
        s_refused(cc, relay, &p, "channel mcp");
    }
    /* The strategy's opt-out (sandbox = false) is not this check's business: the run
       goes to bicky-exec (the stand-in, which fails). */
    p = s_params();
    p.guard = &g;
    p.sandbox = &sb;
    p.sandbox_off = true;
    char err[512] = "";
    s_rec.run = agent_claude_start(cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, cc_rec_ended, &s_rec, 10000);
    agent_claude_destroy(&cc);
    agent_relay_destroy(&relay);
}

Test(agent_claude_spawn, a_sandboxed_cli_reaches_the_relay_through_bicky_fwd)
{
    agent_sandbox_t sb;
    agent_sandbox_init(&sb, AGENT_SANDBOX_AUTO, NULL);
    if (!sb.enabled) {
        cr_skip_test("bwrap is not installed (Debian package bubblewrap)");
    }
    agent_guard_t g;
    cr_assert_eq(agent_guard_init(&g, BICKY_BIN_DIR "/bicky-exec", NULL), 0);
    char fwd[PATH_MAX], sock[PATH_MAX + 32];
    cr_assert_eq(agent_claude_fwd_path(&g, fwd), 0, "no bicky-fwd next to %s", g.shim);
    snprintf(sock, sizeof sock, "%s/relay.sock", s_dirs.root);
    agent_relay_t *relay = agent_relay_new(&(agent_relay_cfg_t){.unix_path = sock});
    cr_assert_not_null(relay);
    agent_claude_t *cc = agent_claude_new(s_loop, relay);
    agent_claude_params_t p = s_params();
    p.guard = &g;
    p.sandbox = &sb;
    char err[512] = "";
    s_rec.run = agent_claude_start(cc, &p, &cc_callbacks, &s_rec, err, sizeof err);
    cr_assert_not_null(s_rec.run, "%s", err);
    cc_drive(s_loop, s_dumped, NULL, 20000);
    cr_assert_str_eq(s_var(s_read_dump(), "ANTHROPIC_BASE_URL"), agent_relay_url(relay));
    agent_claude_cancel(&s_rec.run);
    agent_claude_destroy(&cc);
    agent_relay_destroy(&relay);
}
