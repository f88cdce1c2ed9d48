/*
 * limits.h — rate limits and budgets: exact admission with reservations, settled after the call.
 *
 * One limiter per process (gw_limits_create). Before a model call the request path describes
 * every scope that applies to it — the key, its user, its team, the team member, the end user,
 * the organization, the model, the key's per-model budget, the global limits — each with its
 * rpm / tpm / max_parallel limits and its budget, plus an estimate of the call's tokens and
 * micro-dollars and the request id. gw_limits_admit answers ADMITTED or which limit refused.
 * Admission is atomic across all scopes: either every counter of every scope was incremented and
 * the estimate reserved, or nothing changed. After the call, gw_limits_settle(request id, actual
 * tokens, actual micro-dollars) releases the reservation and books the real amounts;
 * gw_limits_release(request id) on failure or disconnect gives the reservation back. A
 * reservation that is neither settled nor released expires after the reservation TTL, so a crash
 * (of the caller or of a whole instance, with Redis) cannot leak capacity.
 *
 * Semantics (the same for both backends; tests hold them to it):
 *   rpm  — FIXED 60-second windows aligned to the clock's minute (unix ms / 60000). A request
 *          counts in the window it is admitted in, and is never refunded (a failed request was
 *          still a request). Within a window rpm is exact: a burst of 20 against rpm 5 admits
 *          exactly 5, on one instance or many. Across a window boundary up to 2×rpm may pass in
 *          60 s (the price of an exact, O(1) counter; LiteLLM's limiter has the same shape).
 *   tpm  — the same windows, counting tokens. Admission reserves the estimate (tokens used in the
 *          window + estimate <= tpm_limit); settle replaces the estimate by the actual tokens in
 *          the window the request was admitted in (if that window is over, the correction is
 *          dropped); release gives the estimate back.
 *   max_parallel — reservations alive now (admitted, not yet settled/released/expired).
 *   budget — spend in the current period + reserved estimates + this estimate <= max_budget.
 *          The store's known spend for the period seeds the counter: the engine keeps
 *          max(its own, the caller's) so a value from the database (other instances, a restart)
 *          is never ignored and spend the engine settled before the database saw it is never
 *          forgotten. With a budget_duration the period rolls over when its end passes: spend
 *          restarts at 0 and the new period end is reported (gw_limits_period_t). The engine never
 *          writes the store: the store's reset job (budgets.h) persists the same period end
 *          (gw_limits_period_next) and spend 0 within about a second of it. Overspend is bounded
 *          by the estimate error of the requests in flight (a request that costs more than its
 *          estimate is still booked in full).
 * A limit of GW_LIMITS_NONE (-1) means "no limit"; 0 means "nothing allowed". Checks run scope by
 * scope in the order given, and within a scope: max_parallel, rpm, tpm, budget; the first that
 * fails is reported.
 *
 * Backends.
 *   local — one process: a hash table of scopes and one of reservations behind one mutex, shared
 *          by all worker threads. Exact; an admit + settle of 4 scopes costs ~0.5 µs
 *          uncontended, ~0.9 µs with 2 threads hammering it (tests/bench/limits_bench.c, -O2,
 *          2-core VM) — under 1% of a request's ~100 µs CPU.
 *   redis — many instances share counters in Redis through one Lua script (EVALSHA, loaded with
 *          SCRIPT LOAD at connect and re-sent with EVAL on NOSCRIPT) that reads the clock with
 *          Redis TIME, so instances with skewed clocks agree. One script call per admission,
 *          covering every scope. Cluster: every key carries the one hash tag {tollgate}, so all
 *          of the limiter's keys live in one slot and a script sees every scope atomically;
 *          KEYS[1] is declared for routing and the other keys share its slot. The limiter's load
 *          therefore lands on one shard (one EVALSHA per admission and per settlement).
 *          I/O is hiredis's async API on each worker's own h2o loop (gw_limits_loop_attach):
 *          the connection's fd is watched with h2o_evloop_socket_create(…, DONT_READ), nothing
 *          blocks, and callbacks run on that loop. Host names are resolved once at create.
 *   Redis unavailable (connection refused or lost, or no reply within redis_timeout_ms):
 *   fail_open admits through the local backend (limits then hold per instance), fail_closed
 *   answers GW_LIMITS_UNAVAILABLE (a 503). gw_limits_redis_ok reports the state for readiness;
 *   the connection is retried with backoff (100 ms doubling to 2 s).
 *
 * Threads. gw_limits_create/destroy run off the loops (start-up). gw_limits_loop_attach,
 * gw_limits_admit, gw_limits_settle, gw_limits_release and gw_limits_loop_detach run on the
 * loop the handle belongs to. gw_limits_redis_ok and gw_limits_local_stats are thread-safe.
 */
