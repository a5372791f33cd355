/*  test_json_rec — the strict jsmn-based record reader (common/json_rec.c)
    against jansson: records it must read (export lines, PostgreSQL's
    json_build_object spacing, escapes, raw UTF-8, nested values, the
    literals, 18-digit integers) come out member by member as jansson's
    json_loadb(..., JSON_REJECT_DUPLICATES) reads them; invalid JSON that
    jsmn alone lets through, and the valid JSON it does not handle, is
    declined (0). Every input, accepted or not, also goes through the
    differential check (what json_rec_parse accepts, jansson accepts as the
    same object), and so do every prefix and every one-byte change of the
    good records. tests/fuzz/fuzz_json_rec.c runs the same check on
    libFuzzer's inputs. */
#include "common/json_rec.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(json_rec, .timeout = 30);

typedef struct {
    const char *s;
    size_t len;
} s_input_t;

/* A literal and its length (NUL bytes inside count), for {IN("...")}. */
#define IN(lit) lit, sizeof(lit) - 1

static const s_input_t s_good[] = {
    {IN("{\"kind\":\"message\",\"id\":\"0788b2a7-cc55-58c9-bb85-2e5427215ec7\",\"conversation_id\":"
        "\"fd3ec759-db2b-5ebc-9294-3235183b10e8\",\"seq\":1,\"role\":\"user\",\"content\":\"hi\","
        "\"status\":\"completed\",\"metadata\":{},\"created_at\":\"2025-01-01T00:00:00.000Z\","
        "\"updated_at\":\"2025-01-01T00:00:00.000Z\"}")},
    {IN("{\"kind\" : \"message\", \"seq\" : 3}")},
    {IN(" \t\n{\"a\":1}\r")},
    {IN("{\"a\":1}\r\n")},
    {IN("{}")},
    {IN("{ }")},
    {IN("{\"s\":\"\\n \\t \\\" \\\\ \\/ \\b \\f \\r \\u00e9 \\u20ac \\u0041\"}")},
    {IN("{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f\"}")},
    {IN("{\"o\":{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"},\"arr\":[ ],\"e\":{ }}")},
    {IN("{\"t\":true,\"f\":false,\"n\":null,\"z\":0,\"neg\":-42,\"max\":999999999999999999,"
        "\"min\":-999999999999999999}")},
    {IN("{\"\":\"\",\"k\xc3\xa9\":\"\"}")},
    {IN("{\"a\":{\"x\":1},\"b\":{\"x\":1}}")},
    {IN("{\"a\":[\"\\u00e9\",\"\\n\"],\"b\":[[[]]]}")},
    {IN("{\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8,\"9\":9,\"10\":10,"
        "\"11\":11,\"12\":12,\"13\":13,\"14\":14,\"15\":15,\"16\":16}")},
};

