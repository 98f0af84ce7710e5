/* The API's value rules as the vendor's pages state them (CreateCustomImage, TagResources),
 * written here and nowhere else for the emulator: it must not share the product's spec/ rules,
 * or a wrong rule would be enforced on both sides and no test could catch it. The shared golden
 * table tests/data/golden_rules.json holds the documented examples both sides must agree on.
 * Each check returns NULL when the value is acceptable, else a static reason. */
#ifndef EMU_RULES_H
#define EMU_RULES_H

#include <stddef.h>

/* ImageName: 2 to 128 characters of letters, digits, ':', '_' and '-', starting with a letter
 * or a digit. */
const char *emu_check_image_name(const char *name);
/* Tag key: not empty, at most 64 characters, not starting with "acs:" or "aliyun", not
 * containing "http://" or "https://". */
const char *emu_check_tag_key(const char *key);
/* Tag value: may be empty, at most 64 characters, not containing "http://" or "https://". */
const char *emu_check_tag_value(const char *value);

/* Characters (UTF-8 code points) in s[0..len): bytes that do not continue a sequence. */
size_t emu_utf8_chars(const char *s, size_t len);

#endif
