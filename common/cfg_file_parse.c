/*  cfg_file_parse — the strategies INI file. inih does the tokenising; our
    reader feeds it one line at a time from memory so that we know the line
    number of every key and see section headers (including empty sections) as
    they come. Main thread, at startup only (inih's options are process-wide). */
#include "common/cfg_file_internal.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SECTION_PREFIX "strategy."

typedef enum {
    K_KIND,
    K_STR,
    K_URL,
    K_ENVNAME,
    K_PROMPT,
    K_LIST,
    K_LONG,
    K_DOUBLE,
    K_CHANNEL,
    K_BOOL
} s_ktype_t;

typedef struct {
    const char *key; /* key name in the file */
    s_ktype_t type;  /* how the value is parsed */
    size_t off;      /* field offset in cfg_strategy_t */
    double min, max; /* accepted range for numbers */
} s_key_t;

static const s_key_t s_keys[] = {
    {"kind", K_KIND, offsetof(cfg_strategy_t, kind), 0, 0},
    {"base_url", K_URL, offsetof(cfg_strategy_t, base_url), 0, 0},
    {"model", K_STR, offsetof(cfg_strategy_t, model), 0, 0},
    {"api_key_env", K_ENVNAME, offsetof(cfg_strategy_t, api_key_env), 0, 0},
    {"max_tokens", K_LONG, offsetof(cfg_strategy_t, max_tokens), 1, 1000000},
    {"temperature", K_DOUBLE, offsetof(cfg_strategy_t, temperature), 0, 2},
    {"system_prompt", K_PROMPT, offsetof(cfg_strategy_t, system_prompt), 0, 0},
    {"tools", K_LIST, offsetof(cfg_strategy_t, tools), 0, 0},
    {"timeout_s", K_LONG, offsetof(cfg_strategy_t, timeout_s), 1, 86400},
    {"stall_timeout_s", K_LONG, offsetof(cfg_strategy_t, stall_timeout_s), 1, 86400},
    {"max_turns", K_LONG, offsetof(cfg_strategy_t, max_turns), 1, 1000},
    {"permission_timeout_s", K_LONG, offsetof(cfg_strategy_t, permission_timeout_s), 1, 31536000},
    {"command", K_STR, offsetof(cfg_strategy_t, command), 0, 0},
    {"permission_channel", K_CHANNEL, offsetof(cfg_strategy_t, permission_channel), 0, 0},
    {"sandbox", K_BOOL, offsetof(cfg_strategy_t, sandbox), 0, 0},
    {"tool_network", K_BOOL, offsetof(cfg_strategy_t, tool_network), 0, 0},
    {"sandbox_cpu_s", K_LONG, offsetof(cfg_strategy_t, sandbox_cpu_s), 1, 86400},
    {"sandbox_memory_mb", K_LONG, offsetof(cfg_strategy_t, sandbox_memory_mb), 64, 1048576},
    {"sandbox_processes", K_LONG, offsetof(cfg_strategy_t, sandbox_processes), 8, 65536},
    {"sandbox_file_mb", K_LONG, offsetof(cfg_strategy_t, sandbox_file_mb), 1, 1048576},
    {"sandbox_tmp_mb", K_LONG, offsetof(cfg_strategy_t, sandbox_tmp_mb), 1, 1048576},
    {"sandbox_disk_mb", K_LONG, offsetof(cfg_strategy_t, sandbox_disk_mb), 1, 16777216},
    {"sandbox_open_files", K_LONG, offsetof(cfg_strategy_t, sandbox_open_files), 64, 1048576},
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

typedef struct {
    cfg_file_t *cfg;      /* config being built */
    const char *text;     /* whole file, NUL-terminated */
    size_t len, pos;      /* length and read position */
    int lineno;           /* current line (1-based) */
    bool at_line_start;   /* next chunk starts a new line */
    bool indented;        /* current line starts with blank space */
    char *err;            /* caller's error buffer */
    size_t errlen;        /* its size */
    bool failed;          /* an error was recorded */
    cfg_file_item_t *cur; /* strategy of the current section, or NULL */
    bool in_section;      /* a section header was seen */
    char section[CFG_FILE_MAX_NAME + sizeof S_SECTION_PREFIX + 1]; /* its name */
    uint32_t set_mask; /* keys already set in the current section */
    int last_key;      /* index of the last key set, -1 when none */
    bool default_set;  /* default_strategy was given */
    int default_line;  /* its line */
} s_parser_t;

static void s_fail(s_parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fail(s_parser_t *p, const char *fmt, ...)
{
    if (p->failed) {
        return;
    }
    p->failed = true;
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->cfg->origin, p->lineno);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static bool s_valid_name(const char *name, size_t len)
{
    if (len == 0 || len > CFG_FILE_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            return false;
        }
    }
    return true;
}

/* A section header as our reader sees it (the same line inih is about to
   parse): creates the strategy so empty sections are validated too. */
static void s_on_section(s_parser_t *p, const char *line, size_t len)
{
    const char *end = memchr(line, ']', len);
    if (!end) {
        s_fail(p, "malformed section header (missing ']')");
        return;
    }
    size_t n = (size_t)(end - line) - 1;
    size_t plen = strlen(S_SECTION_PREFIX);
    p->in_section = true;
    p->cur = NULL;
    p->set_mask = 0;
    p->last_key = -1;
    if (n >= sizeof p->section || n <= plen || strncmp(line + 1, S_SECTION_PREFIX, plen) != 0) {
        s_fail(p, "unknown section [%.*s] (expected [strategy.NAME])", (int)(n > 80 ? 80 : n),
               line + 1);
        return;
    }
    memcpy(p->section, line + 1, n);
    p->section[n] = '\0';
    const char *name = p->section + plen;
    if (!s_valid_name(name, strlen(name))) {
        s_fail(p, "invalid strategy name '%s' (1-%d of A-Z a-z 0-9 _ - .)", name,
               CFG_FILE_MAX_NAME);
        return;
    }
    if (cfg_file_strategy(p->cfg, name)) {
        s_fail(p, "duplicate section [%s]", p->section);
        return;
    }
    if (p->cfg->count >= CFG_FILE_MAX_STRATEGY) {
        s_fail(p, "too many strategies (at most %d)", CFG_FILE_MAX_STRATEGY);
        return;
    }
    cfg_file_item_t *s = cfg_file_item_new(name, p->lineno);
    if (!s || cfg_file_item_add(p->cfg, s) != 0) {
        cfg_file_item_free(s);
        s_fail(p, "out of memory");
        return;
    }
    p->cur = s;
}

/* inih's reader: hands out the next line (or the next piece of a long one). */
static char *s_reader(char *str, int num, void *stream)
{
    s_parser_t *p = stream;
    if (p->pos >= p->len || num < 2) {
        return NULL;
    }
    const char *start = p->text + p->pos;
    const char *nl = memchr(start, '\n', p->len - p->pos);
    size_t linelen = nl ? (size_t)(nl - start) + 1 : p->len - p->pos;
    size_t n = linelen < (size_t)num - 1 ? linelen : (size_t)num - 1;
    if (p->at_line_start) {
        p->lineno++;
        p->indented = start[0] == ' ' || start[0] == '\t';
        if (start[0] == '[' && !p->failed) {
            s_on_section(p, start, linelen);
        }
    }
    memcpy(str, start, n);
    str[n] = '\0';
    p->pos += n;
    p->at_line_start = n > 0 && str[n - 1] == '\n';
    return str;
}

static int s_set_string(s_parser_t *p, char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy) {
        s_fail(p, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int s_set_kind(s_parser_t *p, cfg_strategy_kind_t *field, const char *value)
{
    static const cfg_strategy_kind_t kinds[] = {CFG_STRATEGY_ECHO, CFG_STRATEGY_OPENAI,
                                                CFG_STRATEGY_ANTHROPIC, CFG_STRATEGY_CLAUDE_CODE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(value, cfg_strategy_kind_name(kinds[i])) == 0) {
            *field = kinds[i];
            return 0;
        }
    }
    s_fail(p, "bad kind '%s' (expected echo, openai, anthropic or claude-code)", value);
    return -1;
}

static int s_set_url(s_parser_t *p, char **field, const char *value)
{
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
        s_fail(p, "base_url must start with http:// or https://");
        return -1;
    }
    for (const char *c = value; *c; c++) {
        if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c)) {
            s_fail(p, "base_url must not contain blank or control characters");
            return -1;
        }
    }
    if (s_set_string(p, field, value) != 0) {
        return -1;
    }
    size_t len = strlen(*field);
    while (len > 8 && (*field)[len - 1] == '/') {
        (*field)[--len] = '\0';
    }
    return 0;
}

