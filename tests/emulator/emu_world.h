/* The emulator's world: accounts, regions, servers with their snapshots, SWAS custom images and
 * ECS images, and the operations the API offers on them (README.md). The world knows
 * nothing about HTTP or signatures: emu_server.c authenticates a request and then calls
 * emu_world_call() under its mutex; the unit tests call it directly. */
#ifndef EMU_WORLD_H
#define EMU_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "emu_kvs.h"

typedef struct emu_tag {
    char *key;
    char *value;
} emu_tag;

/* One account an image is shared to (AddCustomImageShareAccount). */
typedef struct emu_share {
    char *user_id; /* digits */
    int64_t at_ms; /* when it was shared, wall clock */
} emu_share;

typedef struct emu_account {
    char *access_key_id;
    char *access_key_secret;
    char *user_id; /* digits, kept as text: 16 digits do not fit every JSON consumer's double */
} emu_account;

typedef struct emu_server {
    char *instance_id;
    char *name;
    char *status; /* Running | Stopped | Pending | ... */
    char **system_snapshots;
    size_t n_system_snapshots;
    char **data_snapshots;
    size_t n_data_snapshots;
} emu_server;

typedef struct emu_image {
    char *image_id;
    char *name;
    char *instance_id;
    char *system_snapshot_id;
    char *data_snapshot_id;  /* NULL when none */
    char *description;       /* "" when none */
    char *resource_group_id; /* never NULL: the account's default group when not given */
    char status[2];          /* "0".."4" */
    bool in_share;           /* shared to ECS (ModifyImageShareStatus) */
    emu_share *shares;       /* shared to accounts; InShareUser while there is one */
    size_t n_shares;
    emu_tag *tags;
    size_t n_tags;
    int64_t created_ms; /* wall clock, ms since the epoch */
    int64_t ready_ms;   /* status "4" turns "1" at this time; 0 when not pending */
    bool lagged;        /* made by CreateCustomImage: --list-lag hides it while young */
} emu_image;

typedef struct emu_ecs_image {
    char *image_id;
    char *name;
    char *status; /* Available | Creating | ... */
    long used_by_instances;
    bool shared;
    bool is_public;
    char *busy; /* none | copying | importing | exporting */
} emu_ecs_image;

typedef struct emu_region {
    char *region;
    emu_server *servers;
    size_t n_servers;
    emu_image *images;
    size_t n_images;
    emu_ecs_image *ecs;
    size_t n_ecs;
} emu_region;

/* One remembered ClientToken: the same token with the same parameters within 24 hours answers
 * the first result again instead of acting twice. */
typedef struct emu_token {
    char *action;
    char *token;
    char *fingerprint; /* canonical query of the operation's parameters */
    char *image_id;    /* CreateCustomImage's answer; NULL for the others */
    int64_t at_ms;
} emu_token;

typedef struct emu_world {
    emu_account *accounts;
    size_t n_accounts;
    emu_region *regions;
    size_t n_regions;
    emu_token *tokens;
    size_t n_tokens;
    uint64_t rng;            /* seeded PRNG state for image ids */
    int64_t create_delay_ms; /* "4" -> "1" after this long; 0 = at once */
    int64_t list_lag_ms;     /* images younger than this are not listed yet */
} emu_world;

enum emu_product { EMU_SWAS = 0, EMU_ECS = 1 };

#define EMU_SWAS_VERSION "2020-06-01"
#define EMU_ECS_VERSION "2014-05-26"
#define EMU_DEFAULT_RG "rg-acfmemulator0001"

/* The answer of one operation. On success http_status is 200, code NULL and body holds the
 * response without RequestId (the server adds it); on an API error code is a static string
 * and message a malloc'd text. */
typedef struct emu_result {
    int http_status;
    const char *code;
    char *message;
    json_t *body;
    char *image_id; /* a successful CreateCustomImage's id, for the journal */
} emu_result;

void emu_result_clear(emu_result *r);
/* Sets an error answer; returns 0 or -ENOMEM. */
int emu_result_error(emu_result *r, int http_status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An empty world; the fixture loader fills it. Returns 0 or -ENOMEM. */
int emu_world_new(emu_world **ret);
void emu_world_free(emu_world *w);
void emu_world_seed(emu_world *w, uint64_t seed);

/* Lookups used by the loader, the authenticator and the tests; NULL when absent. */
const emu_account *emu_world_account(const emu_world *w, const char *access_key_id);
emu_region *emu_world_region(emu_world *w, const char *region);
emu_image *emu_region_image(emu_region *r, const char *image_id);

/* True when the product has this action (decides InvalidAction.NotFound before auth). */
bool emu_world_has_action(enum emu_product product, const char *action);

/* Runs one operation with the request's parameters (common and signing parameters may be
 * present; they are ignored). now_ms is the wall clock. Returns 0 with *ret filled (success or
 * API error) or -ENOMEM. */
int emu_world_call(emu_world *w, enum emu_product product, const char *action,
                   const emu_kvs *params, int64_t now_ms, emu_result *ret);

/* Applies pending status changes ("4" -> "1") due at now_ms. */
void emu_world_tick(emu_world *w, int64_t now_ms);

/* The world in the fixture's shape (secrets left out), for GET /_emulator/state. */
json_t *emu_world_to_json(emu_world *w, int64_t now_ms);

/* Custom-image quota of a region: min(3 x servers, 15). */
size_t emu_region_quota(const emu_region *r);

/* UTC "YYYY-MM-DDThh:mm:ssZ" of a ms timestamp. */
void emu_format_time(int64_t ms, char out[21]);

#endif
