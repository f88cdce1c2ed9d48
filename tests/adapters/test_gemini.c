/*
 * Fixture tests of the Gemini adapter (tests/adapters/fixtures/gemini):
 *  - req-*.request.json / emb-*.request.json (the client's OpenAI body) → *.upstream.json: the
 *    exact method, URL and header list, and the body compared as parsed JSON;
 *  - stream-*.sse (Gemini's SSE bytes) → stream-*.events (one "CHUNK|HIDDEN|ERROR <json>" or
 *    "DONE" line per event, compared as parsed JSON), for every split of the input into two
 *    pieces and byte by byte (all must give identical events), and in LF, CRLF and CR framing;
 *  - resp-*.json (non-stream bodies) → resp-*.expected.json (chat.completion, parsed JSON);
 *  - embeddings responses in float and base64, request errors, and the error mapping table.
 * Every case runs with request id "req-test-1" and clock 1700000000.
 */
#include "adapters/adapter.h"
#include "fixture_kit.h"

#define DIR "gemini"
#define NOW 1700000000
#define RID "req-test-1"

static ad_request_t scan(ad_op_t op, const char *body, size_t len)
{
    return fx_request_at(op, body, len, NOW, RID);
}

Test(gemini, registered_with_the_right_capabilities)
{
    cr_assert_eq(ad_adapter_find("gemini"), &ad_gemini);
    cr_assert_str_eq(ad_gemini.name, "gemini");
    cr_assert_eq(ad_gemini.abi_version, AD_ABI_VERSION);
    cr_assert(ad_gemini.caps & AD_CAP_STREAM);
    cr_assert(ad_gemini.caps & AD_CAP_TOOLS);
    cr_assert(ad_gemini.caps & AD_CAP_EMBEDDINGS);
    cr_assert_eq(ad_gemini.caps & AD_CAP_PASSTHROUGH, 0u, "gemini is translated, never forwarded");
    cr_assert_gt(ad_gemini.state_size, 0);
}

/* ---- requests ------------------------------------------------------------------------------ */

typedef struct req_case {
    const char *name;
    ad_op_t op;
    const char *model, *api_base, *api_key;
} req_case_t;

static void check_request(const req_case_t *c)
{
    size_t bl;
    char *body = fx_slurp_as(DIR, c->name, ".request.json", &bl);
    json_t *want = fx_load_json_as(DIR, c->name, ".upstream.json");
    ad_request_t r = scan(c->op, body, bl);
    ad_deployment_t d = {
        .provider = "gemini", .upstream_model = c->model, .api_base = c->api_base, .api_key = c->api_key};
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad_gemini.build_request(&r, &d, &h, err, sizeof(err)), 0, "%s: %s", c->name, err);
    cr_assert_str_eq(h.method, json_string_value(json_object_get(want, "method")), "%s: method", c->name);
    cr_assert_str_eq(h.url.data, json_string_value(json_object_get(want, "url")), "%s: url", c->name);
    json_t *hdrs = json_object_get(want, "headers");
    cr_assert_eq(h.n_headers, json_array_size(hdrs), "%s: header count", c->name);
    for (size_t i = 0; i < h.n_headers; i++)
        cr_assert_str_eq(h.headers[i].data, json_string_value(json_array_get(hdrs, i)), "%s: header %zu",
                         c->name, i);
    cr_assert_eq(h.body_is_original, 0);
    json_error_t e;
    json_t *got = json_loadb(h.body.data, h.body.len, 0, &e);
    cr_assert_not_null(got, "%s: upstream body is not JSON: %s", c->name, e.text);
    char what[300];
    snprintf(what, sizeof(what), "%s: upstream body", c->name);
    fx_assert_json(what, got, json_object_get(want, "body"), 0);
    json_decref(got);
    json_decref(want);
    ad_http_request_free(&h);
    free(body);
}