static const s_input_t s_bad[] = {
    {IN("{\"a\":1 \"b\":2}")},
    {IN("{\"a\":1,}")},
    {IN("{\"a\":[1,2,]}")},
    {IN("{\"a\":[,1]}")},
    {IN("{\"a\":[1,,2]}")},
    {IN("{,\"a\":1}")},
    {IN("{\"a\":1,,\"b\":2}")},
    {IN("{\"a\" 1}")},
    {IN("{\"a\"::1}")},
    {IN("{\"a\":}")},
    {IN("{\"a\"}")},
    {IN("{\"a\",\"b\"}")},
    {IN("{:1}")},
    {IN("{1:1}")},
    {IN("{\"a\":\"b\":\"c\"}")},
    {IN("{\"a\":{}:1}")},
    {IN("{\"a\":[]:1}")},
    {IN("{\"a\":[1 2]}")},
    {IN("{\"a\":[1]:2}")},
    {IN("{\"a\":[1}")},
    {IN("{\"a\":{\"b\":1]}")},
    {IN("[]")},
    {IN("[1]")},
    {IN("\"s\"")},
    {IN("1")},
    {IN("true")},
    {IN("")},
    {IN("   ")},
    {IN("{} {}")},
    {IN("{}{}")},
    {IN("{\"a\":1} x")},
    {IN("{\"a\":1},")},
    {IN("{\"a\":1}]")},
    {IN("{\"a\":1")},
    {IN("{\"a\":\"b")},
    {IN("{\"a\":[1")},
    {IN("{")},
    {IN("{\"a\":tru}")},
    {IN("{\"a\":nul}")},
    {IN("{\"a\":truex}")},
    {IN("{\"a\":True}")},
    {IN("{\"a\":+1}")},
    {IN("{\"a\":01}")},
    {IN("{\"a\":1.5}")},
    {IN("{\"a\":1e3}")},
    {IN("{\"a\":-}")},
    {IN("{\"a\":-0}")},
    {IN("{\"a\":--1}")},
    {IN("{\"a\":1-}")},
    {IN("{\"a\":0x1}")},
    {IN("{\"a\":[1\"b\"]}")},
    {IN("{\"a\":\"x\ty\"}")},
    {IN("{\"a\":\"x\ny\"}")},
    {IN("{\"a\":\"\x01\"}")},
    {IN("{\"a\":\"\x1f\"}")},
    {IN("{\"a\x01\":1}")},
    {IN("{\"a\":\"\xc0\x80\"}")},
    {IN("{\"a\":\"\xc1\xbf\"}")},
    {IN("{\"a\":\"\xe0\x80\xaf\"}")},
    {IN("{\"a\":\"\xf0\x80\x80\xaf\"}")},
    {IN("{\"a\":\"\xed\xa0\x80\"}")},
    {IN("{\"a\":\"\xed\xbf\xbf\"}")},
    {IN("{\"a\":\"\xf4\x90\x80\x80\"}")},
    {IN("{\"a\":\"\xf5\x80\x80\x80\"}")},
    {IN("{\"a\":\"\xff\"}")},
    {IN("{\"a\":\"\x80\"}")},
    {IN("{\"a\":\"\xc3\"}")},
    {IN("{\"a\":\"\xe2\x82\"}")},
    {IN("{\"a\":\"\xf0\x9f\x98\"}")},
    {IN("{\"a\":\"\xc3\x28\"}")},
    {IN("{\"\xc3\":1}")},
    {IN("{\"a\":1}\xc3\xa9")},
    {IN("\xef\xbb\xbf{\"a\":1}")},
    {IN("{\"a\":\"\\u0000\"}")},
    {IN("{\"a\":\"\\ud83d\\ude00\"}")},
    {IN("{\"a\":\"\\ud800\"}")},
    {IN("{\"a\":\"\\udfff\"}")},
    {IN("{\"a\":[\"\\ud800\"]}")},
    {IN("{\"a\":\"\\x41\"}")},
    {IN("{\"a\":\"\\u12\"}")},
    {IN("{\"a\":\"\\u12g4\"}")},
    {IN("{\"a\":\"\\\"}")},
    {IN("{\"a\":\"\\'\"}")},
    {IN("{\"a\":1,\"a\":2}")},
    {IN("{\"a\":1,\"b\":2,\"a\":3}")},
    {IN("{\"o\":{\"x\":1,\"x\":2}}")},
    {IN("{\"o\":[{\"x\":1,\"x\":2}]}")},
    {IN("{\"\\u0061\":1}")},
    {IN("{\"a\\n\":1}")},
    {IN("{\"a\":1,\"\\u0061\":2}")},
    {IN("{\"o\":{\"\\u0061\":1}}")},
    {IN("{\"a\":\"x\0y\"}")},
    {IN("{\"a\":1}\0")},
    {IN("{\"a\":1\0}")},
    {IN("\0{\"a\":1}")},
    {IN("{\"a\":1234567890123456789}")},
    {IN("{\"a\":-1234567890123456789}")},
    {IN("{\"a\":9223372036854775808}")},
    {IN("{\"a\":[1234567890123456789]}")},
    {IN("{\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8,\"9\":9,\"10\":10,"
        "\"11\":11,\"12\":12,\"13\":13,\"14\":14,\"15\":15,\"16\":16,\"17\":17}")},
    {IN("{\"a\":1,\"b\":2,}")},
    {IN("{'a':1}")},
    {IN("{a:1}")},
    {IN("{\"a\":1}/**/")},
    {IN("{\"a\":\f1}")},
    {IN("{\"a\":\v1}")},
    {IN("{\"a\":NaN}")},
    {IN("{\"a\":Infinity}")},
    {IN("{\"a\":1E3}")},
    {IN("{\"a\":-1.0}")},
    {IN("{\"a\":1.}")},
    {IN("{\"a\":[-]}")},
    {IN("{\"a\" : 1 , }")},
    {IN("{\"a\":1}\n{\"b\":2}\n")},
    {IN("{\"a\":\"\\u00\"}")},
};

/* What json_rec read from buf agrees with jansson: the same members in the
   same order with the same values. Only for a parse that returned 1. */
