/*
 * models.c — model groups, wildcard patterns and weighted choice (see models.h).
 */
#include "gateway/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_OPENAI_BASE "https://api.openai.com/v1"

/*
 * What LiteLLM fills in when a deployment leaves it out: the provider's public base URL and the
 * environment variable that holds its key. Data, not code: one row per provider.
 */
static const struct {
    const char *provider, *api_base, *key_env;
} provider_defaults[] = {
    {"openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"text-completion-openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
    {"mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"},
    {"together_ai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"},
    {"deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
    {"openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
    {"fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"},
    {"xai", "https://api.x.ai/v1", "XAI_API_KEY"},
    {"perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"},
    {"cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"},
    {"nvidia_nim", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"},
    {"github", "https://models.inference.ai.azure.com", "GITHUB_API_KEY"},
    {"lm_studio", "http://localhost:1234/v1", "LM_STUDIO_API_KEY"},
    {"hosted_vllm", "http://localhost:8000/v1", "HOSTED_VLLM_API_KEY"},
    {"vllm", "http://localhost:8000/v1", "HOSTED_VLLM_API_KEY"},
    {"llamafile", "http://localhost:8080/v1", NULL},
    {"anthropic", NULL, "ANTHROPIC_API_KEY"},
    {"gemini", NULL, "GEMINI_API_KEY"},
    {"azure", NULL, "AZURE_API_KEY"},
    {"openwebui", NULL, "OPENWEBUI_API_KEY"},
};

/* litellm_params that fall back to environment variables (AWS's standard names for Bedrock). */
static const struct {
    const char *provider, *param, *env;
} param_env[] = {
    {"bedrock", "aws_access_key_id", "AWS_ACCESS_KEY_ID"},
    {"bedrock", "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"},
    {"bedrock", "aws_session_token", "AWS_SESSION_TOKEN"},
    {"bedrock", "aws_region_name", "AWS_REGION"},
    {"bedrock", "aws_region_name", "AWS_DEFAULT_REGION"},
    {"azure", "api_version", "AZURE_API_VERSION"},
};

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static char *join_url(const char *base, const char *suffix)
{
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *u = malloc(n);
    if (u != NULL)
        snprintf(u, n, "%s%s", base, suffix);
    return u;
}

/* Start-up only (before any worker runs): getenv is safe here. */
static void apply_defaults(gw_route_t *r, const gw_deployment_t *d)
{
    for (size_t i = 0; i < sizeof(provider_defaults) / sizeof(provider_defaults[0]); i++) {
        if (strcmp(provider_defaults[i].provider, d->provider) != 0)
            continue;
        if (r->addep.api_base == NULL)
            r->addep.api_base = provider_defaults[i].api_base;
        if (r->addep.api_key == NULL && provider_defaults[i].key_env != NULL)
            r->addep.api_key = getenv(provider_defaults[i].key_env);
    }
    for (size_t i = 0; i < sizeof(param_env) / sizeof(param_env[0]); i++) {
        const char *v = getenv(param_env[i].env);
        json_t *cur = r->params != NULL ? json_object_get(r->params, param_env[i].param) : NULL;
        if (strcmp(param_env[i].provider, d->provider) != 0 || v == NULL ||
            (cur != NULL && !json_is_null(cur)))
            continue;
        if (r->params == NULL)
            r->params = d->litellm_params != NULL ? json_deep_copy(d->litellm_params) : json_object();
        json_object_set_new(r->params, param_env[i].param, json_string(v));
    }
    if (r->params != NULL)
        r->addep.params = r->params;
    if (strcmp(d->provider, "azure") == 0 && r->addep.api_version == NULL) {
        json_t *v = r->params != NULL ? json_object_get(r->params, "api_version") : NULL;
        if (json_is_string(v))
            r->addep.api_version = json_string_value(v);
    }
}

static int build_route(gw_route_t *r, const gw_deployment_t *d, char *err, size_t errlen)
{
    r->dep = d;
    r->ad = ad_adapter_find(d->provider);
    if (r->ad == NULL) {
        /* served configs keep working for every other model; requests for this one get a clear
         * error (call.c) and the start-up log names it */
        fprintf(stderr,
                "{\"level\":\"warn\",\"msg\":\"provider not supported yet; requests for this model will "
                "fail\",\"model_list_index\":%zu,\"provider\":\"%s\"}\n",
                d->index, d->provider);
        r->dep = d;
        return 0;
    }
    r->is_mock = r->ad == &ad_mock;
    r->wildcard = d->upstream_model != NULL && strchr(d->upstream_model, '*') != NULL;
    r->addep.provider = d->provider;
    r->addep.upstream_model = d->upstream_model;
    r->addep.api_base = d->api_base;
    r->addep.api_key = d->api_key;
    r->addep.api_version = d->api_version;
    r->addep.params = d->litellm_params;
    apply_defaults(r, d);
    const char *base = r->addep.api_base != NULL ? r->addep.api_base : DEFAULT_OPENAI_BASE;
    r->url_chat = join_url(base, "/chat/completions");
    r->url_embeddings = join_url(base, "/embeddings");
    if (r->url_chat == NULL || r->url_embeddings == NULL)
        return -1;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Expect:");
    r->headers = curl_slist_append(r->headers, "Accept:");
    const char *key = r->addep.api_key;
    if (key != NULL && key[0] != '\0') {
        size_t n = strlen(key) + 32;
        char *h = malloc(n);
        if (h == NULL)
            return -1;
        snprintf(h, n, "Authorization: Bearer %s", key);
        r->headers = curl_slist_append(r->headers, h);
        explicit_bzero(h, n);
        free(h);
    }
    return gw_upstream_headers_build(&r->h1_headers, r->headers);
}

static gw_model_group_t *group_for(gw_models_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_groups; i++)
        if (strcmp(m->groups[i].name, name) == 0)
            return &m->groups[i];
    gw_model_group_t *g = &m->groups[m->n_groups++];
    g->name = strdup(name);
    const char *star = strchr(name, '*');
    g->is_pattern = star != NULL;
    g->prefix_len = star != NULL ? (size_t)(star - name) : 0;
    return g;
}

static int add_to_group(gw_model_group_t *g, gw_route_t *r)
{
    gw_route_t **t = realloc(g->routes, (g->n_routes + 1) * sizeof(*t));
    if (t == NULL)
        return -1;
    g->routes = t;
    g->routes[g->n_routes++] = r;
    g->total_weight += r->dep->weight > 0 ? r->dep->weight : 1.0;
    return 0;
}

static void build_hash(gw_models_t *m)
{
    m->hash_cap = 16;
    while (m->hash_cap < m->n_groups * 2)
        m->hash_cap *= 2;
    m->hash = calloc(m->hash_cap, sizeof(*m->hash));
    for (size_t i = 0; i < m->n_groups; i++) {
        if (m->groups[i].is_pattern)
            continue;
        const char *n = m->groups[i].name;
        size_t at = hash_name(n, strlen(n)) & (m->hash_cap - 1);
        while (m->hash[at] != 0)
            at = (at + 1) & (m->hash_cap - 1);
        m->hash[at] = i + 1;
    }
}

/* A group limit is the sum over its deployments; one deployment without it leaves the group
 * unlimited (its capacity is unknown). */
static int64_t sum_limit(int64_t total, int64_t v)
{
    if (total < 0 || v <= 0)
        return -1;
    return __builtin_add_overflow(total, v, &total) ? INT64_MAX : total;
}

static void group_limits(gw_model_group_t *g)
{
    g->rpm = g->tpm = g->max_parallel = 0;
    for (size_t i = 0; i < g->n_routes; i++) {
        const gw_deployment_t *d = g->routes[i]->dep;
        json_t *mp = json_object_get(d->litellm_params, "max_parallel_requests");
        g->rpm = sum_limit(g->rpm, d->rpm);
        g->tpm = sum_limit(g->tpm, d->tpm);
        g->max_parallel = sum_limit(g->max_parallel, json_is_integer(mp) ? json_integer_value(mp) : 0);
        g->routes[i]->group = g;
    }
    if (g->n_routes == 0)
        g->rpm = g->tpm = g->max_parallel = -1;
    g->limited = g->rpm >= 0 || g->tpm >= 0 || g->max_parallel >= 0;
}

gw_models_t *gw_models_create(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_models_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    size_t n = cfg->n_deployments;
    m->routes = calloc(n ? n : 1, sizeof(*m->routes));
    m->groups = calloc(n ? n : 1, sizeof(*m->groups));
    if (m->routes == NULL || m->groups == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const gw_deployment_t *d = &cfg->deployments[i];
        if (build_route(&m->routes[i], d, err, errlen) != 0)
            goto fail;
        m->n_routes++;
        if (add_to_group(group_for(m, d->model_name), &m->routes[i]) != 0)
            goto fail;
    }
    for (size_t i = 0; i < m->n_groups; i++)
        group_limits(&m->groups[i]);
    build_hash(m);
    if (m->hash == NULL)
        goto fail;
    return m;
fail:
    gw_models_destroy(m);
    return NULL;
}

void gw_models_destroy(gw_models_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_routes; i++) {
        free(m->routes[i].url_chat);
        free(m->routes[i].url_embeddings);
        curl_slist_free_all(m->routes[i].headers);
        if (m->routes[i].h1_headers.block != NULL)
            explicit_bzero(m->routes[i].h1_headers.block, m->routes[i].h1_headers.len); /* holds the key */
        gw_upstream_headers_free(&m->routes[i].h1_headers);
        json_decref(m->routes[i].params);
    }
    for (size_t i = 0; i < m->n_groups; i++) {
        free(m->groups[i].name);
        free(m->groups[i].routes);
    }
    free(m->routes);
    free(m->groups);
    free(m->hash);
    free(m);
}

static int pattern_match(const gw_model_group_t *g, const char *name, size_t len, const char **star,
                         size_t *star_len)
{
    const char *pat = g->name;
    size_t plen = strlen(pat), suffix = plen - g->prefix_len - 1;
    if (len < g->prefix_len + suffix || memcmp(name, pat, g->prefix_len) != 0 ||
        memcmp(name + len - suffix, pat + g->prefix_len + 1, suffix) != 0)
        return 0;
    *star = name + g->prefix_len;
    *star_len = len - g->prefix_len - suffix;
    return 1;
}

const gw_model_group_t *gw_models_lookup(const gw_models_t *m, const char *name, size_t len,
                                         const char **star, size_t *star_len)
{
    size_t at = hash_name(name, len) & (m->hash_cap - 1);
    while (m->hash[at] != 0) {
        const gw_model_group_t *g = &m->groups[m->hash[at] - 1];
        if (strncmp(g->name, name, len) == 0 && g->name[len] == '\0')
            return g;
        at = (at + 1) & (m->hash_cap - 1);
    }
    /* patterns: the most specific (longest literal prefix) wins */
    const gw_model_group_t *best = NULL;
    for (size_t i = 0; i < m->n_groups; i++) {
        const gw_model_group_t *g = &m->groups[i];
        const char *s;
        size_t sl;
        if (g->is_pattern && pattern_match(g, name, len, &s, &sl) &&
            (best == NULL || g->prefix_len > best->prefix_len)) {
            best = g;
            *star = s;
            *star_len = sl;
        }
    }
    return best;
}

const gw_route_t *gw_models_pick(const gw_model_group_t *g, uint64_t r)
{
    if (g->n_routes == 1)
        return g->routes[0];
    double x = (double)(r >> 11) / (double)(1ull << 53) * g->total_weight;
    for (size_t i = 0; i < g->n_routes; i++) {
        double w = g->routes[i]->dep->weight > 0 ? g->routes[i]->dep->weight : 1.0;
        if (x < w)
            return g->routes[i];
        x -= w;
    }
    return g->routes[g->n_routes - 1];
}

int gw_models_list_json(const gw_models_t *m, int64_t created, ad_buf_t *out)
{
    int rc = ad_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    int first = 1;
    for (size_t i = 0; i < m->n_groups; i++) {
        const gw_model_group_t *g = &m->groups[i];
        if (g->is_pattern)
            continue;
        rc |= ad_buf_puts(out, first ? "{\"id\":" : ",{\"id\":");
        rc |= ad_buf_append_json_str(out, g->name, strlen(g->name));
        rc |= ad_buf_appendf(out, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"openai\"}",
                             (long long)created);
        first = 0;
    }
    rc |= ad_buf_puts(out, "]}");
    return rc ? -1 : 0;
}