#ifndef GW_LIMITS_H
#define GW_LIMITS_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

typedef struct gw_limits gw_limits_t;
/** A limiter's handle on one event loop. */
typedef struct gw_limits_loop gw_limits_loop_t;

/** "No limit" for rpm / tpm / max_parallel / max_budget. */
#define GW_LIMITS_NONE (-1)
/** Scopes in one admission at most. */
#define GW_LIMITS_MAX_SCOPES 12
/** Bytes of a scope id or request id, NUL included (longer ones are refused as invalid). */
#define GW_LIMITS_ID_MAX 128
/** Default reservation TTL: a call that runs longer keeps working but its reservation lapses. */
#define GW_LIMITS_DEFAULT_TTL_MS (15 * 60 * 1000)
/** Default ceiling of the local scope table (entries; idle ones are evicted past it). */
#define GW_LIMITS_DEFAULT_MAX_SCOPES 1000000

typedef enum gw_limits_backend {
    GW_LIMITS_LOCAL = 0,
    GW_LIMITS_REDIS = 1,
} gw_limits_backend_t;

typedef enum gw_limits_kind {
    GW_SCOPE_KEY = 0,
    GW_SCOPE_USER,
    GW_SCOPE_TEAM,
    GW_SCOPE_TEAM_MEMBER, /* id "user_id/team_id" */
    GW_SCOPE_END_USER,
    GW_SCOPE_ORG,
    GW_SCOPE_MODEL,     /* a model group's limits, or a deployment's rpm/tpm */
    GW_SCOPE_KEY_MODEL, /* a key's model_max_budget / per-model limits: id "<key hash>/<model>" */
    GW_SCOPE_GLOBAL,    /* id "" (or a name) */
    GW_SCOPE_KIND_COUNT
} gw_limits_kind_t;

/** Which limit refused. */
typedef enum gw_limits_which {
    GW_LIMIT_NONE = 0,
    GW_LIMIT_PARALLEL,
    GW_LIMIT_RPM,
    GW_LIMIT_TPM,
    GW_LIMIT_BUDGET,
} gw_limits_which_t;

typedef enum gw_limits_verdict {
    GW_LIMITS_ADMITTED = 0,
    GW_LIMITS_REFUSED = 1,     /* a limit or budget: 429 with the details in the result */
    GW_LIMITS_UNAVAILABLE = 2, /* Redis down with fail_closed, or the local table is full: 503 */
    GW_LIMITS_INVALID = 3,     /* bad arguments (too many scopes, id too long, duplicate request
                                * id still reserved, negative estimate): a bug in the caller */
} gw_limits_verdict_t;

/** Clock in unix milliseconds; injectable for tests. */
typedef int64_t (*gw_limits_clock_fn)(void *ud);

typedef struct gw_limits_config {
    gw_limits_backend_t backend;
    /* Redis: host (name or address), port, password (secret: never logged), db number. */
    const char *redis_host;
    int redis_port;
    const char *redis_password;
    int redis_db;
    int fail_closed;            /* 0: fail_open (default), 1: fail_closed */
    int64_t reservation_ttl_ms; /* 0: GW_LIMITS_DEFAULT_TTL_MS */
    int64_t redis_timeout_ms;   /* no reply within this: the connection is dropped; 0: 1000 */
    size_t max_scopes;          /* local table ceiling; 0: GW_LIMITS_DEFAULT_MAX_SCOPES */
    gw_limits_clock_fn clock;   /* local backend's clock; NULL: CLOCK_REALTIME */
    void *clock_ud;
    /* Key prefix in Redis before the hash tag ("" default); tests isolate runs with it. */
    const char *redis_prefix;
} gw_limits_config_t;