static void s_same_as_jansson(const json_rec_t *rec, const char *buf, size_t len)
{
    json_error_t err;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    cr_assert(json_is_object(o), "json_rec accepted what jansson refuses (%s): %.*s", err.text,
              (int)len, buf);
    int n = json_rec_count(rec);
    cr_assert_eq((size_t)n, json_object_size(o), "%.*s", (int)len, buf);
    void *it = json_object_iter(o);
    for (int i = 0; i < n; i++, it = json_object_iter_next(o, it)) {
        const json_rec_field_t *f = json_rec_field(rec, i);
        cr_assert(f && it);
        cr_assert_str_eq(f->key, json_object_iter_key(it));
        cr_assert_eq(json_rec_get(rec, f->key), f);
        cr_assert_eq(f->text[f->len], 0);
        json_t *v = json_object_iter_value(it);
        switch (f->type) {
            case JSON_REC_STRING:
                cr_assert(json_is_string(v), "%s", f->key);
                cr_assert_eq(json_string_length(v), f->len, "%s", f->key);
                cr_assert_eq(memcmp(json_string_value(v), f->text, f->len), 0, "%s", f->key);
                break;
            case JSON_REC_INT:
                cr_assert(json_is_integer(v), "%s", f->key);
                cr_assert_eq(json_integer_value(v), f->i, "%s", f->key);
                break;
            case JSON_REC_TRUE:
                cr_assert(json_is_true(v), "%s", f->key);
                cr_assert_str_eq(f->text, "true");
                break;
            case JSON_REC_FALSE:
                cr_assert(json_is_false(v), "%s", f->key);
                cr_assert_str_eq(f->text, "false");
                break;
            case JSON_REC_NULL:
                cr_assert(json_is_null(v), "%s", f->key);
                cr_assert_str_eq(f->text, "null");
                break;
            case JSON_REC_OBJECT:
            case JSON_REC_ARRAY: {
                cr_assert(f->type == JSON_REC_OBJECT ? json_is_object(v) : json_is_array(v), "%s",
                          f->key);
                cr_assert_eq(strlen(f->text), f->len);
                json_t *mine = json_loads(f->text, 0, NULL);
                cr_assert(mine && json_equal(mine, v), "%s: %s", f->key, f->text);
                json_decref(mine);
                break;
            }
            default:
                cr_assert_fail("type %d", f->type);
        }
    }
    cr_assert_null(it);
    cr_assert_null(json_rec_field(rec, n));
    json_decref(o);
}

/* Parses buf, checks it against jansson when it was read; the parse's result. */
static int s_parse(json_rec_t *rec, const char *buf, size_t len)
{
    int rc = json_rec_parse(rec, buf, len);
    cr_assert(rc == 0 || rc == 1, "%d", rc);
    if (rc == 1) {
        s_same_as_jansson(rec, buf, len);
    } else {
        cr_assert_eq(json_rec_count(rec), 0);
    }
    return rc;
}

/* buf must be read, and read as jansson reads it. */
static void s_accept(json_rec_t *rec, const char *buf, size_t len)
{
    cr_assert_eq(s_parse(rec, buf, len), 1, "declined: %.*s", (int)len, buf);
}

static void s_accept_str(json_rec_t *rec, const char *s)
{
    s_accept(rec, s, strlen(s));
}

/* The input in a buffer of its own (no byte after it for a reader to run into under ASan). */
static int s_parse_exact(json_rec_t *rec, const s_input_t *in)
{
    char *copy = malloc(in->len ? in->len : 1);
    cr_assert(copy);
    memcpy(copy, in->s, in->len);
    int rc = s_parse(rec, copy, in->len);
    free(copy);
    return rc;
}

Test(json_rec, every_good_record_is_read_as_jansson_reads_it)
{
    json_rec_t *rec = json_rec_new();
    cr_assert(rec);
    for (size_t i = 0; i < sizeof s_good / sizeof s_good[0]; i++) {
        cr_assert_eq(s_parse_exact(rec, &s_good[i]), 1, "declined: %s", s_good[i].s);
    }
    json_rec_destroy(&rec);
    cr_assert_null(rec);
}

Test(json_rec, every_bad_record_is_declined)
{
    json_rec_t *rec = json_rec_new();
    cr_assert(rec);
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        cr_expect_eq(s_parse_exact(rec, &s_bad[i]), 0, "accepted #%zu: %.*s", i, (int)s_bad[i].len,
                     s_bad[i].s);
    }
    json_rec_destroy(&rec);
}

