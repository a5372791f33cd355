/*  util — UUIDs, clocks, hashing, tokens and the interrupt flag. */
#include "common/util.h"

#include <czmq.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
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
