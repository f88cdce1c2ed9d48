/*
 * Tests of the simple contract POST /v1/chat (tests/adapters/fixtures/surface/simple-*):
 * request filtering into an OpenAI chat request (compared as parsed JSON), validation errors,
 * the {text, provider, model, tokens_in, tokens_out, latency_ms} response and the
 * {"error":{"code","message","provider"}} error body.
 */
#include "adapters/adapter.h"
#include "adapters/surface.h"
#include "fixture_kit.h"

#define DIR "surface"

/* Parsed-JSON equality (exact). */
static void assert_json_eq(const char *got, size_t gl, const char *want, size_t wl, const char *name)
{
    json_t *w = fx_parse(name, want, wl);
    fx_assert_json_text_exact(name, got, gl, w);
    json_decref(w);
}

Test(simple_request, fixtures)
{
    static const struct {
        const char *name, *provider;
    } cases[] = {{"simple-req-full", "anthropic"}, {"simple-req-minimal", ""}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "", provider[64] = "x";
        size_t il, wl;
        char *in = fx_slurp_as(DIR, cases[i].name, ".json", &il);
        char *want = fx_slurp_as(DIR, cases[i].name, ".openai.json", &wl);
        ad_buf_t out;
        ad_buf_init(&out, 1 << 16);
        cr_assert_eq(ad_simple_in_request(in, il, &out, provider, sizeof(provider), err, sizeof(err)), 0,
                     "%s: %s", cases[i].name, err);
        assert_json_eq(out.data, out.len, want, wl, cases[i].name);
        cr_assert_str_eq(provider, cases[i].provider);
        ad_request_t r;
        cr_assert_eq(ad_request_scan(AD_OP_CHAT, out.data, out.len, &r, NULL), 0);
        cr_assert_eq(r.stream, 0);
        ad_buf_free(&out);
        free(in);
        free(want);
    }
}

Test(simple_request, validation_errors)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"", "not a valid JSON object"},
        {"\"text\"", "not a valid JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model is required"},
        {"{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model is required"},
        {"{\"model\":\"m\"}", "messages must be a non-empty array"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages must be a non-empty array"},
        {"{\"model\":\"m\",\"messages\":\"hi\"}", "messages must be a non-empty array"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
         "messages[0] must be an object with a string role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"provider\":3}",
         "provider must be a string"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"provider\":"
         "\"a-provider-name-that-is-longer-than-the-caller-buffer-allows\"}",
         "provider name is too long"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"0.5\"}",
         "temperature must be a number"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":true}",
         "top_p must be a number"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
         "max_tokens must be an integer of at least 1"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2.5}",
         "max_tokens must be an integer of at least 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 1 << 16);
        char err[256] = "", provider[32];
        cr_assert_eq(ad_simple_in_request(cases[i].body, strlen(cases[i].body), &out, provider,
                                          sizeof(provider), err, sizeof(err)),
                     -1, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].msg) != NULL, "case %zu: got \"%s\"", i, err);
        cr_assert_eq(out.len, 0, "case %zu", i);
        ad_buf_free(&out);
    }
}

Test(simple_response, fixture_and_fallbacks)
{
    size_t il, wl;
    char *in = fx_slurp(DIR, "simple-resp.openai.json", &il);
    char *want = fx_slurp(DIR, "simple-resp.json", &wl);
    ad_buf_t out;
    ad_buf_init(&out, 1 << 16);
    cr_assert_eq(ad_simple_out_response(in, il, "openai", "gpt-4o-mini", 431, &out), 0);
    assert_json_eq(out.data, out.len, want, wl, "simple-resp");
    free(in);
    free(want);

    static const struct {
        const char *body, *model, *want;
    } cases[] = {
        {"{\"model\":\"up\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_"
         "calls\":[]}}]}",
         NULL,
         "{\"text\":\"\",\"provider\":\"p\",\"model\":\"up\",\"tokens_in\":0,\"tokens_out\":0,\"latency_ms\":"
         "7}"},
        {"{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
         "\"text\":\"b\"}]}}],"
         "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
         "m",
         "{\"text\":\"ab\",\"provider\":\"p\",\"model\":\"m\",\"tokens_in\":3,\"tokens_out\":4,\"latency_"
         "ms\":7}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_reset(&out);
        cr_assert_eq(
            ad_simple_out_response(cases[i].body, strlen(cases[i].body), "p", cases[i].model, 7, &out), 0);
        cr_assert_str_eq(out.data, cases[i].want, "case %zu", i);
    }
    ad_buf_reset(&out);
    cr_assert_eq(ad_simple_out_response("{\"choices\":[]}", 14, "p", "m", 1, &out), -1);
    cr_assert_eq(ad_simple_out_response("nope", 4, "p", "m", 1, &out), -1);
    cr_assert_eq(out.len, 0);
    ad_buf_free(&out);
}

Test(simple_errors, code_message_provider)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"param\":null,\"code\":"
         "\"rate_limit_exceeded\"}}",
         "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit "
         "reached\",\"provider\":\"openai\"}}"},
        {"{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
         "{\"error\":{\"code\":\"server_error\",\"message\":\"boom\",\"provider\":\"openai\"}}"},
        {"{\"error\":{\"message\":\"x\",\"code\":429}}",
         "{\"error\":{\"code\":\"api_error\",\"message\":\"x\",\"provider\":\"openai\"}}"},
        {"{\"error\":\"plain\"}",
         "{\"error\":{\"code\":\"api_error\",\"message\":\"plain\",\"provider\":\"openai\"}}"},
        {"<html>",
         "{\"error\":{\"code\":\"api_error\",\"message\":\"upstream error\",\"provider\":\"openai\"}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf_t out;
        ad_buf_init(&out, 4096);
        cr_assert_eq(ad_simple_error_body(cases[i].body, strlen(cases[i].body), "openai", &out), 0);
        cr_assert_str_eq(out.data, cases[i].want, "case %zu", i);
        ad_buf_free(&out);
    }
    ad_buf_t out;
    ad_buf_init(&out, 10);
    cr_assert_eq(ad_simple_error_body(cases[0].body, strlen(cases[0].body), NULL, &out), -1);
    cr_assert_eq(out.len, 0);
    ad_buf_free(&out);
}
