/*
 * models.h — the model table: public model names (LiteLLM "model groups") to deployments.
 *
 * Built once from the config, read-only afterwards (shared by all workers without locks). A name
 * that appears on several model_list entries forms a group, and a request picks one deployment by
 * weight. Names with '*' are patterns ("*", "claude-*"): the text the '*' matched replaces the '*'
 * of the deployment's upstream model, as in LiteLLM's wildcard routing.
 */
#ifndef GW_MODELS_H
#define GW_MODELS_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/config.h"
#include "gateway/pricing.h"
#include "gateway/upstream.h"

/** One deployment ready to be called: adapter, URLs and prebuilt upstream headers. */
typedef struct gw_route {
    const gw_deployment_t *dep;
    const ad_adapter_t *ad;
    ad_deployment_t addep;
    char *url_chat;             /* api_base + "/chat/completions" (for passthrough adapters) */
    char *url_embeddings;       /* api_base + "/embeddings" */
    struct curl_slist *headers; /* Authorization, Content-Type, Expect: */
    gw_h1_headers_t h1_headers; /* the same list as HTTP/1.1 header lines, for http:// upstreams */
    json_t *params;             /* litellm_params with environment fallbacks, when any applied (owned) */
    gw_price_t price;           /* resolved at start (wildcard routes: per request) */
    int priced;                 /* a price was found (table or overrides) */
    int is_mock;
    int wildcard; /* upstream_model contains '*' to be filled per request */
    /* the group this deployment serves */
    const struct gw_model_group *group;
} gw_route_t;

typedef struct gw_model_group {
    char *name;
    gw_route_t **routes;
    size_t n_routes;
    double total_weight;
    int is_pattern;
    size_t prefix_len; /* for patterns: characters before the '*' */
    /* The group's capacity as the model scope of admission (limits.h GW_SCOPE_MODEL, id = name):
     * the sum of its deployments' rpm / tpm / litellm_params.max_parallel_requests when every
     * deployment sets it, else -1 (no limit). limited = any of them is set. */
    int64_t rpm, tpm, max_parallel;
    int limited;
} gw_model_group_t;

typedef struct gw_models {
    gw_route_t *routes;
    size_t n_routes;
    gw_model_group_t *groups;
    size_t n_groups;
    size_t *hash; /* open addressing over exact groups: index+1, 0 = empty */
    size_t hash_cap;
} gw_models_t;

/** Builds the table. Returns NULL with err set (e.g. a provider no adapter handles). */
gw_models_t *gw_models_create(const gw_config_t *cfg, char *err, size_t errlen);
void gw_models_destroy(gw_models_t *m);

/**
 * Finds the group for a client's model name (len bytes, not NUL-terminated). For a pattern
 * match, *star receives the matched text span. NULL when no group serves the name.
 */
const gw_model_group_t *gw_models_lookup(const gw_models_t *m, const char *name, size_t len,
                                         const char **star, size_t *star_len);

/** Picks a deployment of the group by weight; r is a uniform random 64-bit value. */
const gw_route_t *gw_models_pick(const gw_model_group_t *g, uint64_t r);

/** Writes the GET /v1/models body ({"object":"list","data":[…]}) for the exact names. */
int gw_models_list_json(const gw_models_t *m, int64_t created, ad_buf_t *out);

#endif
