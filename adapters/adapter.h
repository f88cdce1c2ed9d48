/*
 * adapter.h — the contract between the gateway core and one provider's wire format.
 *
 * An adapter is a const vtable of pure functions: it turns the client's OpenAI-shaped request
 * into the provider's HTTP request, and the provider's response bytes into OpenAI-shaped results
 * and stream events. It does no I/O, keeps no globals and allocates only in buffers its caller
 * owns, so every adapter is tested with fixture files alone (tests/adapters).
 *
 * OpenAI's Chat Completions format is the lingua franca inside Tollgate: translating adapters
 * emit OpenAI chunk JSON, and the OpenAI-compatible adapter forwards the upstream's bytes as they
 * are (the hot path: no DOM parse, see DESIGN §4). Slots are only ever appended; a new slot bumps
 * AD_ABI_VERSION.
 */
#ifndef AD_ADAPTER_H
#define AD_ADAPTER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "adapters/buf.h"
#include "adapters/json_scan.h"
#include "adapters/sse.h"

#define AD_ABI_VERSION 1

enum {
    AD_CAP_STREAM = 1u << 0,
    AD_CAP_TOOLS = 1u << 1,
    AD_CAP_VISION = 1u << 2,
    AD_CAP_EMBEDDINGS = 1u << 3,
    AD_CAP_JSON_MODE = 1u << 4,
    AD_CAP_PASSTHROUGH = 1u << 5, /* speaks OpenAI's format: bytes are forwarded untranslated */
};

typedef enum ad_op {
    AD_OP_CHAT = 1,
    AD_OP_EMBEDDINGS,
    AD_OP_COMPLETIONS,
} ad_op_t;

/** What the adapter needs to know about the upstream (from one model_list entry). */
typedef struct ad_deployment {
    const char *provider;       /* "openai", "mock", … */
    const char *upstream_model; /* the provider's model name */
    const char *api_base;       /* without trailing '/', NULL for the provider's default */
    const char *api_key;        /* NULL when none */
    const char *api_version;
    const json_t *params; /* litellm_params, for provider-specific keys (borrowed) */
} ad_deployment_t;

/** Token counts. -1 = not reported. */
typedef struct ad_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cached_tokens;
    int64_t reasoning_tokens;
} ad_usage_t;

/**
 * The client's request as the core scanned it: the original body plus the top-level facts the
 * core and adapters need. Spans point into body.
 */
typedef struct ad_request {
    ad_op_t op;
    const char *body;
    size_t body_len;
    ad_jspan_t model;          /* string span */
    ad_jspan_t stream_options; /* object span or type NONE */
    ad_jspan_t messages;       /* chat: array span; embeddings: input span */
    int stream;                /* "stream": true */
    int include_usage;         /* stream_options.include_usage: true */
    int64_t max_tokens;        /* max_tokens / max_completion_tokens, -1 when absent */
    int64_t n;                 /* "n", 1 when absent */
    ad_jspan_t user;           /* "user" (the end user), any type; type NONE when absent */
    int64_t now;               /* unix time the core stamps (adapters never read a clock) */
    const char *request_id;    /* the gateway's request id, for ids adapters must invent */
} ad_request_t;

#define AD_MAX_HEADERS 16

/** The HTTP request to send upstream; buffers belong to the caller (init them first). */
typedef struct ad_http_request {
    const char *method; /* static string */
    ad_buf_t url;
    ad_buf_t headers[AD_MAX_HEADERS]; /* each "Name: value" */
    size_t n_headers;
    ad_buf_t body;
    int body_is_original; /* body was left empty because the client's bytes go as they are */
} ad_http_request_t;

/*
 * Stream events. Passthrough adapters set raw to the upstream's exact SSE bytes; translating
 * adapters leave raw NULL and the core writes `data: <data>\n\n` (and `data: [DONE]\n\n` for
 * DONE). Translating adapters always emit the usage chunk (choices: []) when they learn usage and
 * mark it hidden unless st->client_wants_usage.
 */
typedef enum ad_event_type {
    AD_EV_CHUNK = 1, /* data: one OpenAI chat.completion.chunk JSON */
    AD_EV_COMMENT,   /* an SSE comment block (keep-alive); raw holds it */
    AD_EV_DONE,      /* the stream's normal end ([DONE] or the provider's terminal event) */
    AD_EV_ERROR,     /* an error inside the stream: data is an OpenAI error JSON object */
} ad_event_type_t;

