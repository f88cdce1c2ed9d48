/*
 * oai_write.c — OpenAI chat formats written once for every translating adapter (see oai_write.h).
 */
#include "adapters/oai_write.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put_str(ad_buf_t *b, const char *s)
{
    return ad_buf_append_json_str(b, s, strlen(s));
}

static void set_id(char *dst, size_t cap, const char *hint)
{
    if (hint == NULL || hint[0] == '\0')
        hint = "tollgate";
    if (strncmp(hint, "chatcmpl-", 9) == 0)
        snprintf(dst, cap, "%s", hint);
    else
        snprintf(dst, cap, "chatcmpl-%s", hint);
}

void ad_oai_stream_begin(ad_oai_stream_t *o, const ad_stream_t *st, const char *id_hint, const char *model)
{
    set_id(o->id, sizeof(o->id), id_hint != NULL ? id_hint : (st->req ? st->req->request_id : NULL));
    snprintf(o->model, sizeof(o->model), "%s", model != NULL ? model : "");
    o->created = st->req != NULL ? st->req->now : 0;
}

/* {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[ */
static int chunk_head(const ad_oai_stream_t *o, ad_buf_t *b)
{
    int rc = ad_buf_puts(b, "{\"id\":");
    rc |= put_str(b, o->id);
    rc |= ad_buf_appendf(
        b, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":", (long long)o->created);
    rc |= put_str(b, o->model);
    return rc | ad_buf_puts(b, ",\"choices\":[");
}

static int emit_scratch(ad_stream_t *st, int hidden)
{
    ad_event_t ev = {.type = AD_EV_CHUNK, .data = st->scratch.data, .len = st->scratch.len, .hidden = hidden};
    return st->emit(st->emit_ud, &ev);
}

/* One chunk whose single choice has the given delta body (without braces) and finish_reason. */
static int emit_delta(ad_oai_stream_t *o, ad_stream_t *st, const char *delta_open, const char *text,
                      size_t len, const char *delta_close, const char *finish)
{
    ad_buf_reset(&st->scratch);
    int rc = chunk_head(o, &st->scratch);
    rc |= ad_buf_appendf(&st->scratch, "{\"index\":%d,\"delta\":{", o->choice);
    rc |= ad_buf_puts(&st->scratch, delta_open);
    if (text != NULL)
        rc |= ad_buf_append_json_str(&st->scratch, text, len);
    rc |= ad_buf_puts(&st->scratch, delta_close);
    rc |= ad_buf_puts(&st->scratch, "},\"logprobs\":null,\"finish_reason\":");
    rc |= finish != NULL ? put_str(&st->scratch, finish) : ad_buf_puts(&st->scratch, "null");
    rc |= ad_buf_puts(&st->scratch, "}]}");
    return rc ? -1 : emit_scratch(st, 0);
}

static int ensure_role(ad_oai_stream_t *o, ad_stream_t *st)
{
    if (o->role_sent)
        return 0;
    o->role_sent = 1;
    return emit_delta(o, st, "\"role\":\"assistant\",\"content\":\"\"", NULL, 0, "", NULL);
}

int ad_oai_emit_role(ad_oai_stream_t *o, ad_stream_t *st)
{
    return ensure_role(o, st);
}

int ad_oai_emit_text(ad_oai_stream_t *o, ad_stream_t *st, const char *text, size_t len)
{
    if (ensure_role(o, st) != 0)
        return -1;
    return emit_delta(o, st, "\"content\":", text, len, "", NULL);
}

int ad_oai_emit_reasoning(ad_oai_stream_t *o, ad_stream_t *st, const char *text, size_t len)
{
    if (ensure_role(o, st) != 0)
        return -1;
    return emit_delta(o, st, "\"reasoning_content\":", text, len, "", NULL);
}

