/*  test_cfg_file — the strategies INI file: a full example, the built-in
    default, and a table of bad files, each rejected with its line number. */
#include "common/cfg_file.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_full = "; Bicky strategies\n"
                            "default_strategy = gpt\n"
                            "\n"
                            "[strategy.echo]\n"
                            "kind = echo\n"
                            "\n"
                            "[strategy.gpt]\n"
                            "kind = openai\n"
                            "base_url = http://127.0.0.1:1234/v1/\n"
                            "model = gpt-4o-mini\n"
                            "api_key_env = BICKY_TEST_OPENAI_KEY\n"
                            "max_tokens = 2048\n"
                            "temperature = 0.2\n"
                            "system_prompt = You are terse; no fluff.\n"
                            "  Second line of the prompt.\n"
                            "tools = read_file, grep ,bash\n"
                            "timeout_s = 120\n"
                            "stall_timeout_s = 30\n"
                            "max_turns = 8\n"
                            "\n"
                            "[strategy.claude]\n"
                            "kind = anthropic\n"
                            "base_url = https://api.anthropic.com\n"
                            "model = claude-sonnet-4-5 ; inline comment\n"
                            "\n"
                            "[strategy.cc]\n"
                            "kind = claude-code\n";

Test(cfg_file, loads_a_full_file)
{
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load_string(s_full, "full.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_file_count(cfg), 4);
    cr_assert_str_eq(cfg_file_default_strategy(cfg)->name, "gpt");
    cr_assert_str_eq(cfg_file_origin(cfg), "full.ini");

    const cfg_strategy_t *g = cfg_file_strategy(cfg, "gpt");
    cr_assert_not_null(g);
    cr_assert_eq(g->kind, CFG_STRATEGY_OPENAI);
    cr_assert_str_eq(cfg_strategy_kind_name(g->kind), "openai");
    cr_assert_str_eq(g->base_url, "http://127.0.0.1:1234/v1", "trailing '/' stripped");
    cr_assert_str_eq(g->model, "gpt-4o-mini");
    cr_assert_str_eq(g->api_key_env, "BICKY_TEST_OPENAI_KEY");
    cr_assert_eq(g->max_tokens, 2048);
    cr_assert(g->temperature_set);
    cr_assert_float_eq(g->temperature, 0.2, 1e-9);
    cr_assert_str_eq(g->system_prompt, "You are terse; no fluff.\nSecond line of the prompt.");
    cr_assert_eq(g->tools_count, 3);
    cr_assert_str_eq(g->tools[0], "read_file");
    cr_assert_str_eq(g->tools[1], "grep");
    cr_assert_str_eq(g->tools[2], "bash");
    cr_assert(cfg_strategy_has_tool(g, "grep"));
    cr_assert_not(cfg_strategy_has_tool(g, "write_file"));
    cr_assert_eq(g->timeout_s, 120);
    cr_assert_eq(g->stall_timeout_s, 30);
    cr_assert_eq(g->max_turns, 8);
    cr_assert_eq(g->line, 7);

    const cfg_strategy_t *c = cfg_file_strategy(cfg, "claude");
    cr_assert_eq(c->kind, CFG_STRATEGY_ANTHROPIC);
    cr_assert_str_eq(c->model, "claude-sonnet-4-5");
    cr_assert_not(c->temperature_set);
    cr_assert_eq(c->max_tokens, 4096, "default");
    cr_assert_eq(c->timeout_s, 300, "default");
    cr_assert_eq(c->stall_timeout_s, 60, "default");
    cr_assert_eq(c->max_turns, 16, "default");
    cr_assert_null(c->api_key_env);
    cr_assert_null(cfg_strategy_api_key(c));

    const cfg_strategy_t *cc = cfg_file_strategy(cfg, "cc");
    cr_assert_str_eq(cc->command, "claude", "default command");
    cr_assert_eq(cfg_file_at(cfg, 0), cfg_file_strategy(cfg, "echo"));
    cr_assert_eq(cfg_file_at(cfg, 3), cc);
    cr_assert_null(cfg_file_at(cfg, 4));
    cr_assert_null(cfg_file_strategy(cfg, "nope"));

    setenv("BICKY_TEST_OPENAI_KEY", "sk-test-123", 1);
    cr_assert_str_eq(cfg_strategy_api_key(g), "sk-test-123");
    setenv("BICKY_TEST_OPENAI_KEY", "", 1);
    cr_assert_null(cfg_strategy_api_key(g), "an empty variable is no key");

    cfg_file_destroy(&cfg);
    cr_assert_null(cfg);
    cfg_file_destroy(&cfg);
}

Test(cfg_file, builtin_default_without_a_file)
{
    char err[128];
    cfg_file_t *cfg = cfg_file_load(NULL, err, sizeof err);
    cr_assert_not_null(cfg);
    cr_assert_eq(cfg_file_count(cfg), 1);
    const cfg_strategy_t *e = cfg_file_default_strategy(cfg);
    cr_assert_str_eq(e->name, "echo");
    cr_assert_eq(e->kind, CFG_STRATEGY_ECHO);
    cr_assert_eq(e->line, 0);
    cr_assert_str_eq(cfg_file_origin(cfg), "<built-in>");
    cfg_file_destroy(&cfg);
    cfg = cfg_file_load("", err, sizeof err);
    cr_assert_not_null(cfg);
    cfg_file_destroy(&cfg);
}

Test(cfg_file, loads_from_disk_and_defaults_to_the_first)
{
    char path[] = "/tmp/bicky-cfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "\xEF\xBB\xBF[strategy.local]\r\nkind = openai\r\n"
                       "base_url = http://127.0.0.1:11434/v1\r\nmodel = llama3\r\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load(path, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg_file_default_strategy(cfg)->name, "local");
    cr_assert_str_eq(cfg_file_default_strategy(cfg)->model, "llama3");
    cfg_file_destroy(&cfg);
    unlink(path);

    cr_assert_null(cfg_file_load(path, err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
}

Test(cfg_file, long_system_prompt_line)
{
    size_t n = 5000;
    char *text = malloc(n + 200);
    int off = sprintf(text, "[strategy.e]\nkind = echo\nsystem_prompt = ");
    memset(text + off, 'x', n);
    strcpy(text + off + n, "\nmax_turns = 3\n");
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load_string(text, "long.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(strlen(cfg_file_strategy(cfg, "e")->system_prompt), n);
    cr_assert_eq(cfg_file_strategy(cfg, "e")->max_turns, 3);
    cfg_file_destroy(&cfg);
    free(text);
}

typedef struct {
    const char *text; /* the file */
    const char *want; /* expected substring of the error */
} s_bad_t;

static const s_bad_t s_bad[] = {
    {"[strategy.a]\nkind = echo\nmodle = x\n", "t.ini:3: unknown key 'modle' in [strategy.a]"},
    {"[strategy.a]\nkind = gpt\n", "t.ini:2: bad kind 'gpt'"},
    {"[strategy.a]\nkind = openai\nmodel = m\n",
     "t.ini:1: [strategy.a] (kind openai) needs base_url"},
    {"[strategy.a]\nkind = anthropic\nbase_url = http://x\n",
     "t.ini:1: [strategy.a] (kind anthropic) needs model"},
    {"[strategy.a]\nkind = openai\nbase_url = ftp://x\nmodel = m\n",
     "t.ini:3: base_url must start"},
    {"[strategy.a]\nkind = echo\nmax_tokens = 12x\n", "t.ini:3: bad value '12x' for max_tokens"},
    {"[strategy.a]\nkind = echo\nmax_tokens = 0\n", "t.ini:3: bad value '0' for max_tokens"},
    {"[strategy.a]\nkind = echo\ntemperature = 3\n", "t.ini:3: bad value '3' for temperature"},
    {"[strategy.a]\nkind = echo\ntimeout_s = -1\n", "t.ini:3: bad value"},
    {"[strategy.a]\nkind = echo\nmax_turns = 99999999999999999999\n", "t.ini:3: bad value"},
    {"[strategy.a]\nkind = echo\nkind = echo\n", "t.ini:3: duplicate key 'kind'"},
    {"[strategy.a]\nkind = echo\n[strategy.a]\nkind = echo\n", "t.ini:3: duplicate section"},
    {"[strategy.a]\n", "t.ini:1: [strategy.a] has no kind"},
    {"[providers]\nx = 1\n", "t.ini:1: unknown section [providers]"},
    {"[strategy.]\nkind = echo\n", "t.ini:1: unknown section"},
    {"[strategy.a b]\nkind = echo\n", "t.ini:1: invalid strategy name"},
    {"[strategy.a\nkind = echo\n", "t.ini:1: malformed section header"},
    {"[strategy.a]\nkind = echo\njust words\n", "t.ini:3: syntax error"},
    {"foo = 1\n[strategy.a]\nkind = echo\n", "t.ini:1: unknown top-level key 'foo'"},
    {"default_strategy = b\n[strategy.a]\nkind = echo\n", "t.ini:1: default_strategy 'b' is not"},
    {"; nothing\n", "no [strategy.NAME] section"},
    {"[strategy.a]\nkind = echo\napi_key_env = MY-KEY\n", "t.ini:3: api_key_env must name"},
    {"[strategy.a]\nkind = echo\ntools = read_file, bad tool\n",
     "t.ini:3: invalid tool name 'bad tool'"},
    {"[strategy.a]\nkind = echo\ntools = a,,b\n", "t.ini:3: invalid tool name ''"},
    {"[strategy.a]\nkind = echo\nmodel =\n", "t.ini:3: empty value for model"},
    {"[strategy.a]\nkind = echo\nmodel = x\n  more\n", "t.ini:4: continuation lines are only"},
    {"[strategy.a]\nkind = echo\n  [strategy.b]\n", "t.ini:3: continuation lines are only"},
    {"[strategy.a]\nkind = claude-code\npermission_channel = zmq\n",
     "t.ini:3: bad permission_channel 'zmq': expected stdio or mcp"},
    {"[strategy.a]\nkind = claude-code\npermission_channel = mcp\npermission_channel = mcp\n",
     "t.ini:4: duplicate key 'permission_channel'"},
    {"[strategy.a]\nkind = echo\nsandbox = no\n",
     "t.ini:3: bad value 'no' for sandbox: expected true or false"},
    {"[strategy.a]\nkind = echo\ntool_network = 1\n", "t.ini:3: bad value '1' for tool_network"},
    {"[strategy.a]\nkind = echo\nsandbox_processes = 2\n",
     "t.ini:3: bad value '2' for sandbox_processes"},
    {"[strategy.a]\nkind = echo\nsandbox_memory_mb = 10\n",
     "t.ini:3: bad value '10' for sandbox_memory_mb"},
};

Test(cfg_file, sandbox_on_by_default_with_its_limits)
{
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load_string("[strategy.a]\nkind = echo\n"
                                           "[strategy.b]\nkind = echo\nsandbox = false\n"
                                           "tool_network = true\nsandbox_cpu_s = 5\n"
                                           "sandbox_memory_mb = 64\nsandbox_processes = 8\n"
                                           "sandbox_file_mb = 1\nsandbox_open_files = 64\n"
                                           "sandbox_disk_mb = 8\n",
                                           "t.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    const cfg_strategy_t *a = cfg_file_strategy(cfg, "a"), *b = cfg_file_strategy(cfg, "b");
    cr_assert(a->sandbox && !a->tool_network);
    cr_assert_eq(a->sandbox_cpu_s, 600);
    cr_assert_eq(a->sandbox_memory_mb, 8192);
    cr_assert_eq(a->sandbox_processes, 256);
    cr_assert_eq(a->sandbox_file_mb, 1024);
    cr_assert_eq(a->sandbox_open_files, 1024);
    cr_assert_eq(a->sandbox_disk_mb, 4096);
    cr_assert(!b->sandbox && b->tool_network);
    cr_assert_eq(b->sandbox_cpu_s, 5);
    cr_assert_eq(b->sandbox_memory_mb, 64);
    cr_assert_eq(b->sandbox_processes, 8);
    cr_assert_eq(b->sandbox_file_mb, 1);
    cr_assert_eq(b->sandbox_open_files, 64);
    cr_assert_eq(b->sandbox_disk_mb, 8);
    cfg_file_destroy(&cfg);
}

Test(cfg_file, permission_channel_stdio_by_default_or_mcp)
{
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load_string("[strategy.a]\nkind = claude-code\n"
                                           "[strategy.b]\nkind = claude-code\n"
                                           "permission_channel = mcp\n"
                                           "[strategy.c]\nkind = claude-code\n"
                                           "permission_channel = stdio\n",
                                           "t.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_file_strategy(cfg, "a")->permission_channel, CFG_PERM_STDIO);
    cr_assert_eq(cfg_file_strategy(cfg, "b")->permission_channel, CFG_PERM_MCP);
    cr_assert_eq(cfg_file_strategy(cfg, "c")->permission_channel, CFG_PERM_STDIO);
    cfg_file_destroy(&cfg);
}

Test(cfg_file, rejects_bad_files_with_line_numbers)
{
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        char err[256] = "";
        cfg_file_t *cfg = cfg_file_load_string(s_bad[i].text, "t.ini", err, sizeof err);
        cr_assert_null(cfg, "case %zu accepted: %s", i, s_bad[i].text);
        cr_assert(strstr(err, s_bad[i].want), "case %zu: got \"%s\", want \"%s\"", i, err,
                  s_bad[i].want);
    }
}

Test(cfg_file, rejects_overlong_lines_and_nul)
{
    size_t n = CFG_FILE_MAX_LINE + 10;
    char *text = malloc(n + 64);
    int off = sprintf(text, "[strategy.e]\nkind = echo\nsystem_prompt = ");
    memset(text + off, 'y', n);
    text[off + n] = '\0';
    char err[256] = "";
    cr_assert_null(cfg_file_load_string(text, "t.ini", err, sizeof err));
    cr_assert(strstr(err, "t.ini:3: line longer than"), "%s", err);
    free(text);

    char path[] = "/tmp/bicky-cfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, "[strategy.e]\nkind = e\0cho\n", 26), 26);
    close(fd);
    cr_assert_null(cfg_file_load(path, err, sizeof err));
    cr_assert(strstr(err, "NUL byte"), "%s", err);
    unlink(path);
}

Test(cfg_file, the_shipped_example_loads)
{
    char path[4096], here[4096];
    const char *src = getenv("BICKY_SRC");
    snprintf(here, sizeof here, "%s", __FILE__);
    if (src && *src) {
        snprintf(path, sizeof path, "%s/deploy/local/bicky.example.ini", src);
    } else {
        snprintf(path, sizeof path, "%s/../../deploy/local/bicky.example.ini", dirname(here));
    }
    char err[256] = "";
    cfg_file_t *cfg = cfg_file_load(path, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg_file_default_strategy(cfg)->name, "echo");
    cr_assert_eq(cfg_file_count(cfg), 5);
    const cfg_strategy_t *c = cfg_file_strategy(cfg, "claude");
    cr_assert_eq(c->kind, CFG_STRATEGY_ANTHROPIC);
    cr_assert(strchr(c->system_prompt, '\n'), "continued prompt");
    cr_assert_eq(cfg_file_strategy(cfg, "claude-code")->kind, CFG_STRATEGY_CLAUDE_CODE);
    cfg_file_destroy(&cfg);
}
