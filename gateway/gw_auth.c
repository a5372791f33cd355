/*  gw_auth — bearer-token authentication: a bounded cache token-SHA-256 →
    team (clock eviction, positive and negative TTLs) and the check that asks
    a node (`auth` op) on a miss. Failed checks are counted per client
    address (gw_iptab): past --auth-fail-max in a window the address gets 429
    without a node being asked. Loop thread only. */
#define LOG_MODULE "gw_auth"
#include "gateway/gateway_internal.h"
#include "gateway/gw_legacy.h"
#include "gateway/gw_limits.h"

#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char key[65];       /* token SHA-256 hex */
    bool used;          /* slot holds an entry */
    bool allow;         /* known token (else refused) */
    bool admin;         /* an admin token (api_tokens.admin), as the auth answer said */
    bool ref;           /* clock bit: looked up since the hand last passed */
    uint8_t team[16];   /* team of an allowed token */
    limits_t lim;       /* the team's limits, as the auth answer gave them */
    int64_t expires_ms; /* monotonic expiry */
} s_entry_t;

struct gw_auth_cache_t {
    s_entry_t *entries; /* fixed array of capacity slots */
    size_t capacity;    /* slots */
    size_t count;       /* used slots */
    size_t hand;        /* clock hand */
    zhashx_t *index;    /* key → s_entry_t * (not owned) */
    int64_t pos_ttl_ms; /* allowed entries live this long */
    int64_t neg_ttl_ms; /* refused entries live this long */
    uint64_t revoked;   /* the registry's token revocation counter last seen */
    bool revoked_known; /* revoked holds a value from the registry */
};

gw_auth_cache_t *gw_auth_cache_new(size_t capacity, int64_t pos_ttl_ms, int64_t neg_ttl_ms)
{
    gw_auth_cache_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->capacity = capacity ? capacity : 1;
    self->entries = calloc(self->capacity, sizeof *self->entries);
    self->index = zhashx_new();
    self->pos_ttl_ms = pos_ttl_ms;
    self->neg_ttl_ms = neg_ttl_ms;
    if (!self->entries || !self->index) {
        gw_auth_cache_destroy(&self);
    }
    return self;
}

