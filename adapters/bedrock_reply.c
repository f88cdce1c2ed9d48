/*
 * bedrock_reply.c — the Bedrock adapter's response side (see bedrock.c for the request side):
 * Converse and embeddings bodies to OpenAI JSON, the ConverseStream event-stream to OpenAI
 * chunks, and AWS errors to OpenAI's error shape.
 *
 * Streams. Each event-stream message is dispatched on its :message-type header:
 *   event      :event-type messageStart | contentBlockStart | contentBlockDelta | contentBlockStop |
 *              messageStop | metadata, payload = that member's JSON; unknown types are ignored
 *   exception  :exception-type + {"message"} → one OpenAI error event, the stream is over
 *   error      :error-code / :error-message headers → the same
 * Text blocks usually get no contentBlockStart, so nothing depends on it; tool-use blocks do, and
 * each one becomes tool call index 0, 1, 2… in the order it started (its contentBlockIndex is
 * remembered to route the input fragments). messageStop sends the finish chunk; metadata, the
 * last event and the only one with usage, then sends the usage chunk (hidden unless the client
 * asked for include_usage) and [DONE]. A stream that ends after messageStop without metadata is
 * complete with unknown usage: stream_finish sends [DONE] itself. A stream that ends before
 * messageStop (or mid-frame before it) is truncated.
 *
 * Usage follows OpenAI's meaning: prompt_tokens counts every input token, so Bedrock's
 * cacheReadInputTokens and cacheWriteInputTokens are added to inputTokens (as LiteLLM does) and
 * the cache reads are also reported as cached_tokens.
 */
#include "adapters/bedrock_int.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_STREAM_MESSAGE (8u << 20)                  /* one event-stream frame */
#define SCRATCH_MAX (6u * MAX_STREAM_MESSAGE + 65536u) /* one chunk: a frame's text, escaped */
#define MAX_ERROR_MESSAGE 2000

/* ---- tables ----------------------------------------------------------------------------------- */

static const struct {
    const char *stop_reason, *finish;
} finish_map[] = {
    {"end_turn", "stop"},
    {"stop_sequence", "stop"},
    {"max_tokens", "length"},
    {"model_context_window_exceeded", "length"},
    {"tool_use", "tool_calls"},
    {"guardrail_intervened", "content_filter"},
    {"content_filtered", "content_filter"},
    {"malformed_model_output", "stop"},
    {"malformed_tool_use", "stop"},
};

const char *ad_bedrock_finish_reason(const char *stop_reason)
{
    for (size_t i = 0; stop_reason != NULL && i < sizeof(finish_map) / sizeof(finish_map[0]); i++)
        if (strcmp(finish_map[i].stop_reason, stop_reason) == 0)
            return finish_map[i].finish;
    return "stop";
}

static const ad_bedrock_exception_t exceptions[] = {
    {"ValidationException", 400, "invalid_request_error", 0},
    {"ServiceQuotaExceededException", 400, "invalid_request_error", 0},
    {"AccessDeniedException", 403, "permission_error", 0},
    {"InvalidSignatureException", 403, "permission_error", 0},
    {"UnrecognizedClientException", 403, "permission_error", 0},
    {"ExpiredTokenException", 403, "permission_error", 0},
    {"ResourceNotFoundException", 404, "invalid_request_error", 0},
    {"ModelTimeoutException", 408, "api_error", 1},
    {"ModelErrorException", 424, "api_error", 0},
    {"ModelStreamErrorException", 424, "api_error", 0},
    {"ThrottlingException", 429, "rate_limit_error", 1},
    {"ModelNotReadyException", 503, "api_error", 1},
    {"InternalServerException", 500, "api_error", 1},
    {"ServiceUnavailableException", 503, "api_error", 1},
};

const ad_bedrock_exception_t *ad_bedrock_exception(const char *name, size_t len)
{
    /* "com.amazon.coral.service#ThrottlingException" and "ThrottlingException:http://…" */
    for (size_t i = len; i > 0; i--)
        if (name[i - 1] == '#') {
            name += i;
            len -= i;
            break;
        }
    for (size_t i = 0; i < len; i++)
        if (name[i] == ':') {
            len = i;
            break;
        }
    for (size_t i = 0; i < sizeof(exceptions) / sizeof(exceptions[0]); i++)
        if (strlen(exceptions[i].name) == len && strncasecmp(exceptions[i].name, name, len) == 0)
            return &exceptions[i];
    return NULL;
}

/* ---- shared helpers ---------------------------------------------------------------------------- */

