/*  test_util — UUIDs (parse, format, random v4 generation, never the same in a
    forked child as in its parent), SHA-256 hex and API tokens: well-formed
    output, round trips, malformed input refused. Conninfo masking: every
    password hidden in both forms, the rest kept as written. */
#include "common/util.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int s_cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

Test(util, generated_uuids_are_v4_and_distinct)
{
    enum { N = 20000 };
    uint8_t(*ids)[16] = malloc(N * sizeof *ids);
    cr_assert_not_null(ids);
    for (int i = 0; i < N; i++) {
        util_uuid_generate(ids[i]);
        cr_assert_eq(ids[i][6] >> 4, 4, "version nibble");
        cr_assert_eq(ids[i][8] >> 6, 2, "variant bits");
        cr_assert_not(util_uuid_is_nil(ids[i]));
    }
    qsort(ids, N, 16, s_cmp16);
    for (int i = 1; i < N; i++) {
        cr_assert_neq(memcmp(ids[i - 1], ids[i], 16), 0, "duplicate uuid");
    }
    /* Every random bit varies: each of the 122 is seen both set and clear. */
    uint8_t any[16] = {0}, all[16];
    memset(all, 0xff, sizeof all);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 16; k++) {
            any[k] |= ids[i][k];
            all[k] &= ids[i][k];
        }
    }
    for (int k = 0; k < 16; k++) {
        uint8_t fixed = k == 6 ? 0xf0 : k == 8 ? 0xc0 : 0;
        cr_assert_eq(any[k] | fixed, 0xff, "byte %d: a bit never set", k);
        cr_assert_eq(all[k] & (uint8_t)~fixed, 0, "byte %d: a bit never clear", k);
    }
    free(ids);
}

/* Random bytes are pooled per thread: a forked child must not hand out the bytes its
   parent is about to use (the gateway forks its workers). */
Test(util, forked_child_never_repeats_the_parent)
{
    uint8_t first[16], parent[16], child[16];
    util_uuid_generate(first); /* fills the pool */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        uint8_t id[16];
        util_uuid_generate(id);
        _exit(write(fds[1], id, 16) == 16 ? 0 : 1);
    }
    util_uuid_generate(parent);
    cr_assert_eq(read(fds[0], child, 16), 16);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(fds[0]);
    close(fds[1]);
    cr_assert_neq(memcmp(parent, child, 16), 0, "the child repeated its parent's next UUID");
    cr_assert_neq(memcmp(first, child, 16), 0);
}

