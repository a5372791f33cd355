/*  limits — a team's limits: defaults, parsing and the token bucket
    (common/limits.h). Pure: any thread. */
#include "common/limits.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void limits_defaults(limits_t *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->rate_n = LIMITS_RATE_N_DEF;
    lim->rate_per = LIMITS_RATE_PER_DEF;
    lim->burst = LIMITS_BURST_DEF;
    lim->actors = LIMITS_ACTORS_DEF;
    lim->streams = LIMITS_STREAMS_DEF;
    lim->turns = LIMITS_TURNS_DEF;
    lim->worktrees = LIMITS_WORKTREES_DEF;
}

/* Parses decimal digits [s, end) as 1..LIMITS_COUNT_MAX. */
static int s_digits(const char *s, const char *end, uint32_t *out)
{
    if (end <= s || end - s > 10 || *s == '0') {
        return -1;
    }
    uint64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < 1 || v > LIMITS_COUNT_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int limits_parse_count(const char *text, uint32_t *out)
{
    return text ? s_digits(text, text + strlen(text), out) : -1;
}

int limits_parse_rate(const char *text, uint32_t *n, uint32_t *per)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    if (!slash || strlen(slash) != 2) {
        return -1;
    }
    uint32_t period = slash[1] == 's' ? 1 : slash[1] == 'm' ? 60 : slash[1] == 'h' ? 3600 : 0;
    uint32_t count = 0;
    if (!period || s_digits(text, slash, &count) < 0) {
        return -1;
    }
    *n = count;
    *per = period;
    return 0;
}

static bool s_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* True when the item [s, s+len) appears in list before position upto. */
static bool s_seen(const char *list, const char *upto, const char *s, size_t len)
{
    const char *p = list;
    while (p < upto) {
        const char *comma = strchr(p, ',');
        size_t n = (size_t)((comma && comma < upto ? comma : upto) - p);
        if (n == len && !memcmp(p, s, len)) {
            return true;
        }
        p += n + 1;
    }
    return false;
}

static int s_why(const char **why, const char *text)
{
    if (why) {
        *why = text;
    }
    return -1;
}

int limits_parse_strategies(const char *text, const char **why)
{
    if (!text || !*text) {
        return s_why(why, "the list is empty");
    }
    if (strlen(text) >= LIMITS_STRATEGIES_LEN) {
        return s_why(why, "the list is too long");
    }
    size_t count = 0;
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0 || n > LIMITS_NAME_MAX) {
            return s_why(why, "a name is empty or longer than 64 bytes");
        }
        for (size_t i = 0; i < n; i++) {
            if (!s_name_char(p[i])) {
                return s_why(why, "a name has a character outside a-z 0-9 _ . -");
            }
        }
        if (s_seen(text, p, p, n)) {
            return s_why(why, "a name appears twice");
        }
        if (++count > LIMITS_STRATEGIES_MAX) {
            return s_why(why, "more than 64 names");
        }
        if (!comma) {
            return 0;
        }
        p = comma + 1;
    }
}

void limits_rate_format(const limits_t *lim, char *out, size_t len)
{
    char unit = lim->rate_per == 3600 ? 'h' : lim->rate_per == 60 ? 'm' : 's';
    snprintf(out, len, "%u/%c", lim->rate_n, unit);
}

bool limits_strategy_allowed(const limits_t *lim, const char *name)
{
    if (!lim->strategies[0]) {
        return true;
    }
    size_t len = name ? strlen(name) : 0;
    const char *end = lim->strategies + strlen(lim->strategies);
    return len > 0 && s_seen(lim->strategies, end, name, len);
}

/* ---- token bucket -------------------------------------------------------------------- */

/* Tokens gained per millisecond. */
static double s_rate_ms(const limits_t *lim)
{
    return (double)lim->rate_n / ((double)lim->rate_per * 1000.0);
}

static void s_refill(limits_bucket_t *b, const limits_t *lim, int64_t now_ms)
{
    if (!b->started) {
        b->tokens = lim->burst;
        b->last_ms = now_ms;
        b->started = true;
        return;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * s_rate_ms(lim);
        b->last_ms = now_ms;
    }
    /* A lowered burst applies at once. */
    if (b->tokens > lim->burst) {
        b->tokens = lim->burst;
    }
}

/* Whole seconds (at least 1 when missing > 0) to gain missing tokens. */
static uint32_t s_seconds_for(const limits_t *lim, double missing)
{
    if (missing <= 0) {
        return 0;
    }
    /* The epsilon keeps a float error from rounding 59.000000001 s up to 60. */
    double s = ceil(missing / s_rate_ms(lim) / 1000.0 - 1e-6);
    return s < 1 ? 1 : s > 86400 ? 86400 : (uint32_t)s;
}

bool limits_bucket_take(limits_bucket_t *bucket,
                        const limits_t *lim,
                        int64_t now_ms,
                        limits_quota_t *q)
{
    s_refill(bucket, lim, now_ms);
    bool ok = bucket->tokens >= 1.0;
    if (ok) {
        bucket->tokens -= 1.0;
    }
    if (q) {
        q->limit = lim->burst;
        q->remaining = (uint32_t)floor(bucket->tokens);
        q->reset_s = s_seconds_for(lim, (double)lim->burst - bucket->tokens);
        q->retry_after = ok ? 0 : s_seconds_for(lim, 1.0 - bucket->tokens);
    }
    return ok;
}

bool limits_bucket_full(const limits_bucket_t *bucket, const limits_t *lim, int64_t now_ms)
{
    if (!bucket->started) {
        return true;
    }
    double t = bucket->tokens;
    if (now_ms > bucket->last_ms) {
        t += (double)(now_ms - bucket->last_ms) * s_rate_ms(lim);
    }
    return t >= lim->burst;
}