static int64_t count(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

/* Converse usage → OpenAI meaning (see the top of the file). Leaves u alone without usage. */
static void usage_from(json_t *usage, ad_usage_t *u)
{
    if (!json_is_object(usage))
        return;
    int64_t prompt = count(usage, "inputTokens"), cache_read = count(usage, "cacheReadInputTokens");
    int64_t cache_write = count(usage, "cacheWriteInputTokens");
    if (prompt >= 0 && cache_read > 0 && __builtin_add_overflow(prompt, cache_read, &prompt))
        prompt = -1;
    if (prompt >= 0 && cache_write > 0 && __builtin_add_overflow(prompt, cache_write, &prompt))
        prompt = -1;
    u->prompt_tokens = prompt;
    u->completion_tokens = count(usage, "outputTokens");
    u->cached_tokens = cache_read;
    u->reasoning_tokens = -1;
}

/* The model name the client asked for: responses carry it (Converse bodies name no model). */
static void client_model(const ad_request_t *req, char *out, size_t cap)
{
    if (req == NULL || ad_json_span_string(req->model, out, cap) < 0)
        out[0] = '\0';
}

/* ---- non-stream: Converse ----------------------------------------------------------------------- */

typedef struct reply {
    ad_buf_t text, reasoning;
    ad_oai_tool_call_t *calls;
    size_t n_calls;
    int has_text;
} reply_t;

static int add_tool_call(reply_t *r, json_t *tu)
{
    const char *id = json_string_value(json_object_get(tu, "toolUseId"));
    const char *name = json_string_value(json_object_get(tu, "name"));
    json_t *input = json_object_get(tu, "input");
    char *args = input != NULL ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (args == NULL)
        return -1;
    r->calls[r->n_calls++] = (ad_oai_tool_call_t){id != NULL ? id : "", name != NULL ? name : "", args};
    return 0;
}

static int collect_blocks(reply_t *r, json_t *content)
{
    size_t i;
    json_t *block, *v;
    int rc = 0;
    json_array_foreach(content, i, block)
    {
        if (json_is_string(v = json_object_get(block, "text"))) {
            rc |= ad_buf_append(&r->text, json_string_value(v), json_string_length(v));
            r->has_text = 1;
        } else if (json_is_object(v = json_object_get(block, "toolUse"))) {
            rc |= add_tool_call(r, v);
        } else if (json_is_string(
                       v = json_object_get(
                           json_object_get(json_object_get(block, "reasoningContent"), "reasoningText"),
                           "text"))) {
            rc |= ad_buf_append(&r->reasoning, json_string_value(v), json_string_length(v));
        }
    }
    return rc ? -1 : 0;
}

static int converse_reply(const ad_request_t *req, json_t *root, size_t len, ad_buf_t *out, ad_usage_t *usage)
{
    json_t *output = json_object_get(root, "output");
    json_t *content = json_object_get(json_object_get(output, "message"), "content");
    reply_t r = {.calls = calloc(json_array_size(content) + 1, sizeof(ad_oai_tool_call_t))};
    char model[256];
    int rc = -1;
    ad_buf_init(&r.text, len + 1);
    ad_buf_init(&r.reasoning, len + 1);
    if (json_is_object(output) && r.calls != NULL && collect_blocks(&r, content) == 0) {
        ad_usage_t u = {-1, -1, -1, -1};
        usage_from(json_object_get(root, "usage"), &u);
        *usage = u;
        client_model(req, model, sizeof(model));
        ad_oai_message_t m = {
            .id = req != NULL ? req->request_id : NULL,
            .model = model,
            .created = req != NULL ? req->now : 0,
            .content = r.has_text || r.n_calls == 0 ? (r.text.data != NULL ? r.text.data : "") : NULL,
            .content_len = r.text.len,
            .reasoning = r.reasoning.len > 0 ? r.reasoning.data : NULL,
            .tool_calls = r.calls,
            .n_tool_calls = r.n_calls,
            .finish_reason = ad_bedrock_finish_reason(json_string_value(json_object_get(root, "stopReason"))),
            .usage = u,
        };
        rc = ad_oai_write_completion(&m, out);
    }
    for (size_t i = 0; i < r.n_calls; i++)
        free((char *)r.calls[i].arguments);
    free(r.calls);
    ad_buf_free(&r.text);
    ad_buf_free(&r.reasoning);
    return rc;
}

/* ---- non-stream: embeddings --------------------------------------------------------------------- */

/* Titan {"embedding":[…],"inputTextTokenCount":n}; Cohere {"embeddings":[[…]…]} or, with
 * embedding_types, {"embeddings":{"float":[[…]…]}}. Returns a new reference to the array of rows. */
static json_t *embedding_rows(json_t *root)
{
    json_t *single = json_object_get(root, "embedding"), *many = json_object_get(root, "embeddings");
    if (json_is_array(single))
        return json_pack("[O]", single);
    if (json_is_object(many))
        many = json_object_get(many, "float");
    return json_is_array(many) ? json_incref(many) : NULL;
}

static int fill_vectors(json_t *rows, size_t dims, float *data, const float **vectors)
{
    size_t i, j;
    json_t *row, *x;
    json_array_foreach(rows, i, row)
    {
        if (!json_is_array(row) || json_array_size(row) != dims)
            return -1;
        vectors[i] = data + i * dims;
        json_array_foreach(row, j, x)
        {
            if (!json_is_number(x))
                return -1;
            double d = json_number_value(x); /* a double past float's range cannot be converted */
            data[i * dims + j] = (float)(d > FLT_MAX ? FLT_MAX : d < -FLT_MAX ? -FLT_MAX : d);
        }
    }
    return 0;
}

static int embeddings_reply(const ad_request_t *req, json_t *root, ad_buf_t *out, ad_usage_t *usage)
{
    json_t *rows = embedding_rows(root);
    size_t n = json_array_size(rows), dims = json_array_size(json_array_get(rows, 0)), cells;
    int64_t tokens = count(root, "inputTextTokenCount");
    char model[256];
    int rc = -1;
    if (rows == NULL || __builtin_mul_overflow(n, dims, &cells) || cells > ((size_t)1 << 28)) {
        json_decref(rows);
        return -1;
    }
    float *data = malloc((cells ? cells : 1) * sizeof(float));
    const float **vectors = calloc(n ? n : 1, sizeof(*vectors));
    if (data != NULL && vectors != NULL && fill_vectors(rows, dims, data, vectors) == 0) {
        client_model(req, model, sizeof(model));
        int b64 = req != NULL && ad_oai_wants_base64(req);
        rc = ad_oai_write_embeddings(vectors, n, dims, b64, model, tokens, out);
        *usage = (ad_usage_t){tokens, tokens >= 0 ? 0 : -1, -1, -1};
    }
    free(data);
    free(vectors);
    json_decref(rows);
    return rc;
}

int ad_bedrock_parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                              ad_usage_t *usage)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    int rc = -1;
    if (json_is_object(root))
        rc = req != NULL && req->op == AD_OP_EMBEDDINGS ? embeddings_reply(req, root, out, usage)
                                                        : converse_reply(req, root, len, out, usage);
    json_decref(root);
    return rc;
}