Test(gemini_request, fixtures)
{
    static const req_case_t cases[] = {
        {"req-basic", AD_OP_CHAT, "gemini-2.5-flash", NULL, "test-key"},
        {"req-stream-multiturn", AD_OP_CHAT, "gemini-2.5-flash", NULL, "test-key"},
        {"req-tools", AD_OP_CHAT, "gemini-2.5-flash", NULL, "test-key"},
        {"req-named-tool", AD_OP_CHAT, "models/gemini-2.5-pro", "https://proxy.example.com/gemini/v1beta/",
         NULL},
        {"req-images", AD_OP_CHAT, "gemini-2.0-flash", "http://127.0.0.1:9999/", "test-key"},
        {"req-json-schema", AD_OP_CHAT, "gemini-2.5-flash", NULL, "test-key"},
        {"req-json-object", AD_OP_CHAT, "gemini-2.5-flash", NULL, "test-key"},
        {"emb-batch", AD_OP_EMBEDDINGS, "gemini-embedding-001", NULL, "test-key"},
        {"emb-single", AD_OP_EMBEDDINGS, "gemini-embedding-001", NULL, "test-key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_request(&cases[i]);
}

Test(gemini_request, urls)
{
    static const struct {
        const char *base, *model;
        int stream;
        const char *want;
    } cases[] = {
        {NULL, "gemini-2.5-flash", 0,
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"},
        {"https://g.example/v1", "gemini-1.5-pro", 1,
         "https://g.example/v1/models/gemini-1.5-pro:streamGenerateContent?alt=sse"},
        {"https://g.example///", "tunedModels/my-model-7", 0,
         "https://g.example/v1beta/tunedModels/my-model-7:generateContent"},
        {"https://g.example/v1alpha", "odd name?x", 0,
         "https://g.example/v1alpha/models/odd%20name%3Fx:generateContent"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *body =
            cases[i].stream
                ? "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                : "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
        ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
        ad_deployment_t d = {
            .provider = "gemini", .upstream_model = cases[i].model, .api_base = cases[i].base};
        ad_http_request_t h;
        ad_http_request_init(&h, 1 << 20);
        char err[256];
        cr_assert_eq(ad_gemini.build_request(&r, &d, &h, err, sizeof(err)), 0, "case %zu: %s", i, err);
        cr_assert_str_eq(h.url.data, cases[i].want, "case %zu", i);
        cr_assert_eq(h.n_headers, 1, "no key, no key header");
        ad_http_request_free(&h);
    }
}

Test(gemini_request, errors)
{
    static const struct {
        ad_op_t op;
        const char *body, *want;
    } cases[] = {
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
         "messages[0].role"},
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":[7]}", "messages[0] must be an object"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
         "arguments must be a JSON object"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\","
         "\"function\":{\"arguments\":\"{}\"}}]}]}",
         "no function name"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"nope\",\"content\":\"r\"}]}",
         "no earlier assistant tool call has id nope"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":"
         "{\"url\":\"data:image/png,notbase64\"}}]}]}",
         "base64 data: URLs"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video_url\",\"video_"
         "url\":{}}]}]}",
         "content part type video_url"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_"
         "audio\":"
         "{\"data\":\"AA==\",\"format\":\"../x\"}}]}]}",
         "input_audio needs data"},
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":{}}", "'messages' must be an array"},
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":[],\"seed\":123456789012345678901234567890}",
         "not a JSON object"},
        {AD_OP_EMBEDDINGS, "{\"model\":\"m\",\"input\":[[1,2,3]]}", "non-empty array of strings"},
        {AD_OP_EMBEDDINGS, "{\"model\":\"m\",\"input\":[]}", "non-empty array of strings"},
        {AD_OP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\"}", "no text completions"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_request_t r = scan(cases[i].op, cases[i].body, strlen(cases[i].body));
        ad_deployment_t d = {.provider = "gemini", .upstream_model = "gemini-2.5-flash", .api_key = "k"};
        ad_http_request_t h;
        ad_http_request_init(&h, 1 << 20);
        char err[256] = "";
        cr_assert_eq(ad_gemini.build_request(&r, &d, &h, err, sizeof(err)), -1, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i, err,
                  cases[i].want);
        ad_http_request_free(&h);
    }
    /* a key that would inject a header line is refused */
    const char *body = "{\"model\":\"m\",\"messages\":[]}";
    ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
    ad_deployment_t d = {.provider = "gemini", .upstream_model = "g", .api_key = "k\r\nX-Evil: 1"};
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad_gemini.build_request(&r, &d, &h, err, sizeof(err)), -1);
    ad_http_request_free(&h);
}

