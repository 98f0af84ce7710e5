/* The API's own value rules (the vendor's CreateCustomImage page; provider/README.md "Operations")
 * and the region id shape (spec_rules.c). The manifest and config loaders check with these; the
 * saved-plan reader checks recorded region ids; tests/unit/test_golden_rules.c holds them and the
 * emulator's independent implementation to the same golden cases. */
#ifndef SPEC_RULES_H
#define SPEC_RULES_H

#include <stdbool.h>

/* Each returns NULL when valid, else a static message such as "must be 2-128 characters". */
const char *spec_check_image_name(const char *name);
const char *spec_check_tag_key(const char *key);
const char *spec_check_tag_value(const char *value);

/* "cn-hangzhou", "ap-southeast-1": lowercase words and digits joined by single '-'. */
bool spec_region_valid(const char *s);

struct spec_image;
/* Whether an entry with these values would load: the manifest rules of spec/README.md that need
 * no file position (name, id shapes, description length, tag count, keys and values, the
 * reserved imgrecon/ prefix, account ids). `imgrecon import` asks it before it writes an entry.
 * Returns NULL when the entry is valid, else a static message, and *ret_field names the key. */
const char *spec_check_entry(const struct spec_image *img, const char **ret_field);

#endif
