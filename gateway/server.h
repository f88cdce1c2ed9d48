/*
 * server.h — the process: N worker threads, each owning one h2o event loop, its own
 * SO_REUSEPORT listener, a libcurl multi handle driven by that loop, and per-thread counters.
 * No request ever hops threads. Shared state (config, model table) is read-only after start.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <h2o.h>
#include <pthread.h>
#include <stdint.h>

#include "adapters/buf.h"
#include "gateway/config.h"

/** The request log is flushed after every loop iteration, or sooner past this many bytes. */
#define GW_LOG_FLUSH_AT (64u * 1024)

struct gw_upstream;
struct gw_models;
struct gw_pricing;
struct gw_limits;
struct gw_limits_loop;
struct gw_spend;
struct gw_spend_batch;
struct gw_store;
struct gw_keycache;
struct gw_loadcache;

typedef struct gw_server gw_server_t;

/** Per-thread state. Reached from a request with gw_worker_of(req). */
typedef struct gw_worker {
    h2o_context_t ctx; /* first member: &ctx == the worker */
    h2o_evloop_t *loop;
    gw_server_t *server;
    unsigned id;
    pthread_t tid;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    struct gw_upstream *up;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t ctl;
    uint64_t active; /* requests in flight on this worker */
    int draining;    /* stopped accepting; exit when active reaches 0 */
    uint64_t drain_deadline;
    h2o_timeout_entry_t drain_timer;
    uint64_t rng[2]; /* xorshift128+ for request ids and routing */
    uint64_t seq;
    h2o_timeout_t *timeouts[16]; /* lazily created fixed-duration lists, see gw_worker_timeout */
    uint64_t timeout_ms[16];
    size_t n_timeouts;
    ad_buf_t logbuf; /* request log lines, written once per loop iteration */
    time_t log_sec;  /* the second log_sec_text shows */
    char log_sec_text[32];
    /* virtual keys (keys.c): the cache, store completions, invalidations, the changes poll */
    struct gw_keycache *keys;
    struct gw_loadcache *endusers;       /* end users' limits (endusers.c) */
    h2o_multithread_receiver_t store_rx; /* completions of this worker's store jobs */
    struct gw_limits_loop *lim;          /* this loop's handle on the limiter */
    h2o_multithread_receiver_t keys_rx;  /* cache invalidation broadcasts */
    uint64_t store_jobs;                 /* store jobs in flight: the worker waits for them */
    h2o_timeout_entry_t poll_timer;      /* worker 0: polls the changes table */
    int poll_inflight;
    unsigned poll_count;             /* polls started: every GW_KEYS_PRUNE_EVERY-th also prunes old changes */
    h2o_timeout_entry_t reset_timer; /* worker 0: the budget reset job (budgets.h) */
    int reset_inflight;
    struct gw_spend_batch *spendq; /* this loop's spend records, written once per iteration */
} gw_worker_t;

struct gw_server {
    gw_config_t *cfg;
    struct gw_models *models;
    struct gw_pricing *pricing; /* price table, read-only */
    struct gw_limits *limits;   /* rate limits and budgets (limits.h) */
    struct gw_spend *spend;     /* the spend journal and its writer (spend.h) */
    /* litellm_settings.max_budget (policy.h); NULL: none */
    struct gw_policy_global *global_budget;
    /* LiteLLM's config-level model aliases, looked up once at start (NULL when absent):
     * litellm_settings.model_alias_map, router_settings.model_group_alias (call.c) */
    const struct json_t *alias_maps[2];
    h2o_globalconf_t globalconf;
    gw_worker_t *workers;
    unsigned n_workers;
    int port;
    time_t started_at;
    volatile int draining;             /* set once SIGTERM arrived; read by readiness */
    unsigned char master_key_hash[32]; /* SHA-256 of the master key, compared in constant time */
    char *models_json;                 /* prebuilt GET /v1/models body */
    size_t models_json_len;
    struct gw_store *store; /* the database (store.h); opened and migrated at start-up */
    int64_t changes_seq;    /* largest changes.seq seen (worker 0's poll) */
    volatile int db_status; /* last store status seen by the poll: 0 ok, < 0 gw_store_status_t */
};

static inline gw_worker_t *gw_worker_of(h2o_req_t *req)
{
    return (gw_worker_t *)req->conn->ctx;
}

/** Builds the server from a loaded config (kept, not copied). Returns NULL with err set. */
gw_server_t *gw_server_create(gw_config_t *cfg, char *err, size_t errlen);
/** Binds, starts workers, waits for SIGTERM/SIGINT, drains, joins. Returns the exit code. */
int gw_server_run(gw_server_t *s);
void gw_server_destroy(gw_server_t *s);

/** A timeout list with a fixed duration of ms on this worker's loop (created on demand). */
h2o_timeout_t *gw_worker_timeout(gw_worker_t *w, uint64_t ms);
/** Next pseudo-random 64 bits (not for secrets). */
uint64_t gw_worker_rand(gw_worker_t *w);
/** Writes the worker's buffered request-log lines to stdout. */
void gw_worker_flush_log(gw_worker_t *w);
/** Called when a request finishes; lets a draining worker exit. */
void gw_worker_request_done(gw_worker_t *w);

#endif
