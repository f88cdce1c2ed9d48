/*
 * anthropic.c — the Anthropic Messages API adapter (providers.md §3): responses, streams and
 * errors back into OpenAI's shapes, and the vtable. The request side is anthropic_request.c.
 *
 * Streams. Anthropic's SSE names every event and repeats the name as the data's `type`; the
 * data's type decides here (the event line is only a fallback). message_start gives id, model and
 * the prompt side of usage and yields OpenAI's role chunk. Content arrives as numbered blocks:
 * text → content deltas, thinking → reasoning_content deltas, tool_use → tool-call deltas. The
 * block number counts every block (text, thinking, tools…), while OpenAI's tool-call index counts
 * calls only, so each block remembers what it is and which call it became. message_delta carries
 * the stop reason and cumulative usage; message_stop is the terminal event and only then are the
 * finish chunk, the usage chunk and [DONE] written, so a stream without message_stop is reported
 * truncated. An `error` event inside the 200 stream becomes one OpenAI error event and ends it.
 *
 * Usage. Anthropic's input_tokens excludes cache reads and writes; OpenAI's prompt_tokens
 * includes them, so prompt = input + cache_creation + cache_read and cached = cache_read. Every
 * event that reports usage updates st->usage at once, so even a broken stream is billed for what
 * it reported.
 */
#include "adapters/anthropic_int.h"
#include "adapters/errmap.h"
#include "adapters/oai_write.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENT (8u << 20) /* one SSE block; Anthropic's events are a few hundred bytes */
/* one chunk JSON: a delta escaped as \u00XX can grow sixfold, plus the chunk's frame */
#define MAX_CHUNK (6u * MAX_EVENT + 65536u)
#define MAX_BLOCKS 1024 /* content blocks tracked per message; more is treated as a broken stream */

/* ---- usage -------------------------------------------------------------------------------- */

/* Anthropic's counters, -1 while not reported. */
typedef struct anth_usage {
    int64_t input, output, cache_write, cache_read;
} anth_usage_t;

