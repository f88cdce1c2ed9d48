/*
 * mock.h — the mock provider: deterministic OpenAI-format answers with configurable pacing.
 *
 * The mock needs no network and no key, so `make run` answers at once and tests have a provider
 * whose every byte is known. It renders exactly what an OpenAI-compatible upstream would send
 * (a chat.completion body, or an SSE stream that always carries the usage chunk, as upstreams do
 * when Tollgate asks for it); the core feeds those bytes through the same OpenAI adapter path as
 * real upstream bytes, paced by timers. litellm_params it reads:
 *   mock_response   the reply text (default: a fixed sentence)
 *   mock_ttft_ms    delay before the first byte (default 0)
 *   mock_token_ms   delay between streamed pieces (default 0: all at once)
 *   mock_dimensions embedding size (default 8; the request's `dimensions` wins)
 * With `tools` in the request and a user turn last, it calls the first tool with arguments
 * {"query": <last user text>}; with a tool result last, it answers "Tool result: <content>".
 */
#ifndef AD_MOCK_H
#define AD_MOCK_H

#include "adapters/adapter.h"

typedef struct ad_mock_plan {
    ad_op_t op;
    ad_buf_t text;      /* reply text, or tool arguments JSON when tool_name is set */
    ad_buf_t tool_name; /* empty: plain text reply */
    size_t n_pieces;    /* streamed content pieces */
    int64_t ttft_ms, token_ms;
    ad_usage_t usage;
    char id[64];
    long long created;
    ad_buf_t model;
    json_t *inputs; /* embeddings: array of strings */
    int dims;
    int base64;
} ad_mock_plan_t;

/** Reads the request and the deployment's mock_* params. 0, or -1 with a message (400). */
int ad_mock_plan(const ad_request_t *req, const ad_deployment_t *dep, const char *id, long long created,
                 ad_mock_plan_t *p, char *err, size_t errlen);
void ad_mock_plan_free(ad_mock_plan_t *p);

/** Full non-stream body: chat.completion or the embeddings list. */
int ad_mock_render_body(const ad_mock_plan_t *p, ad_buf_t *out);

/** Number of SSE events of the stream (role, pieces, finish, usage, [DONE]). */
size_t ad_mock_n_events(const ad_mock_plan_t *p);
/** Appends the exact SSE bytes of event i (0-based) to out. */
int ad_mock_render_event(const ad_mock_plan_t *p, size_t i, ad_buf_t *out);

#endif
