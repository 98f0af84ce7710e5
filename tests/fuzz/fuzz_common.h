/* Shared by the fuzz targets: writes the input to a private temporary file for loaders that read
 * paths. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Returns a path (static buffer) holding exactly the input bytes, or NULL. */
static inline const char *fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[64];
    static int fd = -1;
    if (fd < 0) {
        snprintf(path, sizeof(path), "/tmp/imgrecon-fuzz-%d%s", (int)getpid(), suffix);
        FILE *f = fopen(path, "w");
        if (f == NULL)
            return NULL;
        fclose(f);
        fd = 0;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return path;
}

#endif