static void read_count(const json_t *usage, const char *key, int64_t *dst)
{
    const json_t *v = json_object_get(usage, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *dst = (int64_t)json_integer_value(v);
}

static void usage_update(anth_usage_t *u, const json_t *usage)
{
    read_count(usage, "input_tokens", &u->input);
    read_count(usage, "output_tokens", &u->output);
    read_count(usage, "cache_creation_input_tokens", &u->cache_write);
    read_count(usage, "cache_read_input_tokens", &u->cache_read);
}

/* a + b where -1 means unknown; saturates instead of overflowing */
static int64_t add_known(int64_t a, int64_t b)
{
    int64_t s;
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

static ad_usage_t usage_to_openai(const anth_usage_t *u)
{
    ad_usage_t o = {-1, -1, -1, -1};
    o.prompt_tokens = add_known(add_known(u->input, u->cache_write), u->cache_read);
    o.completion_tokens = u->output;
    o.cached_tokens = u->cache_read;
    return o;
}

/* ---- shared mappings ---------------------------------------------------------------------- */

static const struct {
    const char *stop_reason, *finish;
} FINISH[] = {
    {"end_turn", "stop"},
    {"stop_sequence", "stop"},
    {"pause_turn", "stop"},
    {"max_tokens", "length"},
    {"model_context_window_exceeded", "length"},
    {"tool_use", "tool_calls"},
    {"refusal", "content_filter"},
};

/* OpenAI finish_reason for a stop_reason; unknown or missing reasons end as "stop" (§9). */
static const char *finish_for(const json_t *stop_reason)
{
    const char *s = json_string_value(stop_reason);
    for (size_t i = 0; s != NULL && i < sizeof(FINISH) / sizeof(FINISH[0]); i++)
        if (strcmp(FINISH[i].stop_reason, s) == 0)
            return FINISH[i].finish;
    return "stop";
}

/* Anthropic error.type → OpenAI error type and code (NULL: no OpenAI code fits). */
static const struct {
    const char *anth, *type, *code;
} ERRORS[] = {
    {"invalid_request_error", "invalid_request_error", NULL},
    {"authentication_error", "authentication_error", "invalid_api_key"},
    {"permission_error", "permission_error", NULL},
    {"not_found_error", "invalid_request_error", "model_not_found"},
    {"request_too_large", "invalid_request_error", "request_too_large"},
    {"billing_error", "invalid_request_error", "insufficient_quota"},
    {"rate_limit_error", "rate_limit_error", "rate_limit_exceeded"},
    {"api_error", "api_error", NULL},
    {"timeout_error", "api_error", "timeout"},
    {"overloaded_error", "api_error", "overloaded"},
};

typedef struct err_info {
    const char *type, *param, *code;
    int no_retry; /* an error that waiting will not fix (spend limit, billing) */
} err_info_t;

/* OpenAI type/code for an Anthropic error object ({"type","message",…}) under HTTP status. */
static err_info_t classify(const json_t *error, int status)
{
    const char *t = json_string_value(json_object_get(error, "type"));
    const char *msg = json_string_value(json_object_get(error, "message"));
    const json_t *details = json_object_get(error, "details");
    const char *detail = json_string_value(json_object_get(details, "error_code"));
    err_info_t e = {ad_errmap_type(status), NULL, NULL, 0};
    for (size_t i = 0; t != NULL && i < sizeof(ERRORS) / sizeof(ERRORS[0]); i++)
        if (strcmp(ERRORS[i].anth, t) == 0) {
            e.type = ERRORS[i].type;
            e.code = ERRORS[i].code;
        }
    if (msg != NULL && strstr(msg, "prompt is too long") != NULL) { /* OpenAI's context overflow */
        e.param = "messages";
        e.code = "context_length_exceeded";
    }
    if (detail != NULL && strcmp(detail, "enforced_spend_limit_reached") == 0) {
        e.code = "insufficient_quota";
        e.no_retry = 1;
    }
    if (t != NULL && strcmp(t, "billing_error") == 0)
        e.no_retry = 1;
    return e;
}

/* ---- non-stream responses ------------------------------------------------------------------ */

typedef struct reply {
    ad_buf_t text, reasoning;
    ad_oai_tool_call_t calls[MAX_BLOCKS];
    char *args[MAX_BLOCKS]; /* JSON text of each call's input (malloc'd) */
    size_t n_calls;
    int has_text;
} reply_t;

static int reply_block(reply_t *r, const json_t *b)
{
    const json_t *type = json_object_get(b, "type");
    const char *t = json_string_value(type);
    if (t == NULL)
        return 0;
    if (strcmp(t, "text") == 0) {
        const json_t *s = json_object_get(b, "text");
        r->has_text = 1;
        return json_is_string(s) ? ad_buf_append(&r->text, json_string_value(s), json_string_length(s)) : 0;
    }
    if (strcmp(t, "thinking") == 0) {
        const json_t *s = json_object_get(b, "thinking");
        return json_is_string(s) ? ad_buf_append(&r->reasoning, json_string_value(s), json_string_length(s))
                                 : 0;
    }
    if (strcmp(t, "tool_use") != 0)
        return 0; /* redacted_thinking, server tools, … have no OpenAI form */
    if (r->n_calls == MAX_BLOCKS)
        return -1;
    const json_t *input = json_object_get(b, "input");
    ad_oai_tool_call_t *c = &r->calls[r->n_calls];
    c->id = json_is_string(json_object_get(b, "id")) ? json_string_value(json_object_get(b, "id")) : "";
    c->name = json_is_string(json_object_get(b, "name")) ? json_string_value(json_object_get(b, "name")) : "";
    r->args[r->n_calls] = json_is_object(input) ? json_dumps(input, JSON_COMPACT) : strdup("{}");
    c->arguments = r->args[r->n_calls];
    r->n_calls++;
    return c->arguments != NULL ? 0 : -1;
}

static int write_reply(const ad_request_t *req, const json_t *root, reply_t *r, ad_usage_t *usage,
                       ad_buf_t *out)
{
    anth_usage_t u = {-1, -1, -1, -1};
    usage_update(&u, json_object_get(root, "usage"));
    ad_oai_message_t m = {
        .id = json_string_value(json_object_get(root, "id")),
        .model = json_string_value(json_object_get(root, "model")),
        .created = req != NULL ? req->now : 0,
        /* no text at all: null beside tool calls (as OpenAI), "" otherwise */
        .content = r->has_text || r->n_calls == 0 ? (r->text.data != NULL ? r->text.data : "") : NULL,
        .content_len = r->text.len,
        .reasoning = r->reasoning.len > 0 ? r->reasoning.data : NULL,
        .tool_calls = r->calls,
        .n_tool_calls = r->n_calls,
        .finish_reason = finish_for(json_object_get(root, "stop_reason")),
        .usage = usage_to_openai(&u),
    };
    if (m.id == NULL && req != NULL)
        m.id = req->request_id;
    *usage = m.usage;
    return ad_oai_write_completion(&m, out);
}

static int parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const json_t *content = json_object_get(root, "content");
    int rc = -1;
    reply_t *r = calloc(1, sizeof(*r));
    if (r != NULL && json_is_object(root) && json_is_array(content)) {
        size_t i;
        const json_t *b;
        ad_buf_init(&r->text, len + 1); /* the text can never outgrow the body that carried it */
        ad_buf_init(&r->reasoning, len + 1);
        rc = 0;
        json_array_foreach(content, i, b) rc |= reply_block(r, b);
        if (rc == 0)
            rc = write_reply(req, root, r, usage, out);
        for (size_t k = 0; k < r->n_calls; k++)
            free(r->args[k]);
        ad_buf_free(&r->text);
        ad_buf_free(&r->reasoning);
    }
    free(r);
    json_decref(root);
    return rc ? -1 : 0;
}

/* ---- streams -------------------------------------------------------------------------------- */

enum { BLK_NONE = 0, BLK_TEXT, BLK_TOOL, BLK_THINKING, BLK_OTHER };

typedef struct blk {
    uint8_t kind;
    uint8_t has_args; /* a tool call that got a non-empty arguments piece */
    uint16_t tool;    /* OpenAI tool-call index of a tool_use block */
} blk_t;

typedef struct anth_stream {
    ad_oai_stream_t o;
    anth_usage_t u;
    int begun; /* o is set up (message_start, or the first event in its absence) */
    int ended; /* message_stop or error seen: later events are ignored */
    int n_tools;
    const char *finish; /* from message_delta; static string */
    blk_t blocks[MAX_BLOCKS];
} anth_stream_t;

static void begin(anth_stream_t *s, ad_stream_t *st, const json_t *msg)
{
    char model[256] = "";
    const char *m = json_string_value(json_object_get(msg, "model"));
    if (m == NULL && st->req != NULL && st->req->model.type == AD_J_STRING) /* no message_start */
        ad_json_span_string(st->req->model, model, sizeof(model));
    ad_oai_stream_begin(&s->o, st, json_string_value(json_object_get(msg, "id")), m != NULL ? m : model);
    s->begun = 1;
}

static void publish_usage(anth_stream_t *s, ad_stream_t *st, const json_t *usage)
{
    if (!json_is_object(usage))
        return;
    usage_update(&s->u, usage);
    st->usage = usage_to_openai(&s->u);
}

static int on_message_start(anth_stream_t *s, ad_stream_t *st, const json_t *root)
{
    const json_t *msg = json_object_get(root, "message");
    if (!s->begun)
        begin(s, st, msg);
    publish_usage(s, st, json_object_get(msg, "usage"));
    return ad_oai_emit_role(&s->o, st);
}

/* The block an event names, or NULL when it names none; *bad = 1 past MAX_BLOCKS. */
static blk_t *block_of(anth_stream_t *s, const json_t *root, int *bad)
{
    const json_t *idx = json_object_get(root, "index");
    if (!json_is_integer(idx) || json_integer_value(idx) < 0)
        return NULL;
    if (json_integer_value(idx) >= MAX_BLOCKS) {
        *bad = 1;
        return NULL;
    }
    return &s->blocks[json_integer_value(idx)];
}

static int emit_string(anth_stream_t *s, ad_stream_t *st, const json_t *v, int reasoning)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return 0;
    return reasoning ? ad_oai_emit_reasoning(&s->o, st, json_string_value(v), json_string_length(v))
                     : ad_oai_emit_text(&s->o, st, json_string_value(v), json_string_length(v));
}

