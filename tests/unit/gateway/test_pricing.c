/*
 * Prices and cost: the shipped config/model_prices.json, lookup of a deployment's price (provider
 * prefixes, Bedrock regions, base_model, public name), per-deployment overrides, exact decimal
 * conversion, cost and estimate arithmetic in micro-dollars (rounding up, unknown counts,
 * overflow) and the x-litellm-response-cost header value.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"
#include "gateway/pricing.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *source_dir(void)
{
    const char *root = getenv("TG_SOURCE_DIR");
#ifdef TG_SOURCE_DIR
    if (root == NULL || *root == '\0')
        root = TG_SOURCE_DIR;
#endif
    return root;
}

static gw_pricing_t *real_table(void)
{
    char path[4096], msg[512];
    const char *root = source_dir();
    if (root == NULL || *root == '\0')
        cr_skip_test("TG_SOURCE_DIR is not set: cannot find config/model_prices.json");
    snprintf(path, sizeof path, "%s/config/model_prices.json", root);
    gw_pricing_t *t = gw_pricing_load(path, msg, sizeof msg);
    cr_assert_not_null(t, "%s", msg);
    cr_assert_str_empty(msg, "the shipped table loads without warnings: %s", msg);
    return t;
}

static gw_pricing_t *inline_table(const char *json)
{
    char msg[512];
    gw_pricing_t *t = gw_pricing_load_string(json, strlen(json), "inline.json", msg, sizeof msg);
    cr_assert_not_null(t, "%s", msg);
    return t;
}

static gw_config_t *load_yaml(const char *yaml)
{
    char err[512];
    gw_config_t *c = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

/* ---------------------------------------------------------------- the shipped file */

Test(pricing, shipped_file_is_clean_json_without_duplicates)
{
    char path[4096];
    json_error_t jerr;
    const char *root = source_dir();
    if (root == NULL || *root == '\0')
        cr_skip_test("TG_SOURCE_DIR is not set");
    snprintf(path, sizeof path, "%s/config/model_prices.json", root);
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(doc, "%s:%d: %s", path, jerr.line, jerr.text);
    cr_assert(json_is_object(doc));
    cr_assert_null(json_object_get(doc, "_comment"), "no comment entries: LiteLLM's format has none");
    const char *key;
    json_t *e;
    json_object_foreach(doc, key, e)
    {
        cr_assert(json_is_object(e), "%s", key);
        const char *mode = json_string_value(json_object_get(e, "mode"));
        cr_assert(mode != NULL && (strcmp(mode, "chat") == 0 || strcmp(mode, "embedding") == 0), "%s: mode",
                  key);
        cr_assert(json_is_string(json_object_get(e, "litellm_provider")), "%s: litellm_provider", key);
        cr_assert(json_is_integer(json_object_get(e, "max_input_tokens")), "%s: max_input_tokens", key);
        if (strcmp(mode, "chat") == 0)
            cr_assert(json_is_integer(json_object_get(e, "max_output_tokens")), "%s: max_output_tokens", key);
        cr_assert(json_is_number(json_object_get(e, "input_cost_per_token")), "%s: input cost", key);
        cr_assert(json_is_number(json_object_get(e, "output_cost_per_token")), "%s: output cost", key);
    }
    json_decref(doc);
}

