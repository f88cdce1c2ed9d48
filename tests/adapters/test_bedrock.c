/*
 * Fixture tests of the Bedrock adapter (tests/adapters/fixtures/bedrock; make_fixtures.py there
 * regenerates the binary streams and the signed headers):
 *  - requests.json cases: <name>.request.json → exactly <name>.upstream.json (method, URL, every
 *    header including the SigV4 Authorization computed by an independent implementation, body
 *    compared as parsed JSON), plus requests the adapter must refuse;
 *  - recorded ConverseStream bodies stream-*.bin → the exact event list stream-*.events, for
 *    every split of the bytes into two pieces and byte by byte, with usage and truncation;
 *  - Converse bodies resp-*.converse.json → resp-*.completion.json (parsed JSON);
 *  - Titan and Cohere embeddings, float and base64; error mapping; finish reasons.
 */
#include <openssl/evp.h>

#include "adapters/adapter.h"
#include "adapters/bedrock_int.h"
#include "adapters/eventstream.h"
#include "fixture_kit.h"

#define DIR "bedrock"
#define NOW 1704067200
#define RID "req-1"

/* A client request over body (kept alive by the caller). */
static ad_request_t request_for(ad_op_t op, const char *body, size_t len)
{
    return fx_request_at(op, body, len, NOW, RID);
}

/* ---- requests ------------------------------------------------------------------------------- */

static ad_deployment_t deployment_from(json_t *d)
{
    ad_deployment_t dep = {
        .provider = "bedrock",
        .upstream_model = json_string_value(json_object_get(d, "model")),
        .api_base = json_string_value(json_object_get(d, "api_base")),
        .api_key = json_string_value(json_object_get(d, "api_key")),
        .params = json_object_get(d, "params"),
    };
    return dep;
}

static void check_request_case(json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *op_name = json_string_value(json_object_get(c, "op"));
    ad_op_t op = strcmp(op_name, "embeddings") == 0 ? AD_OP_EMBEDDINGS : AD_OP_CHAT;
    char err[512] = "";
    size_t len;
    char *body = fx_slurp_as(DIR, name, ".request.json", &len);
    ad_request_t r = request_for(op, body, len);
    r.now = json_integer_value(json_object_get(c, "now"));
    ad_deployment_t dep = deployment_from(json_object_get(c, "deployment"));
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    cr_assert_eq(ad_bedrock.build_request(&r, &dep, &h, err, sizeof(err)), 0, "%s: %s", name, err);

    json_t *want = fx_load_json_as(DIR, name, ".upstream.json");
    cr_assert_str_eq(h.method, json_string_value(json_object_get(want, "method")), "%s: method", name);
    cr_assert_str_eq(h.url.data, json_string_value(json_object_get(want, "url")), "%s: url", name);
    json_t *hdrs = json_object_get(want, "headers");
    cr_assert_eq(h.n_headers, json_array_size(hdrs), "%s: %zu headers", name, h.n_headers);
    for (size_t i = 0; i < h.n_headers; i++)
        cr_assert_str_eq(h.headers[i].data, json_string_value(json_array_get(hdrs, i)), "%s: header %zu",
                         name, i);
    fx_assert_json_text_exact(name, h.body.data, h.body.len, json_object_get(want, "body"));
    json_decref(want);
    ad_http_request_free(&h);
    free(body);
}

Test(bedrock_request, fixtures)
{
    json_t *cases = fx_load_json(DIR, "requests.json"), *c;
    size_t i;
    cr_assert_geq(json_array_size(cases), 8);
    json_array_foreach(cases, i, c)
    {
        check_request_case(c);
    }
    json_decref(cases);
}

Test(bedrock_request, providers_md_example_signature)
{
    /* shared/providers.md §5.6: cross-checked with botocore */
    json_t *cases = fx_load_json(DIR, "requests.json");
    json_t *c = json_array_get(cases, 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "name")), "example");
    const char *body =
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":64}";
    ad_request_t r = request_for(AD_OP_CHAT, body, strlen(body));
    ad_deployment_t dep = deployment_from(json_object_get(c, "deployment"));
    ad_http_request_t h;
    char err[256];
    ad_http_request_init(&h, 1 << 20);
    cr_assert_eq(ad_bedrock.build_request(&r, &dep, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.body.data, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hi\"}]}],"
                                  "\"inferenceConfig\":{\"maxTokens\":64}}");
    cr_assert(strstr(h.headers[h.n_headers - 1].data,
                     "Signature=74247746791f7fb944955fc5fc6ee3df144abd75d09f008625f9c64daf9fc76f") != NULL,
              "%s", h.headers[h.n_headers - 1].data);
    ad_http_request_free(&h);
    json_decref(cases);
}

