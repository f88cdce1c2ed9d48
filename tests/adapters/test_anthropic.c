/*
 * Fixture tests of the Anthropic adapter (tests/adapters/fixtures/anthropic):
 *  - req-*.request.json ({deployment, request}) → the exact upstream request in
 *    req-*.upstream.json (method, URL, headers as a set, body compared as parsed JSON);
 *  - stream-*.sse (Anthropic's SSE as sent) → the OpenAI events in stream-*.events, for every
 *    split of the input into two pieces and for byte-by-byte feeding: every run must give the
 *    same bytes, and those must equal the fixture (event types exactly, JSON as parsed JSON);
 *  - resp-*.anthropic.json → resp-*.openai.json (chat.completion, parsed JSON) and usage;
 *  - request errors, error mapping, no embeddings, registry.
 */
#include "adapters/adapter.h"
#include "fixture_kit.h"

#define DIR "anthropic"
#define NOW 1700000000
#define RID "req-test-1"

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void scan(const char *body, ad_request_t *r)
{
    *r = fx_request_at(AD_OP_CHAT, body, strlen(body), NOW, RID);
}

static ad_deployment_t deployment_of(const json_t *d)
{
    ad_deployment_t dep = {
        .provider = "anthropic",
        .upstream_model = json_string_value(json_object_get(d, "model")),
        .api_base = json_string_value(json_object_get(d, "api_base")),
        .api_key = json_string_value(json_object_get(d, "api_key")),
        .params = json_object_get(d, "params"),
    };
    return dep;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Headers as {lowercase name: value}; each must be "Name: value". */
static json_t *headers_object(const ad_http_request_t *h)
{
    json_t *o = json_object();
    for (size_t i = 0; i < h->n_headers; i++) {
        const char *line = h->headers[i].data, *colon = strchr(line, ':');
        cr_assert_not_null(colon, "header without a colon: %s", line);
        cr_assert_eq(colon[1], ' ', "header %s", line);
        char name[128];
        size_t n = (size_t)(colon - line);
        cr_assert_lt(n, sizeof(name));
        for (size_t k = 0; k < n; k++)
            name[k] = (char)(line[k] >= 'A' && line[k] <= 'Z' ? line[k] + 32 : line[k]);
        name[n] = '\0';
        cr_assert_null(json_object_get(o, name), "header %s twice", name);
        json_object_set_new(o, name, json_string(colon + 2));
    }
    return o;
}

static void check_request(const char *name)
{
    json_t *in = fx_load_json_as(DIR, name, ".request.json");
    json_t *want = fx_load_json_as(DIR, name, ".upstream.json");
    char *body = json_dumps(json_object_get(in, "request"), JSON_COMPACT);
    ad_request_t r;
    scan(body, &r);
    ad_deployment_t dep = deployment_of(json_object_get(in, "deployment"));
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad_anthropic.build_request(&r, &dep, &h, err, sizeof(err)), 0, "%s: %s", name, err);
    cr_assert_str_eq(h.method, json_string_value(json_object_get(want, "method")), "%s", name);
    cr_assert_str_eq(h.url.data, json_string_value(json_object_get(want, "url")), "%s", name);
    json_t *hdrs = headers_object(&h);
    char *got_h = dump(hdrs), *want_h = dump(json_object_get(want, "headers"));
    cr_assert(json_equal(hdrs, json_object_get(want, "headers")), "%s headers\n got %s\nwant %s", name, got_h,
              want_h);
    json_error_t je;
    json_t *got = json_loadb(h.body.data, h.body.len, 0, &je);
    cr_assert_not_null(got, "%s: body is not JSON: %s", name, je.text);
    char *got_s = dump(got), *want_s = dump(json_object_get(want, "body"));
    cr_assert(json_equal(got, json_object_get(want, "body")), "%s body\n got %s\nwant %s", name, got_s,
              want_s);
    free(got_h);
    free(want_h);
    free(got_s);
    free(want_s);
    free(body);
    json_decref(got);
    json_decref(hdrs);
    json_decref(in);
    json_decref(want);
    ad_http_request_free(&h);
}

