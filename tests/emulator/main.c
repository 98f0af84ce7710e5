/* imgrecon-emulator: a local stand-in for the SWAS and ECS endpoints (README.md in this folder).
 * This file only parses the command line, loads the fixture text, writes the port file and
 * waits for SIGTERM/SIGINT; everything else is in emu_server.c and the world. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emu_fixture.h"
#include "emu_server.h"
#include "emu_util.h"

/* --help: every flag with its default and meaning (the table in README.md, shortened). */
static void usage(FILE *out)
{
    fputs("usage: imgrecon-emulator [OPTIONS]\n\n"
          "A local stand-in for the Alibaba Cloud SWAS (2020-06-01) and ECS (2014-05-26)\n"
          "endpoints on one port. SIGTERM or SIGINT stops it cleanly (exit 0).\n\n"
          "  --listen HOST:PORT   address to serve (default 127.0.0.1:9781); also [::1]:PORT\n"
          "                       or localhost:PORT; port 0 picks a free port\n"
          "  --allow-remote       allow a --listen address that is not loopback\n"
          "  --port-file FILE     write the bound port to FILE once listening (atomically)\n"
          "  --fixture FILE       the account's world in YAML (default: the built-in demo\n"
          "                       account, key LTAIemulatorDemoKey / emulator-demo-secret)\n"
          "  --rate-limit N/DUR   calls per sliding window per account and action (every key\n"
          "                       and assumed role of one account counts together)\n"
          "                       (default 10/60s)\n"
          "  --create-delay DUR   how long a new image stays creating (status 4) before it is\n"
          "                       available (default 1s; 0: at once)\n"
          "  --list-lag DUR       a new image younger than this is not listed yet (eventual\n"
          "                       consistency; default 0)\n"
          "  --fault-rate P       chance 0..1 of a random InternalError 500 or\n"
          "                       ServiceUnavailable 503, before any change (default 0)\n"
          "  --seed N             seeds image ids, request ids and faults (default 1)\n"
          "  --journal FILE       append one JSON line per API request to FILE\n"
          "  --sts-duration DUR   lifetime of STS credentials it issues (default: the\n"
          "                       DurationSeconds asked; tests use seconds to force refresh)\n"
          "  --metadata ROLE      serve the ECS instance metadata routes (IMDSv2) for RAM\n"
          "                       role ROLE of the fixture's first account\n"
          "  --clock-skew DUR     largest accepted gap between a request's timestamp and the\n"
          "                       clock (default 15m)\n"
          "  -h, --help           this help\n\n"
          "DUR is a number with ms, s, m or h (500ms, 6s, 5m). Exit status: 0 after a clean\n"
          "stop, 1 when it cannot start, 2 on a usage error.\n",
          out);
}

/* "HOST:PORT", "[V6]:PORT" or "localhost:PORT" into addr; loopback unless allow_remote. */
static int parse_listen(const char *s, bool allow_remote, struct sockaddr_storage *addr,
                        socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host) || colon == s) {
        return -EINVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        return -EINVAL;
    }
    memset(addr, 0, sizeof(*addr));
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
            return -EINVAL;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        if (!allow_remote && !IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
            return -EPERM;
        }
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
        return -EINVAL;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    if (!allow_remote && (ntohl(a4->sin_addr.s_addr) >> 24) != 127) {
        return -EPERM;
    }
    return 0;
}

/* Writes the port to path through a temporary file and rename(), so a reader never sees a
 * partial number. */
