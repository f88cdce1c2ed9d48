/*
 * anthropic_int.h — private to the Anthropic adapter (anthropic.c, anthropic_request.c).
 *
 * The adapter spans two files: anthropic_request.c turns the client's OpenAI chat request into a
 * Messages API request, anthropic.c turns Anthropic's responses, streams and errors back into
 * OpenAI's shapes and holds the vtable (ad_anthropic, declared in adapter.h).
 */
#ifndef AD_ANTHROPIC_INT_H
#define AD_ANTHROPIC_INT_H

#include "adapters/adapter.h"

#define AD_ANTHROPIC_DEFAULT_BASE "https://api.anthropic.com"
#define AD_ANTHROPIC_VERSION "2023-06-01"
/* Anthropic requires max_tokens; LiteLLM's default when neither the client nor the deployment
 * sets one. */
#define AD_ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/**
 * build_request slot: POST {api_base}/v1/messages with x-api-key, anthropic-version and the
 * translated body. Returns 0, or -1 with a client-facing message in errbuf (the core answers 400).
 */
int ad_anthropic_build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                               char *errbuf, size_t errlen);

#endif
