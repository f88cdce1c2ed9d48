/*
 * gemini_stream.c — streamGenerateContent?alt=sse → OpenAI chat.completion.chunk events
 * (providers.md §4.4).
 *
 * Gemini's stream is data-only SSE (framed by adapters/sse.c, so CRLF, LF and CR line ends and
 * any split of the bytes give the same events); each event is a whole GenerateContentResponse
 * for that increment. Per candidate (one OpenAI choice each, n > 1 requests give several):
 * text parts are content deltas, "thought": true parts reasoning deltas, and a functionCall part,
 * which Gemini sends complete, is one tool-call start plus one arguments fragment with the whole
 * args object. A candidate's finishReason gives its finish chunk at once; later parts for it are
 * ignored. usageMetadata may ride on any event and is cumulative: the last one seen wins.
 *
 * There is no terminal event and no [DONE]: the body simply ends. The stream is complete when
 * every candidate that appeared has finished (or the prompt was blocked:
 * promptFeedback.blockReason without candidates); the usage chunk and [DONE] are sent from
 * stream_finish, after the last byte, so usage that arrives on a trailing event still counts.
 * A body that ends before that is truncated (stream_finish returns 1). An event holding
 * {"error":{…}} becomes one OpenAI error event and ends the translation; an event that is not a
 * JSON object (a stray [DONE] aside) is a framing error, and so is everything after it.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/gemini_int.h"

#define MAX_EVENT (16u << 20) /* one SSE block; image models put whole pictures in one */
/* scratch holds one chunk: an event's text JSON-escaped (at most 6 bytes per byte) plus framing */
#define MAX_SCRATCH ((size_t)MAX_EVENT * 6 + 65536)
#define MAX_TOOL_ID (1u << 20) /* a tool-call id carries a thought signature */

static ad_gemini_stream_t *state(ad_stream_t *st)
{
    return st->priv;
}

static int requested_choices(const ad_request_t *req)
{
    int64_t n = req != NULL ? req->n : 1;
    return n < 1 ? 1 : n > AD_GEMINI_MAX_CANDIDATES ? AD_GEMINI_MAX_CANDIDATES : (int)n;
}

/* Chunk identity from the first event: id from responseId, model from modelVersion. */
static void begin(ad_stream_t *st, ad_gemini_stream_t *g, const json_t *root)
{
    const char *rid = json_string_value(json_object_get(root, "responseId"));
    char model[256];
    const char *name = ad_gemini_model_name(st->req, root, model, sizeof(model));
    if (rid != NULL && strlen(rid) < sizeof(g->response_id))
        memcpy(g->response_id, rid, strlen(rid) + 1);
    for (int k = 0; k < AD_GEMINI_MAX_CANDIDATES; k++) {
        ad_oai_stream_begin(&g->oai[k], st, g->response_id[0] ? g->response_id : NULL, name);
        g->oai[k].choice = k;
    }
    g->begun = 1;
}

static int stream_error(ad_stream_t *st, ad_gemini_stream_t *g, const json_t *e)
{
    const char *msg =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    const json_t *code = json_object_get(e, "code");
    int status = json_is_integer(code) && json_integer_value(code) >= 400 && json_integer_value(code) <= 599
                     ? (int)json_integer_value(code)
                     : 500;
    const char *type, *ocode;
    ad_gemini_error_kind(status, json_string_value(json_object_get(e, "status")), msg, &type, &ocode);
    g->failed = 1;
    return ad_oai_emit_error(st, msg != NULL && msg[0] ? msg : "gemini reported an error in the stream", type,
                             ocode);
}

static int emit_call(ad_stream_t *st, ad_gemini_stream_t *g, int k, const json_t *part)
{
    const json_t *fc = json_object_get(part, "functionCall"), *args = json_object_get(fc, "args");
    const char *name = json_string_value(json_object_get(fc, "name"));
    ad_buf_t id;
    ad_buf_init(&id, MAX_TOOL_ID);
    char *a = json_is_object(args) ? json_dumps(args, AD_GEMINI_DUMP_FLAGS) : NULL;
    int rc = ad_gemini_tool_call_id(st->req, g->response_id, g->n_ids++, part, &id);
    if (rc == 0)
        rc = ad_oai_emit_tool_start(&g->oai[k], st, g->n_calls[k], id.data, name != NULL ? name : "");
    if (rc == 0)
        rc = ad_oai_emit_tool_args(&g->oai[k], st, g->n_calls[k], a != NULL ? a : "{}",
                                   a != NULL ? strlen(a) : 2);
    g->n_calls[k]++;
    free(a);
    ad_buf_free(&id);
    return rc;
}

