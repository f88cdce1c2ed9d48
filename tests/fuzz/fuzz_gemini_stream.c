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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

typedef struct result {
    ad_buf_t events; /* "<type><hidden> <data>\n" per event */
    int feed_rc;
    int truncated;
    int done_seen;
    ad_usage_t usage;
} result_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

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
    check(ad_buf_append(&r->events, head, sizeof head) == 0);
    if (ev->data != NULL)
        check(ad_buf_append(&r->events, ev->data, ev->len) == 0);
    check(ad_buf_append(&r->events, "\n", 1) == 0);
    return 0;
}

static void run(const ad_request_t *req, const char *p, size_t n, size_t cut, result_t *out)
{
    ad_stream_t st;
    memset(&st, 0, sizeof st);
    memset(out, 0, sizeof *out);
    ad_buf_init(&out->events, (size_t)1 << 30);
    st.req = req;
    st.priv = calloc(1, ad_gemini.state_size);
    check(st.priv != NULL);
    ad_gemini.stream_init(&st, req);
    st.emit = on_event;
    st.emit_ud = out;
    size_t cuts[2] = {cut, n}, from = 0;
    for (size_t k = 0; k < 2; k++) {
        int rc = ad_gemini.stream_feed(&st, p + from, cuts[k] - from);
        check(rc == 0 || rc == -1);
        if (out->feed_rc == 0)
            out->feed_rc = rc;
        check(out->feed_rc == 0 || rc == -1); /* once broken, always broken */
        from = cuts[k];
    }
    out->truncated = ad_gemini.stream_finish(&st);
    check(!out->done_seen || out->truncated == 0);
    out->usage = st.usage;
    if (ad_gemini.stream_free != NULL)
        ad_gemini.stream_free(&st);
    ad_stream_free(&st);
    free(st.priv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const char *p = (const char *)data + 3;
    size_t n = size - 3;
    size_t cut = ((size_t)data[1] | (size_t)data[2] << 8) % (n + 1);
    ad_request_t req;
    memset(&req, 0, sizeof req);
    req.op = AD_OP_CHAT;
    req.stream = 1;
    req.include_usage = data[0] & 1;
    req.n = 1 + ((data[0] >> 1) & 7);
    req.max_tokens = -1;
    req.now = 1700000000;
    req.request_id = "fuzz";

    result_t whole, split;
    run(&req, p, n, n, &whole);
    run(&req, p, n, cut, &split);
    check(whole.feed_rc == split.feed_rc && whole.truncated == split.truncated);
    check(whole.events.len == split.events.len);
    check(whole.events.len == 0 || memcmp(whole.events.data, split.events.data, whole.events.len) == 0);
    check(memcmp(&whole.usage, &split.usage, sizeof whole.usage) == 0);
    ad_buf_free(&whole.events);
    ad_buf_free(&split.events);
    return 0;
}
