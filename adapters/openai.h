/*
 * openai.h — entry points of the OpenAI-compatible adapter that the core's hot path uses
 * directly (it prebuilds URL and headers per deployment and only needs the body splice).
 */
#ifndef AD_OPENAI_H
#define AD_OPENAI_H

#include "adapters/adapter.h"

/**
 * Writes the client's body with the model value replaced by upstream_model (JSON-escaped) and,
 * for streams the client did not ask usage for, stream_options.include_usage set to true.
 * Every other byte is kept. Returns 0, or -1 when out's ceiling is hit.
 */
int ad_openai_splice_body(const ad_request_t *req, const char *upstream_model, ad_buf_t *out);

/**
 * The adapter's handling of one SSE block of an OpenAI stream (st set up by ad_openai's
 * stream_init): relays it with its raw bytes (ev->raw may be NULL for a block the caller rewrote:
 * the core then writes `data: <data>`), learns usage and errors, marks [DONE], and hides the usage
 * chunk the client did not ask for. For adapters that frame OpenAI streams with a filter of their
 * own (azure, openwebui). ud is the ad_stream_t; returns the emit callback's value.
 */
int ad_openai_on_sse(void *ud, const ad_sse_event_t *ev);

/** The adapter's map_error, shared with adapters whose errors look like OpenAI's. */
void ad_openai_map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                         ad_error_t *err);

#endif
