/*
 * azure.c — Azure OpenAI (providers.md §2): OpenAI's wire format behind Azure's URLs, auth and
 * content filter.
 *
 * The body is OpenAI's, so it is the client's bytes with the openai adapter's splices (model =
 * the deployment, include_usage on streams so every stream can be billed). What differs is the
 * URL — {api_base}/openai/deployments/{deployment}/chat/completions?api-version=… for the dated
 * API, {api_base}/openai/v1/chat/completions for the v1 API — and the `api-key` header, so this is
 * a translating adapter that builds its own request (the core's prebuilt passthrough URLs do not
 * fit).
 *
 * Streams are framed and relayed by the openai adapter's SSE handling, behind a filter for what
 * Azure adds: the leading chunk with empty id and model, choices [] and prompt_filter_results is
 * dropped (it is no usage chunk, and clients index choices[0]); choices that carry only
 * content_filter_results and no delta are removed, or given an empty delta when they carry a
 * finish_reason, so no client ever sees a choice without delta. Errors come in OpenAI's envelope
 * with Azure's codes (DeploymentNotFound, "429", content_filter) and null types, or as the API
 * gateway's {"statusCode","message"}; they are all normalised to OpenAI's four keys.
 */
#include "adapters/adapter.h"
#include "adapters/errmap.h"
#include "adapters/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_API_VERSION "2024-10-21"
/* The first dated API version that accepts stream_options (include_usage). */
#define FIRST_STREAM_OPTIONS_VERSION "2024-09-01"

/* ---- request ------------------------------------------------------------------------------- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static size_t trimmed_len(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return n;
}

/* LiteLLM's spellings of "the v1 API": api_version v1, latest or preview. */
static int is_v1_version(const char *v)
{
    return v != NULL && (strcmp(v, "v1") == 0 || strcmp(v, "latest") == 0 || strcmp(v, "preview") == 0);
}

static int is_date_version(const char *v)
{
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !(v[i] >= '0' && v[i] <= '9') : v[i] != '-')
            return 0;
    return 1;
}

/* Percent-encodes everything but RFC 3986's unreserved characters (deployment names, versions). */
static int append_encoded(ad_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '_' || *p == '.' || *p == '~';
        rc = plain ? ad_buf_append(b, p, 1) : ad_buf_append(b, e, 3);
    }
    return rc;
}

static const char *op_path(ad_op_t op)
{
    return op == AD_OP_EMBEDDINGS    ? "/embeddings"
           : op == AD_OP_COMPLETIONS ? "/completions"
                                     : "/chat/completions";
}

/*
 * The resource root is api_base without trailing slashes and a trailing /openai or /openai/v1
 * (both are common in configs); the path is then added once.
 */
static int build_url(const ad_request_t *req, const ad_deployment_t *dep, int v1, ad_buf_t *url)
{
    const char *base = dep->api_base;
    size_t n = trimmed_len(base);
    if (ends_with(base, n, "/openai/v1"))
        n -= strlen("/openai/v1");
    else if (ends_with(base, n, "/openai"))
        n -= strlen("/openai");
    int rc = ad_buf_append(url, base, n);
    if (v1) {
        rc |= ad_buf_puts(url, "/openai/v1");
        rc |= ad_buf_puts(url, op_path(req->op));
        if (dep->api_version != NULL && strcmp(dep->api_version, "preview") == 0)
            rc |= ad_buf_puts(url, "?api-version=preview");
        return rc;
    }
    rc |= ad_buf_puts(url, "/openai/deployments/");
    rc |= append_encoded(url, dep->upstream_model);
    rc |= ad_buf_puts(url, op_path(req->op));
    rc |= ad_buf_puts(url, "?api-version=");
    return rc | append_encoded(url, dep->api_version != NULL ? dep->api_version : DEFAULT_API_VERSION);
}

/*
 * Dated versions before 2024-09-01 answer 400 to stream_options, so for them only the model is
 * spliced (those streams carry no usage; the client's own include_usage still goes as sent).
 */
static int splice_body(const ad_request_t *req, const ad_deployment_t *dep, int v1, ad_buf_t *body)
{
    ad_request_t r = *req;
    const char *v = dep->api_version;
    if (!v1 && v != NULL && is_date_version(v) && strncmp(v, FIRST_STREAM_OPTIONS_VERSION, 10) < 0)
        r.stream = 0;
    return ad_openai_splice_body(&r, dep->upstream_model, body);
}

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    if (dep->api_base == NULL || dep->api_base[0] == '\0') {
        snprintf(errbuf, errlen, "azure deployments need api_base (https://<resource>.openai.azure.com)");
        return -1;
    }
    if (dep->upstream_model == NULL || dep->upstream_model[0] == '\0') {
        snprintf(errbuf, errlen, "azure deployments need a deployment name (model: azure/<deployment>)");
        return -1;
    }
    int v1 =
        ends_with(dep->api_base, trimmed_len(dep->api_base), "/openai/v1") || is_v1_version(dep->api_version);
    out->method = "POST";
    int rc = build_url(req, dep, v1, &out->url);
    rc |= ad_http_request_add_header(out, "Content-Type: application/json");
    if (dep->api_key != NULL && dep->api_key[0] != '\0')
        rc |= ad_http_request_add_header(out, "api-key: %s", dep->api_key);
    if (rc != 0 || splice_body(req, dep, v1, &out->body) != 0) {
        snprintf(errbuf, errlen, "request too large to forward");
        return -1;
    }
    return 0;
}

