/* imgrecon: the entry point only dispatches to a subcommand (cmd/cmd_<name>.c). */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "cmd.h"
#include "prov_secret.h"
#include "spec_yaml.h"

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
    {"import", cmd_import, "write the account's images as manifests (brownfield start)"},
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
    fprintf(out, "\nRun 'imgrecon COMMAND --help' (or 'imgrecon help COMMAND') for a command's "
                 "options.\n");
}

/* `imgrecon version [--help]`: the version, or what the command does. Any other argument is
 * a usage error, like every other command's. */
static int cmd_version(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: imgrecon version\n\nPrints the version (also: imgrecon --version).\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "imgrecon: version: unexpected argument '%s'\n", argv[1]);
        fprintf(stderr, "usage: imgrecon version\n");
        return 1;
    }
    printf("imgrecon %s\n", IMGRECON_VERSION);
    return 0;
}

/* Reports an unknown command with the closest known one (the same edit distance the manifest
 * keys' suggestions use), then the command list. */
static void unknown_command(const char *typed)
{
    char name[160]; /* what was typed, cut and with control characters escaped: one clean line */
    spec_text_sanitize(typed, name, sizeof(name));
    const char *names[sizeof(commands) / sizeof(commands[0])];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        names[i] = commands[i].name;
    const char *s = spec_suggest(typed, names, sizeof(names) / sizeof(names[0]), 2);
    if (s != NULL)
        fprintf(stderr, "imgrecon: unknown command '%s'; did you mean '%s'?\n\n", name, s);
    else
        fprintf(stderr, "imgrecon: unknown command '%s'\n\n", name);
    usage(stderr);
}

/* Runs the command argv[0] with its arguments; main() and `help COMMAND` call it. */
static int dispatch(int argc, char **argv)
{
    const char *name = argv[0];
    if (strcmp(name, "version") == 0)
        return cmd_version(argc, argv);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].fn == NULL || strcmp(name, commands[i].name) != 0)
            continue;
        cmd_ctx ctx;
        memset(&ctx, 0, sizeof(ctx));
        ctx.prog = "imgrecon";
        int rc = commands[i].fn(&ctx, argc, argv);
        cmd_ctx_clear(&ctx);
        return rc;
    }
    unknown_command(name);
    return 1;
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
    if (strcmp(name, "help") == 0 && argc == 3) {
        /* `imgrecon help COMMAND` is `imgrecon COMMAND --help`. */
        char help[] = "--help";
        char *hargv[] = {argv[2], help, NULL};
        return dispatch(2, hargv);
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        return cmd_version(1, argv + 1);
    return dispatch(argc - 1, argv + 1);
}
