/*
 * json_scan.h — a validating, allocation-free scanner for the top level of a JSON text.
 *
 * The hot path never builds a DOM of a request body: it walks the top-level object once, validates
 * every value's syntax on the way (RFC 8259: strings with escapes and UTF-8 left as bytes,
 * numbers, literals, nesting up to a depth limit), and reports each member as a key plus the raw
 * span of its value in the source. Callers then splice bytes (replace the `model` value, append a
 * member) and forward the original body. Spans point into the caller's buffer; nothing is copied.
 */
#ifndef AD_JSON_SCAN_H
#define AD_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AD_JSON_MAX_DEPTH 256

typedef enum ad_jtype {
    AD_J_NONE = 0,
    AD_J_OBJECT,
    AD_J_ARRAY,
    AD_J_STRING,
    AD_J_NUMBER,
    AD_J_TRUE,
    AD_J_FALSE,
    AD_J_NULL,
} ad_jtype_t;

/** A value's raw bytes in the source: for strings the span includes the quotes. */
typedef struct ad_jspan {
    const char *p;
    size_t len;
    ad_jtype_t type;
} ad_jspan_t;

/**
 * Called once per top-level member, in document order. key/keylen is the raw key between the
 * quotes (escapes not decoded; use ad_json_key_eq to compare). key_off is the offset of the key's
 * opening quote from the start of the scanned text; the member ends at value.p + value.len.
 * Return 0 to go on, non-zero to stop (the scan then returns that value).
 */
typedef int (*ad_json_member_cb)(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t value);

/**
 * Validates that p[0..len) is exactly one JSON object (leading/trailing whitespace allowed) and
 * calls cb for each top-level member. Returns 0 when valid and fully scanned, the callback's
 * non-zero value if it stopped early (validation of the rest is then skipped), or -1 when the
 * text is not valid JSON or not an object; then *err_off (if non-NULL) receives the byte offset of
 * the first error. cb may be NULL (pure validation).
 */
int ad_json_scan_object(const char *p, size_t len, ad_json_member_cb cb, void *ud, size_t *err_off);

/** Validates one complete JSON value of any type (whitespace around allowed). 0 valid, -1 not. */
int ad_json_validate(const char *p, size_t len, size_t *err_off);

/**
 * Finds a top-level member by (decoded) key in an object text. Returns 1 and fills *out when
 * found (the first occurrence), 0 when absent, -1 when the text is not a valid object.
 */
int ad_json_find(const char *obj, size_t len, const char *key, ad_jspan_t *out);

/** 1 when the raw (escaped) key equals the plain ASCII/UTF-8 string want (wantlen bytes), else 0. */
int ad_json_key_eq_n(const char *raw, size_t rawlen, const char *want, size_t wantlen);

/** 1 when the raw (escaped) key equals the plain ASCII/UTF-8 string want, else 0. Inline so that
 * the length of a literal want is known at compile time. */
static inline int ad_json_key_eq(const char *raw, size_t rawlen, const char *want)
{
    return ad_json_key_eq_n(raw, rawlen, want, strlen(want));
}

/** Value accessors: 0 on success, -1 on type mismatch or overflow. */
int ad_json_span_bool(ad_jspan_t v, int *out);
int ad_json_span_int64(ad_jspan_t v, int64_t *out); /* integers only (no fraction/exponent) */
int ad_json_span_double(ad_jspan_t v, double *out);
/**
 * Decodes a string value (escapes, \uXXXX with surrogate pairs to UTF-8) into out[0..cap),
 * NUL-terminated. Returns the decoded length, or -1 when not a string or it does not fit.
 */
long ad_json_span_string(ad_jspan_t v, char *out, size_t cap);

#endif
