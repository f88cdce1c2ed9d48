/*
 * test_json_scan.c — the request-body scanner: a broad validity table (RFC 8259 strictness),
 * exact member reporting, key comparison through escapes, and the value accessors.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/json_scan.h"

typedef struct doc_case {
    const char *doc;
    size_t len; /* 0: strlen(doc) */
    int valid;  /* as one JSON value of any type */
} doc_case_t;

#define V(s)                                                                                                 \
    {                                                                                                        \
        s, 0, 1                                                                                              \
    }
#define X(s)                                                                                                 \
    {                                                                                                        \
        s, 0, 0                                                                                              \
    }

static const doc_case_t docs[] = {
    /* valid */
    V("{}"),
    V(" \t\r\n{ \t\r\n} \t\r\n"),
    V("{\"a\":1}"),
    V("{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}"),
    V("{\"a\" : 1 , \"b\" : 2}"),
    V("{\"\":\"\"}"),
    V("{\"a\":{\"b\":{\"c\":[[[]]]}}}"),
    V("{\"a\":1,\"a\":2}"),
    V("{\"k\":\"v\\u0000\"}"),
    V("{\"mod\\u0065l\":\"x\"}"),
    V("[]"),
    V("[ [ ] , { } ]"),
    V("[1, -0, 0.5, 1e10, 1E+2, 1e-2, -12.34e56, 0e0, 1.0E-0]"),
    V("\"str\""),
    V("\"\""),
    V("0"),
    V("-0"),
    V("1e400"),
    V("123456789012345678901234567890"),
    V("true"),
    V("false"),
    V("null"),
    V(" null "),
    V("\"\\u00e9\\ud83d\\ude00\""),
    V("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    V("\"\\uABCD\\uabcd\""),
    V("\"\xc3\xa9\xf0\x9f\x98\x80\""),
    V("\"\xff\xfe\x80\""),
    V("\"\\ud800\""),
    V("\"abcdefgh\\\"ijklmnop\""),
    V("\"abcdefghijklmnopqrstuvwxyz0123456789 long enough for several words\""),
    V("\"\x7f\""),
    V("[\"a\",{\"b\":[\"c\",{\"d\":\"e\"}]},\"f\"]"),
    V("{\"a\":[],\"b\":{},\"c\":\"\"}"),
    /* invalid */
    X(""),
    X("   "),
    X("{"),
    X("}"),
    X("{\"a\":1,}"),
    X("[1,]"),
    X("[,1]"),
    X("{,}"),
    X("{\"a\"}"),
    X("{\"a\":}"),
    X("{\"a\" 1}"),
    X("{a:1}"),
    X("{'a':1}"),
    X("01"),
    X("-01"),
    X("00"),
    X("[01]"),
    X("1."),
    X(".5"),
    X("-"),
    X("[-]"),
    X("+1"),
    X("1e"),
    X("1e+"),
    X("[1.e5]"),
    X("0x10"),
    X("NaN"),
    X("Infinity"),
    X("-Infinity"),
    X("tru"),
    X("truex"),
    X("nul"),
    X("True"),
    X("\"abc"),
    X("\"a\tb\""),
    X("\"a\nb\""),
    X("\"\x01\""),
    X("\"\x1f\""),
    X("\"abcdefghijk\x02lmnopq\""),
    X("\"\\a\""),
    X("\"\\x41\""),
    X("\"\\u12\""),
    X("\"\\u12G4\""),
    X("\"\\U0041\""),
    X("\"\\"),
    X("\"\\\""),
    X("{\"a\\u00\":1}"),
    X("[1 2]"),
    X("{\"a\":1 \"b\":2}"),
    X("[1]]"),
    X("[[1]"),
    X("{\"a\":1}}"),
    X("{\"a\":1} x"),
    X("{} {}"),
    X("[1]x"),
    X("1 2"),
    X("\"abc\"x"),
    X("\xef\xbb\xbf{}"),
    X("[1,2"),
    X("{\"a\":[}"),
    X("{\"a\":{]}"),
    X("[}"),
    X("\xc3\xa9"),
    X("{\"a\":1,\"b\"}"),
    X("{\"a\":\"\\ud83d\\ude00\""),
    X("/*c*/{}"),
    X("{\"a\":1}//"),
    X("{\"a\":1}\v"),
    {"{\"a\":1}\0", 8, 0},
    {"\"a\0b\"", 5, 0},
    {"[1,\0]", 5, 0},
};