/**
 * Fills cfg from the configuration as LiteLLM reads it: REDIS_URL
 * (redis://[:password@]host[:port][/db]), else router_settings.redis_host / redis_port /
 * redis_password (also litellm_settings.cache_params.host/port/password), else REDIS_HOST /
 * REDIS_PORT / REDIS_PASSWORD; any of them selects the redis backend. general_settings
 * (or tollgate_settings) `limits_failure_mode: fail_open|fail_closed` and
 * `limits_reservation_ttl_ms` set the rest. Strings point into c or the environment, or into
 * buf (which must outlive cfg). Returns 0, or -1 with a message in err (malformed URL or port).
 */
int gw_limits_config_from(const gw_config_t *c, gw_limits_config_t *cfg, char *buf, size_t buflen, char *err,
                          size_t errlen);

/**
 * Parses a redis:// URL into cfg (host, port, password, db), strings stored in buf.
 * Returns 0 or -1 with a message in err.
 */
int gw_limits_parse_redis_url(const char *url, gw_limits_config_t *cfg, char *buf, size_t buflen, char *err,
                              size_t errlen);

/**
 * Creates the limiter. The config is copied. For Redis, the host name is resolved here (blocking:
 * call at start-up) and no connection is made until a loop attaches. Returns NULL with err set.
 */
gw_limits_t *gw_limits_create(const gw_limits_config_t *cfg, char *err, size_t errlen);

/** Destroys the limiter; every loop must have detached. NULL is a no-op. */
void gw_limits_destroy(gw_limits_t *lim);

/**
 * Attaches the limiter to an event loop (on that loop's thread): with Redis, starts this loop's
 * async connection. Returns NULL on allocation failure.
 */
gw_limits_loop_t *gw_limits_loop_attach(gw_limits_t *lim, h2o_evloop_t *loop);

/**
 * Detaches (on the loop's thread): Redis commands still pending complete at once, admissions as
 * if Redis were down (fail_open: local, fail_closed: UNAVAILABLE). The loop must run once more
 * afterwards so the connection's socket is released. NULL is a no-op.
 */
void gw_limits_loop_detach(gw_limits_loop_t *lp);

/** One scope of an admission. Strings are borrowed for the duration of gw_limits_admit. */
typedef struct gw_limits_scope {
    gw_limits_kind_t kind;
    const char *id;             /* NUL-terminated, shorter than GW_LIMITS_ID_MAX; NULL = "" */
    int64_t rpm_limit;          /* GW_LIMITS_NONE or >= 0 */
    int64_t tpm_limit;          /* GW_LIMITS_NONE or >= 0 */
    int64_t max_parallel;       /* GW_LIMITS_NONE or >= 0 */
    int64_t max_budget_micros;  /* GW_LIMITS_NONE or >= 0 */
    int64_t spend_micros;       /* the period's spend as the store knows it (>= 0) */
    int64_t budget_duration_ms; /* 0: no periodic reset */
    int64_t budget_reset_at_ms; /* end of the period spend_micros belongs to (the store's
                                 * budget_reset_at); 0: unknown — a period then starts at first
                                 * sight. A stale value (older than the engine's) is ignored with
                                 * its spend. */
} gw_limits_scope_t;

typedef struct gw_limits_req {
    const char *request_id; /* unique per call; the handle for settle / release */
    const gw_limits_scope_t *scopes;
    size_t n_scopes;    /* 0..GW_LIMITS_MAX_SCOPES */
    int64_t est_tokens; /* >= 0: prompt estimate + max_tokens (or a configured default) */
    int64_t est_micros; /* >= 0: the cost of est_tokens */
} gw_limits_req_t;

/** A budget period as the engine sees it after an admission, per scope in request order. */
typedef struct gw_limits_period {
    int64_t reset_at_ms;  /* end of the current period (0: no duration) */
    int64_t spend_micros; /* settled spend in this period, as the engine counts it */
    int rolled;           /* 1: the caller's budget_reset_at is not this period's end (the period
                           * rolled since the caller's copy was read); the store's reset job
                           * persists it (budgets.h), the caller need not */
} gw_limits_period_t;

/**
 * The end of the budget period that contains now_ms, for a period that ended (or ends) at end_ms
 * and repeats every dur_ms: end_ms while now_ms < end_ms, else end_ms + k × dur_ms with k the
 * number of whole durations since end_ms plus one (saturating at INT64_MAX). The one rule for a
 * period's next end: the engine (both backends; the Redis script computes the same), the store's
 * reset job (budgets.h) and therefore budget_reset_at all use it, so they agree on the instant.
 * dur_ms <= 0: end_ms. Pure; any thread.
 */