Test(gemini_request, body_ceiling_is_an_error)
{
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a long enough question\"}]}";
    ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
    ad_deployment_t d = {.provider = "gemini", .upstream_model = "g", .api_key = "k"};
    ad_http_request_t h;
    ad_http_request_init(&h, 16);
    char err[256] = "";
    cr_assert_eq(ad_gemini.build_request(&r, &d, &h, err, sizeof(err)), -1);
    cr_assert(strstr(err, "too large") != NULL, "%s", err);
    ad_http_request_free(&h);
}

/* ---- streams ------------------------------------------------------------------------------- */

static int on_ev(void *ud, const ad_event_t *ev)
{
    cr_assert_null(ev->raw, "translated events carry no raw bytes");
    cr_assert_eq(fx_event_line(ud, ev), 0);
    return 0;
}

typedef struct run {
    ad_buf_t events;
    ad_usage_t usage;
    int truncated;
    int feed_rc; /* first non-zero feed result */
} run_t;

/* Feeds in[0..len) split at split (step 0) or in pieces of step bytes, then finishes. */
static void run_stream(const ad_request_t *r, const char *in, size_t len, size_t split, size_t step,
                       run_t *out)
{
    fx_fed_t f = fx_feed(&ad_gemini, r, in, len, split, step, FX_FINISH_AFTER_ERROR, on_ev, &out->events);
    out->feed_rc = f.feed_rc;
    out->truncated = f.truncated;
    out->usage = f.usage;
}

/* The stream's bytes with every line end turned into eol ("\n", "\r\n" or "\r"). */
static char *reframe(const char *in, size_t len, const char *eol, size_t *out_len)
{
    char *out = malloc(len * 2 + 1);
    size_t k = 0, el = strlen(eol);
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r' || in[i] == '\n') {
            if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
                i++;
            memcpy(out + k, eol, el);
            k += el;
        } else {
            out[k++] = in[i];
        }
    }
    *out_len = k;
    return out;
}

typedef struct stream_case {
    const char *name;
    int include_usage, n;
    int64_t prompt, completion, cached, reasoning;
    int truncated;
} stream_case_t;

static void check_one_framing(const stream_case_t *c, const ad_request_t *r, const char *in, size_t il,
                              const char *events, const char *framing)
{
    char label[128];
    snprintf(label, sizeof(label), "%s (%s)", c->name, framing);
    run_t whole;
    ad_buf_init(&whole.events, 1 << 20);
    run_stream(r, in, il, il, 0, &whole);
    cr_assert_eq(whole.feed_rc, 0, "%s: feed failed", label);
    fx_compare_events(label, whole.events.data ? whole.events.data : "", events, 0);
    cr_assert_eq(whole.truncated, c->truncated, "%s: truncation", label);
    cr_assert_eq(whole.usage.prompt_tokens, c->prompt, "%s: prompt tokens", label);
    cr_assert_eq(whole.usage.completion_tokens, c->completion, "%s: completion tokens", label);
    cr_assert_eq(whole.usage.cached_tokens, c->cached, "%s: cached tokens", label);
    cr_assert_eq(whole.usage.reasoning_tokens, c->reasoning, "%s: reasoning tokens", label);
    for (size_t split = 0; split <= il + 1; split++) {
        run_t s;
        ad_buf_init(&s.events, 1 << 20);
        run_stream(r, in, il, split, split == il + 1 ? 1 : 0, &s); /* the last round is byte by byte */
        cr_assert_eq(s.events.len, whole.events.len, "%s split %zu: events\n%s", label, split, s.events.data);
        cr_assert_eq(memcmp(s.events.data, whole.events.data, s.events.len), 0, "%s split %zu: events\n%s",
                     label, split, s.events.data);
        cr_assert_eq(s.truncated, whole.truncated, "%s split %zu: truncation", label, split);
        cr_assert_eq(memcmp(&s.usage, &whole.usage, sizeof(s.usage)), 0, "%s split %zu: usage", label, split);
        ad_buf_free(&s.events);
    }
    ad_buf_free(&whole.events);
}

