/*  fuzz_json_rec — common/json_rec against jansson, the authority it must
    agree with: whatever json_rec_parse accepts, json_loadb(...,
    JSON_REJECT_DUPLICATES) must accept as an object with the same members
    in the same order and the same values (a string's bytes, an integer's
    value, the literals' types, a nested object's or array's text read by
    jansson to an equal value). Declining is always allowed. One json_rec_t
    for the whole run, as a thread of the importer keeps one, so what one
    input leaves behind meets the next. */
#include "common/json_rec.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>
#include <string.h>

/* The literal a field of this type was read from. */
static const char *s_literal(json_rec_type_t type)
{
    return type == JSON_REC_TRUE ? "true" : type == JSON_REC_FALSE ? "false" : "null";
}

/* True when jansson's value v is what json_rec read as f. */
static bool s_same(const json_rec_field_t *f, json_t *v)
{
    switch (f->type) {
        case JSON_REC_STRING:
            return json_is_string(v) && json_string_length(v) == f->len &&
                   memcmp(json_string_value(v), f->text, f->len) == 0 &&
                   !memchr(f->text, 0, f->len);
        case JSON_REC_INT:
            return json_is_integer(v) && json_integer_value(v) == f->i;
        case JSON_REC_TRUE:
        case JSON_REC_FALSE:
        case JSON_REC_NULL:
            return (f->type == JSON_REC_TRUE    ? json_is_true(v)
                    : f->type == JSON_REC_FALSE ? json_is_false(v)
                                                : json_is_null(v)) &&
                   strcmp(f->text, s_literal(f->type)) == 0;
        case JSON_REC_OBJECT:
        case JSON_REC_ARRAY: {
            if (strlen(f->text) != f->len ||
                (f->type == JSON_REC_OBJECT ? !json_is_object(v) : !json_is_array(v))) {
                return false;
            }
            json_t *mine = json_loads(f->text, 0, NULL);
            bool same = mine && json_equal(mine, v);
            json_decref(mine);
            return same;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_rec_t *rec;
    if (!rec) {
        rec = json_rec_new();
        FUZZ_CHECK(rec);
    }
    int rc = json_rec_parse(rec, (const char *)data, size);
    FUZZ_CHECK(rc == 0 || rc == 1);
    if (rc == 0) {
        FUZZ_CHECK(json_rec_count(rec) == 0 && !json_rec_field(rec, 0));
        return 0;
    }
    json_error_t err;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    FUZZ_CHECK(json_is_object(o));
    int n = json_rec_count(rec);
    FUZZ_CHECK(n >= 0 && n <= JSON_REC_FIELDS && (size_t)n == json_object_size(o));
    void *it = json_object_iter(o);
    for (int i = 0; i < n; i++, it = json_object_iter_next(o, it)) {
        const json_rec_field_t *f = json_rec_field(rec, i);
        FUZZ_CHECK(f && it);
        FUZZ_CHECK(strcmp(f->key, json_object_iter_key(it)) == 0);
        FUZZ_CHECK(f->text[f->len] == 0);
        FUZZ_CHECK(s_same(f, json_object_iter_value(it)));
        FUZZ_CHECK(json_rec_get(rec, f->key) == f);
    }
    FUZZ_CHECK(!it && !json_rec_field(rec, n));
    json_decref(o);
    return 0;
}
