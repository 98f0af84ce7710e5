/* Limits and id shapes used by the manifest loader (spec/ internal; spec_rules.c). The API's
 * name and tag rules and the region shape are public in spec_rules.h. */
#ifndef SPEC_RULES_INT_H
#define SPEC_RULES_INT_H

#include <stdbool.h>

/* Limits imgrecon adds on top of the API's own. */
#define SPEC_MAX_DESCRIPTION 256 /* characters; the console's limit for image descriptions */
#define SPEC_MAX_USER_TAGS 19    /* the API allows 20 and imgrecon adds imgrecon/owner */
#define SPEC_MAX_SHARE_ACCOUNTS                                                                    \
    50 /* accounts per image (the emulator: QuotaExceed.ShareAccount)                              \
        */
#define SPEC_RESERVED_TAG_PREFIX "imgrecon/"

typedef enum spec_id_kind {
    SPEC_ID_INSTANCE,
    SPEC_ID_SNAPSHOT,
    SPEC_ID_RESOURCE_GROUP,
    SPEC_ID_ECS_IMAGE,
} spec_id_kind;

/* NULL when s has the shape of that kind of id, else a static "expected ..." message. */
const char *spec_check_id(spec_id_kind kind, const char *s);

#endif
