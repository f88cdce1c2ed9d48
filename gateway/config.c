/*
 * config.c — reads a LiteLLM config.yaml into a gw_config_t.
 *
 * The order of the passes follows LiteLLM's proxy start-up so that the same file means the same
 * thing here: the YAML is parsed (config_yaml.c), `environment_variables` is exported without
 * overwriting what the process already has, then every `os.environ/NAME` string is replaced by
 * that variable, and only then are the known parts lifted into structs. Whatever we do not act
 * on stays in the JSON tree for the modules that will.
 *
 * Leniency is deliberate: LiteLLM ignores keys it does not know, and real configs are full of
 * them (see the compatibility corpus), so unknown keys are warnings with a line number. Values
 * we act on are validated strictly, and a deployment LiteLLM could not route (no
 * litellm_params.model) is an error naming the entry and its line.
 *
 * Loading calls setenv(), which is not thread-safe: load before starting workers, or from the
 * one thread that handles SIGHUP while no other thread reads the environment.
 */
#include "gateway/config.h"
#include "gateway/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENV_PREFIX "os.environ/"
#define WEEK_MS 604800000ull
#define MAX_BODY (16ull << 30) /* 16 GiB: past that a "buffered" body is a mistake */

typedef struct loader {
    const char *name;
    gw_yaml_doc_t doc;
    gw_warnings_t warn;
    gw_config_t *cfg;
    char *err;
    size_t errlen;
} loader_t;

const char *const gw_config_top_keys[] = {"model_list",
                                          "litellm_settings",
                                          "general_settings",
                                          "router_settings",
                                          "environment_variables",
                                          "guardrails",
                                          "agents",
                                          "server",
                                          "mcp_servers",
                                          "callback_settings",
                                          "credential_list",
                                          "tollgate_settings",
                                          "vector_store_registry",
                                          "search_tools",
                                          "prompts",
                                          "files_settings",
                                          "finetune_settings",
                                          "assistant_settings",
                                          "pass_through_endpoints",
                                          NULL};

static const char *const DEPLOYMENT_KEYS[] = {"model_name", "litellm_params", "model_info", "tpm", "rpm",
                                              NULL};

int gw_config_in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- messages */

/* Copies a name from the file for a message: at most 64 bytes, control characters as '?'. */
static const char *clean(const char *s, char *buf, size_t n)
{
    size_t k = 0;
    for (; s[k] && k + 1 < n && k < 64; k++)
        buf[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
    buf[k] = '\0';
    return buf;
}

static int fail(loader_t *ld, const json_t *node, const char *key, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* err = "NAME:LINE:COL: what" when the position of node/key/index is known, else "NAME: what". */
static int fail(loader_t *ld, const json_t *node, const char *key, size_t index, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line, col;
    if (node && gw_yaml_where(&ld->doc, node, key, index, &line, &col))
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->name, line, col, what);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->name, what);
    return -1;
}

static void warn_at(loader_t *ld, const json_t *node, const char *key, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Adds "line N: what" (or just "what" when the position is unknown, e.g. inside an alias copy). */
static void warn_at(loader_t *ld, const json_t *node, const char *key, size_t index, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line, col;
    if (node && gw_yaml_where(&ld->doc, node, key, index, &line, &col))
        gw_warn(&ld->warn, "line %d: %s", line, what);
    else
        gw_warn(&ld->warn, "%s", what);
}

static int oom(loader_t *ld)
{
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->name);
    return -1;
}

/* ---------------------------------------------------------------- typed reads */

