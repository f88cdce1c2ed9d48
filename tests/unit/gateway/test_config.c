/*
 * test_config.c — the config loader against the behaviours LiteLLM users rely on: PyYAML's
 * scalar typing, os.environ/ references, anchors and merge keys, provider splitting, server
 * bounds, error positions, redaction in the dump, and every file of the compatibility corpus.
 */
#include "gateway/config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 512

static gw_config_t *load(const char *yaml)
{
    char err[ERRLEN] = "";
    gw_config_t *cfg = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    cr_assert_not_null(cfg, "load failed: %s\n--- yaml:\n%s", err, yaml);
    return cfg;
}

/* Loads yaml expecting failure; returns the message in err. */
static void load_fails(const char *yaml, char *err, size_t n)
{
    err[0] = '\0';
    gw_config_t *cfg = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, n);
    cr_assert_null(cfg, "expected an error for:\n%s", yaml);
    cr_assert_neq(err[0], '\0', "no error message");
}

static int has_warning(const gw_config_t *cfg, const char *part)
{
    for (size_t i = 0; i < cfg->n_warnings; i++)
        if (strstr(cfg->warnings[i], part))
            return 1;
    return 0;
}

static const char *MIN_MODEL = "model_list:\n"
                               "  - model_name: m\n"
                               "    litellm_params:\n"
                               "      model: openai/gpt-4o\n";

/* ---------------------------------------------------------------- scalar typing */

typedef enum { T_NULL, T_TRUE, T_FALSE, T_INT, T_REAL, T_STR } jt_t;

typedef struct scalar_case {
    const char *yaml; /* text after "v: " */
    jt_t type;
    long long i;
    double r;
    const char *s;
} scalar_case_t;

static const scalar_case_t SCALARS[] = {
    {"80_000", T_INT, 80000, 0, NULL},
    {"1_000_000", T_INT, 1000000, 0, NULL},
    {"42", T_INT, 42, 0, NULL},
    {"-17", T_INT, -17, 0, NULL},
    {"+5", T_INT, 5, 0, NULL},
    {"0", T_INT, 0, 0, NULL},
    {"0x1F", T_INT, 31, 0, NULL},
    {"-0x1f", T_INT, -31, 0, NULL},
    {"017", T_INT, 15, 0, NULL},
    {"0o17", T_INT, 15, 0, NULL},
    {"0b101", T_INT, 5, 0, NULL},
    {"9223372036854775807", T_INT, 9223372036854775807LL, 0, NULL},
    {"08", T_STR, 0, 0, "08"},
    {"0X1F", T_STR, 0, 0, "0X1F"},
    {"True", T_TRUE, 0, 0, NULL},
    {"true", T_TRUE, 0, 0, NULL},
    {"TRUE", T_TRUE, 0, 0, NULL},
    {"yes", T_TRUE, 0, 0, NULL},
    {"On", T_TRUE, 0, 0, NULL},
    {"False", T_FALSE, 0, 0, NULL},
    {"no", T_FALSE, 0, 0, NULL},
    {"OFF", T_FALSE, 0, 0, NULL},
    {"tRue", T_STR, 0, 0, "tRue"},
    {"y", T_STR, 0, 0, "y"},
    {"~", T_NULL, 0, 0, NULL},
    {"null", T_NULL, 0, 0, NULL},
    {"Null", T_NULL, 0, 0, NULL},
    {"NULL", T_NULL, 0, 0, NULL},
    {"", T_NULL, 0, 0, NULL},
    {"nULL", T_STR, 0, 0, "nULL"},
    {"1.5", T_REAL, 0, 1.5, NULL},
    {"-0.25", T_REAL, 0, -0.25, NULL},
    {".5", T_REAL, 0, 0.5, NULL},
    {"1.", T_REAL, 0, 1.0, NULL},
    {"1e-6", T_REAL, 0, 1e-6, NULL},
    {"2.5e-07", T_REAL, 0, 2.5e-7, NULL},
    {"1_000.5", T_REAL, 0, 1000.5, NULL},
    {".inf", T_REAL, 0, DBL_MAX, NULL},
    {"-.Inf", T_REAL, 0, -DBL_MAX, NULL},
    {".nan", T_NULL, 0, 0, NULL},
    {"'1'", T_STR, 0, 0, "1"},
    {"\"80_000\"", T_STR, 0, 0, "80_000"},
    {"'true'", T_STR, 0, 0, "true"},
    {"\"~\"", T_STR, 0, 0, "~"},
    {"''", T_STR, 0, 0, ""},
    {"1.2.3", T_STR, 0, 0, "1.2.3"},
    {"2024-02-01", T_STR, 0, 0, "2024-02-01"},
    {"gpt-4o", T_STR, 0, 0, "gpt-4o"},
    {"12a", T_STR, 0, 0, "12a"},
    {"!!str 42", T_STR, 0, 0, "42"},
    {"!!str true", T_STR, 0, 0, "true"},
    {"!!int \"42\"", T_INT, 42, 0, NULL},
    {"!!float 1", T_REAL, 0, 1.0, NULL},
    {"!!bool \"yes\"", T_TRUE, 0, 0, NULL},
    {"!!null ''", T_NULL, 0, 0, NULL},
    {"|\n    line\n", T_STR, 0, 0, "line\n"},
    {"\"os.environ/TG_TEST_SURELY_UNSET_1\"", T_NULL, 0, 0, NULL},
    {"os.environ/TG_TEST_SURELY_UNSET_2", T_NULL, 0, 0, NULL},
    {"os.environ/", T_STR, 0, 0, "os.environ/"},
    {"xos.environ/HOME", T_STR, 0, 0, "xos.environ/HOME"},
};

