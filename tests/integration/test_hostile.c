/* Contradictory listings from the real emulator (provider/README.md "Listings are believed only
 * whole"): a scripted fault of kind "answer" (tests/emulator/README.md) replaces one listing's
 * answer with a body that contradicts what was asked. Each row runs `apply` against it: apply
 * exits 1 naming the check, and the emulator's journal shows no mutating call. */
#include "apply_support.h"
#include "test_param.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define ID_ECS "m-bp1ecsother0000001"
#define ID_WEB "m-bp1web000000000001"
#define ID_OLD "m-bp1old000000000001"

/* An ECS image of another owner, as DescribeImages would list it with the alias given (a JSON
 * member, or "" for none). */
#define ECS_ANSWER(alias)                                                                          \
    "{\"action\":\"DescribeImages\",\"kind\":\"answer\",\"body\":{\"RegionId\":\"cn-hangzhou\","   \
    "\"TotalCount\":1,\"PageNumber\":1,\"PageSize\":100,\"Images\":{\"Image\":[{\"ImageId\":"      \
    "\"" ID_ECS "\",\"ImageName\":\"vendor-base\",\"Status\":\"Available\"" alias "}]}}}"

#define ECS_MANIFEST                                                                               \
    "region: cn-hangzhou\necs_images:\n  - image_id: " ID_ECS "\n    ensure: absent\n"

/* A custom image as ListCustomImages lists it, made from server 0, with the Tags given. */
#define SWAS_IMAGE(id, name, tags)                                                                 \
    "{\"ImageId\":\"" id "\",\"Name\":\"" name "\",\"Status\":\"1\",\"RegionId\":"                 \
    "\"cn-hangzhou\",\"InstanceId\":\"" SRV0 "\",\"SystemSnapshotId\":\"s-sys-00\","               \
    "\"InShare\":false,\"Tags\":[" tags "]}"
#define OWNER_TAG(owner) "{\"Key\":\"imgrecon/owner\",\"Value\":\"" owner "\"}"

/* The observe's listing: "web" (declared, ours) and "old" (undeclared) with the tags given. */
#define SWAS_ANSWER(old_tags)                                                                      \
    "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"body\":{\"TotalCount\":2,"             \
    "\"PageNumber\":1,\"PageSize\":100,\"CustomImages\":[" SWAS_IMAGE(                             \
        ID_WEB, "web", OWNER_TAG("team-a")) "," SWAS_IMAGE(ID_OLD, "old", old_tags) "]}}"

#define WEB_MANIFEST                                                                               \
    "region: cn-hangzhou\ncustom_images:\n  - name: web\n    instance_id: " SRV0                   \
    "\n    system_snapshot_id: s-sys-00\n"

/* "web", ours, shared to one account; the manifest wants it shared to another one only. */
#define SHARED_WEB                                                                                 \
    "      - image_id: " ID_WEB "\n        name: web\n        instance_id: " SRV0                  \
    "\n        system_snapshot_id: s-sys-00\n        tags: {imgrecon/owner: team-a}\n"             \
    "        share_accounts: ['2222222222222222']\n"
#define ACCOUNTS_MANIFEST WEB_MANIFEST "    share_to_accounts: ['3333333333333333']\n"

/* The account-share listing answered with the counters and users given. */
#define USER "{\"UserId\":2222222222222222,\"SharedTime\":\"2024-07-15 13:59:21.0\"}"
#define ACCOUNTS_ANSWER(counters, users)                                                           \
    "{\"action\":\"ListCustomImageShareAccounts\",\"kind\":\"answer\",\"body\":{" counters         \
    "\"ImageShareUsers\":[" users "]}}"

typedef struct hostile_case {
    const char *what;
    const char *images;   /* the fixture's custom_images block, or NULL */
    const char *manifest; /* the manifest */
    const char *fault;    /* the scripted answer (POST /_emulator/faults) */
    const char *message;  /* what apply must say */
} hostile_case;

