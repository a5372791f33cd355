/*  reg_ctl — bickyctl, the admin CLI: declarations shared by its files
    (reg_ctl.c: main and dispatch; reg_ctl_out.c: tables and JSON;
    reg_ctl_reg.c: commands that talk to the registry; reg_ctl_db.c:
    commands that talk to Postgres). Single-threaded, blocking calls with
    timeouts are fine here: the CLI has no event loop. */
#ifndef BICKY_REG_CTL_H
#define BICKY_REG_CTL_H

#include "common/cfg.h"
#include "common/keys.h"
#include "proto/proto.h"

#include <stdint.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define REG_CTL_EXIT_OK    0
#define REG_CTL_EXIT_FAIL  1    /* the command ran and failed */
#define REG_CTL_EXIT_USAGE 2    /* bad command line */
#define REG_CTL_TIMEOUT_MS 1000 /* per registry of the list */
#define REG_CTL_MAX_COLS   8
#define REG_CTL_STANDBY    "standby" /* reg_ack state of a standby registry (= REG_STATE_STANDBY) */

/* Global options, shared by every command. */
typedef struct {
    const char *registry;     /* comma list of registry ROUTER endpoints */
    const char *database_url; /* libpq conninfo (masked in any message) */
    bool json;                /* machine-readable output */
    keys_cfg_t kc;            /* --cert, --keys, --insecure */
    keys_t *keys;             /* the admin key once opened (NULL: insecure) */
    bool keys_open;           /* reg_ctl_keys ran and succeeded */
} reg_ctl_t;

/* A command: argc/argv hold "bickyctl COMMAND" in argv[0] and then every
   argument that is not the command word(s), global options included.
   Returns an exit code. */
typedef int(reg_ctl_fn)(reg_ctl_t *ctl, int argc, char **argv);

/* Parses argv with the global options plus opts (NULL-terminated, may be
   NULL), handling --help. Positional arguments must number exactly npos
   (their names are in usage). Returns -1 to continue, or the exit code to
   return (0 after --help, 2 on a usage error, with a message). */
int reg_ctl_parse(reg_ctl_t *ctl,
                  const char *usage,
                  const cfg_opt_t *opts,
                  int argc,
                  char **argv,
                  int npos,
                  char ***pos);
/* Prints "bickyctl: " + message on stderr and returns REG_CTL_EXIT_FAIL. */
int reg_ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- registry (reg_ctl_reg.c, reg_ctl_status.c) ---- */
/* Opens the admin key of --cert/--keys (or checks --insecure) once, before
   the first request to a registry. 0, or -1 after printing why. */
int reg_ctl_keys(reg_ctl_t *ctl);
/* A fresh request id. */
uint64_t reg_ctl_req_id(void);
/* Sends req (borrowed; req_id set by the caller) to one registry and waits
   up to REG_CTL_TIMEOUT_MS for a reply of type want with the same req_id.
   0 with *rep filled (release with proto_msg_reset); 1 when the registry
   is a standby (it answered reg_ack state "standby"; nothing to release);
   -1 when it did not answer. */
int reg_ctl_request_one(const reg_ctl_t *ctl,
                        const char *endpoint,
                        const proto_msg_t *req,
                        proto_type_t want,
                        proto_msg_t *rep);
int reg_ctl_nodes(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_ring(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_locate(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_drain(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_undrain(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_remove(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_status(reg_ctl_t *ctl, int argc, char **argv);

/* ---- database (reg_ctl_db.c) ---- */
int reg_ctl_migrate(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_token_create(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_token_list(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_token_revoke(reg_ctl_t *ctl, int argc, char **argv);
/* ---- team limits (reg_ctl_limits.c) ---- */
int reg_ctl_team_limits(reg_ctl_t *ctl, int argc, char **argv);
/* Connects for a database command: needs --database-url, checks the schema,
   sets the session's time zone to UTC. NULL after saying why. */
struct pg_conn *reg_ctl_db_connect(const reg_ctl_t *ctl);

/* ---- export and import (reg_ctl_export.c, reg_ctl_import*.c) ---- */
int reg_ctl_export(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_import(reg_ctl_t *ctl, int argc, char **argv);

/* ---- keys (reg_ctl_keys.c) ---- */
int reg_ctl_keys_init(reg_ctl_t *ctl, int argc, char **argv);
int reg_ctl_keys_add(reg_ctl_t *ctl, int argc, char **argv);

/* ---- output (reg_ctl_out.c) ---- */
/* Writes s as a JSON string literal (or null when s is NULL). */
void reg_ctl_json_str(FILE *out, const char *s);

typedef struct reg_ctl_table_t reg_ctl_table_t;
/* A text table with up to REG_CTL_MAX_COLS columns named by the NULL-
   terminated headers (borrowed, static). NULL on OOM. */
reg_ctl_table_t *reg_ctl_table_new(const char *const *headers);
/* Appends a row of ncols cells (copied; NULL prints "-"). 0 or -1 on OOM. */
int reg_ctl_table_add(reg_ctl_table_t *self, const char *const *cells);
/* Prints the table aligned on out. */
void reg_ctl_table_print(const reg_ctl_table_t *self, FILE *out);
/* Frees the table and nulls *self_p; accepts NULL. */
void reg_ctl_table_destroy(reg_ctl_table_t **self_p);

#endif
