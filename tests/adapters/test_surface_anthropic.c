/*
 * Fixture tests of the Anthropic Messages surface (tests/adapters/fixtures/surface):
 *  - req-*.anthropic.json → the OpenAI chat request (*.openai.json), compared as parsed JSON;
 *  - request validation errors (table);
 *  - resp-*.openai.json → the Anthropic message (*.anthropic.json), compared as parsed JSON;
 *  - stream-*.chunks (one OpenAI chunk per line; "[DONE]" = end of stream; "PING" = a keep-alive;
 *    "ABORT <json>" = an error the core raises, e.g. for a truncated upstream) → the exact Anthropic SSE
 * bytes
 *    (*.sse), fed chunk by chunk to the encoder and also as OpenAI SSE bytes through the openai
 *    adapter split at every offset and byte by byte (the path the core takes);
 *  - every produced stream is checked against Anthropic's event rules (anthropic_sse_check.h);
 *  - error bodies and the status / type / finish_reason tables.
 */
#include "adapters/adapter.h"
#include "adapters/surface.h"
#include "fixture_kit.h"
#include "tests/adapters/anthropic_sse_check.h"

#define DIR "surface"

/* Parsed-JSON equality (exact). */
static void assert_json_eq(const char *got, size_t gl, const char *want, size_t wl, const char *name)
{
    json_t *w = fx_parse(name, want, wl);
    fx_assert_json_text_exact(name, got, gl, w);
    json_decref(w);
}

/* ---- requests ------------------------------------------------------------------------------ */

Test(anthropic_request, fixtures)
{
    const char *cases[] = {"req-system-string",    "req-multiturn-blocks", "req-images",
                           "req-tools-roundtrip",  "req-tool-choice-any",  "req-tool-choice-tool",
                           "req-tool-choice-none", "req-server-tools-only"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        size_t il, wl;
        char *in = fx_slurp_as(DIR, cases[i], ".anthropic.json", &il);
        char *want = fx_slurp_as(DIR, cases[i], ".openai.json", &wl);
        ad_buf_t out;
        ad_buf_init(&out, 1 << 20);
        cr_assert_eq(ad_anthropic_in_request(in, il, &out, err, sizeof(err)), 0, "%s: %s", cases[i], err);
        assert_json_eq(out.data, out.len, want, wl, cases[i]);
        /* the result is a request the core can scan: model, stream and max_tokens on top */
        ad_request_t r;
        cr_assert_eq(ad_request_scan(AD_OP_CHAT, out.data, out.len, &r, NULL), 0, "%s", cases[i]);
        cr_assert_eq(r.model.type, AD_J_STRING);
        cr_assert_eq(r.messages.type, AD_J_ARRAY);
        cr_assert_eq(r.include_usage, r.stream, "%s: streams ask for usage", cases[i]);
        ad_buf_free(&out);
        free(in);
        free(want);
    }
}

Test(anthropic_request, arguments_are_compact_json_text)
{
    const char *in =
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":0.1,\"b\":[1,2.5e-7,true,null],"
        "\"s\":\"x\\ny\\u0000\"}}]}],\"temperature\":1}";
    ad_buf_t out;
    ad_buf_init(&out, 4096);
    char err[128];
    cr_assert_eq(ad_anthropic_in_request(in, strlen(in), &out, err, sizeof(err)), 0, "%s", err);
    cr_assert(strstr(out.data, "\"arguments\":\"{\\\"a\\\":0.1,\\\"b\\\":[1,2.5e-07,true,null],"
                               "\\\"s\\\":\\\"x\\\\ny\\\\u0000\\\"}\"") != NULL,
              "%s", out.data);
    cr_assert(strstr(out.data, "\"temperature\":1,") != NULL ||
                  strstr(out.data, "\"temperature\":1}") != NULL,
              "integers stay integers: %s", out.data);
    ad_buf_free(&out);
}

