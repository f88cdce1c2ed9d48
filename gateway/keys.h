/*
 * keys.h — virtual keys: their format, their hash, durations, the principal a key stands for,
 * and the per-worker cache that keeps the hot path off the database.
 *
 * A virtual key is "sk-" + 22 url-safe base64 characters (16 random bytes); the store keeps only
 * its SHA-256 as 64 lowercase hex digits (LiteLLM's scheme). The master key is compared on the
 * request path before any of this (request.c).
 *
 * Principal. What the store says about a key and its owners (user, team, the user's membership
 * of that team, organization) and the key's per-model limits, read in one query by a store job
 * and frozen into a gw_principal_t (JSON limits parsed there, never per request): immutable after
 * load, reference
 * counted, used only on the worker that loaded it (so the count needs no atomics).
 *
 * Cache. Each worker owns one loadcache (loadcache.h; no locks): token hash → principal, or
 * "unknown" (negative entry). A miss submits a load job and parks the request on the entry;
 * concurrent misses for the same key wait on the same load. Entries are fresh for
 * GW_KEYCACHE_TTL_MS; a stale entry is still served while a reload runs in the background (and
 * kept when the database is down). Unknown keys are remembered for GW_KEYCACHE_NEG_TTL_MS.
 * Invalidation: an admin write (or the budget reset job) on this instance broadcasts (kind, id)
 * to every worker at once; writes on other instances arrive through the changes table, which
 * worker 0 polls every GW_KEYS_POLL_MS. A change drops only what it touches: kind key that
 * token; user, team, organization, team_membership the principals naming it; end_user and budget
 * the end users concerned (endusers.h) — a budget change also marks every principal stale, as a
 * budget row can be an organization's or a member's; any other kind drops everything.
 */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <h2o.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/store.h"

struct gw_worker;
struct gw_server;
struct gw_reqctx;

#define GW_KEY_LEN 25      /* "sk-" + 22 */
#define GW_KEY_HASH_LEN 64 /* SHA-256 hex */
#define GW_KEYCACHE_TTL_MS 30000
#define GW_KEYCACHE_NEG_TTL_MS 1000
#define GW_KEYCACHE_STALE_RETRY_MS 5000 /* database down: keep serving a stale entry, retry later */
#define GW_KEYCACHE_MAX 65536           /* entries per worker; past it the cache is swept */
#define GW_KEYS_POLL_MS 250
/* Rows of the changes table older than this are deleted (every GW_KEYS_PRUNE_EVERY-th poll, by
 * worker 0 of each instance): an instance that missed them for that long has reloaded every
 * cached entry since (GW_KEYCACHE_TTL_MS) anyway. */
#define GW_KEYS_CHANGES_KEEP_MS (3600 * 1000)
#define GW_KEYS_PRUNE_EVERY 240

/* ---- keys and hashes ------------------------------------------------------------------------ */

/** Writes a new key ("sk-" + 22 url-safe chars, NUL-terminated). Returns 0, or -1 (no entropy). */
int gw_key_generate(char out[GW_KEY_LEN + 1]);

/** SHA-256 of the key's bytes as 64 lowercase hex digits (NUL-terminated). */
void gw_key_hash_hex(const char *key, size_t len, char out[GW_KEY_HASH_LEN + 1]);

/** Same from a digest already computed. */
void gw_key_digest_hex(const unsigned char digest[32], char out[GW_KEY_HASH_LEN + 1]);

/** 1 when s is 64 lowercase hex digits (a token as stored), else 0. */
int gw_key_is_hash(const char *s);

/**
 * The token for a key as an admin request names it: a stored hash as it is, anything else
 * (a "sk-…" key) hashed. Returns 0, or -1 when key is NULL or empty.
 */
int gw_key_token_of(const char *key, char out[GW_KEY_HASH_LEN + 1]);

/** LiteLLM's display form "sk-...abcd" (last four characters) into out (at least 16 bytes). */
void gw_key_display_name(const char *key, char *out, size_t n);

/* ---- durations ---------------------------------------------------------------------------- */

/** A duration as LiteLLM writes them: seconds, or calendar months ("1mo"). */
typedef struct gw_duration {
    int64_t seconds;
    int32_t months;
} gw_duration_t;

/**
 * Parses "<n>s", "<n>m" (minutes), "<n>h", "<n>d", "<n>w", "<n>mo" (calendar months); n is a
 * positive decimal integer without sign or spaces; the result is bounded (at most 100 years).
 * Returns 0, or -1 when s is not such a duration.
 */
