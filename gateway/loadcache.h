/*
 * loadcache.h — a per-worker cache of values loaded from the store asynchronously: what keeps
 * the hot path off the database for virtual keys (keys.c: token → principal) and end users
 * (endusers.c: id → limits).
 *
 * One cache per worker and kind, used only on that worker's loop (no locks, no atomics). A key
 * is a string shorter than the type's key_max. A miss submits one store job (the type's load,
 * run on the store thread) and parks the request on the entry (rc->auth_link / rc->auth_cont);
 * concurrent misses for the same key wait on the same load. When the load returns, every parked
 * request is woken in turn: the type's accept hook (if any) checks the value for it, then its
 * continuation runs. A value may be NULL ("no such row"), kept for neg_ttl_ms.
 *
 * Freshness. A value is fresh for ttl_ms; a stale value is still served while a reload runs in
 * the background, and kept (retried every stale_retry_ms) while the database is down. A load
 * that fails with nothing cached answers the parked requests 503 (the type's message).
 *
 * Invalidation. gw_loadcache_drop / drop_if / drop_all remove values at once: a request that
 * comes after waits for a fresh load (an entry with a load in flight loads again when it
 * returns, since that row may predate the change). gw_loadcache_stale_all only marks every value
 * stale: it keeps being served while it reloads, for changes that may touch many entries and do
 * not have to apply to the very next request (a budget row that many principals share).
 *
 * Values are reference counted by the cache (a box per value), so an entry dropped while its
 * waiters are being woken stays valid for them; the type's release frees a value when its last
 * box reference goes.
 */
#ifndef GW_LOADCACHE_H
#define GW_LOADCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/store.h"

struct gw_worker;
struct gw_reqctx;

typedef struct gw_loadcache_type {
    size_t key_max;          /* bytes of a key, NUL included; longer keys are the caller's concern */
    uint64_t ttl_ms;         /* a value is fresh this long */
    uint64_t neg_ttl_ms;     /* a NULL value ("no row") is fresh this long */
    uint64_t stale_retry_ms; /* database down: keep a stale value, retry after this */
    size_t max_entries;      /* past it, idle entries are swept before a new one is made */
    /* Store thread: loads key's value into *out (NULL: none). Returns a GW_STORE_* status. */
    int (*load)(gw_store_conn_t *c, const char *key, void **out);
    /* Worker: frees a value (never called with NULL). */
    void (*release)(void *value);
    /* Worker, may be NULL: runs for each parked request before its continuation, with the value
     * it was waiting for (borrowed for the call). 0: go on to the continuation; non-zero: the
     * hook replied (the continuation does not run). */
    int (*accept)(struct gw_reqctx *rc, void *value);
    /* The 503 a parked request gets when the load failed and nothing was cached, and when a load
     * cannot even be queued. */
    const char *unavailable_msg;
} gw_loadcache_type_t;

typedef struct gw_loadcache gw_loadcache_t;

/** Creates a worker's cache of one type (t must outlive it). NULL on no memory. */
gw_loadcache_t *gw_loadcache_create(struct gw_worker *w, const gw_loadcache_type_t *t);
/** Frees it; no load of it may be in flight. NULL is a no-op. */
void gw_loadcache_destroy(gw_loadcache_t *lc);

/**
 * Looks key up for rc. 0: *value (may be NULL) is known now, valid until control returns to the
 * loop (the caller takes what it keeps). 1: rc is parked — after the load, accept(rc, value) then
 * cont(rc) run on this loop (calling gw_loadcache_get again from cont answers 0). -1: an error
 * reply was sent (store unavailable, no memory); cont never runs. A client that leaves while
 * parked must be unlinked from rc->auth_link by its teardown.
 */
int gw_loadcache_get(gw_loadcache_t *lc, struct gw_reqctx *rc, const char *key, void **value,
                     void (*cont)(struct gw_reqctx *rc));

/** Drops key's value (see Invalidation). NULL lc is a no-op. */
void gw_loadcache_drop(gw_loadcache_t *lc, const char *key);
/** Drops every value for which pred(value, ud) is non-zero (NULL values are not offered). */
void gw_loadcache_drop_if(gw_loadcache_t *lc, int (*pred)(const void *value, void *ud), void *ud);
/** Drops every value. */
void gw_loadcache_drop_all(gw_loadcache_t *lc);
/** Marks every value stale: still served, reloaded in the background on next use. */
void gw_loadcache_stale_all(gw_loadcache_t *lc);
/** Entries held now (tests). */
size_t gw_loadcache_size(const gw_loadcache_t *lc);

#endif