static size_t doc_len(const doc_case_t *c)
{
    return c->len != 0 ? c->len : strlen(c->doc);
}

/* The first non-whitespace byte is '{'. */
static int looks_like_object(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && strchr(" \t\r\n", p[i]) != NULL && p[i] != '\0')
        i++;
    return i < n && p[i] == '{';
}

Test(json_scan, table_has_enough_cases)
{
    cr_assert_geq(sizeof docs / sizeof docs[0], 60);
}

Test(json_scan, validate_table)
{
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        size_t n = doc_len(&docs[i]), err = SIZE_MAX;
        int rc = ad_json_validate(docs[i].doc, n, &err);
        cr_assert_eq(rc, docs[i].valid ? 0 : -1, "case %zu <%s>: got %d", i, docs[i].doc, rc);
        if (!docs[i].valid)
            cr_assert_leq(err, n, "case %zu err_off %zu", i, err);
    }
}

Test(json_scan, scan_object_table)
{
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        size_t n = doc_len(&docs[i]);
        int want = docs[i].valid && looks_like_object(docs[i].doc, n) ? 0 : -1;
        cr_assert_eq(ad_json_scan_object(docs[i].doc, n, NULL, NULL, NULL), want, "case %zu <%s>", i,
                     docs[i].doc);
    }
}

Test(json_scan, every_truncation_of_a_valid_object_is_invalid)
{
    static const char *doc = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi "
                             "\\u00e9\"}],\"temperature\":-0.5e-1,\"stream\":true,\"stop\":null}";
    size_t n = strlen(doc);
    cr_assert_eq(ad_json_scan_object(doc, n, NULL, NULL, NULL), 0);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(ad_json_scan_object(doc, k, NULL, NULL, NULL), -1, "prefix %zu accepted", k);
}

Test(json_scan, error_offsets)
{
    static const struct {
        const char *doc;
        int object; /* scan_object rather than validate */
        size_t off;
    } cases[] = {
        {"", 1, 0},
        {"  [1]", 1, 2},
        {"{\"a\":1,}", 1, 7},
        {"{\"a\":01}", 1, 6},
        {"{\"a\":\"\\q\"}", 1, 6},
        {"{\"a\":\"x\x01\"}", 1, 7},
        {"{\"a\":1} x", 1, 8},
        {"{\"a\":[1,]}", 1, 8},
        {"[1,]", 0, 3},
        {"\"abc", 0, 4},
        {"[tru]", 0, 1},
        {"[1,2", 0, 4},
        {"{\"a\" 1}", 1, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t err = SIZE_MAX, n = strlen(cases[i].doc);
        int rc = cases[i].object ? ad_json_scan_object(cases[i].doc, n, NULL, NULL, &err)
                                 : ad_json_validate(cases[i].doc, n, &err);
        cr_assert_eq(rc, -1, "case %zu", i);
        cr_assert_eq(err, cases[i].off, "case %zu <%s>: err_off %zu, want %zu", i, cases[i].doc, err,
                     cases[i].off);
    }
}

/* "[[[...]]]" (or objects) nested depth levels. */
static char *nested(size_t depth, int objects, size_t *len)
{
    const char *open = objects ? "{\"k\":" : "[";
    size_t ol = strlen(open);
    char *p = malloc(depth * (ol + 1) + 2);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(p + n, open, ol);
        n += ol;
    }
    p[n++] = '1';
    for (size_t i = 0; i < depth; i++)
        p[n++] = objects ? '}' : ']';
    *len = n;
    return p;
}