Test(json_rec, a_message_record)
{
    json_rec_t *rec = json_rec_new();
    s_accept(rec, s_good[0].s, s_good[0].len);
    cr_assert_eq(json_rec_count(rec), 10);
    const json_rec_field_t *f = json_rec_field(rec, 0);
    cr_assert_str_eq(f->key, "kind");
    cr_assert_eq(f->type, JSON_REC_STRING);
    cr_assert_str_eq(f->text, "message");
    f = json_rec_get(rec, "seq");
    cr_assert_eq(f->type, JSON_REC_INT);
    cr_assert_eq(f->i, 1);
    cr_assert_str_eq(f->text, "1");
    f = json_rec_get(rec, "metadata");
    cr_assert_eq(f->type, JSON_REC_OBJECT);
    cr_assert_str_eq(f->text, "{}");
    cr_assert_str_eq(json_rec_get(rec, "updated_at")->text, "2025-01-01T00:00:00.000Z");
    cr_assert_eq(json_rec_field(rec, 9), json_rec_get(rec, "updated_at"));
    cr_assert_null(json_rec_get(rec, "missing"));
    cr_assert_null(json_rec_get(rec, "Kind"));
    cr_assert_null(json_rec_field(rec, 10));
    cr_assert_null(json_rec_field(rec, -1));
    json_rec_destroy(&rec);
}

Test(json_rec, postgres_spacing_and_whitespace_around)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"kind\" : \"message\", \"seq\" : 3}");
    cr_assert_eq(json_rec_count(rec), 2);
    cr_assert_str_eq(json_rec_get(rec, "kind")->text, "message");
    cr_assert_eq(json_rec_get(rec, "seq")->i, 3);
    s_accept_str(rec, "\r\n\t {\n\"a\"\t:\r\"b\" ,\n \"c\" : [ 1 , 2 ] }\r");
    cr_assert_str_eq(json_rec_get(rec, "a")->text, "b");
    cr_assert_str_eq(json_rec_get(rec, "c")->text, "[ 1 , 2 ]");
    json_rec_destroy(&rec);
}

Test(json_rec, escapes_are_unescaped)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"s\":\"\\n\\t\\\"\\\\\\/\\b\\f\\r\\u00e9\\u20ac\\u0041x\"}");
    const json_rec_field_t *f = json_rec_get(rec, "s");
    cr_assert_eq(f->type, JSON_REC_STRING);
    const char want[] = "\n\t\"\\/\b\f\r\xc3\xa9\xe2\x82\xac"
                        "Ax";
    cr_assert_eq(f->len, sizeof want - 1);
    cr_assert_eq(memcmp(f->text, want, f->len), 0);
    json_rec_destroy(&rec);
}

Test(json_rec, raw_utf8_is_kept)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"k\xc3\xa9\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
    const json_rec_field_t *f = json_rec_get(rec, "k\xc3\xa9");
    cr_assert(f);
    cr_assert_str_eq(f->text, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    cr_assert_eq(f->len, 9);
    json_rec_destroy(&rec);
}

Test(json_rec, nested_values_are_their_text)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"o\":{\"a\" : [1,{\"b\":\"\\n\"}]},\"x\":[],\"y\":2}");
    const json_rec_field_t *f = json_rec_get(rec, "o");
    cr_assert_eq(f->type, JSON_REC_OBJECT);
    cr_assert_str_eq(f->text, "{\"a\" : [1,{\"b\":\"\\n\"}]}");
    f = json_rec_get(rec, "x");
    cr_assert_eq(f->type, JSON_REC_ARRAY);
    cr_assert_str_eq(f->text, "[]");
    cr_assert_eq(json_rec_get(rec, "y")->i, 2);
    cr_assert_str_eq(json_rec_field(rec, 2)->key, "y");
    json_rec_destroy(&rec);
}

Test(json_rec, literals_and_integers)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"t\":true,\"f\":false,\"n\":null,\"z\":0,\"m\":-7,"
                      "\"big\":123456789012345678,\"low\":-999999999999999999}");
    cr_assert_eq(json_rec_get(rec, "t")->type, JSON_REC_TRUE);
    cr_assert_eq(json_rec_get(rec, "f")->type, JSON_REC_FALSE);
    cr_assert_eq(json_rec_get(rec, "n")->type, JSON_REC_NULL);
    cr_assert_eq(json_rec_get(rec, "z")->i, 0);
    cr_assert_eq(json_rec_get(rec, "m")->i, -7);
    cr_assert_eq(json_rec_get(rec, "big")->i, 123456789012345678LL);
    cr_assert_eq(json_rec_get(rec, "low")->i, -999999999999999999LL);
    json_rec_destroy(&rec);
}

