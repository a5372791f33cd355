/*  log — logfmt lines on stderr, one per event:
    2026-11-27T12:00:00.123Z E gw[4242] gw_http: upstream timeout req=7f3a
    Safe from any thread (each line is one write(2)). The level and component
    are process-wide values set once at startup. */
#ifndef BICKY_LOG_H
#define BICKY_LOG_H

#include <stdarg.h>

typedef enum {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG
} log_level_t;

/* Sets the component name ("gw", "node", …) and the level; call once in main. */
void log_init(const char *component, log_level_t level);
/* Parses "error|warn|notice|info|debug"; returns -1 on anything else. */
int log_level_parse(const char *name, log_level_t *out);
/* The current level; the macros test it before formatting. */
log_level_t log_level(void);
/* Writes one line; prefer the macros. */
void log_write(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef LOG_MODULE
#define LOG_MODULE "bicky"
#endif

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_level()) {                                                                \
            log_write((lvl), LOG_MODULE, __VA_ARGS__);                                             \
        }                                                                                          \
    } while (0)
#define LOG_E(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_W(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_N(...) LOG_AT(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define LOG_I(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_D(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