int64_t gw_limits_period_next(int64_t end_ms, int64_t now_ms, int64_t dur_ms);

typedef struct gw_limits_result {
    gw_limits_verdict_t verdict;
    /* REFUSED: which scope and limit; remaining = what is left (may be less than the ask). */
    gw_limits_kind_t kind;
    char id[GW_LIMITS_ID_MAX];
    gw_limits_which_t which;
    int64_t limit;
    int64_t remaining;
    int64_t reset_at_ms;   /* when the refusing limit frees up (window end, period end), 0: never */
    int64_t retry_after_s; /* seconds for Retry-After (>= 1), 0: no point retrying (budget
                            * without a period) */
    /* For x-ratelimit-* headers, ADMITTED or REFUSED: the tightest rpm and tpm among the scopes
     * (remaining after this request when admitted); limit < 0 when no scope has one. */
    int64_t limit_requests, remaining_requests, reset_requests_ms;
    int64_t limit_tokens, remaining_tokens, reset_tokens_ms;
    gw_limits_period_t periods[GW_LIMITS_MAX_SCOPES];
    size_t n_periods;
    int via_redis; /* 1: decided by Redis; 0: by the local backend (also fail_open fallback) */
} gw_limits_result_t;

/** Runs once per admission on the caller's loop; res is valid during the call only. */
typedef void (*gw_limits_admit_cb)(void *ud, const gw_limits_result_t *res);
/** Runs once per settle / release when given; found = 0 when the reservation was unknown
 *  (settled already, expired, or Redis unavailable). */
typedef void (*gw_limits_done_cb)(void *ud, int found);

/**
 * Admits one call. cb runs exactly once: with the local backend (and with Redis down) before
 * gw_limits_admit returns; with Redis when the reply arrives, on lp's loop. req and its strings
 * are copied as needed; they need not outlive the call. If the caller's request is gone by the
 * time cb runs with ADMITTED, the caller must gw_limits_release it (or let the TTL do it).
 */
void gw_limits_admit(gw_limits_loop_t *lp, const gw_limits_req_t *req, gw_limits_admit_cb cb, void *ud);

/**
 * Settles: books actual_tokens in the tpm windows and actual_micros as spend of every scope of
 * the reservation (in each scope's current period), and ends the reservation. done (may be NULL)
 * runs once, like cb above. A settlement of an unknown or expired reservation books nothing (the
 * store still records the spend and re-seeds the engine through spend_micros).
 */
void gw_limits_settle(gw_limits_loop_t *lp, const char *request_id, int64_t actual_tokens,
                      int64_t actual_micros, gw_limits_done_cb done, void *ud);

/** Ends a reservation without spend (failure before any usage, client gone). */
void gw_limits_release(gw_limits_loop_t *lp, const char *request_id, gw_limits_done_cb done, void *ud);

/** 1 when the Redis backend is connected on every attached loop (always 1 for local). */
int gw_limits_redis_ok(const gw_limits_t *lim);
/** 1 when limits are shared through Redis; *fail_closed (may be NULL) gets the failure mode. */
int gw_limits_uses_redis(const gw_limits_t *lim, int *fail_closed);

/** "key", "user", "team", "team_member", "end_user", "org", "model", "key_model", "global". */
const char *gw_limits_kind_name(gw_limits_kind_t k);
/** "max_parallel_requests", "rpm_limit", "tpm_limit", "max_budget", "" — LiteLLM's field names. */
const char *gw_limits_which_name(gw_limits_which_t w);

/** What the local table holds now (tests, metrics). */
typedef struct gw_limits_stats {
    size_t scopes;
    size_t reservations;
} gw_limits_stats_t;
void gw_limits_local_stats(gw_limits_t *lim, gw_limits_stats_t *out);

/**
 * Local backend, synchronous (tests and the fail_open path use it; the request path goes through
 * gw_limits_admit). Thread-safe.
 */
void gw_limits_local_admit(gw_limits_t *lim, const gw_limits_req_t *req, gw_limits_result_t *res);
int gw_limits_local_settle(gw_limits_t *lim, const char *request_id, int64_t actual_tokens,
                           int64_t actual_micros);
int gw_limits_local_release(gw_limits_t *lim, const char *request_id);
/** Releases every reservation past its TTL (admissions also do it); returns how many. */
size_t gw_limits_local_expire(gw_limits_t *lim);

#endif
