/* imgrecon: the entry point only dispatches to a subcommand (cmd/cmd_<name>.c). */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "cmd.h"
#include "prov_secret.h"

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

/* Before anything reads a secret: no core dump and no ptrace attach by other processes of the
 * same user (the process is not dumpable), and jansson and libcurl wipe what they free. */
static int protect_secrets(void)
{
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        perror("imgrecon: prctl(PR_SET_DUMPABLE)");
        return -1;
    }
    if (prov_secret_install_allocators() < 0) {
        fprintf(stderr, "imgrecon: libcurl could not be initialised\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (protect_secrets() < 0)
        return 1;
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