void gw_auth_cache_destroy(gw_auth_cache_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gw_auth_cache_t *self = *self_p;
    zhashx_destroy(&self->index);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static void s_evict(gw_auth_cache_t *self, s_entry_t *e)
{
    zhashx_delete(self->index, e->key);
    e->used = false;
    self->count--;
}

gw_auth_hit_t gw_auth_cache_get(
    gw_auth_cache_t *self, const char *sha_hex, int64_t now_ms, uint8_t team[16], limits_t *lim)
{
    s_entry_t *e = zhashx_lookup(self->index, sha_hex);
    if (!e) {
        return GW_AUTH_MISS;
    }
    if (now_ms >= e->expires_ms) {
        s_evict(self, e);
        return GW_AUTH_MISS;
    }
    e->ref = true;
    if (!e->allow) {
        return GW_AUTH_DENY;
    }
    memcpy(team, e->team, 16);
    if (lim) {
        *lim = e->lim;
    }
    return GW_AUTH_ALLOW;
}

/* Finds a slot with the clock: a free or expired slot is taken at once; a
   referenced one gets a second chance. Bounded by two turns of the hand. */
static s_entry_t *s_take_slot(gw_auth_cache_t *self, int64_t now_ms)
{
    for (size_t step = 0; step < 2 * self->capacity + 1; step++) {
        s_entry_t *e = &self->entries[self->hand];
        self->hand = (self->hand + 1) % self->capacity;
        if (!e->used) {
            return e;
        }
        if (now_ms >= e->expires_ms || !e->ref) {
            s_evict(self, e);
            return e;
        }
        e->ref = false;
    }
    s_entry_t *e = &self->entries[self->hand];
    s_evict(self, e);
    return e;
}

void gw_auth_cache_put(gw_auth_cache_t *self,
                       const char *sha_hex,
                       const uint8_t *team,
                       const limits_t *lim,
                       int64_t now_ms)
{
    s_entry_t *e = zhashx_lookup(self->index, sha_hex);
    if (!e) {
        e = s_take_slot(self, now_ms);
        snprintf(e->key, sizeof e->key, "%s", sha_hex);
        e->used = true;
        self->count++;
        zhashx_insert(self->index, e->key, e);
    }
    e->allow = team != NULL;
    e->admin = false;
    e->ref = false;
    if (team) {
        memcpy(e->team, team, 16);
    }
    if (lim) {
        e->lim = *lim;
    } else {
        limits_defaults(&e->lim);
    }
    e->expires_ms = now_ms + (team ? self->pos_ttl_ms : self->neg_ttl_ms);
}

void gw_auth_cache_set_admin(gw_auth_cache_t *self, const char *sha_hex, bool admin)
{
    s_entry_t *e = zhashx_lookup(self->index, sha_hex);
    if (e && e->allow) {
        e->admin = admin;
    }
}

bool gw_auth_cache_admin(gw_auth_cache_t *self, const char *sha_hex, int64_t now_ms)
{
    s_entry_t *e = zhashx_lookup(self->index, sha_hex);
    return e && e->allow && e->admin && now_ms < e->expires_ms;
}

size_t gw_auth_cache_size(const gw_auth_cache_t *self)
{
    return self->count;
}

void gw_auth_cache_clear(gw_auth_cache_t *self)
{
    for (size_t i = 0; i < self->capacity; i++) {
        if (self->entries[i].used) {
            s_evict(self, &self->entries[i]);
        }
    }
}

void gw_auth_cache_revoked(gw_auth_cache_t *self, const char *sha_hex, uint64_t seq)
{
    s_entry_t *e = zhashx_lookup(self->index, sha_hex);
    if (e) {
        s_evict(self, e);
    }
    if (self->revoked_known && seq > self->revoked + 1) {
        LOG_N("token revocations missed (seq %llu after %llu): auth cache flushed",
              (unsigned long long)seq, (unsigned long long)self->revoked);
        gw_auth_cache_clear(self);
    }
    if (!self->revoked_known || seq > self->revoked) {
        self->revoked = seq;
    }
    self->revoked_known = true;
}

void gw_auth_cache_revoked_seq(gw_auth_cache_t *self, uint64_t seq)
{
    if (seq == 0 || (self->revoked_known && seq == self->revoked)) {
        return;
    }
    if (self->count > 0) {
        LOG_N("token revocations at seq %llu (had %s%llu): auth cache flushed",
              (unsigned long long)seq, self->revoked_known ? "" : "none, ",
              (unsigned long long)self->revoked);
        gw_auth_cache_clear(self);
    }
    self->revoked = seq;
    self->revoked_known = true;
}

/* ---- the check ---------------------------------------------------------- */

static void s_unauthorized(gw_req_t *req, const char *why)
{
    gw_error_t err;
    gw_error_set(&err, 401, "unauthorized", NULL, "%s", why);
    char *body = gw_error_body(&err);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body ? strlen(body) : 0, body ? body : (char *)"",
                                        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    gw_req_respond(req, 401, resp);
}

/* Extracts the token of "Authorization: Bearer <token>"; NULL when absent or
   malformed. Returns a pointer into header, *len set. */
static const char *s_bearer(const char *header, size_t *len)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) {
        return NULL;
    }
    const char *t = header + 7;
    while (*t == ' ') {
        t++;
    }
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ') {
        n--;
    }
    if (n == 0 || n > GW_TOKEN_MAX) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isgraph((unsigned char)t[i])) {
            return NULL;
        }
    }
    *len = n;
    return t;
}

/* A token given as ?token= (browsers cannot set headers on a WebSocket):
   the same rules as a bearer token. */
static const char *s_query_token(const char *value, size_t *len)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n > GW_TOKEN_MAX) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isgraph((unsigned char)value[i])) {
            return NULL;
        }
    }
    *len = n;
    return value;
}

