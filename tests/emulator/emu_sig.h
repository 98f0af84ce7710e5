/* Request signatures as the vendor's pages define them, computed with OpenSSL directly:
 * V1 (RPC, HMAC-SHA1 over "METHOD&%2F&encode(canonical query)", key secret + "&", Base64) and
 * V3 (ACS3-HMAC-SHA256: canonical request over the headers the request says it signed, hex
 * SHA-256 of it, hex HMAC-SHA256 with the secret). Written for the emulator independently of
 * provider/prov_sig.c, so the two check each other (tests/data/golden_rules.json holds the
 * vendor's worked examples). Used by emu_auth.c and the unit tests. */
#ifndef EMU_SIG_H
#define EMU_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "emu_kvs.h"

/* V1 signature of params (every parameter but Signature) for this HTTP method. Returns 0 with
 * the Base64 signature and, when ret_sts is not NULL, the string to sign (both caller frees),
 * or -ENOMEM. */
int emu_sig_v1(const char *method, const emu_kvs *params, const char *secret, char **ret_sig,
               char **ret_sts);

/* Splits "ACS3-HMAC-SHA256 Credential=ID,SignedHeaders=a;b,Signature=hex" into its three values
 * (caller frees each; any ret may be NULL). Returns 0, -EINVAL when malformed, -ENOMEM. */
int emu_sig_v3_parse_authorization(const char *authorization, char **ret_key_id,
                                   char **ret_signed_headers, char **ret_signature);

/* V3 signature: headers hold every request header (lowercase names), signed_headers the
 * ";"-list the request names. Returns 0 with the hex signature and, when not NULL, the hex
 * SHA-256 of the canonical request and the string to sign (all caller frees); -EINVAL when a
 * signed header is missing; -ENOMEM. */
int emu_sig_v3(const char *method, const char *path, const emu_kvs *query, const emu_kvs *headers,
               const char *signed_headers, const char *body, size_t body_len, const char *secret,
               char **ret_sig, char **ret_hashed_request, char **ret_sts);

/* Hex SHA-256 of data. */
void emu_sha256_hex(const void *data, size_t len, char out[65]);

/* Parses the API's UTC timestamp "YYYY-MM-DDThh:mm:ssZ" into seconds since the epoch. Returns 0
 * or -EINVAL. */
int emu_parse_utc(const char *s, int64_t *ret_s);

#endif