static int write_port_file(const char *path, unsigned port)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
        return -ENOMEM;
    }
    FILE *f = fopen(tmp, "we");
    int rc = 0;
    if (!f) {
        rc = -errno;
    } else {
        bool bad = fprintf(f, "%u\n", port) < 0;
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, path) != 0) {
            rc = errno ? -errno : -EIO;
            (void)unlink(tmp);
        }
    }
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 1000,
        O_PORT_FILE,
        O_FIXTURE,
        O_RATE,
        O_DELAY,
        O_LAG,
        O_FAULT,
        O_SEED,
        O_JOURNAL,
        O_SKEW,
        O_REMOTE,
        O_STS_DURATION,
        O_METADATA,
        O_HELP
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"fixture", required_argument, NULL, O_FIXTURE},
        {"rate-limit", required_argument, NULL, O_RATE},
        {"create-delay", required_argument, NULL, O_DELAY},
        {"list-lag", required_argument, NULL, O_LAG},
        {"fault-rate", required_argument, NULL, O_FAULT},
        {"seed", required_argument, NULL, O_SEED},
        {"journal", required_argument, NULL, O_JOURNAL},
        {"clock-skew", required_argument, NULL, O_SKEW},
        {"allow-remote", no_argument, NULL, O_REMOTE},
        {"sts-duration", required_argument, NULL, O_STS_DURATION},
        {"metadata", required_argument, NULL, O_METADATA},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:9781", *port_file = NULL, *fixture = NULL;
    bool allow_remote = false;
    emu_http_config cfg = {.rate_calls = 10,
                           .rate_window_ms = 60000,
                           .create_delay_ms = 1000,
                           .skew_ms = 15 * 60 * 1000,
                           .seed = 1};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int64_t ms = 0;
        char *end = NULL;
        switch (c) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_PORT_FILE:
            port_file = optarg;
            break;
        case O_FIXTURE:
            fixture = optarg;
            break;
        case O_RATE:
            if (emu_parse_rate(optarg, &cfg.rate_calls, &cfg.rate_window_ms) < 0) {
                fprintf(stderr, "imgrecon-emulator: --rate-limit: expected N/DUR, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_METADATA:
            if (!*optarg || strchr(optarg, '/')) {
                fprintf(stderr, "imgrecon-emulator: --metadata: expected a RAM role name\n");
                return 2;
            }
            cfg.metadata_role = optarg;
            break;
        case O_STS_DURATION:
        case O_DELAY:
        case O_LAG:
        case O_SKEW:
            if (strcmp(optarg, "0") != 0 && emu_parse_duration(optarg, &ms) < 0) {
                fprintf(stderr,
                        "imgrecon-emulator: %s: expected a duration like 500ms, 6s, 5m, "
                        "got \"%s\"\n",
                        argv[optind - 1], optarg);
                return 2;
            }
            *(c == O_DELAY          ? &cfg.create_delay_ms
              : c == O_LAG          ? &cfg.list_lag_ms
              : c == O_STS_DURATION ? &cfg.sts_duration_ms
                                    : &cfg.skew_ms) = ms;
            break;
        case O_FAULT:
            cfg.fault_rate = strtod(optarg, &end);
            if (!*optarg || *end || !(cfg.fault_rate >= 0 && cfg.fault_rate <= 1)) {
                fprintf(stderr, "imgrecon-emulator: --fault-rate: expected 0..1, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_SEED:
            errno = 0;
            cfg.seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno) {
                fprintf(stderr, "imgrecon-emulator: --seed: expected a number, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_JOURNAL:
            cfg.journal_path = optarg;
            break;
        case O_REMOTE:
            allow_remote = true;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imgrecon-emulator: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    int rc = parse_listen(listen, allow_remote, &cfg.addr, &cfg.addr_len);
    if (rc < 0) {
        fprintf(stderr,
                rc == -EPERM ? "imgrecon-emulator: --listen %s is not a loopback address (add "
                               "--allow-remote to serve other hosts)\n"
                             : "imgrecon-emulator: --listen: expected HOST:PORT, got \"%s\"\n",
                listen);
        return 2;
    }
    char *text = NULL;
    size_t text_len = 0;
    if (fixture) {
        rc = emu_fixture_read_file(fixture, &text, &text_len);
        if (rc < 0) {
            fprintf(stderr, "imgrecon-emulator: %s: %s\n", fixture, strerror(-rc));
            return 1;
        }
        cfg.fixture_name = fixture;
        cfg.fixture = text;
        cfg.fixture_len = text_len;
    } else {
        cfg.fixture_name = "<demo>";
        cfg.fixture = emu_demo_fixture;
        cfg.fixture_len = strlen(emu_demo_fixture);
    }
    /* Block the stop signals before any thread exists, so that only sigwait() sees them. */
    sigset_t set;
    (void)sigemptyset(&set);
    (void)sigaddset(&set, SIGTERM);
    (void)sigaddset(&set, SIGINT);
    (void)pthread_sigmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    emu_diags diags = {0};
    emu_http *h = NULL;
    rc = emu_http_start(&cfg, &h, &diags);
    if (rc < 0) {
        emu_diags_print(&diags, stderr);
        emu_diags_clear(&diags);
        free(text);
        return 1;
    }
    emu_diags_clear(&diags);
    unsigned port = emu_http_port(h);
    if (port_file && (rc = write_port_file(port_file, port)) < 0) {
        fprintf(stderr, "imgrecon-emulator: %s: %s\n", port_file, strerror(-rc));
        emu_http_stop(h);
        free(text);
        return 1;
    }
    fprintf(stderr, "imgrecon-emulator: listening on port %u (%s)\n", port,
            fixture ? fixture : "built-in demo account LTAIemulatorDemoKey");
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    emu_http_stop(h);
    free(text);
    return 0;
}
