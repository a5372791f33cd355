/*  reg_ctl_out — bickyctl output: aligned text tables and JSON strings.
    (JSON is written by hand: only the gateway links jansson.) */
#include "registry/reg_ctl.h"

#include <stdlib.h>
#include <string.h>

struct reg_ctl_table_t {
    size_t ncols;                   /* columns */
    const char *const *headers;     /* borrowed */
    char **cells;                   /* rows * ncols owned strings */
    size_t rows;                    /* rows added */
    size_t cap;                     /* rows allocated */
    size_t width[REG_CTL_MAX_COLS]; /* column widths */
};

void reg_ctl_json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
            case '"':
                fputs("\\\"", out);
                break;
            case '\\':
                fputs("\\\\", out);
                break;
            case '\n':
                fputs("\\n", out);
                break;
            case '\t':
                fputs("\\t", out);
                break;
            default:
                if (*p < 0x20) {
                    fprintf(out, "\\u%04x", *p);
                } else {
                    fputc(*p, out);
                }
        }
    }
    fputc('"', out);
}

reg_ctl_table_t *reg_ctl_table_new(const char *const *headers)
{
    reg_ctl_table_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->headers = headers;
    while (self->ncols < REG_CTL_MAX_COLS && headers[self->ncols]) {
        self->width[self->ncols] = strlen(headers[self->ncols]);
        self->ncols++;
    }
    return self;
}

void reg_ctl_table_destroy(reg_ctl_table_t **self_p)
{
    if (self_p && *self_p) {
        reg_ctl_table_t *self = *self_p;
        for (size_t i = 0; i < self->rows * self->ncols; i++) {
            free(self->cells[i]);
        }
        free(self->cells);
        free(self);
        *self_p = NULL;
    }
}

int reg_ctl_table_add(reg_ctl_table_t *self, const char *const *cells)
{
    if (self->rows == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        char **grown = realloc(self->cells, cap * self->ncols * sizeof *grown);
        if (!grown) {
            return -1;
        }
        self->cells = grown;
        self->cap = cap;
    }
    char **row = &self->cells[self->rows * self->ncols];
    for (size_t c = 0; c < self->ncols; c++) {
        row[c] = strdup(cells[c] ? cells[c] : "-");
        if (!row[c]) {
            for (size_t k = 0; k < c; k++) {
                free(row[k]);
            }
            return -1;
        }
        size_t n = strlen(row[c]);
        if (n > self->width[c]) {
            self->width[c] = n;
        }
    }
    self->rows++;
    return 0;
}

static void s_print_row(const reg_ctl_table_t *self, const char *const *cells, FILE *out)
{
    for (size_t c = 0; c < self->ncols; c++) {
        bool last = c + 1 == self->ncols;
        fprintf(out, "%-*s%s", last ? 0 : (int)self->width[c], cells[c], last ? "\n" : "  ");
    }
}

void reg_ctl_table_print(const reg_ctl_table_t *self, FILE *out)
{
    s_print_row(self, self->headers, out);
    for (size_t r = 0; r < self->rows; r++) {
        s_print_row(self, (const char *const *)&self->cells[r * self->ncols], out);
    }
}
