/*
 * Fixture tests of the OpenAI-compatible adapter (tests/adapters/fixtures/openai):
 *  - splice-*.request.json → the exact upstream body (*.upstream.json) for upstream model
 *    "gpt-4o-mini";
 *  - stream-*.sse → the exact event list (*.events) and relayed bytes (*.relay), for every split
 *    of the input into two pieces and for byte-by-byte feeding;
 *  - non-stream usage parsing and error mapping.
 */
#include "adapters/adapter.h"
#include "adapters/openai.h"
#include "fixture_kit.h"

#define DIR "openai"

/* ---- request splicing ---------------------------------------------------------------------- */

static void check_splice(const char *name)
{
    size_t rl, ul;
    char *req = fx_slurp_as(DIR, name, ".request.json", &rl);
    char *want = fx_slurp_as(DIR, name, ".upstream.json", &ul);
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

/* <name>.sse → exactly <name>.events and the client bytes <name>.relay, at every split. */
static void check_stream(const char *name, int wants_usage, int64_t prompt, int64_t completion, int truncated)
{
    char in[128], events[128], relay[128];
    snprintf(in, sizeof(in), "%s.sse", name);
    snprintf(events, sizeof(events), "%s.events", name);
    snprintf(relay, sizeof(relay), "%s.relay", name);
    const fx_stream_case_t c = {in, events, relay, wants_usage, prompt, completion, truncated};
    fx_check_stream(&ad_openai, DIR, &c);
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

/* Member names written with \u escapes, a usage that is not the last member, and content that
 * says "usage" and "error": the chunks that skip the scan must not include any of these. */
Test(openai_stream, escaped_member_names)
{
    check_stream("stream-escaped-names", 0, 9, 4, 0);
}

/* ---- non-stream and errors ----------------------------------------------------------------- */

Test(openai_response, usage_from_body)
{
    const char *body =
        "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":61,\"completion_tokens\":17,"
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
        {400,
         "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}",
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
        ad_openai.map_error(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].retry_after, &out,
                            &e);
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
