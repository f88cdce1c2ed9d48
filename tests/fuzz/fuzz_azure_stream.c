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

#include "fuzz_kit.h"

typedef struct result {
    fz_result_t base;
    size_t n_events;
} result_t;

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
    check(ad_buf_appendf(&r->base.log, "%d%d\n%zu:", (int)ev->type, ev->hidden, ev->len) == 0);
    check(ev->data == NULL || ad_buf_append(&r->base.log, ev->data, ev->len) == 0);
    check(ad_buf_appendf(&r->base.log, "\n%d:", ev->raw != NULL) == 0);
    check(ev->raw == NULL || ad_buf_append(&r->base.log, ev->raw, ev->raw_len) == 0);
    r->n_events++;
    return 0;
}

static void run(const fz_input_t *in, size_t cut, void *result)
{
    result_t *r = result;
    memset(r, 0, sizeof(*r));
    fz_run_chat(&ad_azure, in, cut, FZ_FINISH_AFTER_ERROR, on_event, r, &r->base.log, &r->base.out);
}

static void same_count(const fz_input_t *in, void *w, void *s)
{
    (void)in;
    check(((const result_t *)w)->n_events == ((const result_t *)s)->n_events);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    return fz_stream_target(data, size, run, same_count, &whole, &split);
}