static void check_scalar(const scalar_case_t *c, const json_t *v)
{
    switch (c->type) {
    case T_NULL:
        cr_expect(json_is_null(v), "'%s' should be null", c->yaml);
        break;
    case T_TRUE:
        cr_expect(json_is_true(v), "'%s' should be true", c->yaml);
        break;
    case T_FALSE:
        cr_expect(json_is_false(v), "'%s' should be false", c->yaml);
        break;
    case T_INT:
        cr_expect(json_is_integer(v) && json_integer_value(v) == c->i, "'%s' should be int %lld", c->yaml,
                  c->i);
        break;
    case T_REAL:
        cr_expect(json_is_real(v) && json_real_value(v) == c->r, "'%s' should be real %g", c->yaml, c->r);
        break;
    case T_STR:
        cr_expect(json_is_string(v) && strcmp(json_string_value(v), c->s) == 0, "'%s' should be string '%s'",
                  c->yaml, c->s);
        break;
    }
}

Test(config, scalar_typing_follows_pyyaml)
{
    unsetenv("TG_TEST_SURELY_UNSET_1");
    unsetenv("TG_TEST_SURELY_UNSET_2");
    for (size_t i = 0; i < sizeof SCALARS / sizeof SCALARS[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "litellm_settings:\n  v: %s\n", SCALARS[i].yaml);
        gw_config_t *cfg = load(yaml);
        json_t *v = json_object_get(cfg->litellm_settings, "v");
        cr_assert_not_null(v, "no value for '%s'", SCALARS[i].yaml);
        check_scalar(&SCALARS[i], v);
        gw_config_free(cfg);
    }
}

Test(config, tag_that_does_not_fit_is_an_error_with_position)
{
    char err[ERRLEN];
    load_fails("litellm_settings:\n  v: !!int abc\n", err, sizeof err);
    cr_expect(strncmp(err, "t.yaml:2:6: ", 12) == 0, "got: %s", err);
}

Test(config, nan_warns)
{
    gw_config_t *cfg = load("litellm_settings:\n  v: .nan\n");
    cr_expect(has_warning(cfg, "line 2: .nan"));
    gw_config_free(cfg);
}

/* ---------------------------------------------------------------- environment */

Test(config, os_environ_references_are_resolved)
{
    setenv("TG_TEST_KEY_A", "value-a", 1);
    unsetenv("TG_TEST_KEY_MISSING");
    gw_config_t *cfg = load("model_list:\n"
                            "  - model_name: m\n"
                            "    litellm_params:\n"
                            "      model: openai/x\n"
                            "      api_key: os.environ/TG_TEST_KEY_A\n"
                            "      api_base: \"os.environ/TG_TEST_KEY_MISSING\"\n"
                            "      extra: [os.environ/TG_TEST_KEY_A, 'os.environ/TG_TEST_KEY_A']\n");
    gw_deployment_t *d = &cfg->deployments[0];
    cr_assert_str_eq(d->api_key, "value-a");
    cr_expect_null(d->api_base);
    cr_expect(json_is_null(json_object_get(d->litellm_params, "api_base")));
    json_t *extra = json_object_get(d->litellm_params, "extra");
    cr_expect_str_eq(json_string_value(json_array_get(extra, 0)), "value-a");
    cr_expect_str_eq(json_string_value(json_array_get(extra, 1)), "value-a");
    cr_expect(has_warning(cfg, "line 6: os.environ/TG_TEST_KEY_MISSING is not set"));
    gw_config_free(cfg);
}

Test(config, environment_variables_are_exported_before_resolution)
{
    unsetenv("TG_EV_A");
    unsetenv("TG_EV_PORT");
    unsetenv("TG_EV_BOOL");
    unsetenv("TG_EV_NESTED");
    setenv("TG_EV_KEEP", "from-process", 1);
    /* environment_variables comes after its use, as in LiteLLM's load_balancer.yaml */
    gw_config_t *cfg = load("model_list:\n"
                            "  - model_name: m\n"
                            "    litellm_params:\n"
                            "      model: openai/x\n"
                            "      api_key: os.environ/TG_EV_A\n"
                            "      api_base: os.environ/TG_EV_KEEP\n"
                            "environment_variables:\n"
                            "  TG_EV_A: from-config\n"
                            "  TG_EV_PORT: 6329\n"
                            "  TG_EV_BOOL: True\n"
                            "  TG_EV_KEEP: from-config\n"
                            "  TG_EV_NESTED:\n"
                            "    description: not a value\n");
    cr_expect_str_eq(cfg->deployments[0].api_key, "from-config");
    cr_expect_str_eq(cfg->deployments[0].api_base, "from-process", "the process environment wins");
    cr_expect_str_eq(getenv("TG_EV_PORT"), "6329");
    cr_expect_str_eq(getenv("TG_EV_BOOL"), "True");
    cr_expect_null(getenv("TG_EV_NESTED"));
    cr_expect(has_warning(cfg, "line 12: environment_variables.TG_EV_NESTED is not a text value"));
    gw_config_free(cfg);
}

