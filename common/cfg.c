/*  cfg — flags and environment variables from one table. Main thread only. */
#include "common/cfg.h"

#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_set(const cfg_opt_t *o, const char *value, const char *origin)
{
    switch (o->kind) {
        case CFG_STR:
        case CFG_CONNINFO:
            *(const char **)o->target = value;
            return 0;
        case CFG_INT: {
            char *end = NULL;
            errno = 0;
            long v = strtol(value, &end, 10);
            if (errno || end == value || *end || v < o->min || v > o->max) {
                fprintf(stderr, "invalid value '%s' for %s: expected an integer in [%ld, %ld]\n",
                        value, origin, o->min, o->max);
                return -1;
            }
            *(long *)o->target = v;
            return 0;
        }
        case CFG_BOOL:
            if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
                !strcmp(value, "on")) {
                *(bool *)o->target = true;
            } else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
                       !strcmp(value, "off")) {
                *(bool *)o->target = false;
            } else {
                fprintf(stderr, "invalid value '%s' for %s: expected true or false\n", value,
                        origin);
                return -1;
            }
            return 0;
    }
    return -1;
}

void cfg_usage(const char *prog, const char *usage, const cfg_opt_t *opts)
{
    printf("Usage: %s %s\n\nOptions (flag, environment variable, default):\n", prog, usage);
    for (const cfg_opt_t *o = opts; o->flag; o++) {
        char def[256] = "";
        if (o->kind == CFG_STR && *(const char **)o->target) {
            snprintf(def, sizeof def, "%s", *(const char **)o->target);
        } else if (o->kind == CFG_CONNINFO && *(const char **)o->target) {
            util_mask_conninfo(*(const char **)o->target, def, sizeof def);
        } else if (o->kind == CFG_INT) {
            snprintf(def, sizeof def, "%ld", *(long *)o->target);
        } else if (o->kind == CFG_BOOL) {
            snprintf(def, sizeof def, "%s", *(bool *)o->target ? "true" : "false");
        }
        printf("  %-22s %-26s %s%s%s%s\n", o->flag, o->env ? o->env : "", o->help,
               def[0] ? " [" : "", def, def[0] ? "]" : "");
    }
    printf("  %-22s %-26s %s\n", "--help", "", "print this help and exit");
}

static const cfg_opt_t *s_find(const cfg_opt_t *opts, const char *flag, size_t len)
{
    for (const cfg_opt_t *o = opts; o->flag; o++) {
        if (strlen(o->flag) == len && strncmp(o->flag, flag, len) == 0) {
            return o;
        }
    }
    return NULL;
}

int cfg_parse(const char *prog,
              const char *usage,
              const cfg_opt_t *opts,
              int argc,
              char **argv,
              int *rest_argc,
              char ***rest_argv)
{
    for (const cfg_opt_t *o = opts; o->flag; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && *v && s_set(o, v, o->env) < 0) {
            return -1;
        }
    }
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cfg_usage(prog, usage, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || !strcmp(a, "--")) {
            if (!rest_argv) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, a);
                return -1;
            }
            argv[1 + nrest++] = argv[i];
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cfg_opt_t *o = s_find(opts, a, len);
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", prog, (int)len, a);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->kind == CFG_BOOL) {
            value = "true";
        } else if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, o->flag);
                return -1;
            }
            value = argv[++i];
        }
        if (s_set(o, value, o->flag) < 0) {
            return -1;
        }
    }
    if (rest_argc) {
        *rest_argc = nrest;
        *rest_argv = argv + 1;
    }
    return 0;
}