Test(json_scan, depth_limit)
{
    static const struct {
        size_t depth;
        int objects;
        int valid;
    } cases[] = {
        {1, 0, 1},
        {255, 0, 1},
        {AD_JSON_MAX_DEPTH, 0, 1},
        {AD_JSON_MAX_DEPTH + 1, 0, 0},
        {AD_JSON_MAX_DEPTH, 1, 1},
        {AD_JSON_MAX_DEPTH + 1, 1, 0},
        {100000, 0, 0},
        {100000, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        char *p = nested(cases[i].depth, cases[i].objects, &n);
        cr_assert_eq(ad_json_validate(p, n, NULL), cases[i].valid ? 0 : -1, "case %zu", i);
        if (cases[i].objects)
            cr_assert_eq(ad_json_scan_object(p, n, NULL, NULL, NULL), cases[i].valid ? 0 : -1, "case %zu", i);
        free(p);
    }
}

Test(json_scan, depth_counts_the_top_level_object)
{
    /* {"a": + 255 arrays is depth 256; one more array is too deep. */
    for (size_t inner = 254; inner <= 256; inner++) {
        size_t n;
        char *arr = nested(inner, 0, &n);
        char *doc = malloc(n + 8);
        memcpy(doc, "{\"a\":", 5);
        memcpy(doc + 5, arr, n);
        doc[5 + n] = '}';
        int want = inner + 1 <= AD_JSON_MAX_DEPTH ? 0 : -1;
        cr_assert_eq(ad_json_scan_object(doc, n + 6, NULL, NULL, NULL), want, "inner %zu", inner);
        free(arr);
        free(doc);
    }
}

typedef struct member {
    char key[32];
    size_t key_off;
    char value[64];
    ad_jtype_t type;
} member_t;

typedef struct members {
    member_t m[16];
    size_t n;
    size_t stop_at; /* 1-based member that returns stop_rc; 0: never */
    int stop_rc;
} members_t;

static int on_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t value)
{
    members_t *ms = ud;
    cr_assert_lt(ms->n, 16);
    member_t *m = &ms->m[ms->n++];
    cr_assert_lt(keylen, sizeof m->key);
    cr_assert_lt(value.len, sizeof m->value);
    memcpy(m->key, key, keylen);
    m->key[keylen] = '\0';
    m->key_off = key_off;
    memcpy(m->value, value.p, value.len);
    m->value[value.len] = '\0';
    m->type = value.type;
    return ms->n == ms->stop_at ? ms->stop_rc : 0;
}

Test(json_scan, members_in_order_with_exact_offsets_and_spans)
{
    static const char doc[] =
        " {\"model\" : \"gpt-4o\", \"n\":2,\"msgs\":[{\"a\":1}], \"ok\":true ,\"x\":null,"
        "\"f\":-1.5e3,\"s\":\"a\\\"b\",\"mod\\u0065l\":{ },\"no\":false} ";
    static const member_t want[] = {
        {"model", 2, "\"gpt-4o\"", AD_J_STRING},
        {"n", 22, "2", AD_J_NUMBER},
        {"msgs", 28, "[{\"a\":1}]", AD_J_ARRAY},
        {"ok", 46, "true", AD_J_TRUE},
        {"x", 57, "null", AD_J_NULL},
        {"f", 66, "-1.5e3", AD_J_NUMBER},
        {"s", 77, "\"a\\\"b\"", AD_J_STRING},
        {"mod\\u0065l", 88, "{ }", AD_J_OBJECT},
        {"no", 105, "false", AD_J_FALSE},
    };
    members_t ms = {.n = 0};
    cr_assert_eq(ad_json_scan_object(doc, sizeof doc - 1, on_member, &ms, NULL), 0);
    cr_assert_eq(ms.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < ms.n; i++) {
        cr_assert_str_eq(ms.m[i].key, want[i].key, "member %zu", i);
        cr_assert_eq(ms.m[i].key_off, want[i].key_off, "member %zu key_off %zu", i, ms.m[i].key_off);
        cr_assert_eq(doc[ms.m[i].key_off], '"');
        cr_assert_eq(memcmp(doc + ms.m[i].key_off + 1, want[i].key, strlen(want[i].key)), 0);
        cr_assert_str_eq(ms.m[i].value, want[i].value, "member %zu", i);
        cr_assert_eq(ms.m[i].type, want[i].type, "member %zu type", i);
    }
}

