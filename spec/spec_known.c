/* The built-in name lists behind spec_known.h. Regions: the Simple Application Server endpoint
 * list (swas.<region>.aliyuncs.com) as published by the vendor in 2025-2026. Actions: every
 * operation named in the project's API notes (SWAS 2020-06-01, ECS 2014-05-26, STS 2015-04-01).
 * Called by the config loader (rate_limits keys, --rate-limit) and by `validate` (regions). */
#include <stdio.h>
#include <string.h>

#include "spec_diag_int.h"
#include "spec_known.h"
#include "spec_yaml.h"

static const char *const regions[] = {
    "cn-qingdao",     "cn-beijing",     "cn-zhangjiakou", "cn-huhehaote",   "cn-wulanchabu",
    "cn-hangzhou",    "cn-shanghai",    "cn-nanjing",     "cn-fuzhou",      "cn-shenzhen",
    "cn-heyuan",      "cn-guangzhou",   "cn-chengdu",     "cn-chongqing",   "cn-wuhan-lr",
    "cn-hongkong",    "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ap-south-1",
    "us-east-1",      "us-west-1",      "eu-west-1",      "eu-central-1",   "me-east-1",
    "me-central-1",
};

static const char *const actions[] = {
    /* SWAS */
    "ListCustomImages",
    "CreateCustomImage",
    "DeleteCustomImage",
    "DeleteCustomImages",
    "ModifyImageShareStatus",
    "TagResources",
    "UntagResources",
    "ListTagResources",
    "ListRegions",
    "AddCustomImageShareAccount",
    "RemoveCustomImageShareAccount",
    "ListCustomImageShareAccounts",
    /* ECS */
    "DescribeImages",
    "DeleteImage",
    "DescribeRegions",
    /* STS */
    "AssumeRole",
    "AssumeRoleWithOIDC",
    "GetCallerIdentity",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

bool spec_region_known(const char *region)
{
    return in(regions, N_OF(regions), region);
}

const char *spec_region_suggest(const char *region)
{
    return spec_suggest(region, regions, N_OF(regions), 3);
}

bool spec_action_known(const char *action)
{
    return in(actions, N_OF(actions), action);
}

/* True when every character of word appears in s, in order (CreateImag in CreateCustomImage). */
static bool subsequence(const char *word, const char *s)
{
    for (; *word != '\0'; word++) {
        s = strchr(s, *word);
        if (s == NULL)
            return false;
        s++;
    }
    return true;
}

const char *spec_action_suggest(const char *action)
{
    const char *best = spec_suggest(action, actions, N_OF(actions), 3), *abbr = NULL;
    if (best != NULL || strlen(action) < 4)
        return best;
    /* An abbreviation is the other common slip; prefer the shortest action it fits. */
    for (size_t i = 0; i < N_OF(actions); i++)
        if (subsequence(action, actions[i]) && (abbr == NULL || strlen(actions[i]) < strlen(abbr)))
            abbr = actions[i];
    return abbr;
}

void spec_region_warning(spec_diags *w, spec_pos p, const char *region)
{
    const char *s = spec_region_suggest(region);
    if (s != NULL)
        spec_diags_add_clean(w, p,
                             "region '%.64s' is not a known Simple Application Server region; "
                             "did you mean '%s'?",
                             region, s);
    else
        spec_diags_add_clean(w, p,
                             "region '%.64s' is not a known Simple Application Server region "
                             "(the list is in spec/README.md)",
                             region);
}
