/*
 * spend_api.h — LiteLLM's spend read endpoints over the store: GET /spend/logs,
 * GET /global/spend/report, GET /user/daily/activity, and the LiteLLM UI's GET /global/spend,
 * /global/spend/keys and /global/spend/models (the last 30 days, from the daily rollups: fast at
 * millions of spend rows). Queries run as store jobs (never on a loop); money leaves as LiteLLM's
 * float dollars (the store holds micro-dollars).
 */
#ifndef GW_SPEND_API_H
#define GW_SPEND_API_H

#include <h2o.h>
#include <jansson.h>

#include "gateway/store.h"

typedef enum gw_spend_api_kind {
    GW_SPEND_API_LOGS = 1,   /* /spend/logs */
    GW_SPEND_API_REPORT = 2, /* /global/spend/report */
    GW_SPEND_API_DAILY = 3,  /* /user/daily/activity */
    GW_SPEND_API_KEYS = 4,   /* /global/spend/keys: keys by spend, last 30 days */
    GW_SPEND_API_MODELS = 5, /* /global/spend/models: models by spend, last 30 days */
    GW_SPEND_API_GLOBAL = 6, /* /global/spend: total spend of the last 30 days and the proxy budget */
} gw_spend_api_kind_t;

/** Rows /spend/logs returns at most (LiteLLM has no cap; we must have one). */
#define GW_SPEND_API_MAX_ROWS 1000
/** Bytes of a query string accepted. */
#define GW_SPEND_API_MAX_QUERY 4096

/** A parsed request: filled by gw_spend_api_parse on the loop, answered by gw_spend_api_job. */
typedef struct gw_spend_query {
    gw_spend_api_kind_t kind;
    char api_key[72];  /* keys.token; an "sk-…" key in the query is hashed */
    char user_id[257]; /* /spend/logs user_id, report internal_user_id, daily user_id */
    char request_id[257];
    char team_id[257];
    char customer_id[257];
    char model[257];
    char group_by[16];               /* report: team (default) | customer | api_key */
    char start_day[11], end_day[11]; /* YYYY-MM-DD (daily activity) */
    int64_t start_ms, end_ms;        /* [start, end) */
    int has_range;
    int summarize; /* /spend/logs: 1 = per-day totals (LiteLLM's default with dates) */
    int64_t page, page_size;
    int64_t limit;            /* /global/spend/keys|models: rows at most (default 100, max 1000) */
    int64_t now_ms;           /* the "last 30 days" end (set by the handler; tests may fix it) */
    double global_max_budget; /* /global/spend: litellm_settings.max_budget in dollars (0: none) */
    json_t *result;           /* out: the response body (caller decrefs) */
} gw_spend_query_t;

/**
 * Parses a query string (without '?', length len) for kind into q. Returns 0, or -1 with a
 * client-facing message in err (bad date, missing start_date/end_date where LiteLLM requires
 * them, bad group_by, page out of range).
 */
int gw_spend_api_parse(gw_spend_api_kind_t kind, const char *query, size_t len, gw_spend_query_t *q,
                       char *err, size_t errlen);

/** A store job (ud = gw_spend_query_t *): runs the query and sets q->result. */
int gw_spend_api_job(gw_store_conn_t *c, void *ud);

/** What the HTTP handlers need from the server; copied at registration. */
typedef struct gw_spend_api_conf {
    gw_store_t *store;
    /** The store receiver of the worker serving req (registered with gw_store_register_receiver). */
    h2o_multithread_receiver_t *(*receiver)(h2o_req_t *req, void *ctx);
    /** Admin check: returns 0 to proceed, or replies (401/403) itself and returns -1. */
    int (*authorize)(h2o_req_t *req, void *ctx);
    void *ctx;
    double global_max_budget; /* litellm_settings.max_budget (dollars), for /global/spend; 0: none */
} gw_spend_api_conf_t;

/**
 * Registers the GET routes above on hostconf (before the server starts, like
 * gw_handlers_register); each answers its exact path only. Errors answer in OpenAI's error shape.
 */
void gw_spend_api_register(h2o_hostconf_t *hostconf, const gw_spend_api_conf_t *conf);

#endif
