/*
 * fuzz_openai_stream.c — libFuzzer target for the OpenAI passthrough stream (adapters/openai.c).
 *
 * Input layout: byte 0 flags (bit 0: the client asked include_usage), bytes 1-2 a cut offset, the
 * rest is the upstream's bytes. Properties (any violation aborts):
 *   1. feeding the bytes whole and cut in two yields identical events (type, hidden flag, data,
 *      raw bytes), feed status, truncation flag and usage;
 *   2. the raw bytes of all events, in order, are exactly a prefix of the input (passthrough
 *      relays upstream bytes, never invents or reorders them) when the input has no BOM;
 *   3. nothing but an ERROR event is flagged hidden unless it is a usage chunk the client did not
 *      ask for, and a client that asked for usage never has anything hidden.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

typedef struct result {
    ad_buf_t log; /* per event: "<type><hidden>\n<len>:<data><rawlen>:<raw>" */
    ad_buf_t raw; /* every event's raw bytes, concatenated */
    int rc;
    int truncated;
    int wants_usage;
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
    check(ev->raw != NULL); /* passthrough: every event carries the upstream's bytes */
    check(!(ev->hidden && r->wants_usage));
    check(!ev->hidden || ev->type == AD_EV_CHUNK);
    check(ad_buf_appendf(&r->log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ad_buf_append(&r->log, ev->data, ev->len) == 0);
    check(ad_buf_appendf(&r->log, "%zu:", ev->raw_len) == 0);
    check(ad_buf_append(&r->log, ev->raw, ev->raw_len) == 0);
    check(ad_buf_append(&r->raw, ev->raw, ev->raw_len) == 0);
    return 0;
}

static void run(const char *p, size_t n, size_t cut, int wants_usage, result_t *out)
{
    ad_request_t req;
    memset(&req, 0, sizeof(req));
    req.op = AD_OP_CHAT;
    req.stream = 1;
    req.include_usage = wants_usage;
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    out->wants_usage = wants_usage;
    ad_buf_init(&out->log, (size_t)1 << 30);
    ad_buf_init(&out->raw, (size_t)1 << 30);
    st.req = &req;
    ad_openai.stream_init(&st, &req);
    st.emit = on_event;
    st.emit_ud = out;
    out->rc = ad_openai.stream_feed(&st, p, cut);
    int rc2 = ad_openai.stream_feed(&st, p + cut, n - cut);
    check(out->rc == 0 || rc2 == out->rc); /* once failed, it stays failed */
    if (out->rc == 0)
        out->rc = rc2;
    out->truncated = ad_openai.stream_finish(&st);
    out->usage = st.usage;
    ad_stream_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const char *p = (const char *)data + 3;
    size_t n = size - 3;
    size_t cut = ((size_t)data[1] | (size_t)data[2] << 8) % (n + 1);
    int wants_usage = data[0] & 1;
    result_t whole, split;
    run(p, n, n, wants_usage, &whole);
    run(p, n, cut, wants_usage, &split);
    check(whole.rc == split.rc && whole.truncated == split.truncated);
    check(whole.log.len == split.log.len &&
          (whole.log.len == 0 || memcmp(whole.log.data, split.log.data, whole.log.len) == 0));
    check(memcmp(&whole.usage, &split.usage, sizeof(whole.usage)) == 0);
    int bom = n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0;
    if (!bom && whole.rc == 0)
        check(whole.raw.len <= n && (whole.raw.len == 0 || memcmp(whole.raw.data, p, whole.raw.len) == 0));
    ad_buf_free(&whole.log);
    ad_buf_free(&split.log);
    ad_buf_free(&whole.raw);
    ad_buf_free(&split.raw);
    return 0;
}
