/*
 * gemini.c — the Google Gemini API adapter (AI Studio keys; providers.md §4, LiteLLM prefix
 * gemini/).
 *
 * Requests: POST {api_base}/v1beta/models/{model}:generateContent, or
 * :streamGenerateContent?alt=sse for streams (without alt=sse Gemini streams one JSON array,
 * which is no use to an incremental parser), with the key in x-goog-api-key. The default base is
 * https://generativelanguage.googleapis.com; a base that already ends in a version (/v1beta, /v1,
 * /v1alpha) is used as it is. The body is built by gemini_request.c.
 *
 * Embeddings always use :batchEmbedContents, also for one input, so there is one request and
 * one response shape: {"requests":[{"model":"models/{model}","content":{"parts":[{"text"}]},
 * "outputDimensionality":dimensions,"taskType":task_type}]} → {"embeddings":[{"values":[…]}]},
 * written as OpenAI's list in float or base64 as the client asked. Gemini reports no tokens for
 * embeddings (a usageMetadata.promptTokenCount is read if one ever appears); usage is then
 * unknown (-1) and the body says 0.
 *
 * Non-stream responses become chat.completion bodies with one choice per candidate; streams are
 * in gemini_stream.c. Errors {"error":{"code","message","status","details"}} (also wrapped in an
 * array, as the non-SSE stream sends them) become OpenAI's error object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/errmap.h"
#include "adapters/gemini_int.h"

#define DEFAULT_BASE "https://generativelanguage.googleapis.com"

/* ---- shared mappings ---------------------------------------------------------------------- */

static const char *const filtered[] = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
};

const char *ad_gemini_finish_reason(const char *reason, int has_tool_calls)
{
    if (reason != NULL && strcmp(reason, "MAX_TOKENS") == 0)
        return "length";
    for (size_t i = 0; reason != NULL && i < sizeof(filtered) / sizeof(filtered[0]); i++)
        if (strcmp(reason, filtered[i]) == 0)
            return "content_filter";
    /* STOP, and by choice everything else (MALFORMED_FUNCTION_CALL, OTHER, LANGUAGE, …): the
     * client must still run calls it was given. */
    return has_tool_calls ? "tool_calls" : "stop";
}

