/*  reg_ctl_import — `bickyctl import`: declarations shared by its files
    (reg_ctl_import.c: reading records, units, the report;
    reg_ctl_import_fast.c: valid messages and events of Bicky's export read
    with json_rec; reg_ctl_import_check.c: every other record checked with
    jansson, and records mapped to rows; reg_ctl_import_db.c: the streams, a
    batch's rows held or COPYed into a staging table; reg_ctl_import_direct.c:
    a held batch COPYed straight into the tables; reg_ctl_import_flush.c: a
    staged batch checked and inserted; each batch one transaction, ended while
    the next one is read for another stream; reg_ctl_import_follow.c: --follow
    URL, mirroring a running old server; reg_ctl_import_http.c: its GETs and
    SSE stream over libcurl). Single-threaded; libpq blocking to stage,
    asynchronous to end a batch; blocking libcurl (the CLI has no loop). */
#ifndef BICKY_REG_CTL_IMPORT_H
#define BICKY_REG_CTL_IMPORT_H

#include "common/json_rec.h"
#include "registry/reg_ctl.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define IMP_RECORD_MAX  (64L * 1024 * 1024) /* bytes of one record (line or array element) */
#define IMP_CONTENT_MAX 1048576             /* characters of a message's content (msg.post's) */
#define IMP_BATCH_ROWS  50000               /* staged rows per transaction (at a unit's end) */
#define IMP_BATCH_UNITS 5000                /* conversations per transaction at most */
#define IMP_REPORT_MAX  1000                /* refusals listed in the --json report */
#define IMP_NCOLS       20                  /* columns of the staging table */
#define IMP_STREAMS     2                   /* --streams by default */
#define IMP_STREAMS_MAX 16                  /* --streams at most */

/* Staging columns (imp_rec), in COPY order. */
enum {
    IMP_C_UNIT,
    IMP_C_LINE,
    IMP_C_KIND,
    IMP_C_CONV,
    IMP_C_ID,
    IMP_C_SEQ,
    IMP_C_SOURCE,
    IMP_C_TYPE,
    IMP_C_TITLE,
    IMP_C_STRATEGY,
    IMP_C_STATUS,
    IMP_C_ON_BUSY,
    IMP_C_ROLE,
    IMP_C_CONTENT,
    IMP_C_METADATA,
    IMP_C_ACTION,
    IMP_C_REVERSIBLE,
    IMP_C_REVERTED_BY,
    IMP_C_CREATED,
    IMP_C_UPDATED
};

/* A conversation of the current batch. */
typedef struct {
    long unit;        /* unit number (order in the file) */
    long line;        /* line where it starts */
    char conv[37];    /* its id */
    bool refused;     /* refused after rows were staged: its rows are deleted */
    long long msgs;   /* messages staged */
    long long events; /* events staged */
} imp_unit_t;

typedef struct imp_db_t imp_db_t;

typedef struct {
    imp_db_t *db;     /* the database's streams */
    bool json;        /* --json report */
    const char *team; /* team name */
    /* the current unit (a conversation being read) */
    bool in_unit;        /* a conversation's records are being read */
    bool unit_bad;       /* it was refused: skip its remaining records */
    imp_unit_t *cur;     /* its entry in units (NULL when bad before staging) */
    char conv[37];       /* its id */
    long unit_line;      /* its first line */
    long long next_msg;  /* next expected message seq */
    long long next_evt;  /* next expected event seq */
    long long want_msgs; /* messages announced by the conversation record, -1 unknown */
    long long want_evts; /* events announced, -1 unknown */
    long next_unit;      /* unit counter */
    /* the batch */
    imp_unit_t *units;    /* conversations staged in this batch (the stream's, borrowed) */
    size_t nunits;        /* used */
    long long batch_rows; /* rows staged in this batch */
    /* totals */
    long long conversations, messages, events; /* imported */
    long long skipped;                         /* conversations already in the team */
    long long refused;                         /* refusals */
    json_t *report;                            /* refusals kept for --json (first IMP_REPORT_MAX) */
    long long read_msgs;                       /* messages read (progress) */
    /* --follow (reg_ctl_import_follow.c) */
    bool follow;            /* upsert: present conversations are updated, not skipped */
    long long conv_changed; /* present conversations whose fields changed */
    long long msg_changed;  /* present messages whose role, content, status or metadata changed */
    long long archived;     /* mirrored conversations archived: gone from the old server */
    const char *url;        /* the old server's URL (legacy_mirror.source_url, borrowed) */
} imp_t;

