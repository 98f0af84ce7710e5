/* Parsers of the API's answers (prov_resp.c): list, ECS list, create, error, tag and
 * account-share bodies into the structs of prov_types.h. Used by the client (prov_call.c,
 * prov_swas.c) and exposed for tests and fuzz targets. */
#ifndef PROV_RESP_H
#define PROV_RESP_H

#include <jansson.h>
#include <stddef.h>

#include "prov_types.h"

/* Loads bytes as one JSON object, rejecting duplicate keys (an answer with a key twice is
 * ambiguous); NULL when the bytes are not one. The caller decrefs. The client loads each answer
 * once with it; tests and fuzz targets load with it before calling the parsers. */
json_t *prov_json_load_object(const char *body, size_t len);

/* ---- Parsers, exposed for tests and fuzz targets ----
 * Each takes a parsed answer (borrowed; anything, NULL included) and returns 0 or -EPROTO (not
 * an object, mistyped, missing fields), never crashing. Counters may be strings ("4") or
 * numbers. */
int prov_parse_list_images(const json_t *root, prov_image_list *append_to,
                           unsigned *ret_total_count);
int prov_parse_ecs_images(const json_t *root, prov_ecs_image_list *append_to,
                          unsigned *ret_total_count);
int prov_parse_create(const json_t *root, char **ret_image_id);
/* Error body {"RequestId","Code","Message",...}; fills code/message/request_id (NULL if absent). */
int prov_parse_error_body(const json_t *root, char **ret_code, char **ret_message,
                          char **ret_request_id);

/* ListRegions {"Regions":[{"RegionId":...},...]} (or {"Regions":{"Region":[...]}}): at least one
 * region, each id of lowercase letters, digits and '-', none twice. *ret_regions (sorted) and
 * each string are the caller's to free. */
int prov_parse_regions(const json_t *root, char ***ret_regions, size_t *ret_n);
/* Parsers of an answer already parsed by the client (body borrowed); 0, -EPROTO or -ENOMEM,
 * and nothing is appended on failure. *ret_next_token: malloc'd, NULL or "" on the last page. */
int prov_parse_tag_resources(const json_t *body, prov_tag_resource_list *append_to,
                             char **ret_next_token);
int prov_parse_share_accounts(const json_t *body, prov_str_list *append_to,
                              unsigned *ret_total_count);

#endif
