/*
 * call.h — one model call: client request → adapter → upstream (or the in-process mock) →
 * response relayed to the client, streaming with backpressure both ways.
 */
#ifndef GW_CALL_H
#define GW_CALL_H

#include <h2o.h>

#include "adapters/adapter.h"
#include "gateway/request.h"

/** Handles POST /v1/chat/completions (op AD_OP_CHAT) and /v1/embeddings. Returns 0 (h2o). */
int gw_call_handle(gw_reqctx_t *rc, ad_op_t op);

#endif
