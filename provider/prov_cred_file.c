/* Credentials files for the chain in prov_cred.c: a careful reader that refuses files other
 * users can read, the aliyun CLI's config.json (profiles with modes AK, StsToken, EcsRamRole) and
 * the SDKs' INI credentials file. Messages name paths, profiles and keys, never values. */
#include "prov_cred_file.h"
#include "prov_str.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

void prov_cred_lookup_clear(prov_cred_lookup *l)
{
    if (l == NULL)
        return;
    prov_credential_clear(&l->cred);
    free(l->role_name);
    free(l->role_arn);
    free(l->session_name);
    l->role_name = NULL;
    l->role_arn = NULL;
    l->session_name = NULL;
    l->wants_role = false;
    l->wants_assume = false;
}

/* Used for config.json, the INI file and the files in $CREDENTIALS_DIRECTORY. The permission
 * check runs on the open descriptor, so the file checked is the file read. */
int prov_cred_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                        char **ret_error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return -ENOENT;
        *ret_error = prov_asprintf("%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        (void)close(fd);
        *ret_error = prov_asprintf("%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        (void)close(fd);
        *ret_error = prov_asprintf("%s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_mode & 077) {
        (void)close(fd);
        *ret_error = prov_asprintf("%s: permissions %04o are too open; run chmod 600 %s", path,
                                   (unsigned)(st.st_mode & 07777), path);
        return -EACCES;
    }
    if ((size_t)st.st_size > max) {
        (void)close(fd);
        *ret_error = prov_asprintf("%s: larger than %zu bytes", path, max);
        return -EINVAL;
    }
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            (void)close(fd);
            *ret_error = prov_asprintf("%s: %s", path, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            (void)close(fd);
            *ret_error = prov_asprintf("%s: larger than %zu bytes", path, max);
            return -EINVAL;
        }
    }
    (void)close(fd);
    buf[n] = '\0';
    *ret_data = buf;
    *ret_len = n;
    return 0;
}

/* strdup of an optional string; false on allocation failure. */
static bool dup_str(char **to, const char *from)
{
    *to = from ? strdup(from) : NULL;
    return from == NULL || *to != NULL;
}

