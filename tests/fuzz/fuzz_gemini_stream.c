/*
 * fuzz_gemini_stream.c — libFuzzer target for the Gemini adapter's stream translation
 * (adapters/gemini_stream.c over the SSE framer and jansson).
 *
 * Input layout: byte 0 picks the request (bit 0: include_usage, bits 1-3: n - 1), bytes 1-2 a cut
 * offset, the rest is the upstream body. Properties checked (any violation aborts):
 *   1. feeding the body whole and cut in two at the offset gives identical results: the same
 *      events (type, hidden flag, bytes), the same first feed status, truncation flag and usage;
 *   2. every chunk and error event is one valid JSON object, and every event is emitted with
 *      raw == NULL (translated adapters never relay upstream bytes);
 *   3. a stream that ends with [DONE] reported no truncation, and nothing follows [DONE].
 */
#include "fuzz_kit.h"

typedef struct result {
    fz_result_t base; /* log: "<type><hidden> <data>\n" per event */
    int done_seen;
} result_t;

static int on_event(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    check(ev->raw == NULL);
    check(!r->done_seen); /* [DONE] is the last event */
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR) {
        check(ev->data != NULL && ev->len > 0 && ev->data[0] == '{');
        check(ad_json_validate(ev->data, ev->len, NULL) == 0);
    }
    if (ev->type == AD_EV_DONE)
        r->done_seen = 1;
    char head[3] = {(char)('0' + ev->type), (char)('0' + (ev->hidden != 0)), ' '};
    check(ad_buf_append(&r->base.log, head, sizeof head) == 0);
    if (ev->data != NULL)
        check(ad_buf_append(&r->base.log, ev->data, ev->len) == 0);
    check(ad_buf_append(&r->base.log, "\n", 1) == 0);
    return 0;
}

static void run(const fz_input_t *in, size_t cut, void *result)
{
    result_t *r = result;
    ad_request_t req;
    fz_chat_request(&req, in->flags & 1);
    req.n = 1 + ((in->flags >> 1) & 7);
    req.max_tokens = -1;
    memset(r, 0, sizeof *r);
    ad_buf_init(&r->base.log, (size_t)1 << 30);
    fz_run_stream(&ad_gemini, &req, in->p, in->n, cut,
                  FZ_FEED_AFTER_ERROR | FZ_FINISH_AFTER_ERROR | FZ_RC_ZERO_OR_MINUS1, on_event, r,
                  &r->base.out);
    check(!r->done_seen || r->base.out.truncated == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    return fz_stream_target(data, size, run, NULL, &whole, &split);
}