static int s_set_envname(s_parser_t *p, char **field, const char *value)
{
    bool ok = value[0] && !isdigit((unsigned char)value[0]) && strlen(value) <= 128;
    for (const char *c = value; ok && *c; c++) {
        ok = isalnum((unsigned char)*c) || *c == '_';
    }
    if (!ok) {
        s_fail(p, "api_key_env must name an environment variable (A-Z a-z 0-9 _)");
        return -1;
    }
    return s_set_string(p, field, value);
}

static int s_append_prompt(s_parser_t *p, char **field, const char *value)
{
    size_t old = *field ? strlen(*field) : 0, add = strlen(value);
    char *joined = realloc(*field, old + add + 2);
    if (!joined) {
        s_fail(p, "out of memory");
        return -1;
    }
    if (old) {
        joined[old++] = '\n';
    }
    memcpy(joined + old, value, add + 1);
    *field = joined;
    return 0;
}

static int s_list_push(s_parser_t *p, cfg_strategy_t *s, const char *item, size_t len)
{
    if (!s_valid_name(item, len)) {
        s_fail(p, "invalid tool name '%.*s'", (int)(len > 80 ? 80 : len), item);
        return -1;
    }
    if (s->tools_count >= CFG_FILE_MAX_TOOLS) {
        s_fail(p, "too many tools (at most %d)", CFG_FILE_MAX_TOOLS);
        return -1;
    }
    char **tools = realloc(s->tools, (s->tools_count + 1) * sizeof *tools);
    if (!tools) {
        s_fail(p, "out of memory");
        return -1;
    }
    s->tools = tools;
    if (!(s->tools[s->tools_count] = strndup(item, len))) {
        s_fail(p, "out of memory");
        return -1;
    }
    s->tools_count++;
    return 0;
}