static void check_stream(const stream_case_t *c)
{
    size_t il, el;
    char *in = fx_slurp_as(DIR, c->name, ".sse", &il);
    char *events = fx_slurp_as(DIR, c->name, ".events", &el);
    char body[128];
    snprintf(body, sizeof(body), "{\"model\":\"gemini-flash\",\"stream\":true,\"n\":%d%s,\"messages\":[]}",
             c->n, c->include_usage ? ",\"stream_options\":{\"include_usage\":true}" : "");
    ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
    check_one_framing(c, &r, in, il, events, "as recorded");
    static const char *const eols[][2] = {{"\n", "LF"}, {"\r\n", "CRLF"}, {"\r", "CR"}};
    for (size_t k = 0; k < 3; k++) {
        size_t fl;
        char *framed = reframe(in, il, eols[k][0], &fl);
        check_one_framing(c, &r, framed, fl, events, eols[k][1]);
        free(framed);
    }
    free(in);
    free(events);
}

Test(gemini_stream, text_with_keepalive_and_usage_chunk)
{
    check_stream(&(stream_case_t){"stream-text", 1, 1, 9, 18, 0, 0, 0});
}

Test(gemini_stream, thoughts_crlf_usage_hidden)
{
    check_stream(&(stream_case_t){"stream-thoughts-crlf", 0, 1, 12, 50, 4, 48, 0});
}

Test(gemini_stream, parallel_tool_calls_with_thought_signature)
{
    check_stream(&(stream_case_t){"stream-tools", 1, 1, 83, 135, 0, 104, 0});
}

Test(gemini_stream, usage_on_a_trailing_event)
{
    check_stream(&(stream_case_t){"stream-trailing-usage", 1, 1, 7, 1, 0, 0, 0});
}

Test(gemini_stream, error_inside_the_stream)
{
    check_stream(&(stream_case_t){"stream-error", 1, 1, 4, 0, 0, 0, 1});
}

Test(gemini_stream, truncated_body)
{
    check_stream(&(stream_case_t){"stream-truncated", 1, 1, 3, 2, 0, 0, 1});
}

Test(gemini_stream, blocked_prompt)
{
    check_stream(&(stream_case_t){"stream-blocked", 0, 1, 7, 0, 0, 0, 0});
}

Test(gemini_stream, two_candidates_length_and_safety)
{
    check_stream(&(stream_case_t){"stream-n2", 1, 2, 6, 9, 0, 0, 0});
}

static void feed_text(const char *text, run_t *out)
{
    const char *body = "{\"model\":\"gemini-flash\",\"stream\":true,\"messages\":[]}";
    ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
    ad_buf_init(&out->events, 1 << 20);
    run_stream(&r, text, strlen(text), strlen(text), 0, out);
}

Test(gemini_stream, not_json_is_a_framing_error_and_stays_one)
{
    run_t o;
    feed_text(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\ndata: <html>\n\n"
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}]}\n\n",
        &o);
    cr_assert_eq(o.feed_rc, -1);
    cr_assert_eq(o.truncated, 1);
    cr_assert(strstr(o.events.data, "\"content\":\"a\"") != NULL);
    cr_assert(strstr(o.events.data, "\"content\":\"b\"") == NULL, "nothing after the broken event");
    ad_buf_free(&o.events);
}

Test(gemini_stream, empty_body_and_stray_done)
{
    run_t o;
    feed_text("", &o);
    cr_assert_eq(o.truncated, 1, "no finishReason at all: truncated");
    cr_assert_eq(o.events.len, 0);
    ad_buf_free(&o.events);
    feed_text(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}]}\n\n"
        "data: [DONE]\n\n",
        &o);
    cr_assert_eq(o.feed_rc, 0);
    cr_assert_eq(o.truncated, 0);
    cr_assert(strstr(o.events.data, "DONE\n") != NULL);
    ad_buf_free(&o.events);
}

/* ---- non-stream responses ------------------------------------------------------------------- */

static void check_response(const char *name, const char *client_body)
{
    size_t bl;
    char *body = fx_slurp_as(DIR, name, ".json", &bl);
    json_t *want = fx_load_json_as(DIR, name, ".expected.json");
    ad_request_t r = scan(AD_OP_CHAT, client_body, strlen(client_body));
    ad_usage_t u = {-1, -1, -1, -1};
    json_t *got = fx_parse_ok(&ad_gemini, &r, body, bl, name, &u);
    fx_assert_json(name, got, want, 0);
    json_t *wu = json_object_get(want, "usage");
    cr_assert_eq(u.prompt_tokens, json_integer_value(json_object_get(wu, "prompt_tokens")), "%s: usage",
                 name);
    cr_assert_eq(u.completion_tokens, json_integer_value(json_object_get(wu, "completion_tokens")),
                 "%s: usage", name);
    json_decref(got);
    json_decref(want);
    free(body);
}