/* ---- stream ------------------------------------------------------------------------------------- */

void ad_bedrock_stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ad_bedrock_stream_t *bs = st->priv;
    char model[256];
    ad_es_decoder_init(&bs->es, MAX_STREAM_MESSAGE);
    ad_buf_init(&st->scratch, SCRATCH_MAX);
    st->client_wants_usage = req->include_usage;
    st->usage = (ad_usage_t){-1, -1, -1, -1};
    client_model(req, model, sizeof(model));
    ad_oai_stream_begin(&bs->oai, st, NULL, model);
}

void ad_bedrock_stream_free(ad_stream_t *st)
{
    if (st->priv != NULL)
        ad_es_decoder_free(&((ad_bedrock_stream_t *)st->priv)->es);
}

static int end_with_error(ad_stream_t *st, ad_bedrock_stream_t *bs, const char *msg, const char *type,
                          const char *code)
{
    bs->ended = 1;
    return ad_oai_emit_error(st, msg, type, code);
}

/* Usage chunk (when usage is known) and [DONE]: the end of a complete stream. */
static int end_stream(ad_stream_t *st, ad_bedrock_stream_t *bs)
{
    int rc = 0;
    bs->ended = 1;
    if (st->usage.prompt_tokens >= 0 || st->usage.completion_tokens >= 0)
        rc = ad_oai_emit_usage(&bs->oai, st);
    return rc ? rc : ad_oai_emit_done(&bs->oai, st);
}

