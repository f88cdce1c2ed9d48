/*
 * endusers.h — end users (LiteLLM's "customers"): the limits of the person a request names in
 * its `user` field (OpenAI's top-level "user"; /v1/messages' metadata.user_id and the simple
 * contract arrive translated into it), kept off the database by a small per-worker cache.
 *
 * What an end user is. A row of end_users (created by /customer/new, or by the spend writer the
 * first time a request names it) with its budget row (budget_id → budgets: max_budget,
 * budget_duration, rpm_limit, tpm_limit, max_parallel_requests). An end user without a row, or
 * whose budget sets no limit, has no limits (LiteLLM's behaviour): the request is admitted as if
 * it had named no one. When it has limits, the call is admitted with one more scope,
 * GW_SCOPE_END_USER (policy.c), for every caller — the master key included, as LiteLLM does.
 * A blocked end user (end_users.blocked: /customer/block, or blocked on /customer/new|update)
 * is refused before admission on every model route, for every caller: 400, LiteLLM's "User
 * blocked from making LLM API Calls. User=<id>" (call.c).
 *
 * Cache. One loadcache per worker (loadcache.h; no locks): end-user id → its limits or "no
 * limits". A miss parks the request (rc->auth_link / rc->auth_cont, free once authentication is
 * over) until the load completes; concurrent misses share one load. Entries are fresh for
 * GW_EUCACHE_TTL_MS; a stale entry is served while a background reload runs (and kept while the
 * database is down). A load that fails with nothing cached replies 503. Invalidation (on this
 * instance by broadcast, from others through the changes poll — keys.c): a change of kind
 * end_user drops that end user, a budget change drops the end users naming that budget, any
 * other kind but key, user, team, organization and team_membership drops them all — so a customer
 * created or changed anywhere applies within about a second. Ids longer than
 * GW_EUCACHE_ID_MAX - 1 bytes are not looked up (no limits; the spend record still names them).
 */
#ifndef GW_ENDUSERS_H
#define GW_ENDUSERS_H

#include <stdint.h>

#include "gateway/keys.h"

struct gw_worker;
struct gw_reqctx;

#define GW_EUCACHE_TTL_MS 30000
#define GW_EUCACHE_STALE_RETRY_MS 5000
#define GW_EUCACHE_MAX 16384  /* entries per worker; past it idle entries are swept */
#define GW_EUCACHE_ID_MAX 128 /* bytes of an id, NUL included (the limiter's GW_LIMITS_ID_MAX) */

typedef struct gw_enduser {
    int has_limits; /* a budget or a rate limit is set */
    int blocked;    /* end_users.blocked (/customer/block): every request naming it is refused */
    gw_level_limits_t lim;
    char budget_id[GW_EUCACHE_ID_MAX]; /* "" = none */
} gw_enduser_t;

/* The worker's end-user cache is a loadcache (loadcache.h) of gw_enduser_t values. */
typedef struct gw_loadcache gw_eucache_t;

/** The end-user load's SQL ($1 = user_id); exposed for tests. */
extern const char gw_enduser_load_sql[];

/** Creates the worker's cache (worker thread, after gw_keycache_create). NULL on no memory. */
gw_eucache_t *gw_eucache_create(struct gw_worker *w);
/** Frees it; no load of this worker may be in flight. NULL is a no-op. */
void gw_eucache_destroy(gw_eucache_t *ec);
/**
 * Applies one change (kind and id as in the changes table: "end_user", "budget", or anything else
 * for everything) to the worker's cache. Worker thread. NULL is a no-op.
 */
void gw_endusers_invalidate(gw_eucache_t *ec, const char *kind, const char *id);

/**
 * Looks up end user id for rc. Returns 0 with *out filled when known now; 1 when rc is parked:
 * cont(rc) runs later on this loop, and calling gw_endusers_lookup again from it answers 0; -1
 * after an error reply (store unavailable, no memory) — cont never runs then. A client that
 * leaves while parked is unlinked by request teardown (gw_keys_request_dispose).
 */
int gw_endusers_lookup(struct gw_reqctx *rc, const char *id, gw_enduser_t *out,
                       void (*cont)(struct gw_reqctx *rc));

#endif