static int on_block_start(anth_stream_t *s, ad_stream_t *st, blk_t *b, const json_t *root)
{
    const json_t *cb = json_object_get(root, "content_block");
    const char *t = json_string_value(json_object_get(cb, "type"));
    if (b->kind != BLK_NONE || t == NULL)
        return 0; /* a repeated start must not count a tool call twice */
    if (strcmp(t, "text") == 0) {
        b->kind = BLK_TEXT;
        return emit_string(s, st, json_object_get(cb, "text"), 0);
    }
    if (strcmp(t, "thinking") == 0) {
        b->kind = BLK_THINKING;
        return emit_string(s, st, json_object_get(cb, "thinking"), 1);
    }
    if (strcmp(t, "tool_use") != 0) {
        b->kind = BLK_OTHER;
        return 0;
    }
    const char *id = json_string_value(json_object_get(cb, "id"));
    const char *name = json_string_value(json_object_get(cb, "name"));
    b->kind = BLK_TOOL;
    b->tool = (uint16_t)s->n_tools++;
    return ad_oai_emit_tool_start(&s->o, st, b->tool, id != NULL ? id : "", name != NULL ? name : "");
}

static int on_block_delta(anth_stream_t *s, ad_stream_t *st, blk_t *b, const json_t *root)
{
    const json_t *d = json_object_get(root, "delta");
    const char *t = json_string_value(json_object_get(d, "type"));
    if (t == NULL)
        return 0;
    if (strcmp(t, "text_delta") == 0 && b->kind != BLK_TOOL)
        return emit_string(s, st, json_object_get(d, "text"), 0);
    if (strcmp(t, "thinking_delta") == 0 && b->kind != BLK_TOOL)
        return emit_string(s, st, json_object_get(d, "thinking"), 1);
    if (strcmp(t, "input_json_delta") == 0 && b->kind == BLK_TOOL) {
        const json_t *pj = json_object_get(d, "partial_json");
        if (!json_is_string(pj) || json_string_length(pj) == 0)
            return 0; /* the first piece is often "" */
        b->has_args = 1;
        return ad_oai_emit_tool_args(&s->o, st, b->tool, json_string_value(pj), json_string_length(pj));
    }
    return 0; /* signature_delta, citations_delta and unknown deltas have no OpenAI form */
}