void gw_config_fmt_double(char *buf, size_t n, double d)
{
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(buf, n, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* A number from a JSON number or a numeric string ("30", "1e-6", "80_000"). 1 = ok, 0 = not a
 * finite number. */
static int read_number(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    if (!json_is_string(v))
        return 0;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    int64_t iv;
    int big = 0;
    if (gw_yaml_parse_int(s, n, &iv, out, &big)) {
        if (!big)
            *out = (double)iv;
        return 1;
    }
    return gw_yaml_parse_float(s, n, out) && isfinite(*out);
}

/* A non-negative integer from an int, an integral real or an integer string. */
static int read_uint(const json_t *v, uint64_t *out)
{
    double d;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return 0;
        *out = (uint64_t)json_integer_value(v);
        return 1;
    }
    if (!read_number(v, &d) || d < 0 || d != floor(d) || d >= 18446744073709551616.0)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

/* "16MB", "512 KiB", "1048576": KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024. */
static int read_size(const json_t *v, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } UNITS[] = {{"", 1},
                 {"b", 1},
                 {"kb", 1000},
                 {"mb", 1000000},
                 {"gb", 1000000000},
                 {"kib", 1ull << 10},
                 {"mib", 1ull << 20},
                 {"gib", 1ull << 30}};
    if (!json_is_string(v))
        return read_uint(v, out);
    const char *s = json_string_value(v);
    size_t i = 0;
    uint64_t num = 0;
    int digits = 0;
    for (; isdigit((unsigned char)s[i]) || (digits && s[i] == '_'); i++) {
        if (s[i] == '_')
            continue;
        digits++;
        if (__builtin_mul_overflow(num, 10u, &num) ||
            __builtin_add_overflow(num, (uint64_t)(s[i] - '0'), &num))
            return 0;
    }
    while (s[i] == ' ')
        i++;
    for (size_t k = 0; digits && k < sizeof UNITS / sizeof UNITS[0]; k++)
        if (strcasecmp(s + i, UNITS[k].unit) == 0)
            return !__builtin_mul_overflow(num, UNITS[k].mult, out);
    return 0;
}

/* Text of a scalar a user may have left unquoted (api_version: 2024, api_key: 12345). */
static char *scalar_text(const json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        gw_config_fmt_double(buf, sizeof buf, json_real_value(v));
    else
        return NULL;
    return strdup(buf);
}

/* ---------------------------------------------------------------- environment */

/* NAME of a string "os.environ/NAME", else NULL. */
static const char *env_ref(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t plen = strlen(ENV_PREFIX);
    if (strncmp(s, ENV_PREFIX, plen) != 0 || s[plen] == '\0' || strlen(s) != json_string_length(v))
        return NULL;
    return s + plen;
}

/* environment_variables values as LiteLLM exports them: str(value), so True -> "True". */
static int env_value_text(loader_t *ld, json_t *ev, const char *name, json_t *v, char *buf, size_t n,
                          const char **out)
{
    char cn[80];
    const char *ref = env_ref(v);
    if (ref) {
        *out = getenv(ref);
        if (!*out)
            warn_at(ld, ev, name, SIZE_MAX,
                    "environment_variables.%s: os.environ/%s is not set; not exported",
                    clean(name, cn, sizeof cn), clean(ref, buf, n));
        return *out != NULL;
    }
    if (json_is_string(v))
        *out = json_string_value(v);
    else if (json_is_boolean(v))
        *out = json_is_true(v) ? "True" : "False";
    else if (json_is_integer(v) || json_is_real(v)) {
        char *t = scalar_text(v);
        if (!t)
            return 0;
        snprintf(buf, n, "%s", t);
        free(t);
        *out = buf;
    } else {
        warn_at(ld, ev, name, SIZE_MAX, "environment_variables.%s is not a text value; not exported",
                clean(name, cn, sizeof cn));
        return 0;
    }
    return 1;
}

/* Exports environment_variables without overwriting the process's own (setenv(..., 0)), as
 * LiteLLM lets the real environment win. */
static void export_env_vars(loader_t *ld, json_t *ev)
{
    const char *name;
    json_t *v;
    json_object_foreach(ev, name, v)
    {
        char buf[128];
        const char *text;
        if (!env_value_text(ld, ev, name, v, buf, sizeof buf, &text))
            continue;
        if (setenv(name, text, 0) != 0) {
            char cn[80];
            warn_at(ld, ev, name, SIZE_MAX, "environment_variables.%s cannot be exported (%s)",
                    clean(name, cn, sizeof cn), strerror(errno));
        }
    }
}

/* The value an "os.environ/NAME" string stands for: the variable, or null (with a warning). */
static json_t *env_value(loader_t *ld, const char *var, const json_t *node, const char *key, size_t index)
{
    char cv[80];
    const char *val = getenv(var);
    json_t *out = val ? json_string(val) : NULL;
    if (!val)
        warn_at(ld, node, key, index, "os.environ/%s is not set; using null", clean(var, cv, sizeof cv));
    else if (!out)
        warn_at(ld, node, key, index, "os.environ/%s is not valid UTF-8; using null",
                clean(var, cv, sizeof cv));
    return out ? out : json_null();
}

/* Replaces every os.environ/ string under node, in place. Depth is bounded by the parser. */
static int resolve_env(loader_t *ld, json_t *node)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach(node, key, v)
        {
            const char *var = env_ref(v);
            if (var ? json_object_set_new(node, key, env_value(ld, var, node, key, SIZE_MAX)) != 0
                    : resolve_env(ld, v) != 0)
                return -1;
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v)
        {
            const char *var = env_ref(v);
            if (var ? json_array_set_new(node, i, env_value(ld, var, node, NULL, i)) != 0
                    : resolve_env(ld, v) != 0)
                return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- sections */

/* A top-level mapping the config keeps verbatim: absent or null becomes an empty mapping in the
 * tree (so callers never see NULL); any other non-mapping is an error. */
static int section(loader_t *ld, const char *key, json_t **out)
{
    json_t *root = ld->doc.root;
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        v = json_object();
        if (!v || json_object_set_new(root, key, v) != 0)
            return oom(ld);
    } else if (!json_is_object(v)) {
        return fail(ld, root, key, SIZE_MAX, "%s must be a mapping", key);
    }
    *out = v;
    return 0;
}

static void check_top_keys(loader_t *ld)
{
    const char *key;
    json_t *v;
    json_object_foreach(ld->doc.root, key, v)
    {
        char ck[80];
        if (!gw_config_in_list(key, gw_config_top_keys))
            warn_at(ld, ld->doc.root, key, SIZE_MAX, "unknown top-level key '%s' (ignored)",
                    clean(key, ck, sizeof ck));
    }
}

/* Non-empty string setting, else the first non-empty environment variable of envs. */
static int secret_setting(loader_t *ld, const char *key, const char *const *envs, char **out)
{
    json_t *gs = ld->cfg->general_settings;
    json_t *v = json_object_get(gs, key);
    const char *s = NULL;
    if (v && !json_is_null(v) && !json_is_string(v))
        return fail(ld, gs, key, SIZE_MAX, "general_settings.%s must be a string", key);
    if (json_is_string(v) && json_string_length(v) > 0)
        s = json_string_value(v);
    for (; !s && *envs; envs++) {
        const char *e = getenv(*envs);
        s = e && *e ? e : NULL;
    }
    if (s && !(*out = strdup(s)))
        return oom(ld);
    return 0;
}

static int load_secrets(loader_t *ld)
{
    static const char *const MASTER_ENVS[] = {"TOLLGATE_MASTER_KEY", "LITELLM_MASTER_KEY", NULL};
    static const char *const DB_ENVS[] = {"DATABASE_URL", NULL};
    if (secret_setting(ld, "master_key", MASTER_ENVS, &ld->cfg->master_key) ||
        secret_setting(ld, "database_url", DB_ENVS, &ld->cfg->database_url))
        return -1;
    if (!ld->cfg->master_key)
        gw_warn(&ld->warn, "no master_key (general_settings.master_key, TOLLGATE_MASTER_KEY or "
                           "LITELLM_MASTER_KEY): requests are not authenticated");
    return 0;
}

/* ---------------------------------------------------------------- server settings */

typedef enum { S_STR, S_INT, S_SIZE, S_MS, S_ENUM } setting_kind_t;

/* tollgate_settings: name, type, bounds. Defaults are in server_defaults(). */
typedef struct setting {
    const char *name;
    setting_kind_t kind;
    size_t off;
    uint64_t min, max;
    const char *const *names; /* S_ENUM: the accepted strings, index = value (int field) */
} setting_t;

static const char *const UPSTREAM_CLIENTS[] = {"auto", "curl", NULL};            /* gw_upstream_client_t */
static const char *const JOURNAL_SYNCS[] = {"interval", "always", "none", NULL}; /* gw_spend_sync_mode_t */

#define SOFF(f) offsetof(gw_server_settings_t, f)
static const setting_t SETTINGS[] = {
    {"host", S_STR, SOFF(host), 0, 0, NULL},
    {"port", S_INT, SOFF(port), 1, 65535, NULL},
    {"workers", S_INT, SOFF(workers), 0, 256, NULL},
    {"max_request_body", S_SIZE, SOFF(max_request_body), 1024, MAX_BODY, NULL},
    {"max_response_body", S_SIZE, SOFF(max_response_body), 1024, MAX_BODY, NULL},
    {"header_timeout_ms", S_MS, SOFF(header_timeout_ms), 1, WEEK_MS, NULL},
    {"idle_timeout_ms", S_MS, SOFF(idle_timeout_ms), 1, WEEK_MS, NULL},
    {"upstream_timeout_ms", S_MS, SOFF(upstream_timeout_ms), 1, WEEK_MS, NULL},
    {"connect_timeout_ms", S_MS, SOFF(connect_timeout_ms), 1, WEEK_MS, NULL},
    {"drain_timeout_ms", S_MS, SOFF(drain_timeout_ms), 0, WEEK_MS, NULL},
    {"max_streams_per_conn", S_INT, SOFF(max_streams_per_conn), 1, 10000, NULL},
    {"upstream_client", S_ENUM, SOFF(upstream_client), 0, 1, UPSTREAM_CLIENTS},
    {"journal_sync", S_ENUM, SOFF(journal_sync), 0, 2, JOURNAL_SYNCS},
    {"journal_sync_ms", S_MS, SOFF(journal_sync_ms), 1, 60000, NULL},
    {"spend_writer_ms", S_MS, SOFF(spend_writer_ms), 1, 60000, NULL},
};
#define N_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

static int server_defaults(gw_server_settings_t *s)
{
    *s = (gw_server_settings_t){
        .host = strdup("0.0.0.0"),
        .port = 4000,
        .workers = 0,
        .max_request_body = 16u << 20,
        .max_response_body = 64u << 20,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 120000,
        .upstream_timeout_ms = 600000,
        .connect_timeout_ms = 10000,
        .drain_timeout_ms = 30000,
        .max_streams_per_conn = 100,
        .journal_sync_ms = 100,
        .spend_writer_ms = 100,
    };
    return s->host ? 0 : -1;
}

static int apply_setting(loader_t *ld, const json_t *ts, const setting_t *st, const json_t *v)
{
    char *field = (char *)&ld->cfg->server + st->off;
    uint64_t n = 0;
    if (st->kind == S_STR) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return fail(ld, ts, st->name, SIZE_MAX, "tollgate_settings.%s must be a non-empty string",
                        st->name);
        char *copy = strdup(json_string_value(v));
        if (!copy)
            return oom(ld);
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    if (st->kind == S_ENUM) {
        for (int i = 0; json_is_string(v) && st->names[i]; i++) {
            if (strcmp(json_string_value(v), st->names[i]) == 0) {
                *(int *)field = i; /* enum fields are int-sized */
                return 0;
            }
        }
        char list[128] = "";
        for (int i = 0; st->names[i]; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", st->names[i]);
        return fail(ld, ts, st->name, SIZE_MAX, "tollgate_settings.%s must be one of: %s", st->name, list);
    }
    int ok = st->kind == S_SIZE ? read_size(v, &n) : read_uint(v, &n);
    if (!ok || n < st->min || n > st->max)
        return fail(ld, ts, st->name, SIZE_MAX, "tollgate_settings.%s must be %s from %llu to %llu", st->name,
                    st->kind == S_SIZE ? "a size in bytes (or \"16MB\", \"512KiB\")" : "an integer",
                    (unsigned long long)st->min, (unsigned long long)st->max);
    if (st->kind == S_INT)
        *(int *)field = (int)n;
    else if (st->kind == S_SIZE)
        *(size_t *)field = (size_t)n;
    else
        *(uint64_t *)field = n;
    return 0;
}

static int apply_tollgate_settings(loader_t *ld, const json_t *ts)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)ts, key, v)
    {
        const setting_t *st = NULL;
        for (size_t i = 0; i < N_SETTINGS && !st; i++)
            st = strcmp(SETTINGS[i].name, key) == 0 ? &SETTINGS[i] : NULL;
        char ck[80];
        if (json_is_null(v))
            continue; /* `port:` with no value keeps the default */
        if (!st)
            warn_at(ld, ts, key, SIZE_MAX, "unknown key '%s' in tollgate_settings (ignored)",
                    clean(key, ck, sizeof ck));
        else if (apply_setting(ld, ts, st, v) != 0)
            return -1;
    }
    return 0;
}

