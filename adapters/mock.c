/*
 * mock.c — deterministic OpenAI-format responses (see mock.h).
 */
#include "adapters/mock.h"
#include "adapters/openai.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEXT "This is a mock response from Tollgate. It is deterministic, so tests can rely on it."
#define MAX_TEXT (1u << 20)

static int64_t param_int(const json_t *params, const char *key, int64_t dflt)
{
    json_t *v = params != NULL ? json_object_get(params, key) : NULL;
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

static size_t content_chars(json_t *content)
{
    if (json_is_string(content))
        return json_string_length(content);
    size_t n = 0, i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            n += json_string_length(t);
    }
    return n;
}

static const char *content_text(json_t *content)
{
    if (json_is_string(content))
        return json_string_value(content);
    json_t *first = json_array_get(content, 0);
    json_t *t = json_object_get(first, "text");
    return json_is_string(t) ? json_string_value(t) : "";
}

static int64_t ceil_div4(size_t n)
{
    return n == 0 ? 1 : (int64_t)((n + 3) / 4);
}

static size_t count_pieces(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && s[i] != ' ')
            i++;
        while (i < len && s[i] == ' ')
            i++;
        n++;
    }
    return n;
}

/* piece k: from the start of the k-th word through the spaces that follow it */
static void piece_span(const char *s, size_t len, size_t k, size_t *off, size_t *plen)
{
    size_t i = 0, n = 0, start = 0;
    while (i < len) {
        start = i;
        while (i < len && s[i] != ' ')
            i++;
        while (i < len && s[i] == ' ')
            i++;
        if (n++ == k)
            break;
    }
    *off = start;
    *plen = i - start;
}

static int plan_chat(ad_mock_plan_t *p, json_t *body, const json_t *params, char *err, size_t errlen)
{
    json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(err, errlen, "messages must be a non-empty array");
        return -1;
    }
    size_t chars = 0, i;
    json_t *m;
    json_array_foreach(msgs, i, m) chars += content_chars(json_object_get(m, "content"));
    p->usage.prompt_tokens = ceil_div4(chars);
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    json_t *tools = json_object_get(body, "tools");
    json_t *reply = params != NULL ? json_object_get(params, "mock_response") : NULL;
    int rc = 0;
    if (json_is_array(tools) && json_array_size(tools) > 0 && role != NULL && strcmp(role, "user") == 0) {
        json_t *fn = json_object_get(json_array_get(tools, 0), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *q = content_text(json_object_get(last, "content"));
        rc |= ad_buf_puts(&p->tool_name, name != NULL ? name : "tool");
        rc |= ad_buf_puts(&p->text, "{\"query\":");
        rc |= ad_buf_append_json_str(&p->text, q, strlen(q));
        rc |= ad_buf_puts(&p->text, "}");
    } else if (role != NULL && strcmp(role, "tool") == 0) {
        const char *c = content_text(json_object_get(last, "content"));
        rc |= ad_buf_appendf(&p->text, "Tool result: %s", c);
    } else {
        rc |= ad_buf_puts(&p->text, json_is_string(reply) ? json_string_value(reply) : DEFAULT_TEXT);
    }
    if (rc != 0) {
        snprintf(err, errlen, "mock reply too large");
        return -1;
    }
    p->n_pieces = p->tool_name.len ? 2 : count_pieces(p->text.data, p->text.len);
    p->usage.completion_tokens = p->tool_name.len ? ceil_div4(p->text.len) : (int64_t)p->n_pieces;
    return 0;
}

static int plan_embeddings(ad_mock_plan_t *p, json_t *body, const json_t *params, char *err, size_t errlen)
{
    json_t *in = json_object_get(body, "input");
    p->inputs = json_array();
    if (json_is_string(in)) {
        json_array_append(p->inputs, in);
    } else if (json_is_array(in) && json_array_size(in) > 0) {
        size_t i;
        json_t *v;
        json_array_foreach(in, i, v)
        {
            if (json_is_string(v))
                json_array_append(p->inputs, v);
            else { /* token arrays: embed their JSON text */
                char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                json_array_append_new(p->inputs, json_string(txt != NULL ? txt : ""));
                free(txt);
            }
        }
    } else {
        snprintf(err, errlen, "input must be a string or a non-empty array");
        return -1;
    }
    json_t *dims = json_object_get(body, "dimensions");
    p->dims =
        json_is_integer(dims) ? (int)json_integer_value(dims) : (int)param_int(params, "mock_dimensions", 8);
    if (p->dims < 1 || p->dims > 8192) {
        snprintf(err, errlen, "dimensions must be between 1 and 8192");
        return -1;
    }
    json_t *fmt = json_object_get(body, "encoding_format");
    p->base64 = json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0;
    size_t chars = 0, i;
    json_t *v;
    json_array_foreach(p->inputs, i, v) chars += json_string_length(v);
    p->usage.prompt_tokens = ceil_div4(chars);
    p->usage.completion_tokens = 0;
    return 0;
}

