/*  limits — a team's limits (issue 12): their defaults, the parsing of the
    values `bickyctl team limits` takes and the auth reply carries
    ("50/s", "100", "echo,claude"), and the token bucket the gateway keeps per
    team. Pure functions on caller-owned structs: any thread. */
#ifndef BICKY_LIMITS_H
#define BICKY_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The defaults, for a team without a row in team_limits (or a NULL column).
   Generous: one team alone may still use a whole cluster as bench/run does
   (docs/performance.md: 22k activations/s, 1,000,000 actors on a node, 50,000
   SSE clients on a gateway); they bound a runaway client, not a busy team. */
#define LIMITS_RATE_N_DEF     100000     /* requests per period per gateway */
#define LIMITS_RATE_PER_DEF   1          /* period in seconds (1 = "/s") */
#define LIMITS_BURST_DEF      200000     /* token bucket size */
#define LIMITS_ACTORS_DEF     10000000   /* resident actors per node */
#define LIMITS_STREAMS_DEF    100000     /* SSE streams + WebSockets per gateway */
#define LIMITS_TURNS_DEF      10000      /* turns running at once per node */
#define LIMITS_WORKTREES_DEF  1000       /* active worktrees (cluster-wide) */
#define LIMITS_COUNT_MAX      1000000000 /* largest count accepted */
#define LIMITS_STRATEGIES_MAX 64         /* names in an allow-list */
#define LIMITS_NAME_MAX       64         /* bytes of a strategy name */
#define LIMITS_STRATEGIES_LEN 512        /* bytes of the comma list, NUL included */

typedef struct {
    uint32_t rate_n;                        /* requests per rate_per seconds */
    uint32_t rate_per;                      /* 1, 60 or 3600 */
    uint32_t burst;                         /* bucket size */
    uint32_t actors;                        /* resident actors per node */
    uint32_t streams;                       /* SSE + WebSocket per gateway */
    uint32_t turns;                         /* running turns per node */
    uint32_t worktrees;                     /* active worktrees */
    char strategies[LIMITS_STRATEGIES_LEN]; /* comma list; "" = every strategy */
} limits_t;

typedef struct {
    double tokens;   /* tokens left (fractional between refills) */
    int64_t last_ms; /* monotonic time of the last refill */
    bool started;    /* tokens/last_ms hold a value */
} limits_bucket_t;

typedef struct {
    uint32_t limit;       /* RateLimit-Limit: the bucket size */
    uint32_t remaining;   /* RateLimit-Remaining: whole tokens left */
    uint32_t reset_s;     /* RateLimit-Reset: seconds until the bucket is full */
    uint32_t retry_after; /* Retry-After when refused: seconds until one token */
} limits_quota_t;

/* Fills lim with the defaults above. */
void limits_defaults(limits_t *lim);
/* Parses a rate "N/s", "N/m" or "N/h" (N in 1..LIMITS_COUNT_MAX, no spaces).
   0 with *n and *per (seconds) set, or -1. */
int limits_parse_rate(const char *text, uint32_t *n, uint32_t *per);
/* Parses a count: decimal 1..LIMITS_COUNT_MAX. 0 or -1. */
int limits_parse_count(const char *text, uint32_t *out);
/* Checks a strategy allow-list "a,b,c": 1..LIMITS_STRATEGIES_MAX names of
   [a-z0-9_.-], 1..LIMITS_NAME_MAX bytes each, no duplicates, no empty item.
   0 or -1 with a reason in why (static string) when why is not NULL. */
int limits_parse_strategies(const char *text, const char **why);
/* Writes the rate as "N/s" (or /m, /h) into out. */
void limits_rate_format(const limits_t *lim, char *out, size_t len);
/* True when lim allows the strategy name (every name when the list is empty). */
bool limits_strategy_allowed(const limits_t *lim, const char *name);

/* Takes one token from bucket at now_ms (refilled at lim's rate, capped at
   lim's burst; a new bucket starts full). Returns true when a token was
   taken; fills q (may be NULL) with what the RateLimit headers say. */
bool limits_bucket_take(limits_bucket_t *bucket,
                        const limits_t *lim,
                        int64_t now_ms,
                        limits_quota_t *q);
/* True when the bucket is full at now_ms (an idle team whose entry may go). */
bool limits_bucket_full(const limits_bucket_t *bucket, const limits_t *lim, int64_t now_ms);

#endif
