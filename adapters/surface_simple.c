/*
 * surface_simple.c — the simple contract POST /v1/chat (DESIGN §6, see surface.h).
 *
 * {provider?, model, messages, temperature?, top_p?, max_tokens?} in, {text, provider, model,
 * tokens_in, tokens_out, latency_ms} out, errors as {"error":{"code","message","provider"}}.
 * The messages are already OpenAI-shaped, so the request translation is a field filter; only the
 * listed fields are taken, everything else a client sends is dropped.
 */
#include "adapters/surface.h"
#include "adapters/surface_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_TEXT (256u << 20)

/* provider: optional string, copied out ("" when absent or null). */
static int take_provider(const json_t *in, char *provider, size_t cap, char *err, size_t errlen)
{
    const json_t *p = json_object_get(in, "provider");
    if (cap > 0)
        provider[0] = '\0';
    if (p == NULL || json_is_null(p))
        return 0;
    if (!json_is_string(p))
        return ad_surf_fail(err, errlen, "provider must be a string");
    if (json_string_length(p) >= cap || memchr(json_string_value(p), '\0', json_string_length(p)) != NULL)
        return ad_surf_fail(err, errlen, "provider name is too long or invalid");
    memcpy(provider, json_string_value(p), json_string_length(p) + 1);
    return 0;
}

static int take_messages(const json_t *msgs, char *err, size_t errlen)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return ad_surf_fail(err, errlen, "messages must be a non-empty array");
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            return ad_surf_fail(err, errlen, "messages[%zu] must be an object with a string role", i);
    }
    return 0;
}

/* temperature, top_p: numbers (null = absent); max_tokens: integer >= 1. */
static int take_sampling(const json_t *in, json_t *out, char *err, size_t errlen)
{
    static const char *const reals[] = {"temperature", "top_p"};
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        const json_t *v = json_object_get(in, reals[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_number(v))
            return ad_surf_fail(err, errlen, "%s must be a number", reals[i]);
        if (json_object_set(out, reals[i], (json_t *)v) != 0)
            return ad_surf_fail(err, errlen, "out of memory");
    }
    const json_t *mt = json_object_get(in, "max_tokens");
    if (mt == NULL || json_is_null(mt))
        return 0;
    if (!json_is_integer(mt) || json_integer_value(mt) < 1)
        return ad_surf_fail(err, errlen, "max_tokens must be an integer of at least 1");
    return json_object_set(out, "max_tokens", (json_t *)mt) == 0 ? 0
                                                                 : ad_surf_fail(err, errlen, "out of memory");
}

static int translate(const json_t *in, json_t *out, char *provider, size_t cap, char *err, size_t errlen)
{
    const json_t *model = json_object_get(in, "model"), *msgs = json_object_get(in, "messages");
    if (take_provider(in, provider, cap, err, errlen) != 0)
        return -1;
    if (!json_is_string(model) || json_string_length(model) == 0)
        return ad_surf_fail(err, errlen, "model is required and must be a string");
    if (take_messages(msgs, err, errlen) != 0)
        return -1;
    if (json_object_set(out, "model", (json_t *)model) != 0 ||
        json_object_set(out, "messages", (json_t *)msgs) != 0)
        return ad_surf_fail(err, errlen, "out of memory");
    if (take_sampling(in, out, err, errlen) != 0)
        return -1;
    return json_object_set_new(out, "stream", json_false()) == 0 ? 0
                                                                 : ad_surf_fail(err, errlen, "out of memory");
}

int ad_simple_in_request(const char *body, size_t len, ad_buf_t *openai_body, char *provider,
                         size_t provider_cap, char *err, size_t errlen)
{
    if (provider_cap > 0)
        provider[0] = '\0';
    json_t *in = ad_surf_parse(body, len, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return ad_surf_fail(err, errlen, "request body is not a valid JSON object");
    }
    json_t *out = json_object();
    int rc = out != NULL ? translate(in, out, provider, provider_cap, err, errlen)
                         : ad_surf_fail(err, errlen, "out of memory");
    int wrc = rc == 0 ? ad_surf_write_json(out, openai_body) : 0;
    if (wrc == -2)
        rc = ad_surf_fail(err, errlen, "request nests JSON deeper than %d levels", AD_JSON_MAX_DEPTH);
    else if (wrc != 0)
        rc = ad_surf_fail(err, errlen, "request too large to translate");
    json_decref(out);
    json_decref(in);
    return rc;
}

int ad_simple_out_response(const char *openai_body, size_t len, const char *provider, const char *model,
                           int64_t latency_ms, ad_buf_t *out)
{
    json_t *root = ad_surf_parse(openai_body, len, NULL);
    const json_t *msg = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "message");
    if (!json_is_object(msg)) {
        json_decref(root);
        return -1;
    }
    if (model == NULL || model[0] == '\0')
        model = json_is_string(json_object_get(root, "model"))
                    ? json_string_value(json_object_get(root, "model"))
                    : "";
    const json_t *usage = json_object_get(root, "usage");
    int64_t in_tok = ad_surf_int(usage, "prompt_tokens", 0),
            out_tok = ad_surf_int(usage, "completion_tokens", 0);
    ad_buf_t text;
    ad_buf_init(&text, MAX_TEXT);
    size_t mark = out->len;
    int rc = ad_surf_content_text(json_object_get(msg, "content"), "", &text);
    rc |= ad_buf_puts(out, "{\"text\":");
    rc |= ad_surf_json_str(out, text.len ? text.data : "", text.len);
    rc |= ad_buf_puts(out, ",\"provider\":");
    rc |= ad_surf_json_str(out, provider != NULL ? provider : "", provider != NULL ? strlen(provider) : 0);
    rc |= ad_buf_puts(out, ",\"model\":");
    rc |= ad_surf_json_str(out, model, strlen(model));
    rc |= ad_buf_appendf(out, ",\"tokens_in\":%lld,\"tokens_out\":%lld,\"latency_ms\":%lld}",
                         (long long)(in_tok > 0 ? in_tok : 0), (long long)(out_tok > 0 ? out_tok : 0),
                         (long long)(latency_ms > 0 ? latency_ms : 0));
    ad_buf_free(&text);
    json_decref(root);
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc ? -1 : 0;
}

int ad_simple_error_body(const char *openai_error_json, size_t len, const char *provider, ad_buf_t *out)
{
    json_t *root = ad_surf_parse(openai_error_json, len, NULL);
    const char *msg, *type, *code;
    ad_surf_error_fields(root, &msg, &type, &code);
    code = code != NULL ? code : type != NULL ? type : "api_error";
    msg = msg != NULL ? msg : "upstream error";
    provider = provider != NULL ? provider : "";
    size_t mark = out->len;
    int rc = ad_buf_puts(out, "{\"error\":{\"code\":");
    rc |= ad_surf_json_str(out, code, strlen(code));
    rc |= ad_buf_puts(out, ",\"message\":");
    rc |= ad_surf_json_str(out, msg, strlen(msg));
    rc |= ad_buf_puts(out, ",\"provider\":");
    rc |= ad_surf_json_str(out, provider, strlen(provider));
    rc |= ad_buf_puts(out, "}}");
    json_decref(root);
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc ? -1 : 0;
}
