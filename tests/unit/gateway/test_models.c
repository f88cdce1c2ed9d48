/*
 * The model table: exact names, groups picked by weight, wildcard patterns, provider defaults
 * (base URL, key from the environment) and refusal of providers no adapter serves.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"
#include "gateway/models.h"

static gw_config_t *load(const char *yaml)
{
    char err[512];
    gw_config_t *c = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    return c;
}

Test(models, groups_weights_and_lookup)
{
    gw_config_t *c = load("model_list:\n"
                          "  - model_name: g\n    litellm_params: {model: openai/a, weight: 3}\n"
                          "  - model_name: g\n    litellm_params: {model: openai/b, weight: 1}\n"
                          "  - model_name: solo\n    litellm_params: {model: mock/m}\n");
    char err[256];
    gw_models_t *m = gw_models_create(c, err, sizeof(err));
    cr_assert_not_null(m, "%s", err);
    const char *star;
    size_t sl;
    const gw_model_group_t *g = gw_models_lookup(m, "g", 1, &star, &sl);
    cr_assert_not_null(g);
    cr_assert_eq(g->n_routes, 2);
    cr_assert_null(gw_models_lookup(m, "gx", 2, &star, &sl));
    cr_assert_null(gw_models_lookup(m, "", 0, &star, &sl));
    size_t count_a = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 4000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (strcmp(gw_models_pick(g, x)->dep->upstream_model, "a") == 0)
            count_a++;
    }
    cr_assert(count_a > 2700 && count_a < 3300, "weight 3:1 gave %zu of 4000", count_a);
    const gw_model_group_t *s = gw_models_lookup(m, "solo", 4, &star, &sl);
    cr_assert(gw_models_pick(s, 0)->is_mock);
    ad_buf_t b;
    ad_buf_init(&b, 4096);
    gw_models_list_json(m, 42, &b);
    cr_assert(strstr(b.data, "{\"id\":\"g\",\"object\":\"model\",\"created\":42,\"owned_by\":\"openai\"}") !=
                  NULL,
              "%s", b.data);
    cr_assert(strstr(b.data, "\"id\":\"solo\"") != NULL);
    ad_buf_free(&b);
    gw_models_destroy(m);
    gw_config_free(c);
}

Test(models, wildcards_most_specific_wins)
{
    gw_config_t *c =
        load("model_list:\n"
             "  - model_name: \"*\"\n    litellm_params: {model: \"openai/*\"}\n"
             "  - model_name: \"claude-*\"\n    litellm_params: {model: \"openai/anthropic-*-x\"}\n");
    char err[256];
    gw_models_t *m = gw_models_create(c, err, sizeof(err));
    cr_assert_not_null(m, "%s", err);
    const char *star = NULL;
    size_t sl = 0;
    const gw_model_group_t *g = gw_models_lookup(m, "claude-3-haiku", 14, &star, &sl);
    cr_assert_not_null(g);
    cr_assert_str_eq(g->name, "claude-*");
    cr_assert_eq(sl, 7);
    cr_assert_eq(strncmp(star, "3-haiku", 7), 0);
    g = gw_models_lookup(m, "gpt-4o", 6, &star, &sl);
    cr_assert_str_eq(g->name, "*");
    cr_assert_eq(sl, 6);
    cr_assert(gw_models_pick(g, 0)->wildcard);
    ad_buf_t b;
    ad_buf_init(&b, 4096);
    gw_models_list_json(m, 1, &b);
    cr_assert_str_eq(b.data, "{\"object\":\"list\",\"data\":[]}", "patterns are not listed");
    ad_buf_free(&b);
    gw_models_destroy(m);
    gw_config_free(c);
}

Test(models, provider_defaults_and_env_keys)
{
    setenv("GROQ_API_KEY", "gsk-from-env", 1);
    gw_config_t *c =
        load("model_list:\n"
             "  - model_name: fast\n    litellm_params: {model: groq/llama-3.1-8b-instant}\n"
             "  - model_name: own\n    litellm_params: {model: openai/x, api_base: \"http://h:1/v1/\"}\n");
    char err[256];
    gw_models_t *m = gw_models_create(c, err, sizeof(err));
    cr_assert_not_null(m, "%s", err);
    const gw_route_t *r = &m->routes[0];
    cr_assert_str_eq(r->url_chat, "https://api.groq.com/openai/v1/chat/completions");
    cr_assert_str_eq(r->addep.api_key, "gsk-from-env");
    int has_auth = 0;
    for (struct curl_slist *h = r->headers; h; h = h->next)
        has_auth |= strcmp(h->data, "Authorization: Bearer gsk-from-env") == 0;
    cr_assert(has_auth, "the key from the environment is sent");
    cr_assert_str_eq(m->routes[1].url_chat, "http://h:1/v1/chat/completions");
    cr_assert_str_eq(m->routes[1].url_embeddings, "http://h:1/v1/embeddings");
    gw_models_destroy(m);
    gw_config_free(c);
    unsetenv("GROQ_API_KEY");
}

Test(models, unknown_provider_kept_without_adapter)
{
    gw_config_t *c =
        load("model_list:\n  - model_name: v\n    litellm_params: {model: vertex_ai/gemini-pro}\n"
             "  - model_name: ok\n    litellm_params: {model: mock/m}\n");
    char err[256] = "";
    gw_models_t *m = gw_models_create(c, err, sizeof(err));
    cr_assert_not_null(m, "an unsupported provider must not stop the others from being served: %s", err);
    const char *star;
    size_t sl;
    const gw_model_group_t *g = gw_models_lookup(m, "v", 1, &star, &sl);
    cr_assert_not_null(g);
    cr_assert_null(gw_models_pick(g, 0)->ad, "no adapter: the call path answers with a clear error");
    cr_assert_not_null(gw_models_pick(gw_models_lookup(m, "ok", 2, &star, &sl), 0)->ad);
    gw_models_destroy(m);
    gw_config_free(c);
}