Test(config, master_key_and_database_url_precedence)
{
    unsetenv("DATABASE_URL");
    setenv("TOLLGATE_MASTER_KEY", "sk-tollgate", 1);
    setenv("LITELLM_MASTER_KEY", "sk-litellm", 1);
    gw_config_t *cfg = load(MIN_MODEL);
    cr_expect_str_eq(cfg->master_key, "sk-tollgate");
    cr_expect_null(cfg->database_url);
    gw_config_free(cfg);

    unsetenv("TOLLGATE_MASTER_KEY");
    setenv("DATABASE_URL", "postgresql://u:p@h/db", 1);
    cfg = load(MIN_MODEL);
    cr_expect_str_eq(cfg->master_key, "sk-litellm");
    cr_expect_str_eq(cfg->database_url, "postgresql://u:p@h/db");
    gw_config_free(cfg);

    cfg = load("general_settings:\n  master_key: sk-config\n  database_url: sqlite-ish\n");
    cr_expect_str_eq(cfg->master_key, "sk-config");
    cr_expect_str_eq(cfg->database_url, "sqlite-ish");
    gw_config_free(cfg);

    unsetenv("LITELLM_MASTER_KEY");
    cfg = load("general_settings:\n  master_key: os.environ/TG_TEST_SURELY_UNSET_3\n");
    cr_expect_null(cfg->master_key);
    cr_expect(has_warning(cfg, "no master_key"));
    gw_config_free(cfg);
}

/* ---------------------------------------------------------------- anchors, merges, duplicates */

Test(config, anchors_aliases_and_merge_keys)
{
    gw_config_t *cfg = load("x-defaults: &defaults\n"
                            "  api_base: https://a.example/v1\n"
                            "  timeout: 30\n"
                            "  rpm: 5\n"
                            "x-other: &other\n"
                            "  rpm: 9\n"
                            "  tpm: 1000\n"
                            "  weight: 3\n"
                            "model_list:\n"
                            "  - model_name: &name shared\n"
                            "    litellm_params:\n"
                            "      <<: *defaults\n"
                            "      model: openai/a\n"
                            "      rpm: 7\n"
                            "  - model_name: *name\n"
                            "    litellm_params:\n"
                            "      model: openai/b\n"
                            "      <<: [*defaults, *other]\n"
                            "litellm_settings:\n"
                            "  copy: *defaults\n");
    cr_assert_eq(cfg->n_deployments, 2);
    gw_deployment_t *a = &cfg->deployments[0], *b = &cfg->deployments[1];
    cr_expect_str_eq(a->api_base, "https://a.example/v1");
    cr_expect_eq(a->timeout_s, 30);
    cr_expect_eq(a->rpm, 7, "explicit keys beat merged ones");
    cr_expect_str_eq(b->model_name, "shared");
    cr_expect_eq(b->rpm, 5, "in a merge list the first mapping wins");
    cr_expect_eq(b->tpm, 1000);
    cr_expect_eq(b->weight, 3);
    cr_expect_null(json_object_get(a->litellm_params, "<<"));
    json_t *copy = json_object_get(cfg->litellm_settings, "copy");
    cr_expect_eq(json_integer_value(json_object_get(copy, "rpm")), 5);
    cr_expect(has_warning(cfg, "line 1: unknown top-level key 'x-defaults'"));
    gw_config_free(cfg);
}

Test(config, undefined_alias_is_an_error)
{
    char err[ERRLEN];
    load_fails("litellm_settings:\n  a: *nope\n", err, sizeof err);
    cr_expect_str_eq(err, "t.yaml:2:6: found undefined alias 'nope'");
}

Test(config, alias_bomb_is_bounded)
{
    char err[ERRLEN];
    load_fails("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
               "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
               err, sizeof err);
    cr_expect(strstr(err, "too large"), "got: %s", err);
}

Test(config, duplicate_key_last_wins_with_warning)
{
    gw_config_t *cfg = load("general_settings:\n"
                            "  store_model_in_db: true\n"
                            "  other: 1\n"
                            "  store_model_in_db: false\n");
    cr_expect(json_is_false(json_object_get(cfg->general_settings, "store_model_in_db")));
    cr_expect(has_warning(cfg, "line 4: duplicate key 'store_model_in_db'"));
    gw_config_free(cfg);
}

Test(config, more_than_one_document_is_an_error)
{
    char err[ERRLEN];
    load_fails("a: 1\n---\nb: 2\n", err, sizeof err);
    cr_expect_str_eq(err, "t.yaml:2:1: expected a single document in the stream");
}

/* ---------------------------------------------------------------- deployments */

typedef struct split_case {
    const char *model;
    const char *custom; /* custom_llm_provider or NULL */
    const char *provider, *upstream;
} split_case_t;

