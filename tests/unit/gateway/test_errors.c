/*
 * The gateway's error enum: every code maps to the status and OpenAI type of DESIGN §6, and the
 * JSON always has the four keys OpenAI's SDKs read (message, type, param, code).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "adapters/json_scan.h"
#include "gateway/errors.h"

Test(errors, status_and_type_table)
{
    struct {
        gw_err_t e;
        int status;
        const char *type;
    } want[] = {
        {GW_ERR_BAD_REQUEST, 400, "invalid_request_error"},
        {GW_ERR_BAD_JSON, 400, "invalid_request_error"},
        {GW_ERR_NO_KEY, 401, "authentication_error"},
        {GW_ERR_BAD_KEY, 401, "authentication_error"},
        {GW_ERR_FORBIDDEN, 403, "permission_error"},
        {GW_ERR_MODEL_NOT_FOUND, 404, "invalid_request_error"},
        {GW_ERR_METHOD, 405, "invalid_request_error"},
        {GW_ERR_TOO_LARGE, 413, "invalid_request_error"},
        {GW_ERR_RATE_LIMIT, 429, "rate_limit_error"},
        {GW_ERR_INTERNAL, 500, "api_error"},
        {GW_ERR_UPSTREAM, 502, "api_error"},
        {GW_ERR_UNAVAILABLE, 503, "api_error"},
        {GW_ERR_TIMEOUT, 504, "api_error"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const gw_err_info_t *info = gw_err_info(want[i].e);
        cr_assert_eq(info->status, want[i].status, "case %zu", i);
        cr_assert_str_eq(info->type, want[i].type, "case %zu", i);
    }
    cr_assert_eq(gw_err_info((gw_err_t)9999)->status, 500, "unknown codes are internal errors");
}

Test(errors, json_shape_has_four_keys_and_escapes)
{
    ad_buf_t b;
    ad_buf_init(&b, 4096);
    cr_assert_eq(gw_err_json(&b, GW_ERR_MODEL_NOT_FOUND, "model \"x\"\nmissing", "model"), 0);
    ad_jspan_t err, v;
    cr_assert_eq(ad_json_find(b.data, b.len, "error", &err), 1);
    const char *keys[] = {"message", "type", "param", "code"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(ad_json_find(err.p, err.len, keys[i], &v), 1, "key %s", keys[i]);
    char s[128];
    ad_json_find(err.p, err.len, "message", &v);
    ad_json_span_string(v, s, sizeof(s));
    cr_assert_str_eq(s, "model \"x\"\nmissing");
    ad_json_find(err.p, err.len, "code", &v);
    ad_json_span_string(v, s, sizeof(s));
    cr_assert_str_eq(s, "model_not_found");
    ad_buf_reset(&b);
    gw_err_json(&b, GW_ERR_BAD_REQUEST, "x", NULL);
    ad_json_find(b.data, b.len, "error", &err);
    cr_assert_eq(ad_json_find(err.p, err.len, "param", &v), 1);
    cr_assert_eq(v.type, AD_J_NULL, "absent param is JSON null");
    ad_json_find(err.p, err.len, "code", &v);
    cr_assert_eq(v.type, AD_J_NULL, "bad request has a null code");
    ad_buf_free(&b);
}

Test(errors, ceiling_reported)
{
    ad_buf_t b;
    ad_buf_init(&b, 16);
    cr_assert_eq(gw_err_json(&b, GW_ERR_BAD_REQUEST, "a long message that does not fit", NULL), -1);
    ad_buf_free(&b);
}
