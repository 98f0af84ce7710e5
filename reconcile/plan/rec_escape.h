/* Terminal-safe text (rec_escape.c). Text from the cloud (image names, descriptions, tag keys
 * and values, error codes and messages, request ids) is printed by every text renderer: plan,
 * apply progress, the daemon's text log, `imgrecon status` and `imgrecon api`. A hostile or
 * broken endpoint must not be able to move the cursor, retitle the window, clear the screen or
 * forge log lines, so those renderers pass such text through these functions. JSON output is
 * escaped by its own writers (jansson, rec_log.c) and uses rec_escape_json_c1 for C1 controls.
 *
 * Rules: bytes below 0x20 (newline and tab included), DEL and every byte that is not part of a
 * valid UTF-8 sequence become \xNN; the C1 controls U+0080..U+009F and the bidirectional
 * formatting characters (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069) become \uNNNN; a
 * backslash becomes \\ so an escape in the output is never ambiguous. Printable UTF-8 is kept. */
#ifndef REC_ESCAPE_H
#define REC_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* True when s (NULL allowed) prints unchanged. */
bool rec_escape_clean(const char *s);
/* Writes the escaped s (NULL: empty) into buf like snprintf: at most size bytes including the
 * terminator, never cutting an escape or a UTF-8 character. Returns the length the whole
 * escaped text needs (without the terminator). */
size_t rec_escape(const char *s, char *buf, size_t size);
/* The escaped s (NULL: empty); caller frees. NULL on allocation failure. */
char *rec_escape_dup(const char *s);
/* Writes the escaped s (NULL: nothing) to out. Returns 0 or -EIO. */
int rec_fputs_escaped(const char *s, FILE *out);
/* Rewrites a JSON document in place or into a new string: the UTF-8 encodings of U+0080..U+009F
 * (legal unescaped in JSON, but C1 controls to a terminal) become \u0080..\u009f. Such bytes only
 * occur inside JSON strings, so the document keeps its meaning. Returns json itself when nothing
 * changes, else a new string and frees json; NULL (json freed) on allocation failure. For
 * documents printed to a terminal: `plan --json`, `imgrecon api`, `status --json`. */
char *rec_escape_json_c1(char *json);
/* A copy of s (NULL: empty) in which every byte that is not part of a valid UTF-8 sequence
 * becomes U+FFFD; everything else is kept as it is. JSON strings must be valid UTF-8 (jansson
 * refuses anything else), and text from the cloud may hold a character cut in half by a
 * bounded buffer: the writers of status.json and of webhook payloads pass text through this
 * rather than fail. NULL on allocation failure. */
char *rec_utf8_repair_dup(const char *s);
/* s as a JSON string (NULL: JSON null), through rec_utf8_repair_dup when jansson refuses it as
 * it is, so that one odd message never keeps status.json or a notification from being built.
 * NULL only when out of memory. Called by rec_status.c and rec_webhook.c. */
json_t *rec_json_text(const char *s);

#endif