static int64_t count(const json_t *um, const char *key)
{
    const json_t *v = json_object_get(um, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

static int64_t sum(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

void ad_gemini_usage(const json_t *um, ad_usage_t *u)
{
    if (!json_is_object(um))
        return;
    int64_t thoughts = count(um, "thoughtsTokenCount");
    u->prompt_tokens = sum(count(um, "promptTokenCount"), count(um, "toolUsePromptTokenCount"));
    u->completion_tokens = sum(count(um, "candidatesTokenCount"), thoughts);
    u->reasoning_tokens = thoughts;
    u->cached_tokens = count(um, "cachedContentTokenCount");
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int ad_gemini_tool_call_id(const ad_request_t *req, const char *response_id, unsigned seq, const json_t *part,
                           ad_buf_t *out)
{
    const json_t *id = json_object_get(json_object_get(part, "functionCall"), "id");
    const json_t *sig = json_object_get(part, "thoughtSignature");
    int rc;
    if (json_is_string(id) && json_string_length(id) > 0) {
        rc = ad_buf_append(out, json_string_value(id), json_string_length(id));
    } else {
        uint64_t h = fnv1a(14695981039346656037ull, req != NULL ? req->request_id : NULL);
        h = fnv1a((h ^ '/') * 1099511628211ull, response_id);
        rc = ad_buf_appendf(out, "call_%016llx_%u", (unsigned long long)h, seq);
    }
    if (json_is_string(sig) && json_string_length(sig) > 0) {
        rc |= ad_buf_puts(out, AD_GEMINI_SIG_SEP);
        rc |= ad_buf_append(out, json_string_value(sig), json_string_length(sig));
    }
    return rc ? -1 : 0;
}

const char *ad_gemini_model_name(const ad_request_t *req, const json_t *resp, char *buf, size_t cap)
{
    const json_t *mv = json_object_get(resp, "modelVersion");
    if (json_is_string(mv) && json_string_length(mv) > 0) {
        snprintf(buf, cap, "%s", json_string_value(mv));
        return buf;
    }
    if (req != NULL && req->model.type == AD_J_STRING && ad_json_span_string(req->model, buf, cap) >= 0)
        return buf;
    return "gemini";
}

/* ---- errors ------------------------------------------------------------------------------- */

static const struct {
    const char *status, *code;
} codes[] = {
    {"INVALID_ARGUMENT", "invalid_argument"},
    {"FAILED_PRECONDITION", "failed_precondition"},
    {"OUT_OF_RANGE", "out_of_range"},
    {"UNAUTHENTICATED", "invalid_api_key"},
    {"PERMISSION_DENIED", "permission_denied"},
    {"NOT_FOUND", "model_not_found"},
    {"RESOURCE_EXHAUSTED", "rate_limit_exceeded"},
    {"ABORTED", "aborted"},
    {"CANCELLED", "cancelled"},
    {"INTERNAL", "internal_error"},
    {"UNKNOWN", "unknown_error"},
    {"UNAVAILABLE", "service_unavailable"},
    {"DEADLINE_EXCEEDED", "timeout"},
    {"UNIMPLEMENTED", "unimplemented"},
};

void ad_gemini_error_kind(int http_status, const char *status, const char *message, const char **type,
                          const char **code)
{
    *type = ad_errmap_type(http_status);
    *code = NULL;
    if (message != NULL && strstr(message, "exceeds the maximum number of tokens") != NULL) {
        *code = "context_length_exceeded";
        return;
    }
    for (size_t i = 0; status != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(status, codes[i].status) == 0)
            *code = codes[i].code;
}

/* {"error":{…}} or [{"error":{…}}] */
static const json_t *error_object(const json_t *root)
{
    if (json_is_array(root))
        root = json_array_get(root, 0);
    const json_t *e = json_object_get(root, "error");
    return json_is_object(e) ? e : NULL;
}

/* details[] entry with the given @type suffix (google.rpc.RetryInfo, google.rpc.ErrorInfo). */
static const json_t *detail(const json_t *e, const char *type_suffix)
{
    size_t i, n = strlen(type_suffix);
    const json_t *d;
    json_array_foreach(json_object_get(e, "details"), i, d)
    {
        const char *t = json_string_value(json_object_get(d, "@type"));
        if (t != NULL && strlen(t) >= n && strcmp(t + strlen(t) - n, type_suffix) == 0)
            return d;
    }
    return NULL;
}

/* RetryInfo.retryDelay is a protobuf Duration in JSON: "7s", "0.5s", "12.345678s". */
static int64_t retry_delay_ms(const json_t *e)
{
    const char *s = json_string_value(json_object_get(detail(e, "google.rpc.RetryInfo"), "retryDelay"));
    if (s == NULL)
        return -1;
    char *end;
    double secs = strtod(s, &end);
    if (end == s || strcmp(end, "s") != 0 || !(secs >= 0 && secs < 86400))
        return -1;
    return (int64_t)(secs * 1000);
}

static int bad_api_key(const json_t *e, const char *message)
{
    const char *reason = json_string_value(json_object_get(detail(e, "google.rpc.ErrorInfo"), "reason"));
    return (reason != NULL && strcmp(reason, "API_KEY_INVALID") == 0) ||
           (message != NULL && strncmp(message, "API key not valid", 17) == 0);
}

static void map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                      ad_error_t *err)
{
    json_t *root = json_loadb(body, len, AD_GEMINI_LOAD_FLAGS, NULL);
    const json_t *e = error_object(root);
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *gstatus = json_string_value(json_object_get(e, "status"));
    /* Gemini says 400 INVALID_ARGUMENT for a bad key; clients understand it as 401. */
    err->status = e != NULL && bad_api_key(e, msg) ? 401 : status;
    err->retryable = ad_errmap_retryable(status);
    err->retry_ms = ad_errmap_retry_ms(retry_after);
    if (err->retry_ms < 0 && e != NULL)
        err->retry_ms = retry_delay_ms(e);
    if (msg != NULL && msg[0] != '\0') {
        const char *type, *code;
        ad_gemini_error_kind(err->status, gstatus, msg, &type, &code);
        if (err->status == 401)
            code = "invalid_api_key";
        const char *param = code != NULL && strcmp(code, "context_length_exceeded") == 0 ? "messages" : NULL;
        ad_errmap_json(out, msg, type, param, code);
    } else {
        char snippet[320];
        ad_errmap_snippet(status, body, len, snippet, sizeof(snippet));
        ad_errmap_json(out, snippet, ad_errmap_type(status), NULL, "upstream_error");
    }
    json_decref(root);
}

/* ---- requests ----------------------------------------------------------------------------- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* {base}[/v1beta]/models/{model}:{method}. A model with a '/' after an optional "models/" is a
 * resource name of its own (tunedModels/x) and goes after the version as it is. */
static int put_url(ad_buf_t *url, const char *base, const char *model, const char *method)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    int rc = ad_buf_append(url, base, n);
    if (!ends_with(base, n, "/v1beta") && !ends_with(base, n, "/v1") && !ends_with(base, n, "/v1alpha"))
        rc |= ad_buf_puts(url, "/v1beta");
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    rc |= ad_buf_puts(url, strchr(model, '/') != NULL ? "/" : "/models/");
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)model; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p) != NULL)
            rc |= ad_buf_append(url, p, 1);
        else
            rc |= ad_buf_appendf(url, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
    return rc | ad_buf_appendf(url, ":%s", method);
}

