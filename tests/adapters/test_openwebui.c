/*
 * Fixture tests of the Open WebUI adapter (tests/adapters/fixtures/openwebui, providers.md §7):
 * the OpenAI body spliced and sent to {api_base}/api/chat/completions with a Bearer key; streams
 * relayed with their bytes, Open WebUI's own sources/status events dropped, usage hidden when not
 * asked; FastAPI {"detail":…} errors normalised.
 */
#include "fixture_kit.h"

#define DIR "openwebui"

Test(openwebui_request, fixtures)
{
    const ad_deployment_t keyed = {.provider = "openwebui",
                                   .upstream_model = "llama3.2:latest",
                                   .api_base = "http://webui.internal:8080",
                                   .api_key = "sk-webui-1"};
    const ad_deployment_t dflt = {.provider = "openwebui", .upstream_model = "llama3.2:latest"};
    const ad_deployment_t with_api = {.provider = "openwebui",
                                      .upstream_model = "nomic-embed-text",
                                      .api_base = "https://chat.example.org/api",
                                      .api_key = "sk-webui-1"};
    fx_check_build(&ad_openwebui, DIR, "chat-stream", AD_OP_CHAT, &keyed);
    fx_check_build(&ad_openwebui, DIR, "chat-plain", AD_OP_CHAT, &dflt);
    fx_check_build(&ad_openwebui, DIR, "embed", AD_OP_EMBEDDINGS, &with_api);
    fx_check_build_fails(&ad_openwebui, AD_OP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\"}", &dflt,
                         "chat completions only");
    cr_assert_eq(ad_adapter_find("openwebui"), &ad_openwebui);
    cr_assert_eq(ad_openwebui.caps & AD_CAP_PASSTHROUGH, 0u, "its URL is not the prebuilt one");
}

Test(openwebui_stream, fixtures_at_every_split)
{
    const fx_stream_case_t c = {
        "stream-sources.sse", "stream-sources.events", "stream-sources.relay", 0, 31, 7, 0};
    fx_check_stream(&ad_openwebui, DIR, &c);
}

Test(openwebui_stream, truncated_and_error)
{
    const char *cut =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"id\"";
    const char *err = "data: {\"error\":{\"message\":\"Ollama: 500, message='Internal Server Error'\"}}\n\n";
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.stream = 1;
    fx_run_t run;
    fx_run_stream(&ad_openwebui, &r, cut, strlen(cut), 7, 0, &run);
    cr_assert_eq(run.truncated, 1);
    size_t first = (size_t)(strstr(cut, "\n\n") + 2 - cut);
    cr_assert(run.sink.relay.len == first && memcmp(run.sink.relay.data, cut, first) == 0,
              "the complete chunk is relayed, the cut one is not");
    fx_run_free(&run);
    fx_run_stream(&ad_openwebui, &r, err, strlen(err), 3, 0, &run);
    cr_assert_eq(run.truncated, 0, "an error event ends the stream");
    cr_assert_str_eq(run.sink.events.data,
                     "ERROR {\"error\":{\"message\":\"Ollama: 500, message='Internal Server Error'\"}}\n");
    fx_run_free(&run);
}

Test(openwebui_errors, mapping)
{
    const fx_error_case_t cases[] = {
        {401, "{\"detail\":\"Not authenticated\"}", NULL, 401, 0, -1,
         "{\"error\":{\"message\":\"Not authenticated\",\"type\":\"authentication_error\",\"param\":null,"
         "\"code\":null}}"},
        {404, "{\"detail\":\"Model not found\"}", NULL, 404, 0, -1,
         "{\"error\":{\"message\":\"Model not found\",\"type\":\"invalid_request_error\",\"param\":null,"
         "\"code\":\"model_not_found\"}}"},
        {422,
         "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"messages\"],\"msg\":\"Field required\","
         "\"input\":{}}]}",
         NULL, 422, 0, -1,
         "{\"error\":{\"message\":\"Field required\",\"type\":\"invalid_request_error\",\"param\":null,"
         "\"code\":null}}"},
        {500, "{\"detail\":\"Ollama: 500, message='Internal Server Error'\"}", "2", 500, 1, 2000,
         "{\"error\":{\"message\":\"Ollama: 500, message='Internal Server Error'\",\"type\":\"api_error\","
         "\"param\":null,\"code\":null}}"},
        {502, "<html>bad gateway</html>", NULL, 502, 1, -1,
         "{\"error\":{\"message\":\"upstream returned HTTP 502: <html>bad "
         "gateway</html>\",\"type\":\"api_error\","
         "\"param\":null,\"code\":\"upstream_error\"}}"},
    };
    fx_check_errors(&ad_openwebui, cases, sizeof(cases) / sizeof(cases[0]));
}

Test(openwebui_errors, openai_envelope_forwarded)
{
    const char *body =
        "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
    ad_buf_t out;
    ad_buf_init(&out, 4096);
    ad_error_t e;
    ad_openwebui.map_error(400, body, strlen(body), NULL, &out, &e);
    cr_assert_eq(out.len, 0, "already OpenAI's shape: the core forwards it");
    cr_assert_eq(e.status, 400);
    ad_buf_free(&out);
}
