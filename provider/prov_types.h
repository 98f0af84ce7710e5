/* Plain data the provider hands to its callers: observed images and classified errors. */
#ifndef PROV_TYPES_H
#define PROV_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

typedef struct prov_tag {
    char *key;
    char *value;
} prov_tag;

/* SWAS custom image status codes as the API sends them ("0".."4"). */
enum prov_image_status {
    PROV_IMG_UNKNOWN = -1,
    PROV_IMG_COPYING = 0,
    PROV_IMG_AVAILABLE = 1,
    PROV_IMG_UNAVAILABLE = 2,
    PROV_IMG_FAILED = 3,
    PROV_IMG_CREATING = 4,
};

/* One item of ListCustomImages; absent strings are NULL. */
typedef struct prov_image {
    char *image_id;
    char *name;
    char *description;
    char *instance_id;
    char *system_snapshot_id;
    char *data_snapshot_id;
    char *resource_group_id;
    char *region_id;
    char *creation_time;
    int status; /* enum prov_image_status */
    bool in_share;
    bool in_share_user; /* InShareUser: shared to at least one other account */
    prov_tag *tags;
    size_t n_tags;
    /* Accounts the image is shared to (ListCustomImageShareAccounts); filled by the observer
     * only where share_accounts_known is true, else empty and unknown. */
    char **share_accounts;
    size_t n_share_accounts;
    bool share_accounts_known;
} prov_image;

/* One row of ListTagResources. */
typedef struct prov_tag_resource {
    char *resource_id;
    char *resource_type;
    char *key;
    char *value;
} prov_tag_resource;

typedef struct prov_tag_resource_list {
    prov_tag_resource *v;
    size_t n;
} prov_tag_resource_list;

/* A list of strings (account ids of ListCustomImageShareAccounts). */
typedef struct prov_str_list {
    char **v;
    size_t n;
} prov_str_list;

void prov_tag_resource_list_free(prov_tag_resource_list *list); /* items and array, not list */
void prov_str_list_free(prov_str_list *list);                   /* items and array, not list */
/* Appends a copy of s; returns 0 or -ENOMEM. */
int prov_str_list_add(prov_str_list *list, const char *s);

typedef struct prov_image_list {
    prov_image *v;
    size_t n;
} prov_image_list;

/* One item of ECS DescribeImages. */
typedef struct prov_ecs_image {
    char *image_id;
    char *name;
    char *status; /* Available, Creating, ... */
    char *owner_alias;
    char *usage;
    bool is_self_shared;
} prov_ecs_image;

typedef struct prov_ecs_image_list {
    prov_ecs_image *v;
    size_t n;
} prov_ecs_image_list;

/* Free an image's fields (not img itself) and reset it; accept NULL. The one copy. */
void prov_image_clear(prov_image *img);
void prov_ecs_image_clear(prov_ecs_image *e);
void prov_image_list_clear(prov_image_list *list); /* frees the items and the array, not list */
void prov_ecs_image_list_clear(prov_ecs_image_list *list);
/* Deep copy; returns 0 or -ENOMEM. */
int prov_image_copy(prov_image *dst, const prov_image *src);
/* Looks up a tag value; NULL when absent. */
const char *prov_image_tag(const prov_image *img, const char *key);

/* Error classes (provider/README.md "Errors"). */
typedef enum prov_err_class {
    PROV_ERR_NONE = 0,
    PROV_ERR_THROTTLED, /* cool the action down a full window, retry the same call */
    PROV_ERR_TRANSIENT, /* jittered exponential backoff, bounded, same ClientToken */
    PROV_ERR_DONE,      /* counts as success (NotFound on delete, DryRunOperation) */
    PROV_ERR_ORDER,     /* fixable by ordering: CustomImageInShare */
    PROV_ERR_PERMANENT, /* fail the step with the API's message */
} prov_err_class;

/* What a failed call leaves for the user: the API's Code/Message/RequestId, or a local cause
 * (sys is a negative errno, e.g. -ETIMEDOUT, -ECONNRESET, -EPROTO for a malformed body). */
typedef struct prov_error {
    prov_err_class cls;
    long http_status; /* 0 when no HTTP answer */
    int sys;          /* 0 or negative errno */
    char *code;       /* NULL when the cause is local */
    char *message;
    char *request_id;
} prov_error;

const char *prov_err_class_name(prov_err_class cls); /* "throttled", "transient", ... */
/* Classifies by action, HTTP status, API Code (may be NULL) and local errno (0 when none). */
prov_err_class prov_err_classify(const char *action, long http_status, const char *code, int sys);
/* A copy of text (an API's error message) with the value of every parameter that carries a
 * secret or is derived from one (SecurityToken, Signature, AccessKeySecret, OIDCToken,
 * x-acs-security-token) replaced by "***", whether written raw (`Name=value`, `Name: value`,
 * `"Name":"value"`) or inside a string percent-encoded once or more, as in the string to sign
 * a SignatureDoesNotMatch answer echoes (`Name%3Dvalue%26`, `Name%253Dvalue%2526`). Called by
 * prov_error_set for every message it stores. Returns 0 and *ret (caller frees), -EINVAL or
 * -ENOMEM. */
int prov_redact_message(const char *text, char **ret);
/* Sets every field (strings copied; the message through prov_redact_message) and classifies with
 * prov_err_classify; returns 0 or -ENOMEM. err (and dst below) must be zero-initialised or hold an
 * earlier value, which is replaced. */
int prov_error_set(prov_error *err, long http_status, int sys, const char *code,
                   const char *message, const char *request_id, const char *action);
int prov_error_copy(prov_error *dst, const prov_error *src);
void prov_error_clear(prov_error *err);
/* "Code: Message (RequestId: …)" or the local cause ("message: strerror", or only the message
 * for -EPROTO, whose message already says what was wrong with the answer); returns a malloc'd
 * string or NULL. */
char *prov_error_describe(const prov_error *err);

#endif
