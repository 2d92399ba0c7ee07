/* Shared by the fuzz targets: the input as NUL-terminated text pieces. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Split data at '\n' into at most max NUL-terminated pieces (the last takes
 * the rest); returns their count. buf must hold size + max bytes. */
static inline int fuzz_split(const uint8_t *data, size_t size, char *buf, char **pieces, int max)
{
    int n = 0;
    size_t o = 0;
    pieces[n++] = buf;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' && n < max) {
            buf[o++] = '\0';
            pieces[n++] = buf + o;
        } else {
            buf[o++] = data[i] ? (char)data[i] : ' ';
        }
    }
    buf[o] = '\0';
    return n;
}

#endif
