/*  gw_limits — per-team rate (token bucket), open streams and strategies at
    the gateway (gateway/gw_limits.h, docs/api.md "Limits"). Loop thread only. */
#define LOG_MODULE "gw_limits"
#include "gateway/gw_limits.h"

#include "common/cfg_file.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char key[33];           /* team id, hex */
    limits_bucket_t bucket; /* rate */
    limits_t lim;           /* the limits last seen with a request of the team */
    uint32_t streams;       /* SSE + WebSocket open on this gateway */
} s_team_t;

struct gw_limits_t {
    zhashx_t *teams; /* key → s_team_t (owned) */
    size_t max;      /* bound on teams */
};

static void s_team_free(void **item)
{
    free(*item);
    *item = NULL;
}

gw_limits_t *gw_limits_new(size_t max_teams)
{
    gw_limits_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->max = max_teams ? max_teams : 1;
    self->teams = zhashx_new();
    if (!self->teams) {
        gw_limits_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->teams, s_team_free);
    return self;
}

void gw_limits_destroy(gw_limits_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    zhashx_destroy(&(*self_p)->teams);
    free(*self_p);
    *self_p = NULL;
}

static void s_key(const uint8_t team[16], char key[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        key[2 * i] = hex[team[i] >> 4];
        key[2 * i + 1] = hex[team[i] & 15];
    }
    key[32] = 0;
}

/* Drops every idle team (no stream open, bucket full): they lose nothing. */
static void s_sweep(gw_limits_t *self, int64_t now_ms)
{
    zlistx_t *keys = zhashx_keys(self->teams);
    for (const char *k = keys ? zlistx_first(keys) : NULL; k; k = zlistx_next(keys)) {
        s_team_t *t = zhashx_lookup(self->teams, k);
        if (t && t->streams == 0 && limits_bucket_full(&t->bucket, &t->lim, now_ms)) {
            zhashx_delete(self->teams, k);
        }
    }
    zlistx_destroy(&keys);
}

/* The team's entry, made when missing (NULL when the table is full of busy teams). */
static s_team_t *
s_team(gw_limits_t *self, const uint8_t team[16], const limits_t *lim, int64_t now_ms)
{
    char key[33];
    s_key(team, key);
    s_team_t *t = zhashx_lookup(self->teams, key);
    if (!t) {
        if (zhashx_size(self->teams) >= self->max) {
            s_sweep(self, now_ms);
        }
        if (zhashx_size(self->teams) >= self->max || !(t = calloc(1, sizeof *t))) {
            return NULL;
        }
        memcpy(t->key, key, sizeof key);
        zhashx_insert(self->teams, t->key, t);
    }
    if (lim) {
        t->lim = *lim;
    }
    return t;
}

bool gw_limits_take(gw_limits_t *self,
                    const uint8_t team[16],
                    const limits_t *lim,
                    int64_t now_ms,
                    limits_quota_t *q)
{
    s_team_t *t = s_team(self, team, lim, now_ms);
    if (!t) {
        if (q) {
            *q = (limits_quota_t){.limit = lim->burst, .retry_after = 1};
        }
        return false;
    }
    return limits_bucket_take(&t->bucket, lim, now_ms, q);
}

uint32_t gw_limits_streams(gw_limits_t *self, const uint8_t team[16])
{
    char key[33];
    s_key(team, key);
    s_team_t *t = zhashx_lookup(self->teams, key);
    return t ? t->streams : 0;
}

int gw_limits_stream_open(gw_limits_t *self,
                          const uint8_t team[16],
                          const limits_t *lim,
                          bool force)
{
    s_team_t *t = s_team(self, team, lim, util_mono_ms());
    if (!t || (!force && t->streams >= lim->streams)) {
        return -1;
    }
    t->streams++;
    return 0;
}

void gw_limits_stream_close(gw_limits_t *self, const uint8_t team[16])
{
    char key[33];
    s_key(team, key);
    s_team_t *t = zhashx_lookup(self->teams, key);
    if (t && t->streams > 0) {
        t->streams--;
    }
}

/* ---- auth answer -------------------------------------------------------------------- */

static void s_count(const json_t *obj, const char *name, uint32_t *out)
{
    json_t *v = json_object_get(obj, name);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (n >= 1 && n <= LIMITS_COUNT_MAX) {
        *out = (uint32_t)n;
    }
}

