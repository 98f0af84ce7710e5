/* Remembered regions and the ListRegions cache (see rec_regions.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prov_statedir.h"
#include "rec_regions.h"

#define REGIONS_FILE "regions.json"
#define CACHE_FILE "list-regions.json"

int rec_region_list_add(rec_region_list *l, const char *region)
{
    size_t at = 0;
    while (at < l->n && strcmp(l->v[at], region) < 0)
        at++;
    if (at < l->n && strcmp(l->v[at], region) == 0)
        return 0;
    char **g = realloc(l->v, (l->n + 1) * sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    l->v = g;
    char *copy = strdup(region);
    if (copy == NULL)
        return -ENOMEM;
    memmove(&l->v[at + 1], &l->v[at], (l->n - at) * sizeof(*l->v));
    l->v[at] = copy;
    l->n++;
    return 1;
}

bool rec_region_list_has(const rec_region_list *l, const char *region)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], region) == 0)
            return true;
    return false;
}

void rec_region_list_clear(rec_region_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Loads dir/name as a JSON object: 0, -ENOENT when absent, -EPROTO when not an object, -ELOOP
 * when the name is a symbolic link (never followed; *ret_error says so). */
static int load_json(const char *dir, const char *name, json_t **ret, char **ret_error)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = prov_statedir_open(dir, name, O_RDONLY, 0);
    if (fd == -ELOOP && ret_error != NULL &&
        asprintf(ret_error,
                 "%s is a symbolic link; imgrecon does not follow links in its state "
                 "directory (remove it)",
                 path) < 0)
        *ret_error = NULL;
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        int rc = fd >= 0 ? -errno : fd;
        if (fd >= 0)
            (void)close(fd);
        return rc;
    }
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (root == NULL || !json_is_object(root)) {
        if (ret_error != NULL &&
            asprintf(ret_error, "%s:%d:%d: %s", path, root ? 1 : je.line, root ? 1 : je.column,
                     root ? "not a JSON object" : je.text) < 0)
            *ret_error = NULL;
        json_decref(root);
        return -EPROTO;
    }
    *ret = root;
    return 0;
}

/* Appends the region ids of a JSON array; -EPROTO for anything that is not one. */
static int take_regions(json_t *arr, rec_region_list *l)
{
    if (!json_is_array(arr))
        return -EPROTO;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return -EPROTO;
        if (rec_region_list_add(l, json_string_value(v)) < 0)
            return -ENOMEM;
    }
    return 0;
}

static json_t *regions_array(const rec_region_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->n; i++)
        if (json_array_append_new(a, json_string(l->v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

int rec_regions_load(const char *state_dir, const char *owner, rec_region_list *ret,
                     char **ret_error)
{
    json_t *root = NULL;
    int rc = load_json(state_dir, REGIONS_FILE, &root, ret_error);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    json_t *owners = json_object_get(root, "owners");
    json_t *mine = json_is_object(owners) ? json_object_get(owners, owner) : NULL;
    rc = json_is_object(owners) ? 0 : -EPROTO;
    if (rc == 0 && mine != NULL)
        rc = take_regions(mine, ret);
    if (rc == -EPROTO && ret_error != NULL &&
        asprintf(ret_error,
                 "%s/%s: not an imgrecon regions file (want {\"owners\": {OWNER: "
                 "[REGION, ...]}})",
                 state_dir, REGIONS_FILE) < 0)
        *ret_error = NULL;
    if (rc < 0)
        rec_region_list_clear(ret);
    json_decref(root);
    return rc;
}

int rec_regions_save(const char *state_dir, const char *owner, const rec_region_list *l)
{
    json_t *root = NULL;
    int rc = load_json(state_dir, REGIONS_FILE, &root, NULL);
    if (rc == -ELOOP) /* never replace what a planted link points at, nor the link */
        return rc;
    if (rc < 0 || !json_is_object(json_object_get(root, "owners"))) {
        json_decref(root);
        root = json_pack("{s:i,s:{}}", "version", 1, "owners");
    }
    json_t *arr = regions_array(l);
    char *text = NULL;
    if (root != NULL && arr != NULL &&
        json_object_set_new(json_object_get(root, "owners"), owner, arr) == 0) {
        arr = NULL;
        text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    }
    json_decref(arr);
    json_decref(root);
    if (text == NULL)
        return -ENOMEM;
    rc = prov_statedir_write_file(state_dir, REGIONS_FILE, text, strlen(text), 0600);
    free(text);
    return rc;
}

int rec_regions_cache_load(const char *state_dir, int64_t now_s, int64_t max_age_s,
                           rec_region_list *ret)
{
    json_t *root = NULL;
    if (load_json(state_dir, CACHE_FILE, &root, NULL) < 0)
        return -ENOENT;
    json_t *at = json_object_get(root, "fetched_at");
    int rc = -ENOENT;
    if (json_is_integer(at) && json_integer_value(at) <= now_s &&
        now_s - json_integer_value(at) < max_age_s) {
        rc = take_regions(json_object_get(root, "regions"), ret);
        if (rc == 0 && ret->n == 0)
            rc = -ENOENT;
        if (rc < 0) {
            rec_region_list_clear(ret);
            rc = rc == -ENOMEM ? rc : -ENOENT;
        }
    }
    json_decref(root);
    return rc;
}

int rec_regions_cache_save(const char *state_dir, int64_t now_s, const rec_region_list *l)
{
    json_t *arr = regions_array(l);
    json_t *root = arr ? json_pack("{s:i,s:I,s:o}", "version", 1, "fetched_at", (json_int_t)now_s,
                                   "regions", arr)
                       : NULL;
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (text == NULL)
        return -ENOMEM;
    int rc = prov_statedir_write_file(state_dir, CACHE_FILE, text, strlen(text), 0600);
    free(text);
    return rc;
}
