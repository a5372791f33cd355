/*  cfg_file — the strategies config: lifecycle, the built-in default, file
    reading and accessors. The INI parsing itself is in cfg_file_parse.c.
    Main thread at startup; read-only afterwards. */
#include "common/cfg_file.h"

#include "common/cfg_file_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_MAX_TOKENS 4096
#define S_DEFAULT_TIMEOUT_S  300
#define S_DEFAULT_STALL_S    60
#define S_DEFAULT_MAX_TURNS  16
/* Sandbox limits (docs/tools.md, "Sandbox"): generous for builds and tests, small
   enough that one runaway command cannot take the host down. */
#define S_DEFAULT_SB_CPU_S   600
#define S_DEFAULT_SB_MEM_MB  8192
#define S_DEFAULT_SB_PROCS   256
#define S_DEFAULT_SB_FILE_MB 1024
#define S_DEFAULT_SB_TMP_MB  512
#define S_DEFAULT_SB_DISK_MB 4096
#define S_DEFAULT_SB_NOFILE  1024

void cfg_file_item_free(cfg_file_item_t *item)
{
    if (!item) {
        return;
    }
    cfg_strategy_t *s = &item->pub;
    free(s->name);
    free(s->base_url);
    free(s->model);
    free(s->api_key_env);
    free(s->system_prompt);
    for (size_t i = 0; i < s->tools_count; i++) {
        free(s->tools[i]);
    }
    free(s->tools);
    free(s->command);
    free(item);
}

void cfg_file_destroy(cfg_file_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cfg_file_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        cfg_file_item_free(self->items[i]);
    }
    free(self->items);
    free(self->default_name);
    free(self->origin);
    free(self);
    *self_p = NULL;
}

cfg_file_item_t *cfg_file_item_new(const char *name, int line)
{
    cfg_file_item_t *item = calloc(1, sizeof *item);
    cfg_strategy_t *s = item ? &item->pub : NULL;
    if (!s || !(s->name = strdup(name))) {
        free(item);
        return NULL;
    }
    s->kind = CFG_STRATEGY_ECHO;
    s->max_tokens = S_DEFAULT_MAX_TOKENS;
    s->temperature = -1;
    s->timeout_s = S_DEFAULT_TIMEOUT_S;
    s->stall_timeout_s = S_DEFAULT_STALL_S;
    s->max_turns = S_DEFAULT_MAX_TURNS;
    s->sandbox = true;
    s->sandbox_cpu_s = S_DEFAULT_SB_CPU_S;
    s->sandbox_memory_mb = S_DEFAULT_SB_MEM_MB;
    s->sandbox_processes = S_DEFAULT_SB_PROCS;
    s->sandbox_file_mb = S_DEFAULT_SB_FILE_MB;
    s->sandbox_tmp_mb = S_DEFAULT_SB_TMP_MB;
    s->sandbox_disk_mb = S_DEFAULT_SB_DISK_MB;
    s->sandbox_open_files = S_DEFAULT_SB_NOFILE;
    s->line = line;
    return item;
}

int cfg_file_item_add(cfg_file_t *self, cfg_file_item_t *s)
{
    cfg_file_item_t **items = realloc(self->items, (self->count + 1) * sizeof *items);
    if (!items) {
        return -1;
    }
    self->items = items;
    self->items[self->count++] = s;
    return 0;
}

static cfg_file_t *s_cfg_new(const char *origin)
{
    cfg_file_t *self = calloc(1, sizeof *self);
    if (self && !(self->origin = strdup(origin))) {
        free(self);
        self = NULL;
    }
    return self;
}

cfg_file_t *cfg_file_load_string(const char *text, const char *origin, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    cfg_file_t *self = s_cfg_new(origin ? origin : "<string>");
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg_file_parse(self, text, strlen(text), err, errlen) != 0) {
        cfg_file_destroy(&self);
    }
    return self;
}

static cfg_file_t *s_builtin(char *err, size_t errlen)
{
    cfg_file_t *self = s_cfg_new("<built-in>");
    cfg_file_item_t *echo = self ? cfg_file_item_new("echo", 0) : NULL;
    if (!echo || cfg_file_item_add(self, echo) != 0) {
        cfg_file_item_free(echo);
        cfg_file_destroy(&self);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    echo->kind_set = true;
    self->def = &echo->pub;
    return self;
}

/* Reads the whole file (bounded by CFG_FILE_MAX_BYTES). Caller frees. */
static char *s_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CFG_FILE_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CFG_FILE_MAX_BYTES + 1, f) : 0;
    bool bad = !buf || ferror(f) || n > CFG_FILE_MAX_BYTES;
    if (bad) {
        snprintf(err, errlen, "%s: %s", path,
                 !buf                     ? "out of memory"
                 : n > CFG_FILE_MAX_BYTES ? "file larger than 1 MiB"
                                          : "read error");
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
        *len = n;
    }
    fclose(f);
    return buf;
}

cfg_file_t *cfg_file_load(const char *path, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!path || !path[0]) {
        return s_builtin(err, errlen);
    }
    size_t len = 0;
    char *text = s_read_file(path, &len, err, errlen);
    if (!text) {
        return NULL;
    }
    if (strlen(text) != len) {
        snprintf(err, errlen, "%s: NUL byte in the file", path);
        free(text);
        return NULL;
    }
    cfg_file_t *self = cfg_file_load_string(text, path, err, errlen);
    free(text);
    return self;
}

const cfg_strategy_t *cfg_file_strategy(const cfg_file_t *self, const char *name)
{
    if (!self || !name) {
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        if (strcmp(self->items[i]->pub.name, name) == 0) {
            return &self->items[i]->pub;
        }
    }
    return NULL;
}

const cfg_strategy_t *cfg_file_default_strategy(const cfg_file_t *self)
{
    return self ? self->def : NULL;
}

size_t cfg_file_count(const cfg_file_t *self)
{
    return self ? self->count : 0;
}

const cfg_strategy_t *cfg_file_at(const cfg_file_t *self, size_t i)
{
    return self && i < self->count ? &self->items[i]->pub : NULL;
}

const char *cfg_file_origin(const cfg_file_t *self)
{
    return self ? self->origin : NULL;
}

const char *cfg_strategy_kind_name(cfg_strategy_kind_t kind)
{
    switch (kind) {
        case CFG_STRATEGY_ECHO:
            return "echo";
        case CFG_STRATEGY_OPENAI:
            return "openai";
        case CFG_STRATEGY_ANTHROPIC:
            return "anthropic";
        case CFG_STRATEGY_CLAUDE_CODE:
            return "claude-code";
    }
    return "unknown";
}

const char *cfg_strategy_api_key(const cfg_strategy_t *s)
{
    if (!s || !s->api_key_env) {
        return NULL;
    }
    const char *key = getenv(s->api_key_env);
    return key && key[0] ? key : NULL;
}

bool cfg_strategy_has_tool(const cfg_strategy_t *s, const char *name)
{
    for (size_t i = 0; s && name && i < s->tools_count; i++) {
        if (strcmp(s->tools[i], name) == 0) {
            return true;
        }
    }
    return false;
}
