/* Rendering a plan (rec_render.c): Terraform-like text for people and the versioned JSON
 * document of PLAN-JSON.md for programs. Called by cmd/ plan and apply. */
#ifndef REC_RENDER_H
#define REC_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rec_plan.h"

enum {
    REC_RENDER_COLOR = 1u << 0, /* ANSI colours (the caller checks the tty and NO_COLOR) */
};
/* Terraform-like text (see reconcile/plan/PLAN-JSON.md for an example). Returns 0 or -EIO. */
int rec_render_text(const rec_plan *plan, FILE *out, unsigned flags);
/* The versioned JSON document described in reconcile/plan/PLAN-JSON.md, as a malloc'd string
 * (indented when pretty); NULL on allocation failure. */
char *rec_render_json(const rec_plan *plan, bool pretty);
/* "1m 12s", "45s", "2h 3m", "0s"; writes at most size bytes. */
void rec_format_duration(uint64_t ms, char *buf, size_t size);

#endif