static int on_block_stop(anth_stream_t *s, ad_stream_t *st, blk_t *b)
{
    if (b->kind != BLK_TOOL || b->has_args)
        return 0;
    b->has_args = 1; /* a call without arguments: OpenAI clients expect a JSON object, not "" */
    return ad_oai_emit_tool_args(&s->o, st, b->tool, "{}", 2);
}

static int on_block_event(anth_stream_t *s, ad_stream_t *st, const char *type, const json_t *root)
{
    int bad = 0;
    blk_t *b = block_of(s, root, &bad);
    if (bad)
        return -1; /* more blocks than we track: fail loudly rather than drop content */
    if (b == NULL)
        return 0;
    if (strcmp(type, "content_block_start") == 0)
        return on_block_start(s, st, b, root);
    if (strcmp(type, "content_block_delta") == 0)
        return on_block_delta(s, st, b, root);
    return on_block_stop(s, st, b);
}

static int on_message_stop(anth_stream_t *s, ad_stream_t *st)
{
    int rc;
    s->ended = 1;
    if ((rc = ad_oai_emit_finish(&s->o, st, s->finish != NULL ? s->finish : "stop")) != 0 ||
        (rc = ad_oai_emit_usage(&s->o, st)) != 0)
        return rc;
    return ad_oai_emit_done(&s->o, st);
}

static int on_error_event(anth_stream_t *s, ad_stream_t *st, const json_t *root)
{
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    err_info_t info = classify(e, 500);
    s->ended = 1;
    return ad_oai_emit_error(st, msg != NULL ? msg : "anthropic reported an error in the stream", info.type,
                             info.code);
}

