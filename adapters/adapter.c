/*
 * adapter.c — the provider registry and helpers shared by every adapter.
 *
 * The registry is data: a table of provider names (LiteLLM's prefixes) to adapters. Every
 * OpenAI-compatible provider is served by the openai adapter with its own api_base.
 */
#include "adapters/adapter.h"
#include "adapters/errmap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const ad_adapter_t *ad;
} registry[] = {
    {"openai", &ad_openai},
    {"text-completion-openai", &ad_openai},
    {"custom_openai", &ad_openai},
    {"openai_like", &ad_openai},
    {"hosted_vllm", &ad_openai},
    {"vllm", &ad_openai},
    {"groq", &ad_openai},
    {"mistral", &ad_openai},
    {"together_ai", &ad_openai},
    {"deepseek", &ad_openai},
    {"openrouter", &ad_openai},
    {"fireworks_ai", &ad_openai},
    {"xai", &ad_openai},
    {"lm_studio", &ad_openai},
    {"llamafile", &ad_openai},
    {"perplexity", &ad_openai},
    {"cerebras", &ad_openai},
    {"nvidia_nim", &ad_openai},
    {"github", &ad_openai},
    {"litellm_proxy", &ad_openai},
    {"anthropic", &ad_anthropic},
    {"gemini", &ad_gemini},
    {"mock", &ad_mock},
    {"bedrock", &ad_bedrock},
    {"ollama", &ad_ollama},
    {"ollama_chat", &ad_ollama},
    {"azure", &ad_azure},
    {"openwebui", &ad_openwebui},
};

const ad_adapter_t *ad_adapter_find(const char *provider)
{
    if (provider == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i].name, provider) == 0)
            return registry[i].ad;
    return NULL;
}

void ad_http_request_init(ad_http_request_t *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    ad_buf_init(&r->url, 8 * 1024);
    for (size_t i = 0; i < AD_MAX_HEADERS; i++)
        ad_buf_init(&r->headers[i], 16 * 1024);
    ad_buf_init(&r->body, max_body);
}

void ad_http_request_free(ad_http_request_t *r)
{
    ad_buf_free(&r->url);
    for (size_t i = 0; i < AD_MAX_HEADERS; i++)
        ad_buf_free(&r->headers[i]);
    ad_buf_free(&r->body);
}

int ad_http_request_add_header(ad_http_request_t *r, const char *fmt, ...)
{
    if (r->n_headers >= AD_MAX_HEADERS)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = ad_buf_vappendf(&r->headers[r->n_headers], fmt, ap);
    va_end(ap);
    if (rc == 0)
        r->n_headers++;
    return rc;
}

void ad_stream_free(ad_stream_t *st)
{
    ad_sse_free(&st->sse);
    ad_buf_free(&st->scratch);
}

static int usage_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t v)
{
    ad_usage_t *u = ud;
    int64_t x;
    if (ad_json_key_eq(key, keylen, "prompt_tokens") && ad_json_span_int64(v, &x) == 0)
        u->prompt_tokens = x;
    else if (ad_json_key_eq(key, keylen, "completion_tokens") && ad_json_span_int64(v, &x) == 0)
        u->completion_tokens = x;
    else if (ad_json_key_eq(key, keylen, "prompt_tokens_details") && v.type == AD_J_OBJECT) {
        ad_jspan_t c;
        if (ad_json_find(v.p, v.len, "cached_tokens", &c) == 1 && ad_json_span_int64(c, &x) == 0)
            u->cached_tokens = x;
    } else if (ad_json_key_eq(key, keylen, "completion_tokens_details") && v.type == AD_J_OBJECT) {
        ad_jspan_t c;
        if (ad_json_find(v.p, v.len, "reasoning_tokens", &c) == 1 && ad_json_span_int64(c, &x) == 0)
            u->reasoning_tokens = x;
    }
    return 0;
}

int ad_usage_from_openai(ad_jspan_t usage, ad_usage_t *u)
{
    if (usage.type != AD_J_OBJECT)
        return -1;
    return ad_json_scan_object(usage.p, usage.len, usage_member, u, NULL) == 0 ? 0 : -1;
}

int ad_error_json(ad_buf_t *out, const char *message, const char *type, const char *code)
{
    return ad_errmap_json(out, message, type, NULL, code);
}

typedef struct scan_ctx {
    ad_request_t *r;
} scan_ctx_t;

static int request_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t v)
{
    ad_request_t *r = ((scan_ctx_t *)ud)->r;
    int64_t x;
    if (ad_json_key_eq(key, keylen, "model")) {
        r->model = v;
    } else if (ad_json_key_eq(key, keylen, "stream")) {
        int b = 0;
        r->stream = ad_json_span_bool(v, &b) == 0 && b;
    } else if (ad_json_key_eq(key, keylen, "stream_options")) {
        r->stream_options = v;
        ad_jspan_t iu;
        int b = 0;
        if (v.type == AD_J_OBJECT && ad_json_find(v.p, v.len, "include_usage", &iu) == 1 &&
            ad_json_span_bool(iu, &b) == 0)
            r->include_usage = b;
    } else if (ad_json_key_eq(key, keylen,
                              r->op == AD_OP_CHAT         ? "messages"
                              : r->op == AD_OP_EMBEDDINGS ? "input"
                                                          : "prompt")) {
        r->messages = v;
    } else if ((ad_json_key_eq(key, keylen, "max_tokens") ||
                ad_json_key_eq(key, keylen, "max_completion_tokens")) &&
               ad_json_span_int64(v, &x) == 0) {
        r->max_tokens = x;
    } else if (ad_json_key_eq(key, keylen, "n") && ad_json_span_int64(v, &x) == 0) {
        r->n = x;
    } else if (ad_json_key_eq(key, keylen, "user")) {
        r->user = v;
    }
    return 0;
}

int ad_request_scan(ad_op_t op, const char *body, size_t len, ad_request_t *r, size_t *err_off)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->body = body;
    r->body_len = len;
    r->max_tokens = -1;
    r->n = 1;
    scan_ctx_t ctx = {r};
    return ad_json_scan_object(body, len, request_member, &ctx, err_off) == 0 ? 0 : -1;
}