static const split_case_t SPLITS[] = {
    {"openai/gpt-4o", NULL, "openai", "gpt-4o"},
    {"gpt-4o", NULL, "openai", "gpt-4o"},
    {"openrouter/meta-llama/x", NULL, "openrouter", "meta-llama/x"},
    {"azure/responses/gpt-5", NULL, "azure", "responses/gpt-5"},
    {"anthropic/claude-*", NULL, "anthropic", "claude-*"},
    {"openai/*", NULL, "openai", "*"},
    {"gpt-oss:20b", NULL, "openai", "gpt-oss:20b"},
    {"cloudflare/@cf/openai/gpt-oss-120b", NULL, "cloudflare", "@cf/openai/gpt-oss-120b"},
    {"mistralai/mistral-7b", "openai", "openai", "mistralai/mistral-7b"},
    {"release-manager", "agno", "agno", "release-manager"},
    {"agno/release-manager", "agno", "agno", "release-manager"},
};

Test(config, provider_split)
{
    for (size_t i = 0; i < sizeof SPLITS / sizeof SPLITS[0]; i++) {
        const split_case_t *c = &SPLITS[i];
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "model_list:\n  - model_name: m\n    litellm_params:\n      model: \"%s\"\n%s%s%s", c->model,
                 c->custom ? "      custom_llm_provider: " : "", c->custom ? c->custom : "",
                 c->custom ? "\n" : "");
        gw_config_t *cfg = load(yaml);
        cr_expect_str_eq(cfg->deployments[0].provider, c->provider, "provider of %s", c->model);
        cr_expect_str_eq(cfg->deployments[0].upstream_model, c->upstream, "upstream of %s", c->model);
        gw_config_free(cfg);
    }
}

Test(config, api_base_trailing_slashes_and_base_url)
{
    gw_config_t *cfg = load("model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params: {model: openai/a, api_base: 'https://x.example/v1///'}\n"
                            "  - model_name: b\n"
                            "    litellm_params: {model: openai/b, base_url: 'http://h:8000/'}\n"
                            "  - model_name: c\n"
                            "    litellm_params: {model: openai/c, api_base: null}\n");
    cr_expect_str_eq(cfg->deployments[0].api_base, "https://x.example/v1");
    cr_expect_str_eq(cfg->deployments[1].api_base, "http://h:8000");
    cr_expect_null(cfg->deployments[2].api_base);
    gw_config_free(cfg);
}

Test(config, deployment_fields)
{
    gw_config_t *cfg = load("model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: azure/gpt\n"
                            "      api_version: 2024-02-01\n"
                            "      timeout: \"30\"\n"
                            "      stream_timeout: 1.5\n"
                            "      tpm: 80_000\n"
                            "      weight: 2\n"
                            "      input_cost_per_token: 1e-6\n"
                            "    model_info:\n"
                            "      output_cost_per_token: 0.000002\n"
                            "      input_cost_per_token: 5\n"
                            "    rpm: 60\n"
                            "    tpm: 1\n"
                            "    litellm_provider: vllm\n");
    gw_deployment_t *d = &cfg->deployments[0];
    cr_expect_str_eq(d->api_version, "2024-02-01");
    cr_expect_eq(d->timeout_s, 30);
    cr_expect_eq(d->stream_timeout_s, 1.5);
    cr_expect_eq(d->tpm, 80000, "litellm_params wins over the deployment level");
    cr_expect_eq(d->rpm, 60, "deployment-level rpm");
    cr_expect_eq(d->weight, 2);
    cr_expect_eq(d->input_cost_per_token, 1e-6, "litellm_params wins over model_info");
    cr_expect_eq(d->output_cost_per_token, 0.000002);
    cr_expect_not_null(d->model_info);
    cr_expect_eq(d->index, 0);
    cr_expect(has_warning(cfg, "line 16: unknown key 'litellm_provider' in model_list[0]"));
    gw_config_free(cfg);
}

Test(config, missing_model_names_the_entry_and_its_line)
{
    char err[ERRLEN];
    load_fails("model_list:\n"
               "  - model_name: ok\n"
               "    litellm_params:\n"
               "      model: openai/x\n"
               "  - model_name: broken\n"
               "    litellm_params:\n"
               "      api_key: k\n",
               err, sizeof err);
    cr_expect_str_eq(err, "t.yaml:5:5: model_list[1] ('broken'): litellm_params.model is missing (LiteLLM "
                          "cannot route this entry)");
}

typedef struct bad_case {
    const char *yaml;
    const char *expect; /* exact message */
} bad_case_t;

