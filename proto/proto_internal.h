/*  proto_internal — declarations shared only inside proto/. */
#ifndef BICKY_PROTO_INTERNAL_H
#define BICKY_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when data holds exactly one msgpack object whose every declared
   length and element count fits in the bytes that follow it. */
bool proto_prescan(const uint8_t *data, size_t size);

#endif
