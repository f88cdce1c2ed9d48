/*
 * errors.c — error enum → status, OpenAI type and code, and the replies that carry them.
 */
#include "gateway/errors.h"

#include <string.h>

static const gw_err_info_t infos[] = {
    [GW_ERR_BAD_REQUEST] = {400, "Bad Request", "invalid_request_error", NULL},
    [GW_ERR_BAD_JSON] = {400, "Bad Request", "invalid_request_error", "invalid_json"},
    [GW_ERR_NO_KEY] = {401, "Unauthorized", "authentication_error", "missing_api_key"},
    [GW_ERR_BAD_KEY] = {401, "Unauthorized", "authentication_error", "invalid_api_key"},
    [GW_ERR_FORBIDDEN] = {403, "Forbidden", "permission_error", "forbidden"},
    [GW_ERR_NOT_FOUND] = {404, "Not Found", "invalid_request_error", "not_found"},
    [GW_ERR_MODEL_NOT_FOUND] = {404, "Not Found", "invalid_request_error", "model_not_found"},
    [GW_ERR_METHOD] = {405, "Method Not Allowed", "invalid_request_error", "method_not_allowed"},
    [GW_ERR_TOO_LARGE] = {413, "Payload Too Large", "invalid_request_error", "request_too_large"},
    [GW_ERR_RATE_LIMIT] = {429, "Too Many Requests", "rate_limit_error", "rate_limit_exceeded"},
    [GW_ERR_INTERNAL] = {500, "Internal Server Error", "api_error", "internal_error"},
    [GW_ERR_UPSTREAM] = {502, "Bad Gateway", "api_error", "upstream_error"},
    [GW_ERR_UNAVAILABLE] = {503, "Service Unavailable", "api_error", "service_unavailable"},
    [GW_ERR_TIMEOUT] = {504, "Gateway Timeout", "api_error", "upstream_timeout"},
    [GW_ERR_BUDGET] = {429, "Too Many Requests", "budget_exceeded", "budget_exceeded"},
};

const gw_err_info_t *gw_err_info(gw_err_t e)
{
    if ((size_t)e >= sizeof(infos) / sizeof(infos[0]) || infos[e].status == 0)
        e = GW_ERR_INTERNAL;
    return &infos[e];
}

static int append_str_or_null(ad_buf_t *out, const char *s)
{
    return s == NULL ? ad_buf_puts(out, "null") : ad_buf_append_json_str(out, s, strlen(s));
}

int gw_err_json(ad_buf_t *out, gw_err_t e, const char *message, const char *param)
{
    const gw_err_info_t *info = gw_err_info(e);
    int rc = ad_buf_puts(out, "{\"error\":{\"message\":");
    rc |= ad_buf_append_json_str(out, message, strlen(message));
    rc |= ad_buf_puts(out, ",\"type\":");
    rc |= append_str_or_null(out, info->type);
    rc |= ad_buf_puts(out, ",\"param\":");
    rc |= append_str_or_null(out, param);
    rc |= ad_buf_puts(out, ",\"code\":");
    rc |= append_str_or_null(out, info->code);
    rc |= ad_buf_puts(out, "}}");
    return rc ? -1 : 0;
}

void gw_reply_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = status;
    req->res.reason = reason;
    /* a known length keeps HTTP/1.1 connections alive: h2o only chunks 200 responses */
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

int gw_reply_error(h2o_req_t *req, gw_err_t e, const char *message, const char *param)
{
    ad_buf_t b;
    ad_buf_init(&b, 64 * 1024);
    const gw_err_info_t *info = gw_err_info(e);
    if (gw_err_json(&b, e, message, param) != 0) {
        ad_buf_reset(&b);
        gw_err_json(&b, GW_ERR_INTERNAL, "error message too long", NULL);
        info = gw_err_info(GW_ERR_INTERNAL);
    }
    gw_reply_json(req, info->status, info->reason, b.data, b.len);
    ad_buf_free(&b);
    return -1;
}