static const bad_case_t BAD[] = {
    {"model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n     api_key: bad\n",
     "t.yaml:5:6: did not find expected key (while parsing a block mapping at line 2, column 5)"},
    {"model_list:\n  - model_name: \"unterminated\n    litellm_params: {}\n",
     "t.yaml:4:1: found unexpected end of stream (while scanning a quoted scalar at line 2, column 17)"},
    {"a: [1, 2\nb: 3\n",
     "t.yaml:2:2: did not find expected ',' or ']' (while parsing a flow sequence at line 1, "
     "column 4)"},
    {"a: \xff\n", "t.yaml:1:4: invalid leading UTF-8 octet"},
    {"model_list: {a: 1}\n", "t.yaml:1:1: model_list must be a list"},
    {"model_list:\n  - just-a-string\n",
     "t.yaml:2:5: model_list[0]: an entry must be a mapping with model_name "
     "and litellm_params"},
    {"model_list:\n  - litellm_params: {model: x}\n",
     "t.yaml:2:5: model_list[0]: model_name is missing or not a "
     "string"},
    {"general_settings: [1]\n", "t.yaml:1:1: general_settings must be a mapping"},
    {"- a\n- b\n", "t.yaml:1:1: the top level must be a mapping (model_list:, ...)"},
    {"# only a comment\n", "t.yaml: the file holds no YAML document"},
    {"model_list:\n  - model_name: a\n    litellm_params: {model: x, timeout: -1}\n",
     "t.yaml:3:32: model_list[0] ('a'): timeout must be a number >= 0"},
    {"model_list:\n  - model_name: a\n    litellm_params: {model: x}\n    rpm: lots\n",
     "t.yaml:4:5: model_list[0] ('a'): rpm must be a whole number >= 0"},
    {"model_list:\n  - model_name: a\n    litellm_params: {model: openai/}\n",
     "t.yaml:3:22: model_list[0] ('a'): litellm_params.model has an empty provider or model"},
};

Test(config, errors_name_file_line_and_column)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char err[ERRLEN];
        load_fails(BAD[i].yaml, err, sizeof err);
        cr_expect_str_eq(err, BAD[i].expect, "case %zu", i);
    }
}

Test(config, load_from_file_and_missing_file)
{
    char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/tg_config_test_XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(MIN_MODEL, f);
    fclose(f);
    char err[ERRLEN];
    gw_config_t *cfg = gw_config_load(path, err, sizeof err);
    unlink(path);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_str_eq(cfg->path, path);
    cr_expect_eq(cfg->n_deployments, 1);
    gw_config_free(cfg);
    cr_expect_null(gw_config_load(path, err, sizeof err));
    cr_expect(strstr(err, "cannot open"), "got: %s", err);
}

/* ---------------------------------------------------------------- server settings */

Test(config, server_defaults)
{
    gw_config_t *cfg = load(MIN_MODEL);
    gw_server_settings_t *s = &cfg->server;
    cr_expect_str_eq(s->host, "0.0.0.0");
    cr_expect_eq(s->port, 4000);
    cr_expect_eq(s->workers, 0);
    cr_expect_eq(s->max_request_body, 16u << 20);
    cr_expect_eq(s->max_response_body, 64u << 20);
    cr_expect_eq(s->header_timeout_ms, 10000);
    cr_expect_eq(s->idle_timeout_ms, 120000);
    cr_expect_eq(s->upstream_timeout_ms, 600000);
    cr_expect_eq(s->connect_timeout_ms, 10000);
    cr_expect_eq(s->drain_timeout_ms, 30000);
    cr_expect_eq(s->max_streams_per_conn, 100);
    cr_expect_eq(s->upstream_client, GW_UPSTREAM_CLIENT_AUTO);
    cr_expect_eq(s->journal_sync, 0, "interval");
    cr_expect_eq(s->journal_sync_ms, 100);
    cr_expect_eq(s->spend_writer_ms, 100);
    gw_config_free(cfg);
}

Test(config, tollgate_settings_override)
{
    gw_config_t *cfg = load("tollgate_settings:\n"
                            "  host: 127.0.0.1\n"
                            "  port: \"8080\"\n"
                            "  workers: 4\n"
                            "  max_request_body: 16MB\n"
                            "  max_response_body: 512 KiB\n"
                            "  header_timeout_ms: 5_000\n"
                            "  idle_timeout_ms: 1000\n"
                            "  connect_timeout_ms: 2000\n"
                            "  drain_timeout_ms: 0\n"
                            "  max_streams_per_conn: 50\n"
                            "  turbo: true\n"
                            "  upstream_client: curl\n"
                            "  journal_sync: always\n"
                            "  journal_sync_ms: 250\n"
                            "  spend_writer_ms: 60000\n"
                            "litellm_settings:\n"
                            "  request_timeout: 45\n");
    gw_server_settings_t *s = &cfg->server;
    cr_expect_str_eq(s->host, "127.0.0.1");
    cr_expect_eq(s->port, 8080);
    cr_expect_eq(s->workers, 4);
    cr_expect_eq(s->max_request_body, 16000000);
    cr_expect_eq(s->max_response_body, 512 * 1024);
    cr_expect_eq(s->header_timeout_ms, 5000);
    cr_expect_eq(s->idle_timeout_ms, 1000);
    cr_expect_eq(s->connect_timeout_ms, 2000);
    cr_expect_eq(s->drain_timeout_ms, 0);
    cr_expect_eq(s->max_streams_per_conn, 50);
    cr_expect_eq(s->upstream_client, GW_UPSTREAM_CLIENT_CURL);
    cr_expect_eq(s->journal_sync, 1, "always");
    cr_expect_eq(s->journal_sync_ms, 250);
    cr_expect_eq(s->spend_writer_ms, 60000);
    cr_expect_eq(s->upstream_timeout_ms, 45000, "litellm_settings.request_timeout applies");
    cr_expect(has_warning(cfg, "line 12: unknown key 'turbo' in tollgate_settings"));
    gw_config_free(cfg);

    cfg = load("tollgate_settings:\n  upstream_timeout_ms: 1234\nlitellm_settings:\n  request_timeout: 45\n");
    cr_expect_eq(cfg->server.upstream_timeout_ms, 1234, "tollgate_settings beats request_timeout");
    gw_config_free(cfg);

    cfg = load("litellm_settings:\n  request_timeout: 2.5\n");
    cr_expect_eq(cfg->server.upstream_timeout_ms, 2500);
    gw_config_free(cfg);
}

