/* Shared by the fuzz targets: writes the input to a private temporary file for loaders that read
 * paths; the file is removed when the process exits normally (the replay tests run once per
 * ctest, so they must not leave one behind). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_temp_path[64];

static inline void fuzz_remove_temp(void)
{
    (void)unlink(fuzz_temp_path);
}

/* Returns a path (static buffer) holding exactly the input bytes, or NULL. */
static inline const char *fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix)
{
    char *path = fuzz_temp_path;
    if (path[0] == '\0') {
        snprintf(path, sizeof(fuzz_temp_path), "/tmp/imgrecon-fuzz-%d%s", (int)getpid(), suffix);
        (void)atexit(fuzz_remove_temp);
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
