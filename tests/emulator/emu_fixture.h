/* Fixture files: YAML in the shape README.md "Fixture format" gives (accounts, regions with
 * servers, custom_images and ecs_images) -> an emu_world. Read with libyaml directly; every problem
 * is reported as file:line:col: message, all of them in one pass; unknown keys are errors. Used by
 * main.c (the
 * --fixture file and the built-in demo), by /_emulator/reset and by the unit tests. */
#ifndef EMU_FIXTURE_H
#define EMU_FIXTURE_H

#include <stddef.h>

#include "emu_world.h"
#include "emu_diag.h"

/* Parses buf[0..len) (named file in the diagnostics). Returns 0 and a new world, -EINVAL with
 * every problem in diags, or -ENOMEM. */
int emu_fixture_parse(const char *file, const char *buf, size_t len, emu_world **ret,
                      emu_diags *diags);
/* Reads a whole file; returns 0 and a malloc'd NUL-terminated buffer, or a negative errno. */
int emu_fixture_read_file(const char *path, char **ret_buf, size_t *ret_len);

/* The built-in demo fixture's YAML (emu_demo.c). */
extern const char emu_demo_fixture[];

#endif
