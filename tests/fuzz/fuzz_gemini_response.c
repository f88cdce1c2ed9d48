/*
 * fuzz_gemini_response.c — libFuzzer target for the Gemini adapter's non-stream paths: the
 * request translation (client body → generateContent / batchEmbedContents), the response
 * translation (generateContent / batchEmbedContents body → OpenAI JSON) and the error mapping.
 *
 * Input layout: byte 0 picks the operation (bits 0-1: 0 chat request, 1 chat response,
 * 2 embeddings request and response, 3 error body; bits 2-7: HTTP status 400 + value for
 * errors), the rest is the body. Properties (any violation aborts): nothing crashes or leaks;
 * whatever is produced is one valid JSON object; an error always gets OpenAI's shape and a
 * status between 400 and 599.
 */
#include "fuzz_kit.h"

static void valid_object(const ad_buf_t *b)
{
    check(b->len > 0 && b->data[0] == '{' && ad_json_validate(b->data, b->len, NULL) == 0);
}

static void request(ad_op_t op, const char *p, size_t n)
{
    ad_request_t r;
    if (ad_request_scan(op, p, n, &r, NULL) != 0)
        return; /* the core answers 400 before any adapter runs */
    r.now = 1700000000;
    r.request_id = "fuzz";
    ad_deployment_t d = {.provider = "gemini", .upstream_model = "gemini-2.5-flash", .api_key = "k"};
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 24);
    char err[256];
    if (ad_gemini.build_request(&r, &d, &h, err, sizeof err) == 0)
        valid_object(&h.body);
    else
        check(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
    ad_http_request_free(&h);
}

static void response(ad_op_t op, const char *p, size_t n)
{
    const char *client = op == AD_OP_CHAT
                             ? "{\"model\":\"g\",\"n\":2,\"messages\":[]}"
                             : "{\"model\":\"g\",\"input\":\"x\",\"encoding_format\":\"base64\"}";
    ad_request_t r;
    check(ad_request_scan(op, client, strlen(client), &r, NULL) == 0);
    r.now = 1700000000;
    r.request_id = "fuzz";
    ad_buf_t out;
    ad_buf_init(&out, 1 << 26);
    ad_usage_t u = {-1, -1, -1, -1};
    if (ad_gemini.parse_response(&r, p, n, &out, &u) == 0)
        valid_object(&out);
    ad_buf_free(&out);
}

static void error(int status, const char *p, size_t n)
{
    ad_buf_t out;
    ad_buf_init(&out, 1 << 16);
    ad_error_t e;
    ad_gemini.map_error(status, p, n, n > 0 && p[0] == '1' ? "12" : NULL, &out, &e);
    valid_object(&out);
    ad_jspan_t err, msg;
    check(ad_json_find(out.data, out.len, "error", &err) == 1 && err.type == AD_J_OBJECT);
    check(ad_json_find(err.p, err.len, "message", &msg) == 1 && msg.type == AD_J_STRING);
    check(e.status >= 400 && e.status <= 599);
    ad_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        request(AD_OP_CHAT, p, n);
        break;
    case 1:
        response(AD_OP_CHAT, p, n);
        break;
    case 2:
        request(AD_OP_EMBEDDINGS, p, n);
        response(AD_OP_EMBEDDINGS, p, n);
        break;
    default:
        error(400 + (data[0] >> 2), p, n);
        break;
    }
    return 0;
}
