/* imgrecon run: not implemented yet (its issue has not landed). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

int cmd_run(cmd_ctx *ctx, int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: imgrecon run [OPTIONS]\n(not implemented yet)\n");
        return 0;
    }
    cmd_error(ctx, "run: not implemented yet");
    return 1;
}
