/* The manifest loader (spec/spec.c, spec/spec_yaml.c): a table of bad inputs, each with the exact
 * first diagnostic (line:col: message) and the number of diagnostics; good inputs (defaults,
 * sorting, multi-document files, directories, empty documents); and hostile bytes, which must
 * give diagnostics and never a crash. Every input is a real file in a fresh temporary directory. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spec.h"
#include "spec_rules.h"
#include "spec_yaml.h"
#include "test_clock.h"
#include "test_diag.h"
#include "test_file.h"
#include "test_param.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-spec-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    cr_assert_eq(test_file_remove_tree(dir), 0);
}

/* Writes len bytes to dir/name (creating parent directories) and returns the full path. */
static const char *put(const char *name, const char *data, size_t len)
{
    static char path[8][256];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    for (char *s = strchr(p + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        (void)mkdir(p, 0700);
        *s = '/';
    }
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "create %s", p);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return p;
}

static const char *puts_(const char *name, const char *text)
{
    return put(name, text, strlen(text));
}

/* Loads one path; returns spec_load's result. */
static int load1(const char *path, spec_set **set, spec_diags *d)
{
    spec_diags_init(d);
    *set = NULL;
    return spec_load(&path, 1, set, d);
}

/* ---- Bad inputs ------------------------------------------------------------------------------ */

typedef struct bad_case {
    const char *id;
    const char *text;
    const char *first; /* expected first diagnostic, "line:col: message" */
    size_t count;      /* expected number of diagnostics */
} bad_case;

#define HDR "region: cn-hangzhou\ncustom_images:\n"
#define IMG "  - name: web\n    instance_id: i1\n    system_snapshot_id: s-1\n"
#define ECS "region: cn-hangzhou\necs_images:\n  - image_id: m-abc\n"
#define X10 "aaaaaaaaaa"
#define X64 X10 X10 X10 X10 X10 X10 "aaaa"
#define TAGS19                                                                                     \
    "{a1: v, a2: v, a3: v, a4: v, a5: v, a6: v, a7: v, a8: v, a9: v, a10: v, a11: v, a12: v, "     \
    "a13: v, a14: v, a15: v, a16: v, a17: v, a18: v, a19: v"

/* Criterion runs each parameter in a fresh process, where pointers from the parent may not hold;
 * the parameters are therefore indices into this table. */