int ad_mock_plan(const ad_request_t *req, const ad_deployment_t *dep, const char *id, long long created,
                 ad_mock_plan_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->op = req->op;
    ad_buf_init(&p->text, MAX_TEXT);
    ad_buf_init(&p->tool_name, 256);
    ad_buf_init(&p->model, 1024);
    p->usage = (ad_usage_t){0, 0, -1, -1};
    snprintf(p->id, sizeof(p->id), "chatcmpl-%s", id);
    p->created = created;
    p->ttft_ms = param_int(dep->params, "mock_ttft_ms", 0);
    p->token_ms = param_int(dep->params, "mock_token_ms", 0);
    ad_buf_puts(&p->model, dep->upstream_model != NULL ? dep->upstream_model : "mock");
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (body == NULL) {
        snprintf(err, errlen, "invalid JSON: %s", jerr.text);
        return -1;
    }
    int rc = req->op == AD_OP_EMBEDDINGS ? plan_embeddings(p, body, dep->params, err, errlen)
                                         : plan_chat(p, body, dep->params, err, errlen);
    json_decref(body);
    return rc;
}

void ad_mock_plan_free(ad_mock_plan_t *p)
{
    ad_buf_free(&p->text);
    ad_buf_free(&p->tool_name);
    ad_buf_free(&p->model);
    json_decref(p->inputs);
    p->inputs = NULL;
}

static int usage_json(const ad_mock_plan_t *p, ad_buf_t *out)
{
    return ad_buf_appendf(out, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
                          (long long)p->usage.prompt_tokens, (long long)p->usage.completion_tokens,
                          (long long)(p->usage.prompt_tokens + p->usage.completion_tokens));
}

static int head_json(const ad_mock_plan_t *p, const char *object, ad_buf_t *out)
{
    int rc = ad_buf_appendf(out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", p->id,
                            object, p->created);
    rc |= ad_buf_append_json_str(out, p->model.data, p->model.len);
    return rc;
}

static int tool_call_json(const ad_mock_plan_t *p, ad_buf_t *out, int with_index, const char *args,
                          size_t args_len)
{
    int rc = ad_buf_puts(out, with_index ? "[{\"index\":0,\"id\":\"call_mock_1\",\"type\":\"function\","
                                           "\"function\":{\"name\":"
                                         : "[{\"id\":\"call_mock_1\",\"type\":\"function\","
                                           "\"function\":{\"name\":");
    rc |= ad_buf_append_json_str(out, p->tool_name.data, p->tool_name.len);
    rc |= ad_buf_puts(out, ",\"arguments\":");
    rc |= ad_buf_append_json_str(out, args, args_len);
    rc |= ad_buf_puts(out, "}}]");
    return rc;
}

static void float_vector(const char *s, size_t len, int dims, float *v)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    double norm = 0;
    for (int j = 0; j < dims; j++) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        v[j] = (float)((double)(h >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
        norm += (double)v[j] * v[j];
    }
    norm = sqrt(norm);
    for (int j = 0; j < dims && norm > 0; j++)
        v[j] = (float)(v[j] / norm);
}

static int embedding_json(const ad_mock_plan_t *p, json_t *text, size_t index, ad_buf_t *out)
{
    float v[8192];
    float_vector(json_string_value(text), json_string_length(text), p->dims, v);
    int rc = ad_buf_appendf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", index ? "," : "",
                            index);
    if (p->base64) {
        unsigned char le[8192 * 4];
        for (int j = 0; j < p->dims; j++) {
            uint32_t u;
            memcpy(&u, &v[j], 4);
            le[4 * j] = u & 0xff;
            le[4 * j + 1] = (u >> 8) & 0xff;
            le[4 * j + 2] = (u >> 16) & 0xff;
            le[4 * j + 3] = u >> 24;
        }
        size_t need = 4 * (((size_t)p->dims * 4 + 2) / 3) + 1;
        if (ad_buf_reserve(out, need + 2) != 0)
            return -1;
        rc |= ad_buf_puts(out, "\"");
        int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, le, p->dims * 4);
        out->len += (size_t)n;
        out->data[out->len] = '\0';
        rc |= ad_buf_puts(out, "\"");
    } else {
        for (int j = 0; j < p->dims; j++)
            rc |= ad_buf_appendf(out, "%s%.9g", j ? "," : "[", (double)v[j]);
        rc |= ad_buf_puts(out, "]");
    }
    return rc | ad_buf_puts(out, "}");
}