Test(gemini_response, fixtures)
{
    const char *body = "{\"model\":\"gemini-flash\",\"messages\":[]}";
    check_response("resp-text", body);
    check_response("resp-tools", body);
    check_response("resp-blocked", body);
    check_response("resp-n2", "{\"model\":\"gemini-flash\",\"n\":3,\"messages\":[]}");
}

Test(gemini_response, not_a_response)
{
    const char *body = "{\"model\":\"gemini-flash\",\"messages\":[]}";
    ad_request_t r = scan(AD_OP_CHAT, body, strlen(body));
    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    ad_usage_t u = {-1, -1, -1, -1};
    cr_assert_eq(ad_gemini.parse_response(&r, "{\"candidates\":", 14, &out, &u), -1);
    cr_assert_eq(ad_gemini.parse_response(&r, "[1,2]", 5, &out, &u), -1);
    /* wrong types where strings belong are survived (found by fuzz_gemini_response) */
    const char *odd = "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":5,\"args\":[]}},"
                      "{\"text\":7}]},\"finishReason\":3}],\"responseId\":{},\"modelVersion\":null}";
    cr_assert_eq(ad_gemini.parse_response(&r, odd, strlen(odd), &out, &u), 0);
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    json_t *fn = json_object_get(json_array_get(json_object_get(msg, "tool_calls"), 0), "function");
    cr_assert_str_eq(json_string_value(json_object_get(fn, "name")), "");
    cr_assert_str_eq(json_string_value(json_object_get(fn, "arguments")), "{}");
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "gemini-flash");
    json_decref(j);
    ad_buf_free(&out);
}

static void check_embeddings(const char *client_body, const char *expected)
{
    size_t bl;
    char *body = fx_slurp(DIR, "emb-response.json", &bl);
    json_t *want = fx_load_json(DIR, expected);
    ad_request_t r = scan(AD_OP_EMBEDDINGS, client_body, strlen(client_body));
    ad_usage_t u = {0, 0, 0, 0};
    json_t *got = fx_parse_ok(&ad_gemini, &r, body, bl, expected, &u);
    fx_assert_json(expected, got, want, 0);
    cr_assert_eq(u.prompt_tokens, -1, "gemini reports no embedding tokens");
    json_decref(got);
    json_decref(want);
    free(body);
}

Test(gemini_embeddings, float_and_base64)
{
    check_embeddings("{\"model\":\"embed\",\"input\":[\"a\",\"b\"]}", "emb-response.float.json");
    check_embeddings("{\"model\":\"embed\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\"}",
                     "emb-response.base64.json");
}