static const bad_case cases[] = {
    {"name too short", HDR "  - name: w\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: invalid image name 'w': must be 2-128 characters", 1},
    {"name bad char", HDR "  - name: web.base\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: invalid image name 'web.base': may contain only letters, digits, ':', '_' and '-'", 1},
    {"name starts with dash",
     HDR "  - name: -web\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: invalid image name '-web': must start with a letter or a digit", 1},
    {"name too long",
     HDR "  - name: " X64 X64 "a\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: invalid image name '" X64 "...': must be 2-128 characters", 1},
    {"name boolean", HDR "  - name: true\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: 'name' must be a string, got boolean true", 1},
    {"name list", HDR "  - name: [a, b]\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: 'name' must be a string, got a list", 1},
    {"name null", HDR "  - name:\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:10: 'name' must be a string, got null", 1},
    {"name with NUL", HDR "  - name: \"a\\0b\"\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: 'name' must not contain NUL characters", 1},
    {"name with control char",
     HDR "  - name: \"a\\x01b\"\n    instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:11: invalid image name 'a\\x01b': may contain only letters, digits, ':', '_' and '-'", 1},
    {"missing name", HDR "  - instance_id: i1\n    system_snapshot_id: s-1\n",
     "3:5: missing required key 'name' in custom_images entry", 1},
    {"missing instance_id", HDR "  - name: web\n    system_snapshot_id: s-1\n",
     "3:5: missing required key 'instance_id' in custom_images entry", 1},
    {"missing system_snapshot_id", HDR "  - name: web\n    instance_id: i1\n",
     "3:5: missing required key 'system_snapshot_id' in custom_images entry", 1},
    {"key with NUL", HDR IMG "    \"instance\\0_id\": i2\n",
     "6:5: keys must not contain NUL characters, got string 'instance\\x00_id'", 1},
    {"document key with NUL", "\"region\\0\": x\nregion: cn-hangzhou\n",
     "1:1: keys must not contain NUL characters, got string 'region\\x00'", 1},
    {"image list empty mapping", "region: cn-hangzhou\ncustom_images: {}\n",
     "2:16: 'custom_images' must be a list, got an empty mapping", 1},
    {"unknown key with suggestion", HDR IMG "    instanceid: i2\n",
     "6:5: unknown key 'instanceid' in custom_images entry; did you mean 'instance_id'?", 1},
    {"unknown key without suggestion", HDR IMG "    colour: red\n",
     "6:5: unknown key 'colour' in custom_images entry (known keys: name, instance_id, "
     "system_snapshot_id, data_snapshot_id, description, resource_group_id, tags, "
     "share_to_ecs, protect, adopt, share_to_accounts)",
     1},
    {"adopt not a boolean", HDR IMG "    adopt: yes\n",
     "6:12: 'adopt' must be a boolean (true or false), got string 'yes'", 1},
    {"share_to_accounts not a list", HDR IMG "    share_to_accounts: 1234\n",
     "6:24: 'share_to_accounts' must be a list of account ids, got number 1234", 1},
    {"share_to_accounts bad id", HDR IMG "    share_to_accounts: [12a4]\n",
     "6:25: account id must be 1-20 digits, got string '12a4'", 1},
    {"share_to_accounts twice", HDR IMG "    share_to_accounts: [1234, 1234]\n",
     "6:31: account 1234 is listed twice in 'share_to_accounts'", 1},
    {"duplicate key", HDR IMG "    name: web2\n", "6:5: duplicate key 'name' (first at FILE:3:5)",
     1},
    {"unknown document key", "region: cn-hangzhou\ncustom_image: []\n",
     "2:1: unknown key 'custom_image' in manifest document; did you mean 'custom_images'?", 1},
    {"bad region", "region: Hangzhou\n",
     "1:9: invalid region 'Hangzhou': expected a region id such as cn-hangzhou", 1},
    {"region number", "region: 5\n",
     "1:9: invalid region '5': expected a region id such as cn-hangzhou", 1},
    {"region list", "region: [cn-hangzhou]\n", "1:9: 'region' must be a string, got a list", 1},
    {"missing region", "custom_images: []\n",
     "1:1: missing required key 'region' in manifest document", 1},
    {"document is a list", "- region: cn-hangzhou\n",
     "1:1: a manifest document must be a mapping with a 'region' key, got a list", 1},
    {"document is a scalar", "hello\n",
     "1:1: a manifest document must be a mapping with a 'region' key, got string 'hello'", 1},
    {"custom_images mapping", "region: cn-hangzhou\ncustom_images: {name: web}\n",
     "2:16: 'custom_images' must be a list, got a mapping", 1},
    {"custom_images item scalar", HDR "  - web\n",
     "3:5: each custom_images entry must be a mapping, got string 'web'", 1},
    {"tags list", HDR IMG "    tags: [team]\n",
     "6:11: 'tags' must be a mapping of tag key to value, got a list", 1},
    {"tag key acs:", HDR IMG "    tags: {acs:team: web}\n",
     "6:12: invalid tag key 'acs:team': must not start with 'acs:' or 'aliyun'", 1},
    {"tag key aliyun", HDR IMG "    tags: {AliyunTeam: web}\n",
     "6:12: invalid tag key 'AliyunTeam': must not start with 'acs:' or 'aliyun'", 1},
    {"tag key url", HDR IMG "    tags: {\"see http://x\": web}\n",
     "6:12: invalid tag key 'see http://x': must not contain 'http://' or 'https://'", 1},
    {"tag key too long", HDR IMG "    tags: {" X64 "b: v}\n",
     "6:12: invalid tag key '" X64 "...': must be at most 64 characters", 1},
    {"tag value too long", HDR IMG "    tags: {team: " X64 "b}\n",
     "6:18: invalid value for tag 'team': must be at most 64 characters", 1},
    {"tag value url", HDR IMG "    tags: {docs: \"HTTPS://example.com\"}\n",
     "6:18: invalid value for tag 'docs': must not contain 'http://' or 'https://'", 1},
    {"tag value null", HDR IMG "    tags: {team: }\n",
     "6:18: value of tag 'team' must be a string (quote it; '' for empty), got null", 1},
    {"tag value boolean", HDR IMG "    tags: {public: true}\n",
     "6:20: value of tag 'public' must be a string (quote it; '' for empty), got boolean true", 1},
    {"tag value mapping", HDR IMG "    tags: {team: {a: b}}\n",
     "6:18: value of tag 'team' must be a string (quote it; '' for empty), got a mapping", 1},
    {"too many tags", HDR IMG "    tags: " TAGS19 ", a20: v}\n",
     "6:11: too many tags: 20 (at most 19, since imgrecon adds imgrecon/owner)", 1},
    {"too many tags with protect", HDR IMG "    protect: true\n    tags: " TAGS19 "}\n",
     "7:11: too many tags: 19 (at most 18 with protect: true, since imgrecon adds "
     "imgrecon/owner and imgrecon/protect)",
     1},
    {"reserved tag", HDR IMG "    tags: {imgrecon/team: web}\n",
     "6:12: tag key 'imgrecon/team' is reserved: imgrecon manages the 'imgrecon/' prefix", 1},
    {"duplicate tag key", HDR IMG "    tags: {team: a, team: b}\n",
     "6:21: duplicate key 'team' (first at FILE:6:12)", 1},
    {"share_to_ecs yes", HDR IMG "    share_to_ecs: yes\n",
     "6:19: 'share_to_ecs' must be a boolean (true or false), got string 'yes'", 1},
    {"protect quoted", HDR IMG "    protect: \"true\"\n",
     "6:14: 'protect' must be a boolean (true or false), got string 'true'", 1},
    {"protect number", HDR IMG "    protect: 1\n",
     "6:14: 'protect' must be a boolean (true or false), got number 1", 1},
    {"description too long", HDR IMG "    description: " X64 X64 X64 X64 "b\n",
     "6:18: 'description' is too long: 257 characters (at most 256)", 1},
    {"system snapshot shape",
     HDR "  - name: web\n    instance_id: i1\n    system_snapshot_id: snap-1\n",
     "5:25: invalid system_snapshot_id 'snap-1': expected a snapshot id such as s-bp14m09pq8abc0g6",
     1},
    {"data snapshot shape", HDR IMG "    data_snapshot_id: S-1\n",
     "6:23: invalid data_snapshot_id 'S-1': expected a snapshot id such as s-bp14m09pq8abc0g6", 1},
    {"resource group shape", HDR IMG "    resource_group_id: default\n",
     "6:24: invalid resource_group_id 'default': expected a resource group id such as "
     "rg-aek2bti7cf7abcd",
     1},
    {"instance id with space",
     HDR "  - name: web\n    instance_id: i 1\n    system_snapshot_id: s-1\n",
     "4:18: invalid instance_id 'i 1': expected letters, digits, '-' and '_' (at most 64)", 1},
    {"ecs image id shape",
     "region: cn-hangzhou\necs_images:\n  - image_id: img-1\n    ensure: absent\n",
     "3:15: invalid image_id 'img-1': expected an ECS image id such as m-bp67acfmxazb4p1234", 1},
    {"ecs missing ensure", ECS,
     "3:5: missing required key 'ensure' in ecs_images entry (write ensure: absent)", 1},
    {"ecs ensure present", ECS "    ensure: present\n",
     "4:13: 'ensure' must be 'absent' (the only supported state), got 'present'", 1},
    {"ecs force no", ECS "    ensure: absent\n    force: no\n",
     "5:12: 'force' must be a boolean (true or false), got string 'no'", 1},
    {"ecs unknown key", ECS "    ensure: absent\n    forse: true\n",
     "5:5: unknown key 'forse' in ecs_images entry; did you mean 'force'?", 1},
    {"ecs item scalar", "region: cn-hangzhou\necs_images: [m-abc]\n",
     "2:14: each ecs_images entry must be a mapping, got string 'm-abc'", 1},
    {"ecs duplicate", ECS "    ensure: absent\n  - image_id: m-abc\n    ensure: absent\n",
     "5:5: duplicate ecs_images entry 'm-abc' in region 'cn-hangzhou' (first declared at "
     "FILE:3:5)",
     1},
    {"duplicate image across documents", HDR IMG "---\n" HDR IMG,
     "9:5: duplicate image 'web' in region 'cn-hangzhou' (first declared at FILE:3:5)", 1},
    {"mapping key is a list", "region: cn-hangzhou\n? [a]\n: b\n",
     "2:3: keys must be strings, got a list", 1},
    {"unclosed flow list", "region: cn-hangzhou\ncustom_images: [\n",
     "3:1: syntax error: did not find expected node content, while parsing a flow node "
     "started at 3:1",
     1},
    {"mapping in wrong place", "region: cn-hangzhou: x\n",
     "1:20: syntax error: mapping values are not allowed in this context", 1},
    {"tab indentation", HDR "\t- name: web\n",
     "3:1: syntax error: tab character here; YAML indentation must use spaces", 1},
    {"alias without anchor", "region: *r\n", "1:9: alias '*r' has no anchor", 1},
    {"duplicate tag keys, first named", HDR IMG "    tags: {a: x, b: y, a: z, b: w}\n",
     "6:24: duplicate key 'a' (first at FILE:6:12)", 2},
    {"duplicate document key after many", "region: cn-hangzhou\nregion: cn-beijing\n",
     "2:1: duplicate key 'region' (first at FILE:1:1)", 1},
    {"empty file", "", "1:1: no manifest in this file: expected a document with 'region'", 1},
    {"only comments", "# nothing here\n\n",
     "1:1: no manifest in this file: expected a document with 'region'", 1},
    {"several errors in source order",
     HDR "  - name: -x\n    instance_id: i1\n    system_snapshot_id: s-1\n    protect: maybe\n"
         "    tags: {acs:x: y}\n",
     "3:11: invalid image name '-x': must start with a letter or a digit", 3},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

ParameterizedTestParameters(spec, bad)
{
    return test_param_indices(N_CASES);
}

ParameterizedTest(size_t *i, spec, bad, .init = setup, .fini = teardown)
{
    const bad_case *c = &cases[*i];
    const char *path = puts_("m.yaml", c->text);
    spec_set *set;
    spec_diags d;
    int rc = load1(path, &set, &d);
    cr_assert_eq(rc, -EINVAL, "[%s] rc %d", c->id, rc);
    cr_assert_null(set);
    cr_assert_geq(d.n, 1, "[%s] no diagnostic", c->id);

    /* Expected messages name the file as FILE. */
    test_diag_expect(&d.v[0], c->first, path, c->id);
    cr_expect_eq(d.n, c->count, "[%s] %zu diagnostics, want %zu (first: %s)", c->id, d.n, c->count,
                 d.v[0].msg);
    spec_diags_clear(&d);
}

/* ---- Good inputs ------------------------------------------------------------------------------
 */

Test(spec, defaults_and_fields, .init = setup, .fini = teardown)
{
    const char *path = puts_("m.yaml", "region: cn-hangzhou\n"
                                       "custom_images:\n"
                                       "  - name: web-base-v3\n"
                                       "    instance_id: ace0706b2ac4454d984295a94213abcd\n"
                                       "    system_snapshot_id: s-bp1sys00000001\n"
                                       "    data_snapshot_id: s-bp1data0000001\n"
                                       "    description: \"Web: base\"\n"
                                       "    resource_group_id: rg-aek2bti7cf7abcd\n"
                                       "    tags: {team: web, version: 3, empty: ''}\n"
                                       "    share_to_ecs: True\n"
                                       "  - name: bare\n"
                                       "    instance_id: i2\n"
                                       "    system_snapshot_id: s-2\n"
                                       "ecs_images:\n"
                                       "  - {image_id: m-bp67acfmxazb4p1234, ensure: absent}\n");
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), 0);
    cr_assert_eq(d.n, 0);
    cr_assert_eq(set->n_images, 2);
    const spec_image *b = &set->images[0], *w = &set->images[1];
    cr_assert_str_eq(b->name, "bare");
    cr_assert_null(b->data_snapshot_id);
    cr_assert_null(b->description);
    cr_assert_null(b->resource_group_id);
    cr_assert_eq(b->n_tags, 0);
    cr_assert(!b->share_to_ecs && !b->protect);
    cr_assert_str_eq(b->pos.file, path);
    cr_assert_eq(b->pos.line, 11);
    cr_assert_eq(b->pos.col, 5);
    cr_assert_str_eq(w->region, "cn-hangzhou");
    cr_assert_str_eq(w->instance_id, "ace0706b2ac4454d984295a94213abcd");
    cr_assert_str_eq(w->system_snapshot_id, "s-bp1sys00000001");
    cr_assert_str_eq(w->data_snapshot_id, "s-bp1data0000001");
    cr_assert_str_eq(w->description, "Web: base");
    cr_assert_str_eq(w->resource_group_id, "rg-aek2bti7cf7abcd");
    cr_assert_eq(w->n_tags, 3);
    cr_assert_str_eq(w->tags[0].key, "team");
    cr_assert_str_eq(w->tags[1].value, "3");
    cr_assert_str_eq(w->tags[2].value, "");
    cr_assert(w->share_to_ecs);
    cr_assert_eq(set->n_ecs, 1);
    cr_assert_str_eq(set->ecs[0].image_id, "m-bp67acfmxazb4p1234");
    cr_assert(!set->ecs[0].force);
    cr_assert_eq(set->ecs[0].pos.line, 15);
    cr_assert_eq(set->n_regions, 1);
    cr_assert_eq(set->n_files, 1);
    cr_assert_eq(spec_set_find(set, "cn-hangzhou", "web-base-v3"), w);
    cr_assert_null(spec_set_find(set, "cn-shanghai", "web-base-v3"));
    cr_assert_null(spec_set_find(set, "cn-hangzhou", "nope"));
    spec_set_free(set);
    spec_diags_clear(&d);
}

