/*
 * models.c — model groups, wildcard patterns and weighted choice (see models.h).
 */
#include "gateway/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_OPENAI_BASE "https://api.openai.com/v1"

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

static int build_route(gw_route_t *r, const gw_deployment_t *d, char *err, size_t errlen)
{
    r->dep = d;
    r->ad = ad_adapter_find(d->provider);
    if (r->ad == NULL) {
        snprintf(err, errlen, "model_list[%zu] (%s): provider '%s' is not supported yet", d->index,
                 d->model_name, d->provider);
        return -1;
    }
    r->is_mock = r->ad == &ad_mock;
    r->wildcard = d->upstream_model != NULL && strchr(d->upstream_model, '*') != NULL;
    r->addep.provider = d->provider;
    r->addep.upstream_model = d->upstream_model;
    r->addep.api_base = d->api_base;
    r->addep.api_key = d->api_key;
    r->addep.api_version = d->api_version;
    r->addep.params = d->litellm_params;
    const char *base = d->api_base != NULL ? d->api_base : DEFAULT_OPENAI_BASE;
    r->url_chat = join_url(base, "/chat/completions");
    r->url_embeddings = join_url(base, "/embeddings");
    if (r->url_chat == NULL || r->url_embeddings == NULL)
        return -1;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Expect:");
    r->headers = curl_slist_append(r->headers, "Accept:");
    if (d->api_key != NULL && d->api_key[0] != '\0') {
        size_t n = strlen(d->api_key) + 32;
        char *h = malloc(n);
        if (h == NULL)
            return -1;
        snprintf(h, n, "Authorization: Bearer %s", d->api_key);
        r->headers = curl_slist_append(r->headers, h);
        explicit_bzero(h, n);
        free(h);
    }
    return 0;
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