void gw_limits_from_json(limits_t *lim, const json_t *obj)
{
    limits_defaults(lim);
    const char *rate = json_string_value(json_object_get(obj, "rate"));
    uint32_t n, per;
    if (rate && limits_parse_rate(rate, &n, &per) == 0) {
        lim->rate_n = n;
        lim->rate_per = per;
    }
    s_count(obj, "burst", &lim->burst);
    s_count(obj, "actors", &lim->actors);
    s_count(obj, "streams", &lim->streams);
    s_count(obj, "turns", &lim->turns);
    s_count(obj, "worktrees", &lim->worktrees);
    const char *strategies = json_string_value(json_object_get(obj, "strategies"));
    if (strategies && limits_parse_strategies(strategies, NULL) == 0) {
        snprintf(lim->strategies, sizeof lim->strategies, "%s", strategies);
    }
}

void gw_limits_pack(const limits_t *lim, uint32_t out[3])
{
    out[0] = lim->turns;
    out[1] = lim->actors;
    out[2] = lim->worktrees;
}

void gw_limits_unpack(const uint32_t in[3], limits_t *lim)
{
    limits_defaults(lim);
    lim->turns = in[0];
    lim->actors = in[1];
    lim->worktrees = in[2];
}

/* ---- requests ----------------------------------------------------------------------- */

int gw_limits_admit(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    if (gw_limits_take(srv->limits, req->team_id, &req->limits, util_mono_ms(), &req->quota)) {
        return 0;
    }
    char rate[24];
    limits_rate_format(&req->limits, rate, sizeof rate);
    gw_error_t err;
    gw_error_set(&err, 429, "rate_limited", NULL,
                 "this team's rate limit is reached (%s, burst %u, per gateway)", rate,
                 req->limits.burst);
    err.retry_after = req->quota.retry_after ? req->quota.retry_after : 1;
    gw_req_respond_error(req, &err);
    return -1;
}

/* The strategy a create without one gets: the config's default (echo built in). */
static const char *s_default_strategy(const gw_server_t *srv)
{
    const cfg_strategy_t *s =
        srv->cfg->strategies ? cfg_file_default_strategy(srv->cfg->strategies) : NULL;
    return s ? s->name : "echo";
}

int gw_limits_strategy(gw_req_t *req, const json_t *obj, bool create)
{
    const char *name = json_string_value(json_object_get(obj, "strategy"));
    if (!name && create) {
        name = s_default_strategy(req->srv);
    }
    if (!name || limits_strategy_allowed(&req->limits, name)) {
        return 0;
    }
    char list[LIMITS_STRATEGIES_LEN + 64];
    snprintf(list, sizeof list, "%s", req->limits.strategies);
    gw_error_t err;
    gw_error_set(&err, 400, "invalid_field", "strategy",
                 "strategy '%.64s' is not allowed for this team; allowed: %.240s", name, list);
    gw_req_respond_error(req, &err);
    return -1;
}

int gw_limits_stream_take(gw_req_t *req)
{
    if (gw_limits_stream_open(req->srv->limits, req->team_id, &req->limits, false) == 0) {
        return 0;
    }
    gw_error_t err;
    gw_error_set(&err, 429, "rate_limited", NULL,
                 "this team has %u streams open on this gateway (its limit)",
                 gw_limits_streams(req->srv->limits, req->team_id));
    err.retry_after = 5;
    gw_req_respond_error(req, &err);
    return -1;
}

void gw_limits_headers(const gw_req_t *req, struct MHD_Response *resp)
{
    if (!req->has_team || req->quota.limit == 0 || !resp) {
        return;
    }
    char v[16];
    snprintf(v, sizeof v, "%u", req->quota.limit);
    MHD_add_response_header(resp, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%u", req->quota.remaining);
    MHD_add_response_header(resp, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%u", req->quota.reset_s);
    MHD_add_response_header(resp, "RateLimit-Reset", v);
}

json_t *gw_limits_json(gw_req_t *req)
{
    const limits_t *l = &req->limits;
    char rate[24];
    limits_rate_format(l, rate, sizeof rate);
    json_t *strategies = json_null();
    if (l->strategies[0]) {
        strategies = json_array();
        char copy[LIMITS_STRATEGIES_LEN];
        snprintf(copy, sizeof copy, "%s", l->strategies);
        char *save = NULL;
        for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            json_array_append_new(strategies, json_string(s));
        }
    }
    json_t *limits = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "rate", rate, "burst",
                               (json_int_t)l->burst, "actors", (json_int_t)l->actors, "streams",
                               (json_int_t)l->streams, "turns", (json_int_t)l->turns, "worktrees",
                               (json_int_t)l->worktrees, "strategies", strategies);
    json_t *usage =
        json_pack("{s:I, s:I}", "rate_remaining", (json_int_t)req->quota.remaining, "streams",
                  (json_int_t)gw_limits_streams(req->srv->limits, req->team_id));
    return json_pack("{s:o, s:o}", "limits", limits, "usage", usage);
}