Test(json_scan, callback_stop_returns_its_value_and_skips_the_rest)
{
    static const char doc[] = "{\"a\":1,\"b\":2,\"c\":3} trailing garbage is not looked at";
    members_t ms = {.n = 0, .stop_at = 2, .stop_rc = 42};
    cr_assert_eq(ad_json_scan_object(doc, sizeof doc - 1, on_member, &ms, NULL), 42);
    cr_assert_eq(ms.n, 2);
    cr_assert_str_eq(ms.m[1].key, "b");

    members_t all = {.n = 0};
    cr_assert_eq(ad_json_scan_object(doc, sizeof doc - 1, on_member, &all, NULL), -1);
    cr_assert_eq(all.n, 3, "members before the error are still reported");

    members_t neg = {.n = 0, .stop_at = 1, .stop_rc = -7};
    cr_assert_eq(ad_json_scan_object("{\"a\":1}", 7, on_member, &neg, NULL), -7);
}

Test(json_scan, find)
{
    static const char doc[] =
        "{\"messages\":[{\"model\":\"inner\"}], \"mod\\u0065l\" : \"x\", \"model\":\"y\", "
        "\"stream\":true}";
    ad_jspan_t v = {0};
    cr_assert_eq(ad_json_find(doc, sizeof doc - 1, "model", &v), 1);
    cr_assert_eq(v.type, AD_J_STRING);
    cr_assert_eq(v.len, 3);
    cr_assert_eq(memcmp(v.p, "\"x\"", 3), 0, "first occurrence wins");
    cr_assert_eq(ad_json_find(doc, sizeof doc - 1, "stream", &v), 1);
    cr_assert_eq(v.type, AD_J_TRUE);
    cr_assert_eq(ad_json_find(doc, sizeof doc - 1, "role", &v), 0, "nested keys are not top-level");
    cr_assert_eq(ad_json_find(doc, sizeof doc - 1, "", &v), 0);
    cr_assert_eq(ad_json_find("[1]", 3, "model", &v), -1);
    cr_assert_eq(ad_json_find("{\"model\":1,}", 12, "model", &v), -1, "invalid text even after a hit");
    cr_assert_eq(ad_json_find("{\"\":5}", 6, "", &v), 1);
}

