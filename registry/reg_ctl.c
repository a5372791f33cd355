/*  bickyctl — the admin CLI. This file: main, the command table, and the
    option handling shared by every command (global options are accepted
    before or after the command word). */
#include "registry/reg_ctl.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_OPTS 24

typedef struct {
    const char *name;    /* command word */
    const char *sub;     /* second word (token create), or NULL */
    reg_ctl_fn *fn;      /* handler */
    const char *summary; /* one line for the global help */
} s_command_t;

static const s_command_t s_commands[] = {
    {"migrate", NULL, reg_ctl_migrate, "apply pending database migrations (--database-url)"},
    {"token", "create", reg_ctl_token_create,
     "--team NAME [--name LABEL] [--admin]: new API token"},
    {"token", "list", reg_ctl_token_list, "[--team NAME]: list tokens (never the secret)"},
    {"token", "revoke", reg_ctl_token_revoke, "ID: revoke a token"},
    {"team", "limits", reg_ctl_team_limits,
     "TEAM [--rate N/s] [--burst N] …: show or set a team's limits"},
    {"nodes", NULL, reg_ctl_nodes, "nodes as the registry sees them"},
    {"ring", NULL, reg_ctl_ring, "ring epoch, members, vnodes, share of the hash space"},
    {"locate", NULL, reg_ctl_locate, "CONV_ID: the node owning a conversation"},
    {"drain", NULL, reg_ctl_drain, "NODE: take a node off the ring gracefully"},
    {"undrain", NULL, reg_ctl_undrain, "NODE: put a drained node back on the ring"},
    {"remove", NULL, reg_ctl_remove, "NODE: forget a node"},
    {"status", NULL, reg_ctl_status, "registry reachable?, epoch, nodes by state"},
    {"keys", "init", reg_ctl_keys_init, "DIR: a new cluster keys directory"},
    {"keys", "add", reg_ctl_keys_add, "ROLE NAME: a new key (--keys DIR)"},
    {"export", NULL, reg_ctl_export, "--team NAME [--after CONV_ID]: a team's data as JSON Lines"},
    {"import", NULL, reg_ctl_import,
     "--team NAME FILE | --follow URL: import an export, or mirror the old server"},
};
#define S_NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static const char *const s_global_usage =
    "[--registry LIST] [--database-url URL] [--cert FILE --keys DIR | --insecure] [--json]\n"
    "         COMMAND [ARGS]\n\n"
    "Commands:\n"
    "  migrate                apply pending database migrations (needs --database-url)\n"
    "  token create           --team NAME [--name LABEL] [--admin]: create an API token\n"
    "                         (shown once); --admin: it may also drain/undrain nodes\n"
    "  token list             [--team NAME]: list tokens (id, team, prefix, dates, admin)\n"
    "  token revoke ID        revoke a token\n"
    "  team limits TEAM       [--rate N/s] [--burst N] [--actors N] [--streams N] [--turns N]\n"
    "                         [--worktrees N] [--strategies a,b]: show or set a team's limits\n"
    "                         (`default` resets one; needs --database-url)\n"
    "  nodes                  nodes as the registry sees them\n"
    "  ring                   ring epoch, members, vnodes and share of the hash space\n"
    "  locate CONV_ID         the node that owns a conversation on the current ring\n"
    "  drain NODE             take a node off the ring gracefully\n"
    "  undrain NODE           put a drained node back on the ring\n"
    "  remove NODE            forget a node (it re-registers if it is still running)\n"
    "  status                 registry reachable?, epoch, node counts by state\n"
    "  keys init DIR          create a cluster keys directory (public/, secret/)\n"
    "  keys add ROLE NAME     new key in --keys DIR; ROLE = registry|node|gateway|admin\n"
    "  export                 --team NAME [--after CONV_ID]: conversations, messages, events\n"
    "                         as JSON Lines on stdout (needs --database-url)\n"
    "  import                 --team NAME FILE: import Bicky's export or the old server's\n"
    "                         {interaction, messages} records (needs --database-url);\n"
    "                         --follow URL [--once]: mirror a running old server\n\n"
    "Registry commands use the admin key (--cert, --keys) over CURVE; --insecure\n"
    "talks without keys to loopback registries only.\n"
    "Run `bickyctl COMMAND --help` for a command's options.\n"
    "Exit codes: 0 success, 1 failure, 2 usage error.";

int reg_ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bickyctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return REG_CTL_EXIT_FAIL;
}

/* Fills out with opts followed by the global options; out holds S_MAX_OPTS. */
static void s_merge_opts(reg_ctl_t *ctl, const cfg_opt_t *opts, cfg_opt_t *out)
{
    size_t k = 0;
    for (const cfg_opt_t *o = opts; o && o->flag && k < S_MAX_OPTS - 7; o++) {
        out[k++] = *o;
    }
    out[k++] = (cfg_opt_t){"--registry",
                           "BICKY_REGISTRY",
                           CFG_STR,
                           &ctl->registry,
                           0,
                           0,
                           "comma list of registry ROUTER endpoints, tried in turn"};
    out[k++] = (cfg_opt_t){"--database-url",
                           "BICKY_DATABASE_URL",
                           CFG_CONNINFO,
                           &ctl->database_url,
                           0,
                           0,
                           "libpq conninfo or postgresql:// URL"};
    out[k++] = (cfg_opt_t){"--json", NULL, CFG_BOOL, &ctl->json, 0, 0, "JSON output for scripts"};
    const cfg_opt_t keys[] = {KEYS_CFG_OPTS_AS(&ctl->kc, "BICKY_ADMIN_CERT")};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        out[k++] = keys[i];
    }
    out[k] = (cfg_opt_t){NULL, NULL, CFG_STR, NULL, 0, 0, NULL};
}