static int s_set_list(s_parser_t *p, cfg_strategy_t *s, const char *value)
{
    const char *c = value;
    while (*c) {
        while (*c == ' ' || *c == '\t') {
            c++;
        }
        const char *end = strchr(c, ',');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        while (len && (c[len - 1] == ' ' || c[len - 1] == '\t')) {
            len--;
        }
        if (len == 0 && !end && c == value) {
            break; /* an empty value: no tools */
        }
        if (s_list_push(p, s, c, len) != 0) {
            return -1;
        }
        if (!end) {
            break;
        }
        c = end + 1;
    }
    return 0;
}

static int s_set_number(s_parser_t *p, const s_key_t *k, void *field, const char *value)
{
    char *end = NULL;
    errno = 0;
    double v = k->type == K_LONG ? (double)strtol(value, &end, 10) : strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < k->min || v > k->max) {
        s_fail(p, "bad value '%.40s' for %s: expected %s in [%g, %g]", value, k->key,
               k->type == K_LONG ? "an integer" : "a number", k->min, k->max);
        return -1;
    }
    if (k->type == K_LONG) {
        *(long *)field = (long)v;
    } else {
        *(double *)field = v;
    }
    return 0;
}

static int s_set_channel(s_parser_t *p, cfg_perm_channel_t *field, const char *value)
{
    if (strcmp(value, "stdio") != 0 && strcmp(value, "mcp") != 0) {
        s_fail(p, "bad permission_channel '%.40s': expected stdio or mcp", value);
        return -1;
    }
    *field = strcmp(value, "mcp") == 0 ? CFG_PERM_MCP : CFG_PERM_STDIO;
    return 0;
}

