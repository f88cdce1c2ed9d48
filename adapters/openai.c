/*
 * openai.c — the OpenAI-compatible adapter: OpenAI itself and every provider that speaks its
 * wire format at some api_base (groq, mistral, together, deepseek, openrouter, vllm, …).
 *
 * Nothing is translated, so nothing is parsed into a DOM: the request body is forwarded as the
 * client sent it with two byte splices (the upstream model name, and
 * stream_options.include_usage=true on streams so every stream can be billed), and the response
 * bytes are relayed as they came. In streams, each SSE block is relayed with its exact bytes; the
 * chunk JSON is scanned (validating, allocation-free) only to learn usage and errors, and the
 * usage chunk the client did not ask for is hidden from it.
 */
#include "adapters/adapter.h"
#include "adapters/openai.h"
#include "adapters/errmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BASE "https://api.openai.com/v1"
#define MAX_EVENT (8u << 20) /* one SSE block; OpenAI chunks are a few hundred bytes */

typedef struct edit {
    size_t off, del;
    const char *ins;
    size_t ins_len;
} edit_t;

static void add_edit(edit_t *e, size_t *n, size_t off, size_t del, const char *ins, size_t ins_len)
{
    e[*n] = (edit_t){off, del, ins, ins_len};
    (*n)++;
}

static int apply_edits(const char *src, size_t len, edit_t *e, size_t n, ad_buf_t *out)
{
    /* at most three edits: a tiny insertion sort keeps them in source order */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && e[j].off < e[j - 1].off; j--) {
            edit_t t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (ad_buf_append(out, src + at, e[i].off - at) != 0 ||
            ad_buf_append(out, e[i].ins, e[i].ins_len) != 0)
            return -1;
        at = e[i].off + e[i].del;
    }
    return ad_buf_append(out, src + at, len - at);
}

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

int ad_openai_splice_body(const ad_request_t *req, const char *upstream_model, ad_buf_t *out)
{
    edit_t e[3];
    size_t n = 0;
    ad_buf_t name;
    ad_buf_init(&name, 4096);
    if (req->model.type == AD_J_STRING) {
        if (ad_buf_append_json_str(&name, upstream_model, strlen(upstream_model)) != 0)
            goto fail;
        add_edit(e, &n, (size_t)(req->model.p - req->body), req->model.len, name.data, name.len);
    }
    static const char member[] = "\"stream_options\":{\"include_usage\":true},";
    static const char object[] = "{\"include_usage\":true}";
    static const char inner[] = "\"include_usage\":true";
    static const char inner_comma[] = "\"include_usage\":true,";
    if (req->stream && !req->include_usage) {
        const ad_jspan_t *so = &req->stream_options;
        if (so->type == AD_J_OBJECT) {
            ad_jspan_t iu;
            size_t so_off = (size_t)(so->p - req->body);
            if (ad_json_find(so->p, so->len, "include_usage", &iu) == 1) {
                add_edit(e, &n, (size_t)(iu.p - req->body), iu.len, "true", 4);
            } else {
                int empty = so->p[skip_ws(so->p, 1, so->len)] == '}';
                add_edit(e, &n, so_off + 1, 0, empty ? inner : inner_comma,
                         empty ? sizeof(inner) - 1 : sizeof(inner_comma) - 1);
            }
        } else if (so->type != AD_J_NONE) {
            add_edit(e, &n, (size_t)(so->p - req->body), so->len, object, sizeof(object) - 1);
        } else {
            size_t brace = skip_ws(req->body, 0, req->body_len); /* the scan proved it is '{' */
            add_edit(e, &n, brace + 1, 0, member, sizeof(member) - 1);
        }
    }
    int rc = apply_edits(req->body, req->body_len, e, n, out);
    ad_buf_free(&name);
    return rc;
fail:
    ad_buf_free(&name);
    return -1;
}

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    const char *base = dep->api_base != NULL ? dep->api_base : DEFAULT_BASE;
    const char *path = req->op == AD_OP_EMBEDDINGS    ? "/embeddings"
                       : req->op == AD_OP_COMPLETIONS ? "/completions"
                                                      : "/chat/completions";
    out->method = "POST";
    int rc = ad_buf_appendf(&out->url, "%s%s", base, path);
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
    ad_jspan_t u;
    int found = ad_json_find(body, len, "usage", &u);
    if (found < 0)
        return -1;
    if (found == 1)
        ad_usage_from_openai(u, usage);
    return 0;
}

static void stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ad_sse_init(&st->sse, MAX_EVENT);
    ad_buf_init(&st->scratch, 64 * 1024);
    st->client_wants_usage = req->include_usage;
    st->usage = (ad_usage_t){-1, -1, -1, -1};
}

typedef struct chunk_facts {
    ad_jspan_t usage, error, choices;
} chunk_facts_t;

static int chunk_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t v)
{
    chunk_facts_t *f = ud;
    if (ad_json_key_eq(key, keylen, "usage"))
        f->usage = v;
    else if (ad_json_key_eq(key, keylen, "error"))
        f->error = v;
    else if (ad_json_key_eq(key, keylen, "choices"))
        f->choices = v;
    return 0;
}

