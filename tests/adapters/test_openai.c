/*
 * Fixture tests of the OpenAI-compatible adapter (tests/adapters/fixtures/openai):
 *  - splice-*.request.json → the exact upstream body (*.upstream.json) for upstream model
 *    "gpt-4o-mini";
 *  - stream-*.sse → the exact event list (*.events) and relayed bytes (*.relay), for every split
 *    of the input into two pieces and for byte-by-byte feeding;
 *  - non-stream usage parsing and error mapping.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/openai.h"

static char *slurp(const char *name, size_t *len)
{
    const char *root = getenv("TG_SOURCE_DIR") ? getenv("TG_SOURCE_DIR") : TG_SOURCE_DIR;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/adapters/fixtures/openai/%s", root, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "missing fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- request splicing ---------------------------------------------------------------------- */

static void check_splice(const char *name)
{
    char fn[256];
    size_t rl, ul;
    snprintf(fn, sizeof(fn), "%s.request.json", name);
    char *req = slurp(fn, &rl);
    snprintf(fn, sizeof(fn), "%s.upstream.json", name);
    char *want = slurp(fn, &ul);
    ad_request_t r;
    cr_assert_eq(ad_request_scan(AD_OP_CHAT, req, rl, &r, NULL), 0, "%s: scan", name);
    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    cr_assert_eq(ad_openai_splice_body(&r, "gpt-4o-mini", &out), 0);
    cr_assert_eq(out.len, ul, "%s: got %s", name, out.data);
    cr_assert_eq(memcmp(out.data, want, ul), 0, "%s: got %s", name, out.data);
    ad_buf_free(&out);
    free(req);
    free(want);
}

Test(openai_splice, fixtures)
{
    const char *cases[] = {"splice-plain",
                           "splice-stream-no-options",
                           "splice-stream-options-other",
                           "splice-stream-usage-false",
                           "splice-stream-options-empty",
                           "splice-stream-options-null",
                           "splice-stream-usage-true",
                           "splice-unicode"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_splice(cases[i]);
}

Test(openai_splice, ceiling_is_an_error)
{
    const char *body = "{\"model\":\"m\",\"messages\":[]}";
    ad_request_t r;
    cr_assert_eq(ad_request_scan(AD_OP_CHAT, body, strlen(body), &r, NULL), 0);
    ad_buf_t out;
    ad_buf_init(&out, 10);
    cr_assert_eq(ad_openai_splice_body(&r, "gpt-4o-mini", &out), -1);
    ad_buf_free(&out);
}

Test(openai_request, scan_facts)
{
    const char *body = "{\"model\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                       "\"max_completion_tokens\":77,\"n\":3,\"messages\":[1]}";
    ad_request_t r;
    cr_assert_eq(ad_request_scan(AD_OP_CHAT, body, strlen(body), &r, NULL), 0);
    cr_assert(r.stream);
    cr_assert(r.include_usage);
    cr_assert_eq(r.max_tokens, 77);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.messages.type, AD_J_ARRAY);
    size_t off = 0;
    cr_assert_eq(ad_request_scan(AD_OP_CHAT, "{\"model\":", 9, &r, &off), -1);
    cr_assert_eq(ad_request_scan(AD_OP_CHAT, "[1]", 3, &r, &off), -1);
}

/* ---- streams ------------------------------------------------------------------------------- */

typedef struct sink {
    ad_buf_t events; /* "TYPE data\n" lines */
    ad_buf_t relay;  /* bytes a client would get */
} sink_t;

static int on_ev(void *ud, const ad_event_t *ev)
{
    sink_t *s = ud;
    static const char *names[] = {"", "CHUNK", "COMMENT", "DONE", "ERROR"};
    const char *name = ev->hidden ? "HIDDEN" : names[ev->type];
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        ad_buf_appendf(&s->events, "%s %.*s\n", name, (int)ev->len, ev->data);
    else
        ad_buf_appendf(&s->events, "%s\n", name);
    if (!ev->hidden)
        ad_buf_append(&s->relay, ev->raw, ev->raw_len);
    return 0;
}

static void run_stream(const char *in, size_t len, size_t split, size_t step, int wants_usage, sink_t *s,
                       ad_usage_t *usage, int *truncated)
{
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.include_usage = wants_usage;
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    ad_openai.stream_init(&st, &r);
    st.emit = on_ev;
    st.emit_ud = s;
    if (step > 0) {
        for (size_t i = 0; i < len; i += step)
            cr_assert_eq(ad_openai.stream_feed(&st, in + i, len - i < step ? len - i : step), 0);
    } else {
        cr_assert_eq(ad_openai.stream_feed(&st, in, split), 0);
        cr_assert_eq(ad_openai.stream_feed(&st, in + split, len - split), 0);
    }
    *truncated = ad_openai.stream_finish(&st);
    *usage = st.usage;
    ad_stream_free(&st);
}