static const bad_case_t BAD_SERVER[] = {
    {"tollgate_settings:\n  port: 0\n",
     "t.yaml:2:3: tollgate_settings.port must be an integer from 1 to 65535"},
    {"tollgate_settings:\n  port: 65536\n",
     "t.yaml:2:3: tollgate_settings.port must be an integer from 1 to 65535"},
    {"tollgate_settings:\n  port: http\n",
     "t.yaml:2:3: tollgate_settings.port must be an integer from 1 to 65535"},
    {"tollgate_settings:\n  workers: 257\n",
     "t.yaml:2:3: tollgate_settings.workers must be an integer from 0 to 256"},
    {"tollgate_settings:\n  workers: -1\n",
     "t.yaml:2:3: tollgate_settings.workers must be an integer from 0 to 256"},
    {"tollgate_settings:\n  max_request_body: 1023\n",
     "t.yaml:2:3: tollgate_settings.max_request_body must be a size in bytes (or \"16MB\", \"512KiB\") from "
     "1024 to "
     "17179869184"},
    {"tollgate_settings:\n  max_response_body: 12XB\n",
     "t.yaml:2:3: tollgate_settings.max_response_body must be a size in bytes (or \"16MB\", \"512KiB\") from "
     "1024 "
     "to 17179869184"},
    {"tollgate_settings:\n  idle_timeout_ms: 0\n",
     "t.yaml:2:3: tollgate_settings.idle_timeout_ms must be an integer from 1 to 604800000"},
    {"tollgate_settings:\n  host: ''\n", "t.yaml:2:3: tollgate_settings.host must be a non-empty string"},
    {"tollgate_settings: 5\n", "t.yaml:1:1: tollgate_settings must be a mapping"},
    {"tollgate_settings:\n  upstream_client: h2o\n",
     "t.yaml:2:3: tollgate_settings.upstream_client must be one of: auto, curl"},
    {"tollgate_settings:\n  upstream_client: 1\n",
     "t.yaml:2:3: tollgate_settings.upstream_client must be one of: auto, curl"},
    {"tollgate_settings:\n  journal_sync: sometimes\n",
     "t.yaml:2:3: tollgate_settings.journal_sync must be one of: interval, always, none"},
    {"tollgate_settings:\n  journal_sync_ms: 0\n",
     "t.yaml:2:3: tollgate_settings.journal_sync_ms must be an integer from 1 to 60000"},
    {"tollgate_settings:\n  spend_writer_ms: 60001\n",
     "t.yaml:2:3: tollgate_settings.spend_writer_ms must be an integer from 1 to 60000"},
    {"tollgate_settings:\n  port: 0\n  workers: 1\n  port: 0\n",
     "t.yaml:4:3: tollgate_settings.port must be an integer from 1 to 65535"},
    {"litellm_settings:\n  request_timeout: soon\n",
     "t.yaml:2:3: litellm_settings.request_timeout must be a number of seconds from 0.001 to 604800"},
};

Test(config, server_bounds)
{
    for (size_t i = 0; i < sizeof BAD_SERVER / sizeof BAD_SERVER[0]; i++) {
        char err[ERRLEN];
        load_fails(BAD_SERVER[i].yaml, err, sizeof err);
        cr_expect_str_eq(err, BAD_SERVER[i].expect, "case %zu", i);
    }
}

Test(config, unknown_top_level_key_is_a_warning)
{
    gw_config_t *cfg = load("model_list: []\n"
                            "router_settings: {routing_strategy: least-busy}\n"
                            "health_check:\n"
                            "  enabled: true\n");
    cr_expect(has_warning(cfg, "line 3: unknown top-level key 'health_check'"));
    cr_expect_str_eq(json_string_value(json_object_get(cfg->router_settings, "routing_strategy")),
                     "least-busy");
    cr_expect_not_null(cfg->general_settings);
    cr_expect(json_is_object(cfg->environment_variables));
    gw_config_free(cfg);
}

Test(config, warnings_are_capped)
{
    size_t cap = 64 * 1024, len = 0;
    char *yaml = malloc(cap);
    cr_assert_not_null(yaml);
    for (int i = 0; i < 600; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "unknown_%d: 1\n", i);
    gw_config_t *cfg = load(yaml);
    free(yaml);
    cr_expect_eq(cfg->n_warnings, 501);
    cr_expect_str_eq(cfg->warnings[500], "... and 102 more warnings",
                     "600 keys + no model_list + no master key");
    gw_config_free(cfg);
}

