/*
 * surface_common.c — JSON helpers shared by the inbound-surface translators (see surface_int.h).
 */
#include "adapters/surface_int.h"
#include "adapters/json_scan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *ad_surf_parse(const char *p, size_t len, json_error_t *je)
{
    json_error_t local;
    return json_loadb(p, len, JSON_ALLOW_NUL, je != NULL ? je : &local);
}

void ad_surf_truncate(ad_buf_t *b, size_t len)
{
    if (b->data == NULL || len > b->len)
        return;
    b->len = len;
    b->data[len] = '\0';
}

/* Short escapes where JSON has them (Anthropic and OpenAI write "\n", not "\u000a"; model output
 * is full of newlines), \u00XX for the other control bytes; everything else, UTF-8 included, as is. */
int ad_surf_json_str(ad_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t mark = out->len, i = 0;
    int rc = ad_buf_puts(out, "\"");
    while (i < n && rc == 0) {
        size_t run = i;
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        rc |= ad_buf_append(out, s + i, run - i);
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc != NULL) {
            rc |= ad_buf_puts(out, esc);
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0x0f]};
            rc |= ad_buf_append(out, u, sizeof(u));
        }
        i = run + 1;
    }
    rc |= ad_buf_puts(out, "\"");
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc ? -1 : 0;
}

/* The shortest "%.*g" that reads back as the same double, kept recognisably real (1 → 1.0). */
static int put_real(ad_buf_t *out, double d)
{
    char s[40];
    if (!isfinite(d)) /* jansson never builds these; null keeps the output valid JSON anyway */
        return ad_buf_puts(out, "null");
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    if (strpbrk(s, ".eE") == NULL)
        return ad_buf_appendf(out, "%s.0", s);
    return ad_buf_puts(out, s);
}

static int put_value(const json_t *v, ad_buf_t *out, unsigned depth);

/* Members and elements stop at the first failure and return its code (-1 full, -2 too deep). */
static int put_object(const json_t *v, ad_buf_t *out, unsigned depth)
{
    if (ad_buf_puts(out, "{") != 0)
        return -1;
    int first = 1;
    for (void *it = json_object_iter((json_t *)v); it != NULL; it = json_object_iter_next((json_t *)v, it)) {
        if ((!first && ad_buf_puts(out, ",") != 0) ||
            ad_surf_json_str(out, json_object_iter_key(it), json_object_iter_key_len(it)) != 0 ||
            ad_buf_puts(out, ":") != 0)
            return -1;
        first = 0;
        int rc = put_value(json_object_iter_value(it), out, depth);
        if (rc != 0)
            return rc;
    }
    return ad_buf_puts(out, "}");
}

static int put_array(const json_t *v, ad_buf_t *out, unsigned depth)
{
    if (ad_buf_puts(out, "[") != 0)
        return -1;
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (i > 0 && ad_buf_puts(out, ",") != 0)
            return -1;
        int rc = put_value(json_array_get(v, i), out, depth);
        if (rc != 0)
            return rc;
    }
    return ad_buf_puts(out, "]");
}

/* depth = containers already open around v. Output deeper than the core's scanner accepts
 * (AD_JSON_MAX_DEPTH) is refused here with -2, where the cause can still be named. */
static int put_value(const json_t *v, ad_buf_t *out, unsigned depth)
{
    int container = json_is_object(v) || json_is_array(v);
    if (container && depth >= AD_JSON_MAX_DEPTH)
        return -2;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(v, out, depth + 1);
    case JSON_ARRAY:
        return put_array(v, out, depth + 1);
    case JSON_STRING:
        return ad_surf_json_str(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return ad_buf_appendf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return put_real(out, json_real_value(v));
    case JSON_TRUE:
        return ad_buf_puts(out, "true");
    case JSON_FALSE:
        return ad_buf_puts(out, "false");
    case JSON_NULL:
    default:
        return ad_buf_puts(out, "null");
    }
}

int ad_surf_write_json(const json_t *v, ad_buf_t *out)
{
    size_t mark = out->len;
    int rc = v != NULL ? put_value(v, out, 0) : -1;
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc == -2 ? -2 : rc != 0 ? -1 : 0;
}

int ad_surf_append_str(ad_buf_t *out, const json_t *s)
{
    return json_is_string(s) ? ad_buf_append(out, json_string_value(s), json_string_length(s)) : 0;
}

int ad_surf_content_text(const json_t *content, const char *sep, ad_buf_t *out)
{
    if (json_is_string(content))
        return ad_surf_append_str(out, content);
    int rc = 0, first = 1;
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t *t = json_object_get(json_array_get(content, i), "text");
        if (!json_is_string(t))
            continue;
        rc |= first ? 0 : ad_buf_puts(out, sep);
        rc |= ad_surf_append_str(out, t);
        first = 0;
    }
    return rc;
}

static const char *str_or_null(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void ad_surf_error_fields(const json_t *root, const char **message, const char **type, const char **code)
{
    const json_t *e = json_object_get(root, "error");
    *message = *type = *code = NULL;
    if (json_is_string(e)) {
        *message = json_string_value(e);
        return;
    }
    if (!json_is_object(e))
        e = root; /* a bare error object */
    *message = str_or_null(json_object_get(e, "message"));
    *type = str_or_null(json_object_get(e, "type"));
    *code = str_or_null(json_object_get(e, "code"));
}

int64_t ad_surf_int(const json_t *obj, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int ad_surf_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