static int s_set_bool(s_parser_t *p, const s_key_t *k, bool *field, const char *value)
{
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
        s_fail(p, "bad value '%.40s' for %s: expected true or false", value, k->key);
        return -1;
    }
    *field = strcmp(value, "true") == 0;
    return 0;
}

static int s_set_value(s_parser_t *p, const s_key_t *k, const char *value)
{
    void *field = (char *)&p->cur->pub + k->off;
    if (!value[0] && k->type != K_PROMPT && k->type != K_LIST) {
        s_fail(p, "empty value for %s", k->key);
        return -1;
    }
    switch (k->type) {
        case K_KIND:
            p->cur->kind_set = true;
            return s_set_kind(p, field, value);
        case K_STR:
            return s_set_string(p, field, value);
        case K_URL:
            return s_set_url(p, field, value);
        case K_ENVNAME:
            return s_set_envname(p, field, value);
        case K_PROMPT:
            return s_append_prompt(p, field, value);
        case K_LIST:
            return s_set_list(p, &p->cur->pub, value);
        case K_CHANNEL:
            return s_set_channel(p, field, value);
        case K_BOOL:
            return s_set_bool(p, k, field, value);
        case K_LONG:
        case K_DOUBLE:
            if (s_set_number(p, k, field, value) != 0) {
                return -1;
            }
            p->cur->pub.temperature_set |= k->type == K_DOUBLE;
            return 0;
    }
    return -1;
}

static int s_top_level(s_parser_t *p, const char *name, const char *value)
{
    if (strcmp(name, "default_strategy") != 0) {
        s_fail(p, "unknown top-level key '%s' (expected default_strategy)", name);
        return 0;
    }
    if (p->default_set) {
        s_fail(p, "duplicate key 'default_strategy'");
        return 0;
    }
    p->default_set = true;
    p->default_line = p->lineno;
    if (s_set_string(p, &p->cfg->default_name, value) != 0) {
        return 0;
    }
    return 1;
}

static int s_handler(void *user, const char *section, const char *name, const char *value)
{
    s_parser_t *p = user;
    if (p->failed) {
        return 0;
    }
    if (!p->in_section) {
        return s_top_level(p, name, value);
    }
    if (!p->cur || strcmp(section, p->section) != 0) {
        s_fail(p, "key outside a valid section (section headers start in column 1)");
        return 0;
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (strcmp(name, s_keys[i].key) != 0) {
            continue;
        }
        bool continuation = p->indented && p->last_key == (int)i;
        if (continuation && s_keys[i].type != K_PROMPT) {
            s_fail(p, "continuation lines are only allowed for system_prompt");
            return 0;
        }
        if (!continuation && (p->set_mask & (1u << i))) {
            s_fail(p, "duplicate key '%s' in [%s]", name, p->section);
            return 0;
        }
        p->set_mask |= 1u << i;
        p->last_key = (int)i;
        return s_set_value(p, &s_keys[i], value) == 0;
    }
    s_fail(p, "unknown key '%s' in [%s]", name, p->section);
    return 0;
}

