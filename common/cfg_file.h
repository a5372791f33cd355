/*  cfg_file — the strategies config file (INI, parsed with inih): which model
    providers a node may drive and how. Loaded once at startup on the main
    thread (cfg_file_load sets inih's process-wide options for the duration of
    the parse); the result is read-only afterwards and may be read from any
    thread. API keys are never stored here: a strategy names the environment
    variable that holds its key (api_key_env). Every key is described in
    docs/configuration.md. */
#ifndef BICKY_CFG_FILE_H
#define BICKY_CFG_FILE_H

#include <stdbool.h>
#include <stddef.h>

#define CFG_FILE_MAX_BYTES    (1024 * 1024) /* larger config files are rejected */
#define CFG_FILE_MAX_LINE     65536         /* longest line, in bytes */
#define CFG_FILE_MAX_NAME     64            /* longest strategy name */
#define CFG_FILE_MAX_TOOLS    64            /* tools per strategy */
#define CFG_FILE_MAX_STRATEGY 256           /* strategies per file */

typedef enum {
    CFG_STRATEGY_ECHO = 0,    /* built-in deterministic echo */
    CFG_STRATEGY_OPENAI,      /* OpenAI-compatible chat completions */
    CFG_STRATEGY_ANTHROPIC,   /* Anthropic Messages API */
    CFG_STRATEGY_CLAUDE_CODE, /* the claude CLI as a subprocess */
} cfg_strategy_kind_t;

typedef enum {
    CFG_PERM_STDIO = 0, /* claude-code: can_use_tool over the CLI's stdin/stdout */
    CFG_PERM_MCP,       /* claude-code: the bicky-mcp-permission MCP server */
} cfg_perm_channel_t;

/* One [strategy.NAME] section. Strings are NUL-terminated and owned by the
   cfg_file_t; NULL means "not set". */
typedef struct {
    char *name;                /* NAME from the section header */
    cfg_strategy_kind_t kind;  /* kind = echo|openai|anthropic|claude-code */
    char *base_url;            /* http(s) URL without trailing '/' (required: openai, anthropic) */
    char *model;               /* model id (required: openai, anthropic) */
    char *api_key_env;         /* name of the environment variable holding the key */
    char *system_prompt;       /* system prompt (continuation lines joined with '\n') */
    char **tools;              /* tool names, in file order */
    size_t tools_count;        /* entries in tools */
    long max_tokens;           /* output token limit per model call (default 4096) */
    double temperature;        /* sampling temperature; < 0 when unset (provider default) */
    bool temperature_set;      /* true when temperature was given */
    long timeout_s;            /* overall bound on one model call (default 300) */
    long stall_timeout_s;      /* abort a call that receives no byte for this long (default 60) */
    long max_turns;            /* bound on model calls per user turn (default 16) */
    long permission_timeout_s; /* a pending permission request expires after this; 0 = never */
    char *command;             /* claude-code: the CLI to run (default "claude") */
    cfg_perm_channel_t permission_channel; /* claude-code: stdio (default) or mcp */
    bool sandbox;            /* tools and the CLI run in a bwrap sandbox (default true) */
    bool tool_network;       /* the bash tool's sandbox keeps the network (default false) */
    long sandbox_cpu_s;      /* RLIMIT_CPU of a sandboxed process, seconds (600) */
    long sandbox_memory_mb;  /* RLIMIT_AS of a sandboxed process, MiB (8192) */
    long sandbox_processes;  /* processes in one sandbox (256) */
    long sandbox_file_mb;    /* RLIMIT_FSIZE: largest file written, MiB (1024) */
    long sandbox_tmp_mb;     /* size of each private tmpfs of the sandbox, MiB (512) */
    long sandbox_disk_mb;    /* disk the worktree (and the CLI's HOME) may take, MiB (4096) */
    long sandbox_open_files; /* RLIMIT_NOFILE (1024) */
    int line;                /* line of the section header; 0 for the built-in default */
} cfg_strategy_t;

typedef struct cfg_file_t cfg_file_t;

/* Loads and validates the config file at path, or returns the built-in
   default (one strategy "echo" of kind echo) when path is NULL or empty.
   Returns NULL on error with a message in err (e.g. "bicky.ini:12: unknown key
   'modle' in [strategy.gpt]"): unreadable file, bad syntax, unknown section or
   key, duplicate key, bad kind, missing base_url/model for openai/anthropic,
   bad number or range, unknown default_strategy, no strategy. Main thread
   only (see the header comment). Caller destroys the result. */
cfg_file_t *cfg_file_load(const char *path, char *err, size_t errlen);

/* Same as cfg_file_load for text held in memory; origin names it in errors
   (e.g. "<string>"). */
cfg_file_t *cfg_file_load_string(const char *text, const char *origin, char *err, size_t errlen);

/* Frees the config; accepts NULL and nulls the caller's pointer. Pointers to
   its strategies become invalid. */
void cfg_file_destroy(cfg_file_t **self_p);

/* The strategy called name, or NULL. Borrowed: valid until cfg_file_destroy. */
const cfg_strategy_t *cfg_file_strategy(const cfg_file_t *self, const char *name);

/* The default strategy (default_strategy, else the first one in the file).
   Never NULL for a loaded config. Borrowed. */
const cfg_strategy_t *cfg_file_default_strategy(const cfg_file_t *self);

/* Number of strategies and the i-th one in file order (NULL when i is out of
   range). Borrowed. Use these to list strategies without secrets. */
size_t cfg_file_count(const cfg_file_t *self);
const cfg_strategy_t *cfg_file_at(const cfg_file_t *self, size_t i);

/* The file the config came from ("<built-in>" for the default). Borrowed. */
const char *cfg_file_origin(const cfg_file_t *self);

/* "echo", "openai", "anthropic" or "claude-code". Static string. */
const char *cfg_strategy_kind_name(cfg_strategy_kind_t kind);

/* The API key from the environment variable named by api_key_env, or NULL
   when api_key_env is unset or the variable is unset or empty. Borrowed from
   the environment. Never log it. */
const char *cfg_strategy_api_key(const cfg_strategy_t *s);

/* True when the strategy lists tool name in its tools. */
bool cfg_strategy_has_tool(const cfg_strategy_t *s, const char *name);

#endif
