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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

typedef struct result {
    ad_buf_t log; /* "<type><hidden>\n<len>:<data>" per event */
    size_t n_events;
    int last_type;
    int after_end; /* an event came after DONE or ERROR */
    int rc;
    int truncated;
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
    if (r->last_type == AD_EV_DONE || r->last_type == AD_EV_ERROR)
        r->after_end = 1;
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        check(ad_json_scan_object(ev->data, ev->len, NULL, NULL, NULL) == 0);
    check(ev->raw == NULL); /* a translating adapter: the core writes the bytes */
    check(ad_buf_appendf(&r->log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ad_buf_append(&r->log, ev->data, ev->len) == 0);
    r->n_events++;
    r->last_type = ev->type;
    return 0;
}

static void run(const char *p, size_t n, size_t cut, int wants_usage, result_t *out)
{
    ad_request_t req;
    memset(&req, 0, sizeof(req));
    req.op = AD_OP_CHAT;
    req.stream = 1;
    req.include_usage = wants_usage;
    req.now = 1700000000;
    req.request_id = "fuzz";
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    ad_buf_init(&out->log, (size_t)1 << 30);
    st.req = &req;
    st.priv = calloc(1, ad_ollama.state_size);
    check(st.priv != NULL);
    ad_ollama.stream_init(&st, &req);
    st.emit = on_event;
    st.emit_ud = out;
    out->rc = ad_ollama.stream_feed(&st, p, cut);
    int rc2 = ad_ollama.stream_feed(&st, p + cut, n - cut);
    check(out->rc == 0 || rc2 == out->rc); /* once failed, it stays failed */
    if (out->rc == 0)
        out->rc = rc2;
    out->truncated = ad_ollama.stream_finish(&st);
    out->usage = st.usage;
    ad_ollama.stream_free(&st);
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
    int wants_usage = data[0] & 1;
    result_t whole, split;
    run(p, n, n, wants_usage, &whole);
    run(p, n, cut, wants_usage, &split);
    check(whole.rc == split.rc && whole.truncated == split.truncated && whole.n_events == split.n_events);
    check(whole.log.len == split.log.len &&
          (whole.log.len == 0 || memcmp(whole.log.data, split.log.data, whole.log.len) == 0));
    check(memcmp(&whole.usage, &split.usage, sizeof(whole.usage)) == 0);
    check(!whole.after_end);
    if (whole.rc == 0 && (whole.last_type == AD_EV_DONE || whole.last_type == AD_EV_ERROR))
        check(whole.truncated == 0);
    ad_buf_free(&whole.log);
    ad_buf_free(&split.log);
    return 0;
}
