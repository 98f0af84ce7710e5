/* Shared helpers for the plan/apply integration tests (test_apply.c, test_crash.c,
 * test_crash_matrix.c, test_faults.c, test_observe.c, test_ownership.c, test_prune_safety.c,
 * test_saved_plan.c): run the real imgrecon binary against the real emulator, write fixtures,
 * and read the emulator's journal and state. The short names are kept stable because many tests
 * call them; they wrap test_clock.h, test_file.h and test_proc.h, which new code may call
 * directly. Failures fail the current Criterion test. */
#ifndef APPLY_SUPPORT_H
#define APPLY_SUPPORT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"
#include "test_clock.h"
#include "test_exec.h"
#include "test_file.h"
#include "test_proc.h"
#include "test_pty.h"

#define KEY_ID "LTAIemulatorDemoKey"
#define KEY_SECRET "emulator-demo-secret"
#define RUN_TIMEOUT_MS 120000

typedef struct env {
    emu_proc emu;
    char dir[64]; /* test temp dir: manifests, state, outputs */
    char state[128];
    char manifest[128];
    char fixture[128];
    char config[128];
} env;

/* Milliseconds on the monotonic clock (test_clock_ms as a signed 64-bit value, so that
 * "deadline - now" may go negative). */
int64_t mono_ms_now(void);
/* test_file_write and test_file_read (the text, "" when missing; caller frees). */
void write_file(const char *path, const char *text);
char *read_file(const char *path);

/* A fixture with one account (the demo key), one region, `servers` servers (quota 3 each, at
 * most 15) and the given custom_images / ecs_images YAML blocks (already indented by 4). */
void write_fixture(env *e, unsigned servers, const char *images_yaml, const char *ecs_yaml);
/* Starts the emulator on e->fixture with scaled limits. extra: more emulator args or NULL. */
void start_emu(env *e, const char *create_delay, const char *const *extra);
/* Makes a private temporary directory, names the files of e inside it and writes a config with
 * owner team-a. */
void env_init(env *e);
/* Stops the emulator when it runs and removes the directory (IMGRECON_TEST_KEEP=1 keeps it). */
void env_fini(env *e);

typedef struct run_result {
    int status; /* exit code, or 128+signal */
    char *out;  /* stdout and stderr, interleaved */
} run_result;

/* Frees r->out; the result may be freed twice. */
void run_result_free(run_result *r);
/* Starts imgrecon with the common test options (config, endpoint, state directory, rate limit
 * 10/1s, no colour, the demo key in the environment) and the NULL-terminated args (args[0] is
 * the subcommand); output to outpath. IMGRECON_TEST_WRAP is honoured. */
pid_t spawn_imgrecon(env *e, const char *outpath, const char *const *args);
/* spawn_imgrecon with stdin (and the controlling terminal) the terminal at tty, a pty's slave
 * (test_pty.h); NULL: /dev/null. */
pid_t spawn_imgrecon_tty(env *e, const char *outpath, const char *tty, const char *const *args);
/* Waits for pid at most timeout_ms (event-driven through a pidfd); kills it on timeout. Returns
 * the exit code or 128 + signal. */
int wait_child(pid_t pid, int timeout_ms);
/* Runs imgrecon as spawn_imgrecon does and waits at most RUN_TIMEOUT_MS; the caller frees the
 * result with run_result_free. */
run_result run_imgrecon_v(env *e, const char *const *args);

#define RUN(e, ...) run_imgrecon_v((e), (const char *const[]){__VA_ARGS__, NULL})

/* ---- the emulator's journal ---- */

/* The journal as a JSON array of line objects (caller decrefs). */
json_t *journal_lines(env *e);
/* String members (borrowed; NULL when absent): o[key], line["params"][key]. */
const char *jstr(json_t *o, const char *key);
const char *jparam(json_t *line, const char *key);
/* Calls of an action from index `from`, with code (NULL: successes only; "*": any). */
size_t count_calls(json_t *j, size_t from, const char *action, const char *code);
/* The ordering rules every scenario must keep, from the emulator's journal. */
void assert_journal_rules(env *e);
/* The emulator's current images of cn-hangzhou (caller decrefs). */
json_t *state_images(env *e);
/* The image called name in imgs (borrowed), or NULL; whether an image is shared. */
json_t *find_image(json_t *imgs, const char *name);
bool image_shared(json_t *img);

#endif
