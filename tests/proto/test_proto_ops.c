/*  test_proto_ops — the op table (proto/proto_ops.c): the UTF-8 length every
    limit is counted with (valid, invalid and NUL input, table driven), the
    table's own consistency, and docs/protocol.md's op table, which must say
    what the C table says: each row is rendered from the table here and
    compared; on a difference the whole table as it should be is written to
    protocol_ops.expected.md (replies kept from the docs) to paste. */
#include "proto/proto_ops.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(proto_ops, .timeout = 10);

/* ---- proto_utf8_len ----------------------------------------------------------------------------
 */

Test(proto_ops, utf8_len_counts_code_points_of_valid_utf8_only)
{
    static const struct {
        const char *bytes;
        size_t len;
        int64_t want;
    } cases[] = {
        {"", 0, 0},
        {"hello", 5, 5},
        {"h\xc3\xa9llo", 6, 5},          /* é: 2 bytes, 1 character */
        {"\xe2\x9c\x93", 3, 1},          /* ✓ */
        {"\xf0\x9f\x8e\x89", 4, 1},      /* 🎉 */
        {"\xf4\x8f\xbf\xbf", 4, 1},      /* U+10FFFF, the last */
        {"\xef\xbf\xbf", 3, 1},          /* U+FFFF */
        {"\xed\x9f\xbf", 3, 1},          /* U+D7FF, below the surrogates */
        {"\xee\x80\x80", 3, 1},          /* U+E000, above them */
        {"\xff", 1, -1},                 /* never a UTF-8 byte */
        {"\xfe\xff", 2, -1},             /* a UTF-16 byte order mark */
        {"\x80", 1, -1},                 /* a lone continuation byte */
        {"a\xc3", 2, -1},                /* truncated at the end */
        {"\xc3(", 2, -1},                /* a lead without its continuation */
        {"\xe2\x9c", 2, -1},             /* truncated 3-byte sequence */
        {"\xc0\xaf", 2, -1},             /* overlong '/' */
        {"\xc1\xbf", 2, -1},             /* overlong DEL */
        {"\xe0\x80\xaf", 3, -1},         /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", 4, -1},     /* overlong, 4 bytes */
        {"\xed\xa0\x80", 3, -1},         /* U+D800, a surrogate */
        {"\xed\xbf\xbf", 3, -1},         /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, -1},     /* U+110000, past the last */
        {"\xf5\x80\x80\x80", 4, -1},     /* a lead byte past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, -1}, /* old 5-byte form */
        {"ab\0cd", 5, -2},               /* NUL */
        {"\xc0\x80", 2, -1},             /* "modified UTF-8" NUL: overlong */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(proto_utf8_len(cases[i].bytes, cases[i].len), cases[i].want,
                     "case %zu: got %lld", i,
                     (long long)proto_utf8_len(cases[i].bytes, cases[i].len));
    }
    /* 1000 "é" are 1000 characters in 2000 bytes. */
    char buf[2000];
    for (int i = 0; i < 1000; i++) {
        buf[2 * i] = (char)0xc3;
        buf[2 * i + 1] = (char)0xa9;
    }
    cr_assert_eq(proto_utf8_len(buf, sizeof buf), 1000);
    cr_assert_eq(proto_utf8_len(buf, sizeof buf - 1), -1, "cut inside the last character");
}

/* ---- the table
 * ----------------------------------------------------------------------------------- */

static void s_check_fields(const proto_op_t *op, const proto_field_t *fields)
{
    for (const proto_field_t *f = fields; f->name; f++) {
        cr_assert_eq(proto_field_find(fields, f->name), f, "%s: %s listed twice", op->name,
                     f->name);
        cr_assert_leq(f->min, f->max, "%s.%s: min > max", op->name, f->name);
        if (f->type == PROTO_FT_STRING) {
            cr_assert_gt(f->max, 0, "%s.%s: a string needs a limit", op->name, f->name);
        }
        cr_assert_eq(f->type == PROTO_FT_ENUM, f->values != NULL, "%s.%s", op->name, f->name);
        if (f->fields) {
            cr_assert_eq(f->type, PROTO_FT_OBJECT, "%s.%s", op->name, f->name);
            s_check_fields(op, f->fields);
        }
        if (!f->when) {
            continue;
        }
        /* A condition names an enum argument of the same list and one of its values. */
        const proto_field_t *c = proto_field_find(fields, f->when);
        cr_assert_not_null(c, "%s.%s: when %s", op->name, f->name, f->when);
        cr_assert_eq(c->type, PROTO_FT_ENUM, "%s.%s", op->name, f->name);
        bool known = false;
        for (size_t i = 0; c->values[i]; i++) {
            known |= strcmp(c->values[i], f->when_is) == 0;
        }
        cr_assert(known, "%s.%s: %s is never %s", op->name, f->name, f->when, f->when_is);
    }
}

