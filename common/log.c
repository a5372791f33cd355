/*  log — logfmt lines on stderr. Any thread may call log_write. */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char s_component[16] = "bicky";
static log_level_t s_level = LOG_LEVEL_NOTICE;
static const char s_letters[] = "EWNID";

void log_init(const char *component, log_level_t level)
{
    snprintf(s_component, sizeof s_component, "%s", component);
    s_level = level;
}

int log_level_parse(const char *name, log_level_t *out)
{
    static const char *names[] = {"error", "warn", "notice", "info", "debug"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

log_level_t log_level(void)
{
    return s_level;
}

void log_write(log_level_t level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %c %s[%d] %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
        s_letters[level], s_component, (int)getpid(), module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    /* Keep one event on one line whatever the message held. */
    for (size_t i = (size_t)n; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