Test(pricing, shipped_table_covers_the_major_models_sensibly)
{
    static const char *const REQUIRED[] = {"gpt-4o",
                                           "gpt-4o-mini",
                                           "gpt-4.1",
                                           "gpt-4.1-mini",
                                           "gpt-4.1-nano",
                                           "o1",
                                           "o3",
                                           "o3-mini",
                                           "o4-mini",
                                           "gpt-3.5-turbo",
                                           "gpt-4-turbo",
                                           "text-embedding-3-small",
                                           "text-embedding-3-large",
                                           "text-embedding-ada-002",
                                           "claude-3-haiku",
                                           "claude-3-haiku-20240307",
                                           "claude-3-5-haiku",
                                           "claude-3-5-haiku-20241022",
                                           "claude-3-5-sonnet",
                                           "claude-3-5-sonnet-20240620",
                                           "claude-3-5-sonnet-20241022",
                                           "claude-3-7-sonnet",
                                           "claude-3-7-sonnet-20250219",
                                           "claude-sonnet-4",
                                           "claude-sonnet-4-20250514",
                                           "claude-opus-4",
                                           "claude-opus-4-20250514",
                                           "gemini-1.5-flash",
                                           "gemini-1.5-pro",
                                           "gemini-2.0-flash",
                                           "gemini-2.5-flash",
                                           "gemini-2.5-pro",
                                           "text-embedding-004",
                                           "anthropic.claude-3-haiku-20240307-v1:0",
                                           "anthropic.claude-3-5-sonnet-20240620-v1:0",
                                           "amazon.titan-embed-text-v2:0",
                                           "cohere.embed-english-v3",
                                           "meta.llama3-1-8b-instruct-v1:0",
                                           "mock-1",
                                           "mock-fast",
                                           "groq/llama-3.1-8b-instant",
                                           "mistral/mistral-small-latest",
                                           "deepseek/deepseek-chat"};
    gw_pricing_t *t = real_table();
    cr_assert_geq(gw_pricing_count(t), N(REQUIRED));
    for (size_t i = 0; i < N(REQUIRED); i++) {
        const gw_price_t *p = gw_pricing_get(t, REQUIRED[i]);
        cr_assert_not_null(p, "%s is in the table", REQUIRED[i]);
        cr_assert_str_eq(p->name, REQUIRED[i]);
        cr_assert_not_null(p->provider, "%s", REQUIRED[i]);
        cr_assert((p->has & (GW_PRICE_HAS_INPUT | GW_PRICE_HAS_OUTPUT)) ==
                      (GW_PRICE_HAS_INPUT | GW_PRICE_HAS_OUTPUT),
                  "%s has input and output costs", REQUIRED[i]);
        cr_assert_gt(p->input, 0, "%s", REQUIRED[i]);
        cr_assert_gt(p->max_input_tokens, 0, "%s", REQUIRED[i]);
        if (p->mode == GW_PRICE_MODE_CHAT) {
            cr_assert_gt(p->output, 0, "%s: chat models charge for output", REQUIRED[i]);
            cr_assert_geq(p->output, p->input, "%s: output is never cheaper than input", REQUIRED[i]);
            cr_assert_gt(p->max_output_tokens, 0, "%s", REQUIRED[i]);
        } else {
            cr_assert_eq(p->mode, GW_PRICE_MODE_EMBEDDING, "%s", REQUIRED[i]);
            cr_assert_eq(p->output, 0, "%s: embeddings have no output price", REQUIRED[i]);
        }
        if (p->has & GW_PRICE_HAS_CACHE_READ)
            cr_assert_lt(p->cache_read, p->input, "%s: cache reads are discounted", REQUIRED[i]);
        if (p->has & GW_PRICE_HAS_CACHE_WRITE)
            cr_assert_gt(p->cache_write, p->input, "%s: cache writes cost extra", REQUIRED[i]);
    }
    /* Known list prices, exactly, in pico-dollars per token. */
    static const struct {
        const char *name;
        uint64_t in, out, cread, cwrite;
    } SPOT[] = {
        {"gpt-4o", 2500000, 10000000, 1250000, 0},
        {"gpt-4o-mini", 150000, 600000, 75000, 0},
        {"text-embedding-3-small", 20000, 0, 0, 0},
        {"claude-3-5-sonnet-20241022", 3000000, 15000000, 300000, 3750000},
        {"claude-3-haiku-20240307", 250000, 1250000, 30000, 300000},
        {"gemini-1.5-flash", 75000, 300000, 18750, 0},
        {"anthropic.claude-3-5-sonnet-20240620-v1:0", 3000000, 15000000, 0, 0},
        {"amazon.titan-embed-text-v2:0", 20000, 0, 0, 0},
    };
    for (size_t i = 0; i < N(SPOT); i++) {
        const gw_price_t *p = gw_pricing_get(t, SPOT[i].name);
        cr_assert_not_null(p, "%s", SPOT[i].name);
        cr_expect_eq(p->input, SPOT[i].in, "%s input %llu", SPOT[i].name, (unsigned long long)p->input);
        cr_expect_eq(p->output, SPOT[i].out, "%s output", SPOT[i].name);
        if (SPOT[i].cread)
            cr_expect_eq(p->cache_read, SPOT[i].cread, "%s cache read", SPOT[i].name);
        if (SPOT[i].cwrite)
            cr_expect_eq(p->cache_write, SPOT[i].cwrite, "%s cache write", SPOT[i].name);
    }
    const gw_price_t *g = gw_pricing_get(t, "gemini-2.5-flash-preview-04-17");
    cr_assert_not_null(g);
    cr_expect(g->has & GW_PRICE_HAS_REASONING);
    cr_expect_eq(g->reasoning, 3500000);
    gw_pricing_destroy(t);
}

