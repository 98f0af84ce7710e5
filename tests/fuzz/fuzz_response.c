/* libFuzzer target: arbitrary bytes are loaded as the client loads an answer
 * (prov_json_load_object), and every API response parser must take whatever that gives, NULL
 * included, without crashing. */
#include <stdint.h>
#include <stdlib.h>

#include "prov_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = prov_json_load_object((const char *)data, size);
    prov_image_list list = {0};
    prov_ecs_image_list ecs = {0};
    unsigned total = 0;
    char *id = NULL, *code = NULL, *msg = NULL, *rid = NULL;

    (void)prov_parse_list_images(body, &list, &total);
    prov_image_list_clear(&list);
    (void)prov_parse_ecs_images(body, &ecs, &total);
    prov_ecs_image_list_clear(&ecs);
    if (prov_parse_create(body, &id) == 0)
        free(id);
    char **regions = NULL;
    size_t n_regions = 0;
    if (prov_parse_regions(body, &regions, &n_regions) == 0) {
        for (size_t i = 0; i < n_regions; i++)
            free(regions[i]);
        free(regions);
    }
    if (prov_parse_error_body(body, &code, &msg, &rid) == 0) {
        free(code);
        free(msg);
        free(rid);
    }
    /* The tag and account-share parsers (they take a loaded object, never NULL). */
    if (body != NULL) {
        prov_tag_resource_list rows = {0};
        prov_str_list accounts = {0};
        char *next = NULL;
        if (prov_parse_tag_resources(body, &rows, &next) == 0)
            free(next);
        prov_tag_resource_list_free(&rows);
        (void)prov_parse_share_accounts(body, &accounts, &total);
        prov_str_list_free(&accounts);
    }
    json_decref(body);
    return 0;
}
