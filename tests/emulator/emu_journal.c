/* The JSONL request journal (see emu_journal.h). */
#include "emu_journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "emu_util.h"

int emu_journal_open(emu_journal *j, const char *path)
{
    j->f = NULL;
    if (!path) {
        return 0;
    }
    j->f = fopen(path, "ae");
    return j->f ? 0 : -errno;
}

void emu_journal_close(emu_journal *j)
{
    if (j && j->f) {
        (void)fflush(j->f);
        (void)fclose(j->f);
        j->f = NULL;
    }
}

int emu_journal_truncate(emu_journal *j)
{
    if (!j->f) {
        return 0;
    }
    (void)fflush(j->f);
    if (ftruncate(fileno(j->f), 0) < 0) {
        return -errno;
    }
    rewind(j->f);
    return 0;
}

int emu_journal_write(emu_journal *j, int64_t now_ms, const char *access_key_id, const char *action,
                      const emu_kvs *params, int http_status, const char *code,
                      const char *request_id, const char *image_id)
{
    if (!j->f) {
        return 0;
    }
    char ts[32];
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    (void)gmtime_r(&t, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    (void)snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now_ms % 1000));
    json_t *p = json_object();
    json_t *line = json_object();
    int bad = !p || !line;
    for (size_t i = 0; !bad && params && i < params->n; i++) {
        if (!emu_is_common_param(params->v[i].key)) {
            /* The server rejects invalid UTF-8 before this point; stay valid JSON anyway. */
            json_t *v = json_string(params->v[i].value);
            bad |= json_object_set_new(p, params->v[i].key, v ? v : json_string("<invalid>"));
        }
    }
    if (!bad) {
        bad |= json_object_set_new(line, "ts", json_string(ts));
        bad |= json_object_set_new(line, "access_key_id",
                                   access_key_id ? json_string(access_key_id) : json_null());
        bad |= json_object_set_new(line, "action", action ? json_string(action) : json_null());
        bad |= json_object_set(line, "params", p);
        bad |= json_object_set_new(line, "http_status", json_integer(http_status));
        bad |= json_object_set_new(line, "code", code ? json_string(code) : json_null());
        bad |= json_object_set_new(line, "request_id", json_string(request_id ? request_id : ""));
        if (image_id) {
            bad |= json_object_set_new(line, "image_id", json_string(image_id));
        }
    }
    json_decref(p);
    int rc = -ENOMEM;
    if (!bad) {
        /* Parameters are not validated UTF-8; ensure_ascii keeps the line valid JSON anyway. */
        char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        if (s) {
            rc = (fprintf(j->f, "%s\n", s) < 0 || fflush(j->f) != 0) ? -EIO : 0;
            free(s);
        }
    }
    json_decref(line);
    return rc;
}
