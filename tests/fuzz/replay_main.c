/* A main for the fuzz targets in the normal build: feeds each corpus file named on the command
 * line to LLVMFuzzerTestOneInput once, so ctest (label fuzz-replay) replays the seed corpora of
 * every target without libFuzzer and under whatever sanitizers the build has. A crash, a
 * sanitizer report or an unreadable file fails the test; so does an empty corpus, which would
 * otherwise pass without testing anything. tests/fuzz/CMakeLists.txt links it into each
 * fuzz_replay_<target>. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file into a malloc'd buffer (caller frees); returns 0 or a negative errno. */
static int read_all(const char *path, uint8_t **ret_data, size_t *ret_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return -ENOMEM;
            }
            data = grown;
        }
        size_t n = fread(data + size, 1, cap - size, f);
        if (n == 0)
            break;
        size += n;
    }
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err < 0) {
        free(data);
        return err;
    }
    *ret_data = data;
    *ret_size = size;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_FILE...\n(an empty corpus replays nothing: failing)\n",
                argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        uint8_t *data = NULL;
        size_t size = 0;
        int rc = read_all(argv[i], &data, &size);
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(-rc));
            return 1;
        }
        (void)LLVMFuzzerTestOneInput(data, size);
        free(data);
    }
    printf("%s: replayed %d corpus files\n", argv[0], argc - 1);
    return 0;
}