Test(anthropic_request, validation_errors)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"not json", "not a valid JSON object"},
        {"[1,2]", "not a valid JSON object"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model: Field required"},
        {"{\"model\":7,\"max_tokens\":5,\"messages\":[]}", "model: Field required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Input should be an integer"},
        {"{\"model\":\"m\",\"max_tokens\":\"9\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Input should be an integer"},
        {"{\"model\":\"m\",\"max_tokens\":9}", "messages: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":{}}", "messages: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[]}", "at least one message"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[\"hi\"]}",
         "messages.0: Input should be a valid object"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
         "messages.0.role: Input should be 'user' or 'assistant'"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":3}]}",
         "messages.0.content: Input should be a valid string or list"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]"
         "}",
         "messages.0.content.0.type: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}"
         "]}]}",
         "messages.0.content.0.text: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"b\",\"input\":{}}]}]}",
         "tool_use blocks are only allowed in assistant turns"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":"
         "\"assistant\","
         "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"a\",\"content\":\"r\"}]}]}",
         "messages.1.content.0: tool_result blocks are only allowed in user turns"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"tool_result\",\"content\":\"r\"}]}]}",
         "messages.0.content.0.tool_use_id: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_use\",\"name\":\"b\",\"input\":{}}]}]}",
         "needs a string id and name"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
         "messages.0.content.0.source: an image source must be of type base64 or url"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\"}}]}]}",
         "messages.0.content.0.source.data: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"system\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
         "}",
         "system: Input should be a valid string"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"system\":[{\"type\":\"text\"}],\"messages\":[{\"role\":"
         "\"user\","
         "\"content\":\"x\"}]}",
         "system.0.text: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"temperature\":\"hot\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "temperature: Input should be a valid number"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"stop_sequences\":\"END\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "stop_sequences: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"stop_sequences\":[1],\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "stop_sequences.0: Input should be a valid string"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\",\"content\":"
         "\"x\"}]}",
         "stream: Input should be a valid boolean"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tools\":{},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
         "}",
         "tools: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tools\":[{\"name\":\"f\"}],\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "tools.0.input_schema: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tools\":[{\"input_schema\":{}}],\"messages\":[{\"role\":"
         "\"user\","
         "\"content\":\"x\"}]}",
         "tools.0.name: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tool_choice\":{\"type\":\"sometimes\"},\"messages\":[{\"role\":"
         "\"user\","
         "\"content\":\"x\"}]}",
         "tool_choice.type: Input should be"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tool_choice\":{\"type\":\"tool\"},\"messages\":[{\"role\":"
         "\"user\","
         "\"content\":\"x\"}]}",
         "tool_choice.name: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":9,\"tool_choice\":\"auto\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "tool_choice: Input should be a valid object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 1 << 16);
        ad_buf_puts(&out, "keep");
        char err[256] = "";
        cr_assert_eq(ad_anthropic_in_request(cases[i].body, strlen(cases[i].body), &out, err, sizeof(err)),
                     -1, "case %zu accepted: %s", i, out.data);
        cr_assert(strstr(err, cases[i].msg) != NULL, "case %zu: got \"%s\", want \"%s\"", i, err,
                  cases[i].msg);
        cr_assert_str_eq(out.data, "keep", "case %zu: output touched", i);
        ad_buf_free(&out);
    }
}

/* The core's scanner takes AD_JSON_MAX_DEPTH levels; deeper requests are refused by name here. */
static char *nested_schema_request(int levels)
{
    ad_buf_t b;
    ad_buf_init(&b, 1 << 20);
    ad_buf_puts(&b, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                    "\"tools\":[{\"name\":\"f\",\"input_schema\":");
    for (int i = 0; i < levels; i++)
        ad_buf_puts(&b, "{\"a\":");
    ad_buf_puts(&b, "1");
    for (int i = 0; i < levels; i++)
        ad_buf_puts(&b, "}");
    ad_buf_puts(&b, "}]}");
    return b.data;
}

