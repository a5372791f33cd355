/*  util — UUIDs, clocks, hashing, tokens, conninfo masking and the interrupt flag. */
#include "common/util.h"

#include <ctype.h>
#include <czmq.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uuid/uuid.h>

volatile sig_atomic_t util_interrupted = 0;

static int s_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int util_uuid_parse(const char *text, uint8_t out[16])
{
    if (!text || strlen(text) != UTIL_UUID_STR_LEN) {
        return -1;
    }
    int b = 0;
    for (int i = 0; i < UTIL_UUID_STR_LEN;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') {
                return -1;
            }
            i++;
            continue;
        }
        int hi = s_hex(text[i]), lo = s_hex(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[b++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

void util_uuid_format(const uint8_t id[16], char out[UTIL_UUID_STR_LEN + 1])
{
    uuid_unparse_lower(id, out);
}

/* Random bytes for UUIDs, drawn from OpenSSL's DRBG S_RAND_POOL bytes at a time per
   thread (one RAND_bytes call costs about as much as a UUID's worth of work). A fork
   bumps s_rand_gen, so a child never hands out bytes its parent drew too. */
#define S_RAND_POOL 1024
static atomic_uint s_rand_gen = 1;
static _Thread_local struct {
    unsigned gen;              /* s_rand_gen when filled; 0: never */
    size_t used;               /* bytes handed out */
    uint8_t pool[S_RAND_POOL]; /* the bytes */
} s_rand;

static void s_rand_forked(void)
{
    atomic_fetch_add(&s_rand_gen, 1);
}

static void s_rand_init(void)
{
    pthread_atfork(NULL, NULL, s_rand_forked);
}

void util_uuid_generate(uint8_t out[16])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_rand_init);
    unsigned gen = atomic_load(&s_rand_gen);
    if (s_rand.gen != gen || s_rand.used + 16 > S_RAND_POOL) {
        if (RAND_bytes(s_rand.pool, S_RAND_POOL) != 1) {
            /* libuuid's random UUIDs: a getrandom, a getpid and a reseed per call. */
            s_rand.gen = 0;
            uuid_generate_random(out);
            return;
        }
        s_rand.gen = gen;
        s_rand.used = 0;
    }
    memcpy(out, s_rand.pool + s_rand.used, 16);
    memset(s_rand.pool + s_rand.used, 0, 16);
    s_rand.used += 16;
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10 (RFC 4122) */
}

bool util_uuid_is_nil(const uint8_t id[16])
{
    for (int i = 0; i < 16; i++) {
        if (id[i]) {
            return false;
        }
    }
    return true;
}

int64_t util_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_ms(void)
{
    return util_mono_us() / 1000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hexd[md[i] >> 4];
        out[2 * i + 1] = hexd[md[i] & 15];
    }
    out[64] = 0;
}

int util_token_generate(char out[48])
{
    unsigned char raw[32];
    char b64[64];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        return -1;
    }
    int n = EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw);
    /* base64 → base64url, no padding: 32 bytes give 43 characters. */
    int k = 0;
    for (int i = 0; i < n && b64[i] != '='; i++) {
        char c = b64[i];
        b64[k++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    /* 32 random bytes give 43 characters: "bk_" + 43 + NUL fills out exactly. */
    memcpy(out, "bk_", 3);
    memcpy(out + 3, b64, 43);
    out[46] = 0;
    return 0;
}

void util_time_format(int64_t wall_ms, char out[32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)(wall_ms % 1000);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    out[n + 4] = 'Z';
    out[n + 5] = 0;
}

uint64_t util_hash64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static void s_on_signal(int sig)
{
    (void)sig;
    util_interrupted = 1;
}

/* ---- conninfo masking ---------------------------------------------------- */

typedef struct {
    char *buf;   /* NUL-terminated output */
    size_t size; /* capacity of buf, NUL included */
    size_t len;  /* bytes written, at most size - 1 */
} mask_out_t;

static void s_put(mask_out_t *o, const char *text, size_t n)
{
    size_t room = o->size - 1 - o->len;
    n = n < room ? n : room;
    memcpy(o->buf + o->len, text, n);
    o->len += n;
    o->buf[o->len] = 0;
}

/* True when a key (percent-decoded when from a URL) names a password, in any
   case. A key too long to check is taken for one. */
static bool s_secret_key(const char *key, size_t n, bool url)
{
    char low[64];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)key[i];
        if (url && c == '%' && i + 2 < n && s_hex(key[i + 1]) >= 0 && s_hex(key[i + 2]) >= 0) {
            c = s_hex(key[i + 1]) * 16 + s_hex(key[i + 2]);
            i += 2;
        }
        if (k + 1 >= sizeof low) {
            return true;
        }
        low[k++] = (char)tolower(c);
    }
    low[k] = 0;
    return strstr(low, "password") != NULL;
}