Test(util, uuid_format_and_parse_round_trip)
{
    uint8_t id[16], back[16];
    char text[UTIL_UUID_STR_LEN + 1];
    util_uuid_generate(id);
    util_uuid_format(id, text);
    cr_assert_eq(strlen(text), UTIL_UUID_STR_LEN);
    cr_assert(text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-');
    cr_assert_eq(text[14], '4');
    cr_assert_eq(util_uuid_parse(text, back), 0);
    cr_assert_eq(memcmp(id, back, 16), 0);
    cr_assert_eq(util_uuid_parse("0E6A1B2C-3D4E-4F50-8A6B-7C8D9E0F1A2B", back), 0);
    util_uuid_format(back, text);
    cr_assert_str_eq(text, "0e6a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b");
}

Test(util, uuid_parse_refuses_malformed)
{
    uint8_t id[16];
    const char *bad[] = {
        "",
        "0e6a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2",   /* short */
        "0e6a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b0", /* long */
        "0e6a1b2c3d4e-4f50-8a6b-7c8d9e0f1a2b0",  /* hyphen missing */
        "0e6a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2g",  /* not hex */
        "0e6a1b2c-3d4e-4f50-8a6b_7c8d9e0f1a2b",  /* wrong separator */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(util_uuid_parse(bad[i], id), -1, "accepted \"%s\"", bad[i]);
    }
    cr_assert_eq(util_uuid_parse(NULL, id), -1);
}

Test(util, tokens_are_prefixed_base64url_and_distinct)
{
    char a[48], b[48];
    cr_assert_eq(util_token_generate(a), 0);
    cr_assert_eq(util_token_generate(b), 0);
    cr_assert_eq(strlen(a), 46);
    cr_assert_eq(strncmp(a, "bk_", 3), 0);
    cr_assert_eq(strspn(a + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 43);
    cr_assert_str_neq(a, b);
}

Test(util, sha256_hex_matches_the_standard_vectors)
{
    char hex[65];
    util_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    util_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* ---- util_mask_conninfo -------------------------------------------------- */

typedef struct {
    const char *in;   /* conninfo given */
    const char *want; /* expected output */
} mask_case_t;

Test(util, mask_conninfo_hides_every_password)
{
    const mask_case_t cases[] = {
        /* key=value form */
        {"host=/tmp/pg port=5432 password=s3cret dbname=b",
         "host=/tmp/pg port=5432 password=*** dbname=b"},
        {"password=s3cret", "password=***"},
        {"host=h password = 's3 \\ cr\\'et' user=u", "host=h password = *** user=u"},
        {"host=h password=s3\\ cret user=u", "host=h password=*** user=u"},
        {"password='s3cret'dbname=b", "password=***dbname=b"},
        {"sslpassword=s3cret sslkey=/k", "sslpassword=*** sslkey=/k"},
        {"  host=h  ", "  host=h  "},
        {"host=h user=bob dbname=bicky", "host=h user=bob dbname=bicky"},
        {"", ""},
        /* URL form */
        {"postgresql://bob:s3cret@db.example:6543/app", "postgresql://bob:***@db.example:6543/app"},
        {"postgres://bob:s3cret@h/db", "postgres://bob:***@h/db"},
        {"postgresql://bob:s3@cr?et@h/db", "postgresql://bob:***@h/db"},
        {"postgresql://bob@h:5432/db", "postgresql://bob@h:5432/db"},
        {"postgresql://h:5432/db?user=bob", "postgresql://h:5432/db?user=bob"},
        {"postgresql://h/db?sslmode=disable&password=s3cret&user=bob",
         "postgresql://h/db?sslmode=disable&password=***&user=bob"},
        {"postgresql://h/db?pass%77ord=s3cret", "postgresql://h/db?pass%77ord=***"},
        {"postgresql://bob:s3cret@h/db?password=s3cret", "postgresql://bob:***@h/db?password=***"},
        {"POSTGRESQL://bob:s3cret@h", "POSTGRESQL://bob:***@h"},
        {"postgresql://h?password=s3cret&application_name=a@b",
         "postgresql://h?password=***&application_name=a@b"},
        {"postgresql://bob:s3?cr/et@h/db", "postgresql://bob:***@h/db"},
        {"postgresql://", "postgresql://"},
        /* what libpq refuses shows nothing */
        {"password", "(unparseable conninfo)"},
        {"host=h password='s3cret", "(unparseable conninfo)"},
        {"host=h s3cret", "(unparseable conninfo)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        util_mask_conninfo(cases[i].in, out, sizeof out);
        cr_assert_str_eq(out, cases[i].want, "case %zu: '%s'", i, cases[i].in);
        cr_assert_null(strstr(out, "s3"), "case %zu leaks: '%s'", i, out);
    }
}

Test(util, mask_conninfo_truncates_and_takes_null)
{
    char out[16];
    util_mask_conninfo("host=x password=s3cret dbname=b", out, 8);
    cr_assert_str_eq(out, "host=x ");
    util_mask_conninfo("host=x password=s3cret dbname=b", out, sizeof out);
    cr_assert_str_eq(out, "host=x password");
    util_mask_conninfo(NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
    util_mask_conninfo("host=x", out, 1);
    cr_assert_str_eq(out, "");
    util_mask_conninfo("host=x", NULL, 0); /* nothing to write to: no crash */
}