/* The inner model of batchEmbedContents requests: "models/<name>" unless already a resource. */
static json_t *embed_model(const char *model)
{
    if (strchr(model, '/') != NULL)
        return json_string(model);
    size_t n = strlen(model) + 8;
    char *s = malloc(n);
    if (s == NULL)
        return NULL;
    snprintf(s, n, "models/%s", model);
    json_t *v = json_string(s);
    free(s);
    return v;
}

static json_t *embed_body(const json_t *body, const char *model, char *err, size_t errlen)
{
    const json_t *in = json_object_get(body, "input");
    json_t *texts = json_is_string(in)  ? json_pack("[O]", in)
                    : json_is_array(in) ? json_copy((json_t *)in)
                                        : NULL;
    size_t i;
    const json_t *t;
    int ok = json_array_size(texts) > 0;
    json_array_foreach(texts, i, t) ok = ok && json_is_string(t);
    json_t *name = ok ? embed_model(model) : NULL, *reqs = json_array();
    if (name == NULL) {
        snprintf(err, errlen, "gemini embeddings take 'input' as a string or a non-empty array of strings");
        goto out;
    }
    const json_t *dims = json_object_get(body, "dimensions"), *task = json_object_get(body, "task_type");
    json_array_foreach(texts, i, t)
    {
        json_t *r = json_pack("{sOs{s[{sO}]}}", "model", name, "content", "parts", "text", t);
        if (json_is_integer(dims))
            json_object_set(r, "outputDimensionality", (json_t *)dims);
        if (json_is_string(task))
            json_object_set(r, "taskType", (json_t *)task);
        json_array_append_new(reqs, r);
    }
out:
    json_decref(texts);
    json_decref(name);
    if (name == NULL) {
        json_decref(reqs);
        return NULL;
    }
    return json_pack("{so}", "requests", reqs);
}

static json_t *upstream_body(const ad_request_t *req, const ad_deployment_t *dep, char *err, size_t errlen)
{
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, AD_GEMINI_LOAD_FLAGS, &je);
    json_t *g = NULL;
    if (!json_is_object(body))
        snprintf(err, errlen, "request body is not a JSON object gemini can read: %s", je.text);
    else if (req->op == AD_OP_EMBEDDINGS)
        g = embed_body(body, dep->upstream_model, err, errlen);
    else if (req->op == AD_OP_CHAT)
        g = ad_gemini_chat_body(body, dep->params, err, errlen);
    else
        snprintf(err, errlen, "gemini has no text completions endpoint; use /v1/chat/completions");
    json_decref(body);
    return g;
}

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    const char *key = dep->api_key;
    if (dep->upstream_model == NULL || dep->upstream_model[0] == '\0') {
        snprintf(errbuf, errlen, "the gemini deployment has no model name");
        return -1;
    }
    if (key != NULL && strpbrk(key, "\r\n") != NULL) {
        snprintf(errbuf, errlen, "the gemini deployment's api_key contains a line break");
        return -1;
    }
    errbuf[0] = '\0';
    json_t *g = upstream_body(req, dep, errbuf, errlen);
    if (g == NULL) {
        if (errbuf[0] == '\0')
            snprintf(errbuf, errlen, "request could not be translated for gemini");
        return -1;
    }
    char *text = json_dumps(g, AD_GEMINI_DUMP_FLAGS);
    json_decref(g);
    const char *method = req->op == AD_OP_EMBEDDINGS ? "batchEmbedContents"
                         : req->stream               ? "streamGenerateContent?alt=sse"
                                                     : "generateContent";
    out->method = "POST";
    int rc = text == NULL || ad_buf_puts(&out->body, text) != 0;
    free(text);
    rc |=
        put_url(&out->url, dep->api_base != NULL ? dep->api_base : DEFAULT_BASE, dep->upstream_model, method);
    rc |= ad_http_request_add_header(out, "Content-Type: application/json");
    if (key != NULL && key[0] != '\0')
        rc |= ad_http_request_add_header(out, "x-goog-api-key: %s", key);
    if (rc != 0) {
        snprintf(errbuf, errlen, "request too large to forward");
        return -1;
    }
    return 0;
}