Test(anthropic_request, fixtures)
{
    const char *cases[] = {"req-basic", "req-multiturn-stream", "req-tools", "req-images",
                           "req-merge", "req-no-tools"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_request(cases[i]);
}

Test(anthropic_request, refused_with_a_message)
{
    struct {
        const char *body, *api_key, *want;
    } cases[] = {
        {"{\"model\":\"c\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL,
         "n must be 1"},
        {"{\"model\":\"c\",\"messages\":{}}", NULL, "messages must be an array"},
        {"{\"model\":\"c\",\"messages\":[1]}", NULL, "messages[0]: not an object"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}", NULL,
         "messages[0]: role function is not supported"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
         "\"content\":"
         "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x/y.png\"}}]}]}",
         NULL, "messages[1]: image_url must be a data: URL or an http(s) URL"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":"
         "{\"url\":\"data:image/png,rawbytes\"}}]}]}",
         NULL, "base64"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":"
         "{\"url\":\"data:;base64,AAAA\"}}]}]}",
         NULL, "media type"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
         NULL, "content part type input_audio is not supported"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"tool\",\"content\":\"18C\"}]}", NULL, "tool_call_id"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
         NULL, "tool_calls[0] needs an id"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":"
         "{\"url\":\"https://x/y.png\"}}]}]}",
         NULL, "text only"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":42}]}", NULL, "content must be"},
        {"{\"model\":\"c\",\"tools\":[{\"type\":\"web_search\"}],\"messages\":[]}", NULL,
         "tools[0]: only function tools"},
        {"{\"model\":\"c\",\"tools\":[{\"type\":\"function\",\"function\":{}}],\"messages\":[]}", NULL,
         "function.name is missing"},
        {"{\"model\":\"c\",\"tool_choice\":\"sometimes\",\"tools\":[{\"type\":\"function\",\"function\":{"
         "\"name\":"
         "\"f\"}}],\"messages\":[]}",
         NULL, "tool_choice must be"},
        {"{\"model\":\"c\",\"stop\":5,\"messages\":[]}", NULL, "stop must be"},
        {"{\"model\":\"c\",\"stop\":[\"a\",1],\"messages\":[]}", NULL, "stop must be"},
        {"{\"model\":\"c\",\"messages\":[]}", "sk-ant\r\nX-Evil: 1", "line break"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_request_t r;
        scan(cases[i].body, &r);
        ad_deployment_t dep = {
            .provider = "anthropic", .upstream_model = "claude-x", .api_key = cases[i].api_key};
        ad_http_request_t h;
        ad_http_request_init(&h, 1 << 20);
        char err[256] = "";
        cr_assert_eq(ad_anthropic.build_request(&r, &dep, &h, err, sizeof(err)), -1, "case %zu", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
        ad_http_request_free(&h);
    }
}

Test(anthropic_request, no_embeddings_or_legacy_completions)
{
    const char *body = "{\"model\":\"c\",\"input\":\"hello\"}";
    ad_request_t r;
    cr_assert_eq(ad_request_scan(AD_OP_EMBEDDINGS, body, strlen(body), &r, NULL), 0);
    ad_deployment_t dep = {.provider = "anthropic", .upstream_model = "claude-x", .api_key = "k"};
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad_anthropic.build_request(&r, &dep, &h, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no embeddings") != NULL, "%s", err);
    cr_assert_eq(ad_anthropic.caps & AD_CAP_EMBEDDINGS, 0u);
    cr_assert_eq(ad_anthropic.caps & AD_CAP_PASSTHROUGH, 0u);
    cr_assert_neq(ad_anthropic.caps & AD_CAP_STREAM, 0u);
    r.op = AD_OP_COMPLETIONS;
    cr_assert_eq(ad_anthropic.build_request(&r, &dep, &h, err, sizeof(err)), -1);
    ad_http_request_free(&h);
}

Test(anthropic_request, body_ceiling_is_an_error)
{
    const char *body = "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}";
    ad_request_t r;
    scan(body, &r);
    ad_deployment_t dep = {.provider = "anthropic", .upstream_model = "claude-x"};
    ad_http_request_t h;
    ad_http_request_init(&h, 16);
    char err[256] = "";
    cr_assert_eq(ad_anthropic.build_request(&r, &dep, &h, err, sizeof(err)), -1);
    cr_assert(strstr(err, "too large") != NULL, "%s", err);
    ad_http_request_free(&h);
}

Test(anthropic_request, registry)
{
    cr_assert_eq(ad_adapter_find("anthropic"), &ad_anthropic);
    cr_assert_str_eq(ad_anthropic.name, "anthropic");
    cr_assert_eq(ad_anthropic.abi_version, AD_ABI_VERSION);
    cr_assert_gt(ad_anthropic.state_size, 0u);
}

/* ---- streams ------------------------------------------------------------------------------- */

static int on_ev(void *ud, const ad_event_t *ev)
{
    cr_assert_null(ev->raw, "translating adapters leave raw NULL");
    return fx_event_line(ud, ev);
}

typedef struct run {
    ad_buf_t events;
    ad_usage_t usage;
    int truncated;
    int saw_error;
} run_t;

/* step > 0: pieces of step bytes; else two pieces cut at split. Every feed must succeed. */
static void run_stream(const char *in, size_t len, size_t split, size_t step, int wants_usage, run_t *out)
{
    ad_request_t r;
    scan("{\"model\":\"claude\",\"stream\":true,\"messages\":[]}", &r);
    r.include_usage = wants_usage;
    ad_buf_init(&out->events, 1 << 22);
    fx_fed_t f = fx_feed(&ad_anthropic, &r, in, len, split, step, FX_FINISH_AFTER_ERROR, on_ev, &out->events);
    cr_assert_eq(f.feed_rc, 0);
    out->truncated = f.truncated;
    out->usage = f.usage;
    out->saw_error = f.saw_error;
}

typedef struct stream_case {
    const char *name;
    int wants_usage;
    ad_usage_t usage;
    int truncated, saw_error;
} stream_case_t;

static void check_stream(const stream_case_t *c)
{
    size_t il, el;
    char *in = fx_slurp_as(DIR, c->name, ".sse", &il);
    char *want = fx_slurp_as(DIR, c->name, ".events", &el);
    run_t ref;
    run_stream(in, il, il, 0, c->wants_usage, &ref);
    fx_compare_events(c->name, ref.events.data ? ref.events.data : "", want, 1);
    cr_assert_eq(ref.truncated, c->truncated, "%s: truncation", c->name);
    cr_assert_eq(ref.saw_error, c->saw_error, "%s: saw_error", c->name);
    cr_assert_eq(ref.usage.prompt_tokens, c->usage.prompt_tokens, "%s: prompt tokens", c->name);
    cr_assert_eq(ref.usage.completion_tokens, c->usage.completion_tokens, "%s: completion tokens", c->name);
    cr_assert_eq(ref.usage.cached_tokens, c->usage.cached_tokens, "%s: cached tokens", c->name);
    cr_assert_eq(ref.usage.reasoning_tokens, c->usage.reasoning_tokens, "%s: reasoning tokens", c->name);
    for (size_t split = 0; split <= il + 1; split++) {
        run_t r;
        if (split == il + 1)
            run_stream(in, il, 0, 1, c->wants_usage, &r); /* byte by byte */
        else
            run_stream(in, il, split, 0, c->wants_usage, &r);
        cr_assert_eq(r.events.len, ref.events.len, "%s split %zu:\n%s", c->name, split, r.events.data);
        cr_assert_eq(memcmp(r.events.data, ref.events.data, r.events.len), 0, "%s split %zu:\n%s", c->name,
                     split, r.events.data);
        cr_assert_eq(r.truncated, ref.truncated, "%s split %zu: truncation", c->name, split);
        cr_assert_eq(memcmp(&r.usage, &ref.usage, sizeof(r.usage)), 0, "%s split %zu: usage", c->name, split);
        ad_buf_free(&r.events);
    }
    ad_buf_free(&ref.events);
    free(in);
    free(want);
}

Test(anthropic_stream, fixtures_at_every_split)
{
    static const stream_case_t cases[] = {
        /* prompt = input 25 + cache writes 100 + cache reads 2000 */
        {"stream-text", 1, {2125, 15, 2000, -1}, 0, 0},
        {"stream-tools", 0, {377, 89, 0, -1}, 0, 0},
        {"stream-thinking-crlf", 1, {42, 64, 0, -1}, 0, 0},
        {"stream-error", 1, {12, 1, 0, -1}, 0, 1},
        {"stream-truncated", 1, {35, 1, 5, -1}, 1, 0},
        {"stream-refusal-no-final-blank", 1, {15, 6, -1, -1}, 0, 0},
        {"stream-unknown", 0, {2679, 510, 0, -1}, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_stream(&cases[i]);
}

/* The whole text in one feed; the stream is finished even when the feed failed. */
static void feed_all(const char *text, run_t *out, int *feed_rc)
{
    ad_request_t r;
    scan("{\"model\":\"claude\",\"stream\":true,\"messages\":[]}", &r);
    ad_buf_init(&out->events, 1 << 20);
    size_t n = strlen(text);
    fx_fed_t f = fx_feed(&ad_anthropic, &r, text, n, n, 0, FX_FINISH_AFTER_ERROR, on_ev, &out->events);
    *feed_rc = f.feed_rc;
    out->truncated = f.truncated;
    out->usage = f.usage;
}

Test(anthropic_stream, events_after_the_end_are_ignored)
{
    const char *s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
                    "\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
                    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                    "\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n"
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    run_t r;
    int rc;
    feed_all(s, &r, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_eq(r.truncated, 0);
    cr_assert_null(strstr(r.events.data, "late"));
    const char *done = strstr(r.events.data, "DONE\n");
    cr_assert_not_null(done);
    cr_assert_null(strstr(done + 5, "DONE"), "one [DONE] only");
    cr_assert_eq(r.usage.prompt_tokens, 3);
    ad_buf_free(&r.events);
}

Test(anthropic_stream, no_message_start_still_has_identity)
{
    /* deltas with no message_start and no block start: content still flows, id/model invented */
    const char *s = "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                    "\"text\":\"hi\"}}\n\n"
                    "event: message_stop\ndata: {}\n\n"; /* event name stands in for a missing type */
    run_t r;
    int rc;
    feed_all(s, &r, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_eq(r.truncated, 0);
    cr_assert(strstr(r.events.data, "\"id\":\"chatcmpl-" RID "\"") != NULL, "%s", r.events.data);
    cr_assert(strstr(r.events.data, "\"model\":\"claude\"") != NULL, "%s", r.events.data);
    cr_assert(strstr(r.events.data, "\"content\":\"hi\"") != NULL, "%s", r.events.data);
    cr_assert_eq(r.usage.prompt_tokens, -1, "nothing reported");
    ad_buf_free(&r.events);
}

Test(anthropic_stream, too_many_blocks_is_a_framing_error)
{
    const char *s = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":99999,"
                    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    run_t r;
    int rc;
    feed_all(s, &r, &rc);
    cr_assert_eq(rc, -1);
    cr_assert_eq(r.truncated, 1);
    ad_buf_free(&r.events);
}

Test(anthropic_stream, garbage_is_ignored_and_reported_truncated)
{
    run_t r;
    int rc;
    feed_all("event: message_start\ndata: {not json\n\ndata: [1,2]\n\ndata: {\"type\":7}\n\n: hi\n\n", &r,
             &rc);
    cr_assert_eq(rc, 0);
    cr_assert_eq(r.events.len, 0, "%s", r.events.data);
    cr_assert_eq(r.truncated, 1);
    ad_buf_free(&r.events);
}

static int stop_after_one(void *ud, const ad_event_t *ev)
{
    (*(int *)ud)++;
    return 7;
}

Test(anthropic_stream, emit_can_stop_the_feed)
{
    ad_request_t r;
    scan("{\"model\":\"claude\",\"stream\":true,\"messages\":[]}", &r);
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    st.req = &r;
    st.priv = calloc(1, ad_anthropic.state_size);
    ad_anthropic.stream_init(&st, &r);
    int calls = 0;
    st.emit = stop_after_one;
    st.emit_ud = &calls;
    const char *s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n"
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    cr_assert_eq(ad_anthropic.stream_feed(&st, s, strlen(s)), 7);
    cr_assert_eq(calls, 1);
    ad_stream_free(&st);
    free(st.priv);
}

/* ---- non-stream responses ------------------------------------------------------------------ */

static void check_response(const char *name)
{
    size_t n;
    char *body = fx_slurp_as(DIR, name, ".anthropic.json", &n);
    json_t *want = fx_load_json_as(DIR, name, ".openai.json");
    ad_request_t r;
    scan("{\"model\":\"claude\",\"messages\":[]}", &r);
    ad_usage_t u = {-1, -1, -1, -1};
    json_t *got = fx_parse_ok(&ad_anthropic, &r, body, n, name, &u);
    fx_assert_json(name, got, want, 1);
    json_t *wu = json_object_get(want, "usage");
    json_t *cached = json_object_get(json_object_get(wu, "prompt_tokens_details"), "cached_tokens");
    cr_assert_eq(u.prompt_tokens, json_integer_value(json_object_get(wu, "prompt_tokens")), "%s", name);
    cr_assert_eq(u.completion_tokens, json_integer_value(json_object_get(wu, "completion_tokens")), "%s",
                 name);
    cr_assert_eq(u.cached_tokens, cached ? json_integer_value(cached) : -1, "%s", name);
    free(body);
    json_decref(got);
    json_decref(want);
}

Test(anthropic_response, fixtures)
{
    const char *cases[] = {"resp-text", "resp-tools", "resp-tool-only", "resp-thinking",
                           "resp-stop-sequence"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_response(cases[i]);
}

Test(anthropic_response, not_a_message_is_an_error)
{
    const char *bad[] = {"", "{\"a\":", "[]", "{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}",
                         "{\"content\":\"text\"}"};
    fx_check_refused(&ad_anthropic, NULL, bad, sizeof(bad) / sizeof(bad[0]));
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(anthropic_errors, mapping)
{
    struct {
        int status;
        const char *body, *retry_after;
        int want_status, retryable;
        int64_t retry_ms;
        const char *type, *code, *msg;
    } cases[] = {
        {400,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"max_tokens: Field "
         "required\"},\"request_id\":\"req_1\"}",
         NULL, 400, 0, -1, "invalid_request_error", NULL, "max_tokens: Field required"},
        {400,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too "
         "long: "
         "208656 tokens > 200000 maximum\"}}",
         NULL, 400, 0, -1, "invalid_request_error", "context_length_exceeded", "prompt is too long"},
        {401,
         "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid "
         "x-api-key\"}}",
         NULL, 401, 0, -1, "authentication_error", "invalid_api_key", "invalid x-api-key"},
        {403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no access\"}}",
         NULL, 403, 0, -1, "permission_error", NULL, "no access"},
        {404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: claude-9\"}}",
         NULL, 404, 0, -1, "invalid_request_error", "model_not_found", "model: claude-9"},
        {402,
         "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"credit balance too low\"}}",
         NULL, 402, 0, -1, "invalid_request_error", "insufficient_quota", "credit balance"},
        {413, "<html><body>413 Request Entity Too Large</body></html>", NULL, 413, 0, -1,
         "invalid_request_error", "upstream_error", "HTTP 413: <html>"},
        {429,
         "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Number of request "
         "tokens has "
         "exceeded your per-minute rate limit\"}}",
         "7", 429, 1, 7000, "rate_limit_error", "rate_limit_exceeded", "per-minute rate limit"},
        {429,
         "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"spend limit reached\","
         "\"details\":{\"error_code\":\"enforced_spend_limit_reached\"}}}",
         "60", 429, 0, 60000, "rate_limit_error", "insufficient_quota", "spend limit"},
        {500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}",
         "0.5", 500, 1, 500, "api_error", NULL, "Internal server error"},
        {529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
         NULL, 503, 1, -1, "api_error", "overloaded", "Overloaded"},
        {529, "", NULL, 503, 1, -1, "api_error", "upstream_error", "HTTP 529"},
        {504, "{\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":\"Request timed out\"}}",
         "soon", 504, 1, -1, "api_error", "timeout", "timed out"},
        {502, "", NULL, 502, 1, -1, "api_error", "upstream_error", "HTTP 502"},
        {418, "{\"type\":\"error\",\"error\":{\"type\":\"teapot_error\",\"message\":\"short and stout\"}}",
         NULL, 418, 0, -1, "invalid_request_error", NULL, "short and stout"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        ad_error_t e;
        ad_anthropic.map_error(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].retry_after,
                               &out, &e);
        cr_assert_eq(e.status, cases[i].want_status, "case %zu", i);
        cr_assert_eq(e.retryable, cases[i].retryable, "case %zu", i);
        cr_assert_eq(e.retry_ms, cases[i].retry_ms, "case %zu", i);
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        cr_assert_not_null(j, "case %zu: %s", i, out.data);
        json_t *err = json_object_get(j, "error");
        cr_assert_eq(json_object_size(err), 4, "case %zu: message, type, param, code", i);
        json_t *param = json_object_get(err, "param");
        if (i == 1) /* the context overflow names the culprit as OpenAI does */
            cr_assert_str_eq(json_string_value(param), "messages");
        else
            cr_assert(json_is_null(param), "case %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(err, "type")), cases[i].type, "case %zu", i);
        json_t *code = json_object_get(err, "code");
        if (cases[i].code == NULL)
            cr_assert(json_is_null(code), "case %zu: code %s", i, json_string_value(code));
        else
            cr_assert_str_eq(json_string_value(code), cases[i].code, "case %zu", i);
        const char *msg = json_string_value(json_object_get(err, "message"));
        cr_assert(msg != NULL && strstr(msg, cases[i].msg) != NULL, "case %zu: %s", i, msg);
        json_decref(j);
        ad_buf_free(&out);
    }
}
