/*
 * openwebui.c — Open WebUI (providers.md §7): OpenAI's chat format at {api_base}/api/chat/completions
 * (no /v1) with a Bearer key.
 *
 * Everything but the path is the openai adapter's: the body is the client's bytes with its splices,
 * responses and streams go through its functions. It is registered as a translating adapter only
 * because the core prebuilds passthrough URLs as api_base + "/chat/completions"; a per-adapter
 * path in the vtable would let the core treat it as passthrough (see the lead's notes).
 *
 * Two Open WebUI habits are smoothed: stream events that are not chat chunks (its own
 * {"sources":[…]} or status events: no choices, usage or error) are dropped, since clients read
 * choices[0] of every event; and FastAPI's {"detail":…} error bodies become OpenAI errors.
 * Embeddings go to /api/embeddings, Open WebUI's OpenAI-compatible endpoint (unsure, not in
 * providers.md).
 */
#include "adapters/adapter.h"
#include "adapters/errmap.h"
#include "adapters/openai.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_BASE "http://localhost:3000"

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    if (req->op == AD_OP_COMPLETIONS) {
        snprintf(errbuf, errlen, "Open WebUI serves chat completions only; use /v1/chat/completions");
        return -1;
    }
    const char *base = dep->api_base != NULL ? dep->api_base : DEFAULT_BASE;
    size_t n = strlen(base);
    if (n >= 4 && memcmp(base + n - 4, "/api", 4) == 0) /* api_base given with its /api */
        n -= 4;
    out->method = "POST";
    int rc = ad_buf_appendf(&out->url, "%.*s%s", (int)n, base,
                            req->op == AD_OP_EMBEDDINGS ? "/api/embeddings" : "/api/chat/completions");
    rc |= ad_http_request_add_header(out, "Content-Type: application/json");
    if (dep->api_key != NULL && dep->api_key[0] != '\0')
        rc |= ad_http_request_add_header(out, "Authorization: Bearer %s", dep->api_key);
    if (rc != 0 || ad_openai_splice_body(req, dep->upstream_model, &out->body) != 0) {
        snprintf(errbuf, errlen, "request too large to forward");
        return -1;
    }
    return 0;
}

static int parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage)
{
    return ad_openai.parse_response(req, body, len, out, usage);
}

static void stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ad_openai.stream_init(st, req);
}

/* A data event that is a JSON object with none of choices, usage, error is not a chat chunk. */
static int foreign_event(const ad_sse_event_t *ev)
{
    ad_jspan_t v;
    if (!ev->has_data || ad_json_validate(ev->data, ev->data_len, NULL) != 0 ||
        ad_json_find(ev->data, ev->data_len, "choices", &v) != 0)
        return 0;
    return ad_json_find(ev->data, ev->data_len, "usage", &v) == 0 &&
           ad_json_find(ev->data, ev->data_len, "error", &v) == 0;
}

static int on_block(void *ud, const ad_sse_event_t *ev)
{
    return foreign_event(ev) ? 0 : ad_openai_on_sse(ud, ev);
}

static int stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    return ad_sse_feed(&st->sse, p, n, on_block, st);
}

static int stream_finish(ad_stream_t *st)
{
    return ad_openai.stream_finish(st);
}

/* FastAPI's detail: a string, or a list of {"loc","msg","type"} for validation errors. */
static int detail_message(const char *body, size_t len, char *msg, size_t cap)
{
    ad_jspan_t d;
    if (ad_json_find(body, len, "detail", &d) != 1)
        return -1;
    if (d.type == AD_J_STRING)
        return ad_json_span_string(d, msg, cap) >= 0 ? 0 : -1;
    json_t *arr = d.type == AD_J_ARRAY ? json_loadb(d.p, d.len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_array_get(arr, 0), "msg"));
    if (m != NULL)
        snprintf(msg, cap, "%s", m);
    json_decref(arr);
    return m != NULL ? 0 : -1;
}

static void map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                      ad_error_t *err)
{
    char msg[2048];
    ad_openai_map_error(status, body, len, retry_after, out, err);
    if (detail_message(body, len, msg, sizeof(msg)) != 0)
        return; /* OpenAI's envelope (forwarded) or a body without a message (already mapped) */
    ad_buf_reset(out);
    ad_errmap_json(out, msg, ad_errmap_type(status), NULL, status == 404 ? "model_not_found" : NULL);
}

const ad_adapter_t ad_openwebui = {
    .name = "openwebui",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS | AD_CAP_JSON_MODE,
    .build_request = build_request,
    .parse_response = parse_response,
    .stream_init = stream_init,
    .stream_feed = stream_feed,
    .stream_finish = stream_finish,
    .map_error = map_error,
};