/* ---- reg_ctl_import.c ---- */
/* Records a refusal: line, conversation id (may be NULL) and why. */
void imp_refuse(imp_t *imp, long line, const char *conv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts a unit for conversation conv (canonical id) at line; 0, or -1 on a
   staging error. */
int imp_unit_begin(imp_t *imp, const char *conv, long line);
/* Refuses the current unit (once) with why. */
void imp_unit_refuse(imp_t *imp, long line, const char *why);
/* Ends the current unit: checks it is complete; may flush the batch. 0 / -1. */
int imp_unit_end(imp_t *imp);

/* Imports with --follow URL (reg_ctl_import_follow.c): argv as for
   reg_ctl_import. Returns an exit code. */
int imp_follow(reg_ctl_t *ctl, int argc, char **argv);

/* ---- reg_ctl_import_check.c ---- */
/* Handles one parsed record (taken) of either format. 0, or -1 on a
   staging error (fatal). */
int imp_record(imp_t *imp, json_t *rec, long line);
/* Counts a message (msg) or event of the current unit (imp->cur) and stages
   its row, cols (IMP_NCOLS values, borrowed). 0 / -1 (a staging error). */
int imp_stage_part(imp_t *imp, const char *const *cols, bool msg);
/* The checks both readers share. */
size_t imp_chars(const char *s);                    /* code points of UTF-8 s */
bool imp_is_time(const char *t);                    /* an RFC 3339 date-time */
bool imp_in(const char *s, const char *const *set); /* s (may be NULL) is in set */
const char *imp_msg_status(const char *st);         /* the status an import stores */
extern const char *const imp_roles[];               /* a message's roles (NULL-ended) */
extern const char *const imp_msg_statuses[];        /* a message's statuses */

/* ---- reg_ctl_import_fast.c ---- */
/* Handles a message or event record of Bicky's export the fast way (common/
   json_rec.h) when it is one that is valid and belongs where it is; declines
   every other record, which imp_record then reads with jansson (and refuses
   with the reason). buf: the record (len bytes, borrowed); jr: the reader's
   json_rec_t. 1 staged, 0 declined, -1 a staging error (fatal). */
int imp_fast_record(imp_t *imp, json_rec_t *jr, const char *buf, size_t len, long line);

/* ---- reg_ctl_import_db.c ---- */
/* Opens streams (1..IMP_STREAMS_MAX) connections, finds imp->team, creates
   each one's staging tables and points imp->units at the first stream's
   batch; imp (borrowed) must outlive the result. NULL after saying why
   (*exit_code set). */
imp_db_t *imp_db_new(reg_ctl_t *ctl, imp_t *imp, int streams, int *exit_code);
void imp_db_destroy(imp_db_t **self_p);
/* Stages one row of IMP_NCOLS values (NULL = SQL NULL) in the current batch;
   starts its COPY when needed. 0 / -1. */
int imp_db_row(imp_db_t *self, const char *const *cols);
/* Ends the current batch: its stream's backend drops the refused units' rows,
   checks ids against the database, inserts (imp->follow: upserts) and
   commits, updating imp's totals and report when done; meanwhile imp moves
   to the next stream, once that one's last batch is done (with one stream:
   this batch). 0, or -1 when a batch failed (said why). */
int imp_db_flush(imp_db_t *self, imp_t *imp);
/* Ends the current batch and waits for every stream's. 0 / -1. */
int imp_db_finish(imp_db_t *self, imp_t *imp);
/* --follow: archives the team's conversations mirrored from imp->url that
   are not archived yet and whose id is (in) or is not (!in) in ids, a
   Postgres uuid[] literal (borrowed), each with a conversation.archived
   event, in one transaction; adds them to imp->archived. Call it between
   batches (after imp_db_flush). 0, or -1 after saying why. */
int imp_db_archive(imp_db_t *self, const char *ids, bool in);

/* ---- reg_ctl_import_http.c: the old server over HTTP (libcurl) ---- */
#define IMP_SSE_LINE_MAX (1024 * 1024) /* bytes of one SSE line; longer ones are dropped */

typedef struct imp_http_t imp_http_t;
/* Called for each SSE event's data (NUL-terminated, borrowed), and once with
   NULL when the stream is open (its first bytes arrived). Returns 0 to go
   on, -1 to stop the stream (a fatal error). */
typedef int(imp_sse_fn)(void *arg, const char *data);

/* A client of base URL base (borrowed; a trailing / is ignored) sending
   token (borrowed, may be NULL) as a bearer token; *stop (borrowed, set by
   a signal handler) aborts a transfer within about a second. NULL on OOM. */
imp_http_t *imp_http_new(const char *base, const char *token, volatile sig_atomic_t *stop);
void imp_http_destroy(imp_http_t **self_p);
/* GET path: returns the HTTP status with *body (caller frees, NUL-terminated,
   at most IMP_RECORD_MAX bytes) set, or -1 with why in err. */
int imp_http_get(imp_http_t *self, const char *path, char **body, char *err, size_t errlen);
/* Reads the SSE stream at path, calling fn per event, until it ends.
   Returns 0 when the stream ended or broke after it opened (why in err),
   -1 when it could not be opened (why in err), 1 when *stop was set or fn
   returned -1. */
int imp_http_stream(
    imp_http_t *self, const char *path, imp_sse_fn *fn, void *arg, char *err, size_t errlen);

#endif
