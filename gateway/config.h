/*
 * config.h — Tollgate's configuration: LiteLLM's config.yaml, read as LiteLLM reads it.
 *
 * The YAML file is converted to a JSON tree (jansson) with YAML 1.1 scalar rules (PyYAML's:
 * `80_000` is an int, `True`/`yes` are booleans, `~` and empty are null; anchors, aliases and `<<`
 * merge keys work; a duplicate key keeps its last value, with a warning). Beyond PyYAML, `1e-6`
 * is a float; JSON cannot hold infinities or NaN, so `.inf` reads as the largest double and
 * `.nan` as null; ints past int64 read as doubles. Every string of the form
 * `os.environ/NAME` is replaced by that environment variable's value (null when unset), and the
 * known parts are lifted into typed structs below. Sections we do not act on yet
 * (`router_settings`, `litellm_settings`, the rest of `general_settings`, …) are kept verbatim as
 * JSON for the modules that will. Unknown keys produce warnings, never errors; a file that is not
 * YAML produces an error naming the line and column.
 *
 * A gw_config_t is immutable once loaded and owned by whoever called gw_config_load; workers read
 * it without locks.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** One `model_list` entry. Strings are owned by the config; NULL when absent. */
typedef struct gw_deployment {
    char *model_name;     /* public name clients send (`model_name`), may contain '/', '*' */
    char *provider;       /* prefix of litellm_params.model before the first '/', e.g. "openai";
                           * "openai" when the model has no prefix (LiteLLM's default);
                           * litellm_params.custom_llm_provider when that is set */
    char *upstream_model; /* litellm_params.model after the first '/' (whole value if no '/');
                           * with custom_llm_provider, the whole value minus a leading
                           * "<custom_llm_provider>/" (LiteLLM strips that one prefix) */
    char *api_base;       /* litellm_params.api_base (or base_url), trailing '/' removed */
    char *api_key;        /* secret: never printed */
    char *api_version;
    double timeout_s;        /* litellm_params.timeout, 0 = use default */
    double stream_timeout_s; /* litellm_params.stream_timeout, 0 = use timeout */
    int64_t rpm, tpm;        /* litellm_params.rpm/tpm, or deployment-level rpm/tpm; 0 = none */
    double weight;           /* litellm_params.weight, default 1 */
    double input_cost_per_token, output_cost_per_token; /* litellm_params or model_info; 0 = unset */
    json_t *litellm_params; /* the whole litellm_params object after env resolution (borrowed ref
                             * owned by the config): adapters read provider-specific keys here */
    json_t *model_info;     /* model_info object or NULL */
    size_t index;           /* position in model_list */
} gw_deployment_t;

/** tollgate_settings.upstream_client: which HTTP client carries upstream requests. */
typedef enum gw_upstream_client {
    GW_UPSTREAM_CLIENT_AUTO = 0, /* "auto": h2o's HTTP/1.1 client for http://, libcurl otherwise */
    GW_UPSTREAM_CLIENT_CURL,     /* "curl": libcurl for every URL */
} gw_upstream_client_t;

/**
 * Server knobs: `tollgate_settings` section (ours; LiteLLM ignores it) plus CLI overrides.
 * Bounds (a value outside is a load error): port 1..65535, workers 0..256, bodies 1 KiB..16 GiB
 * given as bytes or as a string with a unit (B, KB/MB/GB = powers of 1000, KiB/MiB/GiB = powers
 * of 1024: "16MB", "512 KiB"), timeouts 1 ms..7 days (drain may be 0), streams 1..10000. Numbers
 * may also be written as numeric strings.
 */
typedef struct gw_server_settings {
    char *host;                   /* default "0.0.0.0" */
    int port;                     /* default 4000 */
    int workers;                  /* default 0 = number of CPUs */
    size_t max_request_body;      /* bytes, default 16 MiB; 413 past it */
    size_t max_response_body;     /* bytes, default 64 MiB; ceiling for buffered upstream bodies */
    uint64_t header_timeout_ms;   /* default 10000: time to receive a request's headers */
    uint64_t idle_timeout_ms;     /* default 120000: idle keep-alive / h2 connection */
    uint64_t upstream_timeout_ms; /* default 600000 (LiteLLM's request_timeout default is 6000 s;
                                   * we take litellm_settings.request_timeout when set) */
    uint64_t connect_timeout_ms;  /* default 10000 */
    uint64_t drain_timeout_ms;    /* default 30000: SIGTERM waits this long for live requests */
    int max_streams_per_conn;     /* default 100 (h2 concurrent streams) */
    /* "auto" (default): h2o's HTTP/1.1 client for http:// upstreams; "curl": libcurl always */
    gw_upstream_client_t upstream_client;
    /* Spend journal (DESIGN §7): journal_sync "interval" (default: fdatasync every
     * journal_sync_ms off the loop, default 100), "always" (the response's last byte waits for
     * an fdatasync on the sync thread; the loop does not), "none" (never: tests, tmpfs);
     * spend_writer_ms (default 100): how often the writer moves journal records into the store. */
    int journal_sync; /* gw_spend_sync_mode_t: 0 interval, 1 always, 2 none */
    uint64_t journal_sync_ms;
    uint64_t spend_writer_ms;
} gw_server_settings_t;

typedef struct gw_config {
    char *path;                   /* file it came from */
    json_t *root;                 /* whole document after env resolution */
    gw_deployment_t *deployments; /* model_list, in file order */
    size_t n_deployments;
    char *master_key;              /* general_settings.master_key, else TOLLGATE_MASTER_KEY, else
                                    * LITELLM_MASTER_KEY; NULL = no auth (warned) */
    char *database_url;            /* general_settings.database_url or DATABASE_URL */
    json_t *general_settings;      /* borrowed from root, never NULL (empty object if absent) */
    json_t *router_settings;       /* likewise */
    json_t *litellm_settings;      /* likewise */
    json_t *environment_variables; /* likewise; applied with setenv(…, 0) before resolution */
    gw_server_settings_t server;
    char **warnings; /* human-readable, e.g. "line 12: unknown key 'foo' in model_list[3]" */
    size_t n_warnings;
} gw_config_t;

/**
 * Loads and validates FILE (at most 16 MiB). On success returns a config and *err is untouched;
 * on failure returns NULL and writes a one-line message ("FILE:LINE:COL: what is wrong", or
 * "FILE: what is wrong" when there is no position) into err.
 *
 * Side effect: `environment_variables` are exported with setenv(name, value, 0) (the process's
 * own environment wins, as in LiteLLM). setenv is not thread-safe: load before starting worker
 * threads, or on reload from the one thread that handles SIGHUP.
 */
gw_config_t *gw_config_load(const char *path, char *err, size_t errlen);

/** Same, from a string in memory (tests); name is used in messages. */
gw_config_t *gw_config_load_string(const char *yaml, size_t len, const char *name, char *err, size_t errlen);

void gw_config_free(gw_config_t *cfg);

/**
 * Writes what was understood, as YAML-ish indented text, with every secret redacted
 * (api_key, master_key, database_url password, any key whose name contains "key", "secret",
 * "password" or "token" shows "<redacted>"). Used by `tollgate check-config`.
 */
void gw_config_dump(const gw_config_t *cfg, FILE *out);

/**
 * 1 when a key name denotes a secret whose value must never be printed: it contains, in any case,
 * "key", "secret", "password", "passwd", "token", "credential" or "auth". Printers show such
 * values as "<redacted>" (no prefix or length is ever shown). Errs towards hiding: "max_tokens"
 * counts as secret.
 */
int gw_config_is_secret_key(const char *key);

#endif