Test(spec, directories_sorted_recursive_multidoc, .init = setup, .fini = teardown)
{
    /* Files are read in sorted path order whatever the directory order; hidden entries and
     * other suffixes are skipped; empty documents are allowed. */
    puts_("m/z.yml", "region: cn-shanghai\ncustom_images:\n  - {name: zz, instance_id: i, "
                     "system_snapshot_id: s-1}\n");
    puts_("m/a/b.yaml", "---\n---\nregion: cn-hangzhou\ncustom_images:\n  - {name: bb, "
                        "instance_id: i, system_snapshot_id: s-1}\n---\n# empty\n---\n"
                        "region: ap-southeast-1\n");
    puts_("m/a.yaml", "region: cn-hangzhou\ncustom_images:\n  - {name: aa, instance_id: i, "
                      "system_snapshot_id: s-1}\n");
    puts_("m/.git/x.yaml", "this: is not a manifest\n");
    puts_("m/notes.txt", "not yaml\n");
    puts_("m/c.yaml.bak", "not: read\n");
    char root[128];
    snprintf(root, sizeof(root), "%s/m", dir);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(root, &set, &d), 0, "first: %s", d.n ? d.v[0].msg : "");
    cr_assert_eq(set->n_files, 3);
    cr_assert(strstr(set->files[0], "/m/a.yaml"));
    cr_assert(strstr(set->files[1], "/m/a/b.yaml"));
    cr_assert(strstr(set->files[2], "/m/z.yml"));
    cr_assert_eq(set->n_images, 3);
    cr_assert_str_eq(set->images[0].name, "aa");
    cr_assert_str_eq(set->images[1].name, "bb");
    cr_assert_eq(set->images[1].pos.line, 5);
    cr_assert_eq(set->images[1].pos.file, set->files[1], "positions point into set->files");
    cr_assert_str_eq(set->images[2].region, "cn-shanghai");
    cr_assert_eq(set->n_regions, 3);
    cr_assert_str_eq(set->regions[0], "ap-southeast-1");
    cr_assert_str_eq(set->regions[1], "cn-hangzhou");
    cr_assert_str_eq(set->regions[2], "cn-shanghai");
    spec_set_free(set);
    spec_diags_clear(&d);
}

Test(spec, same_file_twice_and_several_paths, .init = setup, .fini = teardown)
{
    const char *a = puts_("a.yaml", "region: cn-hangzhou\n");
    const char *b = puts_("b.yaml", "region: cn-beijing\n");
    const char *paths[] = {b, a, a};
    spec_set *set;
    spec_diags d;
    spec_diags_init(&d);
    cr_assert_eq(spec_load(paths, 3, &set, &d), 0);
    cr_assert_eq(set->n_files, 2);
    cr_assert_str_eq(set->files[0], a);
    cr_assert_eq(set->n_regions, 2, "a region without images is still listed");
    cr_assert_eq(set->n_images, 0);
    spec_set_free(set);
    spec_diags_clear(&d);
}

/* One file reached through a hard link, a symbolic link and its own name is read once, under
 * the first of its paths in sorted order; the names sort apart from the file's identity. */
Test(spec, one_file_through_links_is_read_once, .init = setup, .fini = teardown)
{
    const char *m = puts_("m/m.yaml", HDR IMG);
    char hard[256], soft[256];
    snprintf(hard, sizeof(hard), "%s/m/a-hard.yaml", dir);
    snprintf(soft, sizeof(soft), "%s/m/z-soft.yaml", dir);
    cr_assert_eq(link(m, hard), 0);
    cr_assert_eq(symlink(m, soft), 0);
    puts_("m/n.yaml", "region: cn-beijing\n");
    const char *paths[] = {soft, dir, m};
    spec_set *set;
    spec_diags d;
    spec_diags_init(&d);
    cr_assert_eq(spec_load(paths, 3, &set, &d), 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(set->n_files, 2);
    cr_assert_str_eq(set->files[0], hard);
    cr_assert(strstr(set->files[1], "/m/n.yaml"));
    cr_assert_eq(set->n_images, 1);
    spec_set_free(set);
    spec_diags_clear(&d);
}

/* A manifest nested too deep is one error naming the directory, not also "no manifest files". */
Test(spec, too_deep_is_one_error, .init = setup, .fini = teardown)
{
    char name[256] = "top";
    for (int i = 0; i < 34; i++)
        strcat(name, "/d");
    strcat(name, "/m.yaml");
    puts_(name, HDR IMG);
    char top[160];
    snprintf(top, sizeof(top), "%s/top", dir);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(top, &set, &d), -EINVAL);
    cr_assert_eq(d.n, 1, "%zu diagnostics, the last: %s", d.n, d.v[d.n - 1].msg);
    cr_assert_str_eq(d.v[0].msg, "directories nested deeper than 32 levels");
    spec_diags_clear(&d);
}

