/*
 * fuzz_anthropic_in.c — libFuzzer target for the inbound-surface translators (surface.h).
 *
 * The same input is used three ways; any violated property aborts:
 *   1. as a request body for ad_anthropic_in_request and ad_simple_in_request: an accepted
 *      request must give one valid JSON object the core's scanner accepts, with a string model;
 *   2. as an OpenAI body for the response and error translators: what they accept must be
 *      valid JSON;
 *   3. as a chunk sequence for the stream encoder, one chunk per line ("[DONE]" finishes,
 *      "PING" is a keep-alive, "!<json>" aborts with an error): the output must obey Anthropic's event rules
 *      (anthropic_sse_check.h, lenient about late tool fragments) and be identical whether the
 *      output buffer is roomy or starts tiny and grows after each refusal (a refused call must
 *      leave the output and the encoder exactly as they were).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/surface.h"
#include "tests/adapters/anthropic_sse_check.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_json_object(const ad_buf_t *b)
{
    ad_request_t r;
    check(ad_request_scan(AD_OP_CHAT, b->data, b->len, &r, NULL) == 0);
    check(r.model.type == AD_J_STRING && r.messages.type == AD_J_ARRAY);
}

static void check_valid(const ad_buf_t *b)
{
    check(ad_json_validate(b->data, b->len, NULL) == 0);
}

static void requests(const char *p, size_t n)
{
    ad_buf_t out;
    char err[256], provider[64];
    ad_buf_init(&out, 1 << 22);
    if (ad_anthropic_in_request(p, n, &out, err, sizeof(err)) == 0)
        check_json_object(&out);
    else
        check(out.len == 0 && strlen(err) > 0);
    ad_buf_reset(&out);
    if (ad_simple_in_request(p, n, &out, provider, sizeof(provider), err, sizeof(err)) == 0)
        check_json_object(&out);
    else
        check(out.len == 0);
    ad_buf_free(&out);
}

static void responses(const char *p, size_t n)
{
    ad_buf_t out;
    ad_buf_init(&out, 1 << 22);
    if (ad_anthropic_in_response(p, n, NULL, &out) == 0)
        check_valid(&out);
    ad_buf_reset(&out);
    if (ad_simple_out_response(p, n, "p", NULL, 5, &out) == 0)
        check_valid(&out);
    ad_buf_reset(&out);
    check(ad_anthropic_error_body(502, p, n, &out) == 0);
    check_valid(&out);
    ad_buf_reset(&out);
    check(ad_simple_error_body(p, n, "p", &out) == 0);
    check_valid(&out);
    ad_buf_reset(&out);
    check(ad_anthropic_enc_error(p, n, &out) == 0);
    ad_buf_free(&out);
}

/* One encoder call for line p[0..n). */
static int enc_line(ad_anthropic_enc_t *e, const char *p, size_t n, ad_buf_t *out)
{
    if (n == 6 && memcmp(p, "[DONE]", 6) == 0)
        return ad_anthropic_enc_finish(e, out);
    if (n == 4 && memcmp(p, "PING", 4) == 0)
        return ad_anthropic_enc_ping(e, out);
    if (n > 0 && p[0] == '!')
        return ad_anthropic_enc_abort(e, p + 1, n - 1, out);
    return ad_anthropic_enc_chunk(e, p, n, out);
}

/* Encodes every line; with grow, out starts at max0 bytes and a refused call is retried once
 * with room (a call refused for another reason is refused again and skipped, as without grow). */
static void encode(const char *p, size_t n, size_t max0, int grow, ad_buf_t *out)
{
    ad_anthropic_enc_t e;
    ad_anthropic_enc_init(&e, n > 0 && (p[0] & 1) ? "claude-x" : NULL, n > 0 && (p[0] & 2) ? "msg_1" : NULL);
    ad_buf_init(out, grow ? max0 : 1 << 24);
    for (const char *line = p; line <= p + n;) {
        const char *nl = memchr(line, '\n', (size_t)(p + n - line));
        size_t len = nl != NULL ? (size_t)(nl - line) : (size_t)(p + n - line);
        size_t before = out->len;
        if (enc_line(&e, line, len, out) < 0) {
            check(out->len == before);
            if (grow) {
                out->max = 1 << 24;
                if (enc_line(&e, line, len, out) < 0)
                    check(out->len == before);
                out->max = out->len + max0;
            }
        }
        line += len + 1;
    }
    out->max = 1 << 24;
    check(ad_anthropic_enc_finish(&e, out) == 0);
    ad_anthropic_enc_free(&e);
}

static void stream(const char *p, size_t n)
{
    ad_buf_t a, b;
    char why[256];
    encode(p, n, 0, 0, &a);
    encode(p, n, n > 1 ? (size_t)(unsigned char)p[1] : 0, 1, &b);
    check(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    check(asc_check(a.data, a.len, 0, 1, why, sizeof(why)) == 0);
    ad_buf_free(&a);
    ad_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    if (size > (1u << 20))
        return 0;
    requests(p, size);
    responses(p, size);
    stream(p, size);
    return 0;
}