static const hostile_case cases[] = {
    {"ECS image of another owner", NULL, ECS_MANIFEST,
     ECS_ANSWER(",\"ImageOwnerAlias\":\"others\""),
     "DescribeImages in cn-hangzhou rejected: image " ID_ECS
     " has ImageOwnerAlias others, not the self asked"},
    {"ECS image without an owner alias", NULL, ECS_MANIFEST, ECS_ANSWER(""),
     "image " ID_ECS " has ImageOwnerAlias (none), not the self asked"},
    {"owner tag twice, ours first", NULL, WEB_MANIFEST,
     SWAS_ANSWER(OWNER_TAG("team-a") "," OWNER_TAG("team-b")),
     "ListCustomImages in cn-hangzhou rejected: image " ID_OLD
     " carries the tag key imgrecon/owner twice"},
    {"a user tag twice", NULL, WEB_MANIFEST,
     SWAS_ANSWER(OWNER_TAG("team-a") ",{\"Key\":\"tier\",\"Value\":\"a\"},{\"Key\":\"tier\","
                                     "\"Value\":\"b\"}"),
     "image " ID_OLD " carries the tag key tier twice"},
    {"account shares without TotalCount", SHARED_WEB, ACCOUNTS_MANIFEST,
     ACCOUNTS_ANSWER("\"PageSize\":50,\"PageNumber\":1,", USER),
     "ListCustomImageShareAccounts in cn-hangzhou rejected: page 1 has no TotalCount"},
    {"account shares short of TotalCount", SHARED_WEB, ACCOUNTS_MANIFEST,
     ACCOUNTS_ANSWER("\"TotalCount\":60,\"PageSize\":50,\"PageNumber\":1,", USER),
     "short listing: 1 of TotalCount 60 accounts, page 1 had 1 of 50"},
    {"account shares with an account twice", SHARED_WEB, ACCOUNTS_MANIFEST,
     ACCOUNTS_ANSWER("\"TotalCount\":2,\"PageSize\":50,\"PageNumber\":1,", USER "," USER),
     "account 2222222222222222 is listed twice"},
};

ParameterizedTestParameters(hostile, listing_refused)
{
    return test_param_indices(sizeof(cases) / sizeof(cases[0]));
}

/* True for the calls that change nothing: listings and STS. */
static bool is_read(const char *action)
{
    return strncmp(action, "List", 4) == 0 || strncmp(action, "Describe", 8) == 0 ||
           strcmp(action, "GetCallerIdentity") == 0;
}

ParameterizedTest(size_t *i, hostile, listing_refused, .timeout = 120)
{
    const hostile_case *c = &cases[*i];
    env e;
    env_init(&e);
    write_fixture(&e, 1, c->images, NULL);
    start_emu(&e, "300ms", NULL);
    write_file(e.config, "owner: team-a\nprune: true\nmetrics_listen: null\n");
    write_file(e.manifest, c->manifest);
    cr_assert_eq(emu_proc_add_fault(&e.emu, c->fault), 0, "%s", c->what);
    run_result r = RUN(&e, "apply", "-f", e.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s: exit %d\n%s", c->what, r.status, r.out);
    cr_expect(strstr(r.out, c->message) != NULL, "%s: does not say \"%s\":\n%s", c->what,
              c->message, r.out);
    run_result_free(&r);
    json_t *j = journal_lines(&e);
    for (size_t k = 0; k < json_array_size(j); k++)
        cr_expect(is_read(jstr(json_array_get(j, k), "action")), "%s: a mutating call %s", c->what,
                  jstr(json_array_get(j, k), "action"));
    json_decref(j);
    env_fini(&e);
}

/* An owned, undeclared image in a status imgrecon does not know ("Deleting"), with prune on:
 * apply warns and sends no call at all, where it once pruned the image as if available. */
Test(hostile, an_unknown_status_is_left_alone, .timeout = 120)
{
    env e;
    env_init(&e);
    write_fixture(&e, 1, NULL, NULL);
    start_emu(&e, "300ms", NULL);
    write_file(e.config, "owner: team-a\nprune: true\nmetrics_listen: null\n");
    write_file(e.manifest, WEB_MANIFEST);
    static const char fault[] =
        "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"body\":{\"TotalCount\":2,"
        "\"PageNumber\":1,\"PageSize\":100,\"CustomImages\":[" SWAS_IMAGE(
            ID_WEB, "web", OWNER_TAG("team-a")) ",{\"ImageId\":\"" ID_OLD "\",\"Name\":\"old\","
                                                "\"Status\":\"Deleting\",\"RegionId\":\"cn-"
                                                "hangzhou\",\"InstanceId\":\"" SRV0
                                                "\",\"SystemSnapshotId\":\"s-sys-00\",\"InShare\":"
                                                "false,\"Tags\":[" OWNER_TAG("team-a") "]}]}}";
    cr_assert_eq(emu_proc_add_fault(&e.emu, fault), 0);
    run_result r = RUN(&e, "apply", "-f", e.manifest, "--auto-approve");
    cr_expect_eq(r.status, 0, "exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "a status imgrecon does not know") != NULL, "no warning:\n%s", r.out);
    run_result_free(&r);
    json_t *j = journal_lines(&e);
    for (size_t k = 0; k < json_array_size(j); k++)
        cr_expect(is_read(jstr(json_array_get(j, k), "action")), "a mutating call %s",
                  jstr(json_array_get(j, k), "action"));
    json_decref(j);
    env_fini(&e);
}