int ad_oai_emit_tool_start(ad_oai_stream_t *o, ad_stream_t *st, int index, const char *id, const char *name)
{
    if (ensure_role(o, st) != 0)
        return -1;
    ad_buf_t open;
    /* ids can be long (providers may carry opaque state in them): room for both, escaped */
    ad_buf_init(&open, 256 + 6 * (strlen(id) + strlen(name)));
    int rc = ad_buf_appendf(&open, "\"tool_calls\":[{\"index\":%d,\"id\":", index);
    rc |= put_str(&open, id);
    rc |= ad_buf_puts(&open, ",\"type\":\"function\",\"function\":{\"name\":");
    rc |= put_str(&open, name);
    rc |= ad_buf_puts(&open, ",\"arguments\":\"\"}}]");
    if (rc == 0)
        rc = emit_delta(o, st, open.data, NULL, 0, "", NULL);
    ad_buf_free(&open);
    return rc;
}

int ad_oai_emit_tool_args(ad_oai_stream_t *o, ad_stream_t *st, int index, const char *frag, size_t len)
{
    char open[96];
    snprintf(open, sizeof(open), "\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", index);
    return emit_delta(o, st, open, frag, len, "}}]", NULL);
}

int ad_oai_emit_finish(ad_oai_stream_t *o, ad_stream_t *st, const char *finish_reason)
{
    if (o->finish_sent)
        return 0;
    if (ensure_role(o, st) != 0)
        return -1;
    o->finish_sent = 1;
    return emit_delta(o, st, "", NULL, 0, "", finish_reason != NULL ? finish_reason : "stop");
}

int ad_oai_write_usage(const ad_usage_t *u, ad_buf_t *out)
{
    long long p = u->prompt_tokens > 0 ? u->prompt_tokens : 0,
              c = u->completion_tokens > 0 ? u->completion_tokens : 0;
    int rc = ad_buf_appendf(out, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld",
                            p, c, p + c);
    if (u->cached_tokens >= 0)
        rc |= ad_buf_appendf(out, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}",
                             (long long)u->cached_tokens);
    if (u->reasoning_tokens >= 0)
        rc |= ad_buf_appendf(out, ",\"completion_tokens_details\":{\"reasoning_tokens\":%lld}",
                             (long long)u->reasoning_tokens);
    return rc | ad_buf_puts(out, "}");
}

int ad_oai_emit_usage(ad_oai_stream_t *o, ad_stream_t *st)
{
    ad_buf_reset(&st->scratch);
    int rc = chunk_head(o, &st->scratch);
    rc |= ad_buf_puts(&st->scratch, "],\"usage\":");
    rc |= ad_oai_write_usage(&st->usage, &st->scratch);
    rc |= ad_buf_puts(&st->scratch, "}");
    return rc ? -1 : emit_scratch(st, !st->client_wants_usage);
}

int ad_oai_emit_done(ad_oai_stream_t *o, ad_stream_t *st)
{
    if (o->done_sent)
        return 0;
    o->done_sent = 1;
    st->saw_done = 1;
    ad_event_t ev = {.type = AD_EV_DONE, .data = "[DONE]", .len = 6};
    return st->emit(st->emit_ud, &ev);
}

int ad_oai_emit_error(ad_stream_t *st, const char *message, const char *type, const char *code)
{
    ad_buf_reset(&st->scratch);
    if (ad_error_json(&st->scratch, message, type, code) != 0)
        return -1;
    st->saw_error = 1;
    ad_event_t ev = {.type = AD_EV_ERROR, .data = st->scratch.data, .len = st->scratch.len};
    return st->emit(st->emit_ud, &ev);
}

