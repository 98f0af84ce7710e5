/* Saved plans (rec_planfile.c): plan --out FILE writes one, apply FILE reads it back and
 * applies exactly its steps when the fingerprints still match. */
#ifndef REC_PLANFILE_H
#define REC_PLANFILE_H

#include "rec_plan.h"

/* Writes the JSON document plus the fingerprint and each step's token inputs to path (0600,
 * via a temp file + rename). Returns 0 or a negative errno. */
int rec_plan_save(const rec_plan *plan, const char *path);
/* Reads a saved plan. -EINVAL with *ret_error (malloc'd, may be NULL) on a malformed or
 * unsupported file; other negative errno on I/O errors. The loaded plan's estimate is zeroed:
 * call rec_plan_estimate. */
int rec_plan_load(const char *path, rec_plan **ret, char **ret_error);

#endif