Test(proto_ops, table_is_consistent)
{
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        const proto_op_t *op = &proto_ops[i];
        cr_assert_not_null(op->name, "op %d has no row", i);
        cr_assert_eq(proto_op_find(op->name), op, "%s: found elsewhere", op->name);
        cr_assert(op->refuse_status == 400 || op->refuse_status == 401, "%s", op->name);
        s_check_fields(op, op->fields);
        /* Writes take the idempotency pair, and only writes do. */
        bool key = proto_field_find(op->fields, "idempotency_key") != NULL;
        bool hash = proto_field_find(op->fields, "request_hash") != NULL;
        cr_assert_eq(op->write, key, "%s: write vs idempotency_key", op->name);
        cr_assert_eq(op->write, hash, "%s: write vs request_hash", op->name);
        if (op->write) {
            cr_assert_eq(op->scope, PROTO_SCOPE_CONV, "%s: writes are conversation-bound",
                         op->name);
        }
    }
    cr_assert_null(proto_op_find("conv.explode"));
    cr_assert_null(proto_op_find(NULL));
    cr_assert_null(proto_op_find(""));
    cr_assert_null(proto_op_find("CONV.GET"));
    /* msg.post's create object takes exactly conv.create's client fields. */
    const proto_field_t *create = proto_field_find(proto_ops[PROTO_OP_MSG_POST].fields, "create");
    cr_assert_not_null(create);
    size_t n = 0;
    for (const proto_field_t *f = proto_ops[PROTO_OP_CONV_CREATE].fields; f->name; f++) {
        const proto_field_t *g = proto_field_find(create->fields, f->name);
        if (f->flags & PROTO_F_GATEWAY) {
            cr_assert_null(g, "create.%s", f->name);
            continue;
        }
        cr_assert_not_null(g, "create.%s", f->name);
        cr_assert(g->type == f->type && g->flags == f->flags && g->min == f->min &&
                      g->max == f->max && g->values == f->values,
                  "create.%s differs from conv.create's", f->name);
        n++;
    }
    for (const proto_field_t *g = create->fields; g->name; g++) {
        n--;
    }
    cr_assert_eq(n, 0, "create has fields conv.create has not");
}

/* ---- docs/protocol.md -------------------------------------------------------------------------
 */

static const char *s_where(const proto_op_t *op)
{
    switch (op->scope) {
        case PROTO_SCOPE_TEAM:
            return "any node";
        case PROTO_SCOPE_CONV:
            return "owner";
        case PROTO_SCOPE_CONV_OPT:
            return "owner with conv_id, else any node";
        case PROTO_SCOPE_LOCAL:
            return "the node running the turn";
    }
    return "?";
}

/* Appends to buf (cap bytes, n used) the type and limits of f; returns the new length. */
static size_t s_render_type(char *buf, size_t cap, size_t n, const proto_field_t *f)
{
    switch (f->type) {
        case PROTO_FT_STRING:
            if (f->min == f->max) {
                n += (size_t)snprintf(buf + n, cap - n, "string of %lld", (long long)f->max);
            } else {
                n += (size_t)snprintf(buf + n, cap - n, "string %lld–%lld", (long long)f->min,
                                      (long long)f->max);
            }
            break;
        case PROTO_FT_INT:
            if (f->max == INT64_MAX) {
                n += (size_t)snprintf(buf + n, cap - n, "int ≥ %lld", (long long)f->min);
            } else {
                n += (size_t)snprintf(buf + n, cap - n, "int %lld–%lld", (long long)f->min,
                                      (long long)f->max);
            }
            break;
        case PROTO_FT_ENUM:
            for (size_t i = 0; f->values[i]; i++) {
                n += (size_t)snprintf(buf + n, cap - n, "%s`%s`", i ? "\\|" : "", f->values[i]);
            }
            break;
        case PROTO_FT_OBJECT:
            n += (size_t)snprintf(buf + n, cap - n, "object");
            for (const proto_field_t *g = f->fields; g && g->name; g++) {
                n += (size_t)snprintf(buf + n, cap - n, "%s`%s`", g == f->fields ? " {" : ", ",
                                      g->name);
            }
            n += (size_t)snprintf(buf + n, cap - n, "%s", f->fields ? "}" : "");
            break;
        default:
            n += (size_t)snprintf(buf + n, cap - n, "%s",
                                  f->type == PROTO_FT_BOOL ? "bool" : proto_ftype_name(f->type));
            break;
    }
    return n;
}

