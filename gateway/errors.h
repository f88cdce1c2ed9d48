/*
 * errors.h — the one error enum of the gateway and its single map to HTTP status and OpenAI's
 * error JSON ({"error":{"message","type","param","code"}}). Handlers reply with gw_reply_error
 * and return, which keeps them flat.
 */
#ifndef GW_ERRORS_H
#define GW_ERRORS_H

#include <h2o.h>
#include "adapters/buf.h"

typedef enum gw_err {
    GW_ERR_BAD_REQUEST = 1, /* 400 invalid_request_error */
    GW_ERR_BAD_JSON,        /* 400 invalid_request_error, code invalid_json */
    GW_ERR_NO_KEY,          /* 401 authentication_error, code missing_api_key */
    GW_ERR_BAD_KEY,         /* 401 authentication_error, code invalid_api_key */
    GW_ERR_FORBIDDEN,       /* 403 permission_error */
    GW_ERR_NOT_FOUND,       /* 404 invalid_request_error, code not_found */
    GW_ERR_MODEL_NOT_FOUND, /* 404 invalid_request_error, code model_not_found */
    GW_ERR_METHOD,          /* 405 invalid_request_error, code method_not_allowed */
    GW_ERR_TOO_LARGE,       /* 413 invalid_request_error, code request_too_large */
    GW_ERR_RATE_LIMIT,      /* 429 rate_limit_error */
    GW_ERR_INTERNAL,        /* 500 api_error */
    GW_ERR_UPSTREAM,        /* 502 api_error, code upstream_error */
    GW_ERR_UNAVAILABLE,     /* 503 api_error, code service_unavailable (draining) */
    GW_ERR_TIMEOUT,         /* 504 api_error, code upstream_timeout */
    GW_ERR_BUDGET,          /* 429 budget_exceeded */
} gw_err_t;

typedef struct gw_err_info {
    int status;
    const char *reason;
    const char *type;
    const char *code; /* NULL = JSON null */
} gw_err_info_t;

const gw_err_info_t *gw_err_info(gw_err_t e);

/** Writes the OpenAI error JSON for e into out. param may be NULL. */
int gw_err_json(ad_buf_t *out, gw_err_t e, const char *message, const char *param);

/**
 * Sends the error response (status, JSON body, content-type) on req and returns -1 so handlers
 * can `return gw_reply_error(...)`. Must be called before the response has started.
 */
int gw_reply_error(h2o_req_t *req, gw_err_t e, const char *message, const char *param);

/** Sends a complete JSON response with the given status. */
void gw_reply_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len);

#endif