/* Checks what only the whole section can tell (required keys per kind). */
static int s_validate_strategy(s_parser_t *p, cfg_strategy_t *s, bool kind_set)
{
    p->lineno = s->line;
    bool http = s->kind == CFG_STRATEGY_OPENAI || s->kind == CFG_STRATEGY_ANTHROPIC;
    if (!kind_set) {
        s_fail(p, "[strategy.%s] has no kind", s->name);
    } else if (http && !s->base_url) {
        s_fail(p, "[strategy.%s] (kind %s) needs base_url", s->name,
               cfg_strategy_kind_name(s->kind));
    } else if (http && !s->model) {
        s_fail(p, "[strategy.%s] (kind %s) needs model", s->name, cfg_strategy_kind_name(s->kind));
    } else if (s->kind == CFG_STRATEGY_CLAUDE_CODE && !s->command) {
        if (!(s->command = strdup("claude"))) {
            s_fail(p, "out of memory");
        }
    }
    return p->failed ? -1 : 0;
}

/* Keeps inih's process-wide options for the duration of one parse. */
typedef struct {
    bool use_stack, allow_realloc, multiline, stop_first;
    int max_line;
} s_ini_opts_t;

static s_ini_opts_t s_ini_opts_set(void)
{
    s_ini_opts_t saved = {ini_use_stack, ini_allow_realloc, ini_allow_multiline,
                          ini_stop_on_first_error, ini_max_line};
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_allow_multiline = true;
    ini_stop_on_first_error = true;
    ini_max_line = CFG_FILE_MAX_LINE + 3;
    return saved;
}

static void s_ini_opts_restore(const s_ini_opts_t *saved)
{
    ini_use_stack = saved->use_stack;
    ini_allow_realloc = saved->allow_realloc;
    ini_allow_multiline = saved->multiline;
    ini_stop_on_first_error = saved->stop_first;
    ini_max_line = saved->max_line;
}

/* Rejects what inih would mangle silently: overlong lines. */
static int s_prescan(s_parser_t *p)
{
    size_t line_start = 0;
    for (size_t i = 0; i <= p->len; i++) {
        if (i == p->len || p->text[i] == '\n') {
            p->lineno++;
            if (i - line_start > CFG_FILE_MAX_LINE) {
                s_fail(p, "line longer than %d bytes", CFG_FILE_MAX_LINE);
                return -1;
            }
            line_start = i + 1;
        }
    }
    p->lineno = 0;
    return 0;
}

static int s_parse(s_parser_t *p)
{
    if (s_prescan(p) != 0) {
        return -1;
    }
    s_ini_opts_t saved = s_ini_opts_set();
    int rc = ini_parse_stream(s_reader, p, s_handler, p);
    s_ini_opts_restore(&saved);
    if (rc != 0 && !p->failed) {
        p->lineno = rc > 0 ? rc : p->lineno;
        s_fail(p, rc == -2 ? "out of memory" : "syntax error (expected key = value)");
    }
    return p->failed ? -1 : 0;
}

static int s_finish(s_parser_t *p)
{
    cfg_file_t *cfg = p->cfg;
    for (size_t i = 0; i < cfg->count; i++) {
        if (s_validate_strategy(p, &cfg->items[i]->pub, cfg->items[i]->kind_set) != 0) {
            return -1;
        }
    }
    if (cfg->count == 0) {
        p->lineno = 0;
        s_fail(p, "no [strategy.NAME] section");
        return -1;
    }
    cfg->def = cfg->default_name ? cfg_file_strategy(cfg, cfg->default_name) : &cfg->items[0]->pub;
    if (!cfg->def) {
        p->lineno = p->default_line;
        s_fail(p, "default_strategy '%s' is not defined", cfg->default_name);
        return -1;
    }
    return 0;
}

int cfg_file_parse(cfg_file_t *self, const char *text, size_t len, char *err, size_t errlen)
{
    s_parser_t p = {.cfg = self,
                    .text = text,
                    .len = len,
                    .at_line_start = true,
                    .err = err,
                    .errlen = errlen,
                    .last_key = -1};
    /* A UTF-8 byte order mark is not part of the first line. */
    if (p.len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        p.pos = 3;
    }
    if (s_parse(&p) != 0 || s_finish(&p) != 0) {
        return -1;
    }
    return 0;
}