int gw_duration_parse(const char *s, gw_duration_t *d);

/**
 * unix_ms + d: months move the calendar month (the day is clamped to the month's last day, the
 * time of day kept, UTC). Returns 0, or -1 on overflow.
 */
int gw_duration_add(int64_t unix_ms, const gw_duration_t *d, int64_t *out);

/**
 * A budget period's length in milliseconds for budget_duration text: seconds as written, and
 * calendar months counted as 30 days each ("1mo" = 30 d). Budget periods are fixed lengths so
 * that the limiter (both backends, the Redis script included), the store's reset job and
 * budget_reset_at at creation compute the same period ends (gw_limits_period_next); a key's
 * expiry (`duration`) still moves by calendar months (gw_duration_add). Returns 0 when text is
 * NULL, empty or not a duration (no periodic reset).
 */
int64_t gw_duration_budget_ms(const char *text);

/* ---- principals --------------------------------------------------------------------------- */

/** Limits and money of one level of the hierarchy. -1 means "none" for every limit. */
typedef struct gw_level_limits {
    int64_t max_budget;  /* micro-dollars */
    int64_t soft_budget; /* micro-dollars */
    int64_t spend;       /* micro-dollars, as loaded */
    int64_t rpm, tpm, max_parallel;
    int64_t budget_reset_at_ms; /* 0 = none */
    char budget_duration[16];   /* "" = none */
} gw_level_limits_t;

/** Bytes of a precomputed scope id (GW_LIMITS_ID_MAX in limits.h), NUL included. */
#define GW_SCOPE_ID_MAX 128
/** Per-model entries a key may carry (model_max_budget / model_rpm_limit / model_tpm_limit). */
#define GW_MODEL_LIMITS_MAX 64

/**
 * One model's limits on a key (the key × model scope): from model_max_budget
 * ({"gpt-4o": {"budget_limit": 0.5, "time_period": "1d", "rpm_limit": n, "tpm_limit": n}}, or
 * LiteLLM's older {"gpt-4o": 0.5}) and from metadata.model_rpm_limit / model_tpm_limit
 * ({"gpt-4o": n}; LiteLLM keeps the /key/generate fields there). -1 means none.
 */
typedef struct gw_model_limit {
    char *model;                    /* the model name as the client sends it (model group) */
    char scope_id[GW_SCOPE_ID_MAX]; /* "<key hash>/<model>", or "<key hash>/#<sha256 prefix>" when long */
    int64_t max_budget;             /* micro-dollars */
    int64_t rpm, tpm;
    int64_t budget_duration_ms; /* time_period; 0 = the budget never resets */
    /* Periods are aligned to the clock ([now - now % duration, +duration), months as 30 days), so
     * instances and restarts agree without a stored reset time. The load seeds the spend of the
     * key on this model in the period it ran in from spend_logs, so a restart (or another
     * instance without Redis) does not forget it. */
    int64_t seed_spend;  /* micro-dollars */
    int64_t seed_end_ms; /* end of the seeded period; 0: no duration (all-time spend) */
} gw_model_limit_t;

/** The clock-aligned period of a key × model budget containing now_ms (see gw_model_limit_t). */
void gw_model_limit_period(const gw_model_limit_t *ml, int64_t now_ms, int64_t *start, int64_t *end);

/**
 * Parses a key's per-model limits (see gw_model_limit_t) into a new array (*out, *n; NULL/0 when
 * there are none). Entries that are not understood (negative amounts, bad durations) are
 * skipped, at most GW_MODEL_LIMITS_MAX are kept. token is the key's hash (for the scope ids).
 * Returns 0, or -1 on allocation failure. Free with gw_model_limits_free.
 */
int gw_model_limits_parse(const json_t *model_max_budget, const json_t *metadata, const char *token,
                          gw_model_limit_t **out, size_t *n);
void gw_model_limits_free(gw_model_limit_t *l, size_t n);

/**
 * The scope id "a/b" into out; when it would not fit, "a/#" + the first 32 hex digits of
 * SHA-256(b) (or "#" + 32 hex of SHA-256("a/b") when a alone is too long), so ids stay unique.
 */
void gw_scope_id_join(const char *a, const char *b, char out[GW_SCOPE_ID_MAX]);