/* Appends to buf (cap bytes) what one argument accepts, in the docs' words. */
static void s_render_field(char *buf, size_t cap, const proto_field_t *f)
{
    size_t n = strlen(buf);
    /* Bold: always required. A condition says when the field is accepted (and,
       when it is required, that it must be there then). */
    bool req = (f->flags & PROTO_F_REQUIRED) && !f->when;
    n += (size_t)snprintf(buf + n, cap - n, "%s`%s`%s ", req ? "**" : "", f->name, req ? "**" : "");
    n = s_render_type(buf, cap, n, f);
    if ((f->flags & PROTO_F_NULL) && !(f->flags & PROTO_F_REQUIRED)) {
        n += (size_t)snprintf(buf + n, cap - n, " or null");
    }
    if (f->flags & PROTO_F_NONBLANK) {
        n += (size_t)snprintf(buf + n, cap - n, ", not blank");
    }
    if (f->when && (f->flags & PROTO_F_REQUIRED)) {
        n += (size_t)snprintf(buf + n, cap - n, ", required if %s = `%s`, refused otherwise",
                              f->when, f->when_is);
    } else if (f->when) {
        n += (size_t)snprintf(buf + n, cap - n, ", only if %s = `%s`", f->when, f->when_is);
    }
    if (f->flags & PROTO_F_GATEWAY) {
        snprintf(buf + n, cap - n, " (gateway)");
    }
}

/* The docs row of op, up to (not including) the free-text reply cell. */
static void s_render_row(char *buf, size_t cap, const proto_op_t *op)
{
    snprintf(buf, cap, "| `%s` | %s | %s | %s | ", op->name, s_where(op), op->team ? "yes" : "—",
             op->write ? "yes" : "—");
    bool any = false;
    for (const proto_field_t *f = op->fields; f->name; f++) {
        if (strcmp(f->name, "idempotency_key") == 0 || strcmp(f->name, "request_hash") == 0) {
            continue; /* the Idempotency-Key column says it */
        }
        if (any) {
            strncat(buf, "; ", cap - strlen(buf) - 1);
        }
        s_render_field(buf, cap, f);
        any = true;
    }
    if (!any) {
        strncat(buf, "—", cap - strlen(buf) - 1);
    }
    strncat(buf, " |", cap - strlen(buf) - 1);
}

#define S_HEADER                                                                                   \
    "| op | where | team_id | Idempotency-Key | arguments (JSON; **required**) | reply |\n"        \
    "|---|---|---|---|---|---|\n"

/* The op table rows of docs/protocol.md ("| `op` | …"), in order; returns the count. */
static size_t s_doc_rows(char rows[][4096], size_t max)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/protocol.md", BICKY_SRC_DIR);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[4096];
    bool in_section = false;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "## ", 3) == 0) {
            in_section = strcmp(line, "## API operations (`api_req.op`)") == 0;
        } else if (in_section && strncmp(line, "| `", 3) == 0) {
            cr_assert_lt(n, max);
            snprintf(rows[n++], sizeof rows[0], "%s", line);
        }
    }
    fclose(f);
    return n;
}

/* The reply cell of op's row in the docs (after the rendered cells), or "". */
static const char *s_doc_reply(char rows[][4096], size_t n, const proto_op_t *op)
{
    char head[96];
    snprintf(head, sizeof head, "| `%s` |", op->name);
    for (size_t i = 0; i < n; i++) {
        char *bar = strncmp(rows[i], head, strlen(head)) == 0 ? strrchr(rows[i], '|') : NULL;
        if (!bar || bar == rows[i]) {
            continue;
        }
        /* The reply is the last cell: between the last two unescaped bars. */
        char *start = bar - 1;
        while (start > rows[i] && !(start[0] == '|' && start[-1] != '\\')) {
            start--;
        }
        return start + 1;
    }
    return " ? |";
}

Test(proto_ops, protocol_md_lists_every_op_as_the_table_says)
{
    static char rows[64][4096];
    size_t n = s_doc_rows(rows, 64);
    bool same = n == PROTO_OP_COUNT;
    for (size_t i = 0; same && i < n; i++) {
        char want[2048];
        s_render_row(want, sizeof want, &proto_ops[i]);
        same = strncmp(rows[i], want, strlen(want)) == 0;
    }
    if (same) {
        return;
    }
    /* Write the table as it should be (replies kept from the docs) for pasting. */
    FILE *out = fopen("protocol_ops.expected.md", "w");
    cr_assert_not_null(out);
    fputs(S_HEADER, out);
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        char want[2048];
        s_render_row(want, sizeof want, &proto_ops[i]);
        want[strlen(want) - 1] = 0; /* the reply cell's opening bar comes with the reply */
        fprintf(out, "%s|%s\n", want, s_doc_reply(rows, n, &proto_ops[i]));
    }
    fclose(out);
    cr_assert_fail("docs/protocol.md's op table differs from proto/proto_ops.c (%zu rows, %d "
                   "ops); the table as it should be is in protocol_ops.expected.md in the test's "
                   "directory",
                   n, PROTO_OP_COUNT);
}
