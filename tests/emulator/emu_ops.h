/* Internal interface between emu_world.c (data, dispatch, ClientToken records) and the
 * operation files emu_swas.c and emu_ecs.c. Nothing outside tests/emulator uses it. */
#ifndef EMU_OPS_H
#define EMU_OPS_H

#include "emu_world.h"

#define EMU_TOKEN_TTL_MS (24LL * 3600 * 1000)

/* SWAS operations (emu_swas.c). */
int emu_swas_list(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_create(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_share(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_delete(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
/* More SWAS operations (emu_swas_more.c): tags, batch delete, regions, account shares. */
int emu_swas_delete_batch(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_tag(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_untag(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_list_tags(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_regions(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_share_add(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_share_remove(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_swas_share_list(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);

/* Shared by the SWAS files. Each returns 0, 1 after setting an API error on r, or -ENOMEM. */
/* Tag.N.Key / Tag.N.Value (N = 1..20), ordered by N; with check_rules the API's key and value
 * rules apply and an absent value is "" (caller frees with emu_tags_free). */
int emu_swas_parse_tags(const emu_kvs *p, bool check_rules, emu_tag **ret, size_t *ret_n,
                        emu_result *r);
void emu_tags_free(emu_tag *tags, size_t n);
/* ClientToken: at most 64 printable ASCII characters. */
int emu_swas_check_token(const emu_kvs *p, emu_result *r);
/* Why an image in this state cannot be deleted (a static error code with its HTTP status and
 * message set on r, returning 1), or 0 when it can; -ENOMEM. */
int emu_swas_deletable(const emu_image *img, emu_result *r);
/* ECS operations (emu_ecs.c). */
int emu_ecs_describe(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);
int emu_ecs_delete(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);

/* A required parameter: returns its value, or NULL after setting MissingParameter on r (and
 * *rc to -ENOMEM if even that failed). */
const char *emu_required(const emu_kvs *p, const char *key, emu_result *r, int *rc);
/* A region by name, created empty when unknown (any region exists in the cloud; a region the
 * fixture does not name simply has nothing in it). NULL only on allocation failure. */
emu_region *emu_world_region_get(emu_world *w, const char *region);

/* ClientToken records. emu_token_check returns 0 when the call may go on: *ret_prev is NULL
 * when the token is new (or absent), else the record of the first call with the same
 * parameters (a replay: answer as that call did, act nothing). It returns -EEXIST after setting
 * IdempotentParameterMismatch on r when the token was used with other parameters, and -ENOMEM
 * on allocation failure. */
int emu_token_check(emu_world *w, const char *action, const emu_kvs *p, int64_t now,
                    const emu_token **ret_prev, emu_result *r);
int emu_token_record(emu_world *w, const char *action, const emu_kvs *p, const char *image_id,
                     int64_t now);

/* Appends an image (deep copy of the fields is the caller's job; this takes ownership). */
int emu_region_add_image(emu_region *r, emu_image *img);
void emu_image_free_fields(emu_image *img);
void emu_region_remove_image(emu_region *r, size_t index);
emu_server *emu_region_server(emu_region *r, const char *instance_id);

/* Builds a JSON object from a printf-free list: helpers that never fail silently. Returns
 * -ENOMEM when jansson could not allocate. */
int emu_json_set_str(json_t *obj, const char *key, const char *value);

#endif