Test(spec, duplicate_across_files_names_both, .init = setup, .fini = teardown)
{
    const char *a = puts_("a.yaml", HDR IMG);
    const char *b = puts_("b.yaml", "# other\n" HDR IMG);
    const char *paths[] = {dir};
    spec_set *set;
    spec_diags d;
    spec_diags_init(&d);
    cr_assert_eq(spec_load(paths, 1, &set, &d), -EINVAL);
    cr_assert_eq(d.n, 1);
    char want[512];
    snprintf(want, sizeof(want),
             "duplicate image 'web' in region 'cn-hangzhou' (first declared at %s:3:5)", a);
    cr_assert_str_eq(d.v[0].msg, want);
    cr_assert_str_eq(d.v[0].file, b);
    cr_assert_eq(d.v[0].line, 4);
    spec_diags_clear(&d);
}

Test(spec, every_error_of_a_run, .init = setup, .fini = teardown)
{
    puts_("a.yaml", "region: bad_region\n");
    puts_("b.yaml", HDR "  - name: x\n");
    puts_("c.yaml", "region: [\n");
    const char *paths[] = {dir};
    spec_set *set;
    spec_diags d;
    spec_diags_init(&d);
    cr_assert_eq(spec_load(paths, 1, &set, &d), -EINVAL);
    cr_assert_eq(d.n, 5, "1 + 3 (name, instance_id, system_snapshot_id) + 1 syntax; got %zu", d.n);
    cr_assert(strstr(d.v[0].file, "a.yaml"));
    cr_assert(strstr(d.v[4].file, "c.yaml"));
    spec_diags_clear(&d);
}

Test(spec, missing_paths_and_empty_dirs, .init = setup, .fini = teardown)
{
    spec_set *set;
    spec_diags d;
    char missing[128], empty[128];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    cr_assert_eq(mkdir(empty, 0700), 0);
    cr_assert_eq(load1(missing, &set, &d), -ENOENT);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.v[0].msg, "cannot read: No such file or directory");
    spec_diags_clear(&d);
    cr_assert_eq(load1(empty, &set, &d), -EINVAL);
    cr_assert_str_eq(d.v[0].msg, "no manifest files (*.yaml, *.yml) in this directory");
    spec_diags_clear(&d);
    spec_diags_init(&d);
    cr_assert_eq(spec_load(NULL, 0, &set, &d), -EINVAL);
    cr_assert_eq(d.n, 1);
    spec_diags_clear(&d);
}

Test(spec, bom_positions, .init = setup, .fini = teardown)
{
    const char *path = put("m.yaml", "\xEF\xBB\xBFregion: Bad\n", 15);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), -EINVAL);
    char got[512];
    test_diag_short(&d.v[0], got, sizeof(got));
    cr_assert_str_eq(got, "1:9: invalid region 'Bad': expected a region id such as cn-hangzhou");
    spec_diags_clear(&d);
    path = put("ok.yaml", "\xEF\xBB\xBFregion: cn-hangzhou\n", 23);
    cr_assert_eq(load1(path, &set, &d), 0);
    spec_set_free(set);
    spec_diags_clear(&d);
}

Test(spec, check_functions)
{
    cr_assert_null(spec_check_image_name("a1"));
    cr_assert_null(spec_check_image_name("Web:base_v-3"));
    cr_assert_not_null(spec_check_image_name("a"));
    cr_assert_not_null(spec_check_image_name(NULL));
    cr_assert_not_null(spec_check_image_name("_a"));
    cr_assert_not_null(spec_check_image_name("a b"));
    cr_assert_null(spec_check_tag_key("imgrecon/owner"), "the emulator accepts our own tags");
    cr_assert_null(spec_check_tag_key("团队"));
    cr_assert_not_null(spec_check_tag_key(""));
    cr_assert_not_null(spec_check_tag_key("acs:x"));
    cr_assert_not_null(spec_check_tag_key("aliyunx"));
    cr_assert_null(spec_check_tag_value(""));
    cr_assert_null(spec_check_tag_value(NULL));
    /* 64 three-byte characters are 64 characters, not 192 bytes. */
    char v[64 * 3 + 4] = "";
    for (int i = 0; i < 64; i++)
        strcat(v, "値");
    cr_assert_null(spec_check_tag_value(v));
    strcat(v, "x");
    cr_assert_not_null(spec_check_tag_value(v));
}

Test(spec, suggestions)
{
    const char *known[] = {"name", "instance_id", "protect"};
    cr_assert_str_eq(spec_suggest("nmae", known, 3, 2), "name");
    cr_assert_str_eq(spec_suggest("protetc", known, 3, 2), "protect");
    cr_assert_null(spec_suggest("colour", known, 3, 2));
    cr_assert_null(spec_suggest("", known, 3, 2));
}

/* ---- Hostile bytes ----------------------------------------------------------------------------
 */

/* Loads bytes and asserts the loader failed with at least one positioned diagnostic. */
static void expect_rejected(const char *what, const char *data, size_t len, const char *needle)
{
    const char *path = put("h.yaml", data, len);
    spec_set *set;
    spec_diags d;
    int rc = load1(path, &set, &d);
    cr_assert_eq(rc, -EINVAL, "%s: rc %d", what, rc);
    cr_assert_geq(d.n, 1, "%s", what);
    cr_assert_str_eq(d.v[0].file, path);
    cr_assert_gt(d.v[0].line, 0, "%s: positioned", what);
    bool found = needle == NULL;
    for (size_t i = 0; i < d.n && !found; i++)
        found = strstr(d.v[i].msg, needle) != NULL;
    cr_assert(found, "%s: no diagnostic has '%s' (first: %s)", what, needle, d.v[0].msg);
    spec_diags_clear(&d);
}

Test(spec_hostile, binary, .init = setup, .fini = teardown)
{
    char buf[4096];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (char)(x >> 16);
    }
    expect_rejected("binary", buf, sizeof(buf), NULL);
    expect_rejected("NUL bytes", "region: a\0b\n", 12, "invalid text");
}

Test(spec_hostile, invalid_utf8, .init = setup, .fini = teardown)
{
    expect_rejected("bad octet", "region: cn-\xff\n", 13, "invalid leading UTF-8 octet");
    expect_rejected("truncated", "region: cn-\xe4\xb8\n", 14, "invalid");
    const char *path = put("u.yaml", "region: x\nfoo: \xc3\x28\n", 18);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), -EINVAL);
    cr_assert_eq(d.v[0].line, 2, "the bad byte's line");
    /* libyaml names the byte that broke the sequence: '(' after the lead byte 0xc3. */
    cr_assert_eq(d.v[0].col, 7, "the bad byte's column");
    cr_assert_str_eq(
        d.v[0].msg,
        "invalid text: invalid trailing UTF-8 octet (byte 0x28); manifests must be UTF-8");
    spec_diags_clear(&d);
}

Test(spec_hostile, megabyte_line, .init = setup, .fini = teardown)
{
    size_t n = 1024 * 1024;
    char *buf = malloc(n + 64);
    cr_assert_not_null(buf);
    int off = sprintf(buf, HDR "  - name: ");
    memset(buf + off, 'a', n);
    strcpy(buf + off + n, "\n");
    expect_rejected("1 MiB name", buf, strlen(buf), "must be 2-128 characters");
    memset(buf, 'b', n);
    buf[n] = '\0';
    expect_rejected("1 MiB scalar", buf, n, "must be a mapping");
    free(buf);
}

