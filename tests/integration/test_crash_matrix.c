/* Crash matrix: `imgrecon apply` and the daemon `imgrecon run` killed with SIGKILL at many points
 * chosen by a seed, each followed by a rerun that must converge.
 *
 * One world holds every step kind at once: 6 new images (3 shared), a replacement of a shared
 * image (unshare -> delete -> create -> share), 4 owned images to prune (2 shared), 2 ECS images
 * to delete, plus an unmanaged and a protected image that must survive. A kill point is "the
 * k-th successful mutating call of an action" (create, share, unshare, delete, ECS delete) or
 * "the k-th await poll" (ListCustomImages with ImageIds while images are in status 4); the test
 * watches the emulator's journal with inotify and sends SIGKILL the moment that line is written.
 * The rerun is `apply` (after a killed apply) or `apply` / `run --once` (after a killed daemon).
 *
 * After each rerun: every desired image exists once, available, shared as declared; the
 * replacement has a new image; the pruned and the ECS images are gone; the unmanaged and the
 * protected image are untouched; distinct created image ids == desired creates and each of them
 * is in the final state (nothing created twice, nothing lost); no Throttling.User; and a plan
 * shows no changes.
 *
 * IMGRECON_CRASH_SEED=N replays a matrix; IMGRECON_CRASH_KILLS=N sets the kills per mode
 * (default 18: 36 in all). */
#include "apply_support.h"

#include <inttypes.h>

#define SRV "ace0706b2ac4454d984295a94213ab"
#define CREATE_DELAY "500ms"
#define TRIGGER_TIMEOUT_MS 30000
#define DESIRED_CREATES 7 /* new-0..new-5 and the replacement of rep-0 */
#define OWNED "{imgrecon/owner: team-a}"

enum kind { K_CREATE, K_AWAIT, K_SHARE, K_UNSHARE, K_DELETE, K_ECS_DELETE, K_N };
static const char *const kind_name[K_N] = {"create",  "await",  "share",
                                           "unshare", "delete", "ecs_delete"};
/* How many of each event an uninterrupted run is sure to produce: 7 creates, at least 2 await
 * polls (create delay 500ms), 4 shares, 3 unshares, at least 1 delete call (the 5 deletes go
 * out batched as DeleteCustomImages), 2 ECS deletes. */
static const unsigned kind_max[K_N] = {7, 2, 4, 3, 1, 2};

static env E;

