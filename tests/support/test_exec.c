/* See test_exec.h. */
#include "test_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Noreturn void test_exec(const char *const *argv)
{
    const char *wrap = getenv("IMGRECON_TEST_WRAP");
    if (wrap != NULL && *wrap != '\0') {
        static char words[512];
        const char *wargv[96];
        size_t w = 0;
        (void)snprintf(words, sizeof(words), "%s", wrap);
        for (char *save = NULL, *t = strtok_r(words, " ", &save); t != NULL && w < 16;
             t = strtok_r(NULL, " ", &save))
            wargv[w++] = t;
        for (size_t i = 0; argv[i] != NULL && w < 95; i++)
            wargv[w++] = argv[i];
        wargv[w] = NULL;
        execvp(wargv[0], (char *const *)wargv);
        _exit(127);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}