typedef struct gw_principal {
    int refs;
    char token[GW_KEY_HASH_LEN + 1];
    char *key_alias, *user_id, *team_id, *org_id, *user_role; /* NULL when absent */
    json_t *models;       /* the key's allow-list (array); empty = no restriction of its own */
    json_t *team_models;  /* the team's allow-list, or NULL */
    json_t *aliases;      /* the key's model aliases {"asked": "routed"}, or NULL when none */
    json_t *team_aliases; /* the team's model_aliases, or NULL when none */
    int blocked;
    int team_blocked;
    int64_t expires_ms; /* 0 = never */
    gw_level_limits_t key, user, team, org;
    /* The team member (team_membership of user_id in team_id with a budget_id): its budget's
     * limits, spend from team_membership.spend. has_member = 0 when there is none or it sets no
     * limit; member_id is "user_id/team_id" (gw_scope_id_join). */
    int has_member;
    gw_level_limits_t member;
    char member_id[GW_SCOPE_ID_MAX];
    gw_model_limit_t *model_limits; /* per-model limits of the key, parsed at load */
    size_t n_model_limits;
} gw_principal_t;

/** Builds a principal (refs 1) from a row of the load query; NULL on allocation failure. */
gw_principal_t *gw_principal_from_row(const json_t *row);
void gw_principal_ref(gw_principal_t *p);
/** Drops a reference; frees at zero. NULL is a no-op. */
void gw_principal_release(gw_principal_t *p);
/** 1 when the key (and its team) may call model. */
int gw_principal_model_allowed(const gw_principal_t *p, const char *model);
/** 1 when the key's or the team's allow-list restricts the models at all. */
int gw_principal_restricted(const gw_principal_t *p);
/** 1 when the key's user has user_role proxy_admin. */
int gw_principal_is_admin(const gw_principal_t *p);
/** The key's limits for model (the client's model name), or NULL when it has none. */
const gw_model_limit_t *gw_principal_model_limit(const gw_principal_t *p, const char *model);

/** The load job's SQL (one statement, $1 = token); exposed for tests. */
extern const char gw_principal_load_sql[];

/* ---- the per-worker cache ------------------------------------------------------------------- */

typedef struct gw_keycache gw_keycache_t;

/** Continuation of a parked request: runs on the worker's loop once its principal is known. */
typedef void (*gw_auth_cont_fn)(struct gw_reqctx *rc);

/**
 * Creates the worker's cache and registers its receivers (store completions, invalidation
 * broadcasts) on w->queue. Worker thread, at start.
 */
gw_keycache_t *gw_keycache_create(struct gw_worker *w);
/** Unregisters and frees. Call only when no job of this worker is in flight. */
void gw_keycache_destroy(gw_keycache_t *kc);

/** Frees invalidation messages that arrived after the worker stopped (all threads joined). */
void gw_keys_drop_messages(struct gw_worker *w);

/**
 * Authenticates rc as the virtual key whose token is given (the master key was already ruled
 * out). Returns 0 when the principal is known now (rc->principal set, checks passed), -1 when
 * an error reply was sent, 1 when the request is parked: cont(rc) runs later on this loop after
 * the checks passed (on failure the error reply is sent instead and cont never runs). A client
 * that leaves while parked is unlinked by gw_keys_request_dispose.
 */
int gw_keys_authenticate(struct gw_reqctx *rc, const char token[GW_KEY_HASH_LEN + 1], gw_auth_cont_fn cont);

/** Request teardown: unparks rc and drops its principal. */
void gw_keys_request_dispose(struct gw_reqctx *rc);

/**
 * Tells every worker of the server to drop what it caches for (kind, id), as described under
 * Cache above ("all" drops everything). Thread-safe.
 */
void gw_keys_broadcast(struct gw_server *s, const char *kind, const char *id);

/**
 * Queues a store job on behalf of worker w: counts it as in flight until its done callback calls
 * gw_keys_job_done(w), so that the worker does not exit with a completion still to come.
 */
int gw_keys_submit(struct gw_worker *w, gw_store_job_fn job, gw_store_done_fn done, void *ud);
void gw_keys_job_done(struct gw_worker *w);

/** Worker 0 starts the changes poll; stopped by gw_keys_stop_poll (drain). */
void gw_keys_start_poll(struct gw_worker *w);
void gw_keys_stop_poll(struct gw_worker *w);

/**
 * Store thread: deletes changes rows older than GW_KEYS_CHANGES_KEEP_MS before now_ms; *deleted
 * (may be NULL) gets the count. Returns a GW_STORE_* status. The poll runs it now and then.
 */
int gw_keys_prune_changes(gw_store_conn_t *c, int64_t now_ms, int64_t *deleted);

/** Start-up, blocking: the largest change seq so far, so that the poll starts after it. */
int gw_keys_init_seq(gw_store_t *st, int64_t *seq, char *err, size_t errlen);

#endif