static void setup(void)
{
    env_init(&E);
    unsetenv("NOTIFY_SOCKET");
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(crash_matrix, .init = setup, .fini = teardown, .timeout = 300);

/* splitmix64: a small seeded PRNG, the same sequence on every platform. */
static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t crash_seed(void)
{
    const char *s = getenv("IMGRECON_CRASH_SEED");
    if (s != NULL && *s != '\0')
        return strtoull(s, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
}

static unsigned kills_per_mode(void)
{
    const char *s = getenv("IMGRECON_CRASH_KILLS");
    unsigned n = s != NULL ? (unsigned)strtoul(s, NULL, 10) : 0;
    return n > 0 ? n : 18;
}

static void fix_image(FILE *m, const char *id, const char *name, const char *snap, bool shared,
                      const char *tags)
{
    fprintf(m,
            "      - image_id: %s\n        name: %s\n        instance_id: " SRV "00\n"
            "        system_snapshot_id: %s\n        status: \"1\"\n        in_share: %s\n"
            "        tags: %s\n",
            id, name, snap, shared ? "true" : "false", tags);
}

static void write_world(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fix_image(m, "m-keep00000000000001", "keep-0", "s-sys-00", false, OWNED);
    fix_image(m, "m-rep000000000000001", "rep-0", "s-sys-00b", true, OWNED);
    fix_image(m, "m-old000000000000001", "old-0", "s-sys-00", true, OWNED);
    fix_image(m, "m-old000000000000002", "old-1", "s-sys-00", false, OWNED);
    fix_image(m, "m-old000000000000003", "old-2", "s-sys-00", true, OWNED);
    fix_image(m, "m-old000000000000004", "old-3", "s-sys-00", false, OWNED);
    fix_image(m, "m-foreign00000000001", "foreign-0", "s-sys-00", true, "{team: x}");
    fix_image(m, "m-prot00000000000001", "prot-0", "s-sys-00", false,
              "{imgrecon/owner: team-a, imgrecon/protect: \"true\"}");
    fclose(m);
    /* 5 servers: quota 15; 8 images now, 10 at the end, 15 at most in between. */
    write_fixture(&E, 5, buf,
                  "      - image_id: m-ecs0000000000001\n        name: old-ecs-1\n"
                  "        status: Available\n        used_by_instances: 0\n"
                  "      - image_id: m-ecs0000000000002\n        name: old-ecs-2\n"
                  "        status: Available\n        used_by_instances: 1\n");
    free(buf);

    buf = NULL;
    m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    const char *names[] = {"keep-0", "rep-0", "new-0", "new-1", "new-2", "new-3", "new-4", "new-5"};
    const bool share[] = {false, true, false, true, false, true, false, true};
    for (size_t i = 0; i < 8; i++)
        fprintf(m,
                "  - name: %s\n    instance_id: " SRV "00\n    system_snapshot_id: s-sys-00\n"
                "    share_to_ecs: %s\n",
                names[i], share[i] ? "true" : "false");
    fprintf(m, "ecs_images:\n  - image_id: m-ecs0000000000001\n    ensure: absent\n"
               "  - image_id: m-ecs0000000000002\n    ensure: absent\n    force: true\n");
    fclose(m);
    write_file(E.manifest, buf);
    free(buf);
    write_file(E.config, "owner: team-a\nprune: true\nmax_deletes: 10\n"
                         "metrics_listen: 127.0.0.1:0\n");
}

/* Does journal line l count as an event of kind k? */
static bool is_event(json_t *l, enum kind k)
{
    const char *a = jstr(l, "action");
    if (a == NULL || jstr(l, "code") != NULL)
        return false;
    const char *op = jparam(l, "Operation");
    switch (k) {
    case K_CREATE:
        return strcmp(a, "CreateCustomImage") == 0;
    case K_AWAIT:
        return strcmp(a, "ListCustomImages") == 0 && jparam(l, "ImageIds") != NULL;
    case K_SHARE:
        return strcmp(a, "ModifyImageShareStatus") == 0 && op && strcmp(op, "Share") == 0;
    case K_UNSHARE:
        return strcmp(a, "ModifyImageShareStatus") == 0 && op && strcmp(op, "UnShare") == 0;
    case K_DELETE:
        return strcmp(a, "DeleteCustomImage") == 0 || strcmp(a, "DeleteCustomImages") == 0;
    case K_ECS_DELETE:
        return strcmp(a, "DeleteImage") == 0;
    default:
        return false;
    }
}

static size_t count_events(json_t *j, enum kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(j); i++)
        n += is_event(json_array_get(j, i), k);
    return n;
}

/* Waits, on the journal's writes and the child's pidfd, until the journal holds `want` events
 * of kind k. Returns 1 when reached, 0 when the child exited first, -1 on timeout. */
static int await_event(pid_t pid, enum kind k, size_t want)
{
    int ino = inotify_init1(IN_CLOEXEC);
    cr_assert_geq(ino, 0);
    cr_assert_geq(inotify_add_watch(ino, E.emu.journal, IN_MODIFY), 0);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert_geq(pfd, 0, "pidfd_open: %s", strerror(errno));
    int64_t deadline = mono_ms_now() + TRIGGER_TIMEOUT_MS;
    int result = -1;
    for (;;) {
        json_t *j = journal_lines(&E);
        bool seen = count_events(j, k) >= want;
        json_decref(j);
        if (seen) {
            result = 1;
            break;
        }
        int left = (int)(deadline - mono_ms_now());
        if (left <= 0)
            break;
        struct pollfd p[2] = {{.fd = ino, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
        if (poll(p, 2, left) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN) {
            char buf[4096];
            (void)read(ino, buf, sizeof(buf));
        } else if (p[1].revents & POLLIN) {
            /* Exited: one last look at the journal. */
            j = journal_lines(&E);
            result = count_events(j, k) >= want ? 1 : 0;
            json_decref(j);
            break;
        }
    }
    close(pfd);
    close(ino);
    return result;
}

typedef struct stats {
    unsigned kills, per_kind[K_N], reruns_apply, reruns_once;
    unsigned status4_at_await_kill, unshared_not_deleted, name_exists, second_kills;
    unsigned finished_first, apply_kills;
} stats;

static json_t *state_region(void)
{
    json_t *st = emu_proc_state(&E.emu);
    cr_assert_not_null(st);
    json_t *regions = json_object_get(st, "regions"), *out = NULL;
    for (size_t i = 0; i < json_array_size(regions); i++) {
        json_t *r = json_array_get(regions, i);
        if (strcmp(jstr(r, "region"), "cn-hangzhou") == 0)
            out = json_incref(r);
    }
    json_decref(st);
    cr_assert_not_null(out);
    return out;
}

/* What the world looks like right after the kill, for the summary. */
static void note_kill_state(enum kind k, stats *s)
{
    json_t *r = state_region();
    json_t *imgs = json_object_get(r, "custom_images");
    size_t creating = 0;
    for (size_t i = 0; i < json_array_size(imgs); i++)
        creating += strcmp(jstr(json_array_get(imgs, i), "status"), "4") == 0;
    if (k == K_AWAIT && creating > 0)
        s->status4_at_await_kill++;
    if (k == K_UNSHARE) {
        /* An unshared image still present: the kill fell between its unshare and its delete. */
        json_t *j = journal_lines(&E);
        for (size_t i = 0; i < json_array_size(j); i++) {
            json_t *l = json_array_get(j, i);
            if (!is_event(l, K_UNSHARE))
                continue;
            for (size_t n = 0; n < json_array_size(imgs); n++) {
                json_t *img = json_array_get(imgs, n);
                if (strcmp(jstr(img, "image_id"), jparam(l, "ImageId")) == 0 &&
                    !image_shared(img)) {
                    s->unshared_not_deleted++;
                    i = json_array_size(j);
                    break;
                }
            }
        }
        json_decref(j);
    }
    json_decref(r);
}

static void verify(const char *tag)
{
    static const struct {
        const char *name, *id; /* id: must be kept (NULL: any new id) */
        bool shared;
    } want[] = {
        {"keep-0", "m-keep00000000000001", false},
        {"rep-0", NULL, true},
        {"new-0", NULL, false},
        {"new-1", NULL, true},
        {"new-2", NULL, false},
        {"new-3", NULL, true},
        {"new-4", NULL, false},
        {"new-5", NULL, true},
        {"foreign-0", "m-foreign00000000001", true},
        {"prot-0", "m-prot00000000000001", false},
    };
    const size_t n_want = sizeof(want) / sizeof(want[0]);
    json_t *r = state_region();
    json_t *imgs = json_object_get(r, "custom_images");
    cr_assert_eq(json_array_size(imgs), n_want, "%s: %zu images in the region, want %zu", tag,
                 json_array_size(imgs), n_want);
    for (size_t w = 0; w < n_want; w++) {
        json_t *img = find_image(imgs, want[w].name);
        cr_assert_not_null(img, "%s: %s missing", tag, want[w].name);
        cr_assert_str_eq(jstr(img, "status"), "1", "%s: %s status", tag, want[w].name);
        cr_assert_eq(image_shared(img), want[w].shared, "%s: share of %s", tag, want[w].name);
        if (want[w].id != NULL)
            cr_assert_str_eq(jstr(img, "image_id"), want[w].id, "%s: %s kept", tag, want[w].name);
        else
            cr_assert_str_eq(jstr(img, "system_snapshot_id"), "s-sys-00", "%s: %s", tag,
                             want[w].name);
    }
    cr_assert_str_neq(jstr(find_image(imgs, "rep-0"), "image_id"), "m-rep000000000000001",
                      "%s: rep-0 replaced", tag);
    cr_assert_eq(json_array_size(json_object_get(r, "ecs_images")), 0, "%s: ECS images left", tag);

    json_t *j = journal_lines(&E);
    const char *ids[64];
    size_t n_ids = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action"), *c = jstr(l, "code"), *id = jparam(l, "ImageId");
        const char *batch = jparam(l, "ImageIds");
        if (strcmp(a, "DeleteCustomImages") == 0)
            for (size_t w = 0; w < n_want; w++)
                cr_assert(want[w].id == NULL || batch == NULL || strstr(batch, want[w].id) == NULL,
                          "%s: %s on %s (%s)", tag, a, batch, want[w].name);
        cr_assert(c == NULL || strcmp(c, "Throttling.User") != 0, "%s: throttled %s at %s", tag, a,
                  jstr(l, "ts"));
        /* Nothing unmanaged, protected or kept is ever unshared or deleted (not even tried). */
        if (id != NULL &&
            (strcmp(a, "DeleteCustomImage") == 0 || strcmp(a, "ModifyImageShareStatus") == 0))
            for (size_t w = 0; w < n_want; w++)
                cr_assert(want[w].id == NULL || strcmp(id, want[w].id) != 0, "%s: %s on %s (%s)",
                          tag, a, id, want[w].name);
        if (!is_event(l, K_CREATE))
            continue;
        const char *cid = jstr(l, "image_id");
        cr_assert_not_null(cid);
        bool dup = false;
        for (size_t k = 0; k < n_ids && !dup; k++)
            dup = strcmp(ids[k], cid) == 0;
        if (!dup && n_ids < 64)
            ids[n_ids++] = cid;
    }
    cr_assert_eq(n_ids, DESIRED_CREATES, "%s: %zu distinct created image ids, want %d", tag, n_ids,
                 DESIRED_CREATES);
    /* Nothing lost: every image created is one of the desired images now. */
    for (size_t k = 0; k < n_ids; k++) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(imgs) && !found; i++)
            found = strcmp(jstr(json_array_get(imgs, i), "image_id"), ids[k]) == 0;
        cr_assert(found, "%s: created image %s is not in the final state", tag, ids[k]);
    }
    json_decref(j);
    json_decref(r);
    assert_journal_rules(&E);

    run_result p = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_assert_eq(p.status, 0, "%s: plan after the rerun shows changes (exit %d)\n%s", tag, p.status,
                 p.out);
    run_result_free(&p);
}

