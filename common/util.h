/*  util — small helpers every process uses: UUIDs, clocks, hashing, tokens,
    conninfo masking, process-wide interrupt handling. Thread-safe (no shared
    state) except util_signals_install, which main calls once before any
    thread starts. */
#ifndef BICKY_UTIL_H
#define BICKY_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_UUID_STR_LEN 36

/* Parses a lowercase or uppercase hyphenated UUID into 16 bytes; -1 if malformed. */
int util_uuid_parse(const char *text, uint8_t out[16]);
/* Formats 16 bytes as a lowercase hyphenated UUID into out (37 bytes). */
void util_uuid_format(const uint8_t id[16], char out[UTIL_UUID_STR_LEN + 1]);
/* Fills out with a new random (v4) UUID. */
void util_uuid_generate(uint8_t out[16]);
/* True when all 16 bytes are zero. */
bool util_uuid_is_nil(const uint8_t id[16]);

/* Monotonic clock in milliseconds / microseconds; wall clock in ms since the epoch. */
int64_t util_mono_ms(void);
int64_t util_mono_us(void);
int64_t util_wall_ms(void);

/* SHA-256 of data as 64 lowercase hex characters plus NUL in out. */
void util_sha256_hex(const void *data, size_t len, char out[65]);
/* A new random API token "bk_" + 43 base64url characters, NUL-terminated in out (48 bytes). */
int util_token_generate(char out[48]);

/* Formats a wall-clock ms time as RFC 3339 UTC with milliseconds (25 bytes). */
void util_time_format(int64_t wall_ms, char out[32]);

/* Stable 64-bit hash of bytes (FNV-1a 64 mixed with the murmur3 finaliser);
   identical in every process and across restarts. */
uint64_t util_hash64(const void *data, size_t len);

/* Writes conninfo (libpq key=value form, or a postgresql:// / postgres:// URL)
   into out with every password replaced by "***": the value of a key that
   names a password (password, sslpassword; in the URL's query too) and the
   password of a URL's user:password@ (up to the URL's last '@': a URL with
   another '@' after the password loses more than it, never less). The rest
   is kept as written, e.g. "host=/tmp/pg password=*** dbname=b",
   "postgresql://bob:***@h/db". A key=value string libpq would refuse gives
   "(unparseable conninfo)". Truncated to outlen - 1 bytes (a password never
   reaches out). Use it wherever a conninfo is printed or logged. Borrows
   conninfo (may be NULL); any thread. */
void util_mask_conninfo(const char *conninfo, char *out, size_t outlen);

/* Process-wide stop flag set by SIGTERM/SIGINT (installed by util_signals_install,
   which also disables czmq's own handlers: call it before creating any socket). */
extern volatile sig_atomic_t util_interrupted;
void util_signals_install(void);

#endif
