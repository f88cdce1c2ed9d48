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
#include "fuzz_kit.h"

typedef struct result {
    fz_result_t base; /* log: per event: "<type><hidden>\n<len>:<data><rawlen>:<raw>" */
    ad_buf_t raw;     /* every event's raw bytes, concatenated */
    int wants_usage;
} result_t;

static int on_event(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    check(ev->raw != NULL); /* passthrough: every event carries the upstream's bytes */
    check(!(ev->hidden && r->wants_usage));
    check(!ev->hidden || ev->type == AD_EV_CHUNK);
    check(ad_buf_appendf(&r->base.log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ad_buf_append(&r->base.log, ev->data, ev->len) == 0);
    check(ad_buf_appendf(&r->base.log, "%zu:", ev->raw_len) == 0);
    check(ad_buf_append(&r->base.log, ev->raw, ev->raw_len) == 0);
    check(ad_buf_append(&r->raw, ev->raw, ev->raw_len) == 0);
    return 0;
}

static void run(const fz_input_t *in, size_t cut, void *result)
{
    result_t *r = result;
    memset(r, 0, sizeof(*r));
    r->wants_usage = in->flags & 1;
    ad_buf_init(&r->raw, (size_t)1 << 30);
    fz_run_chat(&ad_openai, in, cut, FZ_FEED_AFTER_ERROR | FZ_FINISH_AFTER_ERROR, on_event, r, &r->base.log,
                &r->base.out);
}

/* Property 2, and the raw logs freed. */
static void more(const fz_input_t *in, void *w, void *s)
{
    result_t *whole = w, *split = s;
    int bom = in->n >= 3 && memcmp(in->p, "\xEF\xBB\xBF", 3) == 0;
    if (!bom && whole->base.out.rc == 0)
        check(whole->raw.len <= in->n &&
              (whole->raw.len == 0 || memcmp(whole->raw.data, in->p, whole->raw.len) == 0));
    ad_buf_free(&whole->raw);
    ad_buf_free(&split->raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    return fz_stream_target(data, size, run, more, &whole, &split);
}