Test(bedrock_request, rejections)
{
    static const char *creds = "{\"aws_access_key_id\":\"AKID\",\"aws_secret_access_key\":\"secret\"}";
    struct {
        ad_op_t op;
        const char *model, *params, *body, *want;
    } cases[] = {
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":{"
         "\"url\":\"https://example.com/cat.png\"}}]}]}",
         "remote image URLs are not fetched"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_"
         "url\":{"
         "\"url\":\"data:image/tiff;base64,AAAA\"}}]}]}",
         "png, jpeg, gif or webp"},
        {AD_OP_EMBEDDINGS, "amazon.titan-embed-text-v2:0", creds, "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}",
         "Titan embeds one input per request"},
        {AD_OP_EMBEDDINGS, "amazon.titan-embed-text-v2:0", creds, "{\"model\":\"m\",\"input\":[[1,2,3]]}",
         "input must be a string"},
        {AD_OP_EMBEDDINGS, "meta.llama3-8b-instruct-v1:0", creds, "{\"model\":\"m\",\"input\":\"x\"}",
         "titan-embed"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "n > 1"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", "{}",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "aws_access_key_id"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0",
         "{\"aws_access_key_id\":\"AKID\",\"aws_secret_access_key\":\"s\",\"aws_region_name\":\"us-east-1/"
         "evil\"}",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "not a region name"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0",
         "{\"aws_access_key_id\":\"AKID\\r\\nX-Evil: 1\",\"aws_secret_access_key\":\"s\"}",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "control characters"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\",\"type\":"
         "\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
         "arguments is not valid JSON"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}",
         "role 'function' is not supported"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "tool_call_id"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"},\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "response_format"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
         "at least one user or assistant message"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"temperature\":\"hot\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "temperature must be a number"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
         "\"sometimes\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "tool_choice must be"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"tools\":[{\"type\":\"retrieval\"}],\"messages\":[{\"role\":\"user\",\"content\":"
         "\"x\"}]}",
         "only function tools"},
        {AD_OP_CHAT, "converse/", creds,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "no model id"},
        {AD_OP_CHAT, "anthropic.claude-3-haiku-20240307-v1:0",
         "{\"aws_role_name\":\"arn:aws:iam::1:role/r\"}",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "need STS"},
        {AD_OP_COMPLETIONS, "anthropic.claude-3-haiku-20240307-v1:0", creds,
         "{\"model\":\"m\",\"prompt\":\"x\"}", "chat completions and embeddings only"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_request_t r = request_for(cases[i].op, cases[i].body, strlen(cases[i].body));
        json_t *params = json_loads(cases[i].params, 0, NULL);
        cr_assert_not_null(params, "case %zu params", i);
        ad_deployment_t dep = {.provider = "bedrock", .upstream_model = cases[i].model, .params = params};
        ad_http_request_t h;
        char err[512] = "";
        ad_http_request_init(&h, 1 << 20);
        cr_assert_eq(ad_bedrock.build_request(&r, &dep, &h, err, sizeof(err)), -1, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: message '%s' lacks '%s'", i, err,
                  cases[i].want);
        ad_http_request_free(&h);
        json_decref(params);
    }
}

