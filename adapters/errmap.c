/*
 * errmap.c — OpenAI-shaped errors for adapters of non-OpenAI providers (see errmap.h).
 */
#include "adapters/errmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE 8192

const char *ad_errmap_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

int ad_errmap_retryable(int status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

int64_t ad_errmap_retry_ms(const char *retry_after)
{
    if (retry_after == NULL)
        return -1;
    char *end;
    double s = strtod(retry_after, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == retry_after || *end != '\0' || !(s >= 0 && s < 86400))
        return -1;
    return (int64_t)(s * 1000);
}

static int str_or_null(ad_buf_t *out, const char *s)
{
    return s == NULL ? ad_buf_puts(out, "null") : ad_buf_append_json_str(out, s, strlen(s));
}

/* Long upstream messages are cut at a UTF-8 boundary: error bodies go into small buffers. */
static size_t message_len(const char *m)
{
    size_t n = strlen(m);
    if (n <= MAX_MESSAGE)
        return n;
    n = MAX_MESSAGE;
    while (n > 0 && ((unsigned char)m[n] & 0xc0) == 0x80)
        n--;
    return n;
}

int ad_errmap_json(ad_buf_t *out, const char *message, const char *type, const char *param, const char *code)
{
    size_t start = out->len;
    if (message == NULL)
        message = "";
    int rc = ad_buf_puts(out, "{\"error\":{\"message\":");
    rc |= ad_buf_append_json_str(out, message, message_len(message));
    rc |= ad_buf_puts(out, ",\"type\":");
    rc |= str_or_null(out, type);
    rc |= ad_buf_puts(out, ",\"param\":");
    rc |= str_or_null(out, param);
    rc |= ad_buf_puts(out, ",\"code\":");
    rc |= str_or_null(out, code);
    rc |= ad_buf_puts(out, "}}");
    if (rc != 0 && out->data != NULL) { /* never leave half an object behind */
        out->len = start;
        out->data[start] = '\0';
    }
    return rc ? -1 : 0;
}

void ad_errmap_snippet(int status, const char *body, size_t len, char *msg, size_t cap)
{
    char snippet[201];
    size_t shown = len < 200 ? len : 200, k = 0;
    for (size_t i = 0; i < shown; i++)
        snippet[k++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    while (k > 0 && snippet[k - 1] == ' ') /* trailing CRLFs of HTML pages */
        k--;
    snippet[k] = '\0';
    snprintf(msg, cap, "upstream returned HTTP %d%s%s", status, k ? ": " : "", snippet);
}
