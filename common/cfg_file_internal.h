/*  cfg_file_internal — shared between cfg_file.c (lifecycle, accessors) and
    cfg_file_parse.c (the INI reader and key table). Not for other modules. */
#ifndef BICKY_CFG_FILE_INTERNAL_H
#define BICKY_CFG_FILE_INTERNAL_H

#include "common/cfg_file.h"

/* A strategy plus what only the loader needs to know about it. */
typedef struct {
    cfg_strategy_t pub; /* what callers see */
    bool kind_set;      /* kind was given */
} cfg_file_item_t;

struct cfg_file_t {
    char *origin;              /* file name for messages */
    cfg_file_item_t **items;   /* strategies in file order */
    size_t count;              /* used entries in items */
    char *default_name;        /* default_strategy value, or NULL */
    const cfg_strategy_t *def; /* resolved default strategy */
};

/* A strategy with every default applied (kind echo). NULL when out of memory. */
cfg_file_item_t *cfg_file_item_new(const char *name, int line);
/* Frees an item that is not (or no longer) in a cfg_file_t; accepts NULL. */
void cfg_file_item_free(cfg_file_item_t *item);
/* Appends item (ownership moves to self on success); -1 when out of memory. */
int cfg_file_item_add(cfg_file_t *self, cfg_file_item_t *item);

/* Parses and validates text (len bytes, NUL-terminated) into the empty self,
   resolving self->def. Returns 0, or -1 with "origin:line: message" in err. */
int cfg_file_parse(cfg_file_t *self, const char *text, size_t len, char *err, size_t errlen);

#endif