Test(gemini_embeddings, ragged_or_empty_is_an_error)
{
    const char *client = "{\"model\":\"embed\",\"input\":[\"a\",\"b\"]}";
    ad_request_t r = scan(AD_OP_EMBEDDINGS, client, strlen(client));
    const char *bad[] = {"{\"embeddings\":[{\"values\":[1,2]},{\"values\":[1]}]}", "{\"embeddings\":[]}",
                         "{\"embeddings\":[{\"values\":[1,\"x\"]}]}"};
    fx_check_refused(&ad_gemini, &r, bad, sizeof(bad) / sizeof(bad[0]));
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(gemini_errors, mapping)
{
    static const struct {
        int status;
        const char *body, *retry_after;
        int want_status, retryable;
        int64_t retry_ms;
        const char *type, *code, *param, *message;
    } cases[] = {
        {400,
         "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload received. Unknown name \\\"foo\\\"\","
         "\"status\":\"INVALID_ARGUMENT\"}}",
         NULL, 400, 0, -1, "invalid_request_error", "invalid_argument", NULL,
         "Invalid JSON payload received. Unknown name \"foo\""},
        {400,
         "{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"API key not valid. Please pass a valid "
         "API key.\",\n"
         "    \"status\": \"INVALID_ARGUMENT\",\n    \"details\": [\n      {\n        \"@type\": "
         "\"type.googleapis.com/google.rpc.ErrorInfo\",\n        \"reason\": \"API_KEY_INVALID\",\n        "
         "\"domain\": \"googleapis.com\"\n      }\n    ]\n  }\n}\n",
         NULL, 401, 0, -1, "authentication_error", "invalid_api_key", NULL,
         "API key not valid. Please pass a valid API key."},
        {400,
         "{\"error\":{\"code\":400,\"message\":\"The input token count (1200293) exceeds the maximum number "
         "of tokens "
         "allowed (1048576).\",\"status\":\"INVALID_ARGUMENT\"}}",
         NULL, 400, 0, -1, "invalid_request_error", "context_length_exceeded", "messages",
         "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."},
        {403,
         "{\"error\":{\"code\":403,\"message\":\"Method doesn't allow unregistered callers.\",\"status\":"
         "\"PERMISSION_DENIED\"}}",
         NULL, 403, 0, -1, "permission_error", "permission_denied", NULL,
         "Method doesn't allow unregistered callers."},
        {404,
         "{\"error\":{\"code\":404,\"message\":\"models/gemini-9 is not found for API version "
         "v1beta\",\"status\":"
         "\"NOT_FOUND\"}}",
         NULL, 404, 0, -1, "invalid_request_error", "model_not_found", NULL,
         "models/gemini-9 is not found for API version v1beta"},
        {429,
         "{\"error\":{\"code\":429,\"message\":\"You exceeded your current "
         "quota.\",\"status\":\"RESOURCE_EXHAUSTED\","
         "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[]},"
         "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"17.5s\"}]}}",
         NULL, 429, 1, 17500, "rate_limit_error", "rate_limit_exceeded", NULL,
         "You exceeded your current quota."},
        {429,
         "{\"error\":{\"code\":429,\"message\":\"Resource has been "
         "exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
         "3", 429, 1, 3000, "rate_limit_error", "rate_limit_exceeded", NULL, "Resource has been exhausted"},
        {500,
         "[{\"error\":{\"code\":500,\"message\":\"An internal error has "
         "occurred.\",\"status\":\"INTERNAL\"}}]",
         NULL, 500, 1, -1, "api_error", "internal_error", NULL, "An internal error has occurred."},
        {503,
         "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again "
         "later.\",\"status\":"
         "\"UNAVAILABLE\"}}",
         NULL, 503, 1, -1, "api_error", "service_unavailable", NULL,
         "The model is overloaded. Please try again later."},
        {504, "{\"error\":{\"code\":504,\"message\":\"Deadline expired\",\"status\":\"DEADLINE_EXCEEDED\"}}",
         NULL, 504, 1, -1, "api_error", "timeout", NULL, "Deadline expired"},
        {502, "<html><body>Bad Gateway</body></html>\r\n", NULL, 502, 1, -1, "api_error", "upstream_error",
         NULL, "upstream returned HTTP 502: <html><body>Bad Gateway</body></html>"},
        {401, "", NULL, 401, 0, -1, "authentication_error", "upstream_error", NULL,
         "upstream returned HTTP 401"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 1 << 16);
        ad_error_t e;
        ad_gemini.map_error(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].retry_after, &out,
                            &e);
        cr_assert_eq(e.status, cases[i].want_status, "case %zu", i);
        cr_assert_eq(e.retryable, cases[i].retryable, "case %zu", i);
        cr_assert_eq(e.retry_ms, cases[i].retry_ms, "case %zu", i);
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        cr_assert_not_null(j, "case %zu: %s", i, out.data);
        json_t *err = json_object_get(j, "error");
        cr_assert_eq(json_object_size(err), 4, "case %zu: the four OpenAI keys", i);
        cr_assert_str_eq(json_string_value(json_object_get(err, "message")), cases[i].message, "case %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(err, "type")), cases[i].type, "case %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(err, "code")), cases[i].code, "case %zu", i);
        if (cases[i].param != NULL)
            cr_assert_str_eq(json_string_value(json_object_get(err, "param")), cases[i].param, "case %zu", i);
        else
            cr_assert(json_is_null(json_object_get(err, "param")), "case %zu", i);
        json_decref(j);
        ad_buf_free(&out);
    }
}
