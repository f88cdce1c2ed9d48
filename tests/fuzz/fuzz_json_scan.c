/*
 * fuzz_json_scan.c — libFuzzer target for the JSON scanner, cross-checked against jansson.
 *
 * jansson is stricter than RFC 8259 in a few known ways (it decodes, so it rejects invalid UTF-8,
 * unpaired surrogate escapes, integers outside int64, reals that overflow, and "\u0000" in keys),
 * and more lenient in two (nesting up to 2048 where we stop at AD_JSON_MAX_DEPTH; a raw NUL byte
 * outside strings is taken for the end of input). So:
 *   - jansson accepts, the depth is within our limit and there is no raw NUL  =>  the scanner must
 *     accept, and every member it reports must decode to what jansson decoded;
 *   - the scanner accepts but jansson rejects  =>  jansson's reason must be one of the known
 *     stricter ones above.
 * Plus internal consistency: scan_object agrees with validate, err_off stays in bounds, and the
 * accessors never read outside their span (ASan).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/json_scan.h"

#define MAX_MEMBERS 256

typedef struct member {
    const char *key;
    size_t keylen, key_off;
    ad_jspan_t value;
} member_t;

typedef struct members {
    member_t m[MAX_MEMBERS];
    size_t n;
    size_t total;
} members_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

static int on_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t value)
{
    members_t *ms = ud;
    check(key[-1] == '"' && key[keylen] == '"');
    check(ad_json_validate(value.p, value.len, NULL) == 0);
    if (ms->n < MAX_MEMBERS)
        ms->m[ms->n++] = (member_t){key, keylen, key_off, value};
    ms->total++;
    return 0;
}

static size_t tree_depth(const json_t *j)
{
    size_t d = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            size_t c = tree_depth(v);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            size_t c = tree_depth(json_array_get(j, i));
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

/* The scanner's view of one value must equal jansson's decoded value. */
static void check_value(ad_jspan_t v, const json_t *j, char *scratch, size_t cap)
{
    switch (json_typeof(j)) {
    case JSON_STRING: {
        long n = ad_json_span_string(v, scratch, cap);
        check(n >= 0 && (size_t)n == json_string_length(j));
        check(memcmp(scratch, json_string_value(j), (size_t)n) == 0);
        break;
    }
    case JSON_INTEGER: {
        int64_t i;
        check(v.type == AD_J_NUMBER && ad_json_span_int64(v, &i) == 0 && i == json_integer_value(j));
        break;
    }
    case JSON_REAL: {
        double d;
        int64_t i;
        check(v.type == AD_J_NUMBER && ad_json_span_int64(v, &i) == -1);
        /* The accessor refuses number texts over 1024 bytes (documented); jansson does not. */
        if (v.len <= 1024)
            check(ad_json_span_double(v, &d) == 0 && d == json_real_value(j));
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE: {
        int b;
        check(ad_json_span_bool(v, &b) == 0 && b == json_is_true(j));
        break;
    }
    case JSON_NULL:
        check(v.type == AD_J_NULL);
        break;
    case JSON_OBJECT:
        check(v.type == AD_J_OBJECT);
        break;
    case JSON_ARRAY:
        check(v.type == AD_J_ARRAY);
        break;
    }
}

/* A member is compared when it is the last one with its key: jansson keeps the last duplicate. */
static void check_members(const members_t *ms, const json_t *obj, char *scratch, size_t cap)
{
    check(ms->total >= json_object_size(obj));
    if (ms->total != ms->n)
        return;
    for (size_t i = 0; i < ms->n; i++) {
        ad_jspan_t ks = {ms->m[i].key - 1, ms->m[i].keylen + 2, AD_J_STRING};
        long kn = ad_json_span_string(ks, scratch, cap);
        check(kn >= 0);
        json_t *v = json_object_getn(obj, scratch, (size_t)kn);
        check(v != NULL);
        check(ad_json_key_eq(ms->m[i].key, ms->m[i].keylen, scratch) == ((size_t)kn == strlen(scratch)));
        int last = 1;
        for (size_t k = i + 1; k < ms->n && last; k++)
            last = !ad_json_key_eq(ms->m[k].key, ms->m[k].keylen, scratch);
        if (last && (size_t)kn == strlen(scratch))
            check_value(ms->m[i].value, v, scratch + kn + 1, cap - (size_t)kn - 1);
    }
}

/* jansson refused something the scanner accepted: only its known extra strictness may explain it. */
static void check_stricter_reason(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_invalid_utf8:
    case json_error_numeric_overflow:
    case json_error_null_byte_in_key:
    case json_error_out_of_memory:
        return;
    case json_error_invalid_syntax:
        /* "invalid Unicode '\uD800'": an unpaired surrogate (bad hex reads "invalid Unicode escape") */
        check(strncmp(err->text, "invalid Unicode '", 17) == 0);
        return;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t err = SIZE_MAX, oerr = SIZE_MAX;
    int valid = ad_json_validate(p, size, &err) == 0;
    check(valid || err <= size);

    members_t *ms = calloc(1, sizeof *ms);
    check(ms != NULL);
    int obj = ad_json_scan_object(p, size, on_member, ms, &oerr);
    check(obj == 0 || obj == -1);
    check(obj == -1 || valid);
    check(obj == 0 || oerr <= size);
    size_t ws = 0;
    while (ws < size && (p[ws] == ' ' || p[ws] == '\t' || p[ws] == '\n' || p[ws] == '\r'))
        ws++;
    check(!valid || (obj == 0) == (ws < size && p[ws] == '{'));

    json_error_t jerr;
    json_t *j = json_loadb(p, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    /* jansson's buffer reader mistakes a raw NUL byte outside strings for the end of input
     * ("[1\0]" loads), so inputs holding one say nothing about the scanner. */
    int lenient = memchr(p, '\0', size) != NULL;
    if (j != NULL && !lenient && tree_depth(j) <= AD_JSON_MAX_DEPTH) {
        check(valid);
        if (json_is_object(j)) {
            check(obj == 0);
            char *scratch = malloc(2 * size + 2);
            check(scratch != NULL);
            check_members(ms, j, scratch, 2 * size + 2);
            free(scratch);
        }
    }
    if (j == NULL && valid)
        check_stricter_reason(&jerr);
    json_decref(j);
    free(ms);
    return 0;
}