Test(json_scan, key_eq)
{
    static const struct {
        const char *raw, *want;
        int eq;
    } cases[] = {
        {"model", "model", 1},
        {"model", "mode", 0},
        {"mode", "model", 0},
        {"Model", "model", 0},
        {"mod\\u0065l", "model", 1},
        {"mod\\u0065", "model", 0},
        {"\\u006d\\u006F\\u0064\\u0065\\u006c", "model", 1},
        {"\\u00e9", "\xc3\xa9", 1},
        {"\\u20ac", "\xe2\x82\xac", 1},
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", 1},
        {"\\ud83d", "\xef\xbf\xbd", 1},
        {"a\\/b", "a/b", 1},
        {"a\\nb", "a\nb", 1},
        {"a\\\"", "a\"", 1},
        {"a\\\\b", "a\\b", 1},
        {"", "", 1},
        {"", "a", 0},
        {"a", "", 0},
        {"\\u0000", "", 0},
        {"x\\q", "x?", 0},
        {"x\\", "x", 0},
        {"\\u00", "", 0},
        {"\xc3\xa9", "\xc3\xa9", 1},
        {"a\\nb", "a\\nb", 0}, /* same bytes, but the raw key decodes to a newline */
        {"modem", "model", 0},
        {"mode\\u006c", "model", 1},
        {"mode\\u006d", "model", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(ad_json_key_eq(cases[i].raw, strlen(cases[i].raw), cases[i].want), cases[i].eq,
                     "case %zu <%s> vs <%s>", i, cases[i].raw, cases[i].want);
}

/* The span of the value in {"v":<text>}, as the scanner reports it. */
static ad_jspan_t span_of(const char *text, char *store, size_t cap)
{
    int n = snprintf(store, cap, "{\"v\":%s}", text);
    cr_assert(n > 0 && (size_t)n < cap);
    ad_jspan_t v = {0};
    cr_assert_eq(ad_json_find(store, (size_t)n, "v", &v), 1, "<%s> is not a valid value", text);
    return v;
}

Test(json_scan, span_int64)
{
    static const struct {
        const char *text;
        int ok;
        int64_t want;
    } cases[] = {
        {"0", 1, 0},
        {"-0", 1, 0},
        {"42", 1, 42},
        {"-42", 1, -42},
        {"9223372036854775807", 1, INT64_MAX},
        {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775809", 0, 0},
        {"99999999999999999999", 0, 0},
        {"1.0", 0, 0},
        {"1e2", 0, 0},
        {"-1E0", 0, 0},
        {"\"1\"", 0, 0},
        {"true", 0, 0},
        {"[1]", 0, 0},
    };
    char store[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t out = 12345;
        ad_jspan_t v = span_of(cases[i].text, store, sizeof store);
        int rc = ad_json_span_int64(v, &out);
        cr_assert_eq(rc, cases[i].ok ? 0 : -1, "case %zu <%s>", i, cases[i].text);
        if (cases[i].ok)
            cr_assert_eq(out, cases[i].want, "case %zu", i);
        else
            cr_assert_eq(out, 12345, "case %zu: output written on failure", i);
    }
}

Test(json_scan, span_double)
{
    static const struct {
        const char *text;
        int ok;
        double want;
    } cases[] = {
        {"0", 1, 0.0},
        {"-0", 1, -0.0},
        {"1.5", 1, 1.5},
        {"-2.5e-3", 1, -0.0025},
        {"1E2", 1, 100.0},
        {"123", 1, 123.0},
        {"1e-400", 1, 0.0},
        {"1e400", 0, 0},
        {"-1e400", 0, 0},
        {"\"1.5\"", 0, 0},
        {"null", 0, 0},
        {"0.1", 1, 0.1},
        {"1.7976931348623157e308", 1, 1.7976931348623157e308},
    };
    char store[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double out = 99.0;
        ad_jspan_t v = span_of(cases[i].text, store, sizeof store);
        int rc = ad_json_span_double(v, &out);
        cr_assert_eq(rc, cases[i].ok ? 0 : -1, "case %zu <%s>", i, cases[i].text);
        if (cases[i].ok) {
            cr_assert_eq(out, cases[i].want, "case %zu: %g", i, out);
            cr_assert_eq(!!signbit(out), !!signbit(cases[i].want), "case %zu sign", i);
        }
    }
}

Test(json_scan, span_bool)
{
    char store[64];
    int b = -1;
    cr_assert_eq(ad_json_span_bool(span_of("true", store, sizeof store), &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(ad_json_span_bool(span_of("false", store, sizeof store), &b), 0);
    cr_assert_eq(b, 0);
    b = 5;
    cr_assert_eq(ad_json_span_bool(span_of("null", store, sizeof store), &b), -1);
    cr_assert_eq(ad_json_span_bool(span_of("1", store, sizeof store), &b), -1);
    cr_assert_eq(ad_json_span_bool(span_of("\"true\"", store, sizeof store), &b), -1);
    cr_assert_eq(b, 5);
}

Test(json_scan, span_string_decodes)
{
    static const struct {
        const char *text;
        const char *want;
        long len;
    } cases[] = {
        {"\"abc\"", "abc", 3},
        {"\"\"", "", 0},
        {"\"a\\\"b\"", "a\"b", 3},
        {"\"\\/\\b\\f\\n\\r\\t\\\\\"", "/\b\f\n\r\t\\", 7},
        {"\"\\u00e9\"", "\xc3\xa9", 2},
        {"\"\\u20AC\"", "\xe2\x82\xac", 3},
        {"\"\\u0041\\u0062\"", "Ab", 2},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4},
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4},
        {"\"\\ud800\"", "\xef\xbf\xbd", 3},
        {"\"\\udc00x\"", "\xef\xbf\xbdx", 4},
        {"\"\\ud800\\u0041\"",
         "\xef\xbf\xbd"
         "A",
         4},
        {"\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7},
        {"\"\\u0000\"", "", 1},
        {"\"raw \xc3\xa9 \xff\"", "raw \xc3\xa9 \xff", 8},
    };
    char store[128], out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_jspan_t v = span_of(cases[i].text, store, sizeof store);
        long n = ad_json_span_string(v, out, sizeof out);
        cr_assert_eq(n, cases[i].len, "case %zu <%s>: %ld", i, cases[i].text, n);
        cr_assert_eq(memcmp(out, cases[i].want, (size_t)n), 0, "case %zu", i);
        cr_assert_eq(out[n], '\0');
    }
}

Test(json_scan, span_string_capacity_and_type)
{
    static const struct {
        const char *text;
        size_t cap;
        long want;
    } cases[] = {
        {"\"abc\"", 4, 3},
        {"\"abc\"", 3, -1},
        {"\"abc\"", 0, -1},
        {"\"\"", 1, 0},
        {"\"\\u00e9\"", 3, 2},
        {"\"\\u00e9\"", 2, -1},
        {"\"a\\u00e9\"", 3, -1},
        {"\"\\ud83d\\ude00\"", 5, 4},
        {"\"\\ud83d\\ude00\"", 4, -1},
        {"12", 10, -1},
        {"null", 10, -1},
        {"[\"a\"]", 10, -1},
    };
    char store[64], out[16];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_jspan_t v = span_of(cases[i].text, store, sizeof store);
        cr_assert_eq(ad_json_span_string(v, out, cases[i].cap), cases[i].want, "case %zu", i);
    }
}

Test(json_scan, accessors_reject_hand_built_bad_spans)
{
    char out[16];
    int64_t i64;
    double d;
    ad_jspan_t unterminated = {"\"abc", 4, AD_J_STRING};
    ad_jspan_t escaped_end = {"\"abc\\\"", 6, AD_J_STRING};
    ad_jspan_t lone_quote = {"\"", 1, AD_J_STRING};
    ad_jspan_t hex = {"0x10", 4, AD_J_NUMBER};
    ad_jspan_t space = {" 1", 2, AD_J_NUMBER};
    ad_jspan_t inf = {"inf", 3, AD_J_NUMBER};
    ad_jspan_t empty = {"", 0, AD_J_NUMBER};
    ad_jspan_t null_p = {NULL, 0, AD_J_STRING};
    cr_assert_eq(ad_json_span_string(unterminated, out, sizeof out), -1);
    cr_assert_eq(ad_json_span_string(escaped_end, out, sizeof out), -1);
    cr_assert_eq(ad_json_span_string(lone_quote, out, sizeof out), -1);
    cr_assert_eq(ad_json_span_string(null_p, out, sizeof out), -1);
    cr_assert_eq(ad_json_span_int64(hex, &i64), -1);
    cr_assert_eq(ad_json_span_double(hex, &d), -1);
    cr_assert_eq(ad_json_span_double(space, &d), -1);
    cr_assert_eq(ad_json_span_double(inf, &d), -1);
    cr_assert_eq(ad_json_span_int64(empty, &i64), -1);
    cr_assert_eq(ad_json_span_double(empty, &d), -1);
}

Test(json_scan, long_strings_every_special_position)
{
    /* The eight-byte skipping must find a quote, backslash or control byte at every alignment. */
    char doc[80];
    for (size_t pos = 0; pos < 40; pos++) {
        static const struct {
            char c;
            int valid;
        } specials[] = {{'\x01', 0}, {'\x1f', 0}, {'\n', 0}, {' ', 1}, {'\x7f', 1}, {'\x80', 1}};
        for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
            memset(doc, 'a', sizeof doc);
            memcpy(doc, "{\"k\":\"", 6);
            doc[6 + pos] = specials[k].c;
            memcpy(doc + 70, "\"}", 2);
            int rc = ad_json_scan_object(doc, 72, NULL, NULL, NULL);
            cr_assert_eq(rc, specials[k].valid ? 0 : -1, "pos %zu special %zu", pos, k);
        }
        memset(doc, 'a', sizeof doc);
        memcpy(doc, "{\"k\":\"", 6);
        doc[6 + pos] = '"'; /* string ends early: the rest is garbage */
        memcpy(doc + 70, "\"}", 2);
        cr_assert_eq(ad_json_scan_object(doc, 72, NULL, NULL, NULL), -1, "early quote at %zu", pos);
        memcpy(doc + 6 + pos, "\\\"", 2);
        cr_assert_eq(ad_json_scan_object(doc, 72, NULL, NULL, NULL), 0, "escaped quote at %zu", pos);
    }
}