/* A string member that must be present and non-empty; NULL otherwise. */
static const char *member(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

static int set_keys(prov_cred_lookup *l, const char *id, const char *secret, const char *token,
                    char *source)
{
    l->cred.access_key_id = strdup(id);
    l->cred.access_key_secret = strdup(secret);
    l->cred.security_token = token ? strdup(token) : NULL;
    l->cred.source = source;
    if (!l->cred.access_key_id || !l->cred.access_key_secret ||
        (token && !l->cred.security_token) || !source) {
        prov_cred_lookup_clear(l);
        return -ENOMEM;
    }
    return 0;
}

char *prov_cred_config_json_current(const char *data, size_t len)
{
    json_t *root = json_loadb(data, len, 0, NULL);
    const char *cur = root ? member(root, "current") : NULL;
    char *out = strdup(cur ? cur : "default");
    json_decref(root);
    return out;
}

/* Why jansson refused a credentials file, in words of our own: jansson's text quotes the input
 * near the error ("near '\"TopSecret'"), which in this file is a secret. */
static const char *json_reason(const json_error_t *e)
{
    static const struct {
        enum json_error_code code;
        const char *reason;
    } reasons[] = {
        {json_error_premature_end_of_input, "unexpected end of input"},
        {json_error_end_of_input_expected, "text after the end of the document"},
        {json_error_invalid_syntax, "invalid syntax (a control character, a bad escape or a "
                                    "missing quote, comma or bracket)"},
        {json_error_invalid_utf8, "invalid UTF-8"},
        {json_error_null_character, "a NUL character"},
        {json_error_null_byte_in_key, "a NUL character in a key"},
        {json_error_duplicate_key, "a duplicate key"},
        {json_error_numeric_overflow, "a number out of range"},
        {json_error_out_of_memory, "out of memory"},
        {json_error_stack_overflow, "nested too deeply"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].code == json_error_code(e))
            return reasons[i].reason;
    return "not valid JSON";
}

/* Called by the chain for ~/.aliyun/config.json. The mode decides which members are needed. */
int prov_cred_parse_config_json(const char *path, const char *data, size_t len, const char *profile,
                                prov_cred_lookup *ret, char **ret_note, char **ret_error)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        *ret_error = prov_asprintf("%s:%d:%d: malformed JSON: %s", path, jerr.line, jerr.column,
                                   json_reason(&jerr));
        return -EINVAL;
    }
    int r = 0;
    json_t *profiles = json_object_get(root, "profiles");
    if (!json_is_object(root) || (profiles != NULL && !json_is_array(profiles))) {
        *ret_error = prov_asprintf("%s: expected an object with a \"profiles\" array", path);
        json_decref(root);
        return -EINVAL;
    }
    json_t *p = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(profiles, i, it)
    {
        const char *name = member(it, "name");
        if (name && strcmp(name, profile) == 0) {
            p = it;
            break;
        }
    }
    if (p == NULL) {
        *ret_note = prov_asprintf("no profile '%s'", profile);
        json_decref(root);
        return -ENOENT;
    }
    const char *mode = member(p, "mode");
    const char *id = member(p, "access_key_id");
    const char *secret = member(p, "access_key_secret");
    const char *token = member(p, "sts_token");
    const char *what = NULL;
    prov_cred_lookup l = {0};
    if (mode == NULL || strcasecmp(mode, "AK") == 0) {
        if (!id)
            what = "access_key_id";
        else if (!secret)
            what = "access_key_secret";
        else
            r = set_keys(&l, id, secret, NULL,
                         prov_asprintf("%s (profile '%s', mode AK)", path, profile));
    } else if (strcasecmp(mode, "StsToken") == 0) {
        if (!id)
            what = "access_key_id";
        else if (!secret)
            what = "access_key_secret";
        else if (!token)
            what = "sts_token";
        else
            r = set_keys(&l, id, secret, token,
                         prov_asprintf("%s (profile '%s', mode StsToken)", path, profile));
    } else if (strcasecmp(mode, "EcsRamRole") == 0) {
        const char *role = member(p, "ram_role_name");
        l.wants_role = true;
        l.role_name = strdup(role ? role : "");
        if (l.role_name == NULL)
            r = -ENOMEM;
    } else if (strcasecmp(mode, "RamRoleArn") == 0) {
        const char *arn = member(p, "ram_role_arn");
        json_t *exp = json_object_get(p, "expired_seconds");
        if (!id)
            what = "access_key_id";
        else if (!secret)
            what = "access_key_secret";
        else if (!arn)
            what = "ram_role_arn";
        else if (exp != NULL && (!json_is_integer(exp) || json_integer_value(exp) < 900 ||
                                 json_integer_value(exp) > 43200)) {
            *ret_error =
                prov_asprintf("%s: profile '%s': expired_seconds must be a number of seconds "
                              "from 900 to 43200",
                              path, profile);
            r = -EINVAL;
        } else {
            r = set_keys(&l, id, secret, token,
                         prov_asprintf("%s (profile '%s', mode RamRoleArn)", path, profile));
            l.wants_assume = true;
            l.duration_s = exp ? (long)json_integer_value(exp) : 3600;
            if (r == 0 && (!dup_str(&l.role_arn, arn) ||
                           !dup_str(&l.session_name, member(p, "ram_session_name")))) {
                prov_cred_lookup_clear(&l);
                r = -ENOMEM;
            }
        }
    } else {
        *ret_error = prov_asprintf("%s: profile '%s': unknown mode '%s' (expected AK, StsToken, "
                                   "RamRoleArn or EcsRamRole)",
                                   path, profile, mode);
        r = -EINVAL;
    }
    if (what != NULL) {
        *ret_error = prov_asprintf("%s: profile '%s' (mode %s) has no %s", path, profile,
                                   mode ? mode : "AK", what);
        r = -EINVAL;
    }
    json_decref(root);
    if (r == 0)
        *ret = l;
    return r;
}

/* Trims blanks (and a trailing CR) in place; returns the start. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Removes one pair of matching surrounding quotes, as the SDKs' INI readers accept. */
static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