static void check_stream(const char *name, int wants_usage, int64_t prompt, int64_t completion, int truncated)
{
    char fn[256];
    size_t il, el, rl;
    snprintf(fn, sizeof(fn), "%s.sse", name);
    char *in = slurp(fn, &il);
    snprintf(fn, sizeof(fn), "%s.events", name);
    char *events = slurp(fn, &el);
    snprintf(fn, sizeof(fn), "%s.relay", name);
    char *relay = slurp(fn, &rl);
    for (size_t split = 0; split <= il + 1; split++) {
        sink_t s;
        ad_buf_init(&s.events, 1 << 20);
        ad_buf_init(&s.relay, 1 << 20);
        ad_usage_t u;
        int t;
        if (split == il + 1)
            run_stream(in, il, 0, 1, wants_usage, &s, &u, &t); /* byte by byte */
        else
            run_stream(in, il, split, 0, wants_usage, &s, &u, &t);
        cr_assert_eq(s.events.len, el, "%s split %zu: events\n%s", name, split, s.events.data);
        cr_assert_eq(memcmp(s.events.data, events, el), 0, "%s split %zu: events\n%s", name, split,
                     s.events.data);
        cr_assert_eq(s.relay.len, rl, "%s split %zu: relay", name, split);
        cr_assert_eq(memcmp(s.relay.data, relay, rl), 0, "%s split %zu: relay", name, split);
        cr_assert_eq(u.prompt_tokens, prompt, "%s: prompt tokens", name);
        cr_assert_eq(u.completion_tokens, completion, "%s: completion tokens", name);
        cr_assert_eq(t, truncated, "%s split %zu: truncation", name, split);
        ad_buf_free(&s.events);
        ad_buf_free(&s.relay);
    }
    free(in);
    free(events);
    free(relay);
}

Test(openai_stream, tools_with_usage_relayed_byte_identical)
{
    check_stream("stream-tools", 1, 61, 17, 0);
}

Test(openai_stream, usage_chunk_hidden_when_not_asked_crlf)
{
    check_stream("stream-hidden-usage", 0, 61, 17, 0);
}

Test(openai_stream, truncated_stream_detected)
{
    check_stream("stream-truncated", 1, -1, -1, 1);
}

Test(openai_stream, midstream_error_event)
{
    check_stream("stream-error", 1, -1, -1, 0);
}

/* ---- non-stream and errors ----------------------------------------------------------------- */

Test(openai_response, usage_from_body)
{
    const char *body = "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":61,\"completion_tokens\":17,"
                       "\"total_tokens\":78,\"prompt_tokens_details\":{\"cached_tokens\":9},"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}";
    ad_usage_t u = {-1, -1, -1, -1};
    ad_buf_t out;
    ad_buf_init(&out, 1024);
    cr_assert_eq(ad_openai.parse_response(NULL, body, strlen(body), &out, &u), 0);
    cr_assert_eq(out.len, 0, "passthrough leaves the body as is");
    cr_assert_eq(u.prompt_tokens, 61);
    cr_assert_eq(u.completion_tokens, 17);
    cr_assert_eq(u.cached_tokens, 9);
    cr_assert_eq(u.reasoning_tokens, 4);
    cr_assert_eq(ad_openai.parse_response(NULL, "{\"a\":", 5, &out, &u), -1);
    ad_buf_free(&out);
}

Test(openai_errors, mapping)
{
    struct {
        int status;
        const char *body;
        const char *retry_after;
        int forwarded, retryable;
        int64_t retry_ms;
        const char *type;
    } cases[] = {
        {400, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}",
         NULL, 1, 0, -1, NULL},
        {429, "{\"error\":{\"message\":\"slow down\"}}", "7", 1, 1, 7000, NULL},
        {503, "{\"error\":\"overloaded\"}", NULL, 1, 1, -1, NULL},
        {502, "<html>bad gateway</html>", NULL, 0, 1, -1, "api_error"},
        {401, "", NULL, 0, 0, -1, "authentication_error"},
        {404, "not json", "1.5", 0, 0, 1500, "invalid_request_error"},
        {429, "Too Many", "soon", 0, 1, -1, "rate_limit_error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        ad_error_t e;
        ad_openai.map_error(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].retry_after, &out, &e);
        cr_assert_eq(e.status, cases[i].status, "case %zu", i);
        cr_assert_eq(e.retryable, cases[i].retryable, "case %zu", i);
        cr_assert_eq(e.retry_ms, cases[i].retry_ms, "case %zu", i);
        cr_assert_eq(out.len == 0, cases[i].forwarded, "case %zu", i);
        if (!cases[i].forwarded) {
            ad_jspan_t err, type, msg;
            cr_assert_eq(ad_json_find(out.data, out.len, "error", &err), 1);
            cr_assert_eq(ad_json_find(err.p, err.len, "type", &type), 1);
            cr_assert_eq(ad_json_find(err.p, err.len, "message", &msg), 1);
            char t[64];
            ad_json_span_string(type, t, sizeof(t));
            cr_assert_str_eq(t, cases[i].type, "case %zu", i);
            char m[512];
            ad_json_span_string(msg, m, sizeof(m));
            char want[32];
            snprintf(want, sizeof(want), "HTTP %d", cases[i].status);
            cr_assert(strstr(m, want) != NULL, "case %zu: %s", i, m);
        }
        ad_buf_free(&out);
    }
}
