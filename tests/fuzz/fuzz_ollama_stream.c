/*
 * fuzz_ollama_stream.c — libFuzzer target for the Ollama adapter's NDJSON stream translation.
 *
 * Input layout: byte 0 flags (bit 0: the client asked include_usage), bytes 1-2 a cut offset,
 * the rest is the upstream's bytes. Properties (any violation aborts):
 *   1. feeding the bytes whole and cut in two yields identical results: the events (type, hidden
 *      flag, data), the first non-zero feed status, the truncation flag and the usage;
 *   2. every CHUNK and ERROR event is one valid JSON object (it goes to clients as `data:`);
 *   3. a stream that ends with DONE or ERROR is not reported truncated, and nothing follows them.
 */
#include "fuzz_kit.h"

typedef struct result {
    fz_result_t base; /* log: "<type><hidden>\n<len>:<data>" per event */
    size_t n_events;
    int last_type;
    int after_end; /* an event came after DONE or ERROR */
} result_t;

static int on_event(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    if (r->last_type == AD_EV_DONE || r->last_type == AD_EV_ERROR)
        r->after_end = 1;
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        check(ad_json_scan_object(ev->data, ev->len, NULL, NULL, NULL) == 0);
    check(ev->raw == NULL); /* a translating adapter: the core writes the bytes */
    check(ad_buf_appendf(&r->base.log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ad_buf_append(&r->base.log, ev->data, ev->len) == 0);
    r->n_events++;
    r->last_type = ev->type;
    return 0;
}

static void run(const fz_input_t *in, size_t cut, void *result)
{
    result_t *r = result;
    memset(r, 0, sizeof(*r));
    fz_run_chat(&ad_ollama, in, cut, FZ_FEED_AFTER_ERROR | FZ_FINISH_AFTER_ERROR, on_event, r, &r->base.log,
                &r->base.out);
}

/* The same number of events; property 3. */
static void more(const fz_input_t *in, void *w, void *s)
{
    (void)in;
    const result_t *whole = w, *split = s;
    check(whole->n_events == split->n_events);
    check(!whole->after_end);
    if (whole->base.out.rc == 0 && (whole->last_type == AD_EV_DONE || whole->last_type == AD_EV_ERROR))
        check(whole->base.out.truncated == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    return fz_stream_target(data, size, run, more, &whole, &split);
}
