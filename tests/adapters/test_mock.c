/*
 * The mock provider renders exactly OpenAI's wire format: its streams go through the OpenAI
 * stream path (usage learned, usage chunk hidden when not asked), its bodies are valid JSON with
 * the usage it promises, tool calls reassemble, and base64 embeddings equal the float ones.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

#include "adapters/mock.h"

static ad_deployment_t dep_with(json_t *params)
{
    ad_deployment_t d = {.provider = "mock", .upstream_model = "mock-1", .params = params};
    return d;
}

static json_t *plan_and_render(const char *body, ad_op_t op, ad_mock_plan_t *p)
{
    ad_request_t r;
    cr_assert_eq(ad_request_scan(op, body, strlen(body), &r, NULL), 0);
    json_t *params = json_pack("{s:s}", "mock_response", "one two three");
    ad_deployment_t d = dep_with(params);
    char err[128];
    cr_assert_eq(ad_mock_plan(&r, &d, "id1", 1700000000, p, err, sizeof(err)), 0, "%s", err);
    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    cr_assert_eq(ad_mock_render_body(p, &out), 0);
    json_error_t je;
    json_t *j = json_loadb(out.data, out.len, 0, &je);
    cr_assert_not_null(j, "mock body is not JSON: %s", je.text);
    ad_buf_free(&out);
    json_decref(params);
    return j;
}

Test(mock, chat_body_is_deterministic_openai_json)
{
    ad_mock_plan_t p1, p2;
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}";
    json_t *a = plan_and_render(body, AD_OP_CHAT, &p1);
    json_t *b = plan_and_render(body, AD_OP_CHAT, &p2);
    cr_assert(json_equal(a, b), "same request, same answer");
    json_t *msg = json_object_get(json_array_get(json_object_get(a, "choices"), 0), "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "content")), "one two three");
    json_t *u = json_object_get(a, "usage");
    cr_assert_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 3); /* 11 chars / 4 */
    cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), 3);
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), 6);
    json_decref(a);
    json_decref(b);
    ad_mock_plan_free(&p1);
    ad_mock_plan_free(&p2);
}

typedef struct acc {
    ad_buf_t content, args;
    int chunks, hidden, done;
} acc_t;

static int on_ev(void *ud, const ad_event_t *ev)
{
    acc_t *a = ud;
    if (ev->type == AD_EV_DONE) {
        a->done++;
        return 0;
    }
    cr_assert_eq(ev->type, AD_EV_CHUNK);
    if (ev->hidden) {
        a->hidden++;
        return 0;
    }
    a->chunks++;
    json_t *j = json_loadb(ev->data, ev->len, 0, NULL);
    cr_assert_not_null(j);
    json_t *delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    json_t *c = json_object_get(delta, "content");
    if (json_is_string(c))
        ad_buf_puts(&a->content, json_string_value(c));
    json_t *tc = json_array_get(json_object_get(delta, "tool_calls"), 0);
    json_t *args = json_object_get(json_object_get(tc, "function"), "arguments");
    if (json_is_string(args))
        ad_buf_puts(&a->args, json_string_value(args));
    json_decref(j);
    return 0;
}

static void stream_through_openai(ad_mock_plan_t *p, int wants_usage, acc_t *a)
{
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.include_usage = wants_usage;
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    ad_openai.stream_init(&st, &r);
    st.emit = on_ev;
    st.emit_ud = a;
    for (size_t i = 0; i < ad_mock_n_events(p); i++) {
        ad_buf_t ev;
        ad_buf_init(&ev, 1 << 20);
        cr_assert_eq(ad_mock_render_event(p, i, &ev), 0);
        cr_assert_eq(ad_openai.stream_feed(&st, ev.data, ev.len), 0);
        ad_buf_free(&ev);
    }
    cr_assert_eq(ad_openai.stream_finish(&st), 0, "mock streams are complete");
    cr_assert_eq(st.usage.prompt_tokens, p->usage.prompt_tokens);
    cr_assert_eq(st.usage.completion_tokens, p->usage.completion_tokens);
    ad_stream_free(&st);
}

Test(mock, stream_text_and_hidden_usage)
{
    ad_mock_plan_t p;
    json_t *j = plan_and_render(
        "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", AD_OP_CHAT,
        &p);
    json_decref(j);
    acc_t a = {0};
    ad_buf_init(&a.content, 4096);
    ad_buf_init(&a.args, 4096);
    stream_through_openai(&p, 0, &a);
    cr_assert_str_eq(a.content.data, "one two three");
    cr_assert_eq(a.hidden, 1, "the usage chunk is hidden when the client did not ask");
    cr_assert_eq(a.done, 1);
    cr_assert_eq(a.chunks, 5, "role, three pieces, finish");
    ad_buf_free(&a.content);
    ad_buf_free(&a.args);
    ad_mock_plan_free(&p);
}

Test(mock, tool_call_round_trip)
{
    ad_mock_plan_t p;
    const char *body =
        "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{}}}]}";
    json_t *j = plan_and_render(body, AD_OP_CHAT, &p);
    json_t *tc = json_array_get(
        json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                        "tool_calls"),
        0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(tc, "function"), "name")),
                     "get_weather");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")),
                     "{\"query\":\"Paris?\"}");
    json_decref(j);
    acc_t a = {0};
    ad_buf_init(&a.content, 4096);
    ad_buf_init(&a.args, 4096);
    stream_through_openai(&p, 1, &a);
    cr_assert_str_eq(a.args.data, "{\"query\":\"Paris?\"}", "streamed argument fragments reassemble");
    cr_assert_eq(a.hidden, 0);
    ad_buf_free(&a.content);
    ad_buf_free(&a.args);
    ad_mock_plan_free(&p);

    const char *after = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"},"
                        "{\"role\":\"tool\",\"tool_call_id\":\"call_mock_1\",\"content\":\"18C\"}],"
                        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]}";
    j = plan_and_render(after, AD_OP_CHAT, &p);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "content")), "Tool result: 18C");
    json_decref(j);
    ad_mock_plan_free(&p);
}

Test(mock, embeddings_base64_equals_float)
{
    ad_mock_plan_t pf, pb;
    json_t *f = plan_and_render("{\"model\":\"e\",\"input\":[\"alpha\",\"beta\"],\"dimensions\":4}",
                                AD_OP_EMBEDDINGS, &pf);
    json_t *b = plan_and_render("{\"model\":\"e\",\"input\":[\"alpha\",\"beta\"],\"dimensions\":4,"
                                "\"encoding_format\":\"base64\"}",
                                AD_OP_EMBEDDINGS, &pb);
    cr_assert_eq(json_array_size(json_object_get(f, "data")), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *vf = json_object_get(json_array_get(json_object_get(f, "data"), i), "embedding");
        const char *b64 =
            json_string_value(json_object_get(json_array_get(json_object_get(b, "data"), i), "embedding"));
        cr_assert_not_null(b64);
        unsigned char raw[64];
        int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
        cr_assert_geq(n, 16);
        for (size_t k = 0; k < 4; k++) {
            float x;
            memcpy(&x, raw + 4 * k, 4); /* little-endian host */
            cr_assert_float_eq(x, json_real_value(json_array_get(vf, k)), 1e-6, "dim %zu", k);
        }
    }
    json_decref(f);
    json_decref(b);
    ad_mock_plan_free(&pf);
    ad_mock_plan_free(&pb);
}