static int64_t block_index(json_t *ev)
{
    json_t *v = json_object_get(ev, "contentBlockIndex");
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static const ad_bedrock_tool_slot_t *find_slot(const ad_bedrock_stream_t *bs, int64_t block)
{
    for (int i = 0; i < bs->n_tools; i++)
        if (bs->tools[i].block == block)
            return &bs->tools[i];
    return NULL;
}

static int ev_block_start(ad_stream_t *st, ad_bedrock_stream_t *bs, json_t *ev)
{
    json_t *tu = json_object_get(json_object_get(ev, "start"), "toolUse");
    int64_t block = block_index(ev);
    if (!json_is_object(tu) || find_slot(bs, block) != NULL) /* text start, or a repeated start */
        return 0;
    if (bs->n_tools == AD_BEDROCK_MAX_TOOLS)
        return end_with_error(st, bs, "the answer holds more tool calls than the gateway relays", "api_error",
                              "too_many_tool_calls");
    ad_bedrock_tool_slot_t *slot = &bs->tools[bs->n_tools];
    slot->block = block;
    slot->index = bs->n_tools++;
    const char *id = json_string_value(json_object_get(tu, "toolUseId"));
    const char *name = json_string_value(json_object_get(tu, "name"));
    return ad_oai_emit_tool_start(&bs->oai, st, slot->index, id != NULL ? id : "", name != NULL ? name : "");
}

static int ev_block_delta(ad_stream_t *st, ad_bedrock_stream_t *bs, json_t *ev)
{
    json_t *d = json_object_get(ev, "delta"), *v;
    if (json_is_string(v = json_object_get(d, "text")))
        return json_string_length(v)
                   ? ad_oai_emit_text(&bs->oai, st, json_string_value(v), json_string_length(v))
                   : 0;
    if (json_is_string(v = json_object_get(json_object_get(d, "toolUse"), "input"))) {
        const ad_bedrock_tool_slot_t *slot = find_slot(bs, block_index(ev));
        if (slot == NULL || json_string_length(v) == 0) /* no start: no id/name to attach it to */
            return 0;
        return ad_oai_emit_tool_args(&bs->oai, st, slot->index, json_string_value(v), json_string_length(v));
    }
    if (json_is_string(v = json_object_get(json_object_get(d, "reasoningContent"), "text")) &&
        json_string_length(v))
        return ad_oai_emit_reasoning(&bs->oai, st, json_string_value(v), json_string_length(v));
    return 0; /* reasoning signatures, redacted reasoning, citations, unknown deltas */
}

static int ev_message_stop(ad_stream_t *st, ad_bedrock_stream_t *bs, json_t *ev)
{
    if (bs->stopped)
        return 0;
    bs->stopped = 1;
    const char *reason = json_string_value(json_object_get(ev, "stopReason"));
    int rc = ad_oai_emit_finish(&bs->oai, st, ad_bedrock_finish_reason(reason));
    return rc ? rc : bs->have_usage ? end_stream(st, bs) : 0;
}

static int ev_metadata(ad_stream_t *st, ad_bedrock_stream_t *bs, json_t *ev)
{
    usage_from(json_object_get(ev, "usage"), &st->usage);
    bs->have_usage = 1;
    return bs->stopped ? end_stream(st, bs) : 0;
}

static int ev_ignore(ad_stream_t *st, ad_bedrock_stream_t *bs, json_t *ev)
{
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(ad_stream_t *, ad_bedrock_stream_t *, json_t *);
} events[] = {
    {"messageStart", ev_ignore},           {"contentBlockStart", ev_block_start},
    {"contentBlockDelta", ev_block_delta}, {"contentBlockStop", ev_ignore},
    {"messageStop", ev_message_stop},      {"metadata", ev_metadata},
};

static int on_event(ad_stream_t *st, ad_bedrock_stream_t *bs, const ad_es_message_t *m)
{
    ad_es_header_t h;
    if (!ad_es_header_find(m, ":event-type", &h) || h.type != AD_ES_STRING)
        return 0;
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        if (strlen(events[i].name) != h.bytes_len || memcmp(events[i].name, h.bytes, h.bytes_len) != 0)
            continue;
        json_t *ev = json_loadb((const char *)m->payload, m->payload_len, 0, NULL);
        int rc = json_is_object(ev) ? events[i].fn(st, bs, ev) : -1; /* a known event we cannot read */
        json_decref(ev);
        return rc;
    }
    return 0;
}

/* A STRING header as a C string in out (empty when absent or of another type). */
static void header_string(const ad_es_message_t *m, const char *name, char *out, size_t cap)
{
    ad_es_header_t h;
    out[0] = '\0';
    if (ad_es_header_find(m, name, &h) && h.type == AD_ES_STRING) {
        size_t n = h.bytes_len < cap - 1 ? h.bytes_len : cap - 1;
        memcpy(out, h.bytes, n);
        out[n] = '\0';
    }
}

