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

/** The adapter's map_error, shared with adapters whose errors look like OpenAI's. */
void ad_openai_map_error(int status, const char *body, size_t len, const char *retry_after,
                         ad_buf_t *out, ad_error_t *err);

#endif
