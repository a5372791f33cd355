/*  cfg — command-line flags and BICKY_* environment variables from one table.
    Precedence: built-in default (the target's initial value) < environment <
    flag. Main thread only, once at startup; afterwards the values are read-only. */
#ifndef BICKY_CFG_H
#define BICKY_CFG_H

#include <stdbool.h>

/* CFG_CONNINFO is a string that may hold a password (a libpq conninfo or
   postgresql:// URL): parsed like CFG_STR, printed by --help only through
   util_mask_conninfo. */
typedef enum { CFG_STR, CFG_INT, CFG_BOOL, CFG_CONNINFO } cfg_kind_t;

typedef struct {
    const char *flag; /* long flag, e.g. "--http-port" */
    const char *env;  /* environment variable or NULL */
    cfg_kind_t kind;  /* type of *target */
    void *target;     /* const char ** (CFG_STR, CFG_CONNINFO), long *, bool * */
    long min, max;    /* accepted range for CFG_INT */
    const char *help; /* one line for --help */
} cfg_opt_t;

/* Parses env then argv into the targets of opts (terminated by flag == NULL).
   Accepts "--flag value" and "--flag=value"; a CFG_BOOL flag alone means true.
   String targets point into argv/environ (no copy). Positional arguments are
   left in *rest (argv order) when rest is not NULL, else they are an error.
   Returns 0 on success, 1 when --help was printed (caller exits 0) and -1 on
   a bad flag or value (a message is printed on stderr; caller exits 2). */
int cfg_parse(const char *prog,
              const char *usage,
              const cfg_opt_t *opts,
              int argc,
              char **argv,
              int *rest_argc,
              char ***rest_argv);

/* Prints the usage text and the option table on stdout, each option with its
   current value (default, or from the environment); CFG_CONNINFO values
   with their password masked. */
void cfg_usage(const char *prog, const char *usage, const cfg_opt_t *opts);

#endif