Test(config, null_values_keep_defaults)
{
    gw_config_t *cfg =
        load("tollgate_settings:\n"
             "  port:\n"
             "  upstream_timeout_ms: ~\n"
             "litellm_settings:\n"
             "  request_timeout: 7\n"
             "model_list:\n"
             "  - model_name: m\n"
             "    litellm_params: {model: x, api_base: null, base_url: 'http://b/', timeout: null}\n");
    cr_expect_eq(cfg->server.port, 4000);
    cr_expect_eq(cfg->server.upstream_timeout_ms, 7000);
    cr_expect_str_eq(cfg->deployments[0].api_base, "http://b");
    cr_expect_eq(cfg->deployments[0].timeout_s, 0);
    gw_config_free(cfg);
}

/* ---------------------------------------------------------------- dump and redaction */

static char *dump_to_string(const gw_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    gw_config_dump(cfg, f);
    fclose(f);
    return text;
}

Test(config, dump_never_shows_secrets)
{
    unsetenv("TOLLGATE_MASTER_KEY");
    unsetenv("LITELLM_MASTER_KEY");
    setenv("TG_TEST_ENV_SECRET", "sk-FROMENV987", 1);
    gw_config_t *cfg =
        load("model_list:\n"
             "  - model_name: gpt-4o\n"
             "    litellm_params:\n"
             "      model: openai/gpt-4o\n"
             "      api_key: sk-SECRET123\n"
             "      api_base: https://user:pw-SECRET456@proxy.example/v1?api-key=qs-SECRET789&x=1\n"
             "      aws_secret_access_key: aws-SECRET000\n"
             "      vertex_credentials: os.environ/TG_TEST_ENV_SECRET\n"
             "      organization: org-visible\n"
             "  - model_name: other\n"
             "    litellm_params:\n"
             "      model: anthropic/claude\n"
             "general_settings:\n"
             "  master_key: sk-MASTER555\n"
             "  database_url: postgresql://app:db-SECRET/666@db.example:5432/tg\n");
    char *text = dump_to_string(cfg);
    static const char *const SECRETS[] = {"sk-SECRET123",  "SECRET456",    "SECRET789",  "SECRET000",
                                          "sk-FROMENV987", "sk-MASTER555", "SECRET/666", "666"};
    for (size_t i = 0; i < sizeof SECRETS / sizeof SECRETS[0]; i++)
        cr_expect_null(strstr(text, SECRETS[i]), "secret %s leaked:\n%s", SECRETS[i], text);
    cr_expect(strstr(text, "    api_key: <redacted>\n"), "%s", text);
    cr_expect(strstr(text, "    api_key: (unset)\n"), "%s", text);
    cr_expect(strstr(text, "master_key: <redacted>\n"), "%s", text);
    cr_expect(strstr(text, "database_url: postgresql://app:<redacted>@db.example:5432/tg\n"), "%s", text);
    cr_expect(strstr(text, "api_base: https://user:<redacted>@proxy.example/v1?api-key=<redacted>&x=1\n"),
              "%s", text);
    cr_expect(strstr(text, "org-visible"), "non-secret params are shown:\n%s", text);
    cr_expect(strstr(text, "provider: openai\n    upstream_model: gpt-4o\n"), "%s", text);
    free(text);
    gw_config_free(cfg);

    cfg = load(MIN_MODEL);
    text = dump_to_string(cfg);
    cr_expect(strstr(text, "master_key: (none)\n"), "%s", text);
    cr_expect(strstr(text, "  port: 4000\n"), "%s", text);
    free(text);
    gw_config_free(cfg);
}

typedef struct secret_case {
    const char *key;
    int secret;
} secret_case_t;

Test(config, secret_key_names)
{
    static const secret_case_t CASES[] = {
        {"api_key", 1},
        {"master_key", 1},
        {"aws_secret_access_key", 1},
        {"redis_password", 1},
        {"AUTH_TOKEN", 1},
        {"vertex_credentials", 1},
        {"model", 0},
        {"api_base", 0},
        {"organization", 0},
        {NULL, 0},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        cr_expect_eq(gw_config_is_secret_key(CASES[i].key), CASES[i].secret, "%s", CASES[i].key);
}

/* ---------------------------------------------------------------- compatibility corpus */

static const char *corpus_dir(char *buf, size_t n)
{
    const char *root = getenv("TG_SOURCE_DIR");
#ifdef TG_SOURCE_DIR
    if (!root || !*root)
        root = TG_SOURCE_DIR;
#endif
    if (!root || !*root)
        return NULL;
    snprintf(buf, n, "%s/../shared/compat/litellm-configs", root);
    return buf;
}

static const gw_deployment_t *find_model(const gw_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_deployments; i++)
        if (strcmp(cfg->deployments[i].model_name, name) == 0)
            return &cfg->deployments[i];
    return NULL;
}