/* litellm_settings.request_timeout is LiteLLM's upstream timeout in seconds. */
static int apply_request_timeout(loader_t *ld)
{
    json_t *ls = ld->cfg->litellm_settings;
    json_t *v = json_object_get(ls, "request_timeout");
    double s;
    if (!v || json_is_null(v))
        return 0;
    if (!read_number(v, &s) || s * 1000.0 < 1.0 || s * 1000.0 > (double)WEEK_MS)
        return fail(ld, ls, "request_timeout", SIZE_MAX,
                    "litellm_settings.request_timeout must be a number of seconds from 0.001 to %llu",
                    WEEK_MS / 1000);
    ld->cfg->server.upstream_timeout_ms = (uint64_t)llround(s * 1000.0);
    return 0;
}

static int load_server(loader_t *ld)
{
    if (server_defaults(&ld->cfg->server) != 0)
        return oom(ld);
    json_t *root = ld->doc.root;
    json_t *ts = json_object_get(root, "tollgate_settings");
    if (ts && !json_is_null(ts) && !json_is_object(ts))
        return fail(ld, root, "tollgate_settings", SIZE_MAX, "tollgate_settings must be a mapping");
    if (json_is_object(ts) && apply_tollgate_settings(ld, ts) != 0)
        return -1;
    const json_t *up = json_object_get(ts, "upstream_timeout_ms");
    if (!up || json_is_null(up))
        return apply_request_timeout(ld);
    return 0;
}