static int is_done(const ad_sse_event_t *ev)
{
    return ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0;
}

static int empty_array(ad_jspan_t v)
{
    if (v.type != AD_J_ARRAY)
        return 0;
    size_t i = skip_ws(v.p, 1, v.len);
    return i < v.len && v.p[i] == ']';
}

/*
 * Whether a chunk can have a member named "usage" (not null) or "error" — the only facts the scan
 * below can change the event with. Exact, so most content chunks skip the scan: a member name
 * equal to one of them is written either as those very bytes or with a \u escape (JSON's other
 * escapes make no letters), and a trailing ,"usage":null} (OpenAI's chunks when usage is asked
 * for) is the top-level object's last member, whose null the scan would take and ignore.
 */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* High bit set in the bytes of w equal to c (and possibly in a byte just above one: callers
 * check each candidate). */
static inline uint64_t bytes_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

static int names_at(const char *p, const char *end) /* p just past a '"' */
{
    return end - p >= 6 && (memcmp(p, "usage\"", 6) == 0 || memcmp(p, "error\"", 6) == 0);
}

static int may_name_usage_or_error(const char *d, size_t n)
{
    static const char null_usage[] = ",\"usage\":null}";
    size_t tail = sizeof(null_usage) - 1;
    if (n >= tail && memcmp(d + n - tail, null_usage, tail) == 0)
        n -= tail;
    const char *end = d + n;
    size_t i = 0;
    /* '"' followed by 'u' or 'e', eight positions at a time; then each candidate in full */
    for (; i + 9 <= n; i += 8) {
        uint64_t w, next;
        memcpy(&w, d + i, 8);
        memcpy(&next, d + i + 1, 8);
        if ((bytes_eq(w, '"') & (bytes_eq(next, 'u') | bytes_eq(next, 'e'))) == 0)
            continue; /* lane k of both words is d[i + k] and d[i + k + 1], whatever the byte order */
        for (size_t k = 0; k < 8; k++)
            if (d[i + k] == '"' && names_at(d + i + k + 1, end))
                return 1;
    }
    for (; i < n; i++)
        if (d[i] == '"' && names_at(d + i + 1, end))
            return 1;
    for (const char *p = d; (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p += 2)
        if (end - p < 2 || p[1] == 'u')
            return 1;
    return 0;
}

static int on_sse(void *ud, const ad_sse_event_t *ev)
{
    ad_stream_t *st = ud;
    ad_event_t out = {.raw = ev->raw, .raw_len = ev->raw_len};
    if (!ev->has_data) {
        out.type = AD_EV_COMMENT;
        return st->emit(st->emit_ud, &out);
    }
    out.data = ev->data;
    out.len = ev->data_len;
    if (is_done(ev)) {
        st->saw_done = 1;
        out.type = AD_EV_DONE;
        return st->emit(st->emit_ud, &out);
    }
    chunk_facts_t f;
    memset(&f, 0, sizeof(f));
    out.type = AD_EV_CHUNK;
    if (may_name_usage_or_error(ev->data, ev->data_len) &&
        ad_json_scan_object(ev->data, ev->data_len, chunk_member, &f, NULL) == 0) {
        if (f.error.type == AD_J_OBJECT) {
            out.type = AD_EV_ERROR;
            st->saw_error = 1;
        }
        if (f.usage.type == AD_J_OBJECT) {
            ad_usage_from_openai(f.usage, &st->usage);
            /* the usage chunk Tollgate asked for on the client's behalf stays with us */
            if (!st->client_wants_usage && empty_array(f.choices))
                out.hidden = 1;
        }
    }
    return st->emit(st->emit_ud, &out);
}

int ad_openai_on_sse(void *ud, const ad_sse_event_t *ev)
{
    return on_sse(ud, ev);
}

static int stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    return ad_sse_feed(&st->sse, p, n, on_sse, st);
}

static int stream_finish(ad_stream_t *st)
{
    int partial = ad_sse_finish(&st->sse);
    return partial || (!st->saw_done && !st->saw_error);
}

void ad_openai_map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                         ad_error_t *err)
{
    err->status = status;
    err->retryable = ad_errmap_retryable(status);
    err->retry_ms = ad_errmap_retry_ms(retry_after);
    ad_jspan_t e;
    if (ad_json_find(body, len, "error", &e) == 1 && (e.type == AD_J_OBJECT || e.type == AD_J_STRING))
        return; /* already an OpenAI-style error: forward it untouched */
    char msg[512];
    ad_errmap_snippet(status, body, len, msg, sizeof(msg)); /* bodies can be HTML or binary */
    ad_errmap_json(out, msg, ad_errmap_type(status), NULL, "upstream_error");
}

const ad_adapter_t ad_openai = {
    .name = "openai",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS | AD_CAP_JSON_MODE |
            AD_CAP_PASSTHROUGH,
    .build_request = build_request,
    .parse_response = parse_response,
    .stream_init = stream_init,
    .stream_feed = stream_feed,
    .stream_finish = stream_finish,
    .map_error = ad_openai_map_error,
};