/* ---- non-stream responses ----------------------------------------------------------------- */

/* One candidate's message, with the storage its pointers use. */
typedef struct cand {
    ad_buf_t text, thought;
    ad_oai_tool_call_t *calls;
    json_t *strings; /* keeps the id, name and arguments strings of calls alive */
} cand_t;

static void cand_free(cand_t *c)
{
    ad_buf_free(&c->text);
    ad_buf_free(&c->thought);
    free(c->calls);
    json_decref(c->strings);
}

static const char *keep(cand_t *c, json_t *s)
{
    json_array_append_new(c->strings, s != NULL ? s : json_string(""));
    return json_string_value(json_array_get(c->strings, json_array_size(c->strings) - 1));
}

static int add_call(const ad_request_t *req, const char *rid, unsigned seq, const json_t *part, cand_t *c,
                    ad_oai_message_t *m)
{
    const json_t *fc = json_object_get(part, "functionCall"), *args = json_object_get(fc, "args");
    const json_t *name = json_object_get(fc, "name");
    ad_buf_t id;
    ad_buf_init(&id, 1u << 20);
    int rc = ad_gemini_tool_call_id(req, rid, seq, part, &id);
    char *a = json_is_object(args) ? json_dumps(args, AD_GEMINI_DUMP_FLAGS) : NULL;
    ad_oai_tool_call_t *tc = &c->calls[m->n_tool_calls++];
    tc->id = keep(c, rc == 0 ? json_stringn(id.data, id.len) : NULL);
    tc->name = keep(c, json_is_string(name) ? json_copy((json_t *)name) : NULL);
    tc->arguments = keep(c, json_string(a != NULL ? a : "{}"));
    free(a);
    ad_buf_free(&id);
    return rc;
}

static int add_parts(const ad_request_t *req, const char *rid, unsigned *seq, const json_t *parts, cand_t *c,
                     ad_oai_message_t *m)
{
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p)
    {
        const json_t *text = json_object_get(p, "text");
        if (json_is_object(json_object_get(p, "functionCall"))) {
            if (add_call(req, rid, (*seq)++, p, c, m) != 0)
                return -1;
        } else if (json_is_string(text)) {
            ad_buf_t *b = json_is_true(json_object_get(p, "thought")) ? &c->thought : &c->text;
            if (ad_buf_append(b, json_string_value(text), json_string_length(text)) != 0 ||
                ad_buf_reserve(b, 0) != 0)
                return -1;
        }
    }
    return 0;
}

static int read_candidate(const ad_request_t *req, const char *rid, unsigned *seq, const json_t *cand,
                          size_t cap, cand_t *c, ad_oai_message_t *m)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    c->strings = json_array();
    c->calls = calloc(json_array_size(parts) + 1, sizeof(*c->calls));
    ad_buf_init(&c->text, cap);
    ad_buf_init(&c->thought, cap);
    m->tool_calls = c->calls;
    if (c->calls == NULL || add_parts(req, rid, seq, parts, c, m) != 0)
        return -1;
    m->content = c->text.data != NULL ? c->text.data : m->n_tool_calls > 0 ? NULL : "";
    m->content_len = c->text.len;
    m->reasoning = c->thought.data;
    m->finish_reason = ad_gemini_finish_reason(json_string_value(json_object_get(cand, "finishReason")),
                                               m->n_tool_calls > 0);
    return 0;
}

