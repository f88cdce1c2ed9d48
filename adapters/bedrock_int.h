/*
 * bedrock_int.h — private interface between the two halves of the Bedrock adapter:
 * bedrock.c (request building, SigV4, the vtable) and bedrock_reply.c (Converse and embeddings
 * responses, the ConverseStream event-stream, error mapping). Also what the fixture tests reach
 * directly (finish-reason and exception tables).
 */
#ifndef AD_BEDROCK_INT_H
#define AD_BEDROCK_INT_H

#include "adapters/adapter.h"
#include "adapters/eventstream.h"
#include "adapters/oai_write.h"

#define AD_BEDROCK_MAX_TOOLS 128 /* tool-use blocks in one streamed answer */

/** Tool-use content block → OpenAI tool-call index, in the order the blocks started. */
typedef struct ad_bedrock_tool_slot {
    int64_t block;
    int index;
} ad_bedrock_tool_slot_t;

/** Per-stream state (st->priv). */
typedef struct ad_bedrock_stream {
    ad_es_decoder_t es;
    ad_oai_stream_t oai;
    ad_bedrock_tool_slot_t tools[AD_BEDROCK_MAX_TOOLS];
    int n_tools;
    int stopped;    /* messageStop seen, finish chunk sent */
    int have_usage; /* metadata seen */
    int ended;      /* [DONE] or an error event sent: later messages are ignored */
    int failed;     /* a message could not be understood: every later feed fails */
} ad_bedrock_stream_t;

/** OpenAI finish_reason for a Converse stopReason (providers.md §9); NULL/unknown → "stop". */
const char *ad_bedrock_finish_reason(const char *stop_reason);

/** An AWS exception name (any case, "com.amazon…#Name" and ":http…" suffix tolerated). */
typedef struct ad_bedrock_exception {
    const char *name;
    int status;
    const char *type; /* OpenAI error type */
    int retryable;
} ad_bedrock_exception_t;

/** The table entry for name, or NULL when unknown. */
const ad_bedrock_exception_t *ad_bedrock_exception(const char *name, size_t len);

/* bedrock_reply.c: the vtable slots that read responses */
int ad_bedrock_parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                              ad_usage_t *usage);
void ad_bedrock_stream_init(ad_stream_t *st, const ad_request_t *req);
int ad_bedrock_stream_feed(ad_stream_t *st, const char *p, size_t n);
int ad_bedrock_stream_finish(ad_stream_t *st);
void ad_bedrock_stream_free(ad_stream_t *st);
void ad_bedrock_map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                          ad_error_t *err);

#endif