/* One element of choices[]: {"index":i,"message":{…},"logprobs":null,"finish_reason":…}. */
static int write_choice(const ad_oai_message_t *m, size_t index, ad_buf_t *out)
{
    int rc = ad_buf_appendf(out, "{\"index\":%zu,\"message\":{\"role\":\"assistant\",\"content\":", index);
    rc |= m->content != NULL ? ad_buf_append_json_str(out, m->content, m->content_len)
                             : ad_buf_puts(out, "null");
    if (m->reasoning != NULL) {
        rc |= ad_buf_puts(out, ",\"reasoning_content\":");
        rc |= put_str(out, m->reasoning);
    }
    if (m->n_tool_calls > 0) {
        rc |= ad_buf_puts(out, ",\"tool_calls\":[");
        for (size_t i = 0; i < m->n_tool_calls; i++) {
            rc |= ad_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
            rc |= put_str(out, m->tool_calls[i].id);
            rc |= ad_buf_puts(out, ",\"type\":\"function\",\"function\":{\"name\":");
            rc |= put_str(out, m->tool_calls[i].name);
            rc |= ad_buf_puts(out, ",\"arguments\":");
            rc |= put_str(out, m->tool_calls[i].arguments != NULL ? m->tool_calls[i].arguments : "{}");
            rc |= ad_buf_puts(out, "}}");
        }
        rc |= ad_buf_puts(out, "]");
    }
    rc |= ad_buf_puts(out, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    rc |= put_str(out, m->finish_reason != NULL ? m->finish_reason : "stop");
    return rc | ad_buf_puts(out, "}");
}

int ad_oai_write_completion_n(const ad_oai_message_t *m, size_t n, ad_buf_t *out)
{
    char id[160];
    set_id(id, sizeof(id), m->id);
    int rc = ad_buf_puts(out, "{\"id\":");
    rc |= put_str(out, id);
    rc |= ad_buf_appendf(
        out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", (long long)m->created);
    rc |= put_str(out, m->model != NULL ? m->model : "");
    rc |= ad_buf_puts(out, ",\"choices\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            rc |= ad_buf_puts(out, ",");
        rc |= write_choice(&m[i], i, out);
    }
    rc |= ad_buf_puts(out, "],\"usage\":");
    rc |= ad_oai_write_usage(&m->usage, out);
    rc |= ad_buf_puts(out, "}");
    return rc ? -1 : 0;
}

int ad_oai_write_completion(const ad_oai_message_t *m, ad_buf_t *out)
{
    return ad_oai_write_completion_n(m, 1, out);
}

static int write_b64_floats(const float *v, size_t dims, ad_buf_t *out)
{
    size_t raw_len = dims * 4, need = 4 * ((raw_len + 2) / 3) + 1;
    unsigned char *raw = malloc(raw_len ? raw_len : 1);
    if (raw == NULL || ad_buf_reserve(out, need + 2) != 0) {
        free(raw);
        return -1;
    }
    for (size_t j = 0; j < dims; j++) {
        uint32_t u;
        memcpy(&u, &v[j], 4);
        raw[4 * j] = (unsigned char)(u & 0xff);
        raw[4 * j + 1] = (unsigned char)((u >> 8) & 0xff);
        raw[4 * j + 2] = (unsigned char)((u >> 16) & 0xff);
        raw[4 * j + 3] = (unsigned char)(u >> 24);
    }
    out->data[out->len++] = '"';
    out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->data + out->len, raw, (int)raw_len);
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    free(raw);
    return 0;
}

int ad_oai_write_embeddings(const float *const *vectors, size_t n, size_t dims, int base64, const char *model,
                            int64_t prompt_tokens, ad_buf_t *out)
{
    int rc = ad_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        rc |=
            ad_buf_appendf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (base64) {
            rc |= write_b64_floats(vectors[i], dims, out);
        } else {
            for (size_t j = 0; j < dims; j++)
                rc |= ad_buf_appendf(out, "%s%.9g", j ? "," : "[", (double)vectors[i][j]);
            rc |= ad_buf_puts(out, dims ? "]" : "[]");
        }
        rc |= ad_buf_puts(out, "}");
    }
    rc |= ad_buf_puts(out, "],\"model\":");
    rc |= put_str(out, model != NULL ? model : "");
    long long p = prompt_tokens > 0 ? prompt_tokens : 0;
    rc |= ad_buf_appendf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", p, p);
    return rc ? -1 : 0;
}

int ad_oai_wants_base64(const ad_request_t *req)
{
    ad_jspan_t v;
    char s[16];
    return ad_json_find(req->body, req->body_len, "encoding_format", &v) == 1 &&
           ad_json_span_string(v, s, sizeof(s)) > 0 && strcmp(s, "base64") == 0;
}
