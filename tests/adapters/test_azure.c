/*
 * Fixture tests of the Azure OpenAI adapter (tests/adapters/fixtures/azure, providers.md §2):
 *  - <case>.request.json → <case>.upstream.json: dated and v1 URLs, api-key, the deployment as
 *    model, include_usage spliced only where the API version takes stream_options;
 *  - stream-*.sse → stream-*.events and the exact client bytes stream-*.relay, at every split and
 *    byte by byte: the prompt-filter chunk dropped, choices without delta removed or given one,
 *    usage learned and hidden when not asked, errors and truncation;
 *  - non-stream bodies forwarded with their usage read; the error normalisation table.
 */
#include "fixture_kit.h"

#define DIR "azure"

static const ad_deployment_t prod = {.provider = "azure",
                                     .upstream_model = "gpt-4o-prod",
                                     .api_base = "https://my-resource.openai.azure.com",
                                     .api_key = "azure-key-1"};

Test(azure_request, fixtures)
{
    const ad_deployment_t preview = {.provider = "azure",
                                     .upstream_model = "gpt-4o-prod",
                                     .api_base = "https://my-resource.openai.azure.com",
                                     .api_key = "azure-key-1",
                                     .api_version = "2025-01-01-preview"};
    const ad_deployment_t legacy = {.provider = "azure",
                                    .upstream_model = "gpt-35-turbo",
                                    .api_base = "https://legacy.openai.azure.com/",
                                    .api_key = "azure-key-2",
                                    .api_version = "2024-02-01"};
    const ad_deployment_t v1 = {.provider = "azure",
                                .upstream_model = "gpt-4.1-mini",
                                .api_base = "https://my-resource.openai.azure.com/openai/v1",
                                .api_key = "azure-key-1",
                                .api_version = "2024-10-21"};
    const ad_deployment_t v1_preview = {.provider = "azure",
                                        .upstream_model = "gpt-4.1-mini",
                                        .api_base = "https://my-resource.openai.azure.com",
                                        .api_key = "azure-key-1",
                                        .api_version = "preview"};
    const ad_deployment_t odd = {.provider = "azure",
                                 .upstream_model = "team a/gpt-4o",
                                 .api_base = "https://my-resource.openai.azure.com/openai"};
    const ad_deployment_t embed = {.provider = "azure",
                                   .upstream_model = "text-embedding-3-small",
                                   .api_base = "https://my-resource.openai.azure.com",
                                   .api_key = "azure-key-1"};
    const struct {
        const char *name;
        ad_op_t op;
        const ad_deployment_t *dep;
    } cases[] = {
        {"chat-dated", AD_OP_CHAT, &prod},
        {"chat-stream-tools", AD_OP_CHAT, &preview},
        {"chat-stream-old-version", AD_OP_CHAT, &legacy},
        {"chat-v1", AD_OP_CHAT, &v1},
        {"chat-v1-preview", AD_OP_CHAT, &v1_preview},
        {"chat-encoded-deployment", AD_OP_CHAT, &odd},
        {"embed", AD_OP_EMBEDDINGS, &embed},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fx_check_build(&ad_azure, DIR, cases[i].name, cases[i].op, cases[i].dep);
}

Test(azure_request, splice_keeps_the_client_bytes)
{
    const char *body = "{\"model\":\"gpt-4o\",  "
                       "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\"}],\"stream\":true}";
    ad_request_t r = fx_request(AD_OP_CHAT, body, strlen(body));
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 16);
    char err[128];
    cr_assert_eq(ad_azure.build_request(&r, &prod, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.body.data,
                     "{\"stream_options\":{\"include_usage\":true},\"model\":\"gpt-4o-prod\",  "
                     "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\"}],\"stream\":true}");
    ad_http_request_free(&h);
}

Test(azure_request, refusals_and_registry)
{
    const ad_deployment_t no_base = {.provider = "azure", .upstream_model = "d", .api_key = "k"};
    const char *body = "{\"model\":\"m\",\"messages\":[]}";
    fx_check_build_fails(&ad_azure, AD_OP_CHAT, body, &no_base, "api_base");
    cr_assert_eq(ad_adapter_find("azure"), &ad_azure);
    cr_assert_eq(ad_azure.caps & AD_CAP_PASSTHROUGH, 0u, "URLs and headers are the adapter's");
}

/* ---- streams ------------------------------------------------------------------------------- */

Test(azure_stream, fixtures_at_every_split)
{
    const fx_stream_case_t cases[] = {
        {"stream-filter.sse", "stream-filter.events", "stream-filter.relay", 1, 21, 9, 0},
        {"stream-filter-hidden-usage.sse", "stream-filter-hidden-usage.events",
         "stream-filter-hidden-usage.relay", 0, 21, 9, 0},
        {"stream-async-filter.sse", "stream-async-filter.events", "stream-async-filter.relay", 1, 21, 9, 0},
        {"stream-content-filter.sse", "stream-content-filter.events", "stream-content-filter.relay", 1, 21, 9,
         0},
        {"stream-tools.sse", "stream-tools.events", "stream-tools.relay", 1, 21, 9, 0},
        {"stream-error.sse", "stream-error.events", "stream-error.relay", 1, -1, -1, 0},
        {"stream-truncated.sse", "stream-truncated.events", "stream-truncated.relay", 1, -1, -1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fx_check_stream(&ad_azure, DIR, &cases[i]);
}

Test(azure_stream, no_choice_without_delta_reaches_the_client)
{
    size_t len;
    char *in = fx_slurp(DIR, "stream-async-filter.sse", &len);
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.stream = 1;
    fx_run_t run;
    fx_run_stream(&ad_azure, &r, in, len, len / 3, 0, &run);
    const char *p = run.sink.relay.data;
    size_t events = 0;
    while ((p = strstr(p, "data: {")) != NULL) {
        const char *end = p + 6 + strcspn(p + 6, "\r\n"); /* one-line data, CRLF input */
        json_t *chunk = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
        cr_assert_not_null(chunk);
        json_t *choices = json_object_get(chunk, "choices");
        for (size_t i = 0; i < json_array_size(choices); i++)
            cr_assert(json_is_object(json_object_get(json_array_get(choices, i), "delta")));
        cr_assert_neq(json_array_size(choices) + (json_object_get(chunk, "usage") != NULL), 0,
                      "no chunk with empty choices and no usage");
        json_decref(chunk);
        events++;
        p = end;
    }
    cr_assert_eq(events, 3, "role, text, finish (the usage chunk is hidden: not asked)");
    fx_run_free(&run);
    free(in);
}

/* ---- non-stream and errors ----------------------------------------------------------------- */

Test(azure_response, forwarded_with_usage)
{
    const char *body =
        "{\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}},"
        "\"finish_reason\":\"stop\",\"index\":0,\"logprobs\":null,\"message\":{\"content\":\"Hi!\","
        "\"refusal\":null,"
        "\"role\":\"assistant\"}}],\"created\":1733000000,\"id\":\"chatcmpl-AZ2\",\"model\":\"gpt-4o-2024-11-"
        "20\","
        "\"object\":\"chat.completion\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_"
        "results\":{}}],"
        "\"system_fingerprint\":\"fp_b705f0c291\",\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":12,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4},\"total_tokens\":15}}";
    const char *client = "{\"model\":\"m\",\"messages\":[]}";
    ad_request_t r = fx_request(AD_OP_CHAT, client, strlen(client));
    ad_buf_t out;
    ad_buf_init(&out, 1 << 16);
    ad_usage_t u = {-1, -1, -1, -1};
    cr_assert_eq(ad_azure.parse_response(&r, body, strlen(body), &out, &u), 0);
    cr_assert_eq(out.len, 0, "OpenAI's body: forwarded as it is");
    cr_assert_eq(u.prompt_tokens, 12);
    cr_assert_eq(u.completion_tokens, 3);
    cr_assert_eq(u.cached_tokens, 4);
    cr_assert_eq(ad_azure.parse_response(&r, "{\"a\":", 5, &out, &u), -1);
    ad_buf_free(&out);
}

Test(azure_errors, mapping)
{
    const fx_error_case_t cases[] = {
        {404,
         "{\"error\":{\"code\":\"DeploymentNotFound\",\"message\":\"The API deployment for this resource "
         "does not "
         "exist.\"}}",
         NULL, 404, 0, -1,
         "{\"error\":{\"message\":\"The API deployment for this resource does not exist.\",\"type\":"
         "\"invalid_request_error\",\"param\":null,\"code\":\"DeploymentNotFound\"}}"},
        {429,
         "{\"error\":{\"code\":\"429\",\"message\":\"Requests to the ChatCompletions_Create Operation have "
         "exceeded "
         "token rate limit. Please retry after 7 seconds.\"}}",
         "7", 429, 1, 7000,
         "{\"error\":{\"message\":\"Requests to the ChatCompletions_Create Operation have exceeded token "
         "rate limit. "
         "Please retry after 7 seconds.\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"429\"}}"},
        {400,
         "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's "
         "content "
         "management policy.\",\"type\":null,\"param\":\"prompt\",\"code\":\"content_filter\",\"status\":400,"
         "\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\",\"content_filter_result\":{\"hate\":{"
         "\"filtered\":true,\"severity\":\"high\"}}}}}",
         NULL, 400, 0, -1,
         "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's "
         "content "
         "management "
         "policy.\",\"type\":\"invalid_request_error\",\"param\":\"prompt\",\"code\":\"content_filter\"}}"},
        {400,
         "{\"error\":{\"message\":\"filtered\",\"code\":\"InvalidPrompt\",\"innererror\":{\"code\":"
         "\"ResponsibleAIPolicyViolation\"}}}",
         NULL, 400, 0, -1,
         "{\"error\":{\"message\":\"filtered\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
         "\"content_filter\"}}"},
        {401,
         "{\"statusCode\":401,\"message\":\"Unauthorized. Access token is missing, invalid, audience is "
         "incorrect, or "
         "have expired.\"}",
         NULL, 401, 0, -1,
         "{\"error\":{\"message\":\"Unauthorized. Access token is missing, invalid, audience is incorrect, "
         "or have "
         "expired.\",\"type\":\"authentication_error\",\"param\":null,\"code\":null}}"},
        {400,
         "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\",\"type\":"
         "\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}",
         NULL, 400, 0, -1,
         "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\",\"type\":"
         "\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}"},
        {429,
         "{\"error\":{\"message\":\"You exceeded your current quota.\",\"code\":\"insufficient_quota\"}}",
         NULL, 429, 0, -1,
         "{\"error\":{\"message\":\"You exceeded your current "
         "quota.\",\"type\":\"rate_limit_error\",\"param\":null,"
         "\"code\":\"insufficient_quota\"}}"},
        {500,
         "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"Backend returned unexpected "
         "response.\"}}",
         NULL, 500, 1, -1,
         "{\"error\":{\"message\":\"Backend returned unexpected "
         "response.\",\"type\":\"api_error\",\"param\":null,"
         "\"code\":\"InternalServerError\"}}"},
        {503, "<html><body>Service Unavailable</body></html>", "12", 503, 1, 12000,
         "{\"error\":{\"message\":\"upstream returned HTTP 503: <html><body>Service "
         "Unavailable</body></html>\","
         "\"type\":\"api_error\",\"param\":null,\"code\":null}}"},
        {429, "{\"error\":{\"code\":429,\"message\":\"Rate limit is exceeded.\"}}", NULL, 429, 1, -1,
         "{\"error\":{\"message\":\"Rate limit is exceeded.\",\"type\":\"rate_limit_error\",\"param\":null,"
         "\"code\":\"429\"}}"},
    };
    fx_check_errors(&ad_azure, cases, sizeof(cases) / sizeof(cases[0]));
}
