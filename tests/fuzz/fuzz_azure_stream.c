/*
 * fuzz_azure_stream.c — libFuzzer target for the Azure adapter's SSE stream filter.
 *
 * Input layout: byte 0 flags (bit 0: the client asked include_usage), bytes 1-2 a cut offset,
 * the rest is the upstream's bytes. Properties (any violation aborts):
 *   1. feeding the bytes whole and cut in two yields identical results: the events (type, hidden
 *      flag, data, raw bytes), the first non-zero feed status, the truncation flag and the usage;
 *   2. no chunk a client receives that parses as a chat chunk has a choice without a delta object,
 *      or empty choices without usage (Azure's prompt-filter and filter-result chunks);
 *   3. chunks the adapter rewrote (raw NULL) are valid JSON objects.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

typedef struct result {
    ad_buf_t log;
    size_t n_events;
    int rc;
    int truncated;
    ad_usage_t usage;
} result_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_client_chunk(const ad_event_t *ev)
{
    json_t *root = json_loadb(ev->data, ev->len, JSON_ALLOW_NUL, NULL);
    check(ev->raw != NULL || json_is_object(root));
    json_t *choices = json_object_get(root, "choices");
    json_t *err = json_object_get(root, "error");
    if (json_is_object(root) && json_is_array(choices) && (err == NULL || json_is_null(err))) {
        check(json_array_size(choices) > 0 || json_is_object(json_object_get(root, "usage")));
        for (size_t i = 0; i < json_array_size(choices); i++)
            check(json_is_object(json_object_get(json_array_get(choices, i), "delta")));
    }
    json_decref(root);
}

static int on_event(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    if (ev->type == AD_EV_CHUNK && !ev->hidden)
        check_client_chunk(ev);
    check(ad_buf_appendf(&r->log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ev->data == NULL || ad_buf_append(&r->log, ev->data, ev->len) == 0);
    check(ad_buf_appendf(&r->log, "\n%d:", ev->raw != NULL) == 0);
    check(ev->raw == NULL || ad_buf_append(&r->log, ev->raw, ev->raw_len) == 0);
    r->n_events++;
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
    ad_buf_init(&out->log, (size_t)1 << 30);
    st.req = &req;
    ad_azure.stream_init(&st, &req);
    st.emit = on_event;
    st.emit_ud = out;
    out->rc = ad_azure.stream_feed(&st, p, cut);
    int rc2 = out->rc == 0 ? ad_azure.stream_feed(&st, p + cut, n - cut) : out->rc;
    out->rc = out->rc == 0 ? rc2 : out->rc;
    out->truncated = ad_azure.stream_finish(&st);
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
    result_t whole, split;
    run(p, n, n, data[0] & 1, &whole);
    run(p, n, cut, data[0] & 1, &split);
    check(whole.rc == split.rc && whole.truncated == split.truncated && whole.n_events == split.n_events);
    check(whole.log.len == split.log.len &&
          (whole.log.len == 0 || memcmp(whole.log.data, split.log.data, whole.log.len) == 0));
    check(memcmp(&whole.usage, &split.usage, sizeof(whole.usage)) == 0);
    ad_buf_free(&whole.log);
    ad_buf_free(&split.log);
    return 0;
}