int reg_ctl_parse(reg_ctl_t *ctl,
                  const char *usage,
                  const cfg_opt_t *opts,
                  int argc,
                  char **argv,
                  int npos,
                  char ***pos)
{
    cfg_opt_t merged[S_MAX_OPTS];
    s_merge_opts(ctl, opts, merged);
    int nrest = 0;
    char **rest = NULL;
    int rc = cfg_parse(argv[0], usage, merged, argc, argv, &nrest, &rest);
    if (rc != 0) {
        return rc > 0 ? REG_CTL_EXIT_OK : REG_CTL_EXIT_USAGE;
    }
    if (nrest != npos) {
        fprintf(stderr, "%s: expected %d argument%s, got %d\nUsage: %s %s\n", argv[0], npos,
                npos == 1 ? "" : "s", nrest, argv[0], usage);
        return REG_CTL_EXIT_USAGE;
    }
    if (pos) {
        *pos = rest;
    }
    return -1;
}

/* True for a global option given as "--flag value" (its value is the next word). */
static bool s_takes_value(const char *arg)
{
    return !strcmp(arg, "--registry") || !strcmp(arg, "--database-url") || !strcmp(arg, "--cert") ||
           !strcmp(arg, "--keys");
}

/* Index of the first word that is not an option (or an option's value) from
   argv[from], or argc. */
static int s_next_word(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++) {
        if (argv[i][0] != '-' || !argv[i][1]) {
            return i;
        }
        if (s_takes_value(argv[i])) {
            i++;
        }
    }
    return argc;
}

/* No command word: parse the global options alone. */
static int s_no_command(reg_ctl_t *ctl, int argc, char **argv)
{
    cfg_opt_t merged[S_MAX_OPTS];
    s_merge_opts(ctl, NULL, merged);
    int rc = cfg_parse("bickyctl", s_global_usage, merged, argc, argv, NULL, NULL);
    /* No command was given: --help printed (0), a bad option (2), or nothing (2). */
    if (rc > 0) {
        return REG_CTL_EXIT_OK;
    }
    if (rc == 0) {
        fprintf(stderr, "bickyctl: missing command (see bickyctl --help)\n");
    }
    return REG_CTL_EXIT_USAGE;
}

static const s_command_t *s_find(const char *name, const char *sub)
{
    for (size_t i = 0; i < S_NCOMMANDS; i++) {
        const s_command_t *c = &s_commands[i];
        if (!strcmp(c->name, name) && (!c->sub || (sub && !strcmp(c->sub, sub)))) {
            return c;
        }
    }
    return NULL;
}

/* "bickyctl token" (or keys) without a valid subcommand: list them. */
static int s_sub_help(const char *word, bool asked)
{
    FILE *out = asked ? stdout : stderr;
    fprintf(out, "Usage: bickyctl %s SUBCOMMAND [OPTIONS]\n\nSubcommands:\n", word);
    for (size_t i = 0; i < S_NCOMMANDS; i++) {
        if (s_commands[i].sub && !strcmp(s_commands[i].name, word)) {
            fprintf(out, "  %-8s %s\n", s_commands[i].sub, s_commands[i].summary);
        }
    }
    return asked ? REG_CTL_EXIT_OK : REG_CTL_EXIT_USAGE;
}

/* Runs c with argv minus the command words at cmd (and cmd+1 for a sub). */
static int s_run(reg_ctl_t *ctl, const s_command_t *c, int argc, char **argv, int cmd)
{
    char prog[64];
    snprintf(prog, sizeof prog, "bickyctl %s%s%s", c->name, c->sub ? " " : "",
             c->sub ? c->sub : "");
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        return reg_ctl_fail("out of memory");
    }
    int n = 0, words = c->sub ? 2 : 1;
    args[n++] = prog;
    for (int i = 1; i < argc; i++) {
        if (i < cmd || i >= cmd + words) {
            args[n++] = argv[i];
        }
    }
    int rc = c->fn(ctl, n, args);
    free(args);
    keys_destroy(&ctl->keys);
    return rc;
}

int main(int argc, char **argv)
{
    reg_ctl_t ctl = {.registry = "tcp://127.0.0.1:7100"};
    /* No czmq signal handlers: Ctrl-C ends a CLI at once. */
    zsys_handler_set(NULL);
    int cmd = s_next_word(argc, argv, 1);
    if (cmd >= argc) {
        return s_no_command(&ctl, argc, argv);
    }
    if (!strcmp(argv[cmd], "help")) {
        cfg_opt_t merged[S_MAX_OPTS];
        s_merge_opts(&ctl, NULL, merged);
        cfg_usage("bickyctl", s_global_usage, merged);
        return REG_CTL_EXIT_OK;
    }
    const char *sub = NULL;
    if (!strcmp(argv[cmd], "token") || !strcmp(argv[cmd], "keys") || !strcmp(argv[cmd], "team")) {
        sub = cmd + 1 < argc ? argv[cmd + 1] : NULL;
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        if (!sub || help || !s_find(argv[cmd], sub)) {
            if (sub && !help && sub[0] != '-') {
                fprintf(stderr, "bickyctl: unknown %s subcommand '%s'\n", argv[cmd], sub);
            }
            return s_sub_help(argv[cmd], help);
        }
    }
    const s_command_t *c = s_find(argv[cmd], sub);
    if (!c) {
        fprintf(stderr, "bickyctl: unknown command '%s' (see bickyctl --help)\n", argv[cmd]);
        return REG_CTL_EXIT_USAGE;
    }
    return s_run(&ctl, c, argc, argv, cmd);
}