static int chat_response(const ad_request_t *req, const json_t *root, size_t len, ad_buf_t *out,
                         ad_usage_t *usage)
{
    const json_t *cands = json_object_get(root, "candidates");
    const char *rid = json_string_value(json_object_get(root, "responseId"));
    size_t n =
        json_array_size(cands) < AD_GEMINI_MAX_CANDIDATES ? json_array_size(cands) : AD_GEMINI_MAX_CANDIDATES;
    ad_oai_message_t m[AD_GEMINI_MAX_CANDIDATES];
    cand_t c[AD_GEMINI_MAX_CANDIDATES];
    char model[256];
    memset(m, 0, sizeof(m));
    memset(c, 0, sizeof(c));
    int rc = 0;
    unsigned seq = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = read_candidate(req, rid, &seq, json_array_get(cands, i), len, &c[i], &m[i]);
    if (n == 0) { /* a blocked prompt (promptFeedback.blockReason) or an empty answer */
        m[0].content = "";
        m[0].finish_reason = json_object_get(json_object_get(root, "promptFeedback"), "blockReason")
                                 ? "content_filter"
                                 : "stop";
        n = 1;
    }
    ad_usage_t u = {-1, -1, -1, -1};
    ad_gemini_usage(json_object_get(root, "usageMetadata"), &u);
    *usage = u;
    m[0].usage = u;
    m[0].id = rid != NULL ? rid : req->request_id;
    m[0].model = ad_gemini_model_name(req, root, model, sizeof(model));
    m[0].created = req->now;
    if (rc == 0)
        rc = ad_oai_write_completion_n(m, n, out);
    for (size_t i = 0; i < AD_GEMINI_MAX_CANDIDATES; i++)
        cand_free(&c[i]);
    return rc;
}

static int embeddings_response(const ad_request_t *req, const json_t *root, ad_buf_t *out, ad_usage_t *usage)
{
    const json_t *list = json_object_get(root, "embeddings");
    size_t n = json_array_size(list);
    size_t dims = json_array_size(json_object_get(json_array_get(list, 0), "values")), total;
    if (n == 0 || dims == 0 || __builtin_mul_overflow(n, dims, &total) || total > SIZE_MAX / sizeof(float))
        return -1;
    float *vals = malloc(total * sizeof(float));
    const float **vecs = malloc(n * sizeof(*vecs));
    int rc = vals == NULL || vecs == NULL ? -1 : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *v = json_object_get(json_array_get(list, i), "values");
        rc = json_array_size(v) == dims ? 0 : -1;
        for (size_t j = 0; j < dims && rc == 0; j++) {
            const json_t *x = json_array_get(v, j);
            rc = json_is_number(x) ? 0 : -1;
            vals[i * dims + j] = (float)json_number_value(x);
        }
        vecs[i] = vals + i * dims;
    }
    const json_t *pt = json_object_get(json_object_get(root, "usageMetadata"), "promptTokenCount");
    *usage = (ad_usage_t){-1, -1, -1, -1};
    if (json_is_integer(pt))
        *usage = (ad_usage_t){json_integer_value(pt), 0, -1, -1};
    char model[256];
    if (rc == 0)
        rc = ad_oai_write_embeddings(vecs, n, dims, ad_oai_wants_base64(req),
                                     ad_gemini_model_name(req, NULL, model, sizeof(model)),
                                     usage->prompt_tokens, out);
    free(vals);
    free(vecs);
    return rc;
}

static int parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage)
{
    json_t *root = json_loadb(body, len, AD_GEMINI_LOAD_FLAGS, NULL);
    int rc = -1;
    if (json_is_object(root) && req != NULL)
        rc = req->op == AD_OP_EMBEDDINGS ? embeddings_response(req, root, out, usage)
                                         : chat_response(req, root, len, out, usage);
    json_decref(root);
    return rc;
}

const ad_adapter_t ad_gemini = {
    .name = "gemini",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS | AD_CAP_JSON_MODE,
    .build_request = build_request,
    .parse_response = parse_response,
    .stream_init = ad_gemini_stream_init,
    .stream_feed = ad_gemini_stream_feed,
    .stream_finish = ad_gemini_stream_finish,
    .map_error = map_error,
    .state_size = sizeof(ad_gemini_stream_t),
};
