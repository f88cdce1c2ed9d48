/*
 * fuzz_bedrock_stream.c — libFuzzer target for the Bedrock adapter's ConverseStream side
 * (event-stream frames → OpenAI chunk events).
 *
 * Input layout: byte 0 = flags (bit 0: structured mode, bit 1: the client asked include_usage),
 * bytes 1-2 a cut offset, the rest the body. In raw mode the body is fed as it is (exercising the
 * framing); in structured mode it is read as records [kind u8][len u8][len bytes] and each record
 * becomes a valid frame (right CRCs) whose kind picks the message/event type and whose bytes are
 * the JSON payload, so the fuzzer spends its time in the event handling rather than on CRCs.
 *
 * Properties checked (any violation aborts):
 *   1. feeding the body whole and cut at the offset gives identical events (type, hidden flag,
 *      data), the same feed status, truncation verdict and usage;
 *   2. every CHUNK and ERROR carries valid JSON, translating adapters never set raw;
 *   3. at most one DONE, nothing after DONE or ERROR.
 */
#include "adapters/eventstream.h"
#include "fuzz_kit.h"

typedef struct result {
    ad_buf_t log;
    int ended;
    fz_outcome_t out;
} result_t;

static int on_ev(void *ud, const ad_event_t *ev)
{
    result_t *r = ud;
    check(!r->ended && ev->raw == NULL);
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        check(ad_json_validate(ev->data, ev->len, NULL) == 0);
    r->ended = ev->type == AD_EV_DONE || ev->type == AD_EV_ERROR;
    check(ad_buf_appendf(&r->log, "%d%d:", (int)ev->type, ev->hidden) == 0);
    if (ev->data != NULL)
        check(ad_buf_append(&r->log, ev->data, ev->len) == 0);
    check(ad_buf_append(&r->log, "\n", 1) == 0);
    return 0;
}

static void run(const char *p, size_t n, size_t cut, int wants_usage, result_t *r)
{
    static const char with[] =
        "{\"model\":\"m\",\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    static const char without[] = "{\"model\":\"m\",\"messages\":[],\"stream\":true}";
    const char *body = wants_usage ? with : without;
    ad_request_t req;
    check(ad_request_scan(AD_OP_CHAT, body, strlen(body), &req, NULL) == 0);
    req.now = 1704067200;
    req.request_id = "fuzz";
    memset(r, 0, sizeof(*r));
    ad_buf_init(&r->log, (size_t)1 << 30);
    fz_run_stream(&ad_bedrock, &req, p, n, cut, FZ_RC_ZERO_OR_MINUS1 | FZ_STICKY_RETRY, on_ev, r, &r->out);
}

/* Structured mode: records → valid frames. */
static void build_frames(const unsigned char *p, size_t n, ad_buf_t *out)
{
    static const struct {
        const char *msg_type, *type_header, *type;
    } kinds[] = {
        {"event", ":event-type", "messageStart"},
        {"event", ":event-type", "contentBlockStart"},
        {"event", ":event-type", "contentBlockDelta"},
        {"event", ":event-type", "contentBlockStop"},
        {"event", ":event-type", "messageStop"},
        {"event", ":event-type", "metadata"},
        {"event", ":event-type", "somethingNew"},
        {"exception", ":exception-type", "throttlingException"},
        {"exception", ":exception-type", "validationException"},
        {"error", ":error-code", "InternalFailure"},
        {"other", ":event-type", "metadata"},
    };
    size_t i = 0;
    while (i + 2 <= n) {
        size_t k = p[i] % (sizeof(kinds) / sizeof(kinds[0])), len = p[i + 1];
        i += 2;
        if (len > n - i)
            len = n - i;
        ad_es_header_t h[3] = {
            {.name = kinds[k].type_header,
             .name_len = strlen(kinds[k].type_header),
             .type = AD_ES_STRING,
             .bytes = (const unsigned char *)kinds[k].type,
             .bytes_len = strlen(kinds[k].type)},
            {.name = ":error-message",
             .name_len = 14,
             .type = AD_ES_STRING,
             .bytes = p + i,
             .bytes_len = len},
            {.name = ":message-type",
             .name_len = 13,
             .type = AD_ES_STRING,
             .bytes = (const unsigned char *)kinds[k].msg_type,
             .bytes_len = strlen(kinds[k].msg_type)},
        };
        check(ad_es_encode(h, 3, p + i, len, out) == 0);
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int structured = data[0] & 1, wants_usage = (data[0] >> 1) & 1;
    ad_buf_t body;
    ad_buf_init(&body, (size_t)1 << 30);
    if (structured)
        build_frames(data + 3, size - 3, &body);
    else
        check(ad_buf_append(&body, data + 3, size - 3) == 0);
    const char *p = body.data != NULL ? body.data : "";
    size_t n = body.len, cut = fz_cut(data + 1, n);
    result_t whole, split;
    run(p, n, 0, wants_usage, &whole);
    run(p, n, cut, wants_usage, &split);
    fz_check_same(&whole.out, &split.out, &whole.log, &split.log);
    ad_buf_free(&whole.log);
    ad_buf_free(&split.log);
    ad_buf_free(&body);
    return 0;
}
