/*  json_rec — one JSON object (a record of a JSON Lines file) read fast and
    strictly: jsmn (Debian's libjsmn-dev, a tokenizer that allocates nothing)
    plus the checks jsmn leaves out — the grammar between its tokens, UTF-8,
    escapes, number syntax, repeated keys. It reads only what it can read
    exactly as jansson's json_loadb(..., JSON_REJECT_DUPLICATES) reads it: an
    object of at most JSON_REC_FIELDS members (JSON_REC_TOKENS tokens in all)
    whose strings hold no \u0000 and no escaped surrogate, whose numbers are
    integers of at most 18 digits, with no key twice in any object and no
    escape in a key. Anything else, invalid JSON included, it declines: the
    caller then reads the record with jansson, which stays the authority and
    says what is wrong. For `bickyctl import`'s many small records, where
    jansson's tree (an allocation per value) was most of the importer's time.
    One json_rec_t per thread. */
#ifndef BICKY_JSON_REC_H
#define BICKY_JSON_REC_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_REC_FIELDS 16  /* members of the object at most */
#define JSON_REC_TOKENS 256 /* tokens (values and keys, nested ones included) at most */

typedef enum {
    JSON_REC_STRING,
    JSON_REC_INT,
    JSON_REC_TRUE,
    JSON_REC_FALSE,
    JSON_REC_NULL,
    JSON_REC_OBJECT,
    JSON_REC_ARRAY
} json_rec_type_t;

typedef struct {
    const char *key;      /* the member's name */
    json_rec_type_t type; /* its value's type */
    const char *text;     /* STRING: the value, unescaped; OBJECT, ARRAY: its JSON text as
                             written; INT, TRUE, FALSE, NULL: the literal */
    size_t len;           /* bytes of text (a STRING holds no NUL) */
    long long i;          /* INT: the value */
} json_rec_field_t;

typedef struct json_rec_t json_rec_t;

/* NULL on OOM. */
json_rec_t *json_rec_new(void);
void json_rec_destroy(json_rec_t **self_p);
/* Reads buf (len bytes, borrowed; NUL-terminated or not). 1: read, its
   members are self's until the next call (keys and texts NUL-terminated,
   owned by self); 0: declined (see above); -1: out of memory. */
int json_rec_parse(json_rec_t *self, const char *buf, size_t len);
/* Members read, in the record's order. */
int json_rec_count(const json_rec_t *self);
const json_rec_field_t *json_rec_field(const json_rec_t *self, int i);
/* The member named key, or NULL. */
const json_rec_field_t *json_rec_get(const json_rec_t *self, const char *key);

#endif
