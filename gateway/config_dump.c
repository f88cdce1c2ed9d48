/*
 * config_dump.c — `tollgate check-config`'s view of a loaded config, with secrets redacted.
 *
 * The dump is what an operator pastes into a bug report or a CI log, so nothing secret may
 * reach it: keys are shown as "<redacted>", URLs lose their passwords and secret-named query
 * parameters, sections kept for other modules are listed by name and size only, and every byte
 * taken from the file has its control characters replaced so it cannot forge output lines.
 * Redaction errs on the side of hiding (a "max_tokens" value is hidden because of "token").
 */
#include "gateway/config.h"
#include "gateway/config_int.h"

#include <string.h>
#include <strings.h>

/* litellm_params keys the dump shows in their own lines (the rest go under "params:"). */
static const char *const LIFTED_PARAMS[] = {"model",
                                            "custom_llm_provider",
                                            "api_base",
                                            "base_url",
                                            "api_key",
                                            "api_version",
                                            "timeout",
                                            "stream_timeout",
                                            "rpm",
                                            "tpm",
                                            "weight",
                                            "input_cost_per_token",
                                            "output_cost_per_token",
                                            NULL};

int gw_config_is_secret_key(const char *key)
{
    static const char *const WORDS[] = {"key",   "secret",     "password", "passwd",
                                        "token", "credential", "auth",     NULL};
    if (!key)
        return 0;
    for (const char *const *w = WORDS; *w; w++) {
        size_t n = strlen(*w);
        for (const char *p = key; *p; p++)
            if (strncasecmp(p, *w, n) == 0)
                return 1;
    }
    return 0;
}

/* Writes s[0..n) with control characters as '?', so file contents cannot forge output lines. */
static void put_clean(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], out);
}

/* Writes a query string with the values of secret-named parameters redacted. */
static void put_query(FILE *out, const char *q)
{
    while (*q) {
        size_t seg = strcspn(q, "&#");
        const char *eq = memchr(q, '=', seg);
        char name[64] = "";
        if (eq)
            snprintf(name, sizeof name, "%.*s", (int)(eq - q), q);
        if (eq && gw_config_is_secret_key(name)) {
            put_clean(out, q, (size_t)(eq - q) + 1);
            fputs("<redacted>", out);
        } else {
            put_clean(out, q, seg);
        }
        q += seg;
        if (*q)
            fputc(*q++, out);
    }
}

/* Writes a URL or any other text with its secrets redacted: the password (or a bare token) in
 * user-info, and secret-named query parameters. User-info ends at the first '/', '?' or '#' as
 * URL parsers see it; strict (database URLs) takes the last '@' anywhere instead, because a
 * password with an unescaped '/' must not leak half of itself. */
static void put_redacted(FILE *out, const char *s, int strict)
{
    const char *scheme = strstr(s, "://");
    if (!scheme) {
        put_clean(out, s, strlen(s));
        return;
    }
    const char *auth = scheme + 3;
    size_t alen = strict ? strlen(auth) : strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i; /* the last '@': passwords may contain '@' */
    put_clean(out, s, (size_t)(auth - s));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        put_clean(out, auth, colon ? (size_t)(colon - auth) + 1 : 0);
        fputs("<redacted>", out);
        auth = at;
    }
    const char *q = strchr(auth, '?');
    put_clean(out, auth, (size_t)((q ? q : auth + strlen(auth)) - auth));
    if (q)
        put_query(out, q);
}

static void dump_text(FILE *out, const char *label, const char *value)
{
    fprintf(out, "%s: ", label);
    if (value)
        put_redacted(out, value, 0);
    else
        fputs("(unset)", out);
    fputc('\n', out);
}