typedef struct ad_event {
    ad_event_type_t type;
    const char *data; /* JSON for CHUNK and ERROR */
    size_t len;
    const char *raw; /* when non-NULL: the exact SSE bytes to relay to an OpenAI client */
    size_t raw_len;
    int hidden; /* the client did not ask for this chunk (usage chunk the gateway requested) */
} ad_event_t;

/** Receives stream events; return non-zero to stop the feed (it returns that value). */
typedef int (*ad_emit_cb)(void *ud, const ad_event_t *ev);

/**
 * Per-request stream state. The core zeroes it, points req at the request, and gives priv
 * state_size zeroed bytes for the adapter's own state; stream_free releases what the adapter
 * allocated inside it.
 */
typedef struct ad_stream {
    const ad_request_t *req;
    void *priv;
    ad_sse_t sse;
    int client_wants_usage; /* the client asked include_usage itself */
    int saw_done;
    int saw_error;
    ad_usage_t usage; /* latest usage seen in the stream */
    ad_buf_t scratch; /* adapter-owned scratch, freed by ad_stream_free */
    ad_emit_cb emit;
    void *emit_ud;
} ad_stream_t;

/** An OpenAI-shaped error derived from an upstream response. */
typedef struct ad_error {
    int status;       /* HTTP status to send the client */
    int retryable;    /* worth another try / another deployment */
    int64_t retry_ms; /* retry-after in ms, -1 unknown */
} ad_error_t;

typedef struct ad_adapter {
    const char *name;
    unsigned abi_version;
    unsigned caps;
    /**
     * Builds the upstream request. For passthrough adapters the body may be left empty with
     * body_is_original set when the client's bytes can go unchanged. Returns 0, or -1 with a
     * message in errbuf (the core answers 400).
     */
    int (*build_request)(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen);
    /**
     * Turns a complete successful (2xx) upstream body into the OpenAI response body in out
     * (may leave out empty to mean "forward the upstream body as is") and fills usage.
     * Returns 0, or -1 when the body is not what the provider sends.
     */
    int (*parse_response)(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage);
    /** Prepares stream state for one response. */
    void (*stream_init)(ad_stream_t *st, const ad_request_t *req);
    /**
     * Feeds upstream stream bytes (any split). Emits zero or more events. Returns 0, the emit
     * callback's non-zero value, or -1 on a framing error (the core ends the stream with an error).
     */
    int (*stream_feed)(ad_stream_t *st, const char *p, size_t n);
    /** End of upstream bytes: returns 1 when the stream was truncated (no terminal event seen). */
    int (*stream_finish)(ad_stream_t *st);
    /**
     * Maps a non-2xx upstream response to the client's status and an OpenAI error body in out
     * (left empty to forward the upstream body as is). retry_after_hdr is the upstream's
     * Retry-After value or NULL.
     */
    void (*map_error)(int status, const char *body, size_t len, const char *retry_after_hdr, ad_buf_t *out,
                      ad_error_t *err);
    /** Bytes of adapter state per stream (st->priv), zeroed by the core. */
    size_t state_size;
    /** Releases what the adapter allocated in its stream state; may be NULL. */
    void (*stream_free)(ad_stream_t *st);
} ad_adapter_t;

/**
 * Scans the client's body once (validating it) and fills r with its top-level facts; spans point
 * into body. Returns 0, or -1 when the body is not a JSON object (*err_off = byte offset).
 */
int ad_request_scan(ad_op_t op, const char *body, size_t len, ad_request_t *r, size_t *err_off);

/** The adapter for a provider name, or NULL. OpenAI-compatible names map to the openai adapter. */
const ad_adapter_t *ad_adapter_find(const char *provider);

void ad_http_request_init(ad_http_request_t *r, size_t max_body);
void ad_http_request_free(ad_http_request_t *r);
int ad_http_request_add_header(ad_http_request_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void ad_stream_free(ad_stream_t *st);

/** Reads OpenAI's usage object (span of `usage`) into u. Returns 0, -1 when not an object. */
int ad_usage_from_openai(ad_jspan_t usage, ad_usage_t *u);

/**
 * Writes OpenAI's error object {"error":{"message","type","param","code"}} into out.
 * code may be NULL (null in JSON).
 */
int ad_error_json(ad_buf_t *out, const char *message, const char *type, const char *code);

extern const ad_adapter_t ad_openai;
extern const ad_adapter_t ad_bedrock;
extern const ad_adapter_t ad_ollama, ad_azure, ad_openwebui; /* ollama serves ollama_chat too */
extern const ad_adapter_t ad_gemini;
extern const ad_adapter_t ad_anthropic;
extern const ad_adapter_t ad_mock;

#endif
