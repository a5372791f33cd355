/*  fuzz — what every harness of tests/fuzz shares: the libFuzzer entry point's
    prototype and FUZZ_CHECK, an assert that the build's NDEBUG
    (RelWithDebInfo) does not remove: a broken property aborts, and
    libFuzzer saves the input as a crash. */
#ifndef BICKY_TESTS_FUZZ_H
#define BICKY_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