/* Non-stream bodies are OpenAI's plus filter annotations clients ignore: forwarded as they are. */
static int parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage)
{
    return ad_openai.parse_response(req, body, len, out, usage);
}

/* ---- stream -------------------------------------------------------------------------------- */

typedef enum verdict {
    RELAY,   /* an OpenAI chunk as it is */
    DROP,    /* filter bookkeeping only */
    REWRITE, /* some choices have no delta */
} verdict_t;

static int has_delta(json_t *choice)
{
    return json_is_object(json_object_get(choice, "delta"));
}

static verdict_t judge(json_t *root)
{
    json_t *err = json_object_get(root, "error"), *choices = json_object_get(root, "choices");
    int usage = json_is_object(json_object_get(root, "usage"));
    if ((err != NULL && !json_is_null(err)) || !json_is_array(choices))
        return RELAY;
    if (json_array_size(choices) == 0)
        return usage ? RELAY : DROP;
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c) if (!has_delta(c)) return REWRITE;
    return RELAY;
}

/* Choices without delta: a finishing one gets delta {}, the others (filter results only) go. */
static int normalise(json_t *root)
{
    json_t *choices = json_object_get(root, "choices");
    for (size_t i = json_array_size(choices); i-- > 0;) {
        json_t *c = json_array_get(choices, i);
        if (has_delta(c))
            continue;
        if (json_is_object(c) && json_is_string(json_object_get(c, "finish_reason")))
            json_object_set_new(c, "delta", json_object());
        else
            json_array_remove(choices, i);
    }
    return json_array_size(choices) > 0 || json_is_object(json_object_get(root, "usage"));
}

static int relay_rewritten(ad_stream_t *st, json_t *root)
{
    if (!normalise(root))
        return 0;
    char *s = json_dumps(root, JSON_COMPACT);
    if (s == NULL)
        return -1;
    ad_sse_event_t ev = {.event = "", .data = s, .data_len = strlen(s), .has_data = 1};
    int rc = ad_openai_on_sse(st, &ev); /* raw NULL: the core writes data: <s> */
    free(s);
    return rc;
}

static int on_block(void *ud, const ad_sse_event_t *ev)
{
    ad_stream_t *st = ud;
    json_t *root = ev->has_data ? json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL) : NULL;
    verdict_t v = json_is_object(root) ? judge(root) : RELAY;
    int rc = v == RELAY ? ad_openai_on_sse(st, ev) : v == REWRITE ? relay_rewritten(st, root) : 0;
    json_decref(root);
    return rc;
}

static void stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ad_openai.stream_init(st, req);
}

static int stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    return ad_sse_feed(&st->sse, p, n, on_block, st);
}

static int stream_finish(ad_stream_t *st)
{
    return ad_openai.stream_finish(st);
}

/* ---- errors -------------------------------------------------------------------------------- */

typedef struct azure_error {
    const char *message, *type, *param;
    char code[128];
} azure_error_t;

static const char *nonempty(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Azure's code is a string ("DeploymentNotFound", "429") or, from some front ends, a number. */
static void code_text(json_t *code, char *out, size_t cap)
{
    if (json_is_string(code))
        snprintf(out, cap, "%s", json_string_value(code));
    else if (json_is_integer(code))
        snprintf(out, cap, "%lld", (long long)json_integer_value(code));
}

static void read_envelope(json_t *e, azure_error_t *ae)
{
    ae->message = nonempty(e, "message");
    ae->type = nonempty(e, "type");
    ae->param = nonempty(e, "param");
    code_text(json_object_get(e, "code"), ae->code, sizeof(ae->code));
    const char *inner = nonempty(json_object_get(e, "innererror"), "code");
    if (inner != NULL && strcmp(inner, "ResponsibleAIPolicyViolation") == 0) /* prompt filtered */
        snprintf(ae->code, sizeof(ae->code), "content_filter");
}

static void read_error(json_t *root, azure_error_t *ae)
{
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e))
        read_envelope(e, ae);
    else if (json_is_string(e))
        ae->message = json_string_value(e);
    else
        ae->message = nonempty(root, "message"); /* API Management: {"statusCode":401,"message":…} */
}

static void map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                      ad_error_t *err)
{
    azure_error_t ae = {.code = ""};
    char snippet[512];
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    if (json_is_object(root))
        read_error(root, &ae);
    if (ae.message == NULL) {
        ad_errmap_snippet(status, body, len, snippet, sizeof(snippet));
        ae.message = snippet;
    }
    err->status = status;
    err->retryable = ad_errmap_retryable(status) && strcmp(ae.code, "insufficient_quota") != 0;
    err->retry_ms = ad_errmap_retry_ms(retry_after);
    ad_errmap_json(out, ae.message, ae.type != NULL ? ae.type : ad_errmap_type(status), ae.param,
                   ae.code[0] != '\0' ? ae.code : NULL);
    json_decref(root);
}

const ad_adapter_t ad_azure = {
    .name = "azure",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS | AD_CAP_JSON_MODE,
    .build_request = build_request,
    .parse_response = parse_response,
    .stream_init = stream_init,
    .stream_feed = stream_feed,
    .stream_finish = stream_finish,
    .map_error = map_error,
};