static int dispatch(anth_stream_t *s, ad_stream_t *st, const char *type, const json_t *root)
{
    if (strcmp(type, "error") == 0)
        return on_error_event(s, st, root);
    if (strcmp(type, "ping") == 0)
        return 0;
    if (strcmp(type, "message_start") == 0)
        return on_message_start(s, st, root);
    if (!s->begun)
        begin(s, st, NULL); /* no message_start (yet): the chunks still need an id and a model */
    if (strncmp(type, "content_block_", 14) == 0 &&
        (strcmp(type + 14, "start") == 0 || strcmp(type + 14, "delta") == 0 ||
         strcmp(type + 14, "stop") == 0))
        return on_block_event(s, st, type, root);
    if (strcmp(type, "message_delta") == 0) {
        const json_t *sr = json_object_get(json_object_get(root, "delta"), "stop_reason");
        if (json_is_string(sr))
            s->finish = finish_for(sr);
        publish_usage(s, st, json_object_get(root, "usage"));
        return 0;
    }
    if (strcmp(type, "message_stop") == 0)
        return on_message_stop(s, st);
    return 0; /* unknown event types are ignored */
}

static int on_sse(void *ud, const ad_sse_event_t *ev)
{
    ad_stream_t *st = ud;
    anth_stream_t *s = st->priv;
    if (!ev->has_data || s->ended)
        return 0;
    json_t *root = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    int rc = 0;
    if (type == NULL && json_is_object(root) && ev->event_len > 0)
        type = ev->event; /* the data's type decides; the event name stands in when it is missing */
    if (type != NULL)
        rc = dispatch(s, st, type, root);
    json_decref(root);
    return rc;
}

static void stream_init(ad_stream_t *st, const ad_request_t *req)
{
    anth_stream_t *s = st->priv;
    ad_sse_init(&st->sse, MAX_EVENT);
    ad_buf_init(&st->scratch, MAX_CHUNK);
    st->client_wants_usage = req != NULL && req->include_usage;
    st->usage = (ad_usage_t){-1, -1, -1, -1};
    s->u = (anth_usage_t){-1, -1, -1, -1};
}

static int stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    return ad_sse_feed(&st->sse, p, n, on_sse, st);
}

static int stream_finish(ad_stream_t *st)
{
    anth_stream_t *s = st->priv;
    /* An event whose closing blank line never came is dispatched now (providers.md §8: a gateway
     * may flush it); it was never dispatched before, so nothing is doubled. */
    if (!s->ended)
        ad_sse_feed(&st->sse, "\n\n", 2, on_sse, st);
    ad_sse_finish(&st->sse);
    return !s->ended;
}

/* ---- errors --------------------------------------------------------------------------------- */

static void map_error(int status, const char *body, size_t len, const char *retry_after_hdr, ad_buf_t *out,
                      ad_error_t *err)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    err_info_t info = classify(e, status);
    char opaque[512];
    /* 529 is Anthropic's "overloaded", which no OpenAI client knows: 503 means the same */
    err->status = status == 529 ? 503 : status;
    err->retryable = ad_errmap_retryable(status) && !info.no_retry;
    err->retry_ms = ad_errmap_retry_ms(retry_after_hdr);
    if (msg == NULL) { /* not Anthropic's error JSON: a proxy's HTML page, an empty body */
        ad_errmap_snippet(status, body, len, opaque, sizeof(opaque));
        msg = opaque;
        info.code = "upstream_error";
    } else if (status == 529 && info.code == NULL) {
        info.code = "overloaded";
    }
    ad_errmap_json(out, msg, info.type, info.param, info.code);
    json_decref(root);
}

const ad_adapter_t ad_anthropic = {
    .name = "anthropic",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION,
    .build_request = ad_anthropic_build_request,
    .parse_response = parse_response,
    .stream_init = stream_init,
    .stream_feed = stream_feed,
    .stream_finish = stream_finish,
    .map_error = map_error,
    .state_size = sizeof(anth_stream_t),
};
