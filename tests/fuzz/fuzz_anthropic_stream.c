/*
 * fuzz_anthropic_stream.c — libFuzzer target for the Anthropic adapter's stream translation.
 *
 * Input layout: byte 0 bit 0 = the client asked include_usage, bytes 1-2 a cut offset, the rest
 * is the upstream stream. Properties checked (any violation aborts):
 *   1. feeding the stream whole and cut in two gives identical results: the same events (type,
 *      hidden flag, bytes), the same feed status, truncation flag, usage and error flag;
 *   2. every CHUNK and ERROR event carries one valid JSON value; DONE comes at most once and
 *      nothing follows DONE or ERROR;
 *   3. no crash, leak or undefined behaviour (ASan/UBSan), whatever the bytes.
 * Like the core, a feed that returned non-zero is not fed again and not finished.
 */
#include "fuzz_kit.h"

typedef struct result {
    fz_result_t base; /* log: per event: type byte, hidden byte, 8-byte length, data */
    int ended;
} result_t;

static int on_event(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    uint64_t len = ev->len;
    unsigned char head[2] = {(unsigned char)ev->type, (unsigned char)ev->hidden};
    check(!r->ended);
    check(ev->raw == NULL);
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        check(ev->data != NULL && ad_json_validate(ev->data, ev->len, NULL) == 0);
    r->ended = ev->type == AD_EV_DONE || ev->type == AD_EV_ERROR;
    check(ad_buf_append(&r->base.log, head, 2) == 0 && ad_buf_append(&r->base.log, &len, sizeof(len)) == 0);
    check(ev->len == 0 || ad_buf_append(&r->base.log, ev->data, ev->len) == 0);
    return 0;
}

static void run(const fz_input_t *in, size_t cut, void *result)
{
    result_t *r = result;
    static const char body[] = "{\"model\":\"claude\",\"stream\":true,\"messages\":[]}";
    ad_request_t req;
    check(ad_request_scan(AD_OP_CHAT, body, sizeof(body) - 1, &req, NULL) == 0);
    req.include_usage = in->flags & 1;
    req.now = 1700000000;
    req.request_id = "fuzz";
    memset(r, 0, sizeof(*r));
    ad_buf_init(&r->base.log, (size_t)1 << 30);
    fz_run_stream(&ad_anthropic, &req, in->p, in->n, cut, 0, on_event, r, &r->base.out);
}

static void same_error_flag(const fz_input_t *in, void *w, void *s)
{
    (void)in;
    check(((const result_t *)w)->base.out.saw_error == ((const result_t *)s)->base.out.saw_error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    return fz_stream_target(data, size, run, same_error_flag, &whole, &split);
}