static void run_matrix(bool daemon, uint64_t seed, unsigned n, stats *total)
{
    const char *mode = daemon ? "daemon" : "apply";
    uint64_t rs = seed ^ (daemon ? 0xda3e0aULL : 0xa991eULL);

    /* Every kind equally often, in a seeded order. */
    enum kind order[K_N] = {K_CREATE, K_AWAIT, K_SHARE, K_UNSHARE, K_DELETE, K_ECS_DELETE};
    stats s = {0};
    int64_t t0 = mono_ms_now();
    for (unsigned i = 0; i < n; i++) {
        if (i % K_N == 0)
            for (unsigned a = K_N - 1; a > 0; a--) {
                unsigned b = (unsigned)(rnd_next(&rs) % (a + 1));
                enum kind t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
        enum kind k = order[i % K_N];
        unsigned at = 1 + (unsigned)(rnd_next(&rs) % kind_max[k]);
        bool rerun_once = daemon && (rnd_next(&rs) & 1);
        /* One point in six kills the rerun too (after its first call), then reruns again. */
        bool kill_rerun = (rnd_next(&rs) % 6) == 0;
        /* Half the kills land the moment the emulator answers (the client has not read the
         * answer: the call happened but imgrecon does not know); the others up to 30 ms later,
         * when the result may be journaled or the next call under way. */
        unsigned jitter_ms = (rnd_next(&rs) & 1) ? (unsigned)(rnd_next(&rs) % 31) : 0;
        if (!daemon && k == K_SHARE)
            jitter_ms = 0; /* the shares end an apply: a late kill would find it gone */
        char tag[200];
        snprintf(tag, sizeof(tag), "[seed %" PRIu64 " %s #%u: kill %u ms after %s %u%s%s]", seed,
                 mode, i, jitter_ms, kind_name[k], at, rerun_once ? ", rerun run --once" : "",
                 kill_rerun ? ", rerun killed too" : "");

        cr_assert_eq(emu_proc_reset(&E.emu), 0, "%s: emulator reset", tag);
        snprintf(E.state, sizeof(E.state), "%s/state-%s-%u", E.dir, mode, i);
        char outpath[200];
        snprintf(outpath, sizeof(outpath), "%s/killed-%s-%u.txt", E.dir, mode, i);
        pid_t pid = daemon ? spawn_imgrecon(&E, outpath,
                                            (const char *const[]){"run", "-f", E.manifest,
                                                                  "--interval", "1h", NULL})
                           : spawn_imgrecon(&E, outpath,
                                            (const char *const[]){"apply", "-f", E.manifest,
                                                                  "--auto-approve", NULL});
        int hit = await_event(pid, k, at);
        if (hit == 1 && jitter_ms > 0)
            (void)poll(NULL, 0,
                       (int)jitter_ms); /* the chosen kill delay, not a wait for an event */
        if (hit == 1)
            (void)kill(pid, SIGKILL);
        int code = wait_child(pid, 10000);
        if (hit != 1) {
            char *out = read_file(outpath);
            cr_assert_fail("%s: the kill point was never reached (%s, exit %d)\n%s", tag,
                           hit == 0 ? "the process exited first" : "timeout", code, out);
            free(out);
        }
        if (code == 128 + SIGKILL) {
            s.kills++;
            s.per_kind[k]++;
            note_kill_state(k, &s);
        } else {
            s.finished_first++; /* it ended within the jitter; the rerun must change nothing */
        }

        if (kill_rerun) {
            /* The rerun dies too, after its first mutating call or await poll. */
            char out2[200];
            snprintf(out2, sizeof(out2), "%s/killed2-%s-%u.txt", E.dir, mode, i);
            json_t *j = journal_lines(&E);
            size_t before = json_array_size(j);
            json_decref(j);
            pid = spawn_imgrecon(
                &E, out2, (const char *const[]){"apply", "-f", E.manifest, "--auto-approve", NULL});
            int ino = inotify_init1(IN_CLOEXEC);
            cr_assert_geq(inotify_add_watch(ino, E.emu.journal, IN_MODIFY), 0);
            int64_t deadline = mono_ms_now() + TRIGGER_TIMEOUT_MS;
            bool more = false;
            while (!more && mono_ms_now() < deadline) {
                j = journal_lines(&E);
                for (size_t l = before; l < json_array_size(j) && !more; l++) {
                    json_t *line = json_array_get(j, l);
                    for (int kk = 0; kk < K_N && !more; kk++)
                        more = kk != K_AWAIT && is_event(line, (enum kind)kk);
                }
                json_decref(j);
                struct pollfd p = {.fd = ino, .events = POLLIN};
                if (!more && poll(&p, 1, 100) > 0) {
                    char buf[4096];
                    (void)read(ino, buf, sizeof(buf));
                }
                if (!more && waitpid(pid, NULL, WNOHANG) == pid) {
                    pid = 0;
                    break;
                }
            }
            close(ino);
            if (pid > 0) {
                (void)kill(pid, SIGKILL);
                (void)wait_child(pid, 10000);
                s.second_kills++;
            }
        }

        run_result r = rerun_once ? RUN(&E, "run", "-f", E.manifest, "--once")
                                  : RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
        cr_assert_eq(r.status, 0, "%s: rerun exit %d\n%s", tag, r.status, r.out);
        run_result_free(&r);
        if (rerun_once)
            s.reruns_once++;
        else
            s.reruns_apply++;
        json_t *j = journal_lines(&E);
        s.name_exists += (unsigned)count_calls(j, 0, "CreateCustomImage", "ImageNameAlreadyExist");
        json_decref(j);
        verify(tag);
    }
    fprintf(stderr,
            "crash matrix [%s]: seed=%" PRIu64 " kills=%u (create=%u await=%u share=%u "
            "unshare=%u delete=%u ecs_delete=%u) reruns=%u (apply=%u run--once=%u) "
            "reruns also killed=%u; finished before a delayed kill=%u; await kills with an image "
            "in status 4: %u; unshare kills "
            "before the delete: %u; ImageNameAlreadyExist: %u; all converged in %.1f s\n",
            mode, seed, s.kills, s.per_kind[K_CREATE], s.per_kind[K_AWAIT], s.per_kind[K_SHARE],
            s.per_kind[K_UNSHARE], s.per_kind[K_DELETE], s.per_kind[K_ECS_DELETE],
            s.reruns_apply + s.reruns_once, s.reruns_apply, s.reruns_once, s.second_kills,
            s.finished_first, s.status4_at_await_kill, s.unshared_not_deleted, s.name_exists,
            (mono_ms_now() - t0) / 1000.0);
    total->kills += s.kills;
    if (!daemon)
        total->apply_kills = s.kills;
    for (int k = 0; k < K_N; k++)
        total->per_kind[k] += s.per_kind[k];
    total->reruns_apply += s.reruns_apply;
    total->reruns_once += s.reruns_once;
    total->second_kills += s.second_kills;
}

/* Both modes with one seed: a killed apply, then a killed daemon, each point on a fresh world
 * (emulator reset) and a fresh state directory. */
Test(crash_matrix, apply_and_daemon_killed_at_seeded_points_then_rerun)
{
    uint64_t seed = crash_seed();
    unsigned n = kills_per_mode();
    fprintf(stderr,
            "crash matrix: seed=%" PRIu64 " (IMGRECON_CRASH_SEED=%" PRIu64
            " replays it), %u kills per mode\n",
            seed, seed, n);
    write_world();
    start_emu(&E, CREATE_DELAY, NULL);
    stats total = {0};
    int64_t t0 = mono_ms_now();
    run_matrix(false, seed, n, &total);
    run_matrix(true, seed, n, &total);
    fprintf(stderr,
            "crash matrix summary: seed=%" PRIu64 " kills=%u (create=%u await=%u share=%u "
            "unshare=%u delete=%u ecs_delete=%u; apply=%u daemon=%u) + %u reruns killed too; "
            "reruns=%u (apply=%u run--once=%u), all converged, 0 duplicates, 0 unwanted "
            "deletions, 0 throttled, %.1f s\n",
            seed, total.kills, total.per_kind[K_CREATE], total.per_kind[K_AWAIT],
            total.per_kind[K_SHARE], total.per_kind[K_UNSHARE], total.per_kind[K_DELETE],
            total.per_kind[K_ECS_DELETE], total.apply_kills, total.kills - total.apply_kills,
            total.second_kills, total.reruns_apply + total.reruns_once, total.reruns_apply,
            total.reruns_once, (mono_ms_now() - t0) / 1000.0);
    cr_assert_geq(total.kills, n < 15 ? n : 30, "too few kills landed: %u", total.kills);
}