/* The limits: 16 members, 256 tokens. */
Test(json_rec, too_many_members_or_tokens_is_declined)
{
    json_rec_t *rec = json_rec_new();
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"a\":[");
    for (int i = 0; i < JSON_REC_TOKENS - 3; i++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", i ? "," : "", i);
    }
    snprintf(buf + n, sizeof buf - n, "]}");
    s_accept_str(rec, buf); /* object, key, array and 253 elements: 256 tokens */
    cr_assert_eq(json_rec_count(rec), 1);
    snprintf(buf + n, sizeof buf - n, ",0]}");
    cr_assert_eq(s_parse(rec, buf, strlen(buf)), 0); /* 257 */
    json_rec_destroy(&rec);
}

Test(json_rec, a_decline_leaves_nothing_behind)
{
    json_rec_t *rec = json_rec_new();
    s_accept_str(rec, "{\"a\":\"first\",\"b\":1}");
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        cr_assert_eq(s_parse_exact(rec, &s_bad[i]), 0);
        cr_assert_eq(json_rec_count(rec), 0);
        cr_assert_null(json_rec_get(rec, "a"));
        s_accept_str(rec, "{\"c\":\"second\"}");
        cr_assert_eq(json_rec_count(rec), 1);
        cr_assert_str_eq(json_rec_get(rec, "c")->text, "second");
        cr_assert_null(json_rec_get(rec, "a"));
    }
    json_rec_destroy(&rec);
}

Test(json_rec, a_long_string)
{
    json_rec_t *rec = json_rec_new();
    size_t big = 1 << 20;
    char *buf = malloc(big + 64);
    cr_assert(buf);
    size_t n = (size_t)sprintf(buf, "{\"kind\":\"message\",\"content\":\"");
    for (size_t i = 0; i < big; i++) {
        buf[n + i] = (char)('a' + i % 26);
    }
    n += big;
    n += (size_t)sprintf(buf + n, "\\u20ac\"}");
    s_accept(rec, buf, n);
    const json_rec_field_t *f = json_rec_get(rec, "content");
    cr_assert_eq(f->len, big + 3);
    cr_assert_eq(f->text[big - 1], (char)('a' + (big - 1) % 26));
    /* A short one after it reuses the scratch. */
    s_accept_str(rec, "{\"a\":\"b\"}");
    free(buf);
    json_rec_destroy(&rec);
}

/* Every prefix of the good records: a cut record is declined, never misread. */
Test(json_rec, every_prefix_of_a_good_record)
{
    json_rec_t *rec = json_rec_new();
    for (size_t i = 0; i < sizeof s_good / sizeof s_good[0]; i++) {
        for (size_t len = 0; len <= s_good[i].len; len++) {
            s_input_t in = {s_good[i].s, len};
            s_parse_exact(rec, &in);
        }
    }
    json_rec_destroy(&rec);
}

/* Every one-byte change (a JSON metacharacter, a digit, a control, a
   UTF-8 lead or stray byte, or the byte removed) of the good records: what
   is still read must be read as jansson reads it. */
Test(json_rec, every_one_byte_change_of_a_good_record)
{
    static const char subst[] = "{}[]:,\"\\ 0-1.etu\t\n\r\f\x01\x7f\x80\xc3\xe2\xf0\xff";
    json_rec_t *rec = json_rec_new();
    char buf[512];
    int read = 0;
    for (size_t i = 0; i < sizeof s_good / sizeof s_good[0]; i++) {
        const s_input_t *g = &s_good[i];
        cr_assert_lt(g->len, sizeof buf);
        for (size_t at = 0; at < g->len; at++) {
            s_input_t in = {buf, g->len};
            for (size_t k = 0; k < sizeof subst; k++) { /* the last is subst's NUL */
                memcpy(buf, g->s, g->len);
                buf[at] = subst[k];
                read += s_parse_exact(rec, &in);
            }
            memcpy(buf, g->s, at);
            memcpy(buf + at, g->s + at + 1, g->len - at - 1);
            in.len = g->len - 1;
            read += s_parse_exact(rec, &in);
        }
    }
    cr_assert_gt(read, 0);
    json_rec_destroy(&rec);
}
