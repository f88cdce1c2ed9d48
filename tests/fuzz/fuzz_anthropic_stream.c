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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

typedef struct result {
    ad_buf_t events; /* per event: type byte, hidden byte, 8-byte length, data */
    int rc, truncated, saw_error, ended;
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
    uint64_t len = ev->len;
    unsigned char head[2] = {(unsigned char)ev->type, (unsigned char)ev->hidden};
    check(!r->ended);
    check(ev->raw == NULL);
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        check(ev->data != NULL && ad_json_validate(ev->data, ev->len, NULL) == 0);
    r->ended = ev->type == AD_EV_DONE || ev->type == AD_EV_ERROR;
    check(ad_buf_append(&r->events, head, 2) == 0 && ad_buf_append(&r->events, &len, sizeof(len)) == 0);
    check(ev->len == 0 || ad_buf_append(&r->events, ev->data, ev->len) == 0);
    return 0;
}

static void run(const char *p, size_t n, size_t cut, int wants_usage, result_t *out)
{
    static const char body[] = "{\"model\":\"claude\",\"stream\":true,\"messages\":[]}";
    ad_request_t req;
    check(ad_request_scan(AD_OP_CHAT, body, sizeof(body) - 1, &req, NULL) == 0);
    req.include_usage = wants_usage;
    req.now = 1700000000;
    req.request_id = "fuzz";
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    ad_buf_init(&out->events, (size_t)1 << 30);
    st.req = &req;
    st.priv = calloc(1, ad_anthropic.state_size);
    check(st.priv != NULL);
    ad_anthropic.stream_init(&st, &req);
    st.emit = on_event;
    st.emit_ud = out;
    out->rc = ad_anthropic.stream_feed(&st, p, cut);
    if (out->rc == 0)
        out->rc = ad_anthropic.stream_feed(&st, p + cut, n - cut);
    out->truncated = out->rc == 0 ? ad_anthropic.stream_finish(&st) : -1;
    out->usage = st.usage;
    out->saw_error = st.saw_error;
    if (ad_anthropic.stream_free != NULL)
        ad_anthropic.stream_free(&st);
    ad_stream_free(&st);
    free(st.priv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int wants_usage = data[0] & 1;
    const char *p = (const char *)data + 3;
    size_t n = size - 3;
    size_t cut = ((size_t)data[1] | (size_t)data[2] << 8) % (n + 1);
    result_t whole, split;
    run(p, n, n, wants_usage, &whole);
    run(p, n, cut, wants_usage, &split);
    check(whole.rc == split.rc && whole.truncated == split.truncated && whole.saw_error == split.saw_error);
    check(memcmp(&whole.usage, &split.usage, sizeof(whole.usage)) == 0);
    check(whole.events.len == split.events.len);
    check(whole.events.len == 0 || memcmp(whole.events.data, split.events.data, whole.events.len) == 0);
    ad_buf_free(&whole.events);
    ad_buf_free(&split.events);
    return 0;
}