/* ---------------------------------------------------------------- deployments */

/* What one model_list entry is being read from. */
typedef struct entry {
    const json_t *list;
    size_t index;
    json_t *item;    /* the entry mapping */
    json_t *params;  /* its litellm_params */
    char label[112]; /* "model_list[3] ('gpt-4o')" for messages */
} entry_t;

static int entry_fail(loader_t *ld, const entry_t *e, const char *what)
{
    return fail(ld, e->list, NULL, e->index, "%s: %s", e->label, what);
}

/* Provider and upstream model, as LiteLLM's get_llm_provider splits them. */
static int split_model(loader_t *ld, const entry_t *e, gw_deployment_t *d, const char *model)
{
    const json_t *cp = json_object_get(e->params, "custom_llm_provider");
    const char *custom = json_is_string(cp) && json_string_length(cp) > 0 ? json_string_value(cp) : NULL;
    const char *up = model;
    if (custom) {
        /* LiteLLM strips the prefix only when it names the same provider ("azure/x" + azure). */
        size_t cl = strlen(custom);
        if (strncmp(model, custom, cl) == 0 && model[cl] == '/')
            up = model + cl + 1;
        d->provider = strdup(custom);
    } else if (strchr(model, '/')) {
        up = strchr(model, '/') + 1;
        d->provider = strndup(model, (size_t)(up - 1 - model));
    } else {
        d->provider = strdup("openai"); /* LiteLLM's default for unprefixed names */
    }
    if (!d->provider || !(d->upstream_model = strdup(up)))
        return oom(ld);
    if (!d->provider[0] || !d->upstream_model[0])
        return fail(ld, e->params, "model", SIZE_MAX,
                    "%s: litellm_params.model has an empty provider or model", e->label);
    return 0;
}