static int emit_parts(ad_stream_t *st, ad_gemini_stream_t *g, int k, const json_t *parts)
{
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p)
    {
        const json_t *text = json_object_get(p, "text");
        int rc = 0;
        if (json_is_object(json_object_get(p, "functionCall")))
            rc = emit_call(st, g, k, p);
        else if (json_is_string(text) && json_string_length(text) > 0)
            rc =
                json_is_true(json_object_get(p, "thought"))
                    ? ad_oai_emit_reasoning(&g->oai[k], st, json_string_value(text), json_string_length(text))
                    : ad_oai_emit_text(&g->oai[k], st, json_string_value(text), json_string_length(text));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int on_candidate(ad_stream_t *st, ad_gemini_stream_t *g, const json_t *cand)
{
    const json_t *index = json_object_get(cand, "index"); /* absent means 0 (proto3 JSON) */
    json_int_t k = json_is_integer(index) ? json_integer_value(index) : 0;
    if (k < 0 || k >= AD_GEMINI_MAX_CANDIDATES || (g->finished & (1u << k)))
        return 0;
    g->seen |= 1u << k;
    int rc = emit_parts(st, g, (int)k, json_object_get(json_object_get(cand, "content"), "parts"));
    const char *reason = json_string_value(json_object_get(cand, "finishReason"));
    if (rc == 0 && reason != NULL && reason[0] != '\0') {
        g->finished |= 1u << k;
        rc = ad_oai_emit_finish(&g->oai[k], st, ad_gemini_finish_reason(reason, g->n_calls[k] > 0));
    }
    return rc;
}

/* A blocked prompt: every requested choice ends with content_filter. */
static int blocked(ad_stream_t *st, ad_gemini_stream_t *g)
{
    int rc = 0;
    for (int k = 0; k < requested_choices(st->req) && rc == 0; k++) {
        g->seen |= 1u << k;
        g->finished |= 1u << k;
        rc = ad_oai_emit_finish(&g->oai[k], st, "content_filter");
    }
    return rc;
}

static int on_response(ad_stream_t *st, ad_gemini_stream_t *g, const json_t *root)
{
    const json_t *e = json_object_get(root, "error");
    if (e != NULL && !json_is_null(e))
        return stream_error(st, g, e);
    ad_gemini_usage(json_object_get(root, "usageMetadata"), &st->usage);
    if (!g->begun)
        begin(st, g, root);
    const json_t *cands = json_object_get(root, "candidates");
    size_t i;
    const json_t *c;
    json_array_foreach(cands, i, c)
    {
        int rc = on_candidate(st, g, c);
        if (rc != 0)
            return rc;
    }
    if (json_array_size(cands) == 0 &&
        json_is_string(json_object_get(json_object_get(root, "promptFeedback"), "blockReason")))
        return blocked(st, g);
    return 0;
}

static int on_sse(void *ud, const ad_sse_event_t *ev)
{
    ad_stream_t *st = ud;
    ad_gemini_stream_t *g = state(st);
    if (!ev->has_data || g->failed)
        return 0; /* keep-alive comments; anything after an upstream error */
    json_t *root = json_loadb(ev->data, ev->data_len, AD_GEMINI_LOAD_FLAGS, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
            return 0; /* not Gemini's, but an OpenAI-style proxy in between may add it */
        g->broken = 1;
        return -1;
    }
    int rc = on_response(st, g, root);
    json_decref(root);
    return rc;
}

void ad_gemini_stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ad_sse_init(&st->sse, MAX_EVENT);
    ad_buf_init(&st->scratch, MAX_SCRATCH);
    st->client_wants_usage = req != NULL && req->include_usage;
    st->usage = (ad_usage_t){-1, -1, -1, -1};
}

int ad_gemini_stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    ad_gemini_stream_t *g = state(st);
    if (g->broken)
        return -1;
    int rc = ad_sse_feed(&st->sse, p, n, on_sse, st);
    if (rc == -1)
        g->broken = 1;
    return rc;
}

int ad_gemini_stream_finish(ad_stream_t *st)
{
    ad_gemini_stream_t *g = state(st);
    ad_sse_finish(&st->sse); /* a partial trailing event changes nothing: see the top */
    if (g->broken || g->failed || g->finished == 0 || g->seen != g->finished)
        return 1;
    if (ad_oai_emit_usage(&g->oai[0], st) != 0)
        return 1;
    ad_oai_emit_done(&g->oai[0], st);
    return 0;
}
