/*  proto_scan — a bounds check over raw msgpack bytes run before unpacking.
    Pure function; any thread. */
#include "proto/proto_internal.h"

/* Walks the raw msgpack bytes without allocating and checks that every
   declared length fits in what is left, so that a 5-byte frame cannot make
   the unpacker reserve gigabytes for a container it will never fill. Every
   pending item needs at least one byte, so one counter suffices. */
bool proto_prescan(const uint8_t *p, size_t size)
{
    size_t pos = 0, pending = 1;
    while (pending > 0) {
        if (pos >= size || pending > size - pos) {
            return false;
        }
        uint8_t b = p[pos++];
        pending--;
        size_t skip = 0, items = 0, lenbytes = 0, extra = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            skip = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
                case 0xc4:
                case 0xd9:
                    lenbytes = 1;
                    break;
                case 0xc5:
                case 0xda:
                    lenbytes = 2;
                    break;
                case 0xc6:
                case 0xdb:
                    lenbytes = 4;
                    break;
                case 0xc7:
                    lenbytes = 1;
                    extra = 1;
                    break;
                case 0xc8:
                    lenbytes = 2;
                    extra = 1;
                    break;
                case 0xc9:
                    lenbytes = 4;
                    extra = 1;
                    break;
                case 0xca:
                    skip = 4;
                    break;
                case 0xcb:
                    skip = 8;
                    break;
                case 0xcc:
                case 0xd0:
                    skip = 1;
                    break;
                case 0xcd:
                case 0xd1:
                    skip = 2;
                    break;
                case 0xce:
                case 0xd2:
                    skip = 4;
                    break;
                case 0xcf:
                case 0xd3:
                    skip = 8;
                    break;
                case 0xd4:
                    skip = 2;
                    break;
                case 0xd5:
                    skip = 3;
                    break;
                case 0xd6:
                    skip = 5;
                    break;
                case 0xd7:
                    skip = 9;
                    break;
                case 0xd8:
                    skip = 17;
                    break;
                case 0xdc:
                case 0xde:
                    lenbytes = 2;
                    break;
                case 0xdd:
                case 0xdf:
                    lenbytes = 4;
                    break;
                default:
                    return false; /* 0xc1 is never used */
            }
        }
        if (lenbytes) {
            if (size - pos < lenbytes) {
                return false;
            }
            size_t n = 0;
            for (size_t i = 0; i < lenbytes; i++) {
                n = n << 8 | p[pos++];
            }
            if (b == 0xdc || b == 0xdd) {
                items = n;
            } else if (b == 0xde || b == 0xdf) {
                items = 2 * n;
            } else {
                skip = n + extra;
            }
        }
        if (skip > size - pos || items > size - pos) {
            return false;
        }
        pos += skip;
        pending += items;
    }
    return pos == size;
}