static int read_identity(loader_t *ld, entry_t *e, gw_deployment_t *d)
{
    json_t *name = json_object_get(e->item, "model_name");
    char cn[80];
    if (!json_is_string(name) || json_string_length(name) == 0)
        return entry_fail(ld, e, "model_name is missing or not a string");
    if (!(d->model_name = strdup(json_string_value(name))))
        return oom(ld);
    snprintf(e->label, sizeof e->label, "model_list[%zu] ('%s')", e->index,
             clean(d->model_name, cn, sizeof cn));
    e->params = json_object_get(e->item, "litellm_params");
    if (e->params && !json_is_null(e->params) && !json_is_object(e->params))
        return entry_fail(ld, e, "litellm_params must be a mapping");
    const json_t *model = json_object_get(e->params, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return entry_fail(ld, e, "litellm_params.model is missing (LiteLLM cannot route this entry)");
    d->litellm_params = e->params;
    return split_model(ld, e, d, json_string_value(model));
}

/* A string-ish litellm_params field; numbers are taken as their text. NULL when absent/null. */
static int read_text(loader_t *ld, const entry_t *e, const char *key, char **out)
{
    json_t *v = json_object_get(e->params, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v) || json_is_object(v) || json_is_array(v))
        return fail(ld, e->params, key, SIZE_MAX, "%s: litellm_params.%s must be a string", e->label, key);
    return (*out = scalar_text(v)) ? 0 : oom(ld);
}

