/* The API's own value rules (seed 004 CreateCustomImage, API-NOTES.md) and the region id shape
 * (spec_rules.c). The manifest and config loaders check with these; the saved-plan reader checks
 * recorded region ids; tests/unit/test_golden_rules.c holds them and the emulator's independent
 * implementation to the same golden cases. */
#ifndef SPEC_RULES_H
#define SPEC_RULES_H

#include <stdbool.h>

/* Each returns NULL when valid, else a static message such as "must be 2-128 characters". */
const char *spec_check_image_name(const char *name);
const char *spec_check_tag_key(const char *key);
const char *spec_check_tag_value(const char *value);

/* "cn-hangzhou", "ap-southeast-1": lowercase words and digits joined by single '-'. */
bool spec_region_valid(const char *s);

#endif
