/*
 * fuzz_eventstream.c — libFuzzer target for the AWS event-stream decoder (adapters/eventstream.c).
 *
 * Input layout: byte 0 picks the message ceiling, bytes 1-2 a cut offset, the rest is the stream.
 * Properties checked (any violation aborts):
 *   1. feeding the stream whole and cut at the offset gives the same messages (payload and every
 *      header), the same failure status and the same "frame pending" state at the end;
 *   2. every decoded message re-encodes (ad_es_encode from its parsed headers and payload) to
 *      exactly the bytes of its frame, and ad_es_decode on those bytes alone agrees;
 *   3. pointers handed to the callback stay inside the frame (ASan checks every byte read).
 */
#include "adapters/buf.h"
#include "adapters/eventstream.h"
#include "fuzz_kit.h"

typedef struct result {
    ad_buf_t log; /* a canonical rendering of every message */
    int failed;
    int pending;
} result_t;

static void log_header(ad_buf_t *log, const ad_es_header_t *h)
{
    check(ad_buf_appendf(log, "%zu:", h->name_len) == 0 && ad_buf_append(log, h->name, h->name_len) == 0);
    check(ad_buf_appendf(log, "/%d/%lld/%zu:", (int)h->type, (long long)h->num, h->bytes_len) == 0);
    check(ad_buf_append(log, h->bytes, h->bytes_len) == 0);
}

/* Re-encodes m and compares with its frame bytes. */
static void check_reencode(const ad_es_message_t *m, const ad_es_header_t *hs, size_t nh)
{
    const unsigned char *frame = m->headers - AD_ES_PRELUDE_LEN;
    ad_buf_t again;
    ad_buf_init(&again, AD_ES_MAX_MESSAGE);
    check(ad_es_encode(hs, nh, m->payload, m->payload_len, &again) == 0);
    check(again.len == m->total_len && memcmp(again.data, frame, again.len) == 0);
    ad_es_message_t m2;
    size_t used = 0;
    check(ad_es_decode(frame, m->total_len, m->total_len, &m2, &used) == 1 && used == m->total_len);
    check(m2.headers_len == m->headers_len && m2.payload_len == m->payload_len);
    ad_buf_free(&again);
}

static int on_msg(void *ud, const ad_es_message_t *m)
{
    result_t *r = ud;
    ad_es_header_t hs[64], h;
    size_t off = 0, nh = 0;
    int rc;
    check(m->total_len == AD_ES_MIN_MESSAGE + m->headers_len + m->payload_len);
    check(ad_buf_appendf(&r->log, "M%zu:", m->payload_len) == 0);
    check(ad_buf_append(&r->log, m->payload, m->payload_len) == 0);
    while ((rc = ad_es_header_next(m, &off, &h)) == 1) {
        log_header(&r->log, &h);
        if (nh < sizeof(hs) / sizeof(hs[0]))
            hs[nh] = h;
        nh++;
    }
    check(rc == 0 && off == m->headers_len);
    if (nh <= sizeof(hs) / sizeof(hs[0]))
        check_reencode(m, hs, nh);
    return 0;
}

static void run(const unsigned char *p, size_t n, size_t cut, size_t max, result_t *out)
{
    ad_es_decoder_t d;
    ad_es_decoder_init(&d, max);
    ad_buf_init(&out->log, (size_t)1 << 30);
    int rc = ad_es_feed(&d, p, cut, on_msg, out);
    if (rc == 0)
        rc = ad_es_feed(&d, p + cut, n - cut, on_msg, out);
    check(rc == 0 || rc == -1);
    out->failed = rc != 0;
    out->pending = rc == 0 && ad_es_pending(&d);
    if (out->failed) /* once dead, always dead */
        check(ad_es_feed(&d, p, n, on_msg, out) == -1);
    ad_es_decoder_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t ceilings[] = {16, 64, 1024, (size_t)1 << 20};
    fz_input_t in;
    if (!fz_input(data, size, &in))
        return 0;
    size_t max = ceilings[in.flags & 3];
    const unsigned char *p = (const unsigned char *)in.p;
    result_t whole, split;
    run(p, in.n, 0, max, &whole);
    run(p, in.n, in.cut, max, &split);
    check(whole.failed == split.failed && whole.pending == split.pending);
    fz_check_same_log(&whole.log, &split.log);
    ad_buf_free(&whole.log);
    ad_buf_free(&split.log);
    return 0;
}
