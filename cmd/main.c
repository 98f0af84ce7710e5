/* imgrecon: the entry point only dispatches to a subcommand (cmd/cmd_<name>.c). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

typedef struct cmd_entry {
    const char *name;
    int (*fn)(cmd_ctx *ctx, int argc, char **argv);
    const char *summary;
} cmd_entry;

static const cmd_entry commands[] = {
    {"validate", cmd_validate, "check manifests and config, change nothing"},
    {"plan", cmd_plan, "show what apply would change"},
    {"apply", cmd_apply, "make the account match the manifests"},
    {"run", cmd_run, "reconcile continuously (the systemd service)"},
    {"status", cmd_status, "show the daemon's last state"},
    {"api", cmd_api, "one signed, paced API call; prints the JSON answer"},
    {"notify-test", cmd_notify_test, "send a sample notification to each configured webhook"},
    {"version", NULL, "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon COMMAND [OPTIONS]\n\n"
                 "Keeps Alibaba Cloud custom images equal to YAML manifests.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'imgrecon COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("imgrecon %s\n", IMGRECON_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].fn == NULL || strcmp(name, commands[i].name) != 0)
            continue;
        cmd_ctx ctx;
        memset(&ctx, 0, sizeof(ctx));
        ctx.prog = "imgrecon";
        int rc = commands[i].fn(&ctx, argc - 1, argv + 1);
        cmd_ctx_free(&ctx);
        return rc;
    }
    fprintf(stderr, "imgrecon: unknown command '%s'\n\n", name);
    usage(stderr);
    return 1;
}
