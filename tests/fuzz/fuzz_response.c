/* libFuzzer target: every API response parser must accept arbitrary bytes without crashing. */
#include <stdint.h>
#include <stdlib.h>

#include "prov_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    prov_image_list list = {0};
    prov_ecs_image_list ecs = {0};
    unsigned total = 0;
    char *id = NULL, *code = NULL, *msg = NULL, *rid = NULL;

    (void)prov_parse_list_images(body, size, &list, &total);
    prov_image_list_clear(&list);
    (void)prov_parse_ecs_images(body, size, &ecs, &total);
    prov_ecs_image_list_clear(&ecs);
    if (prov_parse_create(body, size, &id) == 0)
        free(id);
    char **regions = NULL;
    size_t n_regions = 0;
    if (prov_parse_regions(body, size, &regions, &n_regions) == 0) {
        for (size_t i = 0; i < n_regions; i++)
            free(regions[i]);
        free(regions);
    }
    if (prov_parse_error_body(body, size, &code, &msg, &rid) == 0) {
        free(code);
        free(msg);
        free(rid);
    }
    return 0;
}