static int read_endpoint(loader_t *ld, const entry_t *e, gw_deployment_t *d)
{
    const json_t *ab = json_object_get(e->params, "api_base");
    const char *base_key = ab && !json_is_null(ab) ? "api_base" : "base_url";
    if (read_text(ld, e, base_key, &d->api_base) || read_text(ld, e, "api_key", &d->api_key) ||
        read_text(ld, e, "api_version", &d->api_version))
        return -1;
    if (d->api_base) {
        size_t n = strlen(d->api_base);
        while (n > 0 && d->api_base[n - 1] == '/')
            d->api_base[--n] = '\0';
    }
    return 0;
}

/* A number >= 0 from litellm_params[key], falling back to fallback[key] (may be NULL). */
static int read_amount(loader_t *ld, const entry_t *e, const json_t *fallback, const char *key, double *out)
{
    const json_t *src = e->params;
    json_t *v = json_object_get(src, key);
    if ((!v || json_is_null(v)) && fallback) {
        src = fallback;
        v = json_object_get(src, key);
    }
    if (!v || json_is_null(v))
        return 0;
    if (!read_number(v, out) || *out < 0)
        return fail(ld, src, key, SIZE_MAX, "%s: %s must be a number >= 0", e->label, key);
    return 0;
}

/* rpm/tpm: litellm_params first, then the deployment level (LiteLLM's load_balancer.yaml). */
static int read_limit(loader_t *ld, const entry_t *e, const char *key, int64_t *out)
{
    const json_t *src = e->params;
    json_t *v = json_object_get(src, key);
    uint64_t n;
    if (!v || json_is_null(v)) {
        src = e->item;
        v = json_object_get(src, key);
    }
    if (!v || json_is_null(v))
        return 0;
    if (!read_uint(v, &n) || n > INT64_MAX)
        return fail(ld, src, key, SIZE_MAX, "%s: %s must be a whole number >= 0", e->label, key);
    *out = (int64_t)n;
    return 0;
}

static int read_limits(loader_t *ld, const entry_t *e, gw_deployment_t *d)
{
    d->weight = 1;
    json_t *mi = json_object_get(e->item, "model_info");
    d->model_info = json_is_object(mi) ? mi : NULL;
    if (mi && !json_is_null(mi) && !d->model_info)
        warn_at(ld, e->item, "model_info", SIZE_MAX, "%s: model_info is not a mapping (ignored)", e->label);
    if (read_amount(ld, e, NULL, "timeout", &d->timeout_s) ||
        read_amount(ld, e, NULL, "stream_timeout", &d->stream_timeout_s) ||
        read_amount(ld, e, NULL, "weight", &d->weight) || read_limit(ld, e, "rpm", &d->rpm) ||
        read_limit(ld, e, "tpm", &d->tpm) ||
        read_amount(ld, e, d->model_info, "input_cost_per_token", &d->input_cost_per_token) ||
        read_amount(ld, e, d->model_info, "output_cost_per_token", &d->output_cost_per_token))
        return -1;
    return 0;
}

static int load_deployment(loader_t *ld, const json_t *list, size_t i, gw_deployment_t *d)
{
    entry_t e = {.list = list, .index = i, .item = json_array_get(list, i)};
    snprintf(e.label, sizeof e.label, "model_list[%zu]", i);
    d->index = i;
    if (!json_is_object(e.item))
        return entry_fail(ld, &e, "an entry must be a mapping with model_name and litellm_params");
    const char *key;
    json_t *v;
    json_object_foreach(e.item, key, v)
    {
        char ck[80];
        if (!gw_config_in_list(key, DEPLOYMENT_KEYS))
            warn_at(ld, e.item, key, SIZE_MAX, "unknown key '%s' in %s (ignored)", clean(key, ck, sizeof ck),
                    e.label);
    }
    if (read_identity(ld, &e, d) || read_endpoint(ld, &e, d) || read_limits(ld, &e, d))
        return -1;
    return 0;
}