Test(bedrock_request, api_base_without_prefix_and_registry)
{
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    ad_request_t r = request_for(AD_OP_CHAT, body, strlen(body));
    json_t *params = json_pack("{s:s,s:s}", "aws_access_key_id", "AKID", "aws_secret_access_key", "s");
    ad_deployment_t dep = {.provider = "bedrock",
                           .upstream_model = "invoke/meta.llama3-8b-instruct-v1:0",
                           .api_base = "https://vpce-123.bedrock-runtime.us-east-1.vpce.amazonaws.com",
                           .params = params};
    ad_http_request_t h;
    char err[256];
    ad_http_request_init(&h, 1 << 20);
    cr_assert_eq(ad_bedrock.build_request(&r, &dep, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.url.data, "https://vpce-123.bedrock-runtime.us-east-1.vpce.amazonaws.com/model/"
                                 "meta.llama3-8b-instruct-v1%3A0/converse");
    cr_assert_str_eq(h.headers[1].data, "Host: vpce-123.bedrock-runtime.us-east-1.vpce.amazonaws.com");
    cr_assert_eq(ad_adapter_find("bedrock"), &ad_bedrock);
    cr_assert(ad_bedrock.caps & AD_CAP_STREAM && ad_bedrock.caps & AD_CAP_EMBEDDINGS);
    cr_assert_eq(ad_bedrock.caps & AD_CAP_PASSTHROUGH, 0);
    ad_http_request_free(&h);
    json_decref(params);
}

/* ---- streams -------------------------------------------------------------------------------- */

typedef struct sink {
    ad_buf_t events; /* "TYPE data\n" lines */
    int stop_after;  /* emit returns 7 at this event (0: never) */
    int seen;
} sink_t;

static int on_ev(void *ud, const ad_event_t *ev)
{
    sink_t *s = ud;
    cr_assert_null(ev->raw, "a translating adapter leaves raw to the core");
    fx_event_line(&s->events, ev);
    return ++s->seen == s->stop_after ? 7 : 0;
}

typedef struct run {
    ad_usage_t usage;
    int truncated;
    int feed_rc; /* first non-zero feed result */
} run_t;

/* Feeds in[0..len) in two pieces cut at split, or in step-byte pieces when step > 0. */
static run_t run_stream(const char *in, size_t len, size_t split, size_t step, int wants_usage, sink_t *s)
{
    char body[256];
    snprintf(
        body, sizeof(body),
        "{\"model\":\"claude\",\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":%s}}",
        wants_usage ? "true" : "false");
    ad_request_t r = request_for(AD_OP_CHAT, body, strlen(body));
    fx_fed_t f = fx_feed(&ad_bedrock, &r, in, len, split, step, 0, on_ev, s);
    run_t out = {.feed_rc = f.feed_rc, .truncated = f.truncated, .usage = f.usage};
    return out;
}

typedef struct stream_case {
    const char *bin, *events;
    int wants_usage;
    int64_t prompt, completion, cached;
    int truncated;
} stream_case_t;

static void check_stream(const stream_case_t *c)
{
    size_t il, el;
    char *in = fx_slurp(DIR, c->bin, &il), *events = fx_slurp(DIR, c->events, &el);
    for (size_t split = 0; split <= il + 1; split++) {
        sink_t s = {.stop_after = 0};
        ad_buf_init(&s.events, 1 << 20);
        run_t r = split == il + 1 ? run_stream(in, il, 0, 1, c->wants_usage, &s)
                                  : run_stream(in, il, split, 0, c->wants_usage, &s);
        cr_assert_eq(r.feed_rc, 0, "%s split %zu: feed failed", c->bin, split);
        cr_assert_eq(s.events.len, el, "%s split %zu: events\n%s", c->bin, split, s.events.data);
        cr_assert_eq(memcmp(s.events.data, events, el), 0, "%s split %zu: events\n%s", c->bin, split,
                     s.events.data);
        cr_assert_eq(r.usage.prompt_tokens, c->prompt, "%s: prompt tokens", c->bin);
        cr_assert_eq(r.usage.completion_tokens, c->completion, "%s: completion tokens", c->bin);
        cr_assert_eq(r.usage.cached_tokens, c->cached, "%s: cached tokens", c->bin);
        cr_assert_eq(r.truncated, c->truncated, "%s split %zu: truncation", c->bin, split);
        ad_buf_free(&s.events);
    }
    free(in);
    free(events);
}