Test(anthropic_request, nesting_the_core_cannot_scan_is_refused)
{
    /* output nesting = levels + 4 (body, tools, tool, function, parameters - input_schema) */
    static const struct {
        int levels, ok;
    } cases[] = {{AD_JSON_MAX_DEPTH - 4, 1}, {AD_JSON_MAX_DEPTH - 3, 0}, {1000, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *in = nested_schema_request(cases[i].levels), err[128] = "";
        ad_buf_t out;
        ad_buf_init(&out, 1 << 20);
        int rc = ad_anthropic_in_request(in, strlen(in), &out, err, sizeof(err));
        cr_assert_eq(rc, cases[i].ok ? 0 : -1, "levels %d: %s", cases[i].levels, err);
        if (cases[i].ok) {
            ad_request_t r;
            cr_assert_eq(ad_request_scan(AD_OP_CHAT, out.data, out.len, &r, NULL), 0);
        } else {
            cr_assert(strstr(err, "deeper than") != NULL, "%s", err);
        }
        ad_buf_free(&out);
        free(in);
    }
}

Test(anthropic_request, ceiling_is_an_error_and_leaves_output_alone)
{
    size_t il;
    char *in = fx_slurp(DIR, "req-tools-roundtrip.anthropic.json", &il);
    ad_buf_t out;
    ad_buf_init(&out, 300);
    char err[128] = "";
    cr_assert_eq(ad_anthropic_in_request(in, il, &out, err, sizeof(err)), -1);
    cr_assert(strstr(err, "too large") != NULL, "%s", err);
    cr_assert_eq(out.len, 0);
    ad_buf_free(&out);
    free(in);
}

/* ---- non-stream responses ------------------------------------------------------------------ */

Test(anthropic_response, fixtures)
{
    static const struct {
        const char *name, *model;
    } cases[] = {
        {"resp-text", "claude-sonnet-4-5"},
        {"resp-tools", "claude-sonnet-4-5"},
        {"resp-text-tools-stop", NULL},
        {"resp-length-nousage", "claude-haiku-4-5"},
        {"resp-reasoning-filter", "claude-sonnet-4-5"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t il, wl;
        char *in = fx_slurp_as(DIR, cases[i].name, ".openai.json", &il);
        char *want = fx_slurp_as(DIR, cases[i].name, ".anthropic.json", &wl);
        ad_buf_t out;
        ad_buf_init(&out, 1 << 20);
        cr_assert_eq(ad_anthropic_in_response(in, il, cases[i].model, &out), 0, "%s", cases[i].name);
        assert_json_eq(out.data, out.len, want, wl, cases[i].name);
        ad_buf_free(&out);
        free(in);
        free(want);
    }
}

Test(anthropic_response, rejects_what_is_not_a_completion)
{
    const char *bad[] = {
        "", "{", "[]", "{\"choices\":[]}", "{\"choices\":[{\"index\":0}]}", "{\"error\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        cr_assert_eq(ad_anthropic_in_response(bad[i], strlen(bad[i]), "m", &out), -1, "case %zu", i);
        cr_assert_eq(out.len, 0);
        ad_buf_free(&out);
    }
}

/* ---- streams ------------------------------------------------------------------------------- */

typedef struct stream_case {
    const char *name, *model, *msg_id;
} stream_case_t;

static const stream_case_t stream_cases[] = {
    {"stream-text", "claude-sonnet-4-5", "msg_01Tollgate"},
    {"stream-parallel-tools", "claude-sonnet-4-5", "01Tollgate"},
    {"stream-reasoning", "claude-sonnet-4-5", "msg_01Tollgate"},
    {"stream-error", "claude-sonnet-4-5", "msg_01Tollgate"},
    {"stream-truncated", "claude-sonnet-4-5", "msg_01Tollgate"},
    {"stream-azure-nousage", NULL, NULL},
    {"stream-compat-tools", "claude-sonnet-4-5", "msg_01Tollgate"},
};

/* Feeds the chunk file line by line straight into the encoder. */
static void encode_lines(const stream_case_t *c, const char *in, size_t il, ad_buf_t *out)
{
    ad_anthropic_enc_t e;
    ad_anthropic_enc_init(&e, c->model, c->msg_id);
    for (const char *p = in; p < in + il;) {
        const char *nl = memchr(p, '\n', (size_t)(in + il - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(in + il - p);
        if (n == 6 && memcmp(p, "[DONE]", 6) == 0)
            cr_assert_eq(ad_anthropic_enc_finish(&e, out), 0);
        else if (n == 4 && memcmp(p, "PING", 4) == 0)
            cr_assert_eq(ad_anthropic_enc_ping(&e, out), 0);
        else if (n > 6 && memcmp(p, "ABORT ", 6) == 0)
            cr_assert_eq(ad_anthropic_enc_abort(&e, p + 6, n - 6, out), 0);
        else if (n > 0)
            cr_assert_geq(ad_anthropic_enc_chunk(&e, p, n, out), 0, "%s: chunk %.*s", c->name, (int)n, p);
        p += n + 1;
    }
    cr_assert_eq(ad_anthropic_enc_finish(&e, out), 0); /* the core's end of stream: idempotent */
    ad_anthropic_enc_free(&e);
}

/* The core's path: upstream SSE bytes → openai adapter events → encoder. */
typedef struct pipe {
    ad_anthropic_enc_t enc;
    ad_buf_t *out;
} pipe_t;

static int on_ev(void *ud, const ad_event_t *ev)
{
    pipe_t *p = ud;
    if (ev->type == AD_EV_CHUNK)
        return ad_anthropic_enc_chunk(&p->enc, ev->data, ev->len, p->out) < 0 ? -1 : 0;
    if (ev->type == AD_EV_DONE)
        return ad_anthropic_enc_finish(&p->enc, p->out);
    if (ev->type == AD_EV_ERROR)
        return ad_anthropic_enc_abort(&p->enc, ev->data, ev->len, p->out);
    return ad_anthropic_enc_ping(&p->enc, p->out); /* AD_EV_COMMENT: the upstream's keep-alive */
}

/* The chunk file as the upstream would send it: "data: <chunk>\n\n", PING as a keep-alive comment. */
static void to_sse(const char *in, size_t il, ad_buf_t *sse, ad_buf_t *abort_json)
{
    for (const char *p = in; p < in + il;) {
        const char *nl = memchr(p, '\n', (size_t)(in + il - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(in + il - p);
        if (n > 6 && memcmp(p, "ABORT ", 6) == 0)
            ad_buf_append(abort_json, p + 6, n - 6);
        else if (n == 4 && memcmp(p, "PING", 4) == 0)
            ad_buf_puts(sse, ": keep-alive\n\n");
        else if (n > 0)
            ad_buf_appendf(sse, "data: %.*s\n\n", (int)n, p);
        p += n + 1;
    }
}

static void encode_sse(const stream_case_t *c, const ad_buf_t *sse, const ad_buf_t *abort_json, size_t split,
                       size_t step, ad_buf_t *out)
{
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.stream = r.include_usage = 1; /* what ad_anthropic_in_request asks for */
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    pipe_t p = {.out = out};
    ad_anthropic_enc_init(&p.enc, c->model, c->msg_id);
    ad_openai.stream_init(&st, &r);
    st.emit = on_ev;
    st.emit_ud = &p;
    if (step > 0) {
        for (size_t i = 0; i < sse->len; i += step)
            cr_assert_eq(ad_openai.stream_feed(&st, sse->data + i, sse->len - i < step ? sse->len - i : step),
                         0);
    } else {
        cr_assert_eq(ad_openai.stream_feed(&st, sse->data, split), 0);
        cr_assert_eq(ad_openai.stream_feed(&st, sse->data + split, sse->len - split), 0);
    }
    if (ad_openai.stream_finish(&st) && !st.saw_error) /* truncated: the core raises its own error */
        cr_assert_eq(ad_anthropic_enc_abort(&p.enc, abort_json->data, abort_json->len, out), 0);
    cr_assert_eq(ad_anthropic_enc_finish(&p.enc, out), 0);
    ad_anthropic_enc_free(&p.enc);
    ad_stream_free(&st);
}

static void check_stream(const stream_case_t *c)
{
    char why[256];
    size_t il, wl;
    char *in = fx_slurp_as(DIR, c->name, ".chunks", &il);
    char *want = fx_slurp_as(DIR, c->name, ".sse", &wl);
    cr_assert_eq(asc_check(want, wl, 1, 1, why, sizeof(why)), 0, "%s: fixture breaks the rules: %s", c->name,
                 why);

    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    encode_lines(c, in, il, &out);
    cr_assert_eq(out.len, wl, "%s: got\n%s", c->name, out.data);
    cr_assert_eq(memcmp(out.data, want, wl), 0, "%s: got\n%s", c->name, out.data);

    ad_buf_t sse, abort_json;
    ad_buf_init(&sse, 1 << 20);
    ad_buf_init(&abort_json, 4096);
    to_sse(in, il, &sse, &abort_json);
    for (size_t split = 0; split <= sse.len + 1; split++) {
        ad_buf_reset(&out);
        if (split == sse.len + 1)
            encode_sse(c, &sse, &abort_json, 0, 1, &out);
        else
            encode_sse(c, &sse, &abort_json, split, 0, &out);
        cr_assert_eq(out.len, wl, "%s split %zu: got\n%s", c->name, split, out.data);
        cr_assert_eq(memcmp(out.data, want, wl), 0, "%s split %zu: got\n%s", c->name, split, out.data);
    }
    ad_buf_free(&sse);
    ad_buf_free(&abort_json);
    ad_buf_free(&out);
    free(in);
    free(want);
}

Test(anthropic_stream, text_only)
{
    check_stream(&stream_cases[0]);
}

Test(anthropic_stream, text_then_two_parallel_tool_calls_with_fragmented_arguments)
{
    check_stream(&stream_cases[1]);
}

Test(anthropic_stream, reasoning_then_text_usage_on_the_finish_chunk)
{
    check_stream(&stream_cases[2]);
}

Test(anthropic_stream, error_mid_stream)
{
    check_stream(&stream_cases[3]);
}

Test(anthropic_stream, truncated_upstream_ends_with_the_cores_error)
{
    check_stream(&stream_cases[4]);
}

Test(anthropic_stream, azure_preamble_no_usage_id_and_model_from_chunks)
{
    check_stream(&stream_cases[5]);
}

Test(anthropic_stream, whole_tool_calls_without_index_and_stop_with_calls)
{
    check_stream(&stream_cases[6]);
}

static const char CHUNK_TEXT[] =
    "{\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}";

Test(anthropic_stream, empty_stream_is_still_a_whole_message)
{
    ad_anthropic_enc_t e;
    ad_anthropic_enc_init(&e, "claude-x", NULL);
    ad_buf_t out;
    ad_buf_init(&out, 1 << 16);
    cr_assert_eq(ad_anthropic_enc_finish(&e, &out), 0);
    const char *want =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_tollgate\","
        "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],"
        "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":0}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    cr_assert_str_eq(out.data, want);
    size_t len = out.len;
    cr_assert_eq(ad_anthropic_enc_finish(&e, &out), 0);
    cr_assert_eq(ad_anthropic_enc_chunk(&e, CHUNK_TEXT, strlen(CHUNK_TEXT), &out), 0);
    cr_assert_eq(ad_anthropic_enc_abort(&e, "{}", 2, &out), 0);
    cr_assert_eq(ad_anthropic_enc_ping(&e, &out), 0);
    cr_assert_eq(out.len, len, "nothing after message_stop");
    ad_anthropic_enc_free(&e);
    ad_buf_free(&out);
}

Test(anthropic_stream, bad_chunk_and_full_buffer_leave_output_and_state_alone)
{
    ad_anthropic_enc_t e;
    ad_anthropic_enc_init(&e, "m", "msg_1");
    ad_buf_t out;
    ad_buf_init(&out, 64);
    cr_assert_eq(ad_anthropic_enc_chunk(&e, "{\"id\":", 6, &out), -1);
    cr_assert_eq(ad_anthropic_enc_chunk(&e, "[]", 2, &out), -1);
    cr_assert_eq(ad_anthropic_enc_chunk(&e, CHUNK_TEXT, strlen(CHUNK_TEXT), &out), -1,
                 "message_start does not fit");
    cr_assert_eq(out.len, 0);
    cr_assert_eq(ad_anthropic_enc_finish(&e, &out), -1);
    cr_assert_eq(out.len, 0);
    out.max = 1 << 16; /* with room, the same calls give the whole stream */
    cr_assert_eq(ad_anthropic_enc_chunk(&e, CHUNK_TEXT, strlen(CHUNK_TEXT), &out), 0);
    cr_assert_eq(ad_anthropic_enc_finish(&e, &out), 0);
    char why[256];
    cr_assert_eq(asc_check(out.data, out.len, 1, 1, why, sizeof(why)), 0, "%s", why);
    cr_assert(strstr(out.data, "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}") != NULL,
              "%s", out.data);
    ad_anthropic_enc_free(&e);
    ad_buf_free(&out);
}

Test(anthropic_stream, interleaved_tool_fragments_go_to_their_own_block)
{
    const char *chunks[] = {
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\","
        "\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":\"}},{\"index\":1,\"id\":\"b\",\"type\":"
        "\"function\","
        "\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"y\\\":\"}}]}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
        "\"arguments\":"
        "\"1}\"}},{\"index\":1,\"function\":{\"arguments\":\"2}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
    };
    ad_anthropic_enc_t e;
    ad_anthropic_enc_init(&e, "m", "msg_1");
    ad_buf_t out;
    ad_buf_init(&out, 1 << 16);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(ad_anthropic_enc_chunk(&e, chunks[i], strlen(chunks[i]), &out), 0);
    cr_assert_eq(ad_anthropic_enc_finish(&e, &out), 0);
    char why[256];
    cr_assert_eq(asc_check(out.data, out.len, 0, 1, why, sizeof(why)), 0, "lenient: %s", why);
    cr_assert(strstr(out.data,
                     "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
                     "\"partial_json\":\"1}\"}}") != NULL,
              "%s", out.data);
    cr_assert(strstr(out.data, "\"stop_reason\":\"tool_use\"") != NULL);
    ad_anthropic_enc_free(&e);
    ad_buf_free(&out);
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(anthropic_errors, body_type_by_status)
{
    static const struct {
        int status;
        const char *body, *type, *message;
    } cases[] = {
        {400,
         "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\",\"type\":"
         "\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}",
         "invalid_request_error", "This model's maximum context length is 128000 tokens."},
        {401,
         "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"code\":"
         "\"invalid_api_key\"}}",
         "authentication_error", "Incorrect API key provided"},
        {402, "{\"error\":{\"message\":\"pay\"}}", "billing_error", "pay"},
        {403, "{\"error\":{\"message\":\"region\"}}", "permission_error", "region"},
        {404, "{\"error\":{\"message\":\"The model `x` does not exist\",\"type\":\"invalid_request_error\"}}",
         "not_found_error", "The model `x` does not exist"},
        {413, "{\"error\":{\"message\":\"too big\"}}", "request_too_large", "too big"},
        {422, "{\"error\":\"unprocessable\"}", "invalid_request_error", "unprocessable"},
        {429,
         "{\"error\":{\"message\":\"Rate limit "
         "reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}",
         "rate_limit_error", "Rate limit reached"},
        {500, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}", "api_error", "boom"},
        {502, "<html>bad gateway</html>", "api_error", "HTTP 502"},
        {503, "", "overloaded_error", "HTTP 503"},
        {504, "{\"message\":\"bare\",\"type\":\"x\"}", "api_error", "bare"},
        {529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
         "overloaded_error", "Overloaded"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        cr_assert_eq(ad_anthropic_error_body(cases[i].status, cases[i].body, strlen(cases[i].body), &out), 0);
        json_t *j = fx_parse("error body", out.data, out.len);
        cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
        json_t *e = json_object_get(j, "error");
        cr_assert_eq(json_object_size(e), 2, "case %zu: %s", i, out.data);
        cr_assert_str_eq(json_string_value(json_object_get(e, "type")), cases[i].type, "case %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(e, "message")), cases[i].message, "case %zu", i);
        json_decref(j);
        ad_buf_free(&out);
    }
}

Test(anthropic_errors, stream_error_event_type_from_openai_type_and_code)
{
    static const struct {
        const char *body, *type;
    } cases[] = {
        {"{\"error\":{\"message\":\"m\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
         "api_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}",
         "rate_limit_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}",
         "rate_limit_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\",\"code\":\"model_not_found\"}}",
         "not_found_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\",\"code\":\"context_length_"
         "exceeded\"}}",
         "invalid_request_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"overloaded_error\"}}", "overloaded_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"api_error\",\"code\":\"service_unavailable\"}}",
         "overloaded_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"api_error\",\"code\":\"upstream_timeout\"}}", "api_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"authentication_error\",\"code\":\"invalid_api_key\"}}",
         "authentication_error"},
        {"{\"error\":{\"message\":\"m\",\"type\":\"permission_error\",\"code\":\"forbidden\"}}",
         "permission_error"},
        {"{\"error\":{\"message\":\"m\",\"code\":\"request_too_large\"}}", "request_too_large"},
        {"{\"error\":{\"message\":\"m\",\"code\":\"DeploymentNotFound\"}}", "api_error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        cr_assert_eq(ad_anthropic_enc_error(cases[i].body, strlen(cases[i].body), &out), 0);
        char want[256];
        snprintf(want, sizeof(want),
                 "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"m\"}}\n\n",
                 cases[i].type);
        cr_assert_str_eq(out.data, want, "case %zu", i);
        ad_buf_free(&out);
    }
    ad_buf_t out;
    ad_buf_init(&out, 4096);
    cr_assert_eq(ad_anthropic_enc_error("garbage", 7, &out), 0);
    cr_assert_str_eq(out.data, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                               "\"message\":\"upstream error\"}}\n\n");
    ad_buf_reset(&out);
    out.max = 20;
    cr_assert_eq(ad_anthropic_enc_error(cases[0].body, strlen(cases[0].body), &out), -1);
    cr_assert_eq(out.len, 0);
    ad_buf_free(&out);
}

Test(anthropic_errors, status_table)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {{400, "invalid_request_error"},
                 {401, "authentication_error"},
                 {403, "permission_error"},
                 {404, "not_found_error"},
                 {405, "invalid_request_error"},
                 {413, "request_too_large"},
                 {429, "rate_limit_error"},
                 {500, "api_error"},
                 {502, "api_error"},
                 {503, "overloaded_error"},
                 {504, "api_error"},
                 {529, "overloaded_error"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_str_eq(ad_anthropic_error_type(cases[i].status), cases[i].type, "status %d",
                         cases[i].status);
}

Test(anthropic_mapping, stop_reasons)
{
    static const struct {
        const char *finish;
        int calls;
        const char *want;
    } cases[] = {
        {"stop", 0, "end_turn"},
        {"stop", 1, "tool_use"},
        {"length", 0, "max_tokens"},
        {"length", 1, "max_tokens"},
        {"tool_calls", 1, "tool_use"},
        {"function_call", 0, "tool_use"},
        {"content_filter", 0, "refusal"},
        {NULL, 0, "end_turn"},
        {"insufficient_system_resource", 0, "end_turn"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_str_eq(ad_anthropic_stop_reason(cases[i].finish, cases[i].calls), cases[i].want, "case %zu",
                         i);
}