static int load_models(loader_t *ld)
{
    json_t *root = ld->doc.root;
    json_t *list = json_object_get(root, "model_list");
    if (!list || json_is_null(list)) {
        gw_warn(&ld->warn, "no model_list: no models are configured");
        return 0;
    }
    if (!json_is_array(list))
        return fail(ld, root, "model_list", SIZE_MAX, "model_list must be a list");
    size_t n = json_array_size(list);
    if (n == 0)
        return 0;
    ld->cfg->deployments = calloc(n, sizeof *ld->cfg->deployments);
    if (!ld->cfg->deployments)
        return oom(ld);
    ld->cfg->n_deployments = n; /* every slot is zeroed, so a partial load frees cleanly */
    for (size_t i = 0; i < n; i++)
        if (load_deployment(ld, list, i, &ld->cfg->deployments[i]) != 0)
            return -1;
    return 0;
}

/* ---------------------------------------------------------------- entry points */

static int load_tree(loader_t *ld)
{
    gw_config_t *cfg = ld->cfg;
    json_t *root = ld->doc.root;
    if (!root)
        return fail(ld, NULL, NULL, 0, "the file holds no YAML document");
    if (!json_is_object(root))
        return fail(ld, root, NULL, SIZE_MAX, "the top level must be a mapping (model_list:, ...)");
    if (section(ld, "general_settings", &cfg->general_settings) ||
        section(ld, "router_settings", &cfg->router_settings) ||
        section(ld, "litellm_settings", &cfg->litellm_settings) ||
        section(ld, "environment_variables", &cfg->environment_variables))
        return -1;
    export_env_vars(ld, cfg->environment_variables);
    if (resolve_env(ld, root) != 0)
        return oom(ld);
    check_top_keys(ld);
    if (load_secrets(ld) || load_server(ld) || load_models(ld))
        return -1;
    return 0;
}

gw_config_t *gw_config_load_string(const char *yaml, size_t len, const char *name, char *err, size_t errlen)
{
    loader_t ld = {.name = name, .err = err, .errlen = errlen};
    if (len > GW_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", name, GW_CONFIG_MAX_BYTES);
        return NULL;
    }
    if (!(ld.cfg = calloc(1, sizeof *ld.cfg)) || !(ld.cfg->path = strdup(name))) {
        free(ld.cfg);
        oom(&ld);
        return NULL;
    }
    int rc = gw_yaml_load(yaml, len, name, &ld.doc, &ld.warn, err, errlen);
    if (rc == 0)
        rc = load_tree(&ld);
    gw_warnings_finish(&ld.warn);
    ld.cfg->root = json_incref(ld.doc.root);
    ld.cfg->warnings = ld.warn.v;
    ld.cfg->n_warnings = ld.warn.n;
    gw_yaml_doc_free(&ld.doc);
    if (rc != 0) {
        gw_config_free(ld.cfg);
        return NULL;
    }
    return ld.cfg;
}

/* Reads all of f (a pipe or /dev/stdin too, where st_size says nothing), up to the ceiling. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > GW_CONFIG_MAX_BYTES + 1u)
                ncap = GW_CONFIG_MAX_BYTES + 1u; /* one byte past the ceiling detects "too big" */
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f) || !feof(f) || n > GW_CONFIG_MAX_BYTES) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf ? buf : calloc(1, 1);
}

gw_config_t *gw_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0;
    char *buf = read_all(f, &len);
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: read error, or larger than %u bytes", path, GW_CONFIG_MAX_BYTES);
        return NULL;
    }
    gw_config_t *cfg = gw_config_load_string(buf, len, path, err, errlen);
    free(buf);
    return cfg;
}

static void deployment_free(gw_deployment_t *d)
{
    free(d->model_name);
    free(d->provider);
    free(d->upstream_model);
    free(d->api_base);
    free(d->api_key);
    free(d->api_version);
}

void gw_config_free(gw_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_deployments; i++)
        deployment_free(&cfg->deployments[i]);
    free(cfg->deployments);
    free(cfg->master_key);
    free(cfg->database_url);
    free(cfg->server.host);
    for (size_t i = 0; i < cfg->n_warnings; i++)
        free(cfg->warnings[i]);
    free(cfg->warnings);
    json_decref(cfg->root);
    free(cfg->path);
    free(cfg);
}