int ad_mock_render_body(const ad_mock_plan_t *p, ad_buf_t *out)
{
    int rc = 0;
    if (p->op == AD_OP_EMBEDDINGS) {
        rc |= ad_buf_puts(out, "{\"object\":\"list\",\"data\":[");
        size_t i;
        json_t *t;
        json_array_foreach(p->inputs, i, t) rc |= embedding_json(p, t, i, out);
        rc |= ad_buf_puts(out, "],\"model\":");
        rc |= ad_buf_append_json_str(out, p->model.data, p->model.len);
        rc |= ad_buf_appendf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
                             (long long)p->usage.prompt_tokens, (long long)p->usage.prompt_tokens);
        return rc ? -1 : 0;
    }
    rc |= head_json(p, "chat.completion", out);
    rc |= ad_buf_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (p->tool_name.len) {
        rc |= ad_buf_puts(out, "null,\"tool_calls\":");
        rc |= tool_call_json(p, out, 0, p->text.data, p->text.len);
    } else {
        rc |= ad_buf_append_json_str(out, p->text.data, p->text.len);
    }
    rc |= ad_buf_appendf(out, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":",
                         p->tool_name.len ? "tool_calls" : "stop");
    rc |= usage_json(p, out);
    rc |= ad_buf_puts(out, ",\"system_fingerprint\":\"fp_tollgate_mock\"}");
    return rc ? -1 : 0;
}

size_t ad_mock_n_events(const ad_mock_plan_t *p)
{
    return p->n_pieces + 4; /* role, pieces…, finish, usage, [DONE] */
}

static int chunk_open(const ad_mock_plan_t *p, ad_buf_t *out)
{
    int rc = ad_buf_puts(out, "data: ");
    rc |= head_json(p, "chat.completion.chunk", out);
    return rc | ad_buf_puts(out, ",\"system_fingerprint\":\"fp_tollgate_mock\",\"choices\":[");
}

int ad_mock_render_event(const ad_mock_plan_t *p, size_t i, ad_buf_t *out)
{
    size_t n = ad_mock_n_events(p);
    int rc = 0;
    if (i + 1 == n)
        return ad_buf_puts(out, "data: [DONE]\n\n");
    rc |= chunk_open(p, out);
    if (i + 2 == n) {
        rc |= ad_buf_puts(out, "],\"usage\":");
        rc |= usage_json(p, out);
        return rc | ad_buf_puts(out, "}\n\n");
    }
    rc |= ad_buf_puts(out, "{\"index\":0,\"delta\":");
    if (i == 0) {
        rc |= ad_buf_puts(out, p->tool_name.len ? "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
                                                : "{\"role\":\"assistant\",\"content\":\"\"}");
        if (p->tool_name.len)
            rc |= tool_call_json(p, out, 1, "", 0) | ad_buf_puts(out, "}");
    } else if (i + 3 == n) {
        rc |= ad_buf_appendf(out, "{},\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
                             p->tool_name.len ? "tool_calls" : "stop");
        return rc;
    } else if (p->tool_name.len) {
        size_t half = p->text.len / 2, off = i == 1 ? 0 : half, len = i == 1 ? half : p->text.len - half;
        rc |= ad_buf_puts(out, "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
        rc |= ad_buf_append_json_str(out, p->text.data + off, len);
        rc |= ad_buf_puts(out, "}}]}");
    } else {
        size_t off, len;
        piece_span(p->text.data, p->text.len, i - 1, &off, &len);
        rc |= ad_buf_puts(out, "{\"content\":");
        rc |= ad_buf_append_json_str(out, p->text.data + off, len);
        rc |= ad_buf_puts(out, "}");
    }
    rc |= ad_buf_puts(out, ",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    return rc ? -1 : 0;
}

static int mock_build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                              char *errbuf, size_t errlen)
{
    snprintf(errbuf, errlen, "the mock provider is served in-process");
    return -1;
}

static int mock_parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                               ad_usage_t *usage)
{
    return ad_openai.parse_response(req, body, len, out, usage);
}

/* The mock renders OpenAI's wire format: the core streams its bytes through ad_openai's stream
 * functions, so the slots below stay empty. */
const ad_adapter_t ad_mock = {
    .name = "mock",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_EMBEDDINGS | AD_CAP_PASSTHROUGH,
    .build_request = mock_build_request,
    .parse_response = mock_parse_response,
    .map_error = ad_openai_map_error,
};
