/*
 * gemini_int.h — what the files of the Gemini adapter share (private to adapters/gemini*.c).
 *
 *   gemini.c          the vtable: URL and headers, non-stream bodies, embeddings, errors, and the
 *                     mappings both response paths use (finish reasons, usage, tool-call ids)
 *   gemini_request.c  the client's OpenAI chat request → a generateContent body
 *   gemini_schema.c   JSON Schema → the OpenAPI subset Gemini accepts in tools and responseSchema
 *   gemini_stream.c   the streamGenerateContent?alt=sse stream → OpenAI chunks
 *
 * Gemini has no tool-call ids (newer models sometimes send functionCall.id) and wants the
 * thoughtSignature of a model's functionCall part back in later turns. OpenAI's format has no
 * place for it, so the signature travels inside the tool-call id we give the client:
 * "<id>__thought__<signature>"; the request side splits it off again. Ids we make up are
 * "call_<16 hex of FNV-1a(request id, response id)>_<n>", n counting the response's calls.
 */
#ifndef AD_GEMINI_INT_H
#define AD_GEMINI_INT_H

#include <jansson.h>

#include "adapters/adapter.h"
#include "adapters/oai_write.h"

/** Gemini returns at most 8 candidates (candidateCount 1–8). */
#define AD_GEMINI_MAX_CANDIDATES 8
#define AD_GEMINI_SIG_SEP "__thought__"
/* 16 significant digits print 0.7 as 0.7 (17 would give 0.69999999999999996). */
#define AD_GEMINI_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(16))
/* Bodies are parsed with NUL allowed inside strings: lengths are always taken from jansson. */
#define AD_GEMINI_LOAD_FLAGS (JSON_ALLOW_NUL)

/**
 * The generateContent body for an OpenAI chat request (parsed). Returns a new object, or NULL
 * with a client-facing message in err (the core answers 400).
 */
json_t *ad_gemini_chat_body(const json_t *req, const json_t *params, char *err, size_t errlen);

/**
 * A deep copy of a JSON Schema reduced to what Gemini's Schema object accepts: documented keys
 * only, local $refs inlined, type arrays and anyOf-with-null turned into nullable, oneOf read as
 * anyOf, const as a one-value enum. Never NULL for an object input; NULL for anything else.
 */
json_t *ad_gemini_schema(const json_t *schema);

/**
 * Gives every object schema in s that has none a propertyOrdering in declaration order: Gemini
 * orders the keys of structured output alphabetically otherwise, and clients expect theirs.
 */
void ad_gemini_schema_order(json_t *s);

/** OpenAI finish_reason for a Gemini finishReason (NULL → "stop"). */
const char *ad_gemini_finish_reason(const char *reason, int has_tool_calls);

/** Reads usageMetadata into u (absent counts are 0: proto3 JSON leaves zeros out). */
void ad_gemini_usage(const json_t *usage_metadata, ad_usage_t *u);

/**
 * Writes the OpenAI tool-call id for one functionCall part: its own id when Gemini sent one,
 * else a made-up one (seq = this call's position in the response), plus the part's
 * thoughtSignature after AD_GEMINI_SIG_SEP. 0, or -1 past out's ceiling.
 */
int ad_gemini_tool_call_id(const ad_request_t *req, const char *response_id, unsigned seq, const json_t *part,
                           ad_buf_t *out);

/** The model name for responses: modelVersion when sent, else the client's model (into buf). */
const char *ad_gemini_model_name(const ad_request_t *req, const json_t *resp, char *buf, size_t cap);

/* ---- streams (gemini_stream.c) ---- */

typedef struct ad_gemini_stream {
    ad_oai_stream_t oai[AD_GEMINI_MAX_CANDIDATES]; /* one per choice: choices[].index = position */
    int n_calls[AD_GEMINI_MAX_CANDIDATES];         /* tool calls started per choice (next index) */
    unsigned seen, finished;                       /* bit k: candidate k appeared / finished */
    unsigned n_ids;                                /* tool-call ids made so far (all choices) */
    char response_id[128];
    int begun;
    int failed; /* the upstream reported an error inside the stream */
    int broken; /* bytes that are not Gemini's stream: every later feed fails */
} ad_gemini_stream_t;

void ad_gemini_stream_init(ad_stream_t *st, const ad_request_t *req);
int ad_gemini_stream_feed(ad_stream_t *st, const char *p, size_t n);
int ad_gemini_stream_finish(ad_stream_t *st);

/** OpenAI error type and code for a Gemini error (status string may be NULL). */
void ad_gemini_error_kind(int http_status, const char *status, const char *message, const char **type,
                          const char **code);

#endif