/* The URL form: user[:password]@hosts/dbname?key=value&... A password runs
   from the first ':' to the last '@' of the whole URL: libpq ends the user
   part at the first '@' before any '/', but a password holding an unencoded
   '@', '/' or '?' must stay hidden too, so this may hide more than the
   password, never less. Query parameters are key=value separated by '&'. */
static void s_mask_url(const char *url, size_t scheme_len, mask_out_t *o)
{
    const char *auth = url + scheme_len;
    const char *at = strrchr(auth, '@');
    const char *p = url;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        s_put(o, url, (size_t)(colon + 1 - url));
        s_put(o, "***", 3);
        p = at;
    }
    /* Without a user password, an '@' found may be inside the query: the
       query then starts at the first '?'. */
    const char *query = strchr(colon ? at : auth, '?');
    if (!query) {
        s_put(o, p, strlen(p));
        return;
    }
    s_put(o, p, (size_t)(query + 1 - p));
    for (p = query + 1; *p;) {
        size_t n = strcspn(p, "&"), k = strcspn(p, "=&");
        if (k < n && s_secret_key(p, k, true)) {
            s_put(o, p, k + 1);
            s_put(o, "***", 3);
        } else {
            s_put(o, p, n);
        }
        p += n;
        if (*p) {
            s_put(o, p++, 1);
        }
    }
}

/* Skips one value the way libpq's conninfo parser reads it (quoted with
   backslash escapes, or up to the next whitespace); NULL when unterminated. */
static const char *s_skip_value(const char *p)
{
    if (*p != '\'') {
        for (; *p && !isspace((unsigned char)*p); p++) {
            if (*p == '\\' && p[1]) {
                p++;
            }
        }
        return p;
    }
    for (p++; *p != '\''; p++) {
        if (!*p) {
            return NULL;
        }
        if (*p == '\\' && p[1]) {
            p++;
        }
    }
    return p + 1;
}

/* The key=value form; -1 where libpq would report a syntax error. */
static int s_mask_pairs(const char *text, mask_out_t *o)
{
    const char *p = text;
    while (*p) {
        const char *start = p;
        while (isspace((unsigned char)*p)) {
            p++;
        }
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p)) {
            p++;
        }
        size_t key_len = (size_t)(p - key);
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (key_len == 0 && !*p) {
            s_put(o, start, (size_t)(p - start));
            break;
        }
        if (*p != '=') {
            return -1;
        }
        for (p++; isspace((unsigned char)*p);) {
            p++;
        }
        const char *value = p;
        if (!(p = s_skip_value(p))) {
            return -1;
        }
        s_put(o, start, (size_t)(value - start));
        if (s_secret_key(key, key_len, false)) {
            s_put(o, "***", 3);
        } else {
            s_put(o, value, (size_t)(p - value));
        }
    }
    return 0;
}

void util_mask_conninfo(const char *conninfo, char *out, size_t outlen)
{
    if (!out || outlen == 0) {
        return;
    }
    mask_out_t o = {out, outlen, 0};
    out[0] = 0;
    const char *text = conninfo ? conninfo : "";
    /* libpq takes only these two prefixes for the URL form. */
    static const char *const schemes[] = {"postgresql://", "postgres://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strncasecmp(text, schemes[i], strlen(schemes[i])) == 0) {
            s_mask_url(text, strlen(schemes[i]), &o);
            return;
        }
    }
    if (s_mask_pairs(text, &o) < 0) {
        /* Where the parse fails libpq and we may disagree on what the
           password is: show nothing of it. */
        o.len = 0;
        out[0] = 0;
        s_put(&o, "(unparseable conninfo)", 22);
    }
}

void util_signals_install(void)
{
    /* czmq would otherwise install its own SIGINT/SIGTERM handlers at the
       first socket (DEPS.md §9.5); we own the signals and stop by our flag. */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
