/*  reg_ctl_import_db — what reg_ctl_import_db.c (connections, COPY, the wait
    for a free stream) and reg_ctl_import_flush.c (a batch's end, one step at
    a time) share: the streams. Only these two files include it (libpq).
    Single-threaded: the streams' backends work in parallel, the CLI drives
    them from one thread with async libpq. */
#ifndef BICKY_REG_CTL_IMPORT_DB_H
#define BICKY_REG_CTL_IMPORT_DB_H

#include "registry/reg_ctl_import.h"

#include <libpq-fe.h>

/* Where a stream's batch is; each step is one statement sent with
   PQsendQueryParams, the next one sent when its result is in. */
typedef enum {
    IMP_ST_IDLE,        /* no batch, or a batch being staged (in_copy) */
    IMP_ST_COPY_END,    /* PQputCopyEnd sent */
    IMP_ST_ANALYZE,     /* ANALYZE imp_rec */
    IMP_ST_SAVEPOINT,   /* SAVEPOINT imp_batch: a retry goes back here */
    IMP_ST_CHECK,       /* s_check_sql (or the follow one) */
    IMP_ST_DROP,        /* DELETE the dropped units' rows */
    IMP_ST_WRITE,       /* insert (or upsert) statement number `write` */
    IMP_ST_COMMIT,      /* COMMIT */
    IMP_ST_ROLLBACK_TO, /* ROLLBACK TO SAVEPOINT imp_batch, then the check again */
    /* a batch that goes straight into the tables (reg_ctl_import_direct.c) */
    IMP_ST_D_BEGIN,    /* BEGIN */
    IMP_ST_D_CHECK,    /* which of its conversations the database has */
    IMP_ST_D_COPY,     /* COPY <table> FROM STDIN sent: its PGRES_COPY_IN awaited */
    IMP_ST_D_FEED,     /* its rows handed to libpq (s->feeding), then its result */
    IMP_ST_D_LAST,     /* the conversations' last_event_id */
    IMP_ST_D_REVERT,   /* the events' reverted_by */
    IMP_ST_D_ROLLBACK, /* ROLLBACK after a conflict, then the batch the staged way */
} imp_step_t;

typedef struct imp_direct_t imp_direct_t;

typedef struct {
    imp_db_t *db;          /* owner */
    PGconn *conn;          /* this stream's connection (its own staging tables) */
    bool in_copy;          /* its batch's COPY is open */
    char *out;             /* COPY bytes not yet sent */
    size_t len, cap;       /* used, allocated */
    imp_unit_t *units;     /* the batch's conversations (IMP_BATCH_UNITS) */
    size_t nunits;         /* used */
    imp_step_t step;       /* where the batch's end is */
    int write;             /* IMP_ST_WRITE: which statement */
    int retries;           /* checks run again after a conflict with another stream */
    char *drop;            /* the dropped units, an int[] literal */
    long long counts[5];   /* rows written by each write statement (added at COMMIT) */
    long long counts_b[5]; /* second column of the upserts (changed rows) */
    PGresult *res;         /* the running step's result so far */
    bool direct;           /* the batch goes straight into the tables, not staged */
    bool feeding;          /* direct: COPY rows still to hand to libpq (socket writable) */
    imp_direct_t *d;       /* direct: its state (reg_ctl_import_direct.c) */
} imp_stream_t;

struct imp_db_t {
    imp_t *imp;       /* the importer (totals, report) */
    char team_id[37]; /* target team */
    imp_stream_t *st; /* the streams */
    int n;            /* how many */
    int cur;          /* the one staging the current batch */
    size_t held;      /* bytes held since the streams were last pumped */
    bool failed;      /* a batch failed (said why): stop */
};

/* ---- reg_ctl_import_direct.c ---- */
/* A batch held whole in s->out (not staged: no COPY open) goes straight into
   the tables: its conversations are checked, then COPYed with its messages and
   events, in one transaction; after a unique violation or a deadlock it
   rolls back and goes the staged way (full check). */
#define IMP_DIRECT_MAX (32u * 1024 * 1024)
/* Starts the batch's end. 0 / -1 (said why). */
int imp_direct_start(imp_stream_t *s);
/* The result res (taken) of s's running direct step; sends the next one. */
void imp_direct_step(imp_stream_t *s, PGresult *res);
/* Hands the running COPY's rows to libpq without blocking (s->feeding is
   false once all are flushed). 0 / -1 (said why). */
int imp_direct_feed(imp_stream_t *s);
void imp_direct_free(imp_stream_t *s);

/* ---- reg_ctl_import_flush.c ---- */
/* Sends sql (n params p) as s's next step; 0, or -1 after saying why. */
int imp_stream_send(imp_stream_t *s, imp_step_t step, const char *sql, int n, const char *const *p);
/* The batch's unit of number n, or NULL (units are numbered consecutively). */
imp_unit_t *imp_stream_unit(imp_stream_t *s, long n);
/* Drops unit u of the batch for a check's reason (code: present, foreign,
   duplicate, msg_exists, msg_dup, msg_moved; detail: the message id). */
void imp_unit_dropped(imp_t *imp, imp_unit_t *u, const char *code, const char *detail);
/* Starts the end of s's batch (its COPY is open): ends the COPY. 0 / -1. */
int imp_flush_start(imp_stream_t *s);
/* Handles the result (taken; NULL when the statement gave none) of s's
   running step and sends the next one; s->step is IMP_ST_IDLE when the
   batch is committed or failed (s->db->failed set, why said). */
void imp_flush_step(imp_stream_t *s, PGresult *res);

#endif