/* A share_to_accounts list past its limit is refused whole, with one error: its items are not
 * compared with each other (10,000 copies of one id once gave 9,999 errors, and 100,000
 * distinct ids half a minute of quadratic checking). */
Test(spec_hostile, long_account_list_is_one_error, .init = setup, .fini = teardown)
{
    size_t n = 10000;
    char *buf = malloc(n * 6 + 256);
    cr_assert_not_null(buf);
    int off = sprintf(buf, HDR IMG "    share_to_accounts: [");
    for (size_t i = 0; i < n; i++)
        off += sprintf(buf + off, "%s1234", i ? ", " : "");
    strcpy(buf + off, "]\n");
    const char *path = put("accounts.yaml", buf, strlen(buf));
    free(buf);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), -EINVAL);
    cr_assert_eq(d.n, 1, "%zu diagnostics, first: %s", d.n, d.v[0].msg);
    cr_assert(strstr(d.v[0].msg, "too many accounts in 'share_to_accounts': 10000 (at most 50)"),
              "%s", d.v[0].msg);
    spec_diags_clear(&d);
}

/* A FIFO named as a manifest with nobody writing to it reads as empty instead of waiting for a
 * writer forever (the daemon loads on its loop). The old open blocked: the test timed out. */
Test(spec_hostile, fifo_without_writer_does_not_block, .init = setup, .fini = teardown,
     .timeout = 20)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/pipe.yaml", dir);
    cr_assert_eq(mkfifo(path, 0600), 0, "%s", strerror(errno));
    spec_set *set = NULL;
    spec_diags d;
    (void)load1(path, &set, &d);
    for (size_t i = 0; i < d.n; i++)
        cr_expect_null(strstr(d.v[i].msg, "cannot read"), "%s", d.v[i].msg);
    spec_set_free(set);
    spec_diags_clear(&d);
}

Test(spec_hostile, too_large, .init = setup, .fini = teardown)
{
    size_t n = SPEC_YAML_MAX_FILE_BYTES + 1;
    char *buf = malloc(n);
    cr_assert_not_null(buf);
    memset(buf, '#', n);
    const char *path = put("big.yaml", buf, n);
    free(buf);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), -EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "file too large: more than %u bytes", SPEC_YAML_MAX_FILE_BYTES);
    cr_assert_str_eq(d.v[0].msg, want, "the size read is not the file's");
    spec_diags_clear(&d);
}

Test(spec_hostile, deep_nesting, .init = setup, .fini = teardown)
{
    size_t depth = 10000;
    char *buf = malloc(2 * depth + 2);
    cr_assert_not_null(buf);
    memset(buf, '[', depth);
    memset(buf + depth, ']', depth);
    buf[2 * depth] = '\n';
    expect_rejected("10,000 [", buf, 2 * depth + 1, "nesting deeper than 64 levels");
    for (size_t i = 0; i < depth; i++)
        buf[i] = '{', buf[depth + i] = '}';
    expect_rejected("10,000 {", buf, 2 * depth + 1, NULL);
    /* Block style: "- " repeated on one line. */
    char *blk = malloc(2 * depth + 4);
    cr_assert_not_null(blk);
    for (size_t i = 0; i < depth; i++)
        blk[2 * i] = '-', blk[2 * i + 1] = ' ';
    strcpy(blk + 2 * depth, "x\n");
    expect_rejected("10,000 -", blk, strlen(blk), "nesting deeper than 64 levels");
    free(blk);
    free(buf);
}

