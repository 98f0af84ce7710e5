/* systemd-style scope cleanup for the whole project (the lowest room, so every room and cmd/
 * may use it; the emulator keeps its own code). A variable declared with one of these
 * attributes is released when it goes out of scope, on every return path, so a function needs
 * no goto ladder:
 *
 *     _cleanup_free_ char *msg = NULL;                       free(msg)
 *     _cleanup_wipe_ char *secret = NULL;                    prov_free_secret(secret)
 *     _cleanup_(spec_set_freep) spec_set *set = NULL;        spec_set_free(set)
 *
 * To hand the value out, take it: `*ret = PROV_TAKE_PTR(msg);`. x_freep() helpers are declared
 * next to x_free() with PROV_DEFINE_FREEP. Header only: it pairs with prov_secret.c, whose
 * wiper _cleanup_wipe_ uses. */
#ifndef PROV_CLEANUP_H
#define PROV_CLEANUP_H

#include <stdlib.h>

#include "prov_secret.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void prov_freep(void *p)
{
    free(*(void **)p);
}

static inline void prov_free_secretp(char **p)
{
    prov_free_secret(*p);
}

#define _cleanup_free_ _cleanup_(prov_freep)
#define _cleanup_wipe_ _cleanup_(prov_free_secretp)

/* Defines static inline void <func>p(type **p) calling func(*p) (which accepts NULL). */
#define PROV_DEFINE_FREEP(type, func)                                                              \
    static inline void func##p(type **p)                                                           \
    {                                                                                              \
        func(*p);                                                                                  \
    }

/* Returns the pointer and sets the variable to NULL, so its cleanup does nothing. */
#define PROV_TAKE_PTR(ptr)                                                                         \
    ({                                                                                             \
        __typeof__(ptr) taken_ = (ptr);                                                            \
        (ptr) = NULL;                                                                              \
        taken_;                                                                                    \
    })

#endif
