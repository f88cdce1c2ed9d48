/*
 * Fixture tests of the Ollama native adapter (tests/adapters/fixtures/ollama, providers.md §6.1):
 *  - <case>.request.json (the client's OpenAI body) → <case>.upstream.json (method, URL,
 *    headers, body as parsed JSON) for the deployments in the table below;
 *  - stream-*.ndjson (Ollama's NDJSON as it sends it) → stream-*.events, for every split of the
 *    bytes into two pieces and byte by byte;
 *  - resp-*.response.json (stream:false bodies) → resp-*.completion.json, embeddings float and
 *    base64;
 *  - the error mapping table, refusals of requests Ollama cannot take, framing failures.
 */
#include "fixture_kit.h"

#define DIR "ollama"

static const ad_deployment_t local = {
    .provider = "ollama_chat", .upstream_model = "llama3.2", .api_base = "http://ollama.internal:11434"};

/* ---- requests ------------------------------------------------------------------------------ */

Test(ollama_request, fixtures)
{
    const ad_deployment_t llava = {
        .provider = "ollama", .upstream_model = "llava:13b", .api_base = "http://ollama.internal:11434"};
    const ad_deployment_t cloud = {.provider = "ollama_chat",
                                   .upstream_model = "gpt-oss:120b",
                                   .api_base = "https://ollama.com",
                                   .api_key = "ollama-cloud-key"};
    const ad_deployment_t embed = {
        .provider = "ollama", .upstream_model = "all-minilm", .api_base = "http://ollama.internal:11434"};
    const struct {
        const char *name;
        ad_op_t op;
        const ad_deployment_t *dep;
    } cases[] = {
        {"chat-basic", AD_OP_CHAT, &local},         {"chat-multiturn-stream", AD_OP_CHAT, &local},
        {"chat-tools", AD_OP_CHAT, &local},         {"chat-tools-none", AD_OP_CHAT, &local},
        {"chat-images", AD_OP_CHAT, &llava},        {"chat-format-json", AD_OP_CHAT, &cloud},
        {"chat-format-schema", AD_OP_CHAT, &local}, {"embed-single", AD_OP_EMBEDDINGS, &embed},
        {"embed-batch", AD_OP_EMBEDDINGS, &embed},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fx_check_build(&ad_ollama, DIR, cases[i].name, cases[i].op, cases[i].dep);
}

Test(ollama_request, default_base_and_registry)
{
    const ad_deployment_t d = {.provider = "ollama", .upstream_model = "llama3.2"};
    const char *body = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    ad_request_t r = fx_request(AD_OP_CHAT, body, strlen(body));
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 16);
    char err[128];
    cr_assert_eq(ad_ollama.build_request(&r, &d, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.url.data, "http://localhost:11434/api/chat");
    json_t *b = json_loadb(h.body.data, h.body.len, 0, NULL);
    cr_assert(json_is_false(json_object_get(b, "stream")), "stream is always explicit");
    cr_assert_null(json_object_get(b, "options"), "no options when the client set none");
    json_decref(b);
    ad_http_request_free(&h);
    cr_assert_eq(ad_adapter_find("ollama"), &ad_ollama);
    cr_assert_eq(ad_adapter_find("ollama_chat"), &ad_ollama);
    cr_assert_eq(ad_ollama.caps & AD_CAP_PASSTHROUGH, 0u);
}

Test(ollama_request, refusals)
{
    const struct {
        ad_op_t op;
        const char *body, *msg;
    } cases[] = {
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"https://example.com/cat.png\"}}]}]}",
         "data:"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
         "tool_calls[0]"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
         "JSON object"},
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
         "messages[0]: role"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
         "input_audio"},
        {AD_OP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":42}]}",
         "content must be"},
        {AD_OP_CHAT,
         "{\"model\":\"m\",\"messages\":[],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
         "{\"name\":\"x\"}}}",
         "schema must be an object"},
        {AD_OP_EMBEDDINGS, "{\"model\":\"m\",\"input\":[[1212,318]]}", "text only"},
        {AD_OP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\"}", "chat completions and embeddings only"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fx_check_build_fails(&ad_ollama, cases[i].op, cases[i].body, &local, cases[i].msg);
}

/* ---- streams ------------------------------------------------------------------------------- */

Test(ollama_stream, fixtures_at_every_split)
{
    const fx_stream_case_t cases[] = {
        {"stream-text.ndjson", "stream-text.events", NULL, 1, 26, 15, 0},
        {"stream-text-hidden-usage.ndjson", "stream-text-hidden-usage.events", NULL, 0, 26, 15, 0},
        {"stream-crlf-blank.ndjson", "stream-crlf-blank.events", NULL, 1, 0, 2, 0},
        {"stream-tools.ndjson", "stream-tools.events", NULL, 0, 182, 41, 0},
        {"stream-length.ndjson", "stream-length.events", NULL, 1, 12, 4, 0},
        {"stream-thinking.ndjson", "stream-thinking.events", NULL, 1, 0, 9, 0},
        {"stream-error.ndjson", "stream-error.events", NULL, 1, -1, -1, 0},
        {"stream-error-first.ndjson", "stream-error-first.events", NULL, 1, -1, -1, 0},
        {"stream-truncated.ndjson", "stream-truncated.events", NULL, 1, -1, -1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fx_check_stream(&ad_ollama, DIR, &cases[i]);
}

static ad_request_t stream_request(void)
{
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.op = AD_OP_CHAT;
    r.stream = 1;
    r.now = FX_NOW;
    r.request_id = FX_RID;
    return r;
}

Test(ollama_stream, garbage_line_is_a_framing_error)
{
    const char *in = "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\n<html>502</html>\n";
    ad_request_t r = stream_request();
    fx_run_t run;
    fx_run_stream(&ad_ollama, &r, in, strlen(in), 0, 1, &run);
    cr_assert_eq(run.feed_rc, -1);
    cr_assert_eq(run.truncated, 1);
    fx_run_free(&run);
    fx_run_stream(&ad_ollama, &r, "[1,2]\n", 6, 6, 0, &run);
    cr_assert_eq(run.feed_rc, -1, "an NDJSON line must be an object");
    fx_run_free(&run);
}

Test(ollama_stream, empty_stream_is_truncated)
{
    ad_request_t r = stream_request();
    fx_run_t run;
    fx_run_stream(&ad_ollama, &r, "", 0, 0, 0, &run);
    cr_assert_eq(run.feed_rc, 0);
    cr_assert_eq(run.truncated, 1);
    cr_assert_eq(run.sink.events.len, 0);
    fx_run_free(&run);
}

Test(ollama_stream, line_ceiling)
{
    size_t n = (8u << 20) + 2;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    ad_request_t r = stream_request();
    fx_run_t run;
    fx_run_stream(&ad_ollama, &r, big, n, n / 2, 0, &run);
    cr_assert_eq(run.feed_rc, -1, "a line past 8 MiB is refused, not buffered");
    cr_assert_eq(run.truncated, 1);
    fx_run_free(&run);
    free(big);
}

static int stop_after_two(void *ud, const ad_event_t *ev)
{
    int *n = ud;
    return ++*n >= 2 ? 7 : 0;
}

Test(ollama_stream, emit_stop_is_returned)
{
    size_t len;
    char *in = fx_slurp(DIR, "stream-text.ndjson", &len);
    ad_request_t r = stream_request();
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    st.priv = calloc(1, ad_ollama.state_size);
    ad_ollama.stream_init(&st, &r);
    int n = 0;
    st.emit = stop_after_two;
    st.emit_ud = &n;
    cr_assert_eq(ad_ollama.stream_feed(&st, in, len), 7, "the callback's value comes back");
    cr_assert_eq(n, 2);
    ad_ollama.stream_free(&st);
    ad_stream_free(&st);
    free(st.priv);
    free(in);
}

/* ---- non-stream ---------------------------------------------------------------------------- */

static void check_response(const char *name, ad_op_t op, const char *client_body, const char *want_file,
                           int64_t prompt, int64_t completion)
{
    size_t len;
    char *body = fx_slurp_as(DIR, name, ".response.json", &len);
    ad_request_t r = fx_request(op, client_body, strlen(client_body));
    ad_usage_t u = {-1, -1, -1, -1};
    json_t *got = fx_parse_ok(&ad_ollama, &r, body, len, name, &u);
    json_t *want = fx_load_json(DIR, want_file);
    fx_assert_json(name, got, want, 0);
    cr_assert_eq(u.prompt_tokens, prompt, "%s: prompt", name);
    cr_assert_eq(u.completion_tokens, completion, "%s: completion", name);
    json_decref(got);
    json_decref(want);
    free(body);
}

Test(ollama_response, chat_and_embeddings)
{
    const char *chat = "{\"model\":\"local-llama\",\"messages\":[]}";
    check_response("resp-text", AD_OP_CHAT, chat, "resp-text.completion.json", 26, 11);
    check_response("resp-tools", AD_OP_CHAT, chat, "resp-tools.completion.json", 182, 30);
    check_response("resp-length-thinking", AD_OP_CHAT, chat, "resp-length-thinking.completion.json", 0, 16);
    check_response("embed", AD_OP_EMBEDDINGS, "{\"model\":\"e\",\"input\":[\"a\",\"b\"]}",
                   "embed-float.expected.json", 8, 0);
    check_response("embed", AD_OP_EMBEDDINGS,
                   "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\"}",
                   "embed-base64.expected.json", 8, 0);
    check_response("embed-real", AD_OP_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"a\"}",
                   "embed-real-float.expected.json", 3, 0);
}

Test(ollama_response, bodies_that_are_not_ollama_s)
{
    const char *bad[] = {
        "{\"a\":",
        "[]",
        "{\"error\":\"model not found\"}",
        "{\"model\":\"m\",\"done\":true}",
        "{\"model\":\"m\",\"embeddings\":[[1,2],[3]]}",
        "{\"model\":\"m\",\"embeddings\":[[1,\"x\"]]}",
    };
    const char *chat = "{\"model\":\"m\",\"messages\":[]}", *emb = "{\"model\":\"m\",\"input\":\"x\"}";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ad_request_t r = fx_request(i >= 4 ? AD_OP_EMBEDDINGS : AD_OP_CHAT, i >= 4 ? emb : chat,
                                    strlen(i >= 4 ? emb : chat));
        ad_buf_t out;
        ad_buf_init(&out, 1 << 16);
        ad_usage_t u = {-1, -1, -1, -1};
        cr_assert_eq(ad_ollama.parse_response(&r, bad[i], strlen(bad[i]), &out, &u), -1, "case %zu", i);
        ad_buf_free(&out);
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(ollama_errors, mapping)
{
    const fx_error_case_t cases[] = {
        {404, "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}", NULL, 404, 0, -1,
         "{\"error\":{\"message\":\"model \\\"llama9\\\" not found, try pulling it first\","
         "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}"},
        {429, "{\"error\":\"too many concurrent requests\"}", "3", 429, 1, 3000,
         "{\"error\":{\"message\":\"too many concurrent "
         "requests\",\"type\":\"rate_limit_error\",\"param\":null,"
         "\"code\":\"rate_limit_exceeded\"}}"},
        {500, "{\"error\":\"llama runner process has terminated: exit status 2\"}", NULL, 500, 1, -1,
         "{\"error\":{\"message\":\"llama runner process has terminated: exit status "
         "2\",\"type\":\"api_error\","
         "\"param\":null,\"code\":null}}"},
        {400, "{\"error\":\"registry.ollama.ai/library/gemma:2b does not support tools\"}", NULL, 400, 0, -1,
         "{\"error\":{\"message\":\"registry.ollama.ai/library/gemma:2b does not support tools\","
         "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}"},
        {502, "{\"error\":\"cloud model unreachable\"}", "Wed, 21 Oct 2015 07:28:00 GMT", 502, 1, -1,
         "{\"error\":{\"message\":\"cloud model "
         "unreachable\",\"type\":\"api_error\",\"param\":null,\"code\":null}}"},
        {503, "<html>\r\n<body>Service Unavailable</body>\r\n</html>\r\n", "0.5", 503, 1, 500,
         "{\"error\":{\"message\":\"upstream returned HTTP 503: <html>  <body>Service Unavailable</body>  "
         "</html>\","
         "\"type\":\"api_error\",\"param\":null,\"code\":null}}"},
        {401, "", NULL, 401, 0, -1,
         "{\"error\":{\"message\":\"upstream returned HTTP "
         "401\",\"type\":\"authentication_error\",\"param\":null,"
         "\"code\":null}}"},
        {400, "{\"error\":{\"message\":\"a proxy's nested form\"}}", NULL, 400, 0, -1,
         "{\"error\":{\"message\":\"a proxy's nested "
         "form\",\"type\":\"invalid_request_error\",\"param\":null,"
         "\"code\":null}}"},
    };
    fx_check_errors(&ad_ollama, cases, sizeof(cases) / sizeof(cases[0]));
}