Test(spec_hostile, alias_bomb, .init = setup, .fini = teardown)
{
    char buf[4096];
    size_t o = (size_t)sprintf(buf, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char c = 'b'; c <= 'j'; c++)
        o += (size_t)sprintf(buf + o,
                             "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
                             c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    expect_rejected("billion laughs", buf, o, "alias expansion");
    /* A long string aliased many times hits the byte budget before the node budget. */
    size_t big = 1024 * 1024;
    char *s = malloc(big + 4096);
    cr_assert_not_null(s);
    o = (size_t)sprintf(s, "a: &a ");
    memset(s + o, 'x', big);
    o += big;
    o += (size_t)sprintf(s + o, "\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, "
                                "*a, *a, *a, *a, *a]\n");
    expect_rejected("string laughs", s, o, "bytes of text");
    free(s);
    expect_rejected("recursive alias", "a: &a [*a]\n", 11, "alias");
}

Test(spec_hostile, aliases_within_limits_work, .init = setup, .fini = teardown)
{
    const char *path = puts_("m.yaml", "region: &r cn-hangzhou\ncustom_images:\n"
                                       "  - &base {name: one, instance_id: i1, "
                                       "system_snapshot_id: s-1, tags: &t {team: web}}\n"
                                       "  - {name: two, instance_id: i1, system_snapshot_id: s-1, "
                                       "tags: *t}\n");
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(set->n_images, 2);
    cr_assert_str_eq(set->images[1].tags[0].value, "web");
    spec_set_free(set);
    spec_diags_clear(&d);
}

/* ---- Lint: regions against the built-in SWAS list (validate's warnings) ------------------ */

typedef struct lint_case {
    const char *text;
    size_t warnings;
    const char *first; /* "line:col: message" of the first warning, or NULL */
} lint_case;

static const lint_case lints[] = {
    {"region: cn-hangzhou\n", 0, NULL},
    {"region: ap-southeast-7\n---\nregion: cn-wuhan-lr\n---\nregion: me-east-1\n", 0, NULL},
    {"region: cn-hangzhuo\n", 1,
     "1:9: region 'cn-hangzhuo' is not a known Simple Application Server region; did you mean "
     "'cn-hangzhou'?"},
    {"region: us-west-2\n", 1,
     "1:9: region 'us-west-2' is not a known Simple Application Server region; did you mean "
     "'us-west-1'?"},
    {"region: xx-test-region\n", 1,
     "1:9: region 'xx-test-region' is not a known Simple Application Server region (the list is "
     "in spec/README.md)"},
    /* One warning per region, at its first declaration, whatever the order of documents. */
    {"region: cn-beijing\n---\nregion: zz-b\n---\nregion: zz-a\n---\nregion: zz-b\n", 2,
     "5:9: region 'zz-a' is not a known Simple Application Server region (the list is in "
     "spec/README.md)"},
};
#define N_LINT (sizeof(lints) / sizeof(lints[0]))

ParameterizedTestParameters(spec, lint)
{
    return test_param_indices(N_LINT);
}

ParameterizedTest(size_t *i, spec, lint, .init = setup, .fini = teardown)
{
    const lint_case *c = &lints[*i];
    const char *path = puts_("m.yaml", c->text);
    spec_set *set;
    spec_diags d, w;
    cr_assert_eq(load1(path, &set, &d), 0, "[%s] %s", c->text, d.n ? d.v[0].msg : "");
    spec_diags_init(&w);
    cr_expect_eq(spec_set_lint(set, &w), c->warnings, "[%s]", c->text);
    cr_expect_eq(w.n, c->warnings, "[%s] %zu warnings", c->text, w.n);
    if (c->first != NULL && w.n > 0)
        test_diag_expect(&w.v[0], c->first, path, c->text);
    /* region_pos follows the sorted regions. */
    for (size_t k = 0; k < set->n_regions; k++)
        cr_expect_gt(set->region_pos[k].line, 0, "[%s] region %s has no position", c->text,
                     set->regions[k]);
    spec_set_free(set);
    spec_diags_clear(&d);
    spec_diags_clear(&w);
}

/* Writes len bytes of data as m.yaml and loads it, expecting -EINVAL within a second; d gets
 * the diagnostics (the caller clears them). Returns the file's path. For the tests below, whose
 * inputs used to take seconds. */
static const char *load_rejected_fast(const char *data, size_t len, const char *what, spec_diags *d)
{
    const char *path = put("m.yaml", data, len);
    spec_set *set;
    uint64_t t0 = test_clock_ms();
    cr_assert_eq(load1(path, &set, d), -EINVAL);
    double took = (double)(test_clock_ms() - t0);
    cr_expect_lt(took, 1000.0, "%s took %.0f ms", what, took);
    return path;
}

/* Duplicate-key and alias checks were quadratic (40,000 keys took seconds, blocking the daemon's
 * loop); they must be linear or n log n, and still name both positions. */
Test(spec_hostile, forty_thousand_keys_fast, .init = setup, .fini = teardown)
{
    size_t n = 40000, cap = n * 32 + 1024, o = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    o += (size_t)snprintf(buf + o, cap - o, HDR IMG "    tags:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "      k%zu: v\n", i);
    o += (size_t)snprintf(buf + o, cap - o, "      k7: again\n");
    spec_diags d;
    const char *path = load_rejected_fast(buf, o, "40,000 keys", &d);
    free(buf);
    cr_assert_eq(d.n, 2, "%zu diagnostics", d.n);
    test_diag_expect(&d.v[0],
                     "7:7: too many tags: 40001 (at most 19, since imgrecon adds imgrecon/owner)",
                     NULL, "40,000 keys");
    char want[512];
    snprintf(want, sizeof(want), "%zu:7: duplicate key 'k7' (first at %s:14:7)", n + 7, path);
    test_diag_expect(&d.v[1], want, NULL, "40,000 keys");
    spec_diags_clear(&d);
}

Test(spec_hostile, forty_thousand_anchors_fast, .init = setup, .fini = teardown)
{
    size_t n = 40000, cap = n * 48 + 1024, o = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    o += (size_t)snprintf(buf + o, cap - o, "region: cn-hangzhou\nx:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "  k%zu: &a%zu v%zu\n", i, i, i);
    o += (size_t)snprintf(buf + o, cap - o, "y:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "  - *a%zu\n", n - 1 - i);
    o += (size_t)snprintf(buf + o, cap - o, "  - *missing\n");
    spec_diags d;
    (void)load_rejected_fast(buf, o, "40,000 anchors and aliases", &d);
    free(buf);
    /* The loader stops at the alias without an anchor, after resolving the 40,000 before it. */
    cr_assert_eq(d.n, 1, "%zu diagnostics", d.n);
    char want[512];
    snprintf(want, sizeof(want), "%zu:5: alias '*missing' has no anchor", 2 * n + 4);
    test_diag_expect(&d.v[0], want, NULL, "40,000 anchors and aliases");
    spec_diags_clear(&d);
}

/* Aliases resolve to the right anchor among many (hash lookups, latest definition wins). */
Test(spec_hostile, many_anchors_resolve, .init = setup, .fini = teardown)
{
    size_t n = 5000, cap = n * 128 + 1024, o = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    o += (size_t)snprintf(buf + o, cap - o, "region: cn-hangzhou\ncustom_images:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o,
                              "  - {name: img%zu, instance_id: &i%zu i%zu, system_snapshot_id: "
                              "s-1}\n",
                              i, i % 7, i);
    o += (size_t)snprintf(buf + o, cap - o,
                          "  - {name: last, instance_id: *i3, system_snapshot_id: s-1}\n");
    const char *path = put("m.yaml", buf, o);
    free(buf);
    spec_set *set;
    spec_diags d;
    cr_assert_eq(load1(path, &set, &d), 0, "%s", d.n ? d.v[0].msg : "");
    const spec_image *img = spec_set_find(set, "cn-hangzhou", "last");
    cr_assert_not_null(img);
    /* &i3 was last defined on image n - 1 - ((n - 1 - 3) % 7). */
    char want[32];
    snprintf(want, sizeof(want), "i%zu", n - 1 - ((n - 1 - 3) % 7));
    cr_expect_str_eq(img->instance_id, want);
    spec_set_free(set);
    spec_diags_clear(&d);
}

Test(spec_hostile, tabs_and_stray_bytes, .init = setup, .fini = teardown)
{
    expect_rejected("tab before key", "region: cn-hangzhou\n\tcustom_images: []\n", 37, "tab");
    expect_rejected("unterminated quote", "region: \"cn-hangzhou\n", 21, "syntax error");
    expect_rejected("directive garbage", "%YAML 9.9\n---\nregion: x\n", 24, NULL);
    expect_rejected("many documents of garbage", "---\n- 1\n---\n- 2\n---\n[\n", 22, NULL);
}

/* Every example manifest in the repository is valid (the same check as the CLI test, without
 * the binary), and every file in examples/invalid fails with the message its header names. */
Test(spec, examples)
{
    const char *paths[] = {IMGRECON_SOURCE_DIR "/examples/manifests"};
    spec_set *set;
    spec_diags d;
    spec_diags_init(&d);
    cr_assert_eq(spec_load(paths, 1, &set, &d), 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(set->n_images, 4);
    cr_assert_eq(set->n_ecs, 1);
    cr_assert_eq(set->n_regions, 2);
    cr_assert_eq(set->n_files, 3);
    const spec_image *v2 = spec_set_find(set, "cn-hangzhou", "web-base-v2");
    cr_assert_not_null(v2);
    cr_assert(v2->protect);
    spec_set_free(set);
    spec_diags_clear(&d);
}

/* ---- spec_check_entry: the loader's rules on an in-memory entry (imgrecon import) -------------
 */

typedef struct entry_case {
    const char *field; /* expected field, NULL: valid */
    const char *name, *instance, *sys, *data, *rg, *desc;
    size_t n_tags; /* tags k0=v .. k<n-1>=v, or one tag key/value below when key is set */
    const char *key, *value;
    bool protect;
    const char *account;
} entry_case;

#define INST "ace0706b2ac4454d984295a94213abcd"

static const entry_case entry_cases[] = {
    {NULL, "web-1", INST, "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {NULL, "web-1", INST, "s-sys1", "s-data1", "rg-abc", "any: text # \"x\"\n", 19, NULL, NULL,
     false, "1234567890123456"},
    {"name", "bad name", INST, "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"name", "-web", INST, "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"instance_id", "web-1", NULL, "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"instance_id", "web-1", "i/x", "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"system_snapshot_id", "web-1", INST, NULL, NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"system_snapshot_id", "web-1", INST, "x-1", NULL, NULL, NULL, 0, NULL, NULL, false, NULL},
    {"data_snapshot_id", "web-1", INST, "s-sys1", "d-1", NULL, NULL, 0, NULL, NULL, false, NULL},
    {"resource_group_id", "web-1", INST, "s-sys1", NULL, "g-1", NULL, 0, NULL, NULL, false, NULL},
    {"tags", "web-1", INST, "s-sys1", NULL, NULL, NULL, 20, NULL, NULL, false, NULL},
    {"tags", "web-1", INST, "s-sys1", NULL, NULL, NULL, 19, NULL, NULL, true, NULL},
    {"tags", "web-1", INST, "s-sys1", NULL, NULL, NULL, 0, "imgrecon/x", "v", false, NULL},
    {"tags", "web-1", INST, "s-sys1", NULL, NULL, NULL, 0, "acs:x", "v", false, NULL},
    {"tags", "web-1", INST, "s-sys1", NULL, NULL, NULL, 0, "k", "http://x", false, NULL},
    {"share_to_accounts", "web-1", INST, "s-sys1", NULL, NULL, NULL, 0, NULL, NULL, false, "12a"},
};

/* Writes the entry as a manifest (double-quoted strings) so the loader can judge it too. */
static void entry_yaml(const entry_case *c, const spec_image *e, char *buf, size_t size)
{
    FILE *m = fmemopen(buf, size, "w");
    cr_assert_not_null(m);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n  - name: \"%s\"\n", c->name);
    const char *keys[] = {"instance_id", "system_snapshot_id", "data_snapshot_id",
                          "resource_group_id"};
    const char *vals[] = {c->instance, c->sys, c->data, c->rg};
    for (size_t i = 0; i < 4; i++)
        if (vals[i] != NULL)
            fprintf(m, "    %s: \"%s\"\n", keys[i], vals[i]);
    if (c->desc != NULL)
        fprintf(m, "    description: \"any: text # \\\"x\\\"\\n\"\n");
    if (e->n_tags > 0) {
        fprintf(m, "    tags:\n");
        for (size_t i = 0; i < e->n_tags; i++)
            fprintf(m, "      \"%s\": \"%s\"\n", e->tags[i].key, e->tags[i].value);
    }
    if (c->protect)
        fprintf(m, "    protect: true\n");
    if (c->account != NULL)
        fprintf(m, "    share_to_accounts: [\"%s\"]\n", c->account);
    cr_assert_eq(fclose(m), 0);
}

Test(spec, check_entry_agrees_with_the_loader, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(entry_cases) / sizeof(entry_cases[0]); i++) {
        const entry_case *c = &entry_cases[i];
        char keys[20][8];
        spec_tag tags[20];
        char *accounts[1] = {(char *)c->account};
        spec_image e = {.name = (char *)c->name,
                        .instance_id = (char *)c->instance,
                        .system_snapshot_id = (char *)c->sys,
                        .data_snapshot_id = (char *)c->data,
                        .resource_group_id = (char *)c->rg,
                        .description = (char *)c->desc,
                        .tags = tags,
                        .protect = c->protect,
                        .share_to_accounts = c->account ? accounts : NULL,
                        .n_share_to_accounts = c->account ? 1 : 0};
        for (size_t k = 0; k < c->n_tags; k++) {
            snprintf(keys[k], sizeof(keys[k]), "k%zu", k);
            tags[k] = (spec_tag){keys[k], "v"};
        }
        e.n_tags = c->n_tags;
        if (c->key != NULL)
            tags[e.n_tags++] = (spec_tag){(char *)c->key, (char *)c->value};
        const char *field = NULL;
        const char *why = spec_check_entry(&e, &field);
        if (c->field == NULL)
            cr_expect_null(why, "case %zu: %s %s", i, field ? field : "", why ? why : "");
        else
            cr_expect(why != NULL && strcmp(field, c->field) == 0, "case %zu: expected %s, got %s",
                      i, c->field, why ? field : "valid");
        char text[4096];
        entry_yaml(c, &e, text, sizeof(text));
        spec_set *set;
        spec_diags d;
        int rc = load1(puts_("entry.yaml", text), &set, &d);
        cr_expect_eq(rc == 0, why == NULL, "case %zu: the loader %s it\n%s", i,
                     rc == 0 ? "accepts" : "refuses", text);
        spec_set_free(set);
        spec_diags_clear(&d);
    }
}

/* ---- Stamps (spec_stamp_take) ---------------------------------------------------------------- */

/* What happens to a directory of manifests between two stamps. */
typedef struct stamp_case {
    const char *what;
    const char *sh; /* run in the directory, after the first stamp */
    bool unchanged;
} stamp_case;

static const stamp_case stamp_cases[] = {
    {"nothing", "true", true},
    {"a file that is no manifest is added", "echo x > notes2.txt", true},
    {"a hidden manifest is added", "echo 'region: x' > .hidden.yaml", true},
    {"a manifest is read and listed", "cat a.yaml >/dev/null; ls -l >/dev/null", true},
    {"a manifest grows", "echo '#' >> a.yaml", false},
    {"a manifest is rewritten at the same size",
     "sed -i.bak 's/cn-hangzhou/cn-shanghai/' a.yaml; "
     "rm a.yaml.bak",
     false},
    {"a manifest's mode changes", "chmod 0640 a.yaml", false},
    {"a manifest is replaced by a copy (rename)", "cp -p a.yaml t && mv t a.yaml", false},
    {"a manifest is added", "cp a.yaml c.yml", false},
    {"a manifest in a subdirectory is removed", "rm sub/b.yaml", false},
    {"a manifest becomes a link to another file",
     "cp -p a.yaml ../other.yaml && "
     "ln -sf ../other.yaml a.yaml",
     false},
};

Test(spec, stamps_tell_changed_files, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(stamp_cases) / sizeof(stamp_cases[0]); i++) {
        const stamp_case *c = &stamp_cases[i];
        char sub[64], root[256], cmd[1024];
        snprintf(sub, sizeof(sub), "r%zu", i);
        snprintf(root, sizeof(root), "%s/%s", dir, sub);
        char name[96];
        snprintf(name, sizeof(name), "%s/a.yaml", sub);
        (void)puts_(name, "region: cn-hangzhou\n");
        snprintf(name, sizeof(name), "%s/sub/b.yaml", sub);
        (void)puts_(name, "region: cn-beijing\n");
        snprintf(name, sizeof(name), "%s/notes.txt", sub);
        (void)puts_(name, "not a manifest\n");
        /* Modification times an hour back, so that any write moves them whatever the clock's
         * tick (a change time cannot be set back; racy_ms 0 trusts it here). */
        snprintf(cmd, sizeof(cmd), "cd %s && touch -m -d '-1 hour' a.yaml sub/b.yaml", root);
        cr_assert_eq(system(cmd), 0);
        const char *paths[] = {root};
        spec_stamp *before = NULL, *after = NULL;
        cr_assert_eq(spec_stamp_take(paths, 1, 0, &before), 0, "%s", c->what);
        snprintf(cmd, sizeof(cmd), "cd %s && { %s; }", root, c->sh);
        cr_assert_eq(system(cmd), 0, "%s", c->what);
        cr_assert_eq(spec_stamp_take(paths, 1, 0, &after), 0, "%s", c->what);
        cr_expect_eq(spec_stamp_unchanged(before, after), c->unchanged, "%s", c->what);
        spec_stamp_free(before);
        spec_stamp_free(after);
    }
}

Test(spec, stamps_of_fresh_files_are_not_trusted, .init = setup, .fini = teardown)
{
    (void)puts_("a.yaml", "region: cn-hangzhou\n");
    const char *paths[] = {dir};
    spec_stamp *a = NULL, *b = NULL;
    /* Written just now: within a 60 s racy window, so equal stamps still say "changed". */
    cr_assert_eq(spec_stamp_take(paths, 1, 60000, &a), 0);
    cr_assert_eq(spec_stamp_take(paths, 1, 60000, &b), 0);
    cr_expect_not(spec_stamp_unchanged(a, b));
    spec_stamp_free(a);
    cr_assert_eq(spec_stamp_take(paths, 1, 0, &a), 0);
    cr_expect(spec_stamp_unchanged(a, b), "only the old stamp needs to be settled");
    cr_expect_not(spec_stamp_unchanged(NULL, b));
    cr_expect_not(spec_stamp_unchanged(a, NULL));
    spec_stamp_free(a);
    spec_stamp_free(b);
    spec_stamp_free(NULL);
}

/* Whatever spec_load would report stops a stamp: nothing to compare, the caller loads. */
Test(spec, stamps_refuse_what_the_loader_reports, .init = setup, .fini = teardown)
{
    char empty[128], missing[128], dangling[128];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    snprintf(dangling, sizeof(dangling), "%s/d", dir);
    cr_assert_eq(mkdir(empty, 0700), 0);
    cr_assert_eq(mkdir(dangling, 0700), 0);
    char link_path[160];
    snprintf(link_path, sizeof(link_path), "%s/x.yaml", dangling);
    cr_assert_eq(symlink("/nonexistent/x.yaml", link_path), 0);
    const struct {
        const char *path;
        int rc;
    } rows[] = {{empty, -EINVAL}, {missing, -ENOENT}, {dangling, -ENOENT}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        spec_stamp *s = (spec_stamp *)&rows; /* must stay untouched */
        cr_expect_eq(spec_stamp_take(&rows[i].path, 1, 0, &s), rows[i].rc, "%s", rows[i].path);
        cr_expect_eq(s, (spec_stamp *)&rows, "%s: ret_stamp untouched", rows[i].path);
    }
    spec_stamp *s = NULL;
    cr_expect_eq(spec_stamp_take(NULL, 0, 0, &s), -EINVAL, "no paths");
    cr_expect_null(s);
}

/* ---- Threads -----------------------------------------------------------------------------------
 */

/* The set as text: every image, ECS entry, region and file with its position, in order. Two
 * loads that agree here agree on everything the plan reads. Caller frees. */
static char *dump_set(const spec_set *set)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    for (size_t i = 0; i < set->n_images; i++) {
        const spec_image *m = &set->images[i];
        fprintf(f, "image %s/%s %s:%u:%u %s %s %s %zu tags %zu accounts\n", m->region, m->name,
                m->pos.file, m->pos.line, m->pos.col, m->instance_id, m->system_snapshot_id,
                m->description ? m->description : "-", m->n_tags, m->n_share_to_accounts);
    }
    for (size_t i = 0; i < set->n_ecs; i++)
        fprintf(f, "ecs %s/%s %s:%u:%u\n", set->ecs[i].region, set->ecs[i].image_id,
                set->ecs[i].pos.file, set->ecs[i].pos.line, set->ecs[i].pos.col);
    for (size_t i = 0; i < set->n_regions; i++)
        fprintf(f, "region %s %s:%u:%u\n", set->regions[i], set->region_pos[i].file,
                set->region_pos[i].line, set->region_pos[i].col);
    for (size_t i = 0; i < set->n_files; i++)
        fprintf(f, "file %s\n", set->files[i]);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* The diagnostics as text, in order. Caller frees. */
static char *dump_diags(const spec_diags *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    spec_diags_print(d, f);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* Loads dir on `threads` threads: the result code, then the set or the diagnostics as text. */
static char *load_dump(unsigned threads, int *ret_rc)
{
    const char *paths[] = {dir};
    spec_set *set = NULL;
    spec_diags d;
    spec_diags_init(&d);
    *ret_rc = spec_load_threads(paths, 1, threads, &set, &d);
    char *text = *ret_rc == 0 ? dump_set(set) : dump_diags(&d);
    spec_set_free(set);
    spec_diags_clear(&d);
    return text;
}

/* Loads dir on 1, 2, 3, 4 and 8 threads and requires the same outcome, byte for byte; returns the
 * one-thread text (caller frees). */
static char *same_on_any_threads(int want_rc)
{
    int rc1 = 0;
    char *one = load_dump(1, &rc1);
    cr_assert_eq(rc1, want_rc, "%s", one);
    const unsigned threads[] = {2, 3, 4, 8, 0};
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        int rc = 0;
        char *many = load_dump(threads[i], &rc);
        cr_expect_eq(rc, rc1, "%u threads", threads[i]);
        cr_expect_str_eq(many, one, "%u threads", threads[i]);
        free(many);
    }
    return one;
}

/* One file of a region: n images named <prefix>-<k>, each with a description, a tag and an
 * account, so that every kind of string is allocated by the thread that reads the file. */
static void put_region(const char *name, const char *region, const char *prefix, int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "region: %s\ncustom_images:\n", region);
    for (int k = 0; k < n; k++)
        fprintf(f,
                "  - name: %s-%03d\n    instance_id: i%d\n    system_snapshot_id: s-%d\n"
                "    description: image %d of %s\n    tags: {team: t%d}\n"
                "    share_to_accounts: ['1234567890123456']\n",
                prefix, k, k, k, k, region, k % 7);
    fprintf(f, "ecs_images:\n  - image_id: m-%s\n    ensure: absent\n", prefix);
    fclose(f);
    put(name, text, len);
    free(text);
}

/* Reading the files on several threads changes nothing: the same set (entries in the same order
 * with the same positions, regions with their first declaration, files) for good manifests
 * spread over many files and regions, one region declared in several files. */
Test(spec, threads_change_nothing_in_the_set, .init = setup, .fini = teardown)
{
    const char *regions[] = {"cn-hangzhou", "cn-beijing", "ap-southeast-1", "us-west-1"};
    char name[64], prefix[16];
    for (int i = 0; i < 24; i++) {
        snprintf(name, sizeof(name), "m%02d/inventory.yaml", i);
        snprintf(prefix, sizeof(prefix), "app%02d", i);
        put_region(name, regions[i % 4], prefix, 5 + i % 9);
    }
    puts_("m99/empty-docs.yaml", "---\n---\nregion: cn-shanghai\n");
    char *one = same_on_any_threads(0);
    cr_assert_not_null(strstr(one, "region cn-hangzhou"), "%s", one);
    cr_assert_not_null(strstr(one, "m00/inventory.yaml:3:5"), "positions point into files");
    free(one);
}

/* The same for a run full of errors: every diagnostic, in the same order, whichever thread read
 * its file; a duplicate across files names the first declaration in load order. */
Test(spec, threads_change_nothing_in_the_diagnostics, .init = setup, .fini = teardown)
{
    char name[64], prefix[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "good-%02d.yaml", i);
        snprintf(prefix, sizeof(prefix), "g%02d", i);
        put_region(name, "cn-hangzhou", prefix, 4);
    }
    put_region("good-50.yaml", "cn-hangzhou", "g03", 2); /* duplicates of good-03's first two */
    puts_("bad-region.yaml", "region: bad_region\n");
    puts_("bad-entry.yaml", HDR "  - name: x\n  - 42\n");
    puts_("bad-syntax.yaml", "region: [\n");
    puts_("bad-key.yaml", HDR IMG "    colour: blue\n");
    put("bad-empty.yaml", "", 0);
    char *one = same_on_any_threads(-EINVAL);
    cr_assert_not_null(strstr(one, "duplicate image 'g03-000'"), "%s", one);
    cr_assert_not_null(strstr(one, "no manifest in this file"), "%s", one);
    free(one);
}

/* Past SPEC_LOAD_PARALLEL_BYTES spec_load reads on every CPU it may use: still the same set. */
Test(spec, a_large_load_reads_in_parallel_alike, .init = setup, .fini = teardown)
{
    char name[64], prefix[16];
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "inventory-%02d.yaml", i);
        snprintf(prefix, sizeof(prefix), "big%02d", i);
        put_region(name, i % 2 ? "cn-beijing" : "cn-hangzhou", prefix, 400);
    }
    struct stat st;
    snprintf(name, sizeof(name), "%s/inventory-00.yaml", dir);
    cr_assert_eq(stat(name, &st), 0);
    cr_assert_geq((size_t)st.st_size * 16, (size_t)SPEC_LOAD_PARALLEL_BYTES, "the files are large");
    free(same_on_any_threads(0));
}