Test(pricing, every_model_of_the_example_config_has_a_price)
{
    char path[4096], err[512];
    const char *root = source_dir();
    if (root == NULL || *root == '\0')
        cr_skip_test("TG_SOURCE_DIR is not set");
    snprintf(path, sizeof path, "%s/config/tollgate.yaml", root);
    gw_config_t *c = gw_config_load(path, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    char ppath[4096];
    cr_assert_not_null(gw_pricing_path(c->path, ppath, sizeof ppath));
    cr_assert(strstr(ppath, "config/model_prices.json") != NULL, "%s", ppath);
    gw_pricing_t *t = real_table();
    for (size_t i = 0; i < c->n_deployments; i++) {
        gw_price_t p;
        int rc = gw_pricing_resolve(t, &c->deployments[i], NULL, &p, err, sizeof err);
        cr_expect_eq(rc, GW_PRICING_OK, "%s has a price (rc %d)", c->deployments[i].model_name, rc);
    }
    gw_pricing_destroy(t);
    gw_config_free(c);
}

/* ---------------------------------------------------------------- loading */

Test(pricing, load_errors_and_skipped_entries)
{
    char msg[512];
    static const char *const BAD[] = {"{", "[1,2]", "\"x\"", ""};
    for (size_t i = 0; i < N(BAD); i++) {
        cr_expect_null(gw_pricing_load_string(BAD[i], strlen(BAD[i]), "bad.json", msg, sizeof msg), "%s",
                       BAD[i]);
        cr_expect(strncmp(msg, "bad.json", 8) == 0, "message names the file: %s", msg);
    }
    const char *mixed =
        "{\"num\": 5,"
        " \"neg\": {\"input_cost_per_token\": -1e-6},"
        " \"word\": {\"input_cost_per_token\": \"cheap\"},"
        " \"ok\": {\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 0,"
        "          \"mode\": \"completion\", \"max_tokens\": 9},"
        " \"sample_spec\": {\"input_cost_per_token\": 0.0, \"mode\": \"one of: chat, embedding\","
        "                   \"max_input_tokens\": \"max input tokens, if known\"},"
        " \"str\": {\"input_cost_per_token\": \"0.000002\", \"unknown_field\": [1]}}";
    gw_pricing_t *t = gw_pricing_load_string(mixed, strlen(mixed), "m.json", msg, sizeof msg);
    cr_assert_not_null(t, "%s", msg);
    cr_expect(strstr(msg, "3 entries skipped") != NULL, "%s", msg);
    cr_expect_eq(gw_pricing_count(t), 3);
    cr_expect_null(gw_pricing_get(t, "neg"));
    const gw_price_t *ok = gw_pricing_get(t, "ok");
    cr_assert_not_null(ok);
    cr_expect_eq(ok->input, 1000000);
    cr_expect_eq(ok->output, 0);
    cr_expect_eq(ok->mode, GW_PRICE_MODE_COMPLETION);
    cr_expect_null(ok->provider);
    const gw_price_t *ss = gw_pricing_get(t, "sample_spec");
    cr_assert_not_null(ss);
    cr_expect_eq(ss->mode, GW_PRICE_MODE_OTHER);
    cr_expect_eq(ss->max_input_tokens, 0, "prose where a number belongs is ignored");
    cr_expect_eq(gw_pricing_get(t, "str")->input, 2000000, "numeric strings are read exactly");
    cr_expect_null(gw_pricing_get(t, "missing"));
    cr_expect_null(gw_pricing_get(NULL, "ok"));
    gw_pricing_destroy(t);
}

Test(pricing, missing_file_gives_empty_table_and_warning)
{
    char path[4096], msg[512];
    const char *root = source_dir();
    snprintf(path, sizeof path, "%s/config/no-such-prices.json", root != NULL ? root : ".");
    gw_pricing_t *t = gw_pricing_load(path, msg, sizeof msg);
    cr_assert_not_null(t);
    cr_expect_eq(gw_pricing_count(t), 0);
    cr_expect(strstr(msg, "not found") != NULL, "%s", msg);
    cr_expect_null(gw_pricing_get(t, "gpt-4o"));
    gw_pricing_destroy(t);
    if (root != NULL) { /* a directory is not a price file */
        snprintf(path, sizeof path, "%s/config", root);
        cr_expect_null(gw_pricing_load(path, msg, sizeof msg));
        cr_expect_str_neq(msg, "");
    }
}

Test(pricing, path_from_env_or_next_to_config)
{
    static const struct {
        const char *config, *want;
    } CASES[] = {
        {"config/tollgate.yaml", "config/model_prices.json"},
        {"/etc/tollgate/config.yaml", "/etc/tollgate/model_prices.json"},
        {"tollgate.yaml", "model_prices.json"},
        {NULL, "model_prices.json"},
    };
    char buf[256];
    unsetenv("TOLLGATE_PRICES");
    for (size_t i = 0; i < N(CASES); i++) {
        cr_assert_not_null(gw_pricing_path(CASES[i].config, buf, sizeof buf));
        cr_expect_str_eq(buf, CASES[i].want);
    }
    cr_expect_null(gw_pricing_path("config/tollgate.yaml", buf, 10), "too small a buffer");
    setenv("TOLLGATE_PRICES", "prices/litellm.json", 1);
    cr_expect_str_eq(gw_pricing_path("config/tollgate.yaml", buf, sizeof buf), "prices/litellm.json");
    setenv("TOLLGATE_PRICES", "", 1);
    cr_expect_str_eq(gw_pricing_path("config/tollgate.yaml", buf, sizeof buf), "config/model_prices.json");
    unsetenv("TOLLGATE_PRICES");
}

/* ---------------------------------------------------------------- lookup and overrides */

Test(pricing, lookup_by_prefix_region_base_model_and_public_name)
{
    static const struct {
        const char *model_name, *model, *extra, *want;
    } CASES[] = {
        {"gpt-4o", "openai/gpt-4o", "", "gpt-4o"},
        {"mini", "gpt-4o-mini", "", "gpt-4o-mini"},
        {"fast", "groq/llama-3.1-8b-instant", "", "groq/llama-3.1-8b-instant"},
        {"small", "mistral/mistral-small-latest", "", "mistral/mistral-small-latest"},
        {"ds", "deepseek/deepseek-chat", "", "deepseek/deepseek-chat"},
        {"sonnet", "anthropic/claude-3-5-sonnet-20241022", "", "claude-3-5-sonnet-20241022"},
        {"flash", "gemini/gemini-2.0-flash", "", "gemini-2.0-flash"},
        {"flash-vx", "vertex_ai/gemini-2.5-pro", "", "gemini-2.5-pro"},
        {"br", "bedrock/anthropic.claude-3-haiku-20240307-v1:0", "",
         "anthropic.claude-3-haiku-20240307-v1:0"},
        {"br-us", "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0", "",
         "anthropic.claude-3-5-sonnet-20240620-v1:0"},
        {"br-eu", "bedrock/converse/eu.anthropic.claude-3-haiku-20240307-v1:0", "",
         "anthropic.claude-3-haiku-20240307-v1:0"},
        {"br-apac", "bedrock/apac.amazon.nova-lite-v1:0", "", "amazon.nova-lite-v1:0"},
        {"titan", "bedrock/amazon.titan-embed-text-v2:0", "", "amazon.titan-embed-text-v2:0"},
        {"az", "azure/prod-deployment-7", "    model_info: {base_model: gpt-4o-mini}\n", "gpt-4o-mini"},
        {"gpt-4.1", "azure/prod-east", "", "gpt-4.1"},
        {"mock", "mock/mock-1", "", "mock-1"},
    };
    gw_pricing_t *t = real_table();
    for (size_t i = 0; i < N(CASES); i++) {
        char yaml[1024], err[256];
        snprintf(yaml, sizeof yaml,
                 "model_list:\n  - model_name: %s\n    litellm_params: {model: \"%s\"}\n%s",
                 CASES[i].model_name, CASES[i].model, CASES[i].extra);
        gw_config_t *c = load_yaml(yaml);
        gw_price_t p;
        int rc = gw_pricing_resolve(t, &c->deployments[0], NULL, &p, err, sizeof err);
        cr_expect_eq(rc, GW_PRICING_OK, "%s: rc %d", CASES[i].model, rc);
        cr_expect(p.name != NULL && strcmp(p.name, CASES[i].want) == 0, "%s: found %s, want %s",
                  CASES[i].model, p.name ? p.name : "(none)", CASES[i].want);
        cr_expect_eq(p.input, gw_pricing_get(t, CASES[i].want)->input, "%s", CASES[i].model);
        gw_config_free(c);
    }
    gw_pricing_destroy(t);
}

Test(pricing, lookup_prefers_provider_key_and_wildcard_model)
{
    gw_pricing_t *t =
        inline_table("{\"x\": {\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 2e-6},"
                     " \"groq/x\": {\"input_cost_per_token\": 5e-8, \"output_cost_per_token\": 8e-8},"
                     " \"y\": {\"input_cost_per_token\": 3e-6, \"output_cost_per_token\": 4e-6}}");
    gw_config_t *c = load_yaml("model_list:\n"
                               "  - model_name: a\n    litellm_params: {model: groq/x}\n"
                               "  - model_name: b\n    litellm_params: {model: openai/x}\n"
                               "  - model_name: \"w/*\"\n    litellm_params: {model: \"openai/*\"}\n"
                               "  - model_name: ft\n    litellm_params: {model: openai/my-finetune}\n");
    char err[256];
    gw_price_t p;
    cr_assert_eq(gw_pricing_resolve(t, &c->deployments[0], NULL, &p, err, sizeof err), GW_PRICING_OK);
    cr_expect_str_eq(p.name, "groq/x", "the provider-specific entry wins");
    cr_expect_eq(p.input, 50000);
    cr_assert_eq(gw_pricing_resolve(t, &c->deployments[1], NULL, &p, err, sizeof err), GW_PRICING_OK);
    cr_expect_str_eq(p.name, "x");
    cr_assert_eq(gw_pricing_resolve(t, &c->deployments[2], "y", &p, err, sizeof err), GW_PRICING_OK);
    cr_expect_str_eq(p.name, "y", "a wildcard route prices the model the request resolved to");
    cr_expect_eq(gw_pricing_resolve(t, &c->deployments[2], NULL, &p, err, sizeof err), GW_PRICING_NOT_FOUND);
    cr_expect_eq(gw_pricing_resolve(t, &c->deployments[3], NULL, &p, err, sizeof err), GW_PRICING_NOT_FOUND);
    cr_expect_eq(p.input, 0);
    cr_expect_eq(p.output, 0);
    cr_expect_null(p.name);
    cr_expect_eq(gw_pricing_resolve(NULL, &c->deployments[1], NULL, &p, err, sizeof err),
                 GW_PRICING_NOT_FOUND, "no table at all");
    gw_config_free(c);
    gw_pricing_destroy(t);
}

Test(pricing, deployment_overrides_win_field_by_field)
{
    static const struct {
        const char *yaml_params; /* inside litellm_params, after model */
        const char *yaml_info;   /* model_info mapping, or "" */
        const char *model;
        int rc;
        uint64_t in, out, cread;
        int table_name; /* the table entry is still reported */
    } CASES[] = {
        /* table only */
        {"", "", "openai/gpt-4o", GW_PRICING_OK, 2500000, 10000000, 1250000, 1},
        /* litellm_params input: output and cache read stay the table's */
        {", input_cost_per_token: 1e-6", "", "openai/gpt-4o", GW_PRICING_OK, 1000000, 10000000, 1250000, 1},
        /* litellm_params wins over model_info, model_info over the table */
        {", output_cost_per_token: 3e-6", "{output_cost_per_token: 2e-6, input_cost_per_token: 5e-7}",
         "openai/gpt-4o", GW_PRICING_OK, 500000, 3000000, 1250000, 1},
        /* an explicit 0 makes that part free */
        {", input_cost_per_token: 0", "", "openai/gpt-4o", GW_PRICING_OK, 0, 10000000, 1250000, 1},
        /* cache price override, as a numeric string, exact */
        {", cache_read_input_token_cost: \"0.0000001\"", "", "openai/gpt-4o", GW_PRICING_OK, 2500000,
         10000000, 100000, 1},
        /* a model the table does not know, priced by the deployment: cache read falls back to input */
        {", input_cost_per_token: 0.000002, output_cost_per_token: 0.000004", "", "openai/my-ft",
         GW_PRICING_OK, 2000000, 4000000, 2000000, 0},
        {"", "{input_cost_per_token: 1.5e-7}", "openai/my-ft", GW_PRICING_OK, 150000, 0, 150000, 0},
        /* invalid overrides the config reader does not check */
        {", cache_read_input_token_cost: -1", "", "openai/gpt-4o", GW_PRICING_EINVAL, 0, 0, 0, 0},
        {"", "{output_cost_per_reasoning_token: lots}", "openai/gpt-4o", GW_PRICING_EINVAL, 0, 0, 0, 0},
    };
    gw_pricing_t *t = real_table();
    for (size_t i = 0; i < N(CASES); i++) {
        char yaml[1024], err[256] = "";
        snprintf(yaml, sizeof yaml,
                 "model_list:\n  - model_name: m\n    litellm_params: {model: %s%s}\n%s%s\n", CASES[i].model,
                 CASES[i].yaml_params, *CASES[i].yaml_info ? "    model_info: " : "", CASES[i].yaml_info);
        gw_config_t *c = load_yaml(yaml);
        gw_price_t p;
        int rc = gw_pricing_resolve(t, &c->deployments[0], NULL, &p, err, sizeof err);
        cr_expect_eq(rc, CASES[i].rc, "case %zu: rc %d (%s)", i, rc, err);
        if (rc == GW_PRICING_EINVAL) {
            cr_expect(strstr(err, "model_list[0]") != NULL, "case %zu: %s", i, err);
        } else {
            uint64_t micros;
            ad_usage_t u = {1000000, 0, 1000000, -1};
            cr_expect_eq(p.input, CASES[i].in, "case %zu: input %llu", i, (unsigned long long)p.input);
            cr_expect_eq(p.output, CASES[i].out, "case %zu: output %llu", i, (unsigned long long)p.output);
            gw_pricing_cost_micros(&p, &u, &micros);
            cr_expect_eq(micros, CASES[i].cread, "case %zu: 1M cached tokens cost %llu", i,
                         (unsigned long long)micros);
            cr_expect_eq(p.name != NULL, CASES[i].table_name, "case %zu", i);
        }
        gw_config_free(c);
    }
    gw_pricing_destroy(t);
}

Test(pricing, overrides_without_json_and_model_info_metadata)
{
    gw_deployment_t d = {.model_name = "hand", .provider = "openai", .upstream_model = "nothing-like-it"};
    d.input_cost_per_token = 2.5e-6;
    d.output_cost_per_token = 1e-5;
    char err[256];
    gw_price_t p;
    cr_assert_eq(gw_pricing_resolve(NULL, &d, NULL, &p, err, sizeof err), GW_PRICING_OK);
    cr_expect_eq(p.input, 2500000, "doubles from the config reader convert exactly");
    cr_expect_eq(p.output, 10000000);
    gw_config_t *c =
        load_yaml("model_list:\n  - model_name: e\n    litellm_params: {model: openai/my-embed}\n"
                  "    model_info: {mode: embedding, max_input_tokens: 512, input_cost_per_token: 1e-8}\n");
    cr_assert_eq(gw_pricing_resolve(NULL, &c->deployments[0], NULL, &p, err, sizeof err), GW_PRICING_OK);
    cr_expect_eq(p.mode, GW_PRICE_MODE_EMBEDDING);
    cr_expect_eq(p.max_input_tokens, 512);
    cr_expect_eq(p.input, 10000);
    gw_config_free(c);
}

/* ---------------------------------------------------------------- decimal conversion */

Test(pricing, parse_usd_is_exact_and_rounds_up)
{
    static const struct {
        const char *s;
        unsigned digits;
        int rc;
        uint64_t want;
    } CASES[] = {
        {"2.5e-6", 12, GW_PRICING_OK, 2500000},
        {"2.5E-06", 12, GW_PRICING_OK, 2500000},
        {"0.00000015", 12, GW_PRICING_OK, 150000},
        {"0.00000001875", 12, GW_PRICING_OK, 18750},
        {"1e-12", 12, GW_PRICING_OK, 1},
        {"1.5e-13", 12, GW_PRICING_OK, 1}, /* below a pico-dollar: rounds up, never to zero */
        {"1.0000000000001", 12, GW_PRICING_OK, 1000000000001},
        {"1.00000000000001", 12, GW_PRICING_OK, 1000000000001}, /* extra digit rounds up */
        {"3", 12, GW_PRICING_OK, 3000000000000},
        {"0", 12, GW_PRICING_OK, 0},
        {"0.0", 12, GW_PRICING_OK, 0},
        {"0e5", 12, GW_PRICING_OK, 0},
        {".5", 12, GW_PRICING_OK, 500000000000},
        {"5.", 12, GW_PRICING_OK, 5000000000000},
        {"007.25", 0, GW_PRICING_OK, 8},
        {"1e+3", 0, GW_PRICING_OK, 1000},
        {"0.0000015", 6, GW_PRICING_OK, 2},
        {"12.5", 6, GW_PRICING_OK, 12500000},
        {"1e7", 12, GW_PRICING_OK, 10000000000000000000ull},
        {"1e-99999999999", 12, GW_PRICING_OK, 1},
        {"1234567890123456789", 0, GW_PRICING_OK, 1234567890123456789ull},
        {"1234567890123456789000", 0, GW_PRICING_EOVERFLOW, 0},
        {"2e7", 12, GW_PRICING_EOVERFLOW, 0},
        {"1e99999999999", 12, GW_PRICING_EOVERFLOW, 0},
        {"12345678901234567891", 0, GW_PRICING_EINVAL, 0}, /* 20 significant digits */
        {"", 12, GW_PRICING_EINVAL, 0},
        {".", 12, GW_PRICING_EINVAL, 0},
        {"-1", 12, GW_PRICING_EINVAL, 0},
        {"+1", 12, GW_PRICING_EINVAL, 0},
        {" 1", 12, GW_PRICING_EINVAL, 0},
        {"1 ", 12, GW_PRICING_EINVAL, 0},
        {"1e", 12, GW_PRICING_EINVAL, 0},
        {"1e-", 12, GW_PRICING_EINVAL, 0},
        {"1.2.3", 12, GW_PRICING_EINVAL, 0},
        {"abc", 12, GW_PRICING_EINVAL, 0},
        {"inf", 12, GW_PRICING_EINVAL, 0},
        {"1", 19, GW_PRICING_EINVAL, 0},
    };
    for (size_t i = 0; i < N(CASES); i++) {
        uint64_t v = 0;
        int rc = gw_pricing_parse_usd(CASES[i].s, CASES[i].digits, &v);
        cr_expect_eq(rc, CASES[i].rc, "'%s': rc %d", CASES[i].s, rc);
        if (rc == GW_PRICING_OK)
            cr_expect_eq(v, CASES[i].want, "'%s': %llu", CASES[i].s, (unsigned long long)v);
    }
}

Test(pricing, double_usd_recovers_the_written_decimal)
{
    static const struct {
        double usd;
        int rc;
        uint64_t pico;
    } CASES[] = {
        {1.5e-07, GW_PRICING_OK, 150000},
        {2.19e-06, GW_PRICING_OK, 2190000},
        {3.75e-06, GW_PRICING_OK, 3750000},
        {8.75e-09, GW_PRICING_OK, 8750},
        {1e-05, GW_PRICING_OK, 10000000},
        {0.1 + 0.2, GW_PRICING_OK, 300000000000},        /* 0.30000000000000004 */
        {3.3333333333333335e-07, GW_PRICING_OK, 333334}, /* 15 digits, the rest rounds up */
        {0.0, GW_PRICING_OK, 0},
        {-0.0, GW_PRICING_OK, 0},
        {-1e-6, GW_PRICING_EINVAL, 0},
        {NAN, GW_PRICING_EINVAL, 0},
        {INFINITY, GW_PRICING_EINVAL, 0},
        {1e300, GW_PRICING_EOVERFLOW, 0},
    };
    for (size_t i = 0; i < N(CASES); i++) {
        uint64_t v = 0;
        int rc = gw_pricing_double_usd(CASES[i].usd, 12, &v);
        cr_expect_eq(rc, CASES[i].rc, "case %zu (%g): rc %d", i, CASES[i].usd, rc);
        if (rc == GW_PRICING_OK)
            cr_expect_eq(v, CASES[i].pico, "case %zu (%g): %llu", i, CASES[i].usd, (unsigned long long)v);
    }
}

/* ---------------------------------------------------------------- cost */

static gw_price_t price(uint64_t in, uint64_t out, uint64_t cread, uint64_t reas)
{
    gw_price_t p = {.input = in, .output = out, .has = GW_PRICE_HAS_INPUT | GW_PRICE_HAS_OUTPUT};
    if (cread) {
        p.cache_read = cread;
        p.has |= GW_PRICE_HAS_CACHE_READ;
    }
    if (reas) {
        p.reasoning = reas;
        p.has |= GW_PRICE_HAS_REASONING;
    }
    return p;
}

Test(pricing, cost_arithmetic_table)
{
    const gw_price_t gpt4o = price(2500000, 10000000, 1250000, 0);
    const gw_price_t gpt4o_nocache = price(2500000, 10000000, 0, 0);
    const gw_price_t mini = price(150000, 600000, 75000, 0);
    const gw_price_t think = price(150000, 600000, 0, 3500000);
    const gw_price_t embed = price(20000, 0, 0, 0);
    const gw_price_t free_ = {0};
    const gw_price_t huge = price(1ull << 62, 1ull << 62, 0, 0);
    static const int64_t BIG = INT64_MAX;
    const struct {
        const char *what;
        const gw_price_t *p;
        ad_usage_t u; /* prompt, completion, cached, reasoning */
        int rc;
        uint64_t micros;
    } CASES[] = {
        {"zero usage", &gpt4o, {0, 0, 0, 0}, GW_PRICING_OK, 0},
        {"all unknown sub-counts", &gpt4o, {0, 0, -1, -1}, GW_PRICING_OK, 0},
        {"1000 in, 500 out", &gpt4o, {1000, 500, -1, -1}, GW_PRICING_OK, 7500},
        {"400 of them cached", &gpt4o, {1000, 500, 400, -1}, GW_PRICING_OK, 7000},
        {"no cache price: input", &gpt4o_nocache, {1000, 500, 400, -1}, GW_PRICING_OK, 7500},
        {"cached > prompt ignored", &gpt4o, {1000, 500, 1001, -1}, GW_PRICING_OK, 7500},
        {"all cached", &gpt4o, {1000, 0, 1000, 0}, GW_PRICING_OK, 1250},
        {"one token rounds up", &mini, {1, 0, 0, 0}, GW_PRICING_OK, 1},
        {"1.05 rounds up to 2", &mini, {7, 0, -1, -1}, GW_PRICING_OK, 2},
        {"exact 3", &mini, {20, 0, -1, -1}, GW_PRICING_OK, 3},
        {"five output tokens, exact 3", &mini, {0, 5, 0, 0}, GW_PRICING_OK, 3},
        {"one output token", &mini, {0, 1, 0, 0}, GW_PRICING_OK, 1},
        {"mixed pico sum then one round", &mini, {3, 1, 0, 0}, GW_PRICING_OK, 2}, /* 0.45 + 0.6 = 1.05 */
        {"reasoning priced apart", &think, {0, 100, -1, 60}, GW_PRICING_OK, 234},
        {"reasoning > completion ignored", &think, {0, 100, -1, 101}, GW_PRICING_OK, 60},
        {"reasoning price = output", &gpt4o, {0, 100, -1, 60}, GW_PRICING_OK, 1000},
        {"prompt unknown", &gpt4o, {-1, 10, -1, -1}, GW_PRICING_UNKNOWN, 100},
        {"prompt unknown, cached known", &gpt4o, {-1, 0, 800, -1}, GW_PRICING_UNKNOWN, 1000},
        {"completion unknown", &gpt4o, {1000, -1, -1, -1}, GW_PRICING_UNKNOWN, 2500},
        {"other negatives are unknown", &gpt4o, {-7, 0, -1, -1}, GW_PRICING_UNKNOWN, 0},
        {"embedding: no completion count", &embed, {1000, -1, -1, -1}, GW_PRICING_OK, 20},
        {"embedding: 1 token", &embed, {1, -1, -1, -1}, GW_PRICING_OK, 1},
        {"free model, unknown counts", &free_, {-1, -1, -1, -1}, GW_PRICING_OK, 0},
        {"free model, huge counts", &free_, {BIG, BIG, 0, 0}, GW_PRICING_OK, 0},
        {"a billion tokens", &gpt4o, {1000000000, 0, 0, 0}, GW_PRICING_OK, 2500000000ull},
        {"max int64 tokens at real prices", &gpt4o, {BIG, 0, 0, 0}, GW_PRICING_EOVERFLOW, UINT64_MAX},
        {"max completion", &mini, {0, BIG, 0, 0}, GW_PRICING_EOVERFLOW, UINT64_MAX},
        {"products fit, sum does not", &huge, {2, 2, 0, 0}, GW_PRICING_EOVERFLOW, UINT64_MAX},
        {"one product just fits", &huge, {3, 0, 0, 0}, GW_PRICING_OK, 13835058055282ull + 1},
    };
    for (size_t i = 0; i < N(CASES); i++) {
        uint64_t micros = 12345;
        int rc = gw_pricing_cost_micros(CASES[i].p, &CASES[i].u, &micros);
        cr_expect_eq(rc, CASES[i].rc, "%s: rc %d", CASES[i].what, rc);
        cr_expect_eq(micros, CASES[i].micros, "%s: %llu micro-dollars", CASES[i].what,
                     (unsigned long long)micros);
    }
}

Test(pricing, estimate_for_reservations)
{
    gw_price_t gpt4o = price(2500000, 10000000, 1250000, 0);
    gpt4o.max_output_tokens = 16384;
    const gw_price_t think = price(150000, 600000, 0, 3500000);
    const gw_price_t embed = price(20000, 0, 0, 0);
    const struct {
        const char *what;
        const gw_price_t *p;
        size_t bytes;
        int64_t max_tokens, dflt;
        int rc;
        uint64_t micros;
    } CASES[] = {
        {"4000 bytes + 100 tokens", &gpt4o, 4000, 100, 256, GW_PRICING_OK, 2500 + 1000},
        {"bytes round up to a token", &gpt4o, 4001, 0, 256, GW_PRICING_OK, 2503},
        {"one byte is one token", &gpt4o, 1, 0, -1, GW_PRICING_OK, 3},
        {"nothing", &gpt4o, 0, 0, 0, GW_PRICING_OK, 0},
        {"default max_tokens", &gpt4o, 0, -1, 256, GW_PRICING_OK, 2560},
        {"model's max output", &gpt4o, 0, -1, -1, GW_PRICING_OK, 163840},
        {"unknown everything", &think, 0, -1, -1, GW_PRICING_OK, 0},
        {"reasoning price is the ceiling", &think, 0, 100, -1, GW_PRICING_OK, 350},
        {"embedding", &embed, 400, -1, 4096, GW_PRICING_OK, 2},
        {"huge max_tokens", &gpt4o, 0, INT64_MAX, -1, GW_PRICING_EOVERFLOW, UINT64_MAX},
        {"huge prompt", &gpt4o, SIZE_MAX, 0, -1, GW_PRICING_EOVERFLOW, UINT64_MAX},
    };
    for (size_t i = 0; i < N(CASES); i++) {
        uint64_t micros = 12345;
        int rc = gw_pricing_estimate_micros(CASES[i].p, CASES[i].bytes, CASES[i].max_tokens, CASES[i].dflt,
                                            &micros);
        cr_expect_eq(rc, CASES[i].rc, "%s: rc %d", CASES[i].what, rc);
        cr_expect_eq(micros, CASES[i].micros, "%s: %llu", CASES[i].what, (unsigned long long)micros);
    }
}

Test(pricing, estimate_bounds_the_real_cost)
{
    /* A reservation made from the request covers what the call then costs when usage stays
     * within it (the fake upstream counts ceil(chars/4) prompt tokens). */
    const gw_price_t gpt4o = price(2500000, 10000000, 1250000, 0);
    for (int64_t bytes = 0; bytes < 64; bytes++)
        for (int64_t out = 0; out < 8; out++) {
            uint64_t est, cost;
            ad_usage_t u = {(bytes + 3) / 4, out, bytes / 8, -1};
            cr_assert_eq(gw_pricing_estimate_micros(&gpt4o, (size_t)bytes, out, -1, &est), GW_PRICING_OK);
            cr_assert_eq(gw_pricing_cost_micros(&gpt4o, &u, &cost), GW_PRICING_OK);
            cr_assert_geq(est, cost, "bytes %lld out %lld", (long long)bytes, (long long)out);
        }
}

/* ---------------------------------------------------------------- header */

Test(pricing, response_cost_header_value)
{
    static const struct {
        uint64_t micros;
        const char *want;
    } CASES[] = {
        {0, "0.0"},
        {1, "0.000001"},
        {10, "0.00001"},
        {123, "0.000123"},
        {7500, "0.0075"},
        {100000, "0.1"},
        {1000000, "1.0"},
        {1500000, "1.5"},
        {12000001, "12.000001"},
        {2500000000ull, "2500.0"},
        {UINT64_MAX, "18446744073709.551615"},
    };
    for (size_t i = 0; i < N(CASES); i++) {
        char buf[GW_PRICING_USD_MAX];
        size_t len = gw_pricing_format_usd(CASES[i].micros, buf, sizeof buf);
        cr_expect_str_eq(buf, CASES[i].want);
        cr_expect_eq(len, strlen(CASES[i].want));
        /* Parsed as a float it is the float nearest the exact amount (checked where the
         * division below is itself exact enough to compare). */
        if (CASES[i].micros < (1ull << 53))
            cr_expect_eq(strtod(buf, NULL), (double)CASES[i].micros / 1e6, "%s", buf);
    }
    char small[8];
    cr_expect_eq(gw_pricing_format_usd(123, small, sizeof small), 0, "\"0.000123\" needs 9 bytes");
    char exact[9];
    cr_expect_eq(gw_pricing_format_usd(123, exact, sizeof exact), 8);
    cr_expect_str_eq(exact, "0.000123");
    cr_expect_eq(gw_pricing_format_usd(1, NULL, 0), 0);
}