/* A failed authentication: counted against the client's address, then 401. */
static void s_failed(gw_req_t *req, const char *why)
{
    gw_iptab_fail(req->srv->iptab, req->ip, util_mono_ms());
    s_unauthorized(req, why);
}

/* 429 when the client's address failed too often in its window: answered
   from the table, without asking a node. True when answered. */
static bool s_blocked(gw_req_t *req)
{
    int64_t ms = gw_iptab_blocked_ms(req->srv->iptab, req->ip, util_mono_ms());
    if (ms <= 0) {
        return false;
    }
    gw_error_t err;
    gw_error_set(&err, 429, "rate_limited", NULL,
                 "too many failed authentications from this address; retry later");
    err.retry_after = (unsigned)((ms + 999) / 1000);
    LOG_I("authentication refused ip=%s: too many failures, retry_after=%u", req->ip,
          err.retry_after);
    gw_req_respond_error(req, &err);
    return true;
}

static void s_auth_reply(void *owner, const gw_reply_t *reply)
{
    gw_req_t *req = owner;
    int64_t now = util_mono_ms();
    if (reply->status == 401 || reply->status == 403 || reply->status == 404) {
        gw_auth_cache_put(req->srv->auth, req->token_sha, NULL, NULL, now);
        s_failed(req, "invalid or revoked token");
        return;
    }
    if (reply->status != 200) {
        gw_req_respond_json(req, (unsigned)reply->status, reply->body, reply->retry_after);
        return;
    }
    json_t *o = reply->body ? json_loads(reply->body, 0, NULL) : NULL;
    const char *team = o ? json_string_value(json_object_get(o, "team_id")) : NULL;
    uint8_t id[16];
    if (!team || util_uuid_parse(team, id) < 0) {
        LOG_W("auth reply without a valid team_id; answering 503");
        json_decref(o);
        gw_req_fail(req, 503, "unavailable", "authentication is unavailable right now");
        return;
    }
    gw_limits_from_json(&req->limits, json_object_get(o, "limits"));
    req->admin = json_is_true(json_object_get(o, "admin"));
    json_decref(o);
    gw_auth_cache_put(req->srv->auth, req->token_sha, id, &req->limits, now);
    gw_auth_cache_set_admin(req->srv->auth, req->token_sha, req->admin);
    memcpy(req->team_id, id, 16);
    req->has_team = true;
    if (gw_limits_admit(req) == 0) {
        req->next(req);
    }
}

const char *gw_auth_token(gw_req_t *req, size_t *len)
{
    const char *token = gw_legacy_token(req, len);
    const char *header = gw_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!token) {
        token = s_bearer(header, len);
    }
    if (!token && !header && req->route && (req->route->flags & GW_ROUTE_QUERY_TOKEN)) {
        token = s_query_token(gw_req_query(req, "token"), len);
    }
    return token;
}

void gw_auth_check(gw_req_t *req, gw_handler_fn *next)
{
    size_t len = 0;
    const char *token = gw_auth_token(req, &len);
    gw_auth_hit_t hit = GW_AUTH_MISS;
    int64_t now = util_mono_ms();
    if (token) {
        util_sha256_hex(token, len, req->token_sha);
        hit = gw_auth_cache_get(req->srv->auth, req->token_sha, now, req->team_id, &req->limits);
    }
    if (hit == GW_AUTH_ALLOW) {
        /* A token already known good passes even from a blocked address
           (another client behind the same NAT): nothing is asked for it. */
        req->admin = gw_auth_cache_admin(req->srv->auth, req->token_sha, now);
        req->has_team = true;
        if (gw_limits_admit(req) == 0) {
            next(req);
        }
        return;
    }
    if (s_blocked(req)) {
        return;
    }
    if (!token) {
        s_failed(req, "missing or malformed bearer token");
        return;
    }
    if (hit == GW_AUTH_DENY) {
        s_failed(req, "invalid or revoked token");
        return;
    }
    req->next = next;
    gw_req_call(req, PROTO_OP_AUTH, json_pack("{s:s}", "token_sha256", req->token_sha),
                s_auth_reply);
}