Test(bedrock_stream, recorded_streams_split_everywhere)
{
    static const stream_case_t cases[] = {
        {"stream-text.bin", "stream-text.events", 1, 15, 4, 3, 0},
        {"stream-text.bin", "stream-text-hidden.events", 0, 15, 4, 3, 0},
        {"stream-tools.bin", "stream-tools.events", 1, 120, 40, -1, 0},
        {"stream-reasoning.bin", "stream-reasoning.events", 1, 110, 64, 0, 0},
        {"stream-exception.bin", "stream-exception.events", 1, -1, -1, -1, 0},
        {"stream-model-stream-error.bin", "stream-model-stream-error.events", 1, -1, -1, -1, 0},
        {"stream-error.bin", "stream-error.events", 1, -1, -1, -1, 0},
        {"stream-guardrail.bin", "stream-guardrail.events", 0, 5, 2, -1, 0},
        {"stream-no-metadata.bin", "stream-no-metadata.events", 1, -1, -1, -1, 0},
        {"stream-truncated.bin", "stream-truncated.events", 1, -1, -1, -1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_stream(&cases[i]);
}

/* One Bedrock event frame (":event-type" type, JSON payload) appended to out. */
static void frame(ad_buf_t *out, const char *msg_type, const char *type_header, const char *type,
                  const char *json)
{
    ad_es_header_t h[3] = {
        {.name = type_header,
         .name_len = strlen(type_header),
         .type = AD_ES_STRING,
         .bytes = (const unsigned char *)type,
         .bytes_len = strlen(type)},
        {.name = ":content-type",
         .name_len = 13,
         .type = AD_ES_STRING,
         .bytes = (const unsigned char *)"application/json",
         .bytes_len = 16},
        {.name = ":message-type",
         .name_len = 13,
         .type = AD_ES_STRING,
         .bytes = (const unsigned char *)msg_type,
         .bytes_len = strlen(msg_type)},
    };
    cr_assert_eq(ad_es_encode(h, 3, json, strlen(json), out), 0);
}

static void event(ad_buf_t *out, const char *type, const char *json)
{
    frame(out, "event", ":event-type", type, json);
}

Test(bedrock_stream, tool_blocks_in_any_order_and_orphan_deltas)
{
    ad_buf_t in;
    ad_buf_init(&in, 1 << 20);
    event(&in, "contentBlockDelta", "{\"contentBlockIndex\":3,\"delta\":{\"toolUse\":{\"input\":\"{}\"}}}");
    event(&in, "contentBlockStart",
          "{\"contentBlockIndex\":5,\"start\":{\"toolUse\":{\"toolUseId\":\"a\",\"name\":\"fa\"}}}");
    event(&in, "contentBlockStart", "{\"contentBlockIndex\":2,\"start\":{}}");
    event(&in, "contentBlockStart",
          "{\"contentBlockIndex\":2,\"start\":{\"toolUse\":{\"toolUseId\":\"b\",\"name\":\"fb\"}}}");
    event(&in, "contentBlockStart", /* repeated: must not open a third call */
          "{\"contentBlockIndex\":5,\"start\":{\"toolUse\":{\"toolUseId\":\"a\",\"name\":\"fa\"}}}");
    event(&in, "contentBlockDelta", "{\"contentBlockIndex\":2,\"delta\":{\"toolUse\":{\"input\":\"[2]\"}}}");
    event(&in, "contentBlockDelta", "{\"contentBlockIndex\":5,\"delta\":{\"toolUse\":{\"input\":\"[5]\"}}}");
    event(&in, "contentBlockDelta", "{\"contentBlockIndex\":9,\"delta\":{\"citation\":{\"x\":1}}}");
    event(&in, "messageStop", "{\"stopReason\":\"tool_use\"}");
    event(&in, "metadata", "{\"usage\":{\"inputTokens\":1,\"outputTokens\":2,\"totalTokens\":3}}");
    event(&in, "metadata", "{\"usage\":{\"inputTokens\":9,\"outputTokens\":9,\"totalTokens\":18}}");
    sink_t s = {.stop_after = 0};
    ad_buf_init(&s.events, 1 << 20);
    run_t r = run_stream(in.data, in.len, in.len, 0, 0, &s);
    cr_assert_eq(r.truncated, 0);
    const char *t = s.events.data;
    const char *a = strstr(t, "\"index\":0,\"id\":\"a\""), *b = strstr(t, "\"index\":1,\"id\":\"b\"");
    cr_assert(a != NULL && b != NULL && a < b, "%s", t);
    cr_assert(strstr(t, "{\"index\":1,\"function\":{\"arguments\":\"[2]\"}}") != NULL, "%s", t);
    cr_assert(strstr(t, "{\"index\":0,\"function\":{\"arguments\":\"[5]\"}}") != NULL, "%s", t);
    cr_assert_null(strstr(t, "\"arguments\":\"{}\""), "a delta without its start is dropped");
    cr_assert_null(strstr(t, "\"index\":2"), "%s", t);
    cr_assert_eq(r.usage.prompt_tokens, 1, "events after the end are ignored");
    cr_assert(strstr(t, "HIDDEN") != NULL && strstr(t, "DONE\n") != NULL);
    ad_buf_free(&s.events);
    ad_buf_free(&in);
}

Test(bedrock_stream, too_many_tool_calls_is_an_error_event)
{
    ad_buf_t in;
    char json[256];
    ad_buf_init(&in, 1 << 20);
    for (int i = 0; i <= AD_BEDROCK_MAX_TOOLS; i++) {
        snprintf(json, sizeof(json),
                 "{\"contentBlockIndex\":%d,\"start\":{\"toolUse\":{\"toolUseId\":\"t%d\",\"name\":\"f\"}}}",
                 i, i);
        event(&in, "contentBlockStart", json);
    }
    sink_t s = {.stop_after = 0};
    ad_buf_init(&s.events, 4 << 20);
    run_t r = run_stream(in.data, in.len, 0, 0, 1, &s);
    cr_assert_eq(r.truncated, 0, "an error event ends the stream");
    cr_assert(strstr(s.events.data, "ERROR {\"error\":{\"message\":\"the answer holds more tool calls") !=
              NULL);
    cr_assert(strstr(s.events.data, "\"index\":127,") != NULL);
    ad_buf_free(&s.events);
    ad_buf_free(&in);
}

Test(bedrock_stream, failures_are_sticky)
{
    size_t il;
    char *in = fx_slurp(DIR, "stream-text.bin", &il);
    /* a flipped payload byte breaks the message CRC of the second frame */
    char *bad = malloc(il);
    memcpy(bad, in, il);
    size_t first = (size_t)((unsigned char)in[2] << 8 | (unsigned char)in[3]);
    bad[first + 20] ^= 0x01;
    sink_t s = {.stop_after = 0};
    ad_buf_init(&s.events, 1 << 20);
    run_t r = run_stream(bad, il, first + 30, 0, 1, &s);
    cr_assert_eq(r.feed_rc, -1);
    ad_buf_free(&s.events);

    /* the emit callback's value stops the feed and is returned; the stream is then dead */
    sink_t s2 = {.stop_after = 2};
    ad_buf_init(&s2.events, 1 << 20);
    run_t r2 = run_stream(in, il, il, 0, 1, &s2);
    cr_assert_eq(r2.feed_rc, 7);
    ad_buf_free(&s2.events);

    /* a known event whose payload is not JSON cannot be understood */
    ad_buf_t j;
    ad_buf_init(&j, 4096);
    event(&j, "contentBlockDelta", "{\"delta\":{\"text\":\"x\"}");
    sink_t s3 = {.stop_after = 0};
    ad_buf_init(&s3.events, 1 << 20);
    run_t r3 = run_stream(j.data, j.len, 3, 0, 1, &s3);
    cr_assert_eq(r3.feed_rc, -1);
    ad_buf_free(&s3.events);
    ad_buf_free(&j);

    /* unknown message types and unknown events with any payload are ignored */
    ad_buf_t u;
    ad_buf_init(&u, 4096);
    frame(&u, "initial-response", ":event-type", "initial-response", "not json");
    event(&u, "newThing", "\x01\x02");
    sink_t s4 = {.stop_after = 0};
    ad_buf_init(&s4.events, 1 << 20);
    run_t r4 = run_stream(u.data, u.len, 1, 0, 1, &s4);
    cr_assert_eq(r4.feed_rc, 0);
    cr_assert_eq(r4.truncated, 1, "no messageStop: truncated");
    cr_assert_eq(s4.events.len, 0);
    ad_buf_free(&s4.events);
    ad_buf_free(&u);
    free(bad);
    free(in);
}

/* ---- non-stream ------------------------------------------------------------------------------ */

Test(bedrock_response, converse_fixtures)
{
    struct {
        const char *name;
        int64_t prompt, completion, cached;
    } cases[] = {
        {"resp-text", 12, 4, -1},        {"resp-tools", 120, 40, -1},
        {"resp-tool-only", 375, 36, -1}, {"resp-reasoning-cache", 130, 64, 100},
        {"resp-guardrail", 30, 0, -1},   {"resp-empty", 3, 0, -1},
    };
    const char *body = "{\"model\":\"claude\",\"messages\":[]}";
    ad_request_t r = request_for(AD_OP_CHAT, body, strlen(body));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *in = fx_slurp_as(DIR, cases[i].name, ".converse.json", &len);
        json_t *want = fx_load_json_as(DIR, cases[i].name, ".completion.json");
        ad_usage_t u = {-1, -1, -1, -1};
        json_t *got = fx_parse_ok(&ad_bedrock, &r, in, len, cases[i].name, &u);
        fx_assert_json(cases[i].name, got, want, 1);
        cr_assert_eq(u.prompt_tokens, cases[i].prompt, "%s", cases[i].name);
        cr_assert_eq(u.completion_tokens, cases[i].completion, "%s", cases[i].name);
        cr_assert_eq(u.cached_tokens, cases[i].cached, "%s", cases[i].name);
        json_decref(got);
        json_decref(want);
        free(in);
    }
}

Test(bedrock_response, not_a_converse_body)
{
    const char *bodies[] = {"", "{\"output\":", "[1,2]", "{\"message\":\"hi\"}", "{\"output\":\"text\"}"};
    const char *body = "{\"model\":\"claude\",\"messages\":[]}";
    ad_request_t r = request_for(AD_OP_CHAT, body, strlen(body));
    fx_check_refused(&ad_bedrock, &r, bodies, sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static void decode_b64_floats(const char *b64, float *out, size_t n)
{
    unsigned char raw[256];
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
    cr_assert_geq(len, (int)(4 * n));
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                     (uint32_t)raw[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
}

static json_t *embed(const char *fixture, const char *request, ad_usage_t *u)
{
    size_t len;
    char *in = fx_slurp(DIR, fixture, &len);
    ad_request_t r = request_for(AD_OP_EMBEDDINGS, request, strlen(request));
    json_t *j = fx_parse_ok(&ad_bedrock, &r, in, len, fixture, u);
    free(in);
    return j;
}

Test(bedrock_embeddings, titan_and_cohere_float_and_base64)
{
    struct {
        const char *fixture;
        int base64;
        size_t rows, dims;
        float want[2][4];
        int64_t tokens;
    } cases[] = {
        {"embed-titan.invoke.json", 0, 1, 4, {{0.5f, -0.25f, 0.125f, 0.03f}}, 3},
        {"embed-titan.invoke.json", 1, 1, 4, {{0.5f, -0.25f, 0.125f, 0.03f}}, 3},
        {"embed-cohere.invoke.json", 0, 2, 3, {{0.5f, 0.25f, -1.0f}, {2.0f, 0.0f, 0.75f}}, -1},
        {"embed-cohere.invoke.json", 1, 2, 3, {{0.5f, 0.25f, -1.0f}, {2.0f, 0.0f, 0.75f}}, -1},
        {"embed-cohere-by-type.invoke.json", 1, 1, 2, {{1.0f, -2.0f}}, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_usage_t u = {-1, -1, -1, -1};
        const char *req = cases[i].base64
                              ? "{\"model\":\"emb\",\"input\":\"x\",\"encoding_format\":\"base64\"}"
                              : "{\"model\":\"emb\",\"input\":\"x\"}";
        json_t *j = embed(cases[i].fixture, req, &u);
        json_t *data = json_object_get(j, "data");
        cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
        cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "emb");
        cr_assert_eq(json_array_size(data), cases[i].rows, "case %zu", i);
        for (size_t k = 0; k < cases[i].rows; k++) {
            json_t *row = json_array_get(data, k), *e = json_object_get(row, "embedding");
            cr_assert_eq(json_integer_value(json_object_get(row, "index")), (json_int_t)k);
            float got[4];
            if (cases[i].base64) {
                cr_assert(json_is_string(e), "case %zu: base64 string", i);
                decode_b64_floats(json_string_value(e), got, cases[i].dims);
            } else {
                cr_assert_eq(json_array_size(e), cases[i].dims, "case %zu", i);
                for (size_t d = 0; d < cases[i].dims; d++)
                    got[d] = (float)json_number_value(json_array_get(e, d));
            }
            for (size_t d = 0; d < cases[i].dims; d++)
                cr_assert_float_eq(got[d], cases[i].want[k][d], 1e-7, "case %zu row %zu dim %zu", i, k, d);
        }
        json_t *usage = json_object_get(j, "usage");
        cr_assert_eq(json_integer_value(json_object_get(usage, "prompt_tokens")),
                     cases[i].tokens > 0 ? cases[i].tokens : 0);
        cr_assert_eq(u.prompt_tokens, cases[i].tokens, "case %zu usage", i);
        json_decref(j);
    }
}

Test(bedrock_embeddings, ragged_or_foreign_bodies_fail)
{
    const char *bodies[] = {"{\"embeddings\":[[1,2],[3]]}", "{\"embeddings\":[[1,\"x\"]]}",
                            "{\"vector\":[1]}", "{\"embedding\":{\"float\":[1]}}"};
    const char *req = "{\"model\":\"emb\",\"input\":\"x\"}";
    ad_request_t r = request_for(AD_OP_EMBEDDINGS, req, strlen(req));
    fx_check_refused(&ad_bedrock, &r, bodies, sizeof(bodies) / sizeof(bodies[0]));
}

/* ---- errors and tables ---------------------------------------------------------------------- */

Test(bedrock_errors, mapping)
{
    struct {
        int status;
        const char *body, *retry_after;
        int want_status, retryable;
        int64_t retry_ms;
        const char *type, *code, *message;
    } cases[] = {
        {400, "{\"message\":\"Malformed input request: #: extraneous key [foo] is not permitted\"}", NULL,
         400, 0, -1, "invalid_request_error", NULL,
         "Malformed input request: #: extraneous key [foo] is not permitted"},
        {400, "{\"message\":\"Input is too long for requested model.\"}", NULL, 400, 0, -1,
         "invalid_request_error", "context_length_exceeded", "Input is too long for requested model."},
        {400,
         "{\"__type\":\"ValidationException\",\"message\":\"prompt is too long: 210000 tokens > 200000 "
         "maximum\"}",
         NULL, 400, 0, -1, "invalid_request_error", "context_length_exceeded", NULL},
        {400,
         "{\"__type\":\"ValidationException\",\"message\":\"The model returned the following errors: bad\"}",
         NULL, 400, 0, -1, "invalid_request_error", "ValidationException", NULL},
        {429, "{\"message\":\"Too many requests, please wait before trying again.\"}", "2", 429, 1, 2000,
         "rate_limit_error", NULL, NULL},
        {429, "{\"__type\":\"com.amazon.bedrock#ThrottlingException\",\"message\":\"Rate exceeded\"}", NULL,
         429, 1, -1, "rate_limit_error", "ThrottlingException", "Rate exceeded"},
        {429,
         "{\"__type\":\"ModelNotReadyException:http://internal.amazon.com/coral/com.amazon.bedrock/"
         "\",\"message\":"
         "\"Model is not ready\"}",
         NULL, 503, 1, -1, "api_error", "ModelNotReadyException", NULL},
        {503, "{\"code\":\"ServiceUnavailableException\",\"message\":\"Service unavailable\"}", NULL, 503, 1,
         -1, "api_error", "ServiceUnavailableException", NULL},
        {503, "{\"message\":\"Bedrock is unable to process your request.\"}", "0.5", 503, 1, 500, "api_error",
         NULL, NULL},
        {403, "{\"message\":\"You don't have access to the model with the specified model ID.\"}", NULL, 403,
         0, -1, "permission_error", NULL, NULL},
        {403, "{\"Message\":\"The security token included in the request is invalid.\"}", NULL, 403, 0, -1,
         "permission_error", NULL, "The security token included in the request is invalid."},
        {403, "{\"__type\":\"AccessDeniedException\",\"message\":\"denied\"}", NULL, 403, 0, -1,
         "permission_error", "AccessDeniedException", "denied"},
        {404, "{\"message\":\"Could not resolve the foundation model from the provided model identifier.\"}",
         NULL, 404, 0, -1, "invalid_request_error", NULL, NULL},
        {408, "{\"message\":\"Model has timed out in processing the request.\"}", NULL, 408, 1, -1,
         "api_error", NULL, NULL},
        {424, "{\"code\":\"ModelErrorException\",\"message\":\"The model failed\"}", NULL, 424, 0, -1,
         "api_error", "ModelErrorException", NULL},
        {500, "{\"message\":\"Internal server error\"}", NULL, 500, 1, -1, "api_error", NULL, NULL},
        {502, "<html><body>bad gateway</body></html>", NULL, 502, 1, -1, "api_error", NULL,
         "Bedrock returned HTTP 502: <html><body>bad gateway</body></html>"},
        {401, "", NULL, 401, 0, -1, "authentication_error", NULL, "Bedrock returned HTTP 401"},
        {429, "{\"message\":\"slow\"}", "soon", 429, 1, -1, "rate_limit_error", NULL, "slow"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_error_t e;
        ad_buf_init(&out, 64 * 1024);
        ad_bedrock.map_error(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].retry_after,
                             &out, &e);
        cr_assert_eq(e.status, cases[i].want_status, "case %zu", i);
        cr_assert_eq(e.retryable, cases[i].retryable, "case %zu", i);
        cr_assert_eq(e.retry_ms, cases[i].retry_ms, "case %zu", i);
        json_t *j = json_loadb(out.data, out.len, 0, NULL), *err = json_object_get(j, "error");
        cr_assert(json_is_object(err), "case %zu: %s", i, out.data);
        cr_assert_eq(json_object_size(err), 4, "case %zu: message, type, param, code", i);
        cr_assert(json_is_null(json_object_get(err, "param")));
        cr_assert_str_eq(json_string_value(json_object_get(err, "type")), cases[i].type, "case %zu", i);
        json_t *code = json_object_get(err, "code");
        if (cases[i].code == NULL)
            cr_assert(json_is_null(code), "case %zu: code %s", i, out.data);
        else
            cr_assert_str_eq(json_string_value(code), cases[i].code, "case %zu", i);
        const char *msg = json_string_value(json_object_get(err, "message"));
        cr_assert(msg != NULL && msg[0] != '\0', "case %zu", i);
        if (cases[i].message != NULL)
            cr_assert_str_eq(msg, cases[i].message, "case %zu", i);
        json_decref(j);
        ad_buf_free(&out);
    }
}

Test(bedrock_errors, long_messages_are_clipped_to_valid_utf8)
{
    ad_buf_t body, out;
    ad_error_t e;
    ad_buf_init(&body, 1 << 20);
    ad_buf_init(&out, 64 * 1024);
    ad_buf_puts(&body, "{\"message\":\"");
    for (int i = 0; i < 3000; i++)
        ad_buf_puts(&body, "\xc3\xa9"); /* é: a cut must not split it */
    ad_buf_puts(&body, "\"}");
    ad_bedrock.map_error(400, body.data, body.len, NULL, &out, &e);
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    cr_assert_not_null(j, "still valid JSON (and UTF-8)");
    size_t n = strlen(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    cr_assert(n <= 2000 && n >= 1998 && n % 2 == 0, "clipped to %zu bytes", n);
    json_decref(j);
    ad_buf_free(&body);
    ad_buf_free(&out);
}

Test(bedrock_tables, finish_reasons_and_exceptions)
{
    const char *map[][2] = {
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"max_tokens", "length"},
        {"model_context_window_exceeded", "length"},
        {"tool_use", "tool_calls"},
        {"guardrail_intervened", "content_filter"},
        {"content_filtered", "content_filter"},
        {"malformed_model_output", "stop"},
        {"malformed_tool_use", "stop"},
        {"something_new", "stop"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        cr_assert_str_eq(ad_bedrock_finish_reason(map[i][0]), map[i][1], "%s", map[i][0]);
    cr_assert_str_eq(ad_bedrock_finish_reason(NULL), "stop");
    const char *t = "throttlingException";
    cr_assert_eq(ad_bedrock_exception(t, strlen(t))->status, 429);
    cr_assert_null(ad_bedrock_exception("Nope", 4));
    cr_assert_null(ad_bedrock_exception("", 0));
    cr_assert_null(ad_bedrock_exception("#:", 2));
}
