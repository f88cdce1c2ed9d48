/*
 * limits_int.h — private to limits.c (local backend, config, shared result building) and
 * limits_redis.c (the Redis backend on h2o loops).
 */
#ifndef GW_LIMITS_INT_H
#define GW_LIMITS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "gateway/limits.h"

#define GW_LIMITS_WINDOW_MS 60000

typedef struct scope_ent scope_ent_t;
typedef struct resv resv_t;

struct gw_limits {
    gw_limits_config_t cfg; /* strings below point into the copies */
    char host[256];
    char password[256];
    char prefix[96]; /* redis_prefix + "{tollgate}:" */
    char addr[64];   /* resolved numeric address of host */
    /* local backend: everything below mu is guarded by it */
    pthread_mutex_t mu;
    scope_ent_t **sbuckets;
    size_t nsbuckets, nscopes;
    resv_t **rbuckets;
    size_t nrbuckets, nresv;
    resv_t *oldest, *newest; /* expiry order (TTL is one constant, so admission order) */
    /* redis backend */
    char sha[41];
    atomic_int n_loops, n_up;
};

/**
 * What either backend saw for one scope, turned into a result by gw_limits_fill_result:
 * rq/tk = the window's requests/tokens (after this admission when admitted), pend/sp = period.
 */
typedef struct gw_limits_seen {
    int64_t rq, tk, pend, sp;
    int rolled;
} gw_limits_seen_t;

/** The engine's clock (config clock or CLOCK_REALTIME), unix ms. */
int64_t gw_limits_now(const gw_limits_t *lim);

/** Checks a request: scope count, id lengths, no duplicate scope, non-negative numbers. */
int gw_limits_req_valid(const gw_limits_req_t *req);

/**
 * Fills res (verdict, refusal details when refused_idx >= 0, header values, periods) from what a
 * backend saw. refused_idx/which/limit/remaining/reset describe the refusal (refused_idx < 0:
 * admitted).
 */
void gw_limits_fill_result(const gw_limits_req_t *req, const gw_limits_seen_t *seen, int64_t now,
                           int refused_idx, gw_limits_which_t which, int64_t limit, int64_t remaining,
                           int64_t reset_at, gw_limits_result_t *res);

/** Prepares the Redis backend (script hash); called by gw_limits_create. */
void gw_limits_redis_init(gw_limits_t *lim);

/** An INVALID / UNAVAILABLE result with nothing else set. */
void gw_limits_result_plain(gw_limits_result_t *res, gw_limits_verdict_t v);

#endif