static int on_exception(ad_stream_t *st, ad_bedrock_stream_t *bs, const ad_es_message_t *m)
{
    char name[128], fallback[256];
    header_string(m, ":exception-type", name, sizeof(name));
    json_t *p = json_loadb((const char *)m->payload, m->payload_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(p, "message"));
    const ad_bedrock_exception_t *e = ad_bedrock_exception(name, strlen(name));
    snprintf(fallback, sizeof(fallback), "Bedrock stream failed: %s", name[0] ? name : "unknown exception");
    int rc = end_with_error(st, bs, msg != NULL ? msg : fallback, e != NULL ? e->type : "api_error",
                            name[0] ? name : NULL);
    json_decref(p);
    return rc;
}

static int on_error(ad_stream_t *st, ad_bedrock_stream_t *bs, const ad_es_message_t *m)
{
    char code[128], msg[1024];
    header_string(m, ":error-code", code, sizeof(code));
    header_string(m, ":error-message", msg, sizeof(msg));
    return end_with_error(st, bs, msg[0] ? msg : "Bedrock stream error", "api_error", code[0] ? code : NULL);
}

static int on_message(void *ud, const ad_es_message_t *m)
{
    ad_stream_t *st = ud;
    ad_bedrock_stream_t *bs = st->priv;
    if (bs->ended)
        return 0;
    if (ad_es_header_is(m, ":message-type", "event"))
        return on_event(st, bs, m);
    if (ad_es_header_is(m, ":message-type", "exception"))
        return on_exception(st, bs, m);
    if (ad_es_header_is(m, ":message-type", "error"))
        return on_error(st, bs, m);
    return 0;
}

int ad_bedrock_stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    ad_bedrock_stream_t *bs = st->priv;
    if (bs->failed)
        return -1;
    int rc = ad_es_feed(&bs->es, p, n, on_message, st);
    if (rc != 0)
        bs->failed = 1;
    return rc;
}

int ad_bedrock_stream_finish(ad_stream_t *st)
{
    ad_bedrock_stream_t *bs = st->priv;
    if (st->saw_done || st->saw_error)
        return 0;
    if (bs->stopped && !bs->failed) { /* messageStop but no metadata: complete, usage unknown */
        bs->ended = 1;
        ad_oai_emit_done(&bs->oai, st);
        return 0;
    }
    return 1;
}

/* ---- errors ------------------------------------------------------------------------------------ */

static const char *type_for_status(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 || status == 408 || status == 424 ? "api_error" : "invalid_request_error";
    }
}

static int retryable_status(int status)
{
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Bedrock reports a prompt over the context window as a ValidationException (wording varies). */
static int context_overflow(int status, const char *msg)
{
    static const char *const marks[] = {"too long", "too many input tokens", "context length",
                                        "context window", "maximum context"};
    for (size_t i = 0; status == 400 && msg != NULL && i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strcasestr(msg, marks[i]) != NULL)
            return 1;
    return 0;
}

/* At most MAX_ERROR_MESSAGE bytes of s, cut at a UTF-8 character boundary. */
static void clip_message(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

static void status_message(int status, const char *body, size_t len, char *out, size_t cap)
{
    char snippet[201];
    size_t k = 0;
    for (size_t i = 0; i < len && k < 200; i++) /* printable ASCII only: bodies can be HTML or binary */
        snippet[k++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    snippet[k] = '\0';
    snprintf(out, cap, "Bedrock returned HTTP %d%s%s", status, k ? ": " : "", snippet);
}

void ad_bedrock_map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                          ad_error_t *err)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *message = json_string_value(json_object_get(j, "message"));
    const char *name = json_string_value(json_object_get(j, "__type"));
    char msg[MAX_ERROR_MESSAGE + 1];
    if (message == NULL)
        message = json_string_value(json_object_get(j, "Message"));
    if (name == NULL)
        name = json_string_value(json_object_get(j, "code"));
    const ad_bedrock_exception_t *e = name != NULL ? ad_bedrock_exception(name, strlen(name)) : NULL;
    err->status = e != NULL ? e->status : status;
    err->retryable = e != NULL ? e->retryable : retryable_status(status);
    err->retry_ms = -1;
    if (retry_after != NULL) {
        char *end;
        double s = strtod(retry_after, &end);
        if (end != retry_after && s >= 0 && s < 86400)
            err->retry_ms = (int64_t)(s * 1000);
    }
    if (message != NULL)
        clip_message(message, msg, sizeof(msg));
    else
        status_message(status, body, len, msg, sizeof(msg));
    const char *code = context_overflow(err->status, message) ? "context_length_exceeded"
                       : e                                    ? e->name
                                                              : NULL;
    ad_buf_reset(out);
    if (ad_error_json(out, msg, e != NULL ? e->type : type_for_status(err->status), code) != 0) {
        ad_buf_reset(out);
        ad_error_json(out, "Bedrock returned an error", "api_error", NULL);
    }
    json_decref(j);
}