static void dump_number(FILE *out, const char *label, double v, const char *unset)
{
    char buf[40];
    gw_config_fmt_double(buf, sizeof buf, v);
    fprintf(out, "%s: %s\n", label, v > 0 ? buf : unset);
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* One scalar from the file, redacted when its key names a secret. */
static void dump_param(FILE *out, const char *indent, const char *key, const json_t *v)
{
    fprintf(out, "%s", indent);
    put_clean(out, key, strlen(key));
    fputs(": ", out);
    if (json_is_object(v))
        fprintf(out, "(mapping, %zu %s)\n", json_object_size(v), plural(json_object_size(v), "key", "keys"));
    else if (json_is_array(v))
        fprintf(out, "(list, %zu %s)\n", json_array_size(v), plural(json_array_size(v), "item", "items"));
    else if (json_is_null(v))
        fputs("null\n", out);
    else if (gw_config_is_secret_key(key))
        fputs("<redacted>\n", out);
    else if (json_is_string(v)) {
        put_redacted(out, json_string_value(v), 0);
        fputc('\n', out);
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        fprintf(out, "%s\n", t ? t : "?");
        free(t);
    }
}

static void dump_deployment(FILE *out, const gw_deployment_t *d)
{
    fputs("  - model_name: ", out);
    put_clean(out, d->model_name, strlen(d->model_name));
    fputc('\n', out);
    dump_text(out, "    provider", d->provider);
    dump_text(out, "    upstream_model", d->upstream_model);
    dump_text(out, "    api_base", d->api_base);
    dump_text(out, "    api_version", d->api_version);
    fprintf(out, "    api_key: %s\n", d->api_key ? "<redacted>" : "(unset)");
    dump_number(out, "    timeout_s", d->timeout_s, "(default)");
    dump_number(out, "    stream_timeout_s", d->stream_timeout_s, "(timeout)");
    fprintf(out, "    rpm: %lld\n    tpm: %lld\n", (long long)d->rpm, (long long)d->tpm);
    dump_number(out, "    weight", d->weight, "0");
    dump_number(out, "    input_cost_per_token", d->input_cost_per_token, "(catalog)");
    dump_number(out, "    output_cost_per_token", d->output_cost_per_token, "(catalog)");
    const char *key;
    json_t *v;
    int first = 1;
    json_object_foreach(d->litellm_params, key, v)
    {
        if (gw_config_in_list(key, LIFTED_PARAMS))
            continue;
        if (first)
            fputs("    params:\n", out);
        first = 0;
        dump_param(out, "      ", key, v);
    }
}

static void dump_server(FILE *out, const gw_server_settings_t *s)
{
    fputs("server:\n", out);
    dump_text(out, "  host", s->host);
    fprintf(out, "  port: %d\n  workers: %d%s\n", s->port, s->workers, s->workers ? "" : " (one per CPU)");
    fprintf(out, "  max_request_body: %zu\n  max_response_body: %zu\n", s->max_request_body,
            s->max_response_body);
    fprintf(out, "  header_timeout_ms: %llu\n  idle_timeout_ms: %llu\n",
            (unsigned long long)s->header_timeout_ms, (unsigned long long)s->idle_timeout_ms);
    fprintf(out, "  upstream_timeout_ms: %llu\n  connect_timeout_ms: %llu\n",
            (unsigned long long)s->upstream_timeout_ms, (unsigned long long)s->connect_timeout_ms);
    fprintf(out, "  drain_timeout_ms: %llu\n  max_streams_per_conn: %d\n",
            (unsigned long long)s->drain_timeout_ms, s->max_streams_per_conn);
    fprintf(out, "  upstream_client: %s\n", s->upstream_client == GW_UPSTREAM_CLIENT_CURL ? "curl" : "auto");
    static const char *const syncs[] = {"interval", "always", "none"};
    fprintf(out, "  journal_sync: %s\n",
            syncs[s->journal_sync >= 0 && s->journal_sync <= 2 ? s->journal_sync : 0]);
    fprintf(out, "  journal_sync_ms: %llu\n", (unsigned long long)s->journal_sync_ms);
    fprintf(out, "  spend_writer_ms: %llu\n", (unsigned long long)s->spend_writer_ms);
}

/* Sections kept as JSON for other modules: names and sizes only, never contents. Empty ones
 * (the loader adds general_settings & co. when absent) are left out. */
static void dump_sections(FILE *out, const json_t *root)
{
    const char *key;
    json_t *v;
    fputs("sections:\n", out);
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "model_list") == 0 || strcmp(key, "tollgate_settings") == 0 ||
            !gw_config_in_list(key, gw_config_top_keys))
            continue;
        if (json_is_object(v) && json_object_size(v) > 0)
            fprintf(out, "  - %s (mapping, %zu %s)\n", key, json_object_size(v),
                    plural(json_object_size(v), "key", "keys"));
        else if (json_is_array(v) && json_array_size(v) > 0)
            fprintf(out, "  - %s (list, %zu %s)\n", key, json_array_size(v),
                    plural(json_array_size(v), "item", "items"));
        else if (!json_is_object(v) && !json_is_array(v) && !json_is_null(v))
            fprintf(out, "  - %s (scalar)\n", key);
    }
}

void gw_config_dump(const gw_config_t *cfg, FILE *out)
{
    fputs("config: ", out);
    put_clean(out, cfg->path, strlen(cfg->path));
    fprintf(out, "\ndeployments: %zu\n", cfg->n_deployments);
    for (size_t i = 0; i < cfg->n_deployments; i++)
        dump_deployment(out, &cfg->deployments[i]);
    fprintf(out, "master_key: %s\n", cfg->master_key ? "<redacted>" : "(none)");
    fputs("database_url: ", out);
    if (cfg->database_url)
        put_redacted(out, cfg->database_url, 1);
    else
        fputs("(none)", out);
    fputc('\n', out);
    dump_server(out, &cfg->server);
    dump_sections(out, cfg->root);
    fprintf(out, "warnings: %zu\n", cfg->n_warnings);
    for (size_t i = 0; i < cfg->n_warnings; i++) {
        fputs("  - ", out);
        put_clean(out, cfg->warnings[i], strlen(cfg->warnings[i]));
        fputc('\n', out);
    }
}