/* Facts per file (by its two-digit prefix), from the corpus's INDEX.md and the files. */
static void spot_check(const char *file, const gw_config_t *cfg)
{
    const gw_deployment_t *d = cfg->deployments;
    int n = (file[0] - '0') * 10 + (file[1] - '0');
    switch (n) {
    case 2:
        cr_expect_eq(cfg->n_deployments, 35, "%s", file);
        break;
    case 3:
        cr_expect_eq(d[0].rpm, 3, "%s: rpm inside litellm_params", file);
        cr_expect_str_eq(d[0].provider, "bedrock");
        break;
    case 5:
        cr_expect_eq(cfg->server.upstream_timeout_ms, 120000, "%s: request_timeout 120", file);
        break;
    case 6:
        cr_expect_str_eq(d[1].model_name, "*", "%s: wildcard", file);
        cr_expect_str_eq(d[1].upstream_model, "*");
        cr_expect_str_eq(d[0].model_name, "claude-*");
        break;
    case 10:
        cr_expect_eq(d[0].tpm, 20000, "%s: deployment-level tpm", file);
        cr_expect_eq(d[0].rpm, 3, "%s: deployment-level rpm", file);
        cr_expect_str_eq(d[0].provider, "openai", "%s: bare gpt-3.5-turbo", file);
        cr_expect_str_eq(d[2].provider, "openrouter");
        cr_expect_eq(json_integer_value(json_object_get(cfg->environment_variables, "REDIS_PORT")), 6329);
        break;
    case 11:
        cr_expect_eq(d[0].tpm, 80000, "%s: 80_000", file);
        cr_expect(json_is_integer(json_object_get(d[0].litellm_params, "tpm")), "%s: tpm is an int", file);
        cr_expect_str_eq(d[0].provider, "azure");
        cr_expect_str_eq(d[0].api_base, "https://my-endpoint-canada-berri992.openai.azure.com");
        break;
    case 12:
        cr_expect(has_warning(cfg, "duplicate key 'store_model_in_db'"), "%s", file);
        cr_expect(json_is_array(json_object_get(cfg->root, "agents")), "%s: agents kept", file);
        break;
    case 14:
        cr_expect_str_eq(d[0].provider, "agno", "%s: custom_llm_provider", file);
        cr_expect(has_warning(cfg, "unknown top-level key 'server'") == 0, "%s: server is known", file);
        break;
    case 16:
        cr_expect_eq(cfg->n_deployments, 95, "%s", file);
        break;
    case 17:
        cr_expect_not_null(cfg->database_url, "%s: literal database_url", file);
        break;
    case 21:
        cr_expect_null(d[0].api_base, "%s: api_base: null", file);
        cr_expect_eq(d[0].timeout_s, 60);
        cr_expect(has_warning(cfg, "unknown top-level key 'health_check'"), "%s", file);
        break;
    case 26:
        cr_expect_not_null(find_model(cfg, "Amazon Nova Pro"), "%s: names with spaces", file);
        break;
    case 27:
        cr_expect_eq(cfg->n_deployments, 38, "%s", file);
        break;
    case 29:
        cr_expect_eq(d[0].input_cost_per_token, 0.00002, "%s: cost from model_info", file);
        cr_expect_eq(d[0].output_cost_per_token, 0.00004);
        break;
    case 30:
        cr_expect_not_null(find_model(cfg, "ollama/medgemma:27b"), "%s", file);
        cr_expect(has_warning(cfg, "unknown top-level key 'model_group_settings'"), "%s", file);
        break;
    default:
        break;
    }
}

/* File 19 is the corpus's negative test: litellm_params is {} (LiteLLM cannot load it either). */
static void check_corpus_file(const char *dir, const char *file, size_t *loaded)
{
    char path[1024], err[ERRLEN];
    int pn = snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert(pn > 0 && (size_t)pn < sizeof path, "path too long: %s/%s", dir, file);
    gw_config_t *cfg = gw_config_load(path, err, sizeof err);
    if (strncmp(file, "19-", 3) == 0) {
        cr_expect_null(cfg, "%s must fail", file);
        cr_expect(strstr(err, ":2:5: model_list[0] ('llama3-8b-instruct'): litellm_params.model is missing"),
                  "got: %s", err);
        gw_config_free(cfg);
        return;
    }
    cr_assert_not_null(cfg, "%s failed: %s", file, err);
    cr_expect_gt(cfg->n_deployments, 0, "%s", file);
    spot_check(file, cfg);
    char *text = dump_to_string(cfg);
    cr_expect_null(strstr(text, "REDACTED"), "%s: a placeholder secret reached the dump", file);
    free(text);
    gw_config_free(cfg);
    (*loaded)++;
}

Test(config, compat_corpus_loads)
{
    char dir[1024];
    if (!corpus_dir(dir, sizeof dir))
        cr_skip_test("TG_SOURCE_DIR is not set: cannot find the compatibility corpus");
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        cr_skip_test("compatibility corpus not found at %s", dir);
    size_t loaded = 0, files = 0;
    for (int i = 0; i < n; i++) {
        const char *f = names[i]->d_name;
        size_t len = strlen(f);
        if (len > 5 && strcmp(f + len - 5, ".yaml") == 0) {
            files++;
            check_corpus_file(dir, f, &loaded);
        }
        free(names[i]);
    }
    free(names);
    cr_expect_geq(files, 30, "expected the 30 corpus files, found %zu", files);
    cr_expect_eq(loaded + 1, files, "every file but the negative test loads");
}