/* Called by the chain for ~/.alibabacloud/credentials (or ALIBABA_CLOUD_CREDENTIALS_FILE). The
 * whole file is checked for syntax, so a broken line is reported even outside the section. */
int prov_cred_parse_ini(const char *path, const char *data, size_t len, const char *section,
                        prov_cred_lookup *ret, char **ret_note, char **ret_error)
{
    if (memchr(data, '\0', len) != NULL) {
        *ret_error = prov_asprintf("%s: contains a NUL byte", path);
        return -EINVAL;
    }
    char *copy = strndup(data, len);
    if (copy == NULL)
        return -ENOMEM;
    const char *type = NULL, *id = NULL, *secret = NULL, *role = NULL, *arn = NULL, *session = NULL;
    bool in_section = false, seen = false;
    int r = 0, lineno = 0;
    char *save = NULL;
    for (char *line = copy; line != NULL && r == 0; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end == NULL || *trim(end + 1) != '\0') {
                *ret_error = prov_asprintf("%s:%d: malformed section header", path, lineno);
                r = -EINVAL;
                break;
            }
            *end = '\0';
            in_section = strcmp(trim(s + 1), section) == 0;
            seen = seen || in_section;
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            *ret_error =
                prov_asprintf("%s:%d: expected 'key = value' or '[section]'", path, lineno);
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = unquote(trim(eq + 1));
        if (*key == '\0') {
            *ret_error = prov_asprintf("%s:%d: empty key", path, lineno);
            r = -EINVAL;
            break;
        }
        if (!in_section)
            continue;
        if (strcmp(key, "type") == 0)
            type = value;
        else if (strcmp(key, "access_key_id") == 0)
            id = value;
        else if (strcmp(key, "access_key_secret") == 0)
            secret = value;
        else if (strcmp(key, "role_name") == 0)
            role = value;
        else if (strcmp(key, "role_arn") == 0)
            arn = value;
        else if (strcmp(key, "role_session_name") == 0)
            session = value;
    }
    prov_cred_lookup l = {0};
    if (r == 0 && !seen) {
        *ret_note = prov_asprintf("no section [%s]", section);
        r = -ENOENT;
    } else if (r == 0 && (type == NULL || strcmp(type, "access_key") == 0)) {
        const char *what = !id || !*id           ? "access_key_id"
                           : !secret || !*secret ? "access_key_secret"
                                                 : NULL;
        if (what) {
            *ret_error =
                prov_asprintf("%s: section [%s] (type access_key) has no %s", path, section, what);
            r = -EINVAL;
        } else {
            r = set_keys(&l, id, secret, NULL,
                         prov_asprintf("%s ([%s], access_key)", path, section));
        }
    } else if (r == 0 && strcmp(type, "ram_role_arn") == 0) {
        const char *what = !id || !*id           ? "access_key_id"
                           : !secret || !*secret ? "access_key_secret"
                           : !arn || !*arn       ? "role_arn"
                                                 : NULL;
        if (what) {
            *ret_error = prov_asprintf("%s: section [%s] (type ram_role_arn) has no %s", path,
                                       section, what);
            r = -EINVAL;
        } else {
            r = set_keys(&l, id, secret, NULL,
                         prov_asprintf("%s ([%s], ram_role_arn)", path, section));
            l.wants_assume = true;
            l.duration_s = 3600;
            if (r == 0 && (!dup_str(&l.role_arn, arn) ||
                           !dup_str(&l.session_name, session && *session ? session : NULL))) {
                prov_cred_lookup_clear(&l);
                r = -ENOMEM;
            }
        }
    } else if (r == 0 && strcmp(type, "ecs_ram_role") == 0) {
        l.wants_role = true;
        l.role_name = strdup(role ? role : "");
        if (l.role_name == NULL)
            r = -ENOMEM;
    } else if (r == 0) {
        *ret_error = prov_asprintf("%s: section [%s]: type '%s' is not supported (use access_key, "
                                   "ram_role_arn or ecs_ram_role)",
                                   path, section, type);
        r = -EINVAL;
    }
    explicit_bzero(copy, len);
    free(copy);
    if (r == 0)
        *ret = l;
    return r;
}
